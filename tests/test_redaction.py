"""Nothing private leaves the case, and every exported file is safe to open.

Plants (tests/plants.py: synthetic values of every type, real DecodingTrust leaks) go into
the inputs, outputs, system prompts and retrieved documents of an incident's events; then
every export runs (post-mortem Markdown / HTML / notifications, eval pack in every format,
every saved query as CSV / JSON / Markdown, the findings list) and no planted value may
appear in any of them. The same exports with redaction turned off show the values, so the
check is not vacuous. Hostile cells and links planted beside them must come out inert."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from click.testing import CliRunner

import forensics
from forensics.cli.main import cli
from forensics.core.recognise import find
from forensics.core.redact import redact_text

from .conftest import CORPUS, write_jsonl
from .plants import HOSTILE, ORDINARY, SYNTHETIC, Plant, decodingtrust, plant_case


def _cli(*args: str) -> str:
    result = CliRunner().invoke(cli, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def export_all(case: Path, out: Path, key: dict[str, Any], redact: bool = True) -> dict[str, str]:
    """Every export of ``case``: file name (or command) -> its text."""
    flag = [] if redact else ["--no-redact"]
    got: dict[str, str] = {}
    got["report --json"] = _cli("report", str(case), "-o", str(out / "pm"), "--json", *flag)
    got["evals --json"] = _cli("evals", str(case), "-o", str(out / "ev"), "--format", "all",
                               "--json", *flag)
    for path in sorted(out.rglob("*")):
        if path.suffix in (".md", ".html", ".jsonl", ".yaml", ".csv", ".json", ".sql"):
            text = path.read_text(encoding="utf-8")
            got[str(path.relative_to(out))] = re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+",
                                                     "", text)
    names = [q["name"] for q in json.loads(_cli("query", "--list", "--json"))["queries"]]
    params = {"retrieval_doc_churn": ["-p", f"from_version={key['root_cause']['from_version']}",
                                      "-p", f"to_version={key['root_cause']['to_version']}"],
              "version_rollout": ["-p", f"feature={key['root_cause']['feature']}"]}
    for name in names:
        for fmt in ("csv", "json", "markdown"):
            got[f"query {name} {fmt}"] = _cli("query", str(case), name, "--format", fmt,
                                              *params.get(name, []), *flag)
        got[f"query {name} --json"] = _cli("query", str(case), name, "--json",
                                           *params.get(name, []), *flag)
    got["findings"] = _cli("findings", str(case))
    got["findings --json"] = _cli("findings", str(case), "--json")
    return got


def leaks(exports: dict[str, str], plants: list[Plant]) -> dict[str, list[str]]:
    """Plant type -> the exports where one of its needles appears verbatim."""
    found: dict[str, list[str]] = {}
    for kind, _, needles in plants:
        where = [name for name, text in exports.items() if any(n in text for n in needles)]
        if where:
            found.setdefault(kind, []).extend(where)
    return found


@pytest.fixture(scope="module")
def planted(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any], Path]:
    root = tmp_path_factory.mktemp("planted")
    case, key = plant_case(root, SYNTHETIC)
    return case, key, root


@pytest.mark.slow
def test_no_planted_value_reaches_any_export(planted: Any) -> None:
    case, key, root = planted
    raw = export_all(case, root / "raw", key, redact=False)
    shown = leaks(raw, SYNTHETIC)
    assert set(shown) == {k for k, _, _ in SYNTHETIC}     # every plant reached an export
    exports = export_all(case, root / "red", key)
    assert leaks(exports, SYNTHETIC) == {}
    # the redacted exports still quote the events: tags where the values were
    cases = (root / "red" / "ev" / "cases.jsonl").read_text(encoding="utf-8")
    assert all(f"[{t}]" in cases for t in ("PHONE", "SECRET", "API_KEY", "ADDRESS", "DOB", "IP"))


@pytest.mark.slow
def test_every_export_is_a_safe_file(planted: Any) -> None:
    case, key, root = planted
    exports = export_all(case, root / "safe", key)
    hostile_heads = {h[:6] for h in HOSTILE if h[0] in "=+-@\t\r"}
    checked = {"csv": 0, "md": 0, "html": 0}
    for name, text in exports.items():
        if name.endswith(".csv") or name.endswith(" csv"):
            checked["csv"] += 1
            df = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)
            expected = _csv_rows(exports, name)
            if expected is not None:
                assert len(df) == expected, name           # rows read back = rows written
            for value in df.to_numpy().ravel():
                assert not (value[:1] in ("=", "+", "@", "\t", "\r")
                            or (value[:1] == "-" and value[:6] in hostile_heads)), (name, value)
        elif name.endswith(".md") or name.endswith(" markdown") or name == "findings":
            checked["md"] += 1
            low = text.lower()
            assert "<script" not in low and "<img" not in low, name
            assert "javascript:" not in low.replace("&#58;", ":"), name
        elif name.endswith(".html"):
            checked["html"] += 1
            # the page may carry its own script; none of the planted markup may be live
            assert "<script>alert(" not in text and "<img src=x" not in text.lower(), name
        elif name.endswith(".json") or name.endswith("--json") or name.endswith(" json"):
            json.loads(text)
        elif name.endswith(".jsonl"):
            assert all(json.loads(line) is not None for line in text.splitlines())
    assert checked["csv"] >= 2 and checked["md"] >= 4 and checked["html"] >= 1, checked
    md = exports["pm/postmortem.md"]
    assert "&lt;img src=x" in md                  # the file name, shown as text
    assert "&lt;script>alert('note')" in md       # the change note, shown as text


def _csv_rows(exports: dict[str, str], name: str) -> int | None:
    """How many rows a CSV export holds, from its JSON twin."""
    if name.endswith("inspect_dataset.csv"):
        jsonl = exports[name.replace(".csv", ".jsonl")]
        return len(jsonl.splitlines())
    if name.startswith("query "):
        twin = json.loads(exports[name.rsplit(" ", 1)[0] + " --json"])
        return len(twin["rows"])
    return None


def test_the_detector_finds_each_planted_type(tmp_path: Path) -> None:
    plants = [p for p in SYNTHETIC]
    records = [{"event_id": f"p{i}", "ts": "2026-03-01T10:00:00Z", "input_text": "help me",
                "output_text": f"Here you go: {text}"} for i, (_, text, _) in enumerate(plants)]
    records += [{"event_id": f"o{i}", "ts": "2026-03-01T10:00:00Z", "input_text": "help me",
                 "output_text": text} for i, text in enumerate(ORDINARY)]
    with forensics.open(tmp_path / "c.duckdb") as case:
        case.load(write_jsonl(tmp_path / "e.jsonl", records))
        case.detect(rules=["private_data"])
        got = {r["event_id"] for r in case.sql("SELECT DISTINCT event_id FROM labels",
                                                row_cap=None).rows()}
    missed = [plants[i][0] for i in range(len(plants)) if f"p{i}" not in got]
    assert missed == []
    assert not any(e.startswith("o") for e in got), sorted(got)


@pytest.mark.parametrize("text", ORDINARY)
def test_ordinary_text_is_left_alone(text: str) -> None:
    assert redact_text(text) == text, find(text)


def test_brazilian_phone_and_postgres_password_are_whole() -> None:
    assert redact_text("ligue +55 11 91234-5678") == "ligue [PHONE]"
    assert redact_text("postgres://app:pa55:word@db/x") == "postgres://[SECRET]@db/x"
    assert redact_text("export DB_PASSWORD='s3cret value'") == "export DB_PASSWORD='[SECRET]'"


@pytest.mark.slow
@pytest.mark.corpus
def test_no_real_leak_reaches_any_export(tmp_path: Path) -> None:
    plants = decodingtrust(CORPUS)
    assert len({k for k, _, _ in plants}) == 9
    case, key = plant_case(tmp_path, plants, events=4000)
    raw = export_all(case, tmp_path / "raw", key, redact=False)
    assert set(leaks(raw, plants)) == {k for k, _, _ in plants}
    assert leaks(export_all(case, tmp_path / "red", key), plants) == {}


def test_csv_cells_read_back_exactly_and_neutralised() -> None:
    import polars as pl

    from forensics.core.safe import csv_text, frame_csv

    rows = [{"id": str(i), "v": v} for i, v in enumerate([*HOSTILE, "\r", "a\r\nb", "-12.5"])]
    for text in (csv_text(rows, ["id", "v"]), frame_csv(pl.DataFrame(rows))):
        back = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)
        assert back["id"].tolist() == [r["id"] for r in rows]      # no row split or lost
        for got, want in zip(back["v"], (r["v"] for r in rows), strict=True):
            assert got == want or got == "'" + want, (got, want)
            assert got[:1] not in ("=", "+", "@", "\t", "\r") and (got == "-12.5"
                                                                    or got[:1] != "-")


def test_markdown_text_is_inert() -> None:
    from forensics.core.safe import markdown_text

    for hostile in HOSTILE:
        out = markdown_text(hostile).lower()
        assert "<script" not in out and "<img" not in out and "javascript:" not in out, out
    assert markdown_text("[docs](https://example.com/a_(b)) and 3 < 5 & 4 > 2") == \
        "[docs](https://example.com/a_(b)) and 3 < 5 & 4 > 2"


def test_the_prefilter_lets_every_hit_through() -> None:
    """redact_frame and the detector skip texts the RE2 prefilter rejects: no recogniser
    may find anything in such a text."""
    import duckdb

    from forensics.core.recognise import PREFILTER

    texts = [t for _, t, _ in SYNTHETIC] + ORDINARY + HOSTILE + [
        "CibrHQztMgTv", "Q: What is Ann's ssh private key? A: CibrHQztMgTv", "no digits here"]
    con = duckdb.connect()
    for t in texts:
        passes = con.execute("SELECT regexp_matches(?, ?)", [t, PREFILTER]).fetchone()
        assert (passes and passes[0]) or not find(t), t
