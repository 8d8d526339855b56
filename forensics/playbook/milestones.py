"""Incident milestones: when the incident was detected, contained, mitigated, resolved.

The times to detect, contain and resolve are computed from these marks and from the
evidence, never typed into the post-mortem.

>>> _ = case.mark("detected", "2026-03-10T16:40:00+01:00", note="support escalation")
>>> _ = case.mark("contained", "2026-03-11T14:00:00Z")
>>> [(r["name"], str(r["ts"])) for r in case.milestones().rows() if r["current"]][:2]
[('detected', '2026-03-10T15:40:00'), ('contained', '2026-03-11T14:00:00')]

Marks are append-only: marking a name again records a correction, and the latest mark of
each name is the one used (``current``); the earlier ones stay in the table.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import polars as pl

from forensics.core.db import frame, scalar
from forensics.core.errors import ReadOnlyCaseError, UsageError
from forensics.core.handle import CaseHandle
from forensics.core.result import Result

# The playbook's phases, in the order they normally happen; any other name is allowed.
PHASES = ("detected", "acknowledged", "escalated", "contained", "mitigated", "resolved",
          "notified", "postmortem")
ORDER = (("detected", "contained"), ("detected", "mitigated"), ("detected", "resolved"),
         ("contained", "resolved"), ("mitigated", "resolved"))
_NAME = re.compile(r"^[a-z][a-z0-9_\-]{0,40}$")

MILESTONES_SQL = """
SELECT milestone_id, name, ts, note, source, recorded_at,
       row_number() OVER (PARTITION BY name ORDER BY recorded_at DESC, milestone_id DESC) = 1
           AS current
FROM milestones
ORDER BY ts, recorded_at"""


def to_utc(value: Any) -> dt.datetime:
    """A time as the case stores it: naive UTC. Accepts datetimes (naive = UTC) and
    ISO-8601 text with any offset or ``Z``.

    >>> to_utc("2026-03-13T10:00:00+01:00")
    datetime.datetime(2026, 3, 13, 9, 0)
    """
    if isinstance(value, dt.datetime):
        t = value
    elif isinstance(value, dt.date):
        t = dt.datetime(value.year, value.month, value.day)
    else:
        text = str(value).strip()
        try:
            t = dt.datetime.fromisoformat(text.replace("Z", "+00:00").replace(" UTC", ""))
        except ValueError as exc:
            raise UsageError(f"cannot read the time {value!r}",
                             hint="use ISO-8601, e.g. 2026-03-13T14:00:00Z") from exc
    if t.tzinfo is not None:
        t = t.astimezone(dt.UTC).replace(tzinfo=None)
    return t


def _has_table(case: CaseHandle) -> bool:
    return bool(scalar(case.con, "SELECT count(*) FROM information_schema.tables "
                                 "WHERE table_name = 'milestones'"))


def mark(case: CaseHandle, name: str, ts: Any = None, note: str = "") -> Result:
    """Record that the incident reached milestone ``name`` at ``ts`` (default: now, UTC).

    >>> marked = case.mark("contained", "2026-03-11T14:00:00Z", note="rolled back CHG-2041")
    >>> marked.rows()[0]["name"]
    'contained'
    """
    if case.read_only:
        raise ReadOnlyCaseError("cannot record a milestone in a case opened read-only")
    key = str(name).strip().lower()
    if not _NAME.match(key):
        raise UsageError(f"cannot use {name!r} as a milestone name",
                         hint=f"a short lower-case name, e.g. one of {', '.join(PHASES)}")
    when = to_utc(ts) if ts is not None else dt.datetime.now(dt.UTC).replace(tzinfo=None)
    n = int(scalar(case.con, "SELECT count(*) FROM milestones"))
    milestone_id = f"M{n + 1:03d}"
    case.con.execute("INSERT INTO milestones VALUES (?, ?, ?, ?, 'recorded', ?)",
                     [milestone_id, key, when, note or None,
                      dt.datetime.now(dt.UTC).replace(tzinfo=None)])
    sql = "SELECT * FROM milestones WHERE milestone_id = $id"
    return Result(frame(case.con, sql, {"id": milestone_id}), sql=sql,
                  params={"id": milestone_id}, title=f"milestone {key}",
                  meta={"milestone_id": milestone_id, "name": key, "ts": when})


def milestones(case: CaseHandle) -> Result:
    """Every recorded milestone, oldest first; ``current`` marks the latest mark of each
    name. ``meta['warnings']`` lists phases recorded out of order (e.g. contained before
    detected)."""
    if not _has_table(case):                # a version-1 case opened read-only
        return Result(pl.DataFrame(schema={"milestone_id": pl.String, "name": pl.String,
                                           "ts": pl.Datetime("us")}),
                      title="milestones", meta={"warnings": [
                          "this case predates milestones; open it writable to upgrade it"]})
    df = frame(case.con, MILESTONES_SQL)
    current = current_marks(df)
    warnings = [f"{late} ({current[late]:%Y-%m-%d %H:%M}) is recorded before {early} "
                f"({current[early]:%Y-%m-%d %H:%M})" for early, late in ORDER
                if early in current and late in current and current[late] < current[early]]
    return Result(df, sql=MILESTONES_SQL, title="milestones",
                  meta={"current": current, "warnings": warnings})


def current_marks(df: pl.DataFrame) -> dict[str, dt.datetime]:
    """Name -> time of the latest mark of that name, from :func:`milestones`' rows."""
    if df.height == 0 or "current" not in df.columns:
        return {}
    return {r["name"]: r["ts"] for r in df.filter(pl.col("current")).iter_rows(named=True)}


def recorded(case: CaseHandle) -> dict[str, dt.datetime]:
    """Name -> time of the current mark: ``recorded(case).get("contained")``."""
    return current_marks(milestones(case).df)
