"""Labelled real model outputs for drills: prompts and outputs by failure category.

Two forms are read:

- the layout of a labelled real-output corpus folder (``texts/<source>/<upstream path>``,
  as in the project's shared corpus and its ``SOURCES.md``): xstest, halueval,
  decodingtrust_privacy, decodingtrust_toxicity, language_confusion, jailbreakbench
  artifacts and structured_rag are understood, each with its own labels;
- a generic file (or a folder of them): JSON Lines or CSV with the columns ``input``,
  ``output`` and ``category`` (one of :data:`CATEGORIES`), optionally ``language`` (the
  language the user asked for) and ``source``.

>>> import tempfile, pathlib
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> _ = (d / "mine.csv").write_text("input,output,category\\nhi,Hello!,normal\\n")
>>> read_texts(d).select("output", "category").rows()
[('Hello!', 'normal')]
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import polars as pl

from forensics.core.errors import UsageError

# normal: a fine answer; normal_json: a fine JSON answer; refusal: declines the request;
# leak: private data in the output; hallucination: made-up facts; harmful: harmful
# compliance; wrong_language: answered in another language than asked; truncated: cut
# off at the length limit; malformed_json: JSON asked for, not valid JSON given.
CATEGORIES = ("normal", "normal_json", "refusal", "leak", "hallucination", "harmful",
              "wrong_language", "truncated", "malformed_json")
SCHEMA = {"input": pl.String, "output": pl.String, "category": pl.String,
          "language": pl.String, "source": pl.String}
REFUSAL_START = r"(?i)^\s*(I'm sorry|I am sorry|I cannot|I can't|I apologize|Sorry|As an AI)"


def _frame(df: pl.DataFrame, source: str) -> pl.DataFrame:
    for name, dtype in SCHEMA.items():
        if name not in df.columns:
            df = df.with_columns(pl.lit(None, dtype=dtype).alias(name))
    out = df.select([pl.col(n).cast(t) for n, t in SCHEMA.items()])
    return out.with_columns(pl.col("source").fill_null(source)).filter(
        pl.col("output").is_not_null() & (pl.col("output").str.strip_chars() != ""))


def _xstest(root: Path) -> list[pl.DataFrame]:
    parts = []
    for f in sorted((root / "xstest").glob("model_completions/*.csv")):
        df = pl.read_csv(f, infer_schema_length=0)
        contrast = pl.col("type").str.starts_with("contrast_")
        cat = (pl.when(~contrast & (pl.col("final_label") == "2_full_refusal")).then(
            pl.lit("refusal")).when(~contrast & (pl.col("final_label") == "1_full_compliance"))
            .then(pl.lit("normal")).when(contrast & (pl.col("final_label") ==
                                                     "1_full_compliance"))
            .then(pl.lit("harmful")).otherwise(None))
        parts.append(_frame(df.select(pl.col("prompt").alias("input"),
                                      pl.col("completion").alias("output"),
                                      cat.alias("category")), "xstest"))
    return parts


def _halueval(root: Path) -> list[pl.DataFrame]:
    f = root / "halueval" / "data" / "general_data.json"
    if not f.is_file():
        return []
    df = pl.read_ndjson(f, infer_schema_length=None)
    cat = pl.when(pl.col("hallucination") == "yes").then(pl.lit("hallucination")).otherwise(
        pl.lit("normal"))
    return [_frame(df.select(pl.col("user_query").alias("input"),
                             pl.col("chatgpt_response").alias("output"),
                             cat.alias("category")), "halueval")]


def _dt_privacy(root: Path) -> list[pl.DataFrame]:
    rows = []
    for f in sorted((root / "decodingtrust_privacy").glob("data/privacy/generations/pii/*.jsonl")):
        for line in f.read_text(encoding="utf-8").splitlines():
            r = json.loads(line) if line.strip() else None
            if not r or not r.get("continuation") or not r.get("gt"):
                continue
            msgs = r.get("prompt") or []
            question = next((m.get("content") for m in reversed(msgs)
                             if isinstance(m, dict) and m.get("role") == "user"), None)
            if str(r["gt"]) in r["continuation"]:
                rows.append({"input": question, "output": r["continuation"], "category": "leak"})
    return [_frame(pl.DataFrame(rows, schema={"input": pl.String, "output": pl.String,
                                              "category": pl.String}),
                   "decodingtrust_privacy")] if rows else []


def _dt_toxicity(root: Path) -> list[pl.DataFrame]:
    rows = []
    for f in sorted((root / "decodingtrust_toxicity").rglob("*.gz")):
        with gzip.open(f, "rt", encoding="utf-8") as fh:
            lines = fh.read().splitlines()
        for line in lines:
            r = json.loads(line)
            choices = (r.get("response") or {}).get("choices") or [{}]
            if choices[0].get("finish_reason") == "length" and r.get("continuation"):
                rows.append({"input": None, "output": r["continuation"],
                             "category": "truncated"})
    return [_frame(pl.DataFrame(rows, schema={"input": pl.String, "output": pl.String,
                                              "category": pl.String}),
                   "decodingtrust_toxicity")] if rows else []


def _language_confusion(root: Path) -> list[pl.DataFrame]:
    base = root / "language_confusion"
    labels = base / "DERIVED_lid176ftz_labels_llama-2-instruct.csv"
    outputs = base / "outputs" / "llama-2-instruct.csv"
    if not labels.is_file() or not outputs.is_file():
        return []
    keys = ["id", "task", "source", "language"]
    df = pl.read_csv(outputs, infer_schema_length=0).join(
        pl.read_csv(labels, infer_schema_length=0).select(*keys, "label_strict"), on=keys)
    cat = pl.when(pl.col("label_strict") == "wrong_language").then(pl.lit("wrong_language")) \
        .when(pl.col("label_strict") == "ok").then(pl.lit("normal")).otherwise(None)
    return [_frame(df.select(pl.lit(None, dtype=pl.String).alias("input"),
                             pl.col("completion").alias("output"), cat.alias("category"),
                             pl.col("language")), "language_confusion")]


def _jailbreakbench(root: Path) -> list[pl.DataFrame]:
    rows = []
    for f in sorted((root / "jailbreakbench_artifacts").glob("attack-artifacts/*/*/*.json")):
        data = json.loads(f.read_text(encoding="utf-8"))
        for j in data.get("jailbreaks") or []:
            resp = j.get("response")
            if not resp:
                continue
            rows.append({"input": j.get("goal"), "output": resp,
                         "category": "harmful" if j.get("jailbroken") else None})
    if not rows:
        return []
    df = pl.DataFrame(rows, schema={"input": pl.String, "output": pl.String,
                                    "category": pl.String})
    return [_frame(df, "jailbreakbench_artifacts")]


def _structured_rag(root: Path) -> list[pl.DataFrame]:
    rows = []
    for f in sorted((root / "structured_rag").rglob("experimental-results-*/*.json")):
        data = json.loads(f.read_text(encoding="utf-8"))
        failed = {r.get("response") for r in data.get("failed_responses") or []}
        for r in data.get("all_responses") or []:
            rows.append({"input": r.get("prompt"), "output": r.get("response"),
                         "category": "malformed_json" if r.get("response") in failed
                         else "normal_json"})
    return [_frame(pl.DataFrame(rows, schema={"input": pl.String, "output": pl.String,
                                              "category": pl.String}),
                   "structured_rag")] if rows else []


READERS = {"xstest": _xstest, "halueval": _halueval, "decodingtrust_privacy": _dt_privacy,
           "decodingtrust_toxicity": _dt_toxicity, "language_confusion": _language_confusion,
           "jailbreakbench_artifacts": _jailbreakbench, "structured_rag": _structured_rag}
# Sources whose licence (the corpus's SOURCES.md) allows redistributing a sample:
# MIT (halueval, jailbreakbench_artifacts), Apache-2.0 (language_confusion), CC BY-SA 4.0
# (decodingtrust_privacy: attribution, share-alike). Not: xstest completions (the model
# vendors' terms), structured_rag and bfcl (no licence), faithbench (non-commercial).
REDISTRIBUTABLE = ("halueval", "language_confusion", "decodingtrust_privacy",
                   "jailbreakbench_artifacts")


def _generic(path: Path) -> pl.DataFrame:
    try:
        df = pl.read_csv(path, infer_schema_length=0) if path.suffix == ".csv" \
            else pl.read_ndjson(path, infer_schema_length=None)
    except Exception as exc:  # polars raises several error types for a bad file
        raise UsageError(f"{path}: cannot read it as {path.suffix[1:]}: {exc}") from exc
    missing = {"input", "output", "category"} - set(df.columns)
    if missing:
        raise UsageError(f"{path}: missing column(s) {', '.join(sorted(missing))}",
                         hint="a generic texts file has the columns input, output, category "
                              "(and optionally language, source)")
    bad = sorted(set(df["category"].drop_nulls().to_list()) - set(CATEGORIES))
    if bad:
        raise UsageError(f"{path}: unknown categor{'y' if len(bad) == 1 else 'ies'} "
                         f"{', '.join(map(repr, bad))}", hint=f"one of {', '.join(CATEGORIES)}")
    return _frame(df.with_columns(pl.col(c).cast(pl.String) for c in df.columns), path.name)


def read_texts(path: str | Path, sources: tuple[str, ...] | list[str] | None = None
               ) -> pl.DataFrame:
    """Every labelled text under ``path`` (a corpus folder in the shared layout, a generic
    JSONL/CSV file, or a folder of generic files): input, output, category, language,
    source. Rows with no category (unlabelled or ambiguous upstream) are left out.
    ``sources``: only these corpus sources (e.g. :data:`REDISTRIBUTABLE`)."""
    unknown = sorted(set(sources or ()) - set(READERS))
    if unknown:
        raise UsageError(f"unknown text source(s) {', '.join(unknown)}",
                         hint=f"one of {', '.join(READERS)}")
    root = Path(path)
    if not root.exists():
        raise UsageError(f"texts folder {root} does not exist")
    parts: list[pl.DataFrame] = []
    if root.is_file():
        parts.append(_generic(root))
    else:
        for name, reader in READERS.items():
            if sources is None or name in sources:
                parts.extend(reader(root))
        if sources is None:
            for f in sorted([*root.glob("*.jsonl"), *root.glob("*.csv")]):
                parts.append(_generic(f))
    if not parts:
        raise UsageError(f"no labelled texts found in {root}",
                         hint="a corpus folder (texts/<source>/...) or JSONL/CSV files with "
                              "input, output, category")
    return pl.concat(parts, how="vertical").filter(pl.col("category").is_not_null())
