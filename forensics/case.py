"""The case file: one DuckDB database holding the evidence and the findings.

>>> import forensics
>>> case = forensics.open("incident.duckdb")          # creates it when missing
>>> case.load(SAMPLE / "changes.jsonl").rows()[0]["status"]
'loaded'
>>> case.sql("SELECT count(*) AS n FROM changes").rows()
[{'n': 5}]
>>> case.close()
"""

from __future__ import annotations

import functools
import hashlib
import os
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager, suppress
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

import duckdb
import polars as pl

from forensics import __version__
from forensics.cause.changes import ChangesResult, TimelineResult, changes, timeline
from forensics.cause.compare import CompareResult, compare
from forensics.cause.retrieval import RetrievalDiffResult, retrieval_diff
from forensics.cause.suspects import SuspectsResult, suspects
from forensics.core import sharing, workdir
from forensics.core.db import (
    DEFAULT_ROW_CAP,
    DEFAULT_TIME_LIMIT_S,
    close_at_exit,
    count_rows,
    frame,
    known_table,
    progress_bar_off,
    run_sql,
    table_names,
)
from forensics.core.errors import CaseError, ReadOnlyCaseError, is_interrupt
from forensics.core.findings import check, list_findings, record, rerun
from forensics.core.metrics import SEGMENTS
from forensics.core.notebook import install as install_notebook_errors
from forensics.core.notebook import shows_progress
from forensics.core.result import Result
from forensics.core.selection import Pattern
from forensics.core.stats import SMALL_N
from forensics.core.summary import summarize
from forensics.core.walls import (
    FILE_WRITING,
    WALLED_CONFIG,
    check_statements,
    lock_down,
    writes_case,
)
from forensics.detect.cluster import ClusterResult, cluster
from forensics.detect.detectors import DetectResult, Engine, RuleSpec, detect, import_labels
from forensics.impact.estimate import EstimateResult, estimate, review_sample
from forensics.impact.exact import ImpactResult, impact
from forensics.ingest.attach import (
    AttachResult,
    attach,
    attached_files,
    check_attached,
    install_views,
)
from forensics.ingest.load import LoadResult, load_file
from forensics.playbook.answers import PlaybookResult, playbook
from forensics.playbook.containment import ContainmentResult, containment
from forensics.playbook.detection_gap import MIN_HEADROOM, DetectionResult, detection_gap
from forensics.playbook.incidents import (
    IncidentsResult,
    each_incident,
    incident_pattern,
    incidents,
    likely_cause,
)
from forensics.playbook.milestones import mark, milestones
from forensics.playbook.severity import SeverityResult, SeverityRules, severity
from forensics.playbook.timeline import IncidentTimelineResult, incident_timeline
from forensics.postmortem.evalpack import export_evals
from forensics.postmortem.writing import ReportResult, postmortem
from forensics.queries.runner import run as run_query

SCHEMA_VERSION = 3


def _sql_file(name: str) -> str:
    return resources.files("forensics.core").joinpath(f"sql/{name}").read_text(encoding="utf-8")


# version -> SQL statements that take a case from version-1 to version. schema.sql is
# version 1; a new case gets it plus every migration, so new and migrated cases agree.
MIGRATIONS: dict[int, list[str]] = {
    2: [_sql_file("milestones.sql")],       # playbook: incident milestones (case.mark)
    3: _sql_file("evidence_read_as.sql").split(";"),   # load identity: sha256 + read_as
}


def _facts_sha() -> str:
    """Identity of the views' SQL: a writable open re-creates them when it changed."""
    return hashlib.sha256(_sql_file("facts.sql").encode()).hexdigest()


def _schema_sql() -> str:
    steps = [s.strip().rstrip(";") for v in sorted(MIGRATIONS) for s in MIGRATIONS[v]]
    return ";\n".join([_sql_file("schema.sql").strip().rstrip(";"), *steps]) + ";"


def _connect(path: Path, read_only: bool, *, walled: bool = False, wait: float | None = None,
             action: str = "") -> duckdb.DuckDBPyConnection:
    config = _config(read_only)
    if walled:
        config.update(WALLED_CONFIG)
    con = sharing.connect(path, read_only=read_only, config=config, wait=wait, action=action)
    try:
        close_at_exit(con)
        con.execute("SET TimeZone = 'UTC'")
        # DuckDB's own progress bar writes to the terminal: it would break `--json` output.
        progress_bar_off(con)
        _install_attached(con, walled)
        if walled:
            lock_down(con)
    except BaseException:
        con.close()
        raise
    return con


def _install_attached(con: duckdb.DuckDBPyConnection, walled: bool) -> None:
    """Sources attached in place join ``events`` on every connection (a session view); a
    walled connection may read their pinned files and nothing else."""
    if "attachments" not in table_names(con):
        return
    if walled:
        files = attached_files(con)
        if files:
            con.execute("SET allowed_paths = ?", [files])
    install_views(con)


# Case files stay readable by DuckDB 1.5 and later (its CLI, its drivers, a colleague's
# older notebook): new files are written in that storage format.
STORAGE_COMPATIBILITY = "v1.5.0"


def _config(read_only: bool) -> dict[str, str | bool | int | float | list[str]]:
    return {} if read_only else {"storage_compatibility_version": STORAGE_COMPATIBILITY}


_F = TypeVar("_F", bound=Callable[..., Any])


def _operation(write: bool) -> Callable[[_F], _F]:
    """A public method is one operation: it holds a connection to the case file only
    while it runs (read-only for reads; for writes, the write lock and read-write)."""
    def wrap(fn: _F) -> _F:
        @functools.wraps(fn)
        def run(self: Case, *args: Any, **kwargs: Any) -> Any:
            with self._connection(write, fn.__name__):
                return fn(self, *args, **kwargs)
        return run  # type: ignore[return-value]
    return wrap


_reads, _writes = _operation(False), _operation(True)


class Case:
    """An open investigation. Create with :func:`forensics.open`.

    The case holds no write connection between calls, so a notebook with a ``Case`` never
    locks out the CLI, saved queries or another notebook: a write opens the file for as
    long as it runs, under the case's write lock (waiting at most ``lock_wait`` seconds,
    default ``$FORENSICS_LOCK_WAIT`` or 60); a read uses a read-only connection, kept for
    the next read until a writer takes the write lock. ``case.con`` outside a
    call opens a connection and keeps it (temp tables survive between calls) until
    :meth:`release` or :meth:`close`: while kept, a writable case keeps others out.
    """

    def __init__(self, path: str | Path, read_only: bool = False, *,
                 lock_wait: float | None = None, purpose: str = "hold case.con") -> None:
        install_notebook_errors()      # in a notebook: errors as a short box with their hint
        self.path = Path(path)
        self._key = self.path.resolve()
        if not read_only and self.path.exists() and not _writable(self.path):
            raise ReadOnlyCaseError(f"case file {self.path} is read-only",
                                    hint="open it with read_only=True (CLI: --read-only)")
        if read_only and not self.path.exists():
            raise CaseError(f"case file {self.path} does not exist")
        self.read_only = read_only
        self.lock_wait = lock_wait
        self.purpose = purpose        # what a kept case.con is for, named to who waits
        self._op: duckdb.DuckDBPyConnection | None = None     # the running call's
        self._held: duckdb.DuckDBPyConnection | None = None   # case.con, until release()
        self._held_lock = ExitStack()
        self._cache: duckdb.DuckDBPyConnection | None = None  # kept from the last read
        self._mutex = threading.RLock()
        self._watcher: threading.Thread | None = None
        _OPEN_CASES.add(self)
        self._closed = False
        self._in_memory = str(path) == ":memory:"
        if not read_only and not self._in_memory:
            workdir.clean(self.path)   # snapshots and spill files of killed loads
        if self._in_memory:          # nothing to share: one connection for its lifetime
            self._held = duckdb.connect(":memory:")
            self._held.execute("SET TimeZone = 'UTC'")
            progress_bar_off(self._held)
        try:
            self._prepare()
        except BaseException:
            self.release()            # a half-opened case must not hold the file
            raise

    def _prepare(self) -> None:
        """Check the schema; create, migrate or refresh the views only when needed, so a
        case opened for writing writes (and takes the write lock) only then."""
        if self.read_only or (self.path.exists() and not self._in_memory):
            with self._connection(False, "open"):
                state = self._state()
                if self.read_only or state == (SCHEMA_VERSION, _facts_sha()):
                    self._check_schema()
                    return
        with self._connection(True, "open"):
            self._migrate()
            self._check_schema()
            self.con.execute(_sql_file("facts.sql"))
            self.con.execute("INSERT OR REPLACE INTO meta VALUES ('facts_sha256', ?)",
                             [_facts_sha()])

    def _state(self) -> tuple[int, str] | None:
        """(schema version, sha256 of the views' SQL) of the file; None when new."""
        tables = {r[0] for r in self.con.execute(
            "SELECT table_name FROM information_schema.tables").fetchall()}
        if "meta" not in tables:
            if tables:
                raise CaseError(f"{self.path} is a DuckDB file but not a forensics case",
                                hint="use a new file name for the case")
            return None
        found = dict(self.con.execute("SELECT key, value FROM meta WHERE key IN "
                                      "('schema_version', 'facts_sha256')").fetchall())
        return int(found.get("schema_version", 0)), str(found.get("facts_sha256", ""))

    # -- connections -------------------------------------------------------------------
    @property
    def con(self) -> duckdb.DuckDBPyConnection:
        """The DuckDB connection: the running call's, or one kept until :meth:`release`."""
        if self._op is not None:
            return self._op
        self._check_open()
        if self._held is None:
            self.release()            # (a connection kept from the last read)
            _drop_sibling_caches(self)
            write = not self.read_only
            if write:
                self._held_lock.enter_context(sharing.write_lock(
                    self.path, self.purpose, self.lock_wait))
            try:
                self._held = _connect(self.path, not write, wait=self.lock_wait,
                                      action=self.purpose)
            except BaseException:
                self._held_lock.close()
                raise
        return self._held

    def release(self) -> None:
        """Close the connection kept by ``case.con`` (and its lock): others can write."""
        with self._mutex:
            self._drop_cache()
        if self._held is not None and not self._in_memory:
            held, self._held = self._held, None
            held.close()
        self._held_lock.close()

    def _check_open(self) -> None:
        if self._closed:
            raise CaseError(f"case {self.path} is closed", hint="forensics.open it again")

    @contextmanager
    def _connection(self, write: bool, action: str = "",
                    walled: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        """The connection of one call: the enclosing call's, the kept one, or a new one
        closed when the call ends (an interrupted call leaves no open transaction)."""
        try:
            with self._open_for(write, action, walled) as con:
                yield con
        except RuntimeError as exc:
            if is_interrupt(exc):      # Ctrl-C inside a DuckDB statement
                raise KeyboardInterrupt from exc
            raise

    @contextmanager
    def _open_for(self, write: bool, action: str,
                  walled: bool) -> Iterator[duckdb.DuckDBPyConnection]:
        if self._op is not None and not walled:
            yield self._op
            return
        self._check_open()
        if self._held is not None and not (walled and not self._in_memory):
            try:
                yield self._held
            except BaseException:
                _rollback_quietly(self._held)    # the kept connection stays usable
                raise
            return
        if walled:
            self.release()        # one configuration per file in a process
        write = write and not self.read_only
        with self._mutex:             # the watcher never closes a connection in use
            if write or walled:
                self._drop_cache()
            elif self._cache is not None:
                # a read-only connection kept from an earlier read while no writer wants
                # the file (the watcher closes it when one does)
                cached, self._cache = self._cache, None
                yield from self._run_on(cached, keep=True)
                return
            _drop_sibling_caches(self)
            with ExitStack() as stack:
                if write:
                    stack.enter_context(sharing.write_lock(self.path, action or "write",
                                                           self.lock_wait))
                con = _connect(self.path, not write, walled=walled, wait=self.lock_wait,
                               action=action)
                yield from self._run_on(con, keep=not write and not walled)

    def _run_on(self, con: duckdb.DuckDBPyConnection,
                keep: bool) -> Iterator[duckdb.DuckDBPyConnection]:
        """Run the call on ``con``; afterwards keep it for the next read (``keep``, when
        the call succeeded) or close it (an interrupted call leaves nothing open)."""
        outer, self._op = self._op, con
        ok = False
        try:
            yield con
            ok = True
        finally:
            self._op = outer
            if keep and ok and not self._closed and not sharing.writer_active(self.path):
                self._cache = con
                self._watch()
            else:
                con.close()

    def _drop_cache(self) -> None:
        if self._cache is not None:
            cached, self._cache = self._cache, None
            cached.close()

    def _watch(self) -> None:
        """Start the thread that closes the kept read connection when a writer (another
        process, or another Case) takes the write lock: an idle notebook keeps no one out."""
        if self._watcher is not None and self._watcher.is_alive():
            return
        self._watcher = threading.Thread(target=_watch_case, args=(weakref.ref(self),),
                                         name=f"forensics-watch-{self.path.name}", daemon=True)
        self._watcher.start()

    # -- lifecycle -------------------------------------------------------------------
    def close(self) -> None:
        if self._in_memory and self._held is not None:
            self._held.close()
            self._held = None
        self.release()
        self._closed = True

    def __enter__(self) -> Case:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<Case {str(self.path)!r}{' read-only' if self.read_only else ''}>"

    @property
    def schema_version(self) -> int:
        with self._connection(False):
            rows = self.con.execute(
                "SELECT value FROM meta WHERE key = 'schema_version'").fetchall()
        return int(rows[0][0]) if rows else 0

    def _migrate(self) -> None:
        state = self._state()
        if state is None:
            self.con.execute("BEGIN")
            self.con.execute(_schema_sql())
            self.con.execute("INSERT INTO meta VALUES ('schema_version', ?), ('created_by', ?)",
                             [str(SCHEMA_VERSION), f"forensics {_version()}"])
            self.con.execute("COMMIT")
            return
        current = state[0]
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
            time_limit: float | None = DEFAULT_TIME_LIMIT_S, allow_files: bool = False,
            **params: Any) -> Result:
        """Run SQL with named ``$parameters`` bound by DuckDB, never pasted into the text.

        Evidence tables are append-only: a statement that writes to one is refused. On a
        read-only case the SQL reads the case and nothing else (no other files, no
        ``ATTACH``, no ``COPY ... TO``); ``allow_files=True`` lets it read other files.

        >>> case.sql("SELECT count(*) AS n FROM events WHERE feature = $f", f="doc_qa").rows()
        [{'n': 3100}]
        >>> case.sql("DELETE FROM events")
        Traceback (most recent call last):
        ...
        forensics.core.errors.QueryError: evidence is append-only: statement 1 (DELETE) ...
        """
        statements = check_statements(
            text, refuse=FILE_WRITING if self.read_only and allow_files else None)
        walled = self.read_only and not allow_files and not self._in_memory
        with self._connection(writes_case(statements), "sql", walled=walled) as con:
            return run_sql(con, text, params, title=title, row_cap=row_cap,
                           time_limit=time_limit)

    @_reads
    def table(self, name: str, limit: int | None = None) -> pl.DataFrame:
        """A canonical table as a Polars DataFrame: ``case.table("evidence")``."""
        query = f"SELECT * FROM {known_table(self.con, name)}"
        return frame(self.con, query + (" LIMIT $n" if limit else ""),
                     {"n": int(limit)} if limit else None)

    @_reads
    def count(self, table: str) -> int:
        """Rows in a table or view of the case: ``case.count("events")``."""
        return count_rows(self.con, table)

    def query(self, name: str, *, row_cap: int | None = None, time_limit: float | None = None,
              **params: Any) -> Result:
        """Run a saved query from ``queries/``.

        >>> case.query("exposure_window", label="over_refusal").rows()[0]["feature"]
        'support_chat'
        """
        with self._connection(False, "query", walled=not self._in_memory):
            return run_query(self, name, row_cap=row_cap, time_limit=time_limit, **params)

    # -- load ----------------------------------------------------------------------------
    @shows_progress("loading")    # a progress line under the running cell in Jupyter
    @_writes
    def load(self, path: str | Path, format: str | None = None,
             mapping: dict[str, Any] | str | Path | None = None,
             progress: Callable[[str], None] | None = None) -> LoadResult:
        """Load one evidence file in one transaction; see
        :func:`forensics.ingest.load.load_file`: ``case.load("audit.jsonl")``."""
        return load_file(self, path, format=format, mapping=mapping, progress=progress)

    @_writes
    def attach(self, source: str | Path,
               mapping: dict[str, Any] | str | Path | None = None) -> AttachResult:
        """Attach a Parquet dataset, an Iceberg or a Delta table as evidence read in place
        (its snapshot pinned); see :func:`forensics.ingest.attach.attach`:
        ``case.attach("lake/traces/", mapping={"ts": "start_time"})``."""
        return attach(self, source, mapping=mapping)

    @_reads
    def check_attached(self) -> Result:
        """Whether each attached source is still at its pinned snapshot:
        ``case.check_attached().rows()``."""
        return check_attached(self)

    @_reads
    def summary(self) -> Result:
        """What the case holds: evidence, volumes, time span, features, versions:
        ``case.summary()``."""
        return summarize(self)

    # -- what went wrong ---------------------------------------------------------------------
    @shows_progress("running detectors")
    @_writes
    def detect(self, rules: RuleSpec = None, engine: Engine = None) -> DetectResult:
        """Run the failure detectors and write ``labels``; see
        :func:`forensics.detect.detectors.detect`:
        ``case.detect(rules=["refusal", "private_data"])``, ``case.detect(engine="spark")``."""
        return detect(self, rules=rules, engine=engine)

    @_writes
    def import_labels(self, path: str | Path, *, event_id: str = "event_id",
                      label: str = "label", confidence: str | None = "confidence",
                      detail: str | None = "comment", source: str = "reviewer") -> Result:
        """Reviewer verdicts from a file into ``labels``; see
        :func:`forensics.detect.detectors.import_labels`:
        ``case.import_labels("verdicts.csv")``."""
        return import_labels(self, path, event_id=event_id, label=label,
                             confidence=confidence, detail=detail, source=source)

    @shows_progress("clustering")
    @_writes
    def cluster(self, pattern: Pattern = "bad", *, k: int | None = None,
                method: str = "families", seed: int = 0, k_max: int = 24,
                weights: dict[str, float] | None = None,
                embed: Callable[[list[str]], Any] | None = None,
                settings: dict[str, Any] | None = None) -> ClusterResult:
        """Group the events of ``pattern`` into failure patterns; see
        :func:`forensics.detect.cluster.cluster` (``settings``: more of its options):
        ``case.cluster("feature = 'doc_qa'")``."""
        return cluster(self, pattern, k=k, method=method, seed=seed, k_max=k_max,
                       weights=weights, embed=embed, **(settings or {}))

    # -- what changed, and which change caused it --------------------------------------------
    @_reads
    def changes(self, *, feature: str | None = None, bucket: str = "1h", settle: str = "6h",
                rollout: bool = True) -> ChangesResult:
        """Declared and inferred changes with their rollout; see
        :func:`forensics.cause.changes.changes`: ``case.changes(feature="doc_qa")``."""
        return changes(self, feature=feature, bucket=bucket, settle=settle, rollout=rollout)

    @_reads
    def timeline(self, metric: str = "bad_rate", *, by: str | None = None, bucket: str = "1h",
                 where: Pattern = None, level: float = 0.95,
                 markers: bool = True) -> TimelineResult:
        """A metric over time with change markers; see
        :func:`forensics.cause.changes.timeline`:
        ``case.timeline("refusal_rate", by="prompt_version").plot()``."""
        return timeline(self, metric, by=by, bucket=bucket, where=where, level=level,
                        markers=markers)

    @_reads
    def compare(self, a: Any = None, b: Any = None, *, by: str | None = None, at: Any = None,
                window: str | None = None, where: Pattern = None,
                metrics: list[str] | tuple[str, ...] | None = None,
                segments: list[str] | tuple[str, ...] | None = SEGMENTS,
                segment_metrics: list[str] | tuple[str, ...] = ("bad_rate",),
                concurrent: bool | None = None,
                level: float = 0.95, min_n: int = SMALL_N, reps: int = 500,
                sample: int = 20_000, seed: int = 0) -> CompareResult:
        """Two cohorts with intervals and corrected p-values; see
        :func:`forensics.cause.compare.compare`:
        ``case.compare(by="prompt_version", a="v12", b="v13")``."""
        return compare(self, a, b, by=by, at=at, window=window, where=where,
                       metrics=metrics, segments=segments, segment_metrics=segment_metrics,
                       concurrent=concurrent, level=level, min_n=min_n, reps=reps,
                       sample=sample, seed=seed)

    @_reads
    def suspects(self, pattern: Pattern = None, *, bucket: str = "1h", window: str = "48h",
                 lookback: str = "72h", lookahead: str = "12h", method: str = "binseg",
                 segments: list[str] | tuple[str, ...] = SEGMENTS, level: float = 0.95,
                 min_n: int = SMALL_N) -> SuspectsResult:
        """Ranked candidate root causes; see :func:`forensics.cause.suspects.suspects`:
        ``case.suspects("over_refusal")``. No pattern: the suspects of every incident
        (:meth:`incidents`; column ``incident_id``), or of any bad signal when the case
        has none; an incident id (``"INC-2"``): that incident's."""
        def run(p: Pattern) -> SuspectsResult:
            return suspects(self, p, bucket=bucket, window=window, lookback=lookback,
                            lookahead=lookahead, method=method, segments=segments,
                            level=level, min_n=min_n)
        if pattern is None:
            every = each_incident(self, lambda row: run(row["pattern"]), bucket=bucket)
            if every is not None:
                return every
        return run(incident_pattern(self, pattern, bucket))

    @_reads
    def retrieval_diff(self, before: str | None = None, after: str | None = None, *,
                       at: Any = None, feature: str | None = None, k: int = 5, p: float = 0.9,
                       pattern: Pattern = None, level: float = 0.95) -> RetrievalDiffResult:
        """Top-k retrieval before vs after an index change; see
        :func:`forensics.cause.retrieval.retrieval_diff`:
        ``case.retrieval_diff(before="kb-1", after="kb-2")``."""
        return retrieval_diff(self, before, after, at=at, feature=feature, k=k, p=p,
                              pattern=pattern, level=level)

    # -- who was hurt --------------------------------------------------------------------------
    @_reads
    def impact(self, pattern: Pattern = None, *, change: str | None = None,
               window: tuple[Any, Any] | None = None, by: list[str] | str | None = None,
               approx: bool = False, suppress_below: int = 0) -> ImpactResult:
        """Affected users, sessions and events; see :func:`forensics.impact.exact.impact`.

        >>> case.impact("over_refusal", by=["plan"]).df["cohort"].to_list()[0]
        'all'
        >>> case.impact("over_refusal", change="CHG-2041").meta["users"]
        258
        """
        def run(p: Pattern, c: str | None) -> ImpactResult:
            return impact(self, p, change=c, window=window, by=by, approx=approx,
                          suppress_below=suppress_below)
        if pattern is None and change is None and window is None:
            every = each_incident(self, lambda row: run(row["pattern"], likely_cause(row)))
            if every is not None:
                return every
        if isinstance(pattern, str) and pattern.startswith(("INC-", "BASE-")):
            row = self.incidents().incident(pattern)
            return run(row["pattern"], change or likely_cause(row))
        return run(pattern, change)

    @_reads
    def estimate_impact(self, pattern: Pattern, *, confirmed: str = "confirmed",
                        rejected: str | None = None, strata: str = "cluster",
                        level: float = 0.95, reps: int = 2000,
                        seed: int = 0) -> EstimateResult:
        """Affected events and users estimated from a sampled review, with intervals; see
        :func:`forensics.impact.estimate.estimate`: ``case.estimate_impact("over_refusal")``."""
        return estimate(self, pattern, confirmed=confirmed, rejected=rejected, strata=strata,
                        level=level, reps=reps, seed=seed)

    @_reads
    def review_sample(self, pattern: Pattern, n: int, *, strata: str = "cluster",
                      seed: int = 0, min_per_stratum: int = 2) -> Result:
        """Flagged events to give to reviewers (stratified, seeded); see
        :func:`forensics.impact.estimate.review_sample`:
        ``case.review_sample("over_refusal", 200)``."""
        return review_sample(self, pattern, n, strata=strata, seed=seed,
                             min_per_stratum=min_per_stratum)

    # -- findings ------------------------------------------------------------------------------
    @_writes
    def record(self, result: Result, title: str, note: str = "") -> str:
        """Keep ``result`` as a finding with its SQL, parameters and evidence hashes:
        ``case.record(case.impact("pii_leak"), "who saw the leak")``."""
        return record(self, result, title, note)

    @_reads
    def findings(self) -> Result:
        """The recorded findings: ``case.findings()``."""
        return list_findings(self)

    @_reads
    def rerun_finding(self, finding_id: str) -> Result:
        """Run a finding's SQL again with its parameters: ``case.rerun_finding("F001")``."""
        return rerun(self, finding_id)

    @_reads
    def check_finding(self, finding_id: str) -> dict[str, Any]:
        """Re-run a finding and compare with its stored rows: ``case.check_finding("F001")``."""
        return check(self, finding_id)

    # -- the playbook ------------------------------------------------------------------------
    @_writes
    def mark(self, name: str, ts: Any = None, note: str = "") -> Result:
        """Record a milestone (detected, contained, mitigated, resolved, ...); see
        :func:`forensics.playbook.milestones.mark`:
        ``case.mark("contained", "2026-03-15T14:00Z")``."""
        return mark(self, name, ts, note)

    @_reads
    def milestones(self) -> Result:
        """The recorded milestones: ``case.milestones()``."""
        return milestones(self)

    @_reads
    def incidents(self, *, bucket: str = "1h", min_events: int = 5, merge_within: str = "3h",
                  baselines: bool = True) -> IncidentsResult:
        """Every distinct incident (failure family x feature(s) x onset window) with its
        suspects, affected users and severity, most severe first, then the steady
        baselines; see :func:`forensics.playbook.incidents.incidents`:
        ``case.incidents().df``."""
        return incidents(self, bucket=bucket, min_events=min_events,
                         merge_within=merge_within, baselines=baselines)

    @_reads
    def severity(self, pattern: Pattern = None, *, category: str | None = None,
                 rules: SeverityRules = None, window: tuple[Any, Any] | None = None,
                 bucket: str = "1h", min_category_share: float = 0.1) -> SeverityResult:
        """Severity on the playbook's matrix with the deciding rule; see
        :func:`forensics.playbook.severity.severity`: ``case.severity("pii_leak")``."""
        pattern = incident_pattern(self, pattern, bucket)
        return severity(self, pattern, category=category, rules=rules, window=window,
                        bucket=bucket, min_category_share=min_category_share)

    @_reads
    def detection_gap(self, pattern: Pattern = None, *, bucket: str = "1h", onset: Any = None,
                      suspect: bool | str = True, max_false_alarms: int = 0,
                      min_headroom: float = MIN_HEADROOM, save: str | Path | None = None,
                      grid: dict[str, tuple[Any, ...]] | None = None) -> DetectionResult:
        """Onset, first signals and backtested alert rules; see
        :func:`forensics.playbook.detection_gap.detection_gap`:
        ``case.detection_gap("pii_leak")``."""
        pattern = incident_pattern(self, pattern, bucket)
        return detection_gap(self, pattern, bucket=bucket, onset=onset, suspect=suspect,
                             max_false_alarms=max_false_alarms, min_headroom=min_headroom,
                             save=save, grid=grid)

    @_reads
    def containment(self, pattern: Pattern = None, *, change: str | None = None,
                    at: Any = None, mode: str = "rollback", strata: str | None = None,
                    bucket: str = "1h", reference: str = "7d",
                    level: float = 0.95) -> ContainmentResult:
        """What a rollback (or fallback) at time T would have spared; see
        :func:`forensics.playbook.containment.containment`:
        ``case.containment("over_refusal", at="2026-03-12T12:00Z")``."""
        pattern = incident_pattern(self, pattern, bucket)
        return containment(self, pattern, change=change, at=at, mode=mode, strata=strata,
                           bucket=bucket, reference=reference, level=level)

    @_reads
    def incident_timeline(self, pattern: Pattern = None, *, bucket: str = "1h",
                          suspect: bool | str = True, lookback: str = "72h",
                          max_clusters: int = 10) -> IncidentTimelineResult:
        """The merged incident timeline with computed durations; see
        :func:`forensics.playbook.timeline.incident_timeline`:
        ``case.incident_timeline("pii_leak")``."""
        pattern = incident_pattern(self, pattern, bucket)
        return incident_timeline(self, pattern, bucket=bucket, suspect=suspect,
                                 lookback=lookback, max_clusters=max_clusters)

    @_reads
    def playbook(self, pattern: Pattern = None, *, bucket: str = "1h",
                 suspect: bool | str = True, category: str | None = None,
                 rules: SeverityRules = None, max_false_alarms: int = 0) -> PlaybookResult:
        """Severity, time to detect, the alert that would have caught it sooner, what a
        faster rollback would have spared; see :func:`forensics.playbook.answers.playbook`:
        ``case.playbook("pii_leak")``."""
        def run(p: Pattern) -> PlaybookResult:
            return playbook(self, p, bucket=bucket, suspect=suspect, category=category,
                            rules=rules, max_false_alarms=max_false_alarms)
        if pattern is None:
            every = each_incident(self, lambda row: run(row["pattern"]), bucket=bucket)
            if every is not None:
                return every
        return run(incident_pattern(self, pattern, bucket))

    # -- write it up -----------------------------------------------------------------------
    @shows_progress("writing the post-mortem")
    @_writes
    def postmortem(self, path: str | Path, *, pattern: Pattern = None,
                   change: str | None = None, redact: bool = True, min_cell: int = 5,
                   evals: bool = True, evals_per_cluster: int = 5,
                   title: str | None = None, force: bool = False) -> ReportResult:
        """Write the post-mortem (Markdown, HTML, charts, notification drafts, eval pack)
        to directory ``path``; see :func:`forensics.postmortem.writing.postmortem`:
        ``case.postmortem("postmortem/")``."""
        return postmortem(self, path, pattern=pattern, change=change, redact=redact,
                          min_cell=min_cell, evals=evals, evals_per_cluster=evals_per_cluster,
                          force=force, title=title)

    @_reads
    def export_evals(self, path: str | Path, format: str = "jsonl", *,
                     pattern: Pattern = None, change: str | None = None, per_cluster: int = 5,
                     redact: bool = True, seed: int = 0) -> Result:
        """Write the regression eval pack; see
        :func:`forensics.postmortem.evalpack.export_evals`:
        ``case.export_evals("evals/", format="all")``."""
        return export_evals(self, path, format, pattern=pattern, change=change,
                            per_cluster=per_cluster, redact=redact, seed=seed)


WATCH_S = 0.2
# The open cases of this process: DuckDB allows one configuration per file in a process,
# so a new connection first closes the read connections other cases kept for that file.
_OPEN_CASES: weakref.WeakSet[Case] = weakref.WeakSet()


def _drop_sibling_caches(case: Case) -> None:
    for other in list(_OPEN_CASES):
        if other is case or other._cache is None or other._key != case._key:
            continue
        if other._mutex.acquire(blocking=False):     # (not while one of its calls runs)
            try:
                other._drop_cache()
            finally:
                other._mutex.release()


def _watch_case(ref: weakref.ref[Case]) -> None:
    """Close the case's kept read connection once a writer holds the write lock."""
    while True:
        time.sleep(WATCH_S)
        case = ref()
        if case is None or case._closed:
            return
        if (case._cache is not None and sharing.writer_active(case.path)
                and case._mutex.acquire(blocking=False)):
            try:
                case._drop_cache()
            finally:
                case._mutex.release()
        del case


def _rollback_quietly(con: duckdb.DuckDBPyConnection) -> None:
    with suppress(duckdb.Error):      # (no transaction was open)
        con.execute("ROLLBACK")


def _writable(path: Path) -> bool:
    """Writable by us, and not marked read-only (root ignores the mode bits, we don't)."""
    return os.access(path, os.W_OK) and bool(path.stat().st_mode & 0o222)


def _version() -> str:

    return __version__


def open(path: str | Path, read_only: bool = False, *, lock_wait: float | None = None,
         purpose: str = "hold case.con") -> Case:
    """Create or open the case file at ``path``: ``case = forensics.open("incident.duckdb")``.

    ``lock_wait``: seconds to wait while another process writes (default
    ``$FORENSICS_LOCK_WAIT`` or 60); ``purpose``: what a kept ``case.con`` is for, shown to
    a process that waits for it."""
    return Case(path, read_only=read_only, lock_wait=lock_wait, purpose=purpose)
