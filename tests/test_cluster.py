"""Clustering: failure patterns from text plus labels, determinism, identities kept across
reruns, rendering, the CLI verb; and a real-text check on corpus outputs."""

from __future__ import annotations

import csv
import gzip
import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import forensics
from forensics.cli.main import cli
from forensics.core.errors import UsageError

from .conftest import CORPUS, event, write_jsonl

TOPICS = ["invoice", "password", "shipping", "refund", "account", "subscription", "printer",
          "laptop", "calendar", "report"]


def groups(start: int, n: int) -> list[dict[str, Any]]:
    """Five kinds of bad output (n each), ids from ``start``."""
    out = []
    for j in range(n):
        t = TOPICS[j % len(TOPICS)]
        i = start + 5 * j
        out += [
            event(i, input_text=f"Help with my {t}", output_text=f"I'm sorry, but I can't help "
                  f"with {t} questions. Please contact support."),
            event(i + 1, request_language="en", output_text=f"Um Ihr {t.title()}-Problem zu lösen, "
                  f"öffnen Sie bitte die Einstellungen und wählen Sie den Bereich Konto aus."),
            event(i + 2, expected_format="json", output_text=f"Here is the result: {{'{t}': "
                  f"{j}, 'status': ok"),
            event(i + 3, finish_reason="length", output_text=f"To fix the {t} you first open the "
                  f"main menu, then go to the section called"),
            event(i + 4, output_text=f"The {t} owner is reachable at user{j}.{t}@contoso.com or "
                  f"+49 30 1234 {5600 + j}."),
        ]
    return out


KIND = {0: "refusal", 1: "wrong_language", 2: "malformed_json", 3: "truncated", 4: "pii_leak"}


def kind_of(event_id: str) -> str:
    return KIND[int(event_id[1:]) % 5]


def members(case: Any, run_id: str) -> dict[str, str]:
    return {r["event_id"]: r["cluster_id"] for r in case.sql(
        "SELECT event_id, cluster_id FROM cluster_members WHERE run_id = $r", r=run_id,
        row_cap=None).rows()}


def build(path: Path, n: int = 30) -> Any:
    case = forensics.open(path / "c.duckdb")
    case.load(write_jsonl(path / "a.jsonl", groups(0, n)))
    case.detect()
    return case


def test_clusters_are_the_failure_patterns(tmp_path: Path) -> None:
    with build(tmp_path) as case:
        result = case.cluster()
        got = members(case, result.meta["run_id"])
        assert len(got) == 150 and result.meta["clusters"] == 5
        by_cluster: dict[str, set[str]] = {}
        for event_id, cid in got.items():
            by_cluster.setdefault(cid, set()).add(kind_of(event_id))
        assert all(len(kinds) == 1 for kinds in by_cluster.values())
        rows = {r["cluster_id"]: r for r in result.rows()}
        for cid, kinds in by_cluster.items():
            kind = kinds.pop()
            assert rows[cid]["title"].startswith(kind), rows[cid]["title"]
            assert rows[cid]["size"] == 30 and len(rows[cid]["examples"]) == 3
        category = {kind_of(e): rows[c]["category"] for e, c in got.items()}
        assert category == {"refusal": "capability_loss", "wrong_language": "degradation",
                            "malformed_json": "degradation", "truncated": "degradation",
                            "pii_leak": "data_leak"}
        leak = next(r for r in rows.values() if r["category"] == "data_leak")
        assert all("@contoso.com" not in e["text"] for e in leak["examples"])   # redacted
        html = result._repr_html_()
        assert "<details>" in html and leak["examples"][0]["event_id"] in html
        assert result.to_markdown().count("e.g.") >= 5
        assert result.plot() is not None
        stored = case.sql(result.sql, **result.params).df
        assert stored.height == 5 and set(stored["cluster_id"]) == set(rows)


def test_same_seed_same_clusters(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    with build(tmp_path / "a") as one, build(tmp_path / "b") as two:
        r1, r2 = one.cluster(seed=3, method="kmeans"), two.cluster(seed=3, method="kmeans")
        assert members(one, r1.meta["run_id"]) == members(two, r2.meta["run_id"])
        assert r1.df["title"].to_list() == r2.df["title"].to_list()


def test_identities_survive_more_evidence(tmp_path: Path) -> None:
    with build(tmp_path) as case:
        first = case.cluster()
        before = members(case, first.meta["run_id"])
        case.load(write_jsonl(tmp_path / "b.jsonl", groups(1000, 10)))
        case.detect()
        second = case.cluster()
        after = members(case, second.meta["run_id"])
        assert all(after[e] == c for e, c in before.items())
        assert all(r["status"].startswith("kept") for r in second.rows())
        # only the latest run's membership is kept; the clusters table keeps history
        assert case.count("cluster_members") == 200
        assert case.sql("SELECT count(DISTINCT run_id) AS n FROM clusters").rows()[0]["n"] == 2
        # a pattern that did not exist before gets a new id
        case.load(write_jsonl(tmp_path / "c.jsonl", [
            event(5000 + j, status="error", output_text=None,
                  error=f"Request timed out after {30000 + j} ms") for j in range(30)]))
        case.detect()
        third = case.cluster()
        statuses = {r["cluster_id"]: r["status"] for r in third.rows()}
        assert sorted(s for s in statuses.values() if s == "new") == ["new"]
        assert {c for c, s in statuses.items() if s != "new"} == set(before.values())


def test_where_k_and_errors(tmp_path: Path) -> None:
    with build(tmp_path, n=20) as case:
        only = case.cluster("list_contains(labels, 'refusal')")
        assert only.meta["events"] == 20 and only.meta["clusters"] == 1
        given = case.cluster(k=3, method="kmeans")
        assert given.meta["clusters"] == 3 and given.meta["method"] == "k given"
        everything = case.cluster("all")
        assert everything.meta["events"] == 100
        with pytest.raises(UsageError):
            case.cluster("feature = 'nothing-here'")
        with pytest.raises(UsageError):
            case.cluster(method="magic")
        with pytest.raises(UsageError):
            case.cluster(settings={"n_clusters": 3})


def test_cli_cluster_json(tmp_path: Path) -> None:
    build(tmp_path, n=20).close()
    out = CliRunner().invoke(cli, ["cluster", str(tmp_path / "c.duckdb"), "--json"])
    assert out.exit_code == 0, out.output
    doc = json.loads(out.stdout)
    assert doc["ok"] and doc["run_id"].startswith("cluster-")
    assert len(doc["clusters"]) == 5
    assert {"cluster_id", "title", "size", "category"} <= set(doc["clusters"][0])
    assert sum(c["size"] for c in doc["clusters"]) == 100


@pytest.mark.corpus
def test_real_outputs_cluster_by_failure(tmp_path: Path) -> None:
    """Four kinds of real bad outputs (refusals, wrong language, truncation, malformed JSON)
    from four corpus sources end up in clusters that match their kind."""
    from sklearn.metrics import adjusted_rand_score

    texts = CORPUS / "texts"
    rows: list[dict[str, Any]] = []
    with (texts / "xstest/model_completions/xstest_v2_completions_llama2orig.csv").open() as fh:
        rows += [{"input_text": r["prompt"], "output_text": r["completion"], "_kind": "refusal"}
                 for r in csv.DictReader(fh) if r["final_label"] == "2_full_refusal"][:200]
    lc = texts / "language_confusion"
    with (lc / "DERIVED_lid176ftz_labels_llama-2-instruct.csv").open() as fh:
        wrong = {(r["id"], r["task"], r["source"], r["language"]) for r in csv.DictReader(fh)
                 if r["label_strict"] == "wrong_language"}
    with (lc / "outputs/llama-2-instruct.csv").open() as fh:
        rows += [{"output_text": r["completion"], "request_language": r["language"],
                  "_kind": "wrong_language"} for r in csv.DictReader(fh)
                 if (r["id"], r["task"], r["source"], r["language"]) in wrong][:200]
    tox = texts / ("decodingtrust_toxicity/data/toxicity/generations/system_prompts/"
                   "toxic.jsonl.gpt4.t=0.out0.gz")
    with gzip.open(tox, "rt") as fh:
        for line in fh:
            r = json.loads(line)
            if "'finish_reason': 'length'" in str(r["response"]):
                rows.append({"output_text": r["continuation"], "finish_reason": "length",
                             "_kind": "truncated"})
    rows = rows[:600]
    srag = texts / "structured_rag/structured_rag/run_test/results/experimental-results-9-11-24"
    for path in sorted(srag.glob("*.json"))[:4]:
        data = json.loads(path.read_text())
        rows += [{"output_text": r["response"], "expected_format": "json", "_kind": "malformed"}
                 for r in data["failed_responses"]][:60]
    events = [{**{k: v for k, v in r.items() if k != "_kind"}, "event_id": f"x{i}",
               "ts": f"2026-03-0{1 + i % 9}T10:00:00Z"} for i, r in enumerate(rows)]
    with forensics.open(tmp_path / "c.duckdb") as case:
        case.load(write_jsonl(tmp_path / "e.jsonl", events))
        case.detect()
        result = case.cluster("all")
        got = members(case, result.meta["run_id"])
    truth = [r["_kind"] for r in rows]
    pred = [got[f"x{i}"] for i in range(len(rows))]
    assert adjusted_rand_score(truth, pred) >= 0.8
