"""Hostile and unlucky input: nothing lost, nothing miscounted, every failure in the one
error shape, and a load that loaded nothing never passes for a success."""

from __future__ import annotations

import gzip
import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from click.testing import CliRunner

import forensics
from forensics.cli.main import cli
from forensics.core import workdir
from forensics.core.errors import ForensicsError, FormatError, LoadError

from .conftest import event, write_jsonl

ERROR_KEYS = {"ok", "error", "hint", "type"}


def rejects(case: Any) -> dict[str, str]:
    return dict(case.con.execute("SELECT locator, reason FROM rejects ORDER BY rowid")
                .fetchall())


def cli_json(*args: str) -> tuple[int, dict[str, Any]]:
    result = CliRunner().invoke(cli, [*args, "--json"])
    lines = [ln for ln in result.stdout.splitlines() if ln.strip()]
    assert len(lines) == 1, result.stdout
    return result.exit_code, json.loads(lines[0])


def balanced(row: dict[str, Any]) -> bool:
    return bool(row["records_in"] == row["rows_loaded"] + row["rows_rejected"])


# ---- honest results --------------------------------------------------------------------

def test_a_load_that_loads_nothing_says_so(case: Any, tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "nots.jsonl", [{"id": i, "text": "x"} for i in range(4)])
    row = case.load(path).rows()[0]
    assert row["status"] == "nothing loaded" and row["rows_loaded"] == 0
    assert (row["records_in"], row["rows_rejected"]) == (4, 4)
    assert case.count("evidence") == 1          # the attempt is on record


def test_cli_exits_non_zero_when_nothing_loaded(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "nots.jsonl", [{"id": i, "text": "x"} for i in range(4)])
    good = write_jsonl(tmp_path / "good.jsonl", [event(1)])
    code, doc = cli_json("load", str(tmp_path / "c.duckdb"), str(good), str(path))
    assert code != 0 and set(doc) == ERROR_KEYS and doc["type"] == "NothingLoadedError"
    assert "nots.jsonl: nothing loaded" in doc["error"] and "good.jsonl" in doc["error"]
    assert "--format" in doc["hint"] and "--mapping" in doc["hint"]
    human = CliRunner().invoke(cli, ["load", str(tmp_path / "c2.duckdb"), str(path)])
    assert human.exit_code != 0


def test_reload_with_a_mapping_after_rejects(case: Any, tmp_path: Path) -> None:
    records = [{"id": f"r{i}", "when": f"2026-03-01T10:0{i}:00Z", "reply": f"a{i}"}
               for i in range(5)]
    path = write_jsonl(tmp_path / "audit.jsonl", records)
    first = case.load(path).rows()[0]
    assert first["status"] == "nothing loaded"
    second = case.load(path, mapping={"ts": "when", "output_text": "reply"}).rows()[0]
    assert (second["status"], second["rows_loaded"], second["rows_rejected"]) == \
        ("loaded", 5, 0)
    assert json.loads(second["mapping"])["output_text"] == "reply"
    ev = case.sql("SELECT evidence_id, sha256, rows_loaded, read_as FROM evidence "
                  "ORDER BY evidence_id").rows()
    assert [e["rows_loaded"] for e in ev] == [0, 5] and ev[0]["sha256"] == ev[1]["sha256"]
    assert json.loads(ev[1]["read_as"])["mapping"]["ts"] == '$."when"'
    # the same file, the same way: nothing added
    again = case.load(path, mapping={"ts": "when", "output_text": "reply"}).rows()[0]
    assert again["status"] == "already loaded" and case.count("evidence") == 2
    # read cleanly once, it is not read again another way (its records would count twice)
    other = case.load(path, mapping={"ts": "when", "input_text": "reply"}).rows()[0]
    assert other["status"] == "already loaded" and case.count("events") == 5


def test_load_result_shows_the_mapping_it_chose(case: Any, tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "a.jsonl",
                       [{"ts": "2026-03-01T10:00:00Z", "prompt": "hello there", "output": "hi"}])
    row = case.load(path).rows()[0]
    chosen = json.loads(row["mapping"])
    assert chosen["prompt_name"] == "prompt" and chosen["output_text"] == "output"


def test_one_stray_to_version_does_not_make_a_change_log(case: Any, tmp_path: Path) -> None:
    records = [event(i) for i in range(999)]
    records.insert(500, {"event_id": "odd", "ts": "2026-03-01T10:00:00Z", "kind": "deploy",
                         "to_version": "v2"})
    path = write_jsonl(tmp_path / "events.jsonl", records)
    row = case.load(path).rows()[0]
    assert (row["target"], row["rows_loaded"], row["rows_rejected"]) == ("events", 1000, 0)
    assert case.count("changes") == 0


def test_format_events_overrides_what_the_records_look_like(case: Any, tmp_path: Path) -> None:
    records = [{"event_id": f"d{i}", "ts": "2026-03-01T10:00:00Z", "kind": "deploy",
                "to_version": f"v{i}"} for i in range(3)]
    path = write_jsonl(tmp_path / "deploys.jsonl", records)
    assert case.load(path, format="events").rows()[0]["target"] == "events"
    assert case.count("events") == 3 and case.count("changes") == 0


# ---- paths taken literally -------------------------------------------------------------

@pytest.mark.parametrize("name", ["glob*.jsonl", "[x].jsonl", "~name.jsonl", "it's?.jsonl",
                                  "{a,b}.jsonl"])
def test_file_names_are_not_patterns(case: Any, tmp_path: Path, name: str) -> None:
    write_jsonl(tmp_path / "glob1.jsonl", [event(100)])
    write_jsonl(tmp_path / "x.jsonl", [event(101)])
    write_jsonl(tmp_path / "a.jsonl", [event(102)])
    path = write_jsonl(tmp_path / name, [event(1), event(2)])
    row = case.load(path).rows()[0]
    assert (row["rows_loaded"], row["path"]) == (2, str(path))
    assert sorted(case.sql("SELECT event_id FROM events").df["event_id"]) == ["e1", "e2"]


def test_case_folder_named_like_a_pattern(tmp_path: Path) -> None:
    folder = tmp_path / "case[1]*"
    folder.mkdir()
    path = write_jsonl(folder / "a.jsonl", [event(1)])
    with forensics.open(folder / "c.duckdb") as c:
        assert c.load(path).rows()[0]["rows_loaded"] == 1


def test_symlink_is_resolved_and_recorded(case: Any, tmp_path: Path) -> None:
    real = write_jsonl(tmp_path / "real.jsonl", [event(1)])
    link = tmp_path / "link.jsonl"
    link.symlink_to(real)
    row = case.load(link).rows()[0]
    assert row["link"] == str(link)
    ev = case.sql("SELECT path, link FROM evidence").rows()[0]
    assert (ev["path"], ev["link"]) == (str(real.resolve()), str(link))


@pytest.mark.parametrize("target", ["/etc/passwd", "/proc/self/status", "/dev/null"])
def test_system_files_are_refused(case: Any, tmp_path: Path, target: str) -> None:
    if not Path(target).exists():
        pytest.skip(f"{target} not on this system")
    link = tmp_path / "innocent.jsonl"
    link.symlink_to(target)
    for path in (Path(target), link):
        with pytest.raises(LoadError, match=r"system file|not a regular file"):
            case.load(path)
    assert case.count("evidence") == 0 and case.count("rejects") == 0


# ---- values the stack cannot hold -------------------------------------------------------

def test_timestamps_outside_years_1_to_9999_are_rejected(case: Any, tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "years.jsonl", [
        event(1), event(2, ts="10000-01-01T00:00:00Z"), event(3, ts="0000-06-01T00:00:00Z"),
        event(4, ts=1e30), event(5, ts="infinity"), event(6)])
    row = case.load(path).rows()[0]
    assert (row["rows_loaded"], row["rows_rejected"]) == (2, 4)
    got = rejects(case)
    assert "out of range" in got["line 2"] and "10000" in got["line 2"]
    assert "out of range" in got["line 3"]
    assert "line 4" in got and "line 5" in got
    case.summary()                      # later stages read every loaded ts
    assert case.sql("SELECT year(max(ts)) AS y FROM events").rows()[0]["y"] == 2026


def test_nan_huge_and_negative_counts_rejected_per_record(case: Any, tmp_path: Path) -> None:
    path = tmp_path / "counts.jsonl"
    lines = [json.dumps(event(1)),
             json.dumps(event(2)).replace('"input_tokens": 12', '"input_tokens": NaN'),
             json.dumps(event(3, output_tokens=1e30)),
             json.dumps(event(4, input_tokens=-5)),
             json.dumps(event(5, cost_usd=math.inf)).replace("Infinity", '"Infinity"'),
             json.dumps(event(6, input_tokens="12.5")),
             json.dumps(event(7, input_tokens=12.0, cost_usd=0.5))]
    path.write_text("\n".join(lines) + "\n")
    row = case.load(path).rows()[0]
    assert (row["records_in"], row["rows_loaded"], row["rows_rejected"]) == (7, 2, 5)
    got = rejects(case)
    assert "line 2" in got        # NaN is not JSON: the record is refused, not the file
    assert got["line 3"].startswith("output_tokens: not a whole number in range")
    assert got["line 4"] == "input_tokens: negative: -5"
    assert got["line 5"].startswith("cost_usd: not a finite number")
    assert got["line 6"].startswith("input_tokens: not a whole number")
    assert case.sql("SELECT input_tokens FROM events WHERE event_id = 'e7'"
                    ).rows()[0]["input_tokens"] == 12


def test_nan_tokens_in_csv_and_parquet(case: Any, tmp_path: Path) -> None:
    path = tmp_path / "n.csv"
    path.write_text("event_id,ts,output_text,input_tokens\n"
                    "a,2026-01-01T00:00:00Z,x,NaN\nb,2026-01-01T00:00:00Z,y,1e30\n"
                    "c,2026-01-01T00:00:00Z,z,3\n")
    row = case.load(path).rows()[0]
    assert (row["rows_loaded"], row["rows_rejected"]) == (1, 2)
    pq = tmp_path / "n.parquet"
    pl.DataFrame({"event_id": ["p1", "p2"], "ts": ["2026-01-01T00:00:00Z"] * 2,
                  "output_text": ["x", "y"], "cost_usd": [float("nan"), 0.1]}).write_parquet(pq)
    row = case.load(pq).rows()[0]
    assert (row["rows_loaded"], row["rows_rejected"]) == (1, 1)


# ---- CSV ---------------------------------------------------------------------------------

def test_ragged_csv_rows_are_counted_once(case: Any, tmp_path: Path) -> None:
    path = tmp_path / "ragged.csv"
    path.write_text("event_id,ts,output_text\n"
                    "a,2026-01-01T00:00:00Z,fine\n"
                    "b,2026-01-01T00:00:00Z,too,many,fields\n"
                    "c,2026-01-01T00:00:00Z\n"
                    "d,2026-01-01T00:00:01Z,ok\n")
    row = case.load(path).rows()[0]
    assert (row["records_in"], row["rows_loaded"], row["rows_rejected"]) == (4, 2, 2)
    assert set(rejects(case)) == {"line 3", "line 4"}


def test_a_few_bad_rows_never_refuse_or_misread_the_whole_csv(case: Any,
                                                            tmp_path: Path) -> None:
    good = "".join(f"e{i},2026-01-01T00:00:0{i}Z,ok {i}\n" for i in range(5))
    path = tmp_path / "messy.csv"
    path.write_text("event_id,ts,output_text\n" + 'bad "row, with; stuff|here\n' + good
                    + 'z;"w";q\n' * 3)
    row = case.load(path).rows()[0]
    assert row["rows_loaded"] == 5 and balanced(row)
    assert case.sql("SELECT output_text FROM events ORDER BY event_id LIMIT 1"
                    ).rows()[0]["output_text"] == "ok 0"


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-be", "utf-32"])
def test_utf16_and_utf32_files_are_decoded(case: Any, tmp_path: Path, encoding: str) -> None:
    bom = {"utf-16-be": "\ufeff"}.get(encoding, "")
    text = "event_id,ts,output_text\n" + "".join(
        f"e{i},2026-01-01T00:00:0{i}Z,caf\u00e9 {i}\n" for i in range(5))
    csv = tmp_path / f"{encoding}.csv"
    csv.write_bytes((bom + text).encode(encoding))
    row = case.load(csv).rows()[0]
    assert (row["records_in"], row["rows_loaded"]) == (5, 5)
    jl = tmp_path / f"{encoding}.jsonl"
    jl.write_bytes((bom + "".join(json.dumps(event(10 + i)) + "\n" for i in range(3)))
                   .encode(encoding))
    assert case.load(jl).rows()[0]["rows_loaded"] == 3
    assert case.sql("SELECT output_text FROM events WHERE event_id = 'e0'"
                    ).rows()[0]["output_text"] == "caf\u00e9 0"


def test_utf16_without_a_byte_order_mark_is_refused_by_name(case: Any,
                                                          tmp_path: Path) -> None:
    path = tmp_path / "nobom.csv"
    path.write_bytes("event_id,ts\na,2026-01-01T00:00:00Z\n".encode("utf-16-le"))
    with pytest.raises(FormatError, match="UTF-16"):
        case.load(path)


# ---- size and shape ------------------------------------------------------------------------

def test_wide_records_keep_every_key_in_attributes(case: Any, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FORENSICS_LOAD_MEMORY", "400MB")
    records = [event(i, **{f"k{i}_{j}": j for j in range(1000)}) for i in range(30)]
    path = write_jsonl(tmp_path / "wide.jsonl", records)      # 30,000 distinct keys
    row = case.load(path).rows()[0]
    assert (row["rows_loaded"], row["rows_rejected"]) == (30, 0)
    attrs = json.loads(case.sql("SELECT attributes FROM events WHERE event_id = 'e7'"
                                ).rows()[0]["attributes"])
    assert len(attrs) == 1000 and attrs["k7_999"] == 999 and "user_id" not in attrs


# ---- decode errors in the one error shape ----------------------------------------------------

def _parquet(tmp_path: Path) -> Path:
    path = tmp_path / "ok.parquet"
    pl.DataFrame({"event_id": ["a"], "ts": ["2026-01-01T00:00:00Z"]}).write_parquet(path)
    return path


BROKEN = {
    "deep.json": lambda d: (d / "deep.json").write_text("[" * 200_000 + "]" * 200_000),
    "deep.jsonl": lambda d: (d / "deep.jsonl").write_text(
        '{"a": ' + "[" * 100_000 + "]" * 100_000 + "}\n"),
    "cut.parquet": lambda d: (d / "cut.parquet").write_bytes(_parquet(d).read_bytes()[:-40]),
    "text.jsonl.gz": lambda d: (d / "text.jsonl.gz").write_text('{"a": 1}\n'),
    "cut.jsonl.gz": lambda d: (d / "cut.jsonl.gz").write_bytes(
        gzip.compress(b'{"a": 1}\n' * 10_000)[:200]),
    "garbage.jsonl.zst": lambda d: (d / "garbage.jsonl.zst").write_bytes(os.urandom(4096)),
    "fake.jsonl.zst": lambda d: (d / "fake.jsonl.zst").write_bytes(
        b"\x28\xb5\x2f\xfd" + os.urandom(4096)),
}


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_decode_errors_are_the_error_shape(tmp_path: Path, name: str) -> None:
    BROKEN[name](tmp_path)
    path = tmp_path / name
    code, doc = cli_json("load", str(tmp_path / "c.duckdb"), str(path))
    assert code != 0 and set(doc) == ERROR_KEYS, doc
    assert doc["type"] != "internal" and str(path) in doc["error"], doc
    with forensics.open(tmp_path / "c.duckdb") as c:
        if name.startswith("deep"):   # a nested record is rejected, or the file refused
            assert c.count("events") == 0
        else:
            assert c.count("evidence") == 0


def test_multi_file_load_reports_what_it_committed(tmp_path: Path) -> None:
    a = write_jsonl(tmp_path / "a.jsonl", [event(1)])
    b = write_jsonl(tmp_path / "b.jsonl", [event(2)])
    bad = tmp_path / "bad.jsonl.gz"
    bad.write_text("plain text\n")
    c = write_jsonl(tmp_path / "c.jsonl", [event(3)])
    code, doc = cli_json("load", str(tmp_path / "k.duckdb"), str(a), str(b), str(bad), str(c))
    assert code != 0 and set(doc) == ERROR_KEYS
    assert "Committed before it stopped" in doc["error"]
    assert str(a) in doc["error"] and str(b) in doc["error"]
    assert f"Not attempted: {c}" in doc["error"]
    from forensics.ingest.load import load_files

    with forensics.open(tmp_path / "k2.duckdb") as k:
        with pytest.raises(ForensicsError) as info:
            load_files(k, [a, bad, c])
        assert [r["path"] for r in info.value.committed] == [str(a)]  # type: ignore[attr-defined]


# ---- work folder ---------------------------------------------------------------------------

def test_spill_files_of_a_killed_load_are_cleaned_on_open(tmp_path: Path) -> None:
    case_path = tmp_path / "c.duckdb"
    forensics.open(case_path).close()
    root = workdir.root_for(case_path)
    dead = root / "999999-deadbeef" / "spill"
    dead.mkdir(parents=True)
    (dead / "duckdb_temp_storage-0.tmp").write_bytes(b"\0" * 4096)
    (dead.parent / ".lock").write_bytes(b"")
    # a live process's folder (it holds its lock) is left alone
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys; from pathlib import Path; from forensics.core import workdir; "
        f"d = workdir.session_dir(Path({str(case_path)!r})); print(d, flush=True); "
        "sys.stdin.read()")], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None
        live = Path(holder.stdout.readline().strip())
        with forensics.open(case_path):
            assert not dead.parent.exists()
            assert live.is_dir()
    finally:
        holder.communicate("")
    assert not live.exists()           # gone with its process at a clean exit


def test_a_load_spills_inside_the_case_work_folder(case: Any, tmp_path: Path) -> None:
    seen: list[str] = []

    def look(message: str) -> None:
        if message.startswith("committing"):
            seen.append(str(case.con.execute(
                "SELECT current_setting('temp_directory')").fetchall()[0][0]))

    case.load(write_jsonl(tmp_path / "a.jsonl", [event(1)]), progress=look)
    assert seen and seen[0].startswith(str(workdir.root_for(case.path)))
    snapshots = workdir.session_dir(case.path) / "snapshots"
    assert not any(snapshots.iterdir())      # the snapshot goes once loaded
