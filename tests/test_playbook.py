"""Playbook analytics on real case files: milestones and the schema migration, severity,
the detection gap and its alert backtest, the containment what-if, the incident timeline."""

from __future__ import annotations

import datetime as dt
import json
import re
import shutil
from importlib import resources
from pathlib import Path
from typing import Any

import duckdb
import matplotlib
import numpy as np
import polars as pl
import pytest
from click.testing import CliRunner

import forensics
from forensics.case import SCHEMA_VERSION
from forensics.cli.main import cli
from forensics.core.errors import ReadOnlyCaseError, UsageError
from forensics.playbook import detection_gap as alerts
from forensics.playbook.severity import DEFAULT_RULES, categorize
from forensics.queries import runner as queries
from tests import playbook_incident as pi

matplotlib.use("Agg")
HOUR = dt.timedelta(hours=1)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """The incident loaded once; each test gets its own copy of the case file."""
    folder = tmp_path_factory.mktemp("incident")
    case = forensics.open(folder / "case.duckdb")
    truth = pi.load(case, folder)
    case.close()
    return folder / "case.duckdb", truth


@pytest.fixture
def inc(built: tuple[Path, dict[str, Any]], tmp_path: Path) -> Any:
    path = tmp_path / "case.duckdb"
    shutil.copy(built[0], path)
    case = forensics.open(path)
    yield case
    case.close()


@pytest.fixture
def truth(built: tuple[Path, dict[str, Any]]) -> dict[str, Any]:
    return built[1]


# -- milestones and the schema migration -------------------------------------------------

def test_version_1_case_file_migrates_to_milestones(tmp_path: Path) -> None:
    path = tmp_path / "v1.duckdb"
    con = duckdb.connect(str(path))
    con.execute(resources.files("forensics.core").joinpath("sql/schema.sql").read_text())
    con.execute("INSERT INTO meta VALUES ('schema_version', '1'), ('created_by', 'old')")
    con.execute("INSERT INTO events (event_id, ts, feature) VALUES ('e1', '2026-03-01', 'f')")
    con.close()
    old = forensics.open(path, read_only=True)          # read-only: left as it is
    assert old.schema_version == 1 and old.milestones().df.height == 0
    assert old.milestones().meta["warnings"]
    old.close()
    case = forensics.open(path)
    assert case.schema_version == SCHEMA_VERSION
    assert case.count("events") == 1 and case.count("milestones") == 0
    case.mark("detected", "2026-03-01T10:00:00Z")
    case.close()
    again = forensics.open(path)                         # reopening migrates nothing twice
    assert again.schema_version == SCHEMA_VERSION and again.count("milestones") == 1
    new = forensics.open(tmp_path / "new.duckdb")        # a new case has the same table
    cols = lambda c: c.con.execute(  # noqa: E731
        "SELECT column_name, data_type FROM information_schema.columns "
        "WHERE table_name = 'milestones' ORDER BY ordinal_position").fetchall()
    assert cols(new) == cols(again)
    new.close()
    again.close()


def test_mark_records_utc_times_and_corrections(case: Any) -> None:
    case.mark("detected", "2026-03-13T18:20:00+01:00", note="support escalation")
    case.mark("contained", dt.datetime(2026, 3, 13, 16, 0))
    case.mark("detected", "2026-03-13T17:05:00Z", note="corrected")
    m = case.milestones()
    assert m.df.height == 3
    assert m.meta["current"]["detected"] == dt.datetime(2026, 3, 13, 17, 5)
    assert m.meta["warnings"] == ["contained (2026-03-13 16:00) is recorded before detected "
                                  "(2026-03-13 17:05)"]
    rows = case.query("incident_milestones").df               # the saved query agrees
    assert rows["name"].to_list() == ["contained", "detected"]
    assert rows["hours_since_previous"][1] == round(65 / 60, 2)
    with pytest.raises(UsageError):
        case.mark("not a name!", "2026-03-13")
    with pytest.raises(UsageError):
        case.mark("resolved", "yesterday")


def test_mark_refuses_a_read_only_case(case: Any) -> None:
    path = case.path
    case.close()
    ro = forensics.open(path, read_only=True)
    with pytest.raises(ReadOnlyCaseError):
        ro.mark("detected")
    ro.close()


# -- the episode and the detection gap ---------------------------------------------------

def test_onset_end_and_touched_features(inc: Any) -> None:
    gap = inc.detection_gap("pii_leak")
    ep = gap.episode
    assert ep.meta["suspect"]["change_id"] == "CHG-9"
    assert abs(ep.onset - pi.ONSET) <= HOUR
    assert abs(ep.meta["change_point"] - pi.ONSET) <= 3 * HOUR
    assert ep.meta["contained_at"] == pi.ROLLBACK
    assert "CHG-9-RB" in ep.meta["contained_source"] and not ep.meta["ongoing"]
    assert ep.meta["features_touched"] == ["support_chat"]
    assert 0 < ep.meta["baseline_rate"] < 0.01


def test_onset_without_suspect_is_the_change_point(inc: Any) -> None:
    gap = inc.detection_gap("pii_leak", suspect=False)
    assert gap.meta["onset_source"] == "change point"
    assert abs(gap.meta["onset"] - pi.ONSET) <= 3 * HOUR


def test_first_signals_follow_the_onset(inc: Any) -> None:
    m = inc.detection_gap("pii_leak").meta
    onset = m["onset"]
    assert onset <= m["first_bad_output"] < onset + HOUR
    assert m["first_flag"] >= m["first_bad_output"] and 0 < m["flag_coverage"] < 0.5
    assert m["first_negative_feedback"] > m["first_bad_output"]
    assert m["first_complaint"] >= m["first_bad_output"] + 2 * HOUR
    assert m["complaints"] <= m["negative_feedback"]
    assert m["first_complaint_after_onset_hours"] > 2


def test_backtest_proposes_the_earliest_rule_without_false_alarms(inc: Any) -> None:
    gap = inc.detection_gap("pii_leak")
    best = gap.meta["best_rule"]
    assert best["false_alarms"] == 0 and best["caught"]
    assert pi.ONSET < best["fired_at"] <= pi.ONSET + 4 * HOUR
    assert best["headroom"] is None or best["headroom"] >= 1.2
    df = gap.df
    assert df.height == 2 * (3 * 4 * 7 + 4 * 5)          # two scopes x the default grid
    fired = df.filter(pl.col("fired_at").is_not_null() & (pl.col("false_alarms") == 0)
                      & (pl.col("headroom").is_null() | (pl.col("headroom") >= 1.2)))
    assert best["fired_at"] == fired["fired_at"].min()
    # a lax rule cries wolf in the weeks before, and it is counted
    lax = df.filter((pl.col("kind") == "threshold") & (pl.col("multiple") == 1.5)
                    & (pl.col("min_events") == 10) & (pl.col("window") == 1))
    assert lax["false_alarms"].min() > 0
    assert lax["false_alarms_per_week"].min() > 0 and lax["first_false_alarm"].min() < pi.ONSET
    json.dumps(gap.to_dict())
    assert "<table>" in gap._repr_html_() and gap.plot() is not None


def test_false_alarms_are_counted_as_episodes() -> None:
    n = np.full(100, 100.0)
    bad = np.ones(100)
    bad[[20, 21, 22, 50]] = 12.0                       # two alarms before the onset at 80
    bad[80:] = 15.0
    rows = alerts.threshold_rules(alerts.Scope("all", None, n, bad), 80, windows=(1,),
                                  min_events=(10,), multiples=(6.0,))
    assert rows[0]["false_alarms"] == 2 and rows[0]["fired"] == 80
    assert rows[0]["first_false"] == 20
    strict = alerts.threshold_rules(alerts.Scope("all", None, n, bad), 80, windows=(1,),
                                    min_events=(10,), multiples=(8.0,))
    assert strict[0]["false_alarms"] == 0 and strict[0]["fired"] == 80


def test_saved_alert_query_reproduces_the_backtest(inc: Any, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "alerts"
    gap = inc.detection_gap("pii_leak", save=folder)
    path = Path(gap.meta["alert_query_path"])
    assert path.parent == folder and path.read_text().startswith("-- title: Alert:")
    saved = queries.parse(path)                       # the saved-query format, checked
    assert {p.name for p in saved.params} == set(re.findall(r"getvariable\('(\w+)'\)",
                                                            saved.sql))
    assert "$" not in saved.sql and "{" not in saved.sql
    best = gap.meta["best_rule"]
    cusum = gap.df.filter((pl.col("kind") == "cusum") & pl.col("caught")).row(0, named=True)
    other = tmp_path / "cusum.sql"
    other.write_text(alerts.alert_sql(cusum, gap.episode, gap.meta))
    monkeypatch.setenv("FORENSICS_QUERIES", str(folder) + ":" + str(tmp_path))
    for name, rule in ((path.stem, best), ("cusum", cusum)):
        rows = inc.query(name).df
        fires = rows.filter(pl.col("fire"))["checked_at"]
        assert fires.filter(fires > gap.meta["onset"]).min() == rule["fired_at"]
        before = rows.filter(pl.col("checked_at") <= gap.meta["onset"])["fire"]
        starts = (before & ~before.shift(1, fill_value=False)).sum()
        assert starts == rule["false_alarms"]


# -- containment what-if -------------------------------------------------------------------

def test_containment_matches_the_planted_truth(inc: Any, truth: dict[str, Any]) -> None:
    later = pi.ONSET + dt.timedelta(hours=12)
    w = inc.containment("pii_leak", at=[later])
    assert w.meta["suspect"]["change_id"] == "CHG-9"
    assert w.meta["exposure_end"] == pi.ROLLBACK
    for row in (w.at("deployed"), w.at(f"at {later:%Y-%m-%d %H:%M}")):
        assert row is not None
        events, users = pi.spared(truth, row["t"])
        assert abs(row["events_spared"] - events) <= 0.1 * events + 3
        assert row["events_low"] <= events + 3 and events - 3 <= row["events_high"]
        assert abs(row["users_spared"] - users) <= 0.1 * users + 3
    assert w.at("contained")["events_spared"] == 0
    assert 0 < w.meta["old_rate"] < 0.01 and w.meta["caused_fraction"] > 0.9
    curve = w.df.filter(pl.col("label") == "")["events_spared"].to_numpy()
    assert (np.diff(curve) <= 1e-9).all()                 # later containment spares less
    json.dumps(w.to_dict())
    assert w.plot() is not None


def test_containment_by_stratum(inc: Any, truth: dict[str, Any]) -> None:
    w = inc.containment("pii_leak", strata="tenant")
    assert w.meta["strata"] == "tenant"
    assert set(w.meta["old_rate_by_stratum"]) == {"acme", "globex"}
    events, users = pi.spared(truth, pi.ONSET)
    row = w.at("deployed")
    assert abs(row["events_spared"] - events) <= 0.1 * events + 3
    assert abs(row["users_spared"] - users) <= 0.1 * users + 3


def test_fallback_spares_every_pattern_event(inc: Any) -> None:
    rollback = inc.containment("pii_leak").at("deployed")
    fallback = inc.containment("pii_leak", mode="fallback").at("deployed")
    assert fallback["events_spared"] >= rollback["events_spared"]
    assert fallback["expected_on_old"] == 0


def test_recorded_containment_wins_and_a_change_can_be_named(inc: Any) -> None:
    inc.mark("contained", pi.ONSET + dt.timedelta(hours=20))
    w = inc.containment("pii_leak", change="CHG-9")
    assert w.meta["exposure_end"] == pi.ONSET + dt.timedelta(hours=20)
    assert w.meta["exposure_end_source"].startswith("recorded")
    assert w.meta["suspect"]["verdict"] == "given"
    with pytest.raises(UsageError):
        inc.containment("pii_leak", change="CHG-404")
    with pytest.raises(UsageError):
        inc.containment("pii_leak", mode="undo")


# -- severity --------------------------------------------------------------------------------

def test_severity_decides_by_the_first_matching_rule(inc: Any) -> None:
    s = inc.severity("pii_leak")
    ev = s.meta["evidence"]
    assert ev["category"] == "data leak" and ev["user_visible"] and not ev["ongoing"]
    assert ev["features"] == ["support_chat"] and ev["window_end"] == pi.ROLLBACK
    assert s.meta["level"] == "critical" and s.meta["rule"] == "harm-or-exposure-at-scale"
    assert s.meta["respond_within"] == "15 minutes"
    assert 0 < ev["user_share"] <= 1 and ev["affected_users"] <= ev["active_users"]
    matched = s.df.filter(pl.col("matched"))
    assert matched["rule"][0] == s.meta["rule"] and s.df.height == len(DEFAULT_RULES)
    first = s.df.row(0, named=True)
    assert not first["matched"] and "ongoing" in first["failed"]
    assert "data leak" in s.meta["reason"] and "Severity: critical" in s.to_markdown()


def test_severity_category_override_and_response_time(inc: Any) -> None:
    inc.mark("detected", pi.ONSET + dt.timedelta(hours=5))
    inc.mark("contained", pi.ONSET + dt.timedelta(hours=5, minutes=50))
    leak = inc.severity("pii_leak")
    assert leak.meta["level"] == "critical" and leak.meta["responded_in_minutes"] == 50
    assert leak.meta["response_within_target"] is False          # 50 min > 15 min
    s = inc.severity("pii_leak", category="degradation")
    assert s.meta["level"] in ("high", "medium") and s.meta["evidence"]["category_source"] == \
        "given"
    assert s.meta["response_within_target"] is True


def test_severity_rules_from_toml_and_yaml(inc: Any, tmp_path: Path) -> None:
    toml = tmp_path / "rules.toml"
    toml.write_text('[[rule]]\nname = "any-leak"\nlevel = "high"\ncategory = ["data leak"]\n'
                    'why = "our policy"\n\n[[rule]]\nname = "rest"\nlevel = "low"\n')
    s = inc.severity("pii_leak", rules=toml)
    assert (s.meta["level"], s.meta["rule"]) == ("high", "any-leak")
    yaml = tmp_path / "rules.yaml"
    yaml.write_text("- {name: huge, level: critical, min_users: 100000}\n"
                    "- {name: rest, level: medium}\n")
    assert inc.severity("pii_leak", rules=yaml).meta["rule"] == "rest"
    with pytest.raises(UsageError, match="unknown keys"):
        inc.severity("pii_leak", rules=[{"level": "low", "min_userz": 3}])
    with pytest.raises(UsageError, match="category"):
        inc.severity("pii_leak", rules=[{"level": "low", "category": ["oops"]}])


def test_categories_from_signal_names() -> None:
    assert categorize({"pii_leak": 5, "over_refusal": 2, "hallucination": 1,
                       "unauthorized_action": 1, "malformed_json": 1, "toxicity": 1}) == {
        "data leak": 5, "capability loss": 2, "misinformation": 1, "unauthorized action": 1,
        "degradation": 1, "harmful output": 1}


# -- incident timeline ----------------------------------------------------------------------

def test_incident_timeline_merges_and_computes_durations(inc: Any) -> None:
    inc.mark("detected", pi.ONSET + dt.timedelta(hours=6, minutes=30))
    inc.mark("resolved", pi.ROLLBACK + dt.timedelta(days=1))
    inc.con.execute("INSERT INTO clusters VALUES ('C1', 'r1', 'leaked e-mail addresses', "
                    "['email'], 3, 'data leak', NULL)")
    first = inc.sql("SELECT event_id, ts FROM event_facts WHERE list_contains(labels, "
                    "'pii_leak') AND ts > $t ORDER BY ts LIMIT 3", t=pi.ONSET).df
    inc.con.executemany("INSERT INTO cluster_members VALUES (?, 'C1', 'r1')",
                        [[e] for e in first["event_id"]])
    tl = inc.incident_timeline("pii_leak")
    kinds = tl.df["kind"].to_list()
    assert {"suspect", "onset", "signal", "alert", "cluster", "milestone"} <= set(kinds)
    assert tl.df["ts"].is_sorted()
    events = tl.df["event"].to_list()
    assert "contained (inferred)" in events and "detected" in events
    cluster = tl.df.filter(pl.col("kind") == "cluster").row(0, named=True)
    assert cluster["ts"] == first["ts"][0]
    d = tl.meta["durations"]
    assert d["time_to_detect"]["hours"] == 6.5 and d["time_to_detect"]["text"] == "6 h 30 min"
    assert d["time_to_contain"]["hours"] == (pi.ROLLBACK - pi.ONSET).total_seconds() / 3600
    assert d["time_to_resolve"]["hours"] == d["time_to_contain"]["hours"] + 24
    assert d["alert_lead_over_detection"]["hours"] > 0
    assert "time to detect: 6 h 30 min" in tl.to_markdown()
    assert tl.plot() is not None


# -- command line ---------------------------------------------------------------------------

def test_cli_verbs_print_one_json_document(inc: Any, tmp_path: Path) -> None:
    path = str(inc.path)
    inc.close()
    run = CliRunner()

    def call(*args: str) -> dict[str, Any]:
        out = run.invoke(cli, [*args, "--json"])
        assert out.exit_code == 0, out.output
        doc: dict[str, Any] = json.loads(out.output)
        assert doc["ok"]
        return doc

    assert call("mark", path, "detected", "--at", "2026-03-12T15:00:00Z")["meta"]["name"] \
        == "detected"
    assert call("milestones", path)["rows"][0]["name"] == "detected"
    sev = call("severity", path, "--label", "pii_leak")
    assert sev["meta"]["level"] == "critical" and sev["meta"]["rule"]
    gap = call("detection-gap", path, "--label", "pii_leak", "--save", str(tmp_path / "q"))
    assert gap["meta"]["best_rule"]["false_alarms"] == 0 and gap["alert_sql"]
    assert gap["meta"]["time_to_detect_hours"] == 6.0
    what = call("containment", path, "--label", "pii_leak", "--at", "2026-03-12T21:00:00Z",
                "--plot", str(tmp_path / "c.png"))
    assert any(r["label"] == "at 2026-03-12 21:00" for r in what["rows"])
    assert (tmp_path / "c.png").stat().st_size > 0
    tl = call("incident", path, "--label", "pii_leak", "--plot", str(tmp_path / "t.png"))
    assert tl["meta"]["durations"]["time_to_detect"]["hours"] == 6.0
    bad = run.invoke(cli, ["containment", path, "--label", "pii_leak", "--change", "nope",
                           "--json"])
    assert bad.exit_code == 1 and json.loads(bad.output)["ok"] is False


# -- the playbook's answers in one call ---------------------------------------------------

def test_playbook_gathers_the_post_mortem_figures(inc: Any) -> None:
    inc.mark("detected", pi.ONSET + dt.timedelta(hours=6))
    pb = inc.playbook("pii_leak")
    m = pb.meta
    assert m["severity"] == "critical" and m["severity_rule"] and m["severity_reason"]
    assert m["time_to_detect_hours"] == 6.0 and m["suspect"] == "CHG-9"
    assert m["alert_false_alarms"] == 0 and m["alert_lead_hours"] > 0
    assert m["containment_mode"] == "rollback"
    assert m["users_spared_if_alert"] >= m["users_spared_if_detected"] > 0
    lo, hi = m["users_spared_if_alert_interval"]
    assert lo <= m["users_spared_if_alert"] <= hi
    assert pb.severity.meta["level"] == m["severity"] and pb.timeline.df.height > 5
    assert "alert that would have caught it" in pb.df["item"].to_list()
    path = str(inc.path)
    inc.close()
    out = CliRunner().invoke(cli, ["playbook", path, "--label", "pii_leak", "--json"])
    assert out.exit_code == 0, out.output
    assert json.loads(out.output)["meta"]["severity"] == "critical"


def test_a_pattern_that_never_rose(inc: Any, tmp_path: Path) -> None:
    gap = inc.detection_gap("false")
    assert gap.meta["onset"] is None and gap.meta["best_rule"] is None and gap.meta["warning"]
    with pytest.raises(UsageError):
        gap.save_query(tmp_path)
    sev = inc.severity("false")
    assert sev.meta["level"] == "low" and sev.meta["warnings"]
    assert inc.incident_timeline("false").meta["durations"]["exposure"]["hours"] is None
    with pytest.raises(UsageError):
        inc.containment("false")
    assert "containment_unavailable" in inc.playbook("false").meta


def test_an_empty_case_says_so(case: Any) -> None:
    with pytest.raises(UsageError, match="no events"):
        case.detection_gap()
