"""Loading audit logs: formats, mappings, evidence, and every kind of bad input."""

from __future__ import annotations

import gzip
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import polars as pl
import pytest

import forensics
from forensics.core.errors import FormatError, LoadError, MappingError

from .conftest import event, write_jsonl


def counts(case: Any) -> tuple[int, int, int]:
    row = case.con.execute("SELECT sum(records_in), sum(rows_loaded), sum(rows_rejected) "
                           "FROM evidence").fetchall()[0]
    return row[0], row[1], row[2]


def rejects(case: Any) -> list[tuple[str, str]]:
    return case.con.execute("SELECT locator, reason FROM rejects ORDER BY rowid").fetchall()


def test_jsonl_with_canonical_names_needs_no_mapping(case: Any, tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "a.jsonl", [event(i, plan="pro") for i in range(20)])
    row = case.load(path).rows()[0]
    assert (row["rows_loaded"], row["rows_rejected"], row["format"]) == (20, 0, "jsonl")
    ev = case.sql("SELECT * FROM events ORDER BY event_id LIMIT 1").rows()[0]
    assert ev["event_id"] == "e0" and ev["input_tokens"] == 10 and ev["user_id"] == "u0"
    assert json.loads(ev["attributes"]) == {"plan": "pro"}
    assert ev["locator"] == "line 1"


def test_evidence_row_records_the_file(case: Any, tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "a.jsonl", [event(i) for i in range(3)])
    case.load(path)
    ev = case.table("evidence").rows(named=True)[0]
    import hashlib

    assert ev["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert ev["bytes"] == path.stat().st_size
    assert ev["format"] == "jsonl" and ev["loader_version"]
    assert ev["rows_loaded"] == 3 and ev["rows_rejected"] == 0 and ev["loaded_at"]


def test_same_file_twice_adds_nothing(case: Any, tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "a.jsonl", [event(i) for i in range(5)])
    case.load(path)
    copy = tmp_path / "copy.jsonl"
    shutil.copy(path, copy)
    again = case.load(copy).rows()[0]
    assert again["status"] == "already loaded" and again["rows_loaded"] == 0
    assert case.count("events") == 5 and case.count("evidence") == 1


def test_gzip_and_zstd(case: Any, tmp_path: Path) -> None:
    raw = "".join(json.dumps(event(i)) + "\n" for i in range(10)).encode()
    (tmp_path / "a.jsonl.gz").write_bytes(gzip.compress(raw))
    assert case.load(tmp_path / "a.jsonl.gz").rows()[0]["rows_loaded"] == 10
    if shutil.which("zstd"):
        (tmp_path / "b.jsonl").write_bytes(raw.replace(b'"e', b'"z'))
        subprocess.run(["zstd", "-q", str(tmp_path / "b.jsonl")], check=True)
        assert case.load(tmp_path / "b.jsonl.zst").rows()[0]["rows_loaded"] == 10


def test_nested_mapping_from_dict_and_toml(case: Any, tmp_path: Path) -> None:
    records = [{"id": f"r{i}", "meta": {"time": f"2026-03-01T00:00:0{i}+02:00",
                                         "who": {"uid": f"u{i}"}},
                "io": {"q": "hi", "a": "hello"}, "usage": {"in": i}, "extra": [1, 2]}
               for i in range(3)]
    path = write_jsonl(tmp_path / "nested.jsonl", records)
    mapping = {"event_id": "id", "ts": "meta.time", "user_id": "meta.who.uid",
               "input_text": "io.q", "output_text": "$.io.a", "input_tokens": "usage.in"}
    case.load(path, mapping=mapping)
    ev = case.sql("SELECT * FROM events ORDER BY event_id").rows()
    assert [e["user_id"] for e in ev] == ["u0", "u1", "u2"]
    assert str(ev[0]["ts"]) == "2026-02-28T22:00:00"  # converted to UTC
    attrs = json.loads(ev[0]["attributes"])
    assert attrs["extra"] == [1, 2] and "id" not in attrs and attrs["meta"]["who"] == {}
    toml = tmp_path / "m.toml"
    toml.write_text("[mapping]\n" + "\n".join(f'{k} = "{v}"' for k, v in mapping.items()))
    path2 = write_jsonl(tmp_path / "nested2.jsonl",
                        [dict(r, id="x" + r["id"]) for r in records])
    assert case.load(path2, mapping=toml).rows()[0]["rows_loaded"] == 3


def test_mapping_errors(case: Any, tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "a.jsonl", [event(1)])
    with pytest.raises(MappingError, match="not_a_column"):
        case.load(path, mapping={"not_a_column": "x"})
    with pytest.raises(MappingError):
        case.load(path, mapping={"user_id": 5})
    assert case.count("evidence") == 0


def test_retrievals_and_moderations(case: Any, tmp_path: Path) -> None:
    rec = event(1, retrievals=[{"rank": 1, "doc_id": "d1", "score": 0.9, "content": "alpha"},
                               {"doc_id": "d2", "score": 0.5, "content": "beta"}],
                moderations=[{"stage": "input", "category": "self-harm", "flagged": False,
                              "score": 0.01, "action": "allow"},
                             {"stage": "output", "category": "pii", "flagged": True,
                              "score": 0.97, "action": "block"}])
    case.load(write_jsonl(tmp_path / "r.jsonl", [rec, event(2)]))
    docs = case.sql("SELECT event_id, rank, doc_id, score FROM retrievals ORDER BY rank").rows()
    assert [(d["event_id"], d["rank"], d["doc_id"]) for d in docs] == [("e1", 1, "d1"),
                                                                      ("e1", 2, "d2")]
    mods = case.sql("SELECT stage, flagged, action FROM moderations ORDER BY stage").rows()
    assert mods == [{"stage": "input", "flagged": False, "action": "allow"},
                    {"stage": "output", "flagged": True, "action": "block"}]


def test_csv_and_parquet(case: Any, tmp_path: Path) -> None:
    df = pl.DataFrame([event(i, plan="free") for i in range(8)])
    df.write_csv(tmp_path / "a.csv")
    df.with_columns(pl.col("event_id") + "p").write_parquet(tmp_path / "a.parquet")
    csv_row = case.load(tmp_path / "a.csv").rows()[0]
    pq_row = case.load(tmp_path / "a.parquet").rows()[0]
    assert (csv_row["format"], csv_row["rows_loaded"]) == ("csv", 8)
    assert (pq_row["format"], pq_row["rows_loaded"]) == ("parquet", 8)
    loc = case.sql("SELECT locator FROM events WHERE event_id = 'e3p'").rows()[0]["locator"]
    assert loc == "row 4"
    assert case.sql("SELECT count(*) AS n FROM events WHERE input_tokens IS NULL"
                    ).rows()[0]["n"] == 0


def test_csv_malformed_rows_are_rejected_with_line(case: Any, tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("event_id,ts,output_text\n"
                    "a,2026-01-01T00:00:00Z,fine\n"
                    "b,2026-01-01T00:00:00Z,too,many,fields\n"
                    "c,not a time,x\n"
                    "d,2026-01-01T00:00:01Z,ok\n")
    row = case.load(path).rows()[0]
    assert row["records_in"] == row["rows_loaded"] + row["rows_rejected"]
    assert row["rows_loaded"] == 2
    reasons = dict(rejects(case))
    assert any(loc == "line 3" for loc in reasons)
    assert any("unparseable timestamp" in r for r in reasons.values())


# ---- bad input ------------------------------------------------------------------------

def test_bad_lines_are_rejected_and_the_rest_loads(case: Any, tmp_path: Path) -> None:
    lines = [json.dumps(event(1)),
             '{"event_id": "e2", "ts": "2026-03-01T10:00:00Z", "output_text": "cut',  # truncated
             "{not json at all}",                                                      # invalid
             json.dumps(event(4, input_tokens="many")),                               # wrong type
             json.dumps({k: v for k, v in event(5).items() if k != "ts"}),             # no ts
             json.dumps(event(6, ts="yesterday-ish")),                                 # bad ts
             json.dumps(event(7, ts="2026-03-01T10:00:00 Mars/Olympus")),              # bad zone
             json.dumps(event(1)),                                                     # duplicate
             "",                                                                       # blank
             json.dumps([1, 2, 3]),                                                    # not object
             json.dumps(event(11, ts="2026-03-01T10:00:00+05:30"))]                    # fine
    path = tmp_path / "bad.jsonl"
    path.write_text("\n".join(lines) + "\n")
    row = case.load(path).rows()[0]
    assert (row["records_in"], row["rows_loaded"], row["rows_rejected"]) == (10, 2, 8)
    got = dict(rejects(case))
    assert got["line 2"].startswith("truncated JSON")
    assert got["line 3"].startswith("invalid JSON")
    assert got["line 4"] == "input_tokens: expected a number, got many"
    assert got["line 5"] == "missing timestamp"
    assert got["line 6"].startswith("unparseable timestamp") and "yesterday" in got["line 6"]
    assert "Mars/Olympus" in got["line 7"]
    assert got["line 8"] == "duplicate event_id e1 (first at line 1)"
    assert got["line 10"] == "record is a JSON array, not an object"
    ts = case.sql("SELECT ts FROM events WHERE event_id = 'e11'").rows()[0]["ts"]
    assert str(ts) == "2026-03-01T04:30:00"
    assert counts(case) == (10, 2, 8)


def test_duplicate_across_files(case: Any, tmp_path: Path) -> None:
    case.load(write_jsonl(tmp_path / "a.jsonl", [event(1), event(2)]))
    row = case.load(write_jsonl(tmp_path / "b.jsonl", [event(2, output_text="changed"),
                                                       event(3)])).rows()[0]
    assert (row["rows_loaded"], row["rows_rejected"]) == (1, 1)
    assert "already in the case (evidence 1)" in rejects(case)[0][1]


def test_non_utf8_bytes(case: Any, tmp_path: Path) -> None:
    path = tmp_path / "latin.jsonl"
    good = (json.dumps(event(1)) + "\n").encode()
    bad = b'{"event_id": "e2", "ts": "2026-03-01T10:00:00Z", "output_text": "caf' + \
        b"\xe9\xff" + b'"}\n'
    path.write_bytes(good + bad + (json.dumps(event(3)) + "\n").encode())
    row = case.load(path).rows()[0]
    assert (row["rows_loaded"], row["rows_rejected"]) == (2, 1)
    loc, reason = rejects(case)[0]
    assert loc == "line 2" and "UTF-8" in reason
    assert case.sql("SELECT locator FROM events WHERE event_id = 'e3'").rows()[0]["locator"] \
        == "line 3"


def test_empty_file(case: Any, tmp_path: Path) -> None:
    (tmp_path / "empty.jsonl").write_text("")
    with pytest.raises(FormatError, match="empty"):
        case.load(tmp_path / "empty.jsonl")
    assert case.count("evidence") == 0


def test_blank_only_file(case: Any, tmp_path: Path) -> None:
    (tmp_path / "blank.jsonl").write_text("\n\n   \n")
    with pytest.raises(FormatError, match="empty"):
        case.load(tmp_path / "blank.jsonl")


def test_fifty_megabyte_single_line(case: Any, tmp_path: Path) -> None:
    big = "x" * (50 * 1024 * 1024)
    path = write_jsonl(tmp_path / "big.jsonl", [event(1, output_text=big), event(2)])
    row = case.load(path).rows()[0]
    assert row["rows_loaded"] == 2
    n = case.sql("SELECT length(output_text) AS n FROM events WHERE event_id = 'e1'").rows()
    assert n[0]["n"] == len(big)


def test_wrong_format_flag(case: Any, tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "a.jsonl", [event(1)])
    with pytest.raises(FormatError, match="holds JSON"):
        case.load(path, format="csv")
    with pytest.raises(FormatError, match="not Parquet"):
        case.load(path, format="parquet")
    with pytest.raises(FormatError, match="unknown format"):
        case.load(path, format="xml")
    (tmp_path / "a.csv").write_text("event_id,ts\na,2026-01-01\n")
    with pytest.raises(FormatError, match="does not start with JSON"):
        case.load(tmp_path / "a.csv", format="jsonl")
    assert case.count("evidence") == 0 and case.count("events") == 0


def test_missing_file(case: Any, tmp_path: Path) -> None:
    with pytest.raises(LoadError, match="no such file"):
        case.load(tmp_path / "nope.jsonl")


def test_file_that_disappears_mid_load_loads_the_bytes_it_hashed(
        case: Any, tmp_path: Path) -> None:
    """The file is read once, into a snapshot: what is loaded is what was hashed."""
    path = write_jsonl(tmp_path / "vanish.jsonl", [event(i) for i in range(50)])
    import hashlib

    sha = hashlib.sha256(path.read_bytes()).hexdigest()

    def vanish(message: str) -> None:
        if message.startswith("committing"):
            path.unlink()

    row = case.load(path, progress=vanish).rows()[0]
    assert (row["sha256"], row["rows_loaded"]) == (sha, 50)


def test_file_rewritten_in_place_mid_load_keeps_hash_and_rows_together(
        case: Any, tmp_path: Path) -> None:
    """Rewritten between hashing and staging (mtime restored): the rows loaded are the
    rows of the bytes whose sha256 is recorded, never the new ones under the old hash."""
    import hashlib
    import os

    path = write_jsonl(tmp_path / "grow.jsonl", [event(i) for i in range(50)])
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    st = path.stat()

    def rewrite(message: str) -> None:
        if message.startswith("reading"):
            write_jsonl(path, [event(i, output_text="rewritten") for i in range(60)])
            os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))

    row = case.load(path, progress=rewrite).rows()[0]
    assert (row["sha256"], row["rows_loaded"]) == (sha, 50)
    assert case.sql("SELECT count(*) AS n FROM events WHERE output_text = 'rewritten'"
                    ).rows()[0]["n"] == 0
    again = case.load(path).rows()[0]     # the new bytes are a new file
    assert again["sha256"] != sha and again["status"] == "loaded"


def test_failed_load_leaves_case_consistent(case: Any, tmp_path: Path) -> None:
    case.load(write_jsonl(tmp_path / "ok.jsonl", [event(1)]))
    with pytest.raises(FormatError):
        case.load(write_jsonl(tmp_path / "x.jsonl", [event(2)]), format="parquet")
    assert case.count("events") == 1 and case.count("evidence") == 1
    assert case.load(write_jsonl(tmp_path / "ok2.jsonl", [event(3)])).rows()[0][
        "rows_loaded"] == 1


def test_interrupted_load_keeps_nothing(case: Any, tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from forensics.ingest import load as load_mod

    case.load(write_jsonl(tmp_path / "ok.jsonl", [event(1)]))

    def interrupted(*_args: Any) -> Any:
        raise KeyboardInterrupt

    monkeypatch.setattr(load_mod, "commit_stage", interrupted)    # Ctrl-C mid-commit
    with pytest.raises(KeyboardInterrupt):
        case.load(write_jsonl(tmp_path / "x.jsonl", [event(2)]))
    monkeypatch.undo()
    assert case.count("events") == 1 and case.count("evidence") == 1
    assert case.load(write_jsonl(tmp_path / "x.jsonl", [event(2)])).rows()[0][
        "rows_loaded"] == 1


def test_json_array_document(case: Any, tmp_path: Path) -> None:
    path = tmp_path / "arr.json"
    path.write_text(json.dumps([event(1), "oops", event(2)], indent=2))
    row = case.load(path).rows()[0]
    assert (row["format"], row["rows_loaded"], row["rows_rejected"]) == ("json", 2, 1)
    assert rejects(case)[0][0] == "element 2"


def test_change_log_and_feedback(case: Any, tmp_path: Path) -> None:
    (tmp_path / "deploys.csv").write_text(
        "ts,kind,feature,from_version,to_version,note\n"
        "2026-03-01T09:00:00Z,prompt,support_chat,p1,p2,tighten safety\n"
        "2026-03-01T11:00:00Z,model,doc_qa,gpt-4o,gpt-4.1,\n"
        "2026-03-02T11:00:00Z,model,doc_qa,gpt-4.1,,missing target\n")
    row = case.load(tmp_path / "deploys.csv").rows()[0]
    assert (row["target"], row["rows_loaded"], row["rows_rejected"]) == ("changes", 2, 1)
    fb = write_jsonl(tmp_path / "fb.jsonl", [
        {"event_id": "e1", "ts": "2026-03-02T00:00:00Z", "name": "thumbs", "value": "down"},
        {"event_id": "e2", "ts": "2026-03-02T00:00:00Z", "name": "rating", "value": "2"},
        {"event_id": "e3", "ts": "2026-03-02T00:00:00Z", "name": "rating", "value": "5"},
        {"trace_id": "t9", "ts": "2026-03-02T00:00:00Z", "name": "complaint",
         "value": "wrong refund amount", "source": "support"}])
    row = case.load(fb).rows()[0]
    assert (row["target"], row["rows_loaded"]) == ("feedback", 4)
    neg = case.sql("SELECT negative FROM feedback ORDER BY locator").rows()
    assert [n["negative"] for n in neg] == [True, True, False, True]


def test_change_log_with_from_and_to(case: Any, tmp_path: Path) -> None:
    log = write_jsonl(tmp_path / "deploys.jsonl", [
        {"time": "2026-03-01T09:00:00Z", "kind": "prompt", "feature": "support_chat",
         "from": "v12", "to": "v13", "note": "tighten policy", "author": "deploy-bot"}])
    row = case.load(log).rows()[0]
    assert (row["target"], row["rows_loaded"]) == ("changes", 1)
    got = case.sql("SELECT from_version, to_version, attributes ->> 'author' AS author "
                   "FROM changes").rows()[0]
    assert got == {"from_version": "v12", "to_version": "v13", "author": "deploy-bot"}


def test_load_many_from_api(case: Any, tmp_path: Path) -> None:
    from forensics.ingest.load import load_files

    a = write_jsonl(tmp_path / "a.jsonl", [event(1)])
    b = write_jsonl(tmp_path / "b.jsonl", [event(2)])
    result = load_files(case, [a, b])
    assert result.df["rows_loaded"].to_list() == [1, 1]
    assert forensics.Result.load(result.save(tmp_path / "r.json")).rows() == result.rows()


@pytest.mark.parametrize("suffix", [".jsonl", ".jsonl.gz", ".jsonl.zst"])
def test_line_longer_than_the_reader_limit_is_rejected_with_its_line(
        case: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, suffix: str) -> None:
    """DuckDB's line reader drops a line longer than its buffer without a word; the loader
    counted the lines (decompressed too) while hashing, and rejects that one record."""
    from forensics.ingest import readers

    monkeypatch.setattr(readers, "MAX_LINE_BYTES", 1 << 20)
    records = [event(1), event(2, output_text="y" * (3 << 20)), event(3)]
    path = tmp_path / f"long{suffix}"
    text = "".join(json.dumps(r) + "\n" for r in records)
    if suffix.endswith(".gz"):
        path.write_bytes(gzip.compress(text.encode()))
    elif suffix.endswith(".zst"):
        import zstandard

        path.write_bytes(zstandard.ZstdCompressor().compress(text.encode()))
    else:
        path.write_text(text)
    row = case.load(path).rows()[0]
    assert (row["records_in"], row["rows_loaded"], row["rows_rejected"]) == (3, 2, 1)
    loc, reason = rejects(case)[0]
    assert loc == "line 2" and "longer than 1 MiB" in reason
    assert case.sql("SELECT locator FROM events WHERE event_id = 'e3'").rows()[0][
        "locator"] == "line 3"


def test_fast_and_careful_paths_load_the_same_rows(tmp_path: Path) -> None:
    """A clean JSON Lines file goes through DuckDB's own reader; the same records with one
    blank line go the careful way. Both give identical events, retrievals, moderations,
    rejects of the records they share (a bad timestamp, a duplicate id, a wrong type)."""
    from forensics.ingest import readers

    records = [event(i, retrievals=[{"doc_id": f"d{i}", "score": 0.5, "content": "c"}],
                     moderations=[{"category": "pii", "flagged": i % 2 == 0}],
                     plan="pro", nested={"a": [i, None]}) for i in range(40)]
    records += [event(3), event(41, ts="not a time"), event(42, output_tokens="x")]
    clean = write_jsonl(tmp_path / "clean.jsonl", records)
    messy = tmp_path / "messy.jsonl"
    messy.write_text(clean.read_text() + "\n")
    probe = forensics.open(tmp_path / "probe.duckdb")
    lines = len(clean.read_text().splitlines())
    assert readers.precheck_jsonl(probe.con, clean, lines) is not None
    assert readers.precheck_jsonl(probe.con, messy, lines + 1) is None
    probe.close()
    tables = {}
    for path in (clean, messy):
        c = forensics.open(tmp_path / f"{path.stem}.duckdb")
        c.load(path)
        tables[path.stem] = {
            t: c.sql(f"SELECT * EXCLUDE (evidence_id) FROM {t} ORDER BY ALL").df
            for t in ("events", "retrievals", "moderations", "rejects")}
        c.close()
    for t in ("events", "retrievals", "moderations"):
        assert tables["clean"][t].equals(tables["messy"][t]), t
    assert tables["clean"]["events"].height == 40
    clean_rejects = tables["clean"]["rejects"].drop("raw")
    assert clean_rejects.equals(tables["messy"]["rejects"].drop("raw").head(3))
    assert tables["clean"]["rejects"]["raw"].to_list() == \
        tables["messy"]["rejects"]["raw"].head(3).to_list()
