"""changes() and timeline() on a real case built from a synthetic incident."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from forensics.cause.changes import interval
from forensics.core.errors import UsageError
from tests import incident


@pytest.fixture
def loaded(case: Any, tmp_path: Path) -> Any:
    return incident.load(case, tmp_path)


def test_changes_merge_declared_with_traffic_and_infer_the_rest(loaded: Any) -> None:
    r = loaded.changes()
    rows = {row["to_version"]: row for row in r.rows()}
    assert set(rows) == {"v2", "m2", "d2"}
    assert rows["v2"]["change_id"] == "CHG-1" and rows["v2"]["source"] == "declared"
    assert rows["v2"]["column"] == "prompt_version" and rows["v2"]["first_seen"]
    drift = rows["m2"]
    assert drift["source"] == "inferred" and drift["column"] == "response_model"
    assert drift["from_version"] == "m1" and "alias drift" in drift["note"]
    assert abs(dt.datetime.fromisoformat(drift["ts"]) - incident.DECOY_AT) < dt.timedelta(
        minutes=15)
    # rollout: the gradual prompt reaches everyone ~6 h later, the switch at once
    assert rows["v2"]["peak_share"] == 1.0
    full = dt.datetime.fromisoformat(rows["v2"]["full_rollout_at"])
    assert dt.timedelta(hours=5) <= full - incident.ROOT_AT <= dt.timedelta(hours=7)
    curve = r.rollout.filter(pl.col("change_id") == "CHG-1").sort("bucket")
    shares = curve["share"].to_list()
    assert shares[0] == 0.0 and 0.05 < shares[2] < 0.4 and shares[-1] == 1.0
    assert "SELECT" in r.sql and r.params["bucket"] == "1 hour"
    assert json.loads(json.dumps(r.to_dict(), default=str))["rollout"]


def test_changes_without_a_change_log(case: Any, tmp_path: Path) -> None:
    incident.load(case, tmp_path, declared=False)
    r = case.changes()
    assert set(r.df["source"].to_list()) == {"inferred"}
    assert set(r.df["to_version"].to_list()) == {"v2", "m2", "d2"}


def test_timeline_rates_with_intervals_and_markers(loaded: Any, tmp_path: Path) -> None:
    t = loaded.timeline("error_rate", by="prompt_version", bucket="6h")
    df = t.df
    assert {"bucket", "group", "value", "count", "n", "low", "high"} <= set(df.columns)
    assert (df["low"] <= df["value"]).all() and (df["value"] <= df["high"]).all()
    v2 = df.filter(pl.col("group") == "v2")
    assert v2["count"].sum() / v2["n"].sum() > 0.1
    assert t.markers.height == 3
    ax = t.plot()
    ax.figure.savefig(tmp_path / "timeline.png")
    assert (tmp_path / "timeline.png").stat().st_size > 1000
    lat = loaded.timeline("latency_p95", bucket="1d")
    assert lat.df.height == 4 and (lat.df["value"] > 0).all()
    assert loaded.timeline("volume", bucket="1d").df["value"].sum() == 96 * 60


def test_timeline_errors_are_friendly(loaded: Any) -> None:
    with pytest.raises(UsageError):
        loaded.timeline("happiness")
    with pytest.raises(UsageError):
        loaded.timeline("bad_rate", by="x; DROP TABLE events")
    assert interval("15m") == "15 minute" and interval("1d") == "1 day"
