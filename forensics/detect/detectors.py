"""What went wrong (1): run the failure detectors and write ``labels``.

Each detector (a :class:`forensics.detect.rules.Rule`) is one set-based SQL query over the case;
its options are bound parameters. A run replaces the labels the same rules wrote before
(``source = 'rule'``) and keeps every other label (reviewer verdicts, imports). The label
vocabulary, with each label's playbook category and whether it means a bad output, is the
view ``label_vocabulary``; ``bad_events`` is the view of events with any bad signal.

>>> import forensics
>>> scratch = forensics.open("scratch.duckdb")
>>> _ = scratch.load(SAMPLE / "events.jsonl.gz")
>>> "refusal" in scratch.detect().df["label"].to_list()      # every rule
True
>>> _ = scratch.detect(rules=["refusal", "private_data"])   # only these rules
>>> _ = scratch.detect(rules={"wrong_language": {"min_confidence": 0.9}, "ungrounded": False})
>>> scratch.close()
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import polars as pl

from forensics.core.db import frame, quote_ident, scalar
from forensics.core.engine import SparkEngine, resolve_engine
from forensics.core.errors import UsageError
from forensics.core.handle import CaseHandle, require_writable
from forensics.core.result import Result
from forensics.core.runs import new_run, quiet
from forensics.core.stats import wilson_arrays
from forensics.detect.rules import MACROS, RULES, Params, Rule

RuleSpec = Sequence[str] | Mapping[str, bool | Mapping[str, Any]] | None
Engine = str | SparkEngine | None
# Rules whose SQL gives the same labels on Spark as on DuckDB once translated (checked by
# the Spark tests). The others use DuckDB constructs with no faithful Spark form yet
# (length and slices of lists, which need types to tell from strings; DuckDB's JSON type
# and json_exists; the order of list aggregates; the language identifier's preparation)
# and run on the case's DuckDB in the same detect run (the result's meta says which).
SPARK_RULES = frozenset({"refusal", "truncated", "empty_output", "error", "new_tool_action",
                         "moderation_flag"})


class DetectResult(Result):
    """One row per label: events labelled, the events the rule could judge (its
    denominator), the rate with a Wilson interval, first and last seen, an example."""

    kind = "detect"

    def plot(self, ax: Any = None) -> Any:
        import matplotlib.pyplot as plt

        if ax is None:
            _, ax = plt.subplots(figsize=(8, 0.4 * max(self.df.height, 3) + 1))
        rows = self.df.filter(pl.col("events") > 0).sort("events")
        ax.barh([str(v) for v in rows["label"].to_list()], rows["events"].to_list(),
                color="#c0392b")
        ax.set_xlabel("events labelled")
        ax.set_title(self.title)
        return ax


def resolve(rules: RuleSpec = None) -> list[tuple[Rule, dict[str, Any]]]:
    """The rules to run with their options: all (``None``), only the named ones (a
    list), or all with overrides (a dict: ``False`` turns a rule off, a dict changes its
    options)."""
    if rules is None:
        return [(r, dict(r.options)) for r in RULES.values()]
    if isinstance(rules, str):
        rules = [rules]
    if not isinstance(rules, Mapping):
        _check_names(rules)
        return [(RULES[n], dict(RULES[n].options)) for n in dict.fromkeys(rules)]
    _check_names(rules)
    chosen = []
    for name, rule in RULES.items():
        spec = rules.get(name, True)
        if spec is False:
            continue
        options = dict(rule.options)
        if isinstance(spec, Mapping):
            unknown = set(spec) - set(options)
            if unknown:
                raise UsageError(f"rule {name!r} has no option {sorted(unknown)}",
                                 hint=f"its options: {', '.join(sorted(options))}")
            options.update(spec)
        chosen.append((rule, options))
    return chosen


def _check_names(names: Sequence[str] | Mapping[str, Any]) -> None:
    unknown = [n for n in names if n not in RULES]
    if unknown:
        raise UsageError(f"unknown detector {unknown[0]!r}",
                         hint="detectors: " + ", ".join(RULES))


def detect(case: CaseHandle, rules: RuleSpec = None, engine: Engine = None) -> DetectResult:
    """Run the detectors, replace the labels they wrote before, and summarise per label.
    ``engine="spark"`` runs the rules in :data:`SPARK_RULES` on Spark (the session from
    the environment, see :mod:`forensics.core.engine`); their labels come back into the
    case.

    >>> import forensics
    >>> scratch = forensics.open("scratch.duckdb")
    >>> _ = scratch.load(SAMPLE / "events.jsonl.gz")
    >>> sorted(detect(scratch, rules=["refusal", "truncated"]).df["label"].unique())
    ['over_refusal', 'refusal', 'truncated']
    >>> scratch.close()
    """
    require_writable(case, "detect")
    chosen = resolve(rules)
    spark = resolve_engine(engine)
    try:
        with quiet(case):
            return _detect(case, chosen, spark)
    finally:
        if spark is not None and spark is not engine:
            spark.close()


def _detect(case: CaseHandle, chosen: list[tuple[Rule, dict[str, Any]]],
            spark: SparkEngine | None = None) -> DetectResult:
    for macro in MACROS:
        case.con.execute(macro)
    prepared: dict[str, Any] = {}
    timings: dict[str, float] = {}
    if spark is not None:
        start = time.perf_counter()
        spark.attach_case(case.con)
        timings["(tables to spark)"] = round(time.perf_counter() - start, 3)
    engines: dict[str, str] = {}
    for rule, options in chosen:
        if rule.prepare is not None:
            start = time.perf_counter()
            prepared[rule.name] = rule.prepare(case.con, options)
            timings[rule.name + " (prepare)"] = round(time.perf_counter() - start, 3)
    params = {r.name: o for r, o in chosen}
    case.con.execute("BEGIN")
    try:
        run_id = new_run(case, "detect", {"rules": params})
        for rule, options in chosen:
            start = time.perf_counter()
            on_spark = spark is not None and rule.name in SPARK_RULES
            _apply(case, rule, options, run_id, spark if on_spark else None)
            timings[rule.name] = round(time.perf_counter() - start, 3)
            engines[rule.name] = "spark" if on_spark else "duckdb"
        case.con.execute("COMMIT")
    except BaseException:
        case.con.execute("ROLLBACK")
        raise
    return _summary(case, chosen, run_id, {"timings_s": timings, "engine": engines,
                                           **_flatten(prepared)})


def _flatten(prepared: dict[str, dict[str, Any]]) -> dict[str, Any]:
    return {f"{rule}.{k}": v for rule, info in prepared.items() for k, v in info.items()}


def _apply(case: CaseHandle, rule: Rule, options: dict[str, Any], run_id: str,
           spark: SparkEngine | None = None) -> None:
    p = Params(rule.name)
    sql = rule.build(options, p)
    case.con.execute("DELETE FROM labels WHERE source = 'rule' AND list_contains($labels, label)",
                     {"labels": list(rule.labels)})
    if spark is not None:       # the rows come back as Arrow and are written here
        case.con.register("_spark_labels", spark.arrow(sql, p.values))
        try:
            case.con.execute("INSERT INTO labels SELECT CAST(q.event_id AS VARCHAR), q.label, "
                             "'rule', CAST(q.confidence AS DOUBLE), q.detail, $run_id "
                             "FROM _spark_labels AS q(event_id, label, confidence, detail)",
                             {"run_id": run_id})
        finally:
            case.con.unregister("_spark_labels")
        return
    case.con.execute(f"INSERT INTO labels SELECT event_id, label, 'rule', confidence, detail, "
                     f"$run_id FROM ({sql}) AS q(event_id, label, confidence, detail)",
                     {**p.values, "run_id": run_id})


def summary_sql(chosen: list[tuple[Rule, dict[str, Any]]]) -> tuple[str, dict[str, Any]]:
    """SQL (and parameters) of the per-label summary of a detect run."""
    p = Params("den")
    dens = ", ".join(f"count(*) FILTER (WHERE {rule.eligible(o, p)}) AS {quote_ident(rule.name)}"
                     for rule, o in chosen)
    pairs = ", ".join(f"('{label}', '{rule.name}')" for rule, _ in chosen for label in rule.labels)
    sql = f"""
WITH den AS (UNPIVOT (SELECT {dens} FROM events e) ON COLUMNS(*) INTO NAME rule VALUE checked),
rule_labels AS (SELECT * FROM (VALUES {pairs}) AS t(label, rule)),
hits AS (
    SELECT l.label, count(DISTINCT l.event_id) AS events, round(avg(l.confidence), 3)
               AS mean_confidence, min(e.ts) AS first_seen, max(e.ts) AS last_seen,
           min(l.event_id) AS example_event
    FROM labels l JOIN events e USING (event_id)
    WHERE l.run_id = $run_id GROUP BY l.label
)
SELECT r.label, coalesce(v.category, '') AS category, coalesce(v.bad, true) AS bad, r.rule,
       coalesce(h.events, 0) AS events, d.checked, h.mean_confidence, h.first_seen,
       h.last_seen, h.example_event
FROM rule_labels r JOIN den d USING (rule)
LEFT JOIN hits h USING (label)
LEFT JOIN label_vocabulary v USING (label)
ORDER BY bad DESC, events DESC, label"""
    return sql, p.values


def _summary(case: CaseHandle, chosen: list[tuple[Rule, dict[str, Any]]], run_id: str,
             meta: dict[str, Any]) -> DetectResult:
    sql, params = summary_sql(chosen)
    params = {**params, "run_id": run_id}
    df = frame(case.con, sql, params)
    rate, low, high = wilson_arrays(df["events"].to_numpy(), df["checked"].to_numpy())
    df = df.with_columns(pl.Series("rate", rate).round(5), pl.Series("rate_low", low).round(5),
                         pl.Series("rate_high", high).round(5))
    df = df.select("label", "category", "events", "checked", "rate", "rate_low", "rate_high",
                   "mean_confidence", "first_seen", "last_seen", "example_event", "rule", "bad")
    bad_events = scalar(case.con, "SELECT count(*) FROM bad_events")
    total = scalar(case.con, "SELECT count(*) FROM events")
    meta = {"run_id": run_id, "bad_events": bad_events, "events": total,
            "rate_interval": "Wilson 95%; denominator = events the rule could judge", **meta}
    return DetectResult(df, sql=sql, params=params, title="detectors", meta=meta)


# ---------------------------------------------------------------------------------------
# reviewer verdicts

def import_labels(case: CaseHandle, path: str | Path, *, event_id: str = "event_id",
                  label: str = "label", confidence: str | None = "confidence",
                  detail: str | None = "comment", source: str = "reviewer") -> Result:
    """Import verdicts from a CSV / JSON Lines / Parquet file into ``labels``: one row per
    (event, label), e.g. reviewers' ``hallucination`` / ``ok`` / ``confirmed``.

    >>> from pathlib import Path
    >>> _ = Path("review.csv").write_text("event_id,label\\nnope,confirmed\\n")
    >>> import_labels(case, "review.csv").rows()
    [{'label': 'confirmed', 'events': 1, 'unknown_events': 1}]
    """
    require_writable(case, "import-labels")
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"no file {path}", hint="give a CSV, JSON Lines or Parquet file")
    reader = {".csv": "read_csv", ".parquet": "read_parquet"}.get(path.suffix.lower(),
                                                                   "read_json_auto")
    cols = frame(case.con, f"DESCRIBE SELECT * FROM {reader}($path)", {"path": str(path)})
    have = set(cols["column_name"].to_list())
    for needed in (event_id, label):
        if needed not in have:
            raise UsageError(f"{path.name} has no column {needed!r}",
                             hint=f"its columns: {', '.join(sorted(have))}")
    conf = f"TRY_CAST(src.{quote_ident(confidence)} AS DOUBLE)" \
        if confidence is not None and confidence in have else "1.0"
    det = f"CAST(src.{quote_ident(detail)} AS VARCHAR)" \
        if detail is not None and detail in have else "NULL"
    eid, lab = quote_ident(event_id), quote_ident(label)
    case.con.execute("BEGIN")
    try:
        run_id = new_run(case, "import_labels", {"path": str(path), "source": source})
        sql = (f"INSERT INTO labels SELECT CAST(src.{eid} AS VARCHAR), "
               f"lower(trim(CAST(src.{lab} AS VARCHAR))), $source, {conf}, {det}, $run_id "
               f"FROM {reader}($path) src WHERE src.{lab} IS NOT NULL")
        case.con.execute(sql, {"path": str(path), "source": source, "run_id": run_id})
        case.con.execute("COMMIT")
    except BaseException:
        case.con.execute("ROLLBACK")
        raise
    summary = ("SELECT label, count(*) AS events, count(*) FILTER (WHERE event_id NOT IN "
               "(SELECT event_id FROM events)) AS unknown_events FROM labels "
               "WHERE run_id = $run_id GROUP BY label ORDER BY events DESC")
    return Result(frame(case.con, summary, {"run_id": run_id}), sql=summary,
                  params={"run_id": run_id}, title=f"labels imported from {path.name}",
                  meta={"run_id": run_id, "source": source})


def vocabulary(case: CaseHandle) -> Result:
    """The label vocabulary: label, playbook category, whether it means a bad output."""
    sql = ("SELECT v.label, v.category, c.title AS category_title, v.bad, v.written_by, "
           "v.meaning FROM label_vocabulary v LEFT JOIN failure_categories c USING (category) "
           "ORDER BY v.bad DESC, v.category, v.label")
    return Result(frame(case.con, sql), sql=sql, title="label vocabulary")
