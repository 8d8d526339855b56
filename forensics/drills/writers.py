"""Writing canonical events in a vendor's shape, so a drill can be practised on the
evidence its stack would really produce.

``write_chunk(frame, fh, fmt)`` appends one chunk (a day of drill traffic) of canonical
events (the drill's ``EVENT_ORDER`` columns, ``ts`` as ISO text, nested ``retrievals`` /
``moderations`` lists) to ``fh`` as:

- ``otlp``: OTLP/JSON ``TracesData`` lines as the Collector's file exporter writes them,
  GenAI semantic conventions (``gen_ai.input.messages`` / ``gen_ai.output.messages`` JSON
  strings, ``gen_ai.retrieval.documents``), one resource per feature and release
  (``service.name`` / ``service.version``), moderation results as span events;
- ``openinference``: Phoenix span JSON Lines with flattened OpenInference attributes
  (``llm.input_messages.N.message.*``, ``retrieval.documents.N.document.*``), the feature,
  prompt name, release and cohort keys in the ``metadata`` JSON string;
- ``langfuse``: JSON Lines of Langfuse "trace with full details" exports, one trace per
  request with its GENERATION and TOOL observations; retrieved documents and moderation
  results in the observation's metadata.

Each chunk is built with Polars expressions (no loop over rows) and loads back through
the matching reader into the same canonical events.

:func:`forensics.drills.generator.generate` calls :func:`write_chunk` per chunk:

>>> from forensics.drills.generator import generate
>>> drill = generate("otlp_drill", "prompt_regression", events=1_000, days=3, format="otlp")
>>> with forensics.open("new.duckdb") as new:
...     loaded = new.load(Path("otlp_drill") / "events.otlp.jsonl")
>>> drill["events"], loaded.df.select("format", "rows_loaded", "rows_rejected").row(0)
(1215, ('otlp', 1215, 0))
"""

from __future__ import annotations

import json
from typing import BinaryIO

import polars as pl

from forensics.core.errors import UsageError

SPANS_PER_LINE = 1000
COHORTS = ["plan", "locale", "region", "tenant", "client_version", "request_language",
           "expected_format", "policy_decision"]
SCOPE = '{"name":"forensics.drills.generator","version":"1"}'
Pairs = list[tuple[str, pl.Expr]]


def enc(expr: pl.Expr) -> pl.Expr:
    """Each value JSON-encoded (strings quoted and escaped, null as ``null``)."""
    return (pl.struct(expr.alias("v")).struct.json_encode()
            .str.strip_prefix('{"v":').str.strip_suffix("}"))


def _join(parts: list[pl.Expr | str]) -> pl.Expr:
    return pl.concat_str([pl.lit(p) if isinstance(p, str) else p for p in parts])


def _members(pairs: Pairs, sep: str = ",") -> pl.Expr:
    """``"key":value`` members of a JSON object, the pairs whose value is null left out."""
    items = [pl.when(v.is_not_null() & (v != "null")).then(_join([json.dumps(k) + ":", v]))
             for k, v in pairs]
    return pl.concat_list(items).list.drop_nulls().list.join(sep)


def _ns(frame: pl.DataFrame) -> pl.DataFrame:
    start = pl.col("ts").str.to_datetime("%Y-%m-%dT%H:%M:%S%.3fZ", time_unit="ns")
    return frame.with_columns(start.dt.epoch("ns").alias("_start_ns")).with_columns(
        (pl.col("_start_ns") + (pl.col("duration_ms") * 1e6).round().cast(pl.Int64))
        .alias("_end_ns"))


def _iso(ns: str) -> pl.Expr:
    return pl.from_epoch(pl.col(ns), time_unit="ns").dt.strftime("%Y-%m-%dT%H:%M:%S%.6f+00:00")


def _text_messages(role: str, text: str, finish: str | None = None) -> pl.Expr:
    """A one-message GenAI ``parts`` list as JSON text, or null without text."""
    tail = ([pl.when(pl.col(finish).is_not_null())
             .then(_join([',"finish_reason":', enc(pl.col(finish))])).otherwise(pl.lit(""))]
            if finish else [])
    return pl.when(pl.col(text).is_not_null()).then(_join(
        [f'[{{"role":"{role}","parts":[{{"type":"text","content":', enc(pl.col(text)), "}]",
         *tail, "}]"]))


def _docs(field_names: list[str]) -> pl.Expr:
    """The retrieved documents as a JSON array with the given field names, or null."""
    return pl.when(pl.col("retrievals").list.len() > 0).then(enc(
        pl.col("retrievals").list.eval(pl.element().struct.rename_fields(field_names))))


def _is_tool() -> pl.Expr:
    return pl.col("kind") == "tool"


# -- OTLP ----------------------------------------------------------------------------------

def _any_str(e: pl.Expr) -> pl.Expr:
    return _join(['{"stringValue":', enc(e), "}"])


def _any_int(e: pl.Expr) -> pl.Expr:
    return _join(['{"intValue":"', e.cast(pl.Utf8), '"}'])


def _any_double(e: pl.Expr) -> pl.Expr:
    return _join(['{"doubleValue":', e.cast(pl.Utf8), "}"])


def _kvs(pairs: Pairs) -> pl.Expr:
    items = [pl.when(v.is_not_null()).then(_join([f'{{"key":{json.dumps(k)},"value":', v, "}"]))
             for k, v in pairs]
    return pl.concat_list(items).list.drop_nulls().list.join(",")


def _otlp_attributes() -> Pairs:
    c = pl.col
    llm = ~_is_tool()
    return [
        ("gen_ai.operation.name", _any_str(pl.when(llm).then(pl.lit("chat"))
                                           .otherwise(pl.lit("execute_tool")))),
        *[(k, pl.when(c(col).is_not_null()).then(_any_str(c(col)))) for k, col in (
            ("gen_ai.provider.name", "provider"),
            ("gen_ai.request.model", "model"), ("gen_ai.response.model", "response_model"),
            ("gen_ai.prompt.name", "prompt_name"), ("gen_ai.prompt.version", "prompt_version"),
            ("gen_ai.data_source.id", "retrieval_version"), ("gen_ai.conversation.id",
                                                             "session_id"),
            ("user.id", "user_id"), ("gen_ai.tool.name", "tool_name"),
            ("gen_ai.tool.call.arguments", "tool_args"))],
        ("gen_ai.tool.call.result", pl.when(_is_tool() & c("output_text").is_not_null())
         .then(_any_str(c("output_text")))),
        ("gen_ai.usage.input_tokens", pl.when(c("input_tokens").is_not_null())
         .then(_any_int(c("input_tokens")))),
        ("gen_ai.usage.output_tokens", pl.when(c("output_tokens").is_not_null())
         .then(_any_int(c("output_tokens")))),
        ("gen_ai.usage.cost", pl.when(c("cost_usd").is_not_null())
         .then(_any_double(c("cost_usd")))),
        ("gen_ai.response.finish_reasons", pl.when(c("finish_reason").is_not_null()).then(
            _join(['{"arrayValue":{"values":[{"stringValue":', enc(c("finish_reason")),
                   "}]}}"]))),
        ("gen_ai.system_instructions", pl.when(c("system_prompt").is_not_null()).then(
            _any_str(_join(['[{"type":"text","content":', enc(c("system_prompt")), "}]"])))),
        ("gen_ai.input.messages", pl.when(llm).then(_any_str(_text_messages("user",
                                                                            "input_text")))),
        ("gen_ai.output.messages", pl.when(llm).then(
            _any_str(_text_messages("assistant", "output_text", "finish_reason")))),
        ("gen_ai.retrieval.documents", _any_str(_docs(["rank", "id", "score", "content"]))),
        *[(k, pl.when(c(k).is_not_null()).then(_any_str(c(k)))) for k in COHORTS],
    ]


def _otlp_events() -> pl.Expr:
    """Moderation results as span events (the time filled in per span below)."""
    one = pl.element().struct
    event = _join(['{"timeUnixNano":"@T@","name":"moderation","attributes":[',
                   '{"key":"moderation.stage","value":{"stringValue":', enc(one.field("stage")),
                   '}},{"key":"moderation.category","value":{"stringValue":',
                   enc(one.field("category")),
                   '}},{"key":"moderation.flagged","value":{"boolValue":',
                   enc(one.field("flagged")), '}},{"key":"moderation.score","value":'
                   '{"doubleValue":', enc(one.field("score")),
                   '}},{"key":"moderation.action","value":{"stringValue":',
                   enc(one.field("action")), "}}]}"])
    return pl.col("moderations").list.eval(event).list.join(",")


def otlp_lines(frame: pl.DataFrame) -> pl.Series:
    """One ``TracesData`` JSON line per ``SPANS_PER_LINE`` spans."""
    c = pl.col
    spans = _ns(frame).with_columns(
        _join(['{"traceId":"', c("trace_id"), '","spanId":"', c("span_id"), '"',
               pl.when(c("parent_id").is_not_null())
               .then(_join([',"parentSpanId":"', c("parent_id"), '"'])).otherwise(pl.lit("")),
               ',"name":', enc(c("name")),
               ',"kind":', pl.when(_is_tool()).then(pl.lit("1")).otherwise(pl.lit("3")),
               ',"startTimeUnixNano":"', c("_start_ns").cast(pl.Utf8),
               '","endTimeUnixNano":"', c("_end_ns").cast(pl.Utf8),
               '","attributes":[', _kvs(_otlp_attributes()), "]",
               pl.when(c("moderations").list.len() > 0)
               .then(_join([',"events":[', _otlp_events().str.replace_all(
                   "@T@", c("_start_ns").cast(pl.Utf8), literal=True), "]"]))
               .otherwise(pl.lit("")),
               ',"status":', pl.when(c("status") == "error")
               .then(_join(['{"code":2,"message":', enc(c("error")), "}"]))
               .otherwise(pl.lit('{"code":1}')), "}"]).alias("_span"),
        (pl.int_range(pl.len()) // SPANS_PER_LINE).alias("_line"))
    resources = spans.group_by("_line", "feature", "release", maintain_order=True).agg(
        c("_span").str.join(",")).with_columns(_join([
            '{"resource":{"attributes":[', _kvs([
                ("service.name", pl.when(c("feature").is_not_null())
                 .then(_any_str(c("feature")))),
                ("service.version", pl.when(c("release").is_not_null())
                 .then(_any_str(c("release"))))]),
            ']},"scopeSpans":[{"scope":', SCOPE, ',"spans":[', c("_span"), "]}]}"])
        .alias("_rs"))
    lines = resources.group_by("_line", maintain_order=True).agg(c("_rs").str.join(","))
    return lines.select(_join(['{"resourceSpans":[', c("_rs"), "]}"]).alias("line"))["line"]


# -- OpenInference (Phoenix span JSON) -------------------------------------------------

def _oi_attributes() -> Pairs:
    c = pl.col
    llm = ~_is_tool()
    metadata = _join(["{", _members([(k, enc(c(k))) for k in
                                     ["feature", "prompt_name", "retrieval_version", "release",
                                      *COHORTS]]), "}"])
    pairs: Pairs = [
        ("llm.provider", enc(c("provider"))),
        ("llm.model_name", enc(c("response_model"))),
        ("llm.invocation_parameters", pl.when(c("model").is_not_null())
         .then(enc(_join(['{"model":', enc(c("model")), "}"])))),
        ("llm.input_messages.0.message.role", pl.when(llm & c("system_prompt").is_not_null())
         .then(pl.lit('"system"'))),
        ("llm.input_messages.0.message.content", pl.when(llm).then(enc(c("system_prompt")))),
        ("llm.input_messages.1.message.role", pl.when(llm & c("input_text").is_not_null())
         .then(pl.lit('"user"'))),
        ("llm.input_messages.1.message.content", pl.when(llm).then(enc(c("input_text")))),
        ("llm.output_messages.0.message.role", pl.when(llm & c("output_text").is_not_null())
         .then(pl.lit('"assistant"'))),
        ("llm.output_messages.0.message.content", pl.when(llm).then(enc(c("output_text")))),
        ("gen_ai.response.finish_reasons", pl.when(c("finish_reason").is_not_null())
         .then(_join(["[", enc(c("finish_reason")), "]"]))),
        ("llm.token_count.prompt", enc(c("input_tokens"))),
        ("llm.token_count.completion", enc(c("output_tokens"))),
        ("llm.cost.total", enc(c("cost_usd"))),
        ("llm.prompt_template.version", enc(c("prompt_version"))),
        ("session.id", enc(c("session_id"))), ("user.id", enc(c("user_id"))),
        ("tool.name", pl.when(_is_tool()).then(enc(c("tool_name")))),
        ("input.value", pl.when(_is_tool()).then(enc(c("tool_args")))),
        ("output.value", pl.when(_is_tool()).then(enc(c("output_text")))),
        ("metadata", enc(metadata)),
    ]
    return pairs


def _oi_documents() -> pl.Expr:
    """``retrieval.documents.N.document.*`` members for each span (text, maybe empty)."""
    one = pl.element().struct
    member = _join([
        '"retrieval.documents.@N@.document.id":', enc(one.field("doc_id")),
        ',"retrieval.documents.@N@.document.score":', enc(one.field("score")),
        ',"retrieval.documents.@N@.document.content":', enc(one.field("content"))])
    return pl.col("retrievals").list.eval(
        member.str.replace_all("@N@", (one.field("rank") - 1).cast(pl.Utf8), literal=True)
    ).list.join(",")


def openinference_lines(frame: pl.DataFrame) -> pl.Series:
    c = pl.col
    one = pl.element().struct
    events = c("moderations").list.eval(_join([
        '{"name":"moderation","timestamp":"@T@","attributes":{', _members([
            ("moderation.stage", enc(one.field("stage"))),
            ("moderation.category", enc(one.field("category"))),
            ("moderation.flagged", enc(one.field("flagged"))),
            ("moderation.score", enc(one.field("score"))),
            ("moderation.action", enc(one.field("action")))]), "}}"])).list.join(",")
    docs = _oi_documents()
    out = _ns(frame).select(_join([
        '{"name":', enc(c("name")), ',"context":{"trace_id":"', c("trace_id"),
        '","span_id":"', c("span_id"), '"},"span_kind":',
        pl.when(_is_tool()).then(pl.lit('"TOOL"')).otherwise(pl.lit('"LLM"')),
        ',"parent_id":', enc(c("parent_id")),
        ',"start_time":"', _iso("_start_ns"), '","end_time":"', _iso("_end_ns"),
        '","status_code":', pl.when(c("status") == "error").then(pl.lit('"ERROR"'))
        .otherwise(pl.lit('"OK"')),
        ',"status_message":', enc(c("error").fill_null("")),
        ',"attributes":{', _members(_oi_attributes()),
        pl.when(c("retrievals").list.len() > 0).then(_join([",", docs])).otherwise(pl.lit("")),
        '},"events":[', events.str.replace_all("@T@", _iso("_start_ns"), literal=True)
        .fill_null(""), "]}"]).alias("line"))
    return out["line"]


# -- Langfuse ----------------------------------------------------------------------------

def _lf_observation() -> pl.Expr:
    c = pl.col
    llm = ~_is_tool()
    otel = _join(["{", _members([
        ("gen_ai.provider.name", enc(c("provider"))),
        ("gen_ai.tool.name", pl.when(_is_tool()).then(enc(c("tool_name")))),
        ("gen_ai.response.finish_reasons", pl.when(c("finish_reason").is_not_null())
         .then(_join(["[", enc(c("finish_reason")), "]"]))),
        ("gen_ai.data_source.id", enc(c("retrieval_version")))]), "}"])
    metadata = _join(["{", _members([
        ("attributes", otel),
        ("retrievals", pl.when(c("retrievals").list.len() > 0).then(enc(c("retrievals")))),
        ("moderations", pl.when(c("moderations").list.len() > 0)
         .then(enc(c("moderations"))))]), "}"])
    messages = _join(["[", pl.when(c("system_prompt").is_not_null()).then(_join([
        '{"role":"system","content":', enc(c("system_prompt")), "},"])).otherwise(pl.lit("")),
        '{"role":"user","content":', enc(c("input_text")), "}]"])
    return _join([
        '{"id":"', c("span_id"), '","traceId":"', c("trace_id"),
        '","parentObservationId":', enc(c("parent_id")),
        ',"type":', pl.when(_is_tool()).then(pl.lit('"TOOL"')).otherwise(pl.lit('"GENERATION"')),
        ',"name":', enc(c("name")),
        ',"startTime":"', _iso("_start_ns"), '","endTime":"', _iso("_end_ns"),
        '","level":', pl.when(c("status") == "error").then(pl.lit('"ERROR"'))
        .otherwise(pl.lit('"DEFAULT"')),
        ',"statusMessage":', enc(c("error")),
        ',"model":', enc(c("response_model")),
        ',"modelParameters":', pl.when(c("model").is_not_null())
        .then(_join(['{"model":', enc(c("model")), "}"])).otherwise(pl.lit("{}")),
        ',"promptName":', enc(c("prompt_name")), ',"promptVersion":', enc(c("prompt_version")),
        ',"input":', pl.when(llm & c("input_text").is_not_null()).then(messages)
        .when(_is_tool()).then(enc(c("tool_args"))).otherwise(pl.lit("null")),
        ',"output":', enc(c("output_text")),
        ',"usageDetails":{', _members([("input", enc(c("input_tokens"))),
                                       ("output", enc(c("output_tokens")))]),
        '},"costDetails":{', _members([("total", enc(c("cost_usd")))]),
        '},"metadata":', metadata, "}"])


def langfuse_lines(frame: pl.DataFrame) -> pl.Series:
    """One "trace with full details" export per trace (a request and its tool calls)."""
    c = pl.col
    obs = _ns(frame).with_columns(_lf_observation().alias("_obs"))
    traces = obs.group_by("trace_id", maintain_order=True).agg(
        c("_obs").str.join(","), *[c(k).first() for k in
                                   ["feature", "ts", "user_id", "session_id", "release",
                                    *COHORTS]])
    trace = _join([
        '{"id":"', c("trace_id"), '","name":', enc(c("feature")), ',"timestamp":"', c("ts"),
        '","userId":', enc(c("user_id")), ',"sessionId":', enc(c("session_id")),
        ',"release":', enc(c("release")), ',"tags":[],"metadata":{',
        _members([(k, enc(c(k))) for k in COHORTS]), "}}"])
    return traces.select(_join(['{"trace":', trace, ',"observations":[', c("_obs"), "]}"])
                         .alias("line"))["line"]


WRITERS = {"otlp": otlp_lines, "openinference": openinference_lines, "langfuse": langfuse_lines}


def write_chunk(frame: pl.DataFrame, fh: BinaryIO, fmt: str) -> None:
    """Append ``frame`` (canonical events) to ``fh`` in the shape ``fmt``."""
    if fmt not in WRITERS:
        raise UsageError(f"no writer for format {fmt!r}", hint=f"one of {', '.join(WRITERS)}")
    if frame.height == 0:
        return
    lines = WRITERS[fmt](frame)
    fh.write((lines.str.join("\n")[0] + "\n").encode("utf-8"))
