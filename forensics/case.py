"""The case file: one DuckDB database holding the evidence and the findings.

>>> import forensics
>>> case = forensics.open("incident.duckdb")          # creates it when missing
>>> case.load("audit.jsonl")                          # doctest: +SKIP
>>> case.sql("SELECT count(*) AS n FROM events").df   # doctest: +SKIP
"""

from __future__ import annotations

import os
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb
import polars as pl

from forensics.core.db import (
    DEFAULT_ROW_CAP,
    DEFAULT_TIME_LIMIT_S,
    count_rows,
    frame,
    known_table,
    progress_bar_off,
    run_sql,
)
from forensics.core.errors import (
    CaseError,
    CaseLockedError,
    ReadOnlyCaseError,
)
from forensics.core.notebook import shows_progress
from forensics.core.result import Result

if TYPE_CHECKING:       # playbook analytics (issue 8)
    from forensics.playbook.answers import PlaybookResult
    from forensics.playbook.containment import ContainmentResult
    from forensics.playbook.detection_gap import DetectionResult
    from forensics.playbook.severity import SeverityResult
    from forensics.playbook.timeline import IncidentTimelineResult

SCHEMA_VERSION = 2


def _sql_file(name: str) -> str:
    return resources.files("forensics.core").joinpath(f"sql/{name}").read_text(encoding="utf-8")


# version -> SQL statements that take a case from version-1 to version. schema.sql is
# version 1; a new case gets it plus every migration, so new and migrated cases agree.
MIGRATIONS: dict[int, list[str]] = {
    2: [_sql_file("milestones.sql")],       # issue 8: incident milestones (case.mark)
}


def _schema_sql() -> str:
    steps = [s.strip().rstrip(";") for v in sorted(MIGRATIONS) for s in MIGRATIONS[v]]
    return ";\n".join([_sql_file("schema.sql").strip().rstrip(";"), *steps]) + ";"


def _connect(path: Path, read_only: bool) -> duckdb.DuckDBPyConnection:
    try:
        con = duckdb.connect(str(path), read_only=read_only, config=_config(read_only))
    except duckdb.IOException as exc:
        text = str(exc)
        if "lock" in text.lower():
            raise CaseLockedError(f"case file {path} is locked by another process: {text}") \
                from exc
        if "permission" in text.lower() or "read-only" in text.lower():
            raise ReadOnlyCaseError(f"case file {path} cannot be opened for writing: {text}",
                                    hint="open it with read_only=True (CLI: --read-only)") \
                from exc
        raise CaseError(f"cannot open case file {path}: {text}") from exc
    except duckdb.Error as exc:
        raise CaseError(f"{path} is not a DuckDB case file: {exc}") from exc
    con.execute("SET TimeZone = 'UTC'")
    # DuckDB's own progress bar writes to the terminal: it would break `--json` output.
    progress_bar_off(con)
    return con


# Case files stay readable by DuckDB 1.5 and later (its CLI, its drivers, a colleague's
# older notebook): new files are written in that storage format.
STORAGE_COMPATIBILITY = "v1.5.0"


def _config(read_only: bool) -> dict[str, str | bool | int | float | list[str]]:
    return {} if read_only else {"storage_compatibility_version": STORAGE_COMPATIBILITY}


class Case:
    """An open investigation. Create with :func:`forensics.open`."""

    def __init__(self, path: str | Path, read_only: bool = False) -> None:
        self.path = Path(path)
        if not read_only and self.path.exists() and not _writable(self.path):
            raise ReadOnlyCaseError(f"case file {self.path} is read-only",
                                    hint="open it with read_only=True (CLI: --read-only)")
        if read_only and not self.path.exists():
            raise CaseError(f"case file {self.path} does not exist")
        self.read_only = read_only
        self.con = _connect(self.path, read_only)
        if not read_only:
            self._migrate()
        self._check_schema()
        if not read_only:
            self.con.execute(_sql_file("facts.sql"))

    # -- lifecycle -------------------------------------------------------------------
    def close(self) -> None:
        self.con.close()

    def __enter__(self) -> Case:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<Case {str(self.path)!r}{' read-only' if self.read_only else ''}>"

    @property
    def schema_version(self) -> int:
        rows = self.con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchall()
        return int(rows[0][0]) if rows else 0

    def _migrate(self) -> None:
        tables = {r[0] for r in self.con.execute(
            "SELECT table_name FROM information_schema.tables").fetchall()}
        if "meta" not in tables:
            if tables - {"meta"}:
                raise CaseError(f"{self.path} is a DuckDB file but not a forensics case",
                                hint="use a new file name for the case")
            self.con.execute("BEGIN")
            self.con.execute(_schema_sql())
            self.con.execute("INSERT INTO meta VALUES ('schema_version', ?), ('created_by', ?)",
                             [str(SCHEMA_VERSION), f"forensics {_version()}"])
            self.con.execute("COMMIT")
            return
        current = self.schema_version
        for version in range(current + 1, SCHEMA_VERSION + 1):
            self.con.execute("BEGIN")
            for statement in MIGRATIONS.get(version, []):
                self.con.execute(statement)
            self.con.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'",
                             [str(version)])
            self.con.execute("COMMIT")

    def _check_schema(self) -> None:
        try:
            version = self.schema_version
        except duckdb.CatalogException as exc:
            raise CaseError(f"{self.path} is not a forensics case (no meta table)") from exc
        if version > SCHEMA_VERSION:
            raise CaseError(f"{self.path} has schema version {version}, newer than this "
                            f"forensics ({SCHEMA_VERSION})", hint="upgrade forensics")

    # -- SQL -------------------------------------------------------------------------
    def sql(self, text: str, *, title: str = "", row_cap: int | None = DEFAULT_ROW_CAP,
            time_limit: float | None = DEFAULT_TIME_LIMIT_S, **params: Any) -> Result:
        """Run SQL with named ``$parameters`` bound by DuckDB, never pasted into the text.

        >>> case.sql("SELECT count(*) AS n FROM events WHERE feature = $f", f="doc_qa")
        ... # doctest: +SKIP
        """
        # The case's own connection: session state (variables, temp views) is visible.
        return run_sql(self.con, text, params, title=title, row_cap=row_cap,
                       time_limit=time_limit)

    def table(self, name: str, limit: int | None = None) -> pl.DataFrame:
        """A canonical table as a Polars DataFrame: ``case.table("evidence")``."""
        query = f"SELECT * FROM {known_table(self.con, name)}"
        return frame(self.con, query + (" LIMIT $n" if limit else ""),
                     {"n": int(limit)} if limit else None)

    def count(self, table: str) -> int:
        """Rows in a table or view of the case: ``case.count("events")``."""
        return count_rows(self.con, table)

    def query(self, name: str, *, row_cap: int | None = None, time_limit: float | None = None,
              **params: Any) -> Result:
        """Run a saved query from ``queries/``.

        >>> case.query("exposure_window", label="pii_leak")   # doctest: +SKIP
        """
        from forensics.queries.runner import run

        return run(self, name, row_cap=row_cap, time_limit=time_limit, **params)

    # -- investigation stages --------------------------------------------------------
    @shows_progress("loading")    # a progress line in Jupyter (issue 7)
    def load(self, path: str | Path, format: str | None = None,
             mapping: dict[str, Any] | str | Path | None = None,
             progress: Callable[[str], None] | None = None) -> Result:
        """Load one evidence file; see :func:`forensics.ingest.load.load_file`."""
        from forensics.ingest.load import load_file

        return load_file(self, path, format=format, mapping=mapping, progress=progress)

    def impact(self, where: str | None = None, **kwargs: Any) -> Result:
        """Affected users, sessions and events; see :func:`forensics.impact.exact.impact`.

        >>> case.impact("pii_leak", by=["plan", "locale"])            # doctest: +SKIP
        >>> case.impact(change="CHG-2041", label="over_refusal")       # doctest: +SKIP
        """
        from forensics.impact.exact import impact

        return impact(self, where, **kwargs)

    def changes(self, **kwargs: Any) -> Result:
        """Declared and inferred changes with their rollout; see
        :func:`forensics.cause.changes.changes`: ``case.changes(feature="doc_qa")``."""
        from forensics.cause.changes import changes

        return changes(self, **kwargs)

    def timeline(self, metric: str = "bad_rate", **kwargs: Any) -> Result:
        """A metric over time with change markers; see :func:`forensics.cause.changes.timeline`:
        ``case.timeline("refusal_rate", by="prompt_version").plot()``."""
        from forensics.cause.changes import timeline

        return timeline(self, metric, **kwargs)

    def compare(self, a: Any = None, b: Any = None, **kwargs: Any) -> Result:
        """Two cohorts with intervals and corrected p-values; see
        :func:`forensics.cause.compare.compare`: ``case.compare(by="prompt_version", a="v12", b="v13")``."""
        from forensics.cause.compare import compare

        return compare(self, a, b, **kwargs)

    def suspects(self, pattern: str | None = None, **kwargs: Any) -> Result:
        """Ranked candidate root causes; see :func:`forensics.cause.suspects.suspects`:
        ``case.suspects(label="over_refusal")``."""
        from forensics.cause.suspects import suspects

        return suspects(self, pattern, **kwargs)

    def retrieval_diff(self, before: str | None = None, after: str | None = None,
                       **kwargs: Any) -> Result:
        """Top-k retrieval before vs after an index change; see
        :func:`forensics.cause.retrieval.retrieval_diff`."""
        from forensics.cause.retrieval import retrieval_diff

        return retrieval_diff(self, before, after, **kwargs)

    def estimate_impact(self, **kwargs: Any) -> Result:
        """Affected events and users estimated from a sampled review, with intervals;
        see :func:`forensics.impact.estimate.estimate`:
        ``case.estimate_impact(flagged="over_refusal")``."""
        from forensics.impact.estimate import estimate

        return estimate(self, **kwargs)

    # -- what went wrong (issue 4) ----------------------------------------------------
    @shows_progress("running detectors")    # a progress line in Jupyter (issue 7)
    def detect(self, rules: Any = None) -> Result:
        """Run the failure detectors and write ``labels``; see
        :func:`forensics.detect.detectors.detect`: ``case.detect(rules=["refusal", "private_data"])``."""
        from forensics.detect.detectors import detect

        return detect(self, rules=rules)

    def import_labels(self, path: str | Path, **kwargs: Any) -> Result:
        """Reviewer verdicts from a file into ``labels``; see
        :func:`forensics.detect.detectors.import_labels`."""
        from forensics.detect.detectors import import_labels

        return import_labels(self, path, **kwargs)

    @shows_progress("clustering")    # a progress line in Jupyter (issue 7)
    def cluster(self, where: str = "bad", **kwargs: Any) -> Result:
        """Group bad events into failure patterns; see :func:`forensics.detect.cluster.cluster`:
        ``case.cluster(where="feature = 'doc_qa'")``."""
        from forensics.detect.cluster import cluster

        return cluster(self, where=where, **kwargs)

    def review_sample(self, flagged: str, n: int, **kwargs: Any) -> Result:
        """Flagged events to give to reviewers (stratified, seeded); see
        :func:`forensics.impact.estimate.review_sample`."""
        from forensics.impact.estimate import review_sample

        return review_sample(self, flagged, n, **kwargs)

    def record(self, result: Result, title: str, note: str = "") -> str:
        """Keep ``result`` as a finding with its SQL, parameters and evidence hashes."""
        from forensics.core.findings import record

        return record(self, result, title, note)

    def findings(self) -> Result:
        from forensics.core.findings import list_findings

        return list_findings(self)

    def rerun_finding(self, finding_id: str) -> Result:
        from forensics.core.findings import rerun

        return rerun(self, finding_id)

    def check_finding(self, finding_id: str) -> dict[str, Any]:
        from forensics.core.findings import check

        return check(self, finding_id)

    # -- playbook analytics (issue 8) -------------------------------------------------
    def mark(self, name: str, ts: Any = None, note: str = "") -> Result:
        """Record a milestone (detected, contained, mitigated, resolved, ...); see
        :func:`forensics.playbook.milestones.mark`: ``case.mark("contained", "2026-03-15T14:00Z")``."""
        from forensics.playbook.milestones import mark

        return mark(self, name, ts, note)

    def milestones(self) -> Result:
        """The recorded milestones; see :func:`forensics.playbook.milestones.milestones`."""
        from forensics.playbook.milestones import milestones

        return milestones(self)

    def severity(self, pattern: str | None = None, **kwargs: Any) -> SeverityResult:
        """Severity on the playbook's matrix with the deciding rule; see
        :func:`forensics.playbook.severity.severity`: ``case.severity(label="pii_leak")``."""
        from forensics.playbook.severity import severity

        return severity(self, pattern, **kwargs)

    def detection_gap(self, pattern: str | None = None, **kwargs: Any) -> DetectionResult:
        """Onset, first signals and backtested alert rules; see
        :func:`forensics.playbook.detection_gap.detection_gap`: ``case.detection_gap(label="pii_leak")``."""
        from forensics.playbook.detection_gap import detection_gap

        return detection_gap(self, pattern, **kwargs)

    def containment(self, pattern: str | None = None, **kwargs: Any) -> ContainmentResult:
        """What a rollback (or fallback) at time T would have spared; see
        :func:`forensics.playbook.containment.containment`."""
        from forensics.playbook.containment import containment

        return containment(self, pattern, **kwargs)

    def incident_timeline(self, pattern: str | None = None,
                          **kwargs: Any) -> IncidentTimelineResult:
        """The merged incident timeline with computed durations; see
        :func:`forensics.playbook.timeline.incident_timeline`."""
        from forensics.playbook.timeline import incident_timeline

        return incident_timeline(self, pattern, **kwargs)

    def playbook(self, pattern: str | None = None, **kwargs: Any) -> PlaybookResult:
        """Severity, time to detect, the alert that would have caught it, what a faster
        rollback would have spared: :func:`forensics.playbook.answers.playbook`."""
        from forensics.playbook.answers import playbook

        return playbook(self, pattern, **kwargs)

    @shows_progress("writing the post-mortem")    # a progress line in Jupyter (issue 7)
    def postmortem(self, path: str | Path, **kwargs: Any) -> Result:
        """Write the post-mortem (Markdown, HTML, charts, notification drafts, eval pack)
        to directory ``path``; see :func:`forensics.postmortem.writing.postmortem`:
        ``case.postmortem("postmortem/")``."""
        from forensics.postmortem.writing import postmortem

        return postmortem(self, path, **kwargs)

    def export_evals(self, path: str | Path, format: str = "jsonl", **kwargs: Any) -> Result:
        """Write the regression eval pack; see :func:`forensics.postmortem.evalpack.export_evals`:
        ``case.export_evals("evals/", format="all")``."""
        from forensics.postmortem.evalpack import export_evals

        return export_evals(self, path, format, **kwargs)

    def summary(self) -> Result:
        """What the case holds: evidence, volumes, time span, features, versions."""
        from forensics.core.summary import summarize

        return summarize(self)


def _writable(path: Path) -> bool:
    """Writable by us, and not marked read-only (root ignores the mode bits, we don't)."""
    return os.access(path, os.W_OK) and bool(path.stat().st_mode & 0o222)


def _version() -> str:
    from forensics import __version__

    return __version__


def open(path: str | Path, read_only: bool = False) -> Case:
    """Create or open the case file at ``path``: ``case = forensics.open("incident.duckdb")``."""
    return Case(path, read_only=read_only)
