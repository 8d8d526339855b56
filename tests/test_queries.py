"""Saved queries: every file parses, its parameters match its SQL, it runs, and the
runner binds parameters, caps rows and stops slow queries."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import forensics
from forensics.cli.main import cli
from forensics.core.errors import QueryError, QueryTimeoutError
from forensics.queries import runner as queries

from .conftest import event, write_jsonl

ALL = queries.list_queries()


@pytest.fixture
def small_case(tmp_path: Path) -> Any:
    recs = [event(i, status="error" if i % 5 == 0 else "ok", plan="pro",
                  retrieval_version="r1" if i < 30 else "r2",
                  retrievals=[{"doc_id": f"d{i % 4 if i < 30 else i % 4 + 2}", "content": "x"}],
                  session_id=f"s{i % 3}", user_id=f"u{i % 3}",
                  tool_name="issue_refund" if i % 7 == 0 else None) for i in range(60)]
    c = forensics.open(tmp_path / "c.duckdb")
    c.load(write_jsonl(tmp_path / "a.jsonl", recs))
    c.load(write_jsonl(tmp_path / "fb.jsonl", [
        {"event_id": "e3", "ts": "2026-03-02T00:00:00Z", "name": "thumbs", "value": "down"}]))
    c.load(write_jsonl(tmp_path / "ch.jsonl", [
        {"ts": "2026-03-01T10:30:00Z", "kind": "retrieval", "feature": "support_chat",
         "from_version": "r1", "to_version": "r2"}]))
    yield c
    c.close()


def test_there_are_at_least_fifteen() -> None:
    assert len(ALL) >= 15


@pytest.mark.parametrize("saved", ALL, ids=[q.name for q in ALL])
def test_header_parses_and_params_match_sql(saved: queries.SavedQuery) -> None:
    assert saved.title and saved.description
    used = set(re.findall(r"getvariable\('(\w+)'\)", saved.sql))
    assert used == {p.name for p in saved.params}, "parameters and getvariable() disagree"
    assert "$" not in saved.sql and "{" not in saved.sql  # bound, never formatted


@pytest.mark.parametrize("saved", ALL, ids=[q.name for q in ALL])
def test_runs_on_a_small_case(small_case: Any, saved: queries.SavedQuery) -> None:
    result = small_case.query(saved.name)
    assert result.sql == saved.sql and set(result.params) == {p.name for p in saved.params}


def test_results_where_the_case_has_data(small_case: Any) -> None:
    for name in ("bad_rate_by_version_day", "error_breakdown", "evidence_inventory",
                 "exposure_window", "tool_calls", "repeated_failure_sessions",
                 "retrieval_doc_churn", "change_log", "version_rollout", "model_alias_drift"):
        assert len(small_case.query(name)) > 0, name


def test_parameters_are_bound_and_checked(small_case: Any) -> None:
    one = small_case.query("bad_rate_by_version_day", feature="support_chat")
    assert one.params == {"feature": "support_chat"} and len(one) > 0
    none = small_case.query("bad_rate_by_version_day", feature="x' OR 1=1 --")
    assert len(none) == 0  # a value, never SQL
    with pytest.raises(QueryError, match="no parameter"):
        small_case.query("bad_rate_by_version_day", nope=1)
    with pytest.raises(QueryError, match="min_bad"):
        small_case.query("repeated_failure_sessions", min_bad="many")
    with pytest.raises(QueryError, match="no saved query"):
        small_case.query("does_not_exist")


def test_row_cap_and_time_limit(small_case: Any) -> None:
    capped = small_case.sql("SELECT * FROM range(1000)", row_cap=10)
    assert len(capped) == 10 and capped.meta["truncated"]
    with pytest.raises(QueryTimeoutError, match="time limit"):
        small_case.sql("SELECT count(*) FROM range(100000000000) a", time_limit=0.5)
    assert small_case.sql("SELECT 1 AS one").rows() == [{"one": 1}]  # still usable


def test_cli_query_and_list(small_case: Any, tmp_path: Path) -> None:
    path = str(small_case.path)
    small_case.close()
    runner = CliRunner()
    listed = json.loads(runner.invoke(cli, ["query", "--list", "--json"]).stdout)
    assert {q["name"] for q in listed["queries"]} == {q.name for q in ALL}
    out = runner.invoke(cli, ["query", path, "bad_rate_by_version_day", "-p",
                              "feature=support_chat", "--json"])
    doc = json.loads(out.stdout)
    assert doc["ok"] and doc["params"] == {"feature": "support_chat"} and doc["rows"]
    csv = runner.invoke(cli, ["query", path, "evidence_inventory", "--format", "csv"]).stdout
    assert csv.splitlines()[0].startswith("evidence_id,path,sha256")
    bad = runner.invoke(cli, ["query", path, "evidence_inventory", "-p", "x", "--json"])
    assert bad.exit_code == 1 and json.loads(bad.stdout)["ok"] is False


# The duckdb CLI: dev requirements install it into the virtualenv (duckdb-cli).
DUCKDB_CLI = shutil.which("duckdb", path=f"{Path(sys.executable).parent}:{os.environ['PATH']}")


@pytest.mark.skipif(not DUCKDB_CLI, reason="duckdb CLI not installed")
def test_same_file_runs_in_the_duckdb_cli(small_case: Any) -> None:
    path = str(small_case.path)
    small_case.close()
    sql = queries.get("bad_rate_by_version_day").path.read_text()
    assert DUCKDB_CLI
    out = subprocess.run([DUCKDB_CLI, "-readonly", "-json", path],
                         input="SET VARIABLE feature = 'support_chat';\n" + sql,
                         capture_output=True, text=True, check=True).stdout
    assert json.loads(out)[0]["feature"] == "support_chat"


SAMPLE = Path(__file__).resolve().parent.parent / "sample_data" / "prompt_regression"
# empty on a clean sample by design: it has no malformed record
EMPTY_ON_SAMPLE = {"reject_reasons"}


@pytest.fixture(scope="module")
def sample_case(tmp_path_factory: pytest.TempPathFactory) -> Any:
    c = forensics.open(tmp_path_factory.mktemp("sample") / "sample.duckdb")
    for name in ("events.jsonl.gz", "feedback.jsonl.gz", "changes.jsonl"):
        c.load(SAMPLE / name)
    c.detect()
    c.cluster()
    c.mark("detected", "2026-03-10T16:00:00Z", note="support escalation")
    yield c
    c.close()


@pytest.mark.parametrize("saved", ALL, ids=[q.name for q in ALL])
def test_every_query_has_results_on_the_sample_drill(sample_case: Any,
                                                     saved: queries.SavedQuery) -> None:
    result = sample_case.query(saved.name)
    if saved.name in EMPTY_ON_SAMPLE:
        assert len(result) == 0
    else:
        assert len(result) > 0, f"{saved.name} is empty on sample_data/prompt_regression"


def test_labels_by_day_keeps_bad_labels_unless_asked(sample_case: Any) -> None:
    bad = sample_case.query("labels_by_day").df
    every = sample_case.query("labels_by_day", include_info=True).df
    assert bad["bad"].all() and not every["bad"].all()
    assert "output_language" in every["label"].to_list()
    assert "output_language" not in bad["label"].to_list()
