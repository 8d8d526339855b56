"""Containment what-if: had the suspect change been rolled back (or the feature switched to
a fallback) at time T, how many bad outputs, sessions and users would have been spared?

>>> w = case.containment("over_refusal")
>>> onset = w.at("onset")
>>> onset["bad_after"], onset["traffic_after"], onset["events_spared"]
(436, 1582, 425.2)
>>> ax = w.plot()

The counterfactual is the old version's pattern rate on the same traffic: the traffic the
new version served after T would have produced ``rate_old x traffic`` pattern events on the
old version, so the spared events are ``bad - rate_old x traffic`` (``rate_old`` = 0 for a
fallback that never shows the pattern). Users and sessions: each pattern event on the new
version is one the change caused with probability ``f = spared / bad`` (over the whole
exposure), and a user is spared when none of their events before T was caused and at
least one after T was: ``sum_u (1-f)^{a_u(T)} - (1-f)^{k_u}`` (``a_u(T)``: their pattern
events before T, ``k_u``: in all), computed for every T at once from one time-ordered pass.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

from forensics.cause.changepoints import hours
from forensics.core import stats
from forensics.core.db import frame
from forensics.core.errors import UsageError
from forensics.core.handle import CaseHandle
from forensics.core.metrics import column
from forensics.core.result import Result
from forensics.core.selection import Pattern
from forensics.playbook.episode import EpisodeResult, episode
from forensics.playbook.milestones import recorded, to_utc

if TYPE_CHECKING:
    from forensics.playbook.detection_gap import DetectionResult

MODES = ("rollback", "fallback")

MINUTES_SQL = """
SELECT time_bucket(INTERVAL 1 minute, ts) AS minute, {new} AS new,
       coalesce(CAST({stratum} AS VARCHAR), '(none)') AS stratum, count(*) AS n,
       count(*) FILTER (WHERE coalesce({cond}, false)) AS bad
FROM event_facts
WHERE coalesce(feature, '(none)') = $feature AND ts >= $lo AND ts < $hi
GROUP BY ALL
ORDER BY minute"""

EXPOSED_SQL = """
SELECT coalesce(user_id, '(unknown)') AS user_id,
       coalesce(session_id, '(unknown)') AS session_id, ts,
       coalesce(CAST({stratum} AS VARCHAR), '(none)') AS stratum
FROM event_facts
WHERE coalesce(feature, '(none)') = $feature AND ts >= $start AND ts < $end
  AND {new} AND coalesce({cond}, false)
ORDER BY ts"""


class ContainmentResult(Result):
    """One row per containment time T (``.df``): events, sessions and users spared with
    intervals; the suspect, the old rate and the actual containment in ``meta``."""

    kind = "containment"

    def at(self, label: str) -> dict[str, Any] | None:
        """The row of a named time: ``onset``, ``deployed``, ``alert``, ``detected``,
        ``contained``, ..."""
        rows = self.df.filter(pl.col("label") == label)
        return rows.row(0, named=True) if rows.height else None

    def plot(self, ax: Any = None) -> Any:
        """Spared events and users against the containment time, with the named times."""
        import matplotlib.pyplot as plt

        if ax is None:
            _, axes = plt.subplots(2, 1, figsize=(10, 5.2), sharex=True)
        else:
            axes = [ax, ax.twinx()]
        curve = self.df.filter(pl.col("label") == "")
        t = curve["t"].to_list()
        for a, what, colour in ((axes[0], "events", "#c0392b"), (axes[1], "users", "#2c3e50")):
            a.plot(t, curve[f"{what}_spared"].to_list(), color=colour, lw=1.3)
            a.fill_between(t, curve[f"{what}_low"].to_list(), curve[f"{what}_high"].to_list(),
                           color=colour, alpha=0.15)
            a.set_ylabel(f"{what} spared")
            for row in self.df.filter(pl.col("label") != "").iter_rows(named=True):
                a.axvline(row["t"], color="#7f8c8d", ls=":", lw=0.9)
                if a is axes[0]:
                    a.annotate(row["label"], (row["t"], a.get_ylim()[1]), rotation=90,
                               fontsize=7, va="top", ha="right")
        axes[0].set_title(self.title)
        axes[-1].set_xlabel(f"{self.meta['mode']} at")
        return axes[0]


def containment(case: CaseHandle, pattern: Pattern = None, *, change: str | None = None,
                at: Any = None, mode: str = "rollback",
                strata: str | None = None, bucket: str = "1h", reference: str = "7d",
                level: float = 0.95,
                ep: EpisodeResult | None = None,
                detection: DetectionResult | None = None) -> ContainmentResult:
    """Events, sessions and users a rollback (``mode="rollback"``) of the suspect change, or
    a fallback of its feature (``mode="fallback"``), at time T would have spared.

    The suspect is ``change`` (a change id) or the top-ranked change of
    :func:`forensics.cause.suspects.suspects`. T runs over every bucket from its deploy to the
    actual containment (the recorded ``contained`` milestone; else a later change that
    moved the feature off the new version; else the bucket its traffic left it; else the
    end of the data), plus the named times: deployed, onset, the detection gap's first
    signals and proposed alert (when ``detection`` is given), detected, contained, and any
    ``at`` (one time or a list). The old rate comes from the old version's traffic on the
    feature within ``reference`` of the exposure (Wilson interval), per stratum of
    ``strata`` (a cohort column; default: the segment the suspect's excess concentrated
    in, e.g. ``locale``), so that a change that hurt one cohort is not credited with the
    background of the others; the events interval adds the old rate's uncertainty to the
    counterfactual's binomial noise (normal approximation); users: evaluated at the ends
    of that interval, widened by the Bernoulli noise of which events the change caused.

    >>> case.containment(change="CHG-2041", at="2026-03-10T12:00:00Z").df.height > 1
    True
    """
    if mode not in MODES:
        raise UsageError(f"unknown containment mode {mode!r}", hint="rollback or fallback")
    ep = ep or episode(case, pattern,
                       bucket=bucket, suspect=change if change else True)
    sus = ep.meta.get("suspect")
    target = _target(ep, sus, mode)
    end = ep.meta["contained_at"] or ep.data_end
    end_source = ep.meta["contained_source"] or "end of the data (not contained)"
    new = _new_sql(target, mode)
    strata = strata or (str((sus or {}).get("segment") or "").partition("=")[0] or None)
    stratum = column(strata) if strata else "NULL"
    ref = dt.timedelta(hours=hours(reference))
    params = {**ep.pattern.params, "feature": target["feature"],
              "lo": target["start"] - ref, "hi": end + ref,
              **({"to": target["to_version"]} if mode == "rollback" else {})}
    sql = MINUTES_SQL.format(new=new, cond=ep.pattern.cond, stratum=stratum)
    minutes = frame(case.con, sql, params)
    rates, x0, n0 = _old_rates(minutes, target, mode, level)
    served = minutes.filter(pl.col("new") & (pl.col("minute") >= target["start"])
                            & (pl.col("minute") < end))
    exposed = frame(case.con, EXPOSED_SQL.format(new=new, cond=ep.pattern.cond,
                                                 stratum=stratum),
                    {k: v for k, v in params.items() if k not in ("lo", "hi")}
                    | {"start": target["start"], "end": end})
    df = _curve(served, exposed, _times(case, ep, target, end, end_source, detection, at),
                rates, stats.z_value(level))
    p0 = rates["(all)"]
    first = df.filter(pl.col("t") == target["start"]).row(0, named=True)
    meta = {"pattern": ep.pattern.desc, "mode": mode, "suspect": sus,
            "feature": target["feature"], "exposure_start": target["start"],
            "exposure_end": end, "exposure_end_source": end_source,
            "old_rate": p0.estimate, "old_rate_low": p0.low, "old_rate_high": p0.high,
            "old_bad": int(x0), "old_events": int(n0),
            "new_bad": int(served["bad"].sum()), "new_events": int(served["n"].sum()),
            "caused_events": first["events_spared"], "caused_users": first["users_spared"],
            "caused_fraction": first["caused_fraction"], "strata": strata,
            "old_rate_by_stratum": {k: v.estimate for k, v in rates.items()
                                    if k != "(all)"} if strata else None, "level": level,
            "points": _points(df), "method": METHOD}
    if mode == "rollback" and stats.small_sample(x0, n0):
        meta["warning"] = f"the old rate rests on a small sample ({int(x0)} of {int(n0)})"
    what = f"rollback of {sus['change_id']}" if mode == "rollback" and sus \
        else f"fallback of {target['feature']}"
    return ContainmentResult(df, sql=sql, params=params, meta=meta,
                             title=f"containment what-if: {what}")


METHOD = ("spared = bad on the new version after T - old rate x its traffic; users and "
          "sessions: each pattern event caused with probability f = spared / bad; normal "
          "intervals (events: old rate and binomial noise; users: f at the events "
          "interval's ends and Bernoulli noise)")


def _old_rates(minutes: pl.DataFrame, target: dict[str, Any], mode: str,
               level: float) -> tuple[dict[str, stats.Interval], float, float]:
    """The pattern rate the traffic would have had without the change, per stratum and
    pooled (``"(all)"``), with Wilson intervals: the old version's, or 0 for a fallback.
    A stratum with fewer than 30 old events borrows the pooled rate."""
    zero = stats.Interval(0.0, 0.0, 0.0)
    if mode == "fallback":
        return {"(all)": zero}, 0.0, 0.0
    old = minutes.filter(~pl.col("new"))
    x0, n0 = float(old["bad"].sum()), float(old["n"].sum())
    if n0 == 0:
        raise UsageError(f"no traffic on the old version of {target['feature']} to compare",
                         hint="widen reference=, or use mode='fallback'")
    pooled = stats.wilson(x0, n0, level)
    rates = {"(all)": pooled}
    for r in old.group_by("stratum").agg(pl.col("bad").sum(), pl.col("n").sum()).iter_rows(
            named=True):
        rates[r["stratum"]] = stats.wilson(r["bad"], r["n"], level) \
            if r["n"] >= stats.SMALL_N else pooled
    return rates, x0, n0


def _points(df: pl.DataFrame) -> dict[str, Any]:
    keep = ("t", "events_spared", "events_low", "events_high", "users_spared", "users_low",
            "users_high", "sessions_spared")
    return {r["label"]: {k: r[k] for k in keep}
            for r in df.filter(pl.col("label") != "").iter_rows(named=True)}


def _target(ep: EpisodeResult, sus: dict[str, Any] | None, mode: str) -> dict[str, Any]:
    """Feature, version column and values, and the start of the exposure."""
    if mode == "rollback":
        if sus is None:
            raise UsageError("no suspect change to roll back",
                             hint="pass change='CHG-...' or use mode='fallback'")
        if not sus.get("column") or sus.get("to_version") is None or not sus.get("feature"):
            raise UsageError(f"change {sus['change_id']} names no version of a feature "
                             "to roll back", hint="use mode='fallback'")
        return {"feature": sus["feature"], "column": sus["column"],
                "to_version": str(sus["to_version"]), "start": sus["ts"]}
    feature = ep.feature or (sus or {}).get("feature")
    start = (sus or {}).get("ts") or ep.onset
    if feature is None or start is None:
        raise UsageError("a fallback needs a feature and a start",
                         hint="the pattern showed no onset in one feature; pass where= "
                              "restricted to the feature")
    return {"feature": feature, "column": None, "to_version": None, "start": start}


def _new_sql(target: dict[str, Any], mode: str) -> str:
    if mode == "fallback":
        return "true"
    return f"coalesce(CAST({column(target['column'])} AS VARCHAR) = $to, false)"


def _times(case: CaseHandle, ep: EpisodeResult, target: dict[str, Any], end: dt.datetime,
           end_source: str, detection: DetectionResult | None,
           at: Any) -> pl.DataFrame:
    """Every bucket start from the deploy to the end, plus the named times."""
    start = target["start"]
    step = ep.step
    first = start - dt.timedelta(seconds=(start - dt.datetime(2000, 1, 3)).total_seconds()
                                 % step.total_seconds())
    grid = [max(first + i * step, start) for i in range(int((end - first) / step) + 1)]
    named: list[tuple[str, Any]] = [("deployed", start), ("onset", ep.onset)]
    if detection is not None:
        m = detection.meta
        best = m.get("best_rule") or {}
        named += [("first bad output", m.get("first_bad_output")),
                  ("first flag", m.get("first_flag")),
                  ("first complaint", m.get("first_complaint")),
                  ("alert", best.get("fired_at"))]
    named.append(("detected", recorded(case).get("detected")))
    if not end_source.startswith("end of the data"):
        named.append(("contained", end))
    asked = at if isinstance(at, (list, tuple)) else ([at] if at is not None else [])
    named += [(f"at {to_utc(a):%Y-%m-%d %H:%M}", to_utc(a)) for a in asked]
    rows = [{"t": t, "label": ""} for t in grid if t <= end]
    rows += [{"t": min(max(t, start), end), "label": name} for name, t in named
             if t is not None]
    return pl.DataFrame(rows, schema={"t": pl.Datetime("us"), "label": pl.String}) \
        .unique(maintain_order=True).sort(["t", "label"])


def _curve(served: pl.DataFrame, exposed: pl.DataFrame, times: pl.DataFrame,
           rates: dict[str, stats.Interval], z: float) -> pl.DataFrame:
    """Spared events (with interval), users and sessions for every T of ``times``, summed
    over strata."""
    t = times["t"].to_numpy()
    b, n, expected, var = (np.zeros(t.size) for _ in range(4))
    caused: dict[str, np.ndarray] = {}            # stratum -> f at its estimate, low, high
    for (stratum,), part in served.partition_by("stratum", as_dict=True).items():
        p = rates.get(str(stratum), rates["(all)"])
        bad_after = _tail_sums(part["bad"].to_numpy().astype(float))
        n_after = _tail_sums(part["n"].to_numpy().astype(float))
        i = np.searchsorted(part["minute"].to_numpy(), t, side="left")
        var_p = ((p.high - p.low) / (2 * z)) ** 2
        v = n_after * p.estimate * (1 - p.estimate) + n_after ** 2 * var_p
        b, n = b + bad_after[i], n + n_after[i]
        expected, var = expected + p.estimate * n_after[i], var + v[i]
        spared0 = bad_after[0] - p.estimate * n_after[0]
        half0 = z * np.sqrt(v[0])
        caused[str(stratum)] = np.clip(np.array([spared0, spared0 - half0, spared0 + half0])
                                       / max(bad_after[0], 1.0), 0.0, 1.0)
    spared = np.clip(b - expected, 0, b)
    half = z * np.sqrt(var)
    low, high = np.clip(spared - half, 0, b), np.clip(spared + half, 0, b)
    ts = exposed["ts"].to_numpy()
    f = np.stack([caused.get(str(s), np.zeros(3)) for s in exposed["stratum"].to_list()]) \
        if exposed.height else np.zeros((0, 3))
    users = [_spared_units(exposed["user_id"], ts, f[:, j], t) for j in range(3)]
    sd = z * np.sqrt(users[0][1])
    u_point = users[0][0]
    u_low = np.maximum(np.minimum(users[1][0], u_point) - sd, 0.0)
    u_high = np.maximum(users[2][0], u_point) + sd
    sessions = _spared_units(exposed["session_id"], ts, f[:, 0], t)[0]
    return times.with_columns(
        pl.Series("events_spared", np.round(spared, 1)),
        pl.Series("events_low", np.round(low, 1)), pl.Series("events_high", np.round(high, 1)),
        pl.Series("users_spared", np.round(u_point, 1)),
        pl.Series("users_low", np.round(u_low, 1)), pl.Series("users_high", np.round(u_high, 1)),
        pl.Series("sessions_spared", np.round(sessions, 1)),
        pl.Series("bad_after", b.astype(np.int64)),
        pl.Series("traffic_after", n.astype(np.int64)),
        pl.Series("expected_on_old", np.round(expected, 1)),
        pl.Series("caused_fraction", np.round(np.where(b > 0, spared / np.maximum(b, 1), 0.0),
                                              4)))


def _tail_sums(values: np.ndarray) -> np.ndarray:
    """``out[i] = values[i:].sum()``, with a trailing 0 for 'nothing after'."""
    return np.concatenate([np.cumsum(values[::-1])[::-1], [0.0]])


def _spared_units(ids: pl.Series, ts: np.ndarray, f: np.ndarray,
                  t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Expected units (users or sessions) with no caused event before T and at least one
    after, for every T at once, and the variance of that count; events are in time order,
    event ``j`` caused independently with probability ``f[j]``.

    With ``A_u(T)`` the product of ``1 - f`` over the unit's events before T and ``K_u``
    over all of them, the unit is spared with probability ``A_u(T) - K_u``. The sums over
    units of ``A``, ``A^2`` and ``A K`` change by a known step at each event, so one
    cumulative sum over the time-ordered events gives them for every T.
    """
    if ids.len() == 0:
        return np.zeros(t.size), np.zeros(t.size)
    per = pl.DataFrame({"u": ids, "q": 1.0 - np.clip(f, 0.0, 1.0)}).with_columns(
        incl=pl.col("q").cum_prod().over("u"))
    per = per.with_columns(excl=pl.col("incl").shift(1, fill_value=1.0).over("u"),
                           total=pl.col("incl").last().over("u"),
                           first=pl.int_range(pl.len()).over("u") == 0)
    incl, excl = per["incl"].to_numpy(), per["excl"].to_numpy()
    total, first = per["total"].to_numpy(), per["first"].to_numpy()
    before = np.searchsorted(ts, t, side="left")

    def running(start: float, step: np.ndarray) -> np.ndarray:
        return start + np.concatenate([[0.0], np.cumsum(step)])[before]

    units = float(first.sum())
    s1 = running(units, incl - excl)                                # sum A
    s2 = running(units, incl ** 2 - excl ** 2)                      # sum A^2
    k = total[first]
    s3 = running(float(k.sum()), total * (incl - excl))             # sum A K
    mean = s1 - k.sum()
    var = mean - (s2 - 2 * s3 + (k * k).sum())
    return mean, np.maximum(var, 0.0)
