"""The command line: a thin shell over the Python API, one public function per verb.

Every verb takes ``--json`` and then prints exactly one JSON document on stdout: on
success ``{"ok": true, "verb": ..., "version": ..., ...}``, on any error
``{"ok": false, "verb": ..., "error": ..., "hint": ..., "type": ..., "exit": ...}`` with a
non-zero exit: 1 for errors the library reports (bad input, a DuckDB error, a file that
cannot be read, a bug), 2 for a command line that does not parse, 130 when interrupted.

    forensics load incident.duckdb audit.jsonl changes.csv --json
"""

from __future__ import annotations

import functools
import json
import os
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click
import duckdb
from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from forensics import __version__
from forensics.case import open as open_case
from forensics.cause.changes import changes as changes_fn
from forensics.cause.changes import timeline as timeline_fn
from forensics.cause.compare import compare as compare_fn
from forensics.cause.retrieval import retrieval_diff as rd_fn
from forensics.cli.demo import run_demo
from forensics.core.errors import ForensicsError, UsageError, is_interrupt
from forensics.core.findings import check, list_findings
from forensics.core.metrics import SEGMENTS
from forensics.core.redact import redact_frame
from forensics.core.result import Result, cell_text, dumps, jsonable
from forensics.detect.cluster import cluster as cluster_fn
from forensics.detect.detectors import detect as detect_fn
from forensics.detect.detectors import import_labels as import_fn
from forensics.detect.rules import RULES
from forensics.drills.generator import SCENARIOS, generate
from forensics.drills.mix import MIXES, generate_mix
from forensics.impact.estimate import estimate as estimate_fn
from forensics.ingest.attach import attach as attach_fn
from forensics.ingest.attach import check_attached
from forensics.ingest.load import load_files, require_rows
from forensics.playbook.containment import containment as containment_fn
from forensics.playbook.detection_gap import detection_gap as gap_fn
from forensics.playbook.milestones import mark as mark_fn
from forensics.playbook.milestones import milestones as milestones_fn
from forensics.playbook.severity import severity as severity_fn
from forensics.playbook.timeline import incident_timeline
from forensics.postmortem.evalpack import export_evals
from forensics.postmortem.writing import postmortem
from forensics.queries.runner import catalogue

err_console = Console(stderr=True)


def output_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """The options every verb shares (``--json``), and the one place where results become
    the success document and every exception the error shape (sqlite-utils style)."""

    @click.option("--json", "as_json", is_flag=True, help="Print one JSON document on stdout.")
    @functools.wraps(fn)
    def wrapper(*args: Any, as_json: bool, **kwargs: Any) -> None:
        verb = click.get_current_context().info_name or fn.__name__
        try:
            payload = fn(*args, **kwargs)
        except BaseException as exc:
            if isinstance(exc, SystemExit | click.exceptions.Exit):
                raise
            _fail(*error_document(exc, verb), as_json, exc)
        _emit(payload, as_json, verb)

    return wrapper


def error_document(exc: BaseException,
                   verb: str | None = None) -> tuple[dict[str, Any], int]:
    """The one error shape, ``{"ok": false, "error", "hint", "type"}``, and the exit code.

    >>> error_document(ValueError("bad"), "impact")
    ({'ok': False, 'error': 'ValueError: bad', 'hint': 'this is a bug in forensics; \
FORENSICS_DEBUG=1 shows the traceback', 'type': 'internal'}, 1)
    """
    if isinstance(exc, ForensicsError):
        doc, code = exc.to_dict(), 1
    elif isinstance(exc, click.UsageError):
        doc = {"error": exc.format_message(), "type": "usage",
               "hint": f"see `forensics {verb or ''} --help`".replace("  ", " ")}
        code = 2
    elif is_interrupt(exc):
        doc, code = {"error": "interrupted", "type": "interrupted",
                     "hint": "nothing partial was kept; run the command again"}, 130
    elif isinstance(exc, duckdb.Error):
        doc, code = {"error": f"DuckDB: {str(exc).strip()}", "type": type(exc).__name__,
                     "hint": "the case file or the SQL was refused by DuckDB; `forensics "
                             "summary CASE` shows what the case holds"}, 1
    elif isinstance(exc, OSError):
        doc, code = {"error": f"{exc.strerror or exc}: {exc.filename or ''}".rstrip(": "),
                     "type": type(exc).__name__,
                     "hint": "check the path and its permissions"}, 1
    else:
        doc, code = {"error": f"{type(exc).__name__}: {exc}", "type": "internal",
                     "hint": "this is a bug in forensics; FORENSICS_DEBUG=1 shows the "
                             "traceback"}, 1
    return {"ok": False, "error": doc["error"], "hint": doc.get("hint") or "",
            "type": doc["type"]}, code


def _fail(error: dict[str, Any], code: int, as_json: bool,
          exc: BaseException | None = None) -> None:
    if exc is not None and os.environ.get("FORENSICS_DEBUG") and error["type"] == "internal":
        raise exc
    if as_json:
        click.echo(dumps(error))
    else:
        err_console.print(f"[bold red]Error:[/] {error['error']}", highlight=False,
                          markup=True)
        if error.get("hint"):
            err_console.print(f"[dim]Hint: {error['hint']}[/]", highlight=False)
    sys.exit(code)


def _emit(payload: Any, as_json: bool, verb: str) -> None:
    """``payload`` is (json dict, human renderer) or a Result. The success document is
    ``{"ok": true, "verb": ..., "version": ..., **payload}``: every verb's payload keys at
    the top, a Result's ``title``, ``sql``, ``params``, ``meta``, ``columns``, ``rows``."""
    if isinstance(payload, Result):
        data, human = payload.to_dict(), payload.to_markdown
    else:
        data, human = payload
    if as_json:
        click.echo(dumps(success_document(data, verb)))
    else:
        text = human() if callable(human) else str(human)
        click.echo(text)   # as it is: a console would re-wrap JSON, CSV and tables


def success_document(data: dict[str, Any], verb: str) -> dict[str, Any]:
    """The one success envelope around a verb's payload.

    >>> success_document({"rows": []}, "summary")["ok"]
    True
    """
    return {"ok": True, "verb": verb, "version": __version__,
            **{k: v for k, v in data.items() if k not in ("ok", "verb", "version")}}


def _required(value: str | None, verb: str) -> str:
    if not value:
        raise UsageError(f"{verb} needs the events to work on: --pattern",
                         hint="e.g. --pattern pii_leak (a label), or --pattern "
                              "\"sql:feature = 'doc_qa'\"")
    return value


# --help lists the verbs in the order of an investigation
STAGES: list[tuple[str, list[str]]] = [
    ("Start: build the case", ["demo", "drill", "load", "attach", "summary"]),
    ("What went wrong", ["detect", "cluster", "import-labels", "query"]),
    ("What changed, and which change caused it",
     ["changes", "timeline", "suspects", "compare", "retrieval-diff"]),
    ("Who was hurt", ["impact", "estimate"]),
    ("Run the incident (playbook)",
     ["playbook", "severity", "incident", "detection-gap", "containment", "mark",
      "milestones"]),
    ("Write it up", ["report", "evals", "findings"]),
    ("Several incidents", ["incidents"]),
]


class ForensicsGroup(click.Group):
    """Usage errors (a bad option, a missing argument) in the error shape under --json;
    ``--help`` groups the verbs by investigation stage, with whole descriptions."""

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        names = [n for n in self.list_commands(ctx)
                 if (c := self.get_command(ctx, n)) is not None and not c.hidden]
        placed = {n for _, group in STAGES for n in group}
        sections = [(title, [n for n in group if n in names]) for title, group in STAGES]
        sections.append(("Other", [n for n in names if n not in placed]))
        width = max((len(n) for n in names), default=10)
        for title, group in sections:
            rows = []
            for name in group:
                command = self.get_command(ctx, name)
                if command is not None:
                    # the whole first sentence; the formatter wraps it
                    rows.append((name, command.get_short_help_str(limit=300)))
            if rows:
                with formatter.section(title):
                    formatter.write_dl(rows, col_max=width + 2)

    def main(self, args: Any = None, prog_name: str | None = None,  # type: ignore[override]
             complete_var: str | None = None, standalone_mode: bool = True,
             **extra: Any) -> Any:
        argv = list(sys.argv[1:] if args is None else args)
        try:
            return super().main(args=argv, prog_name=prog_name, complete_var=complete_var,
                                standalone_mode=False, **extra)
        except click.UsageError as exc:
            if "--json" not in argv:
                if not standalone_mode:
                    raise
                exc.show()
                sys.exit(exc.exit_code)
            verb = exc.ctx.info_name if exc.ctx is not None and exc.ctx.parent else None
            click.echo(dumps(error_document(exc, verb)[0]))
            sys.exit(2)
        except click.exceptions.Abort:
            _fail(*error_document(KeyboardInterrupt(), None), "--json" in argv)
        except click.exceptions.Exit as exc:
            if not standalone_mode:
                raise
            sys.exit(exc.exit_code)


@contextmanager
def progress_bar(label: str, total: int | None = None) -> Iterator[Callable[..., None]]:
    """A progress display on stderr that appears only for work longer than a second."""

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


PATTERN_HELP = ("Which events: a label, cluster id, failure family, or an SQL condition over "
                "event_facts (label:X, cluster:X, family:X, sql:X to be explicit)")


def pattern_option(default: str | None = None, help: str = PATTERN_HELP,
                   ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``--pattern``: the one spelling, on every verb, of which events a step is about
    (resolved by :func:`forensics.core.selection.select`). The older spellings
    ``--label``, ``--cluster``, ``--flagged`` (and ``--where`` where it meant the pattern)
    are kept as hidden aliases that say which kind they name."""

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        @click.option("--pattern", "pattern", default=default, show_default=default is not None,
                      help=help)
        @click.option("--label", "alias_label", default=None, hidden=True)
        @click.option("--cluster", "alias_cluster", default=None, hidden=True)
        @click.option("--flagged", "alias_flagged", default=None, hidden=True)
        @click.option("--where", "alias_where", default=None, hidden=True)
        @functools.wraps(fn)
        def wrapper(*args: Any, pattern: str | None, alias_label: str | None,
                    alias_cluster: str | None, alias_flagged: str | None,
                    alias_where: str | None, **kwargs: Any) -> Any:
            given = [v for v in (f"label:{alias_label}" if alias_label else None,
                                 f"cluster:{alias_cluster}" if alias_cluster else None,
                                 alias_flagged, alias_where) if v]
            if given:
                if len(given) > 1 or (pattern is not None and pattern != default):
                    raise UsageError("name the events once, with --pattern",
                                     hint="e.g. --pattern pii_leak, or --pattern "
                                          "\"sql:feature = 'doc_qa' AND is_error\"")
                pattern = given[0]
            return fn(*args, pattern=pattern, **kwargs)

        return wrapper

    return decorate


def _open_case(path: str, read_only: bool = False) -> Any:

    verb = click.get_current_context().info_name or "forensics"
    return open_case(path, read_only=read_only, purpose=verb)


@click.group(cls=ForensicsGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="forensics")
def cli() -> None:
    """forensics: investigate incidents in AI features from audit logs and traces.

    A case is one DuckDB file holding the evidence and the findings. Several processes
    share it: one writes at a time, and a command that finds it busy waits up to
    FORENSICS_LOCK_WAIT seconds (default 60), then names the process holding it.

    Start here: "forensics demo" investigates a generated incident end to end. With your
    own logs: "forensics load CASE FILES...", then the verbs below from top to bottom.
    """


@cli.command()
@click.argument("case", type=click.Path(dir_okay=False))
@click.argument("files", nargs=-1, required=True, type=click.Path())
@click.option("--format", "fmt", default=None,
              help="Override format detection: jsonl, json, csv, parquet; events, changes, "
                   "feedback (what the file holds); or a vendor format (otlp, "
                   "openinference, langfuse, ...).")
@click.option("--mapping", type=click.Path(exists=True, dir_okay=False), default=None,
              help="TOML file mapping canonical columns to source field paths.")
@output_options
def load(case: str, files: tuple[str, ...], fmt: str | None, mapping: str | None) -> Any:
    """Load evidence FILES into CASE (created when missing). The same file read the same
    way twice adds nothing; a file that yields no rows makes the command fail."""

    c = _open_case(case)
    try:
        with progress_bar("loading") as update:
            result = require_rows(load_files(c, list(files), format=fmt, mapping=mapping,
                                             progress=update))
    finally:
        c.close()
    return {"files": result.rows(), "rejects": result.meta.get("first_rejects", [])}, \
        lambda: _load_text(result)


def _load_text(result: Result) -> str:
    lines = []
    for r in result.rows():
        lines.append(f"{r['path']}: {r['status']}, format {r['format']} -> {r['target']}, "
                     f"{r['rows_loaded']} loaded, {r['rows_rejected']} rejected "
                     f"(sha256 {r['sha256'][:12]})")
        # the columns filled from a field of another name: the guesses worth a look
        chosen = {k: v for k, v in json.loads(r.get("mapping") or "{}").items()
                  if v.split(" | ")[0] != k}
        if chosen:
            lines.append("  mapped: " + ", ".join(f"{k} <- {v}" for k, v in chosen.items()))
    lines += [f"  rejected: {m}" for m in result.meta.get("first_rejects", [])]
    return "\n".join(lines)


@cli.command()
@click.argument("case", type=click.Path(dir_okay=False))
@click.argument("source", required=False)
@click.option("--mapping", default=None,
              help="TOML file, or col=source,col=source: canonical events columns to the "
                   "source's columns (dotted into structs).")
@click.option("--check", "check_only", is_flag=True,
              help="Only report whether each attached source moved past its pinned snapshot.")
@output_options
def attach(case: str, source: str | None, mapping: str | None, check_only: bool) -> Any:
    """Attach SOURCE to CASE as evidence read in place: a Parquet folder or glob, a Delta
    table folder, an Iceberg metadata.json or iceberg:CATALOG/namespace.table. The
    snapshot is pinned; --check names sources that changed since."""

    if not check_only and not source:
        raise UsageError("give a SOURCE to attach, or --check", hint="forensics attach --help")
    c = _open_case(case)
    try:
        result = check_attached(c) if check_only else attach_fn(c, source or "",
                                                                mapping=mapping)
    finally:
        c.close()
    return result


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
@click.option("--no-redact", is_flag=True,
              help="Keep personal data and secrets in text columns (for internal use only).")
@output_options
def query(case: str | None, name: str | None, params: tuple[str, ...], list_: bool, fmt: str,
          row_cap: int | None, time_limit: float | None, no_redact: bool) -> Any:
    """Run the saved query NAME on CASE (opened read-only), or --list them. A saved query
    is one SELECT that reads the case and no other file. Text columns are redacted (ids
    kept) unless --no-redact."""

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
        result = c.query(name, row_cap=row_cap, time_limit=time_limit, **values)
    finally:
        c.close()
    if not no_redact:
        result.df = redact_frame(result.df, keep=id_columns(result.df))
    return result.to_dict(), lambda: render_result(result, fmt)


def id_columns(df: Any) -> tuple[str, ...]:
    """Columns that hold ids and digests (kept by redaction: they are what an analyst joins
    on, and pseudonymous already).

    >>> import polars as pl
    >>> id_columns(pl.DataFrame({"event_id": ["e1"], "output_text": ["x"], "sha256": ["ab"]}))
    ('event_id', 'sha256')
    """
    return tuple(c for c in df.columns
                 if c == "id" or c.endswith("_id") or c in ("sha256", "trace_id", "span_id"))


def render_result(result: Result, fmt: str) -> str:
    """A saved query's rows as ``--format`` asks; every cell through the one conversion
    (``jsonable`` for JSON and CSV, ``cell_text`` for the tables)."""
    if fmt == "csv":
        return result.to_csv().removesuffix("\n")     # echo ends the last line
    if fmt == "json":
        return dumps(result.rows())
    if fmt == "markdown":
        return result.to_markdown(max_rows=result.df.height)

    table = Table(title=result.title)
    for column in result.df.columns:
        table.add_column(Text(column))
    for row in result.df.head(TABLE_ROWS).iter_rows():
        table.add_row(*[Text(cell_text(v)) for v in row])   # Text: cells are never markup
    console = Console(width=200, record=True)
    with console.capture() as capture:
        console.print(table)
        if result.df.height > TABLE_ROWS:
            console.print(Text(f"{result.df.height - TABLE_ROWS} more rows not shown; "
                               "--format csv or json gives them all"))
        for key in ("note", "warning", "hint"):      # why empty; the row cap reached
            if result.meta.get(key):
                console.print(Text(f"{key}: {result.meta[key]}"))
    return capture.get()


TABLE_ROWS = 200


@cli.command()
@click.argument("case", type=click.Path(exists=True, dir_okay=False))
@pattern_option(help=PATTERN_HELP + "; or a change id (default: any bad signal)")
@click.option("--change", default=None,
              help="A change id: only events its new version served in its exposure window.")
@click.option("--start", default=None, help="Exposure window start (ISO time).")
@click.option("--end", default=None, help="Exposure window end (ISO time).")
@click.option("--by", multiple=True, help="Break down by a cohort column; repeatable.")
@click.option("--approx", is_flag=True, help="Approximate distinct counts (large cases).")
@click.option("--suppress-below", type=int, default=0, show_default=True,
              help="Show cells with fewer users as <k.")
@output_options
def impact(case: str, pattern: str | None, change: str | None,
           start: str | None, end: str | None, by: tuple[str, ...], approx: bool,
           suppress_below: int) -> Any:
    """Affected users, sessions and events in CASE for a pattern or an incident id
    (default: every incident found, else any bad signal)."""
    window = (start, end) if start or end else None
    c = _open_case(case, read_only=True)
    try:
        result = c.impact(pattern, change=change, window=window, by=list(by),
                          approx=approx, suppress_below=suppress_below)
    finally:
        c.close()
    meta = result.meta
    span = meta["window"] or [jsonable(meta["first_exposure"]),
                              jsonable(meta["last_exposure"])]
    data = {**meta, "window": {"start": span[0], "end": span[1]}, "rows": result.rows(),
            "sql": result.sql, "params": result.params}
    return data, result.to_markdown


# -- what went wrong --------------------------------------------------------------------

def _rule_spec(only: tuple[str, ...], skip: tuple[str, ...],
               settings: tuple[str, ...]) -> dict[str, Any]:
    """``--rule`` / ``--skip`` / ``--set rule.option=json`` as the ``rules=`` argument."""

    spec: dict[str, Any] = {name: (not only or name in only) and name not in skip
                            for name in RULES}
    for name in (*only, *skip):
        if name not in RULES:
            raise UsageError(f"unknown detector {name!r}", hint="detectors: " + ", ".join(RULES))
    for item in settings:
        key, sep, raw = item.partition("=")
        rule, dot, option = key.strip().partition(".")
        if not sep or not dot:
            raise UsageError(f"--set {item!r} is not RULE.OPTION=VALUE",
                             hint="e.g. --set wrong_language.min_confidence=0.9")
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        current = spec.get(rule)
        spec[rule] = {**(current if isinstance(current, dict) else {}), option: value}
    return spec


@cli.command()
@click.argument("case", type=click.Path(exists=True, dir_okay=False))
@pattern_option(help="The flagged events (the population): " + PATTERN_HELP)
@click.option("--confirmed", default="confirmed", show_default=True,
              help="The reviewer label that means really bad.")
@click.option("--rejected", default=None, help="The reviewer label that means not bad "
                                               "(default: any other reviewer label).")
@click.option("--strata", default="cluster", show_default=True,
              help="cluster, none, or a column of event_facts.")
@click.option("--level", default=0.95, show_default=True, type=float)
@click.option("--seed", default=0, show_default=True, type=int)
@output_options
def estimate(case: str, pattern: str | None, confirmed: str, rejected: str | None, strata: str,
             level: float, seed: int) -> Any:
    """Truly affected events and users of CASE estimated from a sampled review."""

    return _with_case(case, lambda c: estimate_fn(
        c, _required(pattern, "estimate"), confirmed=confirmed, rejected=rejected, strata=strata,
        level=level, seed=seed))


@cli.command()
@click.argument("case", type=click.Path(exists=True, dir_okay=False))
@click.option("--rule", "only", multiple=True, help="Run only this detector; repeatable.")
@click.option("--skip", multiple=True, help="Do not run this detector; repeatable.")
@click.option("--set", "settings", multiple=True, metavar="RULE.OPTION=VALUE",
              help="Change a detector option (value as JSON); repeatable.")
@click.option("--engine", type=click.Choice(["duckdb", "spark"]), default="duckdb",
              show_default=True,
              help="Where the detectors' SQL runs; spark: SPARK_REMOTE or a local master.")
@output_options
def detect(case: str, only: tuple[str, ...], skip: tuple[str, ...],
           settings: tuple[str, ...], engine: str) -> Any:
    """Run the failure detectors on CASE and write labels (replacing earlier rule labels)."""

    spec = _rule_spec(only, skip, settings)
    c = _open_case(case)
    try:
        with progress_bar("running detectors"):
            result = detect_fn(c, rules=spec, engine=engine)
    finally:
        c.close()
    return {"labels": result.rows(), "meta": jsonable(result.meta), "sql": result.sql,
            "params": jsonable(result.params)}, result.to_markdown


@cli.command()
@click.argument("case", type=click.Path(exists=True, dir_okay=False))
@click.option("--check", "check_id", default=None, help="Re-run this finding and compare.")
@output_options
def findings(case: str, check_id: str | None) -> Any:
    """The findings recorded in CASE, or --check one against its stored result."""

    c = _open_case(case, read_only=True)
    try:
        if check_id:
            result = check(c, check_id)
            return result, lambda: dumps(result, indent=2)
        found = list_findings(c)
        found.df = redact_frame(found.df, keep=id_columns(found.df))
        return found
    finally:
        c.close()


@cli.command()
@click.argument("case", type=click.Path(exists=True, dir_okay=False))
@pattern_option(default="bad", help="Which events: bad (any bad signal), all, a label, "
                "cluster id, failure family, or an SQL condition over event_facts")
@click.option("-k", "k", type=int, default=None, help="Number of clusters (default: chosen).")
@click.option("--method", type=click.Choice(["families", "kmeans"]), default="families",
              show_default=True, help="Group by detector family first, or one k-means.")
@click.option("--seed", type=int, default=0, show_default=True)
@output_options
def cluster(case: str, pattern: str, k: int | None, method: str, seed: int) -> Any:
    """Group the bad outputs of CASE into failure patterns and write clusters."""

    c = _open_case(case)
    try:
        with progress_bar("clustering"):
            result = cluster_fn(c, pattern, k=k, seed=seed, method=method)
    finally:
        c.close()
    keep = ("cluster_id", "title", "size", "share", "category", "top_labels", "first_seen",
            "last_seen", "terms", "examples", "top_versions", "status")
    return {"clusters": [{key: r[key] for key in keep} for r in result.rows()],
            "run_id": result.meta["run_id"], "meta": jsonable(result.meta),
            "sql": result.sql, "params": result.params}, result.to_markdown


@cli.command("import-labels")
@click.argument("case", type=click.Path(exists=True, dir_okay=False))
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--event-id", "event_id", default="event_id", show_default=True)
@click.option("--label", default="label", show_default=True, help="Column with the verdict.")
@click.option("--source", default="reviewer", show_default=True)
@output_options
def import_labels(case: str, file: str, event_id: str, label: str, source: str) -> Any:
    """Import reviewer verdicts from FILE (CSV / JSONL / Parquet) into the labels of CASE."""

    c = _open_case(case)
    try:
        return import_fn(c, file, event_id=event_id, label=label, source=source)
    finally:
        c.close()


@cli.command()
@click.argument("case", type=click.Path(exists=True, dir_okay=False))
@click.option("-o", "--outdir", required=True, type=click.Path(file_okay=False),
              help="Directory for the post-mortem, charts, drafts and eval pack.")
@pattern_option(help=PATTERN_HELP + " (default: chosen from the labels)")
@click.option("--change", default=None, help="The root-cause change (default: top suspect).")
@click.option("--no-redact", is_flag=True,
              help="Keep raw user ids and unredacted quotes (for internal use only).")
@click.option("--min-cell", default=5, show_default=True, type=int,
              help="Show cohort cells of fewer users as <k (0: off).")
@click.option("--no-evals", is_flag=True, help="Do not write the eval pack.")
@click.option("--evals-per-cluster", default=5, show_default=True, type=int)
@click.option("--force", is_flag=True,
              help="Overwrite notification drafts a person edited (default: keep them and "
                   "write the new draft beside, as *.new.md).")
@output_options
def report(case: str, outdir: str, pattern: str | None, change: str | None, no_redact: bool,
           min_cell: int, no_evals: bool, evals_per_cluster: int, force: bool) -> Any:
    """Write the post-mortem of CASE to OUTDIR (Markdown, HTML, charts, drafts, eval pack).

    Findings are recorded in CASE, so it is opened for writing."""

    c = _open_case(case)
    try:
        with progress_bar("writing the post-mortem"):
            result = postmortem(c, outdir, pattern=pattern, change=change,
                                redact=not no_redact, min_cell=min_cell, evals=not no_evals,
                                evals_per_cluster=evals_per_cluster, force=force)
    finally:
        c.close()
    data = {**result.meta, "files": result.rows()}
    return data, lambda: _report_text(result)


@cli.command()
@click.argument("case", type=click.Path(exists=True, dir_okay=False))
@click.option("-o", "--outdir", required=True, type=click.Path(file_okay=False))
@click.option("--format", "fmt", type=click.Choice(["jsonl", "promptfoo", "inspect", "all"]),
              default="all", show_default=True)
@pattern_option(help=PATTERN_HELP + " (default: chosen from the labels)")
@click.option("--change", default=None, help="The root-cause change (default: top suspect).")
@click.option("--per-cluster", default=5, show_default=True, type=int)
@click.option("--no-redact", is_flag=True, help="Keep quoted text unredacted.")
@output_options
def evals(case: str, outdir: str, fmt: str, pattern: str | None, change: str | None,
          per_cluster: int, no_redact: bool) -> Any:
    """Write the regression eval pack of CASE to OUTDIR (JSONL, promptfoo, Inspect AI)."""

    return _with_case(case, lambda c: export_evals(
        c, outdir, fmt, pattern=pattern, change=change, per_cluster=per_cluster,
        redact=not no_redact))


def _report_text(result: Result) -> str:
    m = result.meta
    lines = [f"Post-mortem written to {m['outdir']}: {m['users']} users, {m['sessions']} "
             f"sessions, {m['events']} events affected; root cause {m['root_cause']}."]
    lines += [f"  {r['path']} ({r['bytes']:,} bytes)" for r in result.rows()]
    lines += [f"Kept {d['kept']}: it was edited since it was written; the new draft is "
              f"{d['new']} (--force overwrites)." for d in m.get("drafts_kept") or []]
    return "\n".join(lines)


# -- which change caused it -------------------------------------------------------------

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

    if as_sql:
        by = None
    return _with_case(case, lambda c: compare_fn(
        c, a, b, by=by, at=at, window=window, where=where, metrics=list(metrics) or None,
        segments=list(segments) or SEGMENTS, concurrent=False if no_concurrent else None))


@cli.command()
@click.argument("case", type=click.Path(exists=True, dir_okay=False))
@pattern_option(help=PATTERN_HELP + " (default: any bad signal)")
@click.option("--bucket", default="1h", show_default=True)
@click.option("--window", default="48h", show_default=True,
              help="Traffic either side of each change used as evidence.")
@output_options
def suspects(case: str, pattern: str | None, bucket: str, window: str) -> Any:
    """Ranked candidate root causes in CASE for a pattern or an incident id (default:
    every incident found, else any bad signal)."""
    result = _with_case(case, lambda c: c.suspects(pattern, bucket=bucket, window=window))
    keep = (["incident_id"] if "incident_id" in result.df.columns else []) + [
            "rank", "change_id", "kind", "feature", "column", "from_version", "to_version",
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

    return _with_case(case, lambda c: rd_fn(c, before, after, at=at, feature=feature, k=k))


# -- playbook analytics -----------------------------------------------------------------

def _save_plot(result: Result, plot_path: str | None) -> None:
    if plot_path:
        result.plot().figure.savefig(plot_path, dpi=120, bbox_inches="tight")


@cli.command()
@click.argument("case", type=click.Path(dir_okay=False))
@click.argument("name")
@click.option("--at", "ts", default=None, help="When (ISO time; default now).")
@click.option("--note", default="", help="What happened.")
@output_options
def mark(case: str, name: str, ts: str | None, note: str) -> Any:
    """Record that the incident in CASE reached milestone NAME (detected, contained, ...)."""

    c = _open_case(case)
    try:
        return mark_fn(c, name, ts, note)
    finally:
        c.close()


@cli.command()
@click.argument("case", type=click.Path(exists=True, dir_okay=False))
@output_options
def milestones(case: str) -> Any:
    """The milestones recorded in CASE."""

    return _with_case(case, milestones_fn)


@cli.command()
@click.argument("case", type=click.Path(exists=True, dir_okay=False))
@pattern_option(help=PATTERN_HELP + " (default: any bad signal)")
@click.option("--bucket", default="1h", show_default=True)
@click.option("--category", default=None,
              help="The seed category, when the signals do not say it (e.g. 'data leak').")
@click.option("--rules", type=click.Path(exists=True, dir_okay=False), default=None,
              help="A TOML or YAML severity rule table.")
@output_options
def severity(case: str, pattern: str | None, bucket: str, category: str | None,
             rules: str | None) -> Any:
    """Severity of the incident in CASE on the playbook matrix, with the deciding rule."""

    return _with_case(case, lambda c: severity_fn(
        c, pattern, bucket=bucket,
        category=category, rules=rules))


@cli.command("detection-gap")
@click.argument("case", type=click.Path(exists=True, dir_okay=False))
@pattern_option(help=PATTERN_HELP + " (default: any bad signal)")
@click.option("--bucket", default="1h", show_default=True)
@click.option("--onset", default=None, help="Use this onset (ISO time) instead.")
@click.option("--change", default=None, help="Hold this change id responsible.")
@click.option("--max-false-alarms", default=0, show_default=True, type=int)
@click.option("--save", default=None, type=click.Path(),
              help="Write the proposed alert as a saved query (folder or .sql file).")
@click.option("--plot", "plot_path", default=None, type=click.Path(dir_okay=False))
@output_options
def detection_gap(case: str, pattern: str | None, bucket: str, onset: str | None,
                  change: str | None,
                  max_false_alarms: int, save: str | None, plot_path: str | None) -> Any:
    """When the pattern in CASE started, its first signals, and the alert that would have
    caught it soonest (backtested, with its false alarms)."""

    result = _with_case(case, lambda c: gap_fn(
        c, pattern, bucket=bucket, onset=onset,
        suspect=change or True, max_false_alarms=max_false_alarms, save=save))
    _save_plot(result, plot_path)
    return result


@cli.command()
@click.argument("case", type=click.Path(exists=True, dir_okay=False))
@pattern_option(help=PATTERN_HELP + " (default: any bad signal)")
@click.option("--bucket", default="1h", show_default=True)
@click.option("--change", default=None, help="The change to roll back (default: top suspect).")
@click.option("--at", "at", multiple=True, help="Also evaluate at this time; repeatable.")
@click.option("--fallback", is_flag=True, help="Switch the feature to a fallback instead.")
@click.option("--plot", "plot_path", default=None, type=click.Path(dir_okay=False))
@output_options
def containment(case: str, pattern: str | None, bucket: str, change: str | None,
                at: tuple[str, ...],
                fallback: bool, plot_path: str | None) -> Any:
    """What rolling back the suspect change of CASE at time T would have spared."""

    result = _with_case(case, lambda c: containment_fn(
        c, pattern, bucket=bucket, change=change,
        at=list(at), mode="fallback" if fallback else "rollback"))
    _save_plot(result, plot_path)
    return result


@cli.command()
@click.argument("case", type=click.Path(exists=True, dir_okay=False))
@pattern_option(help=PATTERN_HELP + " (default: any bad signal)")
@click.option("--bucket", default="1h", show_default=True)
@click.option("--plot", "plot_path", default=None, type=click.Path(dir_okay=False))
@output_options
def incident(case: str, pattern: str | None, bucket: str, plot_path: str | None) -> Any:
    """The incident timeline of CASE, with the times to detect, contain and resolve."""

    result = _with_case(case, lambda c: incident_timeline(
        c, pattern, bucket=bucket))
    _save_plot(result, plot_path)
    return result


@cli.command()
@click.argument("case", type=click.Path(exists=True, dir_okay=False))
@pattern_option(help=PATTERN_HELP + " (default: any bad signal)")
@click.option("--bucket", default="1h", show_default=True)
@click.option("--rules", type=click.Path(exists=True, dir_okay=False), default=None,
              help="A TOML or YAML severity rule table.")
@output_options
def playbook(case: str, pattern: str | None, bucket: str, rules: str | None) -> Any:
    """The playbook's answers for CASE: severity, time to detect, the alert that would have
    caught it, and what a faster rollback would have spared (default: for every incident
    found; or one pattern or incident id)."""
    return _with_case(case, lambda c: c.playbook(pattern, bucket=bucket, rules=rules))


@cli.command()
@click.argument("case", type=click.Path(exists=True, dir_okay=False))
@click.option("--bucket", default="1h", show_default=True)
@click.option("--min-events", default=5, show_default=True, type=int,
              help="Bad requests a (family, feature) series needs to be judged.")
@output_options
def incidents(case: str, bucket: str, min_events: int) -> Any:
    """Every distinct incident in CASE (failure family x feature(s) x onset) with its top
    suspects, affected users and severity, most severe first; then the baselines
    (detectors firing at a steady rate through the history)."""
    result = _with_case(case, lambda c: c.incidents(bucket=bucket, min_events=min_events))
    data = {"incidents": [r for r in result.rows() if r["kind"] == "incident"],
            "baselines": [r for r in result.rows() if r["kind"] == "baseline"],
            "meta": result.meta, "sql": result.sql, "params": result.params}
    return data, result.to_markdown


@cli.command()
@click.argument("outdir", type=click.Path(file_okay=False))
@click.option("--scenario", default=None,
              type=click.Choice(list(SCENARIOS)),
              help="The planted incident.")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--events", "n_events", default=200_000, show_default=True, type=int,
              help="Requests to generate (agent tool calls add child spans).")
@click.option("--days", default=21, show_default=True, type=int)
@click.option("--format", "fmt", default="jsonl", show_default=True,
              type=click.Choice(["jsonl", "otlp", "openinference", "langfuse"]),
              help="Shape of the events file: canonical JSON Lines, OTLP/JSON (GenAI "
                   "conventions), Phoenix / OpenInference span JSON, or Langfuse exports.")
@click.option("--gzip", "compress", is_flag=True,
              help="Write events and feedback as .jsonl.gz (reproducible bytes).")
@click.option("--mix", default=None, type=click.Choice(list(MIXES)),
              help="Two or three concurrent incidents in different features (ground truth "
                   "in manifest.json).")
@click.option("--texts", type=click.Path(exists=True), default=None,
              help="Labelled real outputs to draw prompts and outputs from: a corpus folder "
                   "(texts/<source>/...) or JSONL/CSV with input, output, category (implies "
                   "a --mix, refusal+leak by default).")
@click.option("--sources", default=None,
              help="Only these sources of a --texts corpus folder (comma-separated).")
@output_options
def drill(outdir: str, scenario: str | None, seed: int, n_events: int, days: int, fmt: str,
          compress: bool, mix: str | None, texts: str | None, sources: str | None) -> Any:
    """Generate a practice incident in OUTDIR, with its answer key; or (--mix, --texts)
    several concurrent incidents, with their manifest."""

    if scenario and (mix or texts):
        raise UsageError("--scenario plants one incident; --mix and --texts make a "
                         "multi-incident drill", hint="give one of them")
    if mix or texts:
        manifest = generate_mix(outdir, mix or "refusal+leak", seed=seed, events=n_events,
                                days=days, texts=texts,
                                sources=tuple(sources.split(",")) if sources else None)
        return manifest, lambda: json.dumps(jsonable(manifest), indent=2)
    if scenario is None:
        raise UsageError("name a --scenario (one incident) or a --mix (several)",
                         hint=f"scenarios: {', '.join(SCENARIOS)}; mixes: {', '.join(MIXES)}")

    with progress_bar(f"drill {scenario}", total=n_events) as update:
        summary_ = generate(outdir, scenario, seed=seed, events=n_events, days=days,
                            progress=lambda done, total: update(done, total),
                            format=fmt, compress=compress)
    return summary_, lambda: dumps(summary_, indent=2)


@cli.command()
@click.option("--outdir", default="forensics-demo", show_default=True,
              type=click.Path(file_okay=False), help="Where the drill, case and report go.")
@click.option("--events", "n_events", default=60_000, show_default=True, type=int)
@click.option("--seed", default=7, show_default=True, type=int)
@output_options
def demo(outdir: str, n_events: int, seed: int) -> Any:
    """Investigate a generated incident end to end and say what was found."""

    with progress_bar("demo") as update:
        report = run_demo(Path(outdir), events=n_events, seed=seed, progress=update)
    return report.to_dict(), report.to_text


def main() -> None:
    cli(prog_name="forensics")


if __name__ == "__main__":
    main()
