"""The command line: a thin shell over the Python API, one public function per verb.

Every verb takes ``--json`` and then prints exactly one JSON document on stdout; errors
are ``{"ok": false, "error": ..., "hint": ...}`` with exit code 1 (2 for usage errors).

    forensics load incident.duckdb audit.jsonl changes.csv --json
"""

from __future__ import annotations

import functools
import json
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click
from rich.console import Console

from . import __version__
from .errors import ForensicsError
from .result import Result, _jsonable

err_console = Console(stderr=True)
out_console = Console()


def output_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """The options every verb shares (``--json``), and the one place errors become
    friendly messages (sqlite-utils style)."""

    @click.option("--json", "as_json", is_flag=True, help="Print one JSON document on stdout.")
    @functools.wraps(fn)
    def wrapper(*args: Any, as_json: bool, **kwargs: Any) -> None:
        try:
            payload = fn(*args, **kwargs)
        except ForensicsError as exc:
            _fail(exc.to_dict(), as_json)
        except KeyboardInterrupt:
            _fail({"ok": False, "error": "interrupted", "hint": "nothing partial was kept"},
                  as_json)
        _emit(payload, as_json)

    return wrapper


def _fail(error: dict[str, Any], as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(error))
    else:
        err_console.print(f"[bold red]Error:[/] {error['error']}", highlight=False)
        if error.get("hint"):
            err_console.print(f"[dim]Hint: {error['hint']}[/]", highlight=False)
    sys.exit(1)


def _emit(payload: Any, as_json: bool) -> None:
    """``payload`` is (json dict, human renderer) or a Result."""
    if isinstance(payload, Result):
        data, human = {"ok": True, **payload.to_dict()}, payload.to_markdown
    else:
        data, human = payload
        data = {"ok": True, **data}
    if as_json:
        click.echo(json.dumps(_jsonable(data)))
    else:
        text = human() if callable(human) else str(human)
        out_console.print(text, highlight=False, markup=False)


@contextmanager
def progress_bar(label: str, total: int | None = None) -> Iterator[Callable[..., None]]:
    """A progress display on stderr that appears only for work longer than a second."""
    from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    progress = Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                        TimeElapsedColumn(), console=err_console, transient=True)
    task = progress.add_task(label, total=total)
    timer = threading.Timer(1.0, progress.start)
    timer.daemon = True
    timer.start()

    def update(message: str | int | None = None, total_: int | None = None) -> None:
        if isinstance(message, int):
            progress.update(task, completed=message, total=total_)
        elif message:
            progress.update(task, description=str(message))

    try:
        yield update
    finally:
        timer.cancel()
        progress.stop()


def _open_case(path: str, read_only: bool = False) -> Any:
    from .case import open as open_case

    return open_case(path, read_only=read_only)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="forensics")
def cli() -> None:
    """forensics: investigate incidents in AI features from audit logs and traces.

    A case is one DuckDB file holding the evidence and the findings.
    """


@cli.command()
@click.argument("case", type=click.Path(dir_okay=False))
@click.argument("files", nargs=-1, required=True, type=click.Path())
@click.option("--format", "fmt", default=None,
              help="Override format detection: jsonl, json, csv, parquet, changes, feedback, "
                   "or a vendor format (otlp, openinference, langfuse, ...).")
@click.option("--mapping", type=click.Path(exists=True, dir_okay=False), default=None,
              help="TOML file mapping canonical columns to source field paths.")
@output_options
def load(case: str, files: tuple[str, ...], fmt: str | None, mapping: str | None) -> Any:
    """Load evidence FILES into CASE (created when missing). Same file twice adds nothing."""
    from .load import load_files

    c = _open_case(case)
    try:
        with progress_bar("loading") as update:
            result = load_files(c, list(files), format=fmt, mapping=mapping, progress=update)
    finally:
        c.close()
    return {"files": result.rows(), "rejects": result.meta.get("first_rejects", [])}, \
        lambda: _load_text(result)


def _load_text(result: Result) -> str:
    lines = [f"{r['path']}: {r['status']}, format {r['format']} -> {r['target']}, "
             f"{r['rows_loaded']} loaded, {r['rows_rejected']} rejected "
             f"(sha256 {r['sha256'][:12]})" for r in result.rows()]
    lines += [f"  rejected: {m}" for m in result.meta.get("first_rejects", [])]
    return "\n".join(lines)


@cli.command()
@click.argument("case", type=click.Path(exists=True, dir_okay=False))
@output_options
def summary(case: str) -> Any:
    """What CASE holds: evidence files, tables, time span, features."""
    c = _open_case(case, read_only=True)
    try:
        return c.summary()
    finally:
        c.close()


@cli.command()
@click.argument("case", required=False, type=click.Path(dir_okay=False))
@click.argument("name", required=False)
@click.option("-p", "--param", "params", multiple=True, metavar="KEY=VALUE",
              help="A query parameter; repeat for several.")
@click.option("--list", "list_", is_flag=True, help="List the saved queries and exit.")
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json", "markdown"]),
              default="table", show_default=True)
@click.option("--row-cap", type=int, default=None, help="At most this many rows.")
@click.option("--time-limit", type=float, default=None, help="Seconds before the query stops.")
@output_options
def query(case: str | None, name: str | None, params: tuple[str, ...], list_: bool, fmt: str,
          row_cap: int | None, time_limit: float | None) -> Any:
    """Run the saved query NAME on CASE (opened read-only), or --list them."""
    from .errors import UsageError
    from .queries import catalogue, run

    if list_:
        result = catalogue()
        return {"queries": result.rows()}, result.to_markdown
    if not case or not name:
        raise UsageError("give CASE and NAME, or --list", hint="forensics query --list")
    values = {}
    for item in params:
        key, sep, value = item.partition("=")
        if not sep:
            raise UsageError(f"parameter {item!r} is not KEY=VALUE")
        values[key.strip()] = value
    c = _open_case(case, read_only=True)
    try:
        result = run(c, name, row_cap=row_cap, time_limit=time_limit, **values)
    finally:
        c.close()
    return result.to_dict(), lambda: _render(result, fmt)


def _render(result: Result, fmt: str) -> str:
    if fmt == "csv":
        return result.df.write_csv()
    if fmt == "json":
        return json.dumps(result.rows())
    if fmt == "markdown":
        return result.to_markdown(max_rows=result.df.height)
    with_truncation = " (truncated at the row cap)" if result.meta.get("truncated") else ""
    from rich.table import Table

    table = Table(title=result.title + with_truncation)
    for column in result.df.columns:
        table.add_column(column)
    for row in result.df.head(200).iter_rows():
        table.add_row(*["" if v is None else str(v) for v in row])
    console = Console(width=200, record=True)
    with console.capture() as capture:
        console.print(table)
    return capture.get()


@cli.command()
@click.argument("case", type=click.Path(exists=True, dir_okay=False))
@click.option("--label", default=None, help="A detector or reviewer label, e.g. pii_leak.")
@click.option("--cluster", default=None, help="A cluster id.")
@click.option("--where", default=None, help="Any SQL condition over event_facts.")
@click.option("--start", default=None, help="Exposure window start (ISO time).")
@click.option("--end", default=None, help="Exposure window end (ISO time).")
@click.option("--by", multiple=True, help="Break down by a cohort column; repeatable.")
@click.option("--approx", is_flag=True, help="Approximate distinct counts (large cases).")
@click.option("--suppress-below", type=int, default=0, show_default=True,
              help="Show cells with fewer users as <k.")
@output_options
def impact(case: str, label: str | None, cluster: str | None, where: str | None,
           start: str | None, end: str | None, by: tuple[str, ...], approx: bool,
           suppress_below: int) -> Any:
    """Affected users, sessions and events in CASE for a pattern (default: any bad signal)."""
    from .errors import UsageError
    from .impact import impact as impact_fn

    if (start is None) != (end is None):
        raise UsageError("give both --start and --end, or neither")
    c = _open_case(case, read_only=True)
    try:
        result = impact_fn(c, label=label, cluster=cluster, where=where,
                           window=(start, end) if start else None, by=list(by),
                           approx=approx, suppress_below=suppress_below)
    finally:
        c.close()
    data = {**result.meta, "rows": result.rows(), "sql": result.sql, "params": result.params}
    data["window"] = {"start": _jsonable(result.meta["first_exposure"]),
                      "end": _jsonable(result.meta["last_exposure"])}
    return data, result.to_markdown


# -- which change caused it (issue 5) ------------------------------------------------------

def _with_case(case: str, fn: Callable[[Any], Result]) -> Result:
    c = _open_case(case, read_only=True)
    try:
        return fn(c)
    finally:
        c.close()


@cli.command()
@click.argument("case", type=click.Path(exists=True, dir_okay=False))
@click.option("--feature", default=None, help="Only this feature.")
@click.option("--bucket", default="1h", show_default=True, help="Rollout bucket.")
@output_options
def changes(case: str, feature: str | None, bucket: str) -> Any:
    """Declared and inferred changes in CASE, with their rollout."""
    from .changes import changes as changes_fn

    return _with_case(case, lambda c: changes_fn(c, feature=feature, bucket=bucket))


@cli.command()
@click.argument("case", type=click.Path(exists=True, dir_okay=False))
@click.option("--metric", default="bad_rate", show_default=True,
              help="bad_rate, refusal_rate, error_rate, flag_rate, negative_feedback, "
                   "latency_p50, latency_p95, tokens, cost, volume, label:NAME, cluster:ID.")
@click.option("--by", default=None, help="Split by a column or attributes key.")
@click.option("--bucket", default="1h", show_default=True)
@click.option("--where", default=None, help="SQL condition over event_facts.")
@click.option("--plot", "plot_path", default=None, type=click.Path(dir_okay=False),
              help="Also save the chart (PNG) here.")
@output_options
def timeline(case: str, metric: str, by: str | None, bucket: str, where: str | None,
             plot_path: str | None) -> Any:
    """A metric of CASE over time, with change markers."""
    from .changes import timeline as timeline_fn

    result = _with_case(case, lambda c: timeline_fn(c, metric, by=by, bucket=bucket,
                                                    where=where))
    if plot_path:
        result.plot().figure.savefig(plot_path, dpi=120, bbox_inches="tight")
    return result


@cli.command()
@click.argument("case", type=click.Path(exists=True, dir_okay=False))
@click.option("--by", default=None, help="Cohort column (e.g. prompt_version).")
@click.option("--a", "a", default=None, help="Value of cohort a (or SQL with --sql).")
@click.option("--b", "b", default=None, help="Value of cohort b (or SQL with --sql).")
@click.option("--at", default=None, help="Before/after this time (ISO) instead.")
@click.option("--window", default=None, help="With --at: this long either side (e.g. 24h).")
@click.option("--where", default=None, help="SQL condition over event_facts for both.")
@click.option("--metric", "metrics", multiple=True, help="A metric; repeatable.")
@click.option("--segment", "segments", multiple=True,
              help="Drill-down column; repeatable (default feature, locale, plan, region, "
                   "client_version, tenant).")
@click.option("--sql", "as_sql", is_flag=True, help="--a/--b are SQL conditions.")
@click.option("--no-concurrent", is_flag=True, help="Do not restrict to shared hours.")
@output_options
def compare(case: str, by: str | None, a: str | None, b: str | None, at: str | None,
            window: str | None, where: str | None, metrics: tuple[str, ...],
            segments: tuple[str, ...], as_sql: bool, no_concurrent: bool) -> Any:
    """Compare two cohorts of CASE: --by COLUMN --a X --b Y, or --at TS."""
    from .diff import compare as compare_fn
    from .metrics import SEGMENTS

    if as_sql:
        by = None
    return _with_case(case, lambda c: compare_fn(
        c, a, b, by=by, at=at, window=window, where=where, metrics=list(metrics) or None,
        segments=list(segments) or SEGMENTS, concurrent=False if no_concurrent else None))


@cli.command()
@click.argument("case", type=click.Path(exists=True, dir_okay=False))
@click.option("--pattern", default=None, help="A label, cluster id or SQL condition.")
@click.option("--label", default=None)
@click.option("--cluster", default=None)
@click.option("--where", default=None, help="SQL condition over event_facts.")
@click.option("--bucket", default="1h", show_default=True)
@click.option("--window", default="48h", show_default=True,
              help="Traffic either side of each change used as evidence.")
@output_options
def suspects(case: str, pattern: str | None, label: str | None, cluster: str | None,
             where: str | None, bucket: str, window: str) -> Any:
    """Ranked candidate root causes in CASE for a pattern (default: any bad signal)."""
    from .diff import suspects as suspects_fn

    result = _with_case(case, lambda c: suspects_fn(c, pattern, label=label, cluster=cluster,
                                                    where=where, bucket=bucket, window=window))
    keep = ["rank", "change_id", "kind", "feature", "column", "from_version", "to_version",
            "ts", "source", "score", "effect", "ci_low", "ci_high", "q_value", "method",
            "confounded_with", "verdict", "explanation"]
    data = {"suspects": [{k: r[k] for k in keep} for r in result.rows()],
            "onset": result.meta.get("onset"), "meta": result.meta, "sql": result.sql,
            "params": result.params}
    return data, result.to_markdown


@cli.command("retrieval-diff")
@click.argument("case", type=click.Path(exists=True, dir_okay=False))
@click.option("--before", default=None, help="retrieval_version before.")
@click.option("--after", default=None, help="retrieval_version after.")
@click.option("--at", default=None, help="Or split in time at this ISO time.")
@click.option("--feature", default=None)
@click.option("-k", "k", default=5, show_default=True, type=int)
@output_options
def retrieval_diff(case: str, before: str | None, after: str | None, at: str | None,
                   feature: str | None, k: int) -> Any:
    """Top-k retrieval of the same queries before vs after an index change."""
    from .diff import retrieval_diff as rd_fn

    return _with_case(case, lambda c: rd_fn(c, before, after, at=at, feature=feature, k=k))


@cli.command()
@click.argument("outdir", type=click.Path(file_okay=False))
@click.option("--scenario", required=True, help="Scenario name (see --list).")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--events", "n_events", default=200_000, show_default=True, type=int)
@click.option("--days", default=21, show_default=True, type=int)
@click.option("--format", "fmt", default="jsonl", show_default=True,
              type=click.Choice(["jsonl", "otlp", "openinference", "langfuse"]),
              help="Shape of the events file: canonical JSON Lines, OTLP/JSON (GenAI "
                   "conventions), Phoenix / OpenInference span JSON, or Langfuse exports.")
@output_options
def drill(outdir: str, scenario: str, seed: int, n_events: int, days: int, fmt: str) -> Any:
    """Generate a practice incident in OUTDIR, with its answer key."""
    from .drill import generate

    with progress_bar(f"drill {scenario}", total=n_events) as update:
        summary_ = generate(outdir, scenario, seed=seed, events=n_events, days=days,
                            progress=lambda done, total: update(done, total), format=fmt)
    return summary_, lambda: json.dumps(_jsonable(summary_), indent=2)


@cli.command()
@click.option("--outdir", default="forensics-demo", show_default=True,
              type=click.Path(file_okay=False), help="Where the drill, case and report go.")
@click.option("--events", "n_events", default=60_000, show_default=True, type=int)
@click.option("--seed", default=7, show_default=True, type=int)
@output_options
def demo(outdir: str, n_events: int, seed: int) -> Any:
    """Investigate a generated incident end to end and say what was found."""
    from .demo import run_demo

    with progress_bar("demo") as update:
        report = run_demo(Path(outdir), events=n_events, seed=seed, progress=update)
    return report.to_dict(), report.to_text


def main() -> None:
    cli(prog_name="forensics")


if __name__ == "__main__":
    main()
