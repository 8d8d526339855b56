"""LangSmith runs and feedback.

Runs as the SDK sends them (``{post: [...], patch: [...]}``: a run's update is merged
into its creation by id), as the API lists them (JSON array, ``{runs: [...]}``, JSON Lines)
and as bulk exports write them (Parquet). ``run_type`` is the kind, ``dotted_order`` and
``parent_run_id`` keep the tree, times may be epoch milliseconds or ISO text;
``inputs`` / ``outputs`` are read like any request / response payload (chat messages,
LangChain serialised messages, ``generations``, ``usage_metadata``) and kept in
``attributes`` as ``langsmith.inputs`` / ``langsmith.outputs`` unless the canonical columns
hold them whole; ``extra.metadata`` keys (``ls_provider``, ``ls_model_name``,
``thread_id``, ...) become ``langsmith.metadata.*`` attributes. Feedback (``key``,
``score``, ``value``, ``comment``, ``run_id``) becomes ``feedback``.

>>> run = {"id": "00000000-0000-0000-0000-000000000002", "run_type": "llm",
...        "trace_id": "00000000-0000-0000-0000-000000000002", "name": "ChatAnthropic",
...        "start_time": "2026-03-02T14:00:00.5", "end_time": "2026-03-02T14:00:01.5",
...        "inputs": {"question": "What is Lumen?"}, "outputs": {"output": "A notes app."},
...        "prompt_tokens": 21, "completion_tokens": 4,
...        "extra": {"metadata": {"ls_model_name": "claude-3-5-sonnet"}}}
>>> _ = Path("runs.jsonl").write_text(json.dumps(run))
>>> with forensics.open("new.duckdb") as new:
...     fmt = new.load("runs.jsonl").df["format"][0]
...     row = new.sql("SELECT kind, model, output_text, input_tokens FROM events").df.row(0)
>>> fmt, row
('langsmith', ('llm', 'claude-3-5-sonnet', 'A notes app.', 21))
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb

from forensics.ingest.vendors import Head, register
from forensics.ingest.vendors.common import (
    RAW,
    drop_records,
    ensure_rejects,
    install,
    negative_sql,
    records,
    sniff_any,
)
from forensics.ingest.vendors.semconv import stage_spans

RUN_FIELDS = ("id", "trace_id", "parent_run_id", "name", "start_time", "end_time", "run_type",
              "inputs", "outputs", "error", "prompt_tokens", "completion_tokens", "total_cost",
              "events")


def _is_run(d: dict[str, Any]) -> bool:
    return "run_type" in d and ("inputs" in d or "dotted_order" in d or "trace_id" in d)


def _is_langsmith(d: dict[str, Any]) -> bool:
    if isinstance(d.get("post"), list) or isinstance(d.get("patch"), list):
        return any(isinstance(r, dict) and ("dotted_order" in r or "run_type" in r)
                   for r in [*(d.get("post") or []), *(d.get("patch") or [])][:5])
    if isinstance(d.get("runs"), list):
        return any(isinstance(r, dict) and _is_run(r) for r in d["runs"][:5])
    return _is_run(d) or ("run_id" in d and "key" in d and ("score" in d or "value" in d))


class LangSmithReader:
    name = "langsmith"
    description = "LangSmith runs (ingest batches, API exports, bulk Parquet) and feedback"

    def sniff(self, head: Head) -> bool:
        if head.is_parquet:
            return "run_type" in head.columns and "dotted_order" in head.columns
        return sniff_any(head, _is_langsmith)

    def stage(self, con: duckdb.DuckDBPyConnection, path: Path) -> None:
        stage_langsmith(con, path)


def stage_langsmith(con: duckdb.DuckDBPyConnection, path: Path) -> None:
    install(con)
    records(con, path)
    ensure_rejects(con)
    con.execute("""
        CREATE OR REPLACE TEMP TABLE _ls_items AS
        WITH rec AS (
            SELECT _ord, locator, j,
                   coalesce(json_type(j, '$.post') = 'ARRAY'
                            OR json_type(j, '$.patch') = 'ARRAY', false)
                       AS batch
            FROM _stage_records),
        items AS (
            SELECT _ord, locator, 'post' AS part, generate_subscripts(
                       json_extract(j, '$.post[*]'), 1) - 1 AS i,
                   unnest(json_extract(j, '$.post[*]')) AS o
            FROM rec WHERE batch
            UNION ALL
            SELECT _ord, locator, 'patch',
                   generate_subscripts(json_extract(j, '$.patch[*]'), 1) - 1,
                   unnest(json_extract(j, '$.patch[*]'))
            FROM rec WHERE batch
            UNION ALL
            SELECT _ord, locator, 'runs', generate_subscripts(json_extract(j, '$.runs[*]'), 1) - 1,
                   unnest(json_extract(j, '$.runs[*]'))
            FROM rec WHERE NOT batch AND json_type(j, '$.runs') = 'ARRAY'
            UNION ALL
            SELECT _ord, locator, NULL, 0, j FROM rec
            WHERE NOT batch AND coalesce(json_type(j, '$.runs'), '') <> 'ARRAY')
        SELECT _ord * 1048576 + CASE part WHEN 'patch' THEN 524288 ELSE 0 END + i AS _ord,
               locator || CASE WHEN part IS NULL THEN '' ELSE ': ' || part || '[' || i || ']'
                          END AS locator,
               part, o,
               CASE WHEN json_type(o) <> 'OBJECT' THEN NULL
                    WHEN json_exists(o, '$.run_id') AND json_exists(o, '$.key')
                         AND NOT json_exists(o, '$.run_type') THEN 'feedback'
                    WHEN json_exists(o, '$.id') OR json_exists(o, '$.dotted_order')
                         THEN 'run' END AS kind
        FROM items
    """)
    con.execute(f"""
        INSERT INTO _stage_rejects
        SELECT locator, 'not a LangSmith run or feedback', left(o::VARCHAR, {RAW})
        FROM _ls_items WHERE kind IS NULL ORDER BY _ord
    """)
    _runs(con)
    stage_spans(con)
    _feedback(con)
    con.execute("DROP VIEW _spans")
    con.execute("DROP TABLE _ls_runs")
    con.execute("DROP TABLE _ls_items")
    drop_records(con)


def _runs(con: duckdb.DuckDBPyConnection) -> None:
    """A run's patch merged into its post; then ``_spans``."""
    key = ("coalesce(o ->> 'id', regexp_extract(o ->> 'dotted_order', "
           "'([0-9a-fA-F-]{36})$', 1))")
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE _ls_runs AS
        WITH runs AS (SELECT *, {key} AS run_key FROM _ls_items WHERE kind = 'run')
        SELECT coalesce(p._ord, u._ord) AS _ord,
               CASE WHEN p._ord IS NOT NULL AND u._ord IS NOT NULL
                    THEN p.locator || ' + ' || regexp_extract(u.locator, 'patch\\[[0-9]+\\]')
                    ELSE coalesce(p.locator, u.locator) END AS locator,
               json_merge_patch(CASE WHEN p.o IS NULL THEN u.o WHEN u.o IS NULL THEN p.o
                                     ELSE json_merge_patch(p.o, u.o) END,
                                json_object('id', coalesce(p.run_key, u.run_key))) AS o
        FROM (SELECT * FROM runs WHERE coalesce(part, '') <> 'patch') p
        FULL JOIN (SELECT * FROM runs WHERE part = 'patch'
                   QUALIFY row_number() OVER (PARTITION BY run_key ORDER BY _ord DESC) = 1) u
            ON u.run_key = p.run_key
    """)
    drop = "{" + ", ".join(f'"{f}": null' for f in RUN_FIELDS) + "}"
    con.execute(f"""
        CREATE OR REPLACE TEMP VIEW _spans AS
        SELECT _ord, locator, _fx_id(o ->> 'trace_id') AS trace_id, _fx_id(o ->> 'id') AS span_id,
               _fx_id(o ->> 'parent_run_id') AS parent_id, o ->> 'name' AS name,
               _fx_str(json_extract(o, '$.start_time')) AS _ts_raw,
               _fx_ts(_fx_str(json_extract(o, '$.start_time'))) AS ts,
               _fx_ts(_fx_str(json_extract(o, '$.end_time'))) AS end_ts,
               o ->> 'run_type' AS kind_hint,
               CASE WHEN nullif(o ->> 'error', '') IS NOT NULL OR (o ->> 'status') = 'error'
                    THEN 'error' ELSE 'ok' END AS status_code,
               o ->> 'error' AS status_message,
               list_concat(
                   list_transform(_fx_kvobj(json_extract(o, '$.extra.metadata')),
                                  lambda e: {{'k': 'langsmith.metadata.' || e.k, 'v': e.v}}),
                   _fx_kvs([
                       {{'k': 'langsmith.inputs', 'v': json_extract(o, '$.inputs')}},
                       {{'k': 'langsmith.outputs', 'v': json_extract(o, '$.outputs')}},
                       {{'k': 'gen_ai.usage.input_tokens',
                         'v': json_extract(o, '$.prompt_tokens')}},
                       {{'k': 'gen_ai.usage.output_tokens',
                         'v': json_extract(o, '$.completion_tokens')}},
                       {{'k': 'gen_ai.usage.cost', 'v': json_extract(o, '$.total_cost')}}]))
                   AS a,
               []::STRUCT(k VARCHAR, v JSON)[] AS r,
               coalesce(json_extract(o, '$.events[*]'), []) AS ev,
               json_merge_patch(json_merge_patch(o, '{drop}'),
                                '{{"extra": {{"metadata": null}}}}') AS extra,
               NULL::VARCHAR AS _reject, o::VARCHAR AS _raw
        FROM _ls_runs
    """)


def _feedback(con: duckdb.DuckDBPyConnection) -> None:
    drop = ('{"run_id": null, "trace_id": null, "key": null, "score": null, "value": null, '
            '"comment": null, "created_at": null}')
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE _stage_feedback AS
        WITH f AS (
            SELECT _ord, locator, o, _fx_id(o ->> 'run_id') AS event_id,
                   _fx_id(o ->> 'trace_id') AS trace_id,
                   o ->> '$.feedback_source.user_id' AS user_id,
                   coalesce(o ->> 'created_at', o ->> 'modified_at') AS _ts_raw,
                   o ->> 'key' AS name,
                   coalesce(_fx_str(json_extract(o, '$.value')),
                            _fx_str(json_extract(o, '$.score'))) AS value,
                   try_cast(_fx_str(json_extract(o, '$.score')) AS DOUBLE) AS score,
                   o ->> 'comment' AS comment,
                   coalesce(o ->> '$.feedback_source.type', 'langsmith') AS source
            FROM _ls_items WHERE kind = 'feedback')
        SELECT _ord, locator, event_id, trace_id, user_id, _fx_ts(_ts_raw) AS ts, _ts_raw, name,
               value, score, {negative_sql('name', 'value', 'score')} AS negative, comment,
               source, json_merge_patch(o, '{drop}') AS attributes, NULL::VARCHAR AS _reject,
               left(o::VARCHAR, {RAW}) AS _raw
        FROM f
    """)


register(LangSmithReader())
