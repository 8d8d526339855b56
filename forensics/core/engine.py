"""The engine boundary: stage SQL is written once, in DuckDB's dialect, and runs either on
the case's DuckDB connection or, for the stages whose cost grows with the evidence, on
Spark.

For Spark, :func:`translate` turns the DuckDB SQL into Spark SQL with sqlglot; the few
constructs that do not translate by name get their Spark form here, in one place
(:class:`SparkDialect`, :func:`translate_with_params`):

* ``json_object(k, v, ...)`` -> ``to_json(named_struct(...))`` keeping null members;
* ``hash(x)`` (DuckDB's 64-bit hash) -> ``xxhash64(x)``: a 32-bit hash would collide on
  millions of distinct texts;
* JSON paths with quoted keys (``$."gen_ai.request.max_tokens"``) -> ``$['...']``;
* ``regexp_extract_all(s, p)`` keeps DuckDB's default group 0 (Spark's default is 1);
* RE2 patterns (literals and bound parameters) -> Java patterns (:func:`spark_regex`);
* ``json_valid(x)`` -> ``try_parse_json``.

Parameters stay bound: ``$name`` becomes Spark's named marker ``:name`` and the values go
to ``spark.sql(..., args=...)``. What comes back to the case is small (labels, counts,
cubes) and is written by the stage into the case file, so reports and notebooks read it
unchanged.

The session comes from the environment: ``SPARK_REMOTE`` (Spark Connect, e.g.
``sc://spark-connect:15002``) or ``FORENSICS_SPARK_MASTER`` (default ``local[2]``).

>>> translate("SELECT hash(lower(t)) AS h FROM e WHERE n > $n")
'SELECT XXHASH64(LOWER(t)) AS h FROM e WHERE n > :n'
>>> translate("SELECT json_object('a', x) AS j FROM e")
"SELECT TO_JSON(NAMED_STRUCT('a', x), MAP('ignoreNullFields', 'false')) AS j FROM e"
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any, cast

import duckdb
import pyarrow as pa
import sqlglot
from sqlglot import exp
from sqlglot.dialects.spark import Spark

from forensics.core.db import quote_ident
from forensics.core.errors import ForensicsError, UsageError

ENGINES = ("duckdb", "spark")
# The case's tables a heavy stage may read; shipped to Spark as Parquet.
CASE_TABLES = ("events", "moderations", "feedback", "retrievals", "labels", "changes")


class EngineError(ForensicsError):
    """The engine is not available (no pyspark, no Java) or refused the SQL."""


# ---------------------------------------------------------------------------------------
# DuckDB SQL -> Spark SQL

_QUOTED_PATH = re.compile(r'\."((?:[^"\\]|\\.)*)"')


def _spark_json_path(path: str) -> str:
    """``$."a.b"."c"`` -> ``$['a.b']['c']`` (Spark's get_json_object reads that form)."""
    return _QUOTED_PATH.sub(lambda m: "['" + m.group(1).replace("'", "\\'") + "']", path)


def _json_object(self: Any, e: exp.JSONObject) -> str:
    pairs = []
    for kv in e.expressions:
        key, value = (kv.this, kv.expression) if isinstance(kv, exp.JSONKeyValue) else (kv, kv)
        pairs += [self.sql(key), self.sql(value)]
    return (f"TO_JSON(NAMED_STRUCT({', '.join(pairs)}), "
            "MAP('ignoreNullFields', 'false'))")


def _regexp_extract_all(self: Any, e: exp.RegexpExtractAll) -> str:
    group = e.args.get("group")
    return self.func("REGEXP_EXTRACT_ALL", e.this, e.expression,
                     group if group is not None else exp.Literal.number(0))


class SparkDialect(Spark):
    """Spark SQL with the DuckDB constructs that sqlglot does not carry over."""

    class Generator(Spark.Generator):  # type: ignore[misc,valid-type]
        TRANSFORMS = {  # noqa: RUF012 - sqlglot's own convention
            **Spark.Generator.TRANSFORMS,
            exp.JSONObject: _json_object,
            exp.RegexpExtractAll: _regexp_extract_all,
        }


_POSIX = {"alpha": r"\p{Alpha}", "alnum": r"\p{Alnum}", "digit": r"0-9", "space": r"\s",
          "upper": r"\p{Upper}", "lower": r"\p{Lower}", "punct": r"\p{Punct}"}
_SCRIPTS = re.compile(r"\\p\{(Han|Hiragana|Katakana|Hangul|Latin|Cyrillic|Greek|Arabic|Hebrew|"
                      r"Thai|Devanagari)\}")
_WORD = "[A-Za-z0-9_]"
# RE2's \b is ASCII-only; Java 17's also counts accented letters as word characters
_ASCII_BOUNDARY = f"(?:(?<={_WORD})(?!{_WORD})|(?<!{_WORD})(?={_WORD}))"


def spark_regex(pattern: str) -> str:
    """An RE2 (DuckDB) pattern as a Java (Spark) pattern with the same matches: POSIX
    classes, script names and the ASCII word boundary spelled the Java way.

    >>> spark_regex("[[:alpha:]]+")
    '[\\\\p{Alpha}]+'
    """
    out = re.sub(r"\[:(\w+):\]", lambda m: _POSIX.get(m.group(1), m.group(0)), pattern)
    out = _SCRIPTS.sub(lambda m: "\\p{Is" + m.group(1) + "}", out)
    return re.sub(r"(?<!\\)\\b", lambda _m: _ASCII_BOUNDARY, out)


_REGEX_FUNCS = (exp.RegexpLike, exp.RegexpExtract, exp.RegexpExtractAll, exp.RegexpReplace,
                exp.RegexpILike)


def _rewrite(node: exp.Expression) -> exp.Expression:
    if isinstance(node, exp.Anonymous) and node.name.lower() == "hash":
        return cast(exp.Expression, exp.func("xxhash64", *node.expressions))
    if isinstance(node, exp.Anonymous) and node.name.lower() == "json_valid":
        arg = node.expressions[0]
        return exp.If(this=exp.Is(this=arg.copy(), expression=exp.Null()), true=exp.Null(),
                      false=exp.Not(this=exp.Is(this=exp.func("try_parse_json", arg.copy()),
                                                expression=exp.Null())))
    return node


def translate_with_params(sql: str) -> tuple[str, set[str]]:
    """DuckDB SQL as Spark SQL, and the names of the parameters used as patterns (their
    values need :func:`spark_regex`)."""
    try:
        trees = sqlglot.parse(sql, read="duckdb")
    except sqlglot.errors.ParseError as exc:
        raise EngineError(f"cannot translate the stage SQL to Spark: {exc}") from exc
    out, regex_params = [], set()
    for tree in trees:
        if tree is None:
            continue
        tree = tree.transform(_rewrite)
        for lit in tree.find_all(exp.Literal):
            if lit.is_string and lit.this.startswith('$."'):
                lit.replace(exp.Literal.string(_spark_json_path(lit.this)))
        for call in tree.find_all(*_REGEX_FUNCS):
            pattern = call.expression
            if isinstance(pattern, exp.Literal) and pattern.is_string:
                pattern.replace(exp.Literal.string(spark_regex(pattern.this)))
            elif isinstance(pattern, exp.Placeholder) and pattern.name:
                regex_params.add(pattern.name)
        out.append(tree.sql(dialect=SparkDialect))
    return ";\n".join(out), regex_params


def translate(sql: str) -> str:
    """DuckDB SQL as Spark SQL (parameters stay named markers)."""
    return translate_with_params(sql)[0]


def spark_args(params: dict[str, Any] | None,
               regex_params: set[str] | frozenset[str] = frozenset()) -> dict[str, Any]:
    """Parameter values as Spark takes them: JSON paths and patterns in Spark's form,
    lists as arrays."""
    args: dict[str, Any] = {}
    for key, value in (params or {}).items():
        if isinstance(value, str) and value.startswith('$."'):
            value = _spark_json_path(value)
        elif isinstance(value, str) and key in regex_params:
            value = spark_regex(value)
        args[key] = list(value) if isinstance(value, tuple) else value
    return args


# ---------------------------------------------------------------------------------------
# the session

def spark_available() -> str | None:
    """None when a Spark session can be made here, else why not."""
    try:
        import pyspark  # noqa: F401
    except ImportError:
        return "pyspark is not installed (pip install 'forensics[spark]')"
    if not os.environ.get("SPARK_REMOTE") and shutil.which("java") is None \
            and not os.environ.get("JAVA_HOME"):
        return "no Java runtime (install a JRE 17+, or set SPARK_REMOTE for Spark Connect)"
    return None


def spark_session() -> Any:
    """The Spark session from the environment: Spark Connect at ``SPARK_REMOTE``, else a
    local master (``FORENSICS_SPARK_MASTER``, default ``local[2]``)."""
    why = spark_available()
    if why:
        raise EngineError(f"the Spark engine is not available: {why}")
    from pyspark.sql import SparkSession

    builder = SparkSession.builder.appName("forensics")
    remote = os.environ.get("SPARK_REMOTE")
    if remote:
        builder = builder.remote(remote)
    else:
        builder = (builder.master(os.environ.get("FORENSICS_SPARK_MASTER", "local[2]"))
                   .config("spark.sql.shuffle.partitions",
                           os.environ.get("FORENSICS_SPARK_PARTITIONS", "4"))
                   .config("spark.ui.enabled", "false")
                   .config("spark.ui.showConsoleProgress", "false")
                   .config("spark.driver.memory", os.environ.get("FORENSICS_SPARK_MEMORY",
                                                                 "2g")))
    builder = builder.config("spark.sql.session.timeZone", "UTC") \
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
    return builder.getOrCreate()


class SparkEngine:
    """Runs translated stage SQL on a Spark session over the case's tables.

    ``SparkEngine(session).attach_case(con)`` makes the case's canonical tables Spark temp
    views (written once as Parquet to a scratch folder; attached evidence is read from
    its pinned files through the same view), then ``.arrow(sql, params)`` runs DuckDB-
    dialect SQL on Spark and returns the (small) result as Arrow.
    """

    name = "spark"

    def __init__(self, session: Any = None, scratch: str | Path | None = None) -> None:
        self.spark = session if session is not None else spark_session()
        self._scratch = Path(scratch) if scratch else Path(tempfile.mkdtemp(prefix="fx-spark-"))
        self._owns_scratch = scratch is None

    def close(self) -> None:
        if self._owns_scratch:
            shutil.rmtree(self._scratch, ignore_errors=True)

    def attach_case(self, con: duckdb.DuckDBPyConnection,
                    tables: tuple[str, ...] = CASE_TABLES) -> None:
        """The case's tables as Spark temp views of the same names."""
        for table in tables:
            target = self._scratch / table
            shutil.rmtree(target, ignore_errors=True)
            target.mkdir(parents=True)
            out = str(target / "part-0.parquet").replace("'", "''")
            con.execute(f"COPY (SELECT * FROM {quote_ident(table)}) TO '{out}' (FORMAT parquet)")
            self.spark.read.parquet(str(target)).createOrReplaceTempView(table)

    def register_arrow(self, name: str, table: pa.Table) -> None:
        """A small Arrow table (a lookup the stage computed) as a Spark temp view."""
        self.spark.createDataFrame(table.to_pandas()).createOrReplaceTempView(name)

    def dataframe(self, sql: str, params: dict[str, Any] | None = None) -> Any:
        try:
            text, patterns = translate_with_params(sql)
            return self.spark.sql(text, args=spark_args(params, patterns))
        except EngineError:
            raise
        except Exception as exc:
            raise EngineError(f"Spark refused the translated stage SQL: {_first_line(exc)}") \
                from exc

    def arrow(self, sql: str, params: dict[str, Any] | None = None) -> pa.Table:
        """Run DuckDB-dialect ``sql`` on Spark; the result as an Arrow table."""
        df = self.dataframe(sql, params)
        try:
            return df.toArrow()
        except Exception as exc:
            raise EngineError(f"Spark failed running the stage SQL: {_first_line(exc)}") \
                from exc


def _first_line(exc: BaseException) -> str:
    """The message of a Spark error without its JVM stack (Spark 4 logs it as JSON)."""
    text = getattr(exc, "getMessage", lambda: "")() or str(exc)
    text = text.strip()
    if text.startswith("{"):
        import json

        with contextlib.suppress(ValueError):
            text = str(json.loads(text.splitlines()[0]).get("msg", text))
    return (text.splitlines() or [""])[0][:400]


def resolve_engine(engine: str | SparkEngine | None) -> SparkEngine | None:
    """``None`` / ``"duckdb"`` -> None (the case's own connection); ``"spark"`` -> a
    :class:`SparkEngine` from the environment; an engine is used as given."""
    if engine is None or engine == "duckdb":
        return None
    if isinstance(engine, SparkEngine):
        return engine
    if engine == "spark":
        return SparkEngine()
    raise UsageError(f"unknown engine {engine!r}", hint="engines: " + ", ".join(ENGINES))


__all__ = ["ENGINES", "EngineError", "SparkDialect", "SparkEngine", "resolve_engine",
           "spark_args", "spark_available", "spark_regex", "spark_session", "translate",
           "translate_with_params"]
