"""Evidence in place: a Parquet dataset, an Iceberg table or a Delta table read where it
lies, never copied into the case.

Attaching pins the source: the data files of one snapshot (Iceberg snapshot id, Delta
version) or, for a plain Parquet dataset, every file with its sha256. The ``evidence``
row records that identity, the mapping and the row count; ``attachments`` keeps the
pinned file list. Each time the case is opened, the canonical ``events`` name becomes a
session view over the loaded events plus the pinned files of every attached source
(through ``read_parquet``), so every stage, saved query and notebook reads attached
evidence unchanged. The source moving on (a new snapshot, a rewritten file) is named by
:func:`check_attached`; the views keep reading the pinned files until the source is
attached again, which adds a new evidence row that supersedes the old one for that source.

Sources:

* a folder (every ``*.parquet`` below it, hive partitions ``key=value/`` become
  attributes) or a glob (``/data/traces/*/part-*.parquet``);
* a Delta table: a folder holding ``_delta_log`` (the ``deltalake`` package);
* an Iceberg table: a ``*.metadata.json`` path, or ``iceberg:CATALOG/namespace.table``
  for a catalog configured the pyiceberg way (``~/.pyiceberg.yaml`` or
  ``PYICEBERG_CATALOG__<NAME>__URI`` ...).

Object stores (``s3://``, ``gs://``, ``az://``) work where DuckDB's httpfs and the table
library can reach them, with credentials from the environment (``AWS_*`` ...); the case
records the URL and the snapshot, never a credential.

>>> import polars as pl
>>> Path("lake").mkdir()
>>> pl.DataFrame({"ts": ["2026-03-02T10:00:00Z"], "user_id": ["u1"], "model": ["gpt-4o"],
...               "output": ["Hello"]}).write_parquet("lake/part-0.parquet")
>>> with forensics.open("new.duckdb") as new:
...     attached = new.attach("lake")
...     row = new.sql("SELECT user_id, model, output_text FROM events").df.row(0)
>>> attached.df.select("kind", "files", "rows_loaded", "status").row(0), row
(('parquet', 1, 1, 'attached'), ('u1', 'gpt-4o', 'Hello'))
"""

from __future__ import annotations

import contextlib
import datetime as dt
import glob as globmod
import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import polars as pl

from forensics.core.db import quote_ident, scalar
from forensics.core.errors import LoadError, MappingError
from forensics.core.handle import CaseHandle
from forensics.core.result import Result
from forensics.ingest import mapping as mapping_mod

ATTACH_VERSION = "1"
KINDS = ("parquet", "delta", "iceberg")
TEXT_COLUMNS = mapping_mod.EVENT_TEXT
NUMERIC_COLUMNS = mapping_mod.EVENT_NUMERIC
# read_parquet's own columns, kept out of attributes
META_COLUMNS = {"filename", "file_row_number"}

ATTACHMENTS_DDL = """
CREATE TABLE IF NOT EXISTS attachments (
    evidence_id INTEGER,
    kind        VARCHAR,     -- parquet / delta / iceberg
    source      VARCHAR,     -- as given (a path, a URL, iceberg:catalog/ns.table)
    snapshot    VARCHAR,     -- Iceberg snapshot id, Delta version, or the files' digest
    files       JSON,        -- [{path, bytes, mtime_ns, sha256}] of the pinned snapshot
    hive        BOOLEAN,     -- read hive partitions from the paths
    columns     JSON,        -- the source's columns and DuckDB types
    attached_at TIMESTAMP,
    table_id    VARCHAR      -- Iceberg table uuid / Delta table id / the source path
)"""


class AttachResult(Result):
    kind = "attach"


@dataclass
class Pinned:
    """One source at one moment: its kind, identity and data files."""

    kind: str
    source: str
    snapshot: str
    files: list[dict[str, Any]]
    hive: bool
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def paths(self) -> list[str]:
        return [f["path"] for f in self.files]

    def digest(self) -> str:
        """The evidence sha256: of the snapshot and every pinned file's identity."""
        files = sorted(f"{f['path']}\t{f.get('sha256') or f.get('bytes')}" for f in self.files)
        lines = [f"{self.kind}\t{self.snapshot}", *files]
        return hashlib.sha256("\n".join(lines).encode()).hexdigest()


# ---------------------------------------------------------------------------------------
# what a source is, and its pinned files

def source_kind(source: str) -> str:
    """``parquet``, ``delta`` or ``iceberg`` for a source string.

    >>> source_kind("iceberg:local/traces.events")
    'iceberg'
    >>> source_kind("/data/traces/*.parquet")
    'parquet'
    """
    if source.startswith("iceberg:") or source.endswith(".metadata.json"):
        return "iceberg"
    if source.startswith("delta:"):
        return "delta"
    local = Path(source)
    if "://" not in source and local.is_dir() and (local / "_delta_log").is_dir():
        return "delta"
    if "://" in source and not any(ch in source for ch in "*?["):
        with contextlib.suppress(Exception):
            from deltalake import DeltaTable

            if DeltaTable.is_deltatable(source):
                return "delta"
    return "parquet"


def pin(source: str, *, hash_files: bool = True) -> Pinned:
    """The current snapshot of ``source`` and its data files."""
    kind = source_kind(source)
    if kind == "iceberg":
        return _pin_iceberg(source)
    if kind == "delta":
        return _pin_delta(source.removeprefix("delta:"))
    return _pin_parquet(source, hash_files=hash_files)


def _file_facts(path: str, digest: bool) -> dict[str, Any]:
    st = os.stat(path)
    facts: dict[str, Any] = {"path": path, "bytes": st.st_size, "mtime_ns": st.st_mtime_ns}
    if digest:
        h = hashlib.sha256()
        with open(path, "rb") as fh:
            while chunk := fh.read(1 << 20):
                h.update(chunk)
        facts["sha256"] = h.hexdigest()
    return facts


def _parquet_files(source: str) -> list[str]:
    if "://" in source:
        raise LoadError(f"{source}: a Parquet dataset in object storage is attached by its "
                        "table (Delta or Iceberg), whose snapshot pins the files",
                        hint="or list the objects into a local manifest folder")
    local = Path(source)
    if local.is_dir():
        found = sorted(str(p.resolve()) for p in local.rglob("*.parquet") if p.is_file()
                       and not any(part.startswith(("_", ".")) for part in
                                   p.relative_to(local).parts))
    elif local.is_file():
        found = [str(local.resolve())]
    else:
        found = sorted(str(Path(p).resolve()) for p in globmod.glob(source, recursive=True)
                       if Path(p).is_file())
    if not found:
        raise LoadError(f"{source}: no Parquet files found",
                        hint="give a folder, a .parquet file or a glob like 'dir/**/*.parquet'")
    return found


def _pin_parquet(source: str, hash_files: bool = True) -> Pinned:
    files = [_file_facts(p, hash_files) for p in _parquet_files(source)]
    hive = any("=" in part for f in files for part in Path(f["path"]).parent.parts)
    pinned = Pinned("parquet", source, "", files, hive)
    pinned.snapshot = "sha256:" + pinned.digest()[:16]
    return pinned


def _pin_delta(source: str, version: int | None = None) -> Pinned:
    try:
        from deltalake import DeltaTable
    except ImportError as exc:   # pragma: no cover - a declared dependency
        raise LoadError("attaching a Delta table needs the deltalake package") from exc
    try:
        table = DeltaTable(source, version=version)
    except Exception as exc:
        raise LoadError(f"{source}: cannot open as a Delta table: {exc}") from exc
    features = set(table.protocol().reader_features or [])
    if "deletionVectors" in features:
        raise LoadError(f"{source}: the Delta table uses deletion vectors, which reading "
                        "its Parquet files directly would ignore",
                        hint="run OPTIMIZE / purge the deletion vectors, or load a copy")
    import pyarrow as pa

    actions = pa.table(table.get_add_actions(flatten=True))
    sizes = dict(zip(actions.column("path").to_pylist(),
                     actions.column("size_bytes").to_pylist(), strict=True))
    base = table.table_uri.rstrip("/")
    files: list[dict[str, Any]] = [
        {"path": _local(f"{base}/{p}" if "://" not in p else p), "bytes": int(b)}
        for p, b in sorted(sizes.items())]
    partitions = list(table.metadata().partition_columns)
    return Pinned("delta", source, str(table.version()), files, bool(partitions),
                  {"partition_columns": partitions, "table_id": table.metadata().id})


def _pin_iceberg(source: str) -> Pinned:
    table = _iceberg_table(source)
    snap = table.current_snapshot()
    if snap is None:
        return Pinned("iceberg", source, "empty", [], False, {})
    tasks = list(table.scan(snapshot_id=snap.snapshot_id).plan_files())
    if any(t.delete_files for t in tasks):
        raise LoadError(f"{source}: snapshot {snap.snapshot_id} has delete files (merge-on-"
                        "read); reading its data files directly would count deleted rows",
                        hint="compact the table (rewrite data files), then attach it")
    files = [{"path": _local(t.file.file_path), "bytes": int(t.file.file_size_in_bytes),
              "rows": int(t.file.record_count)} for t in tasks]
    return Pinned("iceberg", source, str(snap.snapshot_id), sorted(files, key=lambda f: f["path"]),
                  False, {"table_uuid": str(table.metadata.table_uuid),
                          "sequence_number": snap.sequence_number})


def _iceberg_table(source: str) -> Any:
    try:
        from pyiceberg.catalog import load_catalog
        from pyiceberg.table import StaticTable
        from pyiceberg.utils.config import Config
    except ImportError as exc:   # pragma: no cover - a declared dependency
        raise LoadError("attaching an Iceberg table needs the pyiceberg package") from exc
    try:
        if source.startswith("iceberg:"):
            catalog, _, ident = source.removeprefix("iceberg:").partition("/")
            if not catalog or not ident:
                raise LoadError(f"{source}: expected iceberg:CATALOG/namespace.table")
            # read the configuration now, not pyiceberg's copy from its import time
            conf: dict[str, Any] = dict(Config().get_catalog_config(catalog) or {})
            return load_catalog(catalog, **conf).load_table(ident)
        return StaticTable.from_metadata(source)
    except LoadError:
        raise
    except Exception as exc:
        raise LoadError(f"{source}: cannot open as an Iceberg table: {exc}",
                        hint="configure the catalog in ~/.pyiceberg.yaml or "
                             "PYICEBERG_CATALOG__<NAME>__URI") from exc


def _local(uri: str) -> str:
    """A ``file://`` URI as a path DuckDB reads; other URLs stay as they are."""
    if uri.startswith("file://"):
        from urllib.parse import unquote, urlparse

        return unquote(urlparse(uri).path)
    return uri


# ---------------------------------------------------------------------------------------
# mapping the source's columns onto events

def _sql_text(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _reader(files: list[str], hive: bool) -> str:
    listed = "[" + ", ".join(_sql_text(p) for p in files) + "]"
    return (f"read_parquet({listed}, filename = true, file_row_number = true, "
            f"union_by_name = true, hive_partitioning = {str(hive).lower()})")


def source_columns(con: duckdb.DuckDBPyConnection, files: list[str],
                   hive: bool) -> dict[str, str]:
    """Column name -> DuckDB type of the pinned files (union by name)."""
    rows = con.execute(f"DESCRIBE SELECT * FROM {_reader(files, hive)}").fetchall()
    return {r[0]: r[1] for r in rows if r[0] not in META_COLUMNS}


def resolve_mapping(columns: dict[str, str], explicit: dict[str, str]) -> dict[str, str]:
    """canonical column -> source column (or ``col.field`` into a struct).

    >>> resolve_mapping({"id": "VARCHAR", "timestamp": "TIMESTAMP"}, {})
    {'event_id': 'id', 'ts': 'timestamp'}
    """
    wanted = [*TEXT_COLUMNS, "ts", *NUMERIC_COLUMNS]
    unknown = set(explicit) - set(wanted)
    if unknown:
        raise MappingError(f"mapping names columns that events does not have: "
                           f"{sorted(unknown)}", hint="events columns: " + ", ".join(wanted))
    chosen: dict[str, str] = {}
    taken: set[str] = set()
    for column in wanted:
        if column in explicit:
            top = explicit[column].split(".")[0]
            if explicit[column] not in columns and top not in columns:
                raise MappingError(f"mapping {column} = {explicit[column]!r}: the source has "
                                   "no such column", hint="columns: " + ", ".join(columns))
            chosen[column] = explicit[column]
            taken.add(top)
            continue
        for name in [column, *mapping_mod.ALIASES.get(column, [])]:
            if name in columns and name not in taken:
                chosen[column] = name
                taken.add(name)
                break
    return chosen


def _column_ref(path: str, columns: dict[str, str]) -> str:
    if path in columns:
        return quote_ident(path)
    return ".".join(quote_ident(p) for p in path.split("."))


def _is_nested(sql_type: str) -> bool:
    return sql_type.endswith("]") or sql_type.startswith(("STRUCT", "MAP", "UNION"))


def _ts_expr(ref: str, sql_type: str) -> str:
    if sql_type.startswith("TIMESTAMP WITH TIME ZONE"):
        return f"timezone('UTC', {ref})"
    if sql_type.startswith(("TIMESTAMP", "DATE")):
        return f"CAST({ref} AS TIMESTAMP)"
    return f"_fx_ts(CAST({ref} AS VARCHAR))"


def select_sql(evidence_id: int, digest: str, files: list[str], hive: bool,
               columns: dict[str, str], resolved: dict[str, str]) -> str:
    """The SELECT that reads the pinned files as canonical events (``_reject`` says why a
    row cannot be an event)."""
    exprs: dict[str, str] = {}
    for column in TEXT_COLUMNS:
        if column in resolved:
            ref = _column_ref(resolved[column], columns)
            kind = columns.get(resolved[column], "VARCHAR")
            exprs[column] = (f"CAST(to_json({ref}) AS VARCHAR)" if _is_nested(kind)
                             else f"CAST({ref} AS VARCHAR)")
        else:
            exprs[column] = "NULL::VARCHAR"
    locator = "t.filename || ' row ' || CAST(t.file_row_number + 1 AS VARCHAR)"
    if "event_id" not in resolved:
        exprs["event_id"] = f"md5({_sql_text(digest)} || ':' || {locator})"
    ts_src = resolved.get("ts")
    exprs["ts"] = (_ts_expr(_column_ref(ts_src, columns), columns.get(ts_src, "VARCHAR"))
                   if ts_src else "NULL::TIMESTAMP")
    for column, sql_type in NUMERIC_COLUMNS.items():
        exprs[column] = (f"try_cast({_column_ref(resolved[column], columns)} AS {sql_type})"
                         if column in resolved else f"NULL::{sql_type}")
    used = {p.split(".")[0] for p in resolved.values()} | set(resolved.values())
    rest = [c for c in columns if c not in used]
    own = "attributes" in rest          # a source's own attributes column is merged in
    rest = [c for c in rest if c != "attributes"]
    others = ("json_object(" + ", ".join(f"{_sql_text(c)}, {quote_ident(c)}" for c in rest)
              + ")") if rest else "'{}'::JSON"
    exprs["attributes"] = (f"json_merge_patch(coalesce(CAST(t.attributes AS JSON), "
                           f"'{{}}'::JSON), {others})" if own else others)
    body = ", ".join(f"{expr} AS {column}" for column, expr in exprs.items())
    return (f"SELECT {body}, {int(evidence_id)} AS evidence_id, {locator} AS locator "
            f"FROM {_reader(files, hive)} t")


# ---------------------------------------------------------------------------------------
# the session views

def _has_attachments(con: duckdb.DuckDBPyConnection) -> bool:
    return bool(scalar(con, "SELECT count(*) FROM duckdb_tables() WHERE table_name = "
                            "'attachments' AND database_name = current_database()"))


def current_attachments(con: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    """The latest attachment of each source (a re-attached source supersedes its older
    snapshots), with the evidence row's mapping."""
    if not _has_attachments(con):
        return []
    rows = con.execute("""
        SELECT a.evidence_id, a.kind, a.source, a.snapshot, a.files, a.hive, a.columns,
               e.mapping, e.sha256, a.table_id
        FROM attachments a JOIN evidence e USING (evidence_id)
        QUALIFY row_number() OVER (PARTITION BY a.table_id ORDER BY a.evidence_id DESC) = 1
        ORDER BY a.evidence_id""").fetchall()
    keys = ["evidence_id", "kind", "source", "snapshot", "files", "hive", "columns",
            "mapping", "sha256", "table_id"]
    out = []
    for row in rows:
        item = dict(zip(keys, row, strict=True))
        for key in ("files", "columns", "mapping"):
            item[key] = json.loads(item[key]) if item[key] else ([] if key == "files" else {})
        out.append(item)
    return out


def attached_files(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Every data file the pinned snapshots of the attached sources read."""
    return sorted({f["path"] for a in current_attachments(con) for f in a["files"]})


def _case_table(con: duckdb.DuckDBPyConnection, name: str) -> str:
    return f"{quote_ident(str(scalar(con, 'SELECT current_database()')))}.main.{name}"


def install_views(con: duckdb.DuckDBPyConnection) -> int:
    """Make ``events`` (in this session) the loaded events plus every attached source's
    pinned files. Returns how many sources are attached."""
    attached = [a for a in current_attachments(con) if a["files"]]
    con.execute("DROP VIEW IF EXISTS temp.main.events")
    if not attached:
        return 0
    mapping_mod.install_macros(con)
    parts = [f"SELECT * FROM {_case_table(con, 'events')}"]
    for a in attached:
        select = select_sql(a["evidence_id"], a["sha256"], [f["path"] for f in a["files"]],
                            bool(a["hive"]), a["columns"], a["mapping"])
        parts.append(f"SELECT * FROM ({select}) WHERE ts IS NOT NULL")
    con.execute("CREATE OR REPLACE TEMP VIEW events AS " + " UNION ALL BY NAME ".join(parts))
    return len(attached)


def unshadow(con: duckdb.DuckDBPyConnection) -> Callable[[], None]:
    """Make ``events`` the case's own table again (to append to it); returns the
    function that puts the session view back."""
    shadowed = bool(scalar(con, "SELECT count(*) FROM duckdb_views() WHERE temporary AND "
                                "view_name = 'events'"))
    if not shadowed:
        return lambda: None
    con.execute("DROP VIEW temp.main.events")

    def restore() -> None:
        install_views(con)
    return restore


# ---------------------------------------------------------------------------------------
# attaching

def attach(case: CaseHandle, source: str | Path,
           mapping: dict[str, Any] | str | Path | None = None) -> AttachResult:
    """Attach ``source`` as evidence in place; returns a one-row result (evidence_id,
    kind, source, snapshot, files, rows_loaded, rows_rejected, status)."""
    if case.read_only:
        raise LoadError(f"cannot attach {source}: the case is open read-only")
    source = str(source)
    con = case.con
    con.execute(ATTACHMENTS_DDL)
    explicit = _plain_mapping(mapping)
    pinned = pin(source)
    digest = pinned.digest()
    known = con.execute("SELECT evidence_id, rows_loaded, rows_rejected FROM evidence "
                        "WHERE sha256 = ?", [digest]).fetchall()
    if known:
        ev, n_ok, n_bad = known[0]
        return _result(pinned, digest, ev, n_ok, n_bad, "already attached")
    if not pinned.files:
        raise LoadError(f"{source}: the table has no data files (empty snapshot)")
    try:
        columns = source_columns(con, pinned.paths, pinned.hive)
    except duckdb.Error as exc:
        raise LoadError(f"{source}: cannot read the pinned Parquet files: {exc}") from exc
    resolved = resolve_mapping(columns, explicit)
    if "ts" not in resolved:
        raise MappingError(f"{source}: no timestamp column found",
                           hint="map one: --mapping ts=<column>; columns: " + ", ".join(columns))
    table_id = str(pinned.detail.get("table_uuid") or pinned.detail.get("table_id") or
                   (source if pinned.kind != "parquet" else Path(source).resolve()))
    previous = [a for a in current_attachments(con) if a["table_id"] == table_id]
    mapping_mod.install_macros(con)
    con.execute("BEGIN TRANSACTION")
    try:
        evidence_id = int(scalar(con, "SELECT nextval('evidence_seq')"))
        select = select_sql(evidence_id, digest, pinned.paths, pinned.hive, columns, resolved)
        total, bad = con.execute(f"SELECT count(*), count(*) FILTER (WHERE ts IS NULL) "
                                 f"FROM ({select})").fetchall()[0]
        if bad:
            con.execute(f"""INSERT INTO rejects SELECT ?, locator,
                                'missing or unparseable timestamp', NULL
                            FROM ({select}) WHERE ts IS NULL""", [evidence_id])
        now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
        con.execute("INSERT INTO evidence (evidence_id, path, sha256, bytes, format, target, "
                    "loader_version, loaded_at, records_in, rows_loaded, rows_rejected, "
                    "mapping, read_as) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [evidence_id, source, digest, sum(f["bytes"] for f in pinned.files),
                     f"attached {pinned.kind}", "events", ATTACH_VERSION, now, total,
                     total - bad, bad, json.dumps(resolved),
                     json.dumps({"format": f"attached {pinned.kind}", "target": "events",
                                 "mapping": resolved, "snapshot": pinned.snapshot},
                                sort_keys=True, default=str)])
        con.execute("INSERT INTO attachments VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [evidence_id, pinned.kind, source, pinned.snapshot,
                     json.dumps(pinned.files), pinned.hive, json.dumps(columns), now,
                     table_id])
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    install_views(con)
    status = (f"attached; supersedes evidence {previous[0]['evidence_id']} "
              f"(snapshot {previous[0]['snapshot']})" if previous else "attached")
    return _result(pinned, digest, evidence_id, total - bad, bad, status)


def _plain_mapping(mapping: dict[str, Any] | str | Path | None) -> dict[str, str]:
    """A mapping as canonical column -> source column (dotted into structs)."""
    if mapping is None:
        return {}
    if isinstance(mapping, (str, Path)) and "=" in str(mapping) and \
            not Path(str(mapping)).exists():
        pairs = [p.split("=", 1) for p in str(mapping).split(",") if p.strip()]
        return {k.strip(): v.strip() for k, v in pairs}
    if isinstance(mapping, (str, Path)):
        import tomllib

        try:
            data = tomllib.loads(Path(mapping).read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise MappingError(f"cannot read mapping file {mapping}: {exc}") from exc
        mapping = data.get("mapping", data)
    assert isinstance(mapping, dict)
    out = {}
    for column, src in mapping.items():
        if not isinstance(src, str):
            raise MappingError(f"mapping for {column!r} must be a column name, got {src!r}")
        out[str(column)] = src.removeprefix("$.")
    return out


def _result(pinned: Pinned, digest: str, evidence_id: int, loaded: int, rejected: int,
            status: str) -> AttachResult:
    df = pl.DataFrame([{"evidence_id": evidence_id, "kind": pinned.kind,
                        "source": pinned.source, "snapshot": pinned.snapshot,
                        "files": len(pinned.files), "sha256": digest, "rows_loaded": loaded,
                        "rows_rejected": rejected, "status": status}])
    return AttachResult(df, sql="SELECT * FROM attachments WHERE evidence_id = $ev",
                        params={"ev": evidence_id}, title=f"attach {pinned.source}")


# ---------------------------------------------------------------------------------------
# has the source moved on?

def check_attached(case: CaseHandle) -> Result:
    """For each attached source: is it still at the pinned snapshot? One row each:
    evidence_id, kind, source, pinned, current, status, detail."""
    out = []
    for a in current_attachments(case.con):
        out.append(_check_one(a))
    df = pl.DataFrame(out, schema={"evidence_id": pl.Int64, "kind": pl.Utf8,
                                   "source": pl.Utf8, "pinned": pl.Utf8, "current": pl.Utf8,
                                   "status": pl.Utf8, "detail": pl.Utf8})
    changed = df.filter(pl.col("status") != "unchanged").height
    return Result(df, title="attached sources", meta={"changed": changed})


def _check_one(a: dict[str, Any]) -> dict[str, Any]:
    row = {"evidence_id": a["evidence_id"], "kind": a["kind"], "source": a["source"],
           "pinned": a["snapshot"]}
    try:
        if a["kind"] == "parquet":
            current, detail = _parquet_changes(a)
        else:
            now = pin(a["source"])
            current = now.snapshot
            detail = "" if now.snapshot == a["snapshot"] else (
                f"the table moved from {'version' if a['kind'] == 'delta' else 'snapshot'} "
                f"{a['snapshot']} to {now.snapshot}; the case still reads {a['snapshot']}")
            missing = [f["path"] for f in a["files"]
                       if "://" not in f["path"] and not Path(f["path"]).exists()]
            if missing:
                detail += f"; {len(missing)} pinned data files are gone (e.g. {missing[0]})"
    except LoadError as exc:
        return {**row, "current": None, "status": "unreadable", "detail": exc.message}
    return {**row, "current": current, "status": "changed" if detail else "unchanged",
            "detail": detail}


def _parquet_changes(a: dict[str, Any]) -> tuple[str, str]:
    before = {f["path"]: f for f in a["files"]}
    try:
        paths = _parquet_files(a["source"])
    except LoadError:
        paths = []
    added = sorted(set(paths) - set(before))
    removed = sorted(set(before) - set(paths))
    changed = []
    for path in sorted(set(paths) & set(before)):
        old = before[path]
        st = os.stat(path)
        if (st.st_size, st.st_mtime_ns) == (old["bytes"], old.get("mtime_ns")):
            continue      # same size and time: not rehashed
        if _file_facts(path, True).get("sha256") != old.get("sha256"):
            changed.append(path)
    parts = [f"{len(v)} file{'s' if len(v) != 1 else ''} {what} (e.g. {Path(v[0]).name})"
             for what, v in (("added", added), ("removed", removed), ("changed", changed)) if v]
    if not parts:
        return a["snapshot"], ""
    now = _pin_parquet(a["source"]) if paths else None
    return (now.snapshot if now else "gone"), "; ".join(parts)


__all__ = [
    "KINDS",
    "AttachResult",
    "Pinned",
    "attach",
    "check_attached",
    "install_views",
    "pin",
    "resolve_mapping",
    "select_sql",
    "source_kind",
    "unshadow",
]
