"""Which events a step is about: one value, one resolver, for every stage and verb.

A *pattern* is one of

- ``None`` or ``"bad"``: any bad signal (``is_bad``); ``"all"``: every event;
- a label (``"pii_leak"``), a cluster id (``"detect-0001/c02"``), a failure family or
  playbook category (``"data_leak"``, ``"refusal"``), or a list of labels (any of them);
- an explicit form: ``"label:NAME"``, ``"cluster:ID"``, ``"family:NAME"``,
  ``"sql:CONDITION"``;
- an SQL condition over ``event_facts`` (``"feature = 'doc_qa' AND is_error"``): it must
  be a BOOLEAN expression, checked by DuckDB before it is used.

A bare word is never taken as SQL unless it is a boolean (``true``, ``is_error``): a word
that names nothing in the case is an error listing what it could have named, never an
empty result. So ``"error"`` means the label ``error``, not the text column.

>>> import forensics
>>> case = forensics.open(":memory:")
>>> select(case).description
'any bad signal (is_bad)'
>>> select(case, "sql:feature = 'doc_qa'").condition
"(feature = 'doc_qa')"
>>> select(case, "pii_leak")
Traceback (most recent call last):
...
forensics.core.errors.UsageError: no event in this case has the label 'pii_leak'
>>> case.close()
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import duckdb

from forensics.core.db import rows
from forensics.core.errors import UsageError
from forensics.core.handle import CaseHandle

PREFIXES = ("label", "cluster", "family", "sql")
_WORD = re.compile(r"^[\w.\-/]+$")
_LIST_MAX = 12


@dataclass(frozen=True)
class Selection:
    """A resolved pattern: an SQL condition over ``event_facts`` with bound parameters.

    ``events_condition`` is the same set as a semi-join that holds over plain ``events``
    too (labels and clusters only), so big scans can skip the ``event_facts`` joins.
    """

    kind: str                      # bad | all | label | labels | cluster | family | sql
    values: tuple[str, ...]
    condition: str
    params: dict[str, Any] = field(default_factory=dict)
    description: str = ""
    events_condition: str | None = None

    @property
    def labels(self) -> list[str]:
        """The labels this pattern is made of (empty for clusters, SQL, any bad)."""
        return list(self.values) if self.kind in ("label", "labels", "family") else []

    def inline(self) -> str:
        """The condition with its parameters written as SQL literals (for a saved query
        or a post-mortem appendix; values are quoted, never pasted raw)."""
        cond = self.condition
        for key in sorted(self.params, key=len, reverse=True):
            cond = cond.replace(f"${key}", literal(self.params[key]))
        return cond


Pattern = str | Sequence[str] | Selection | None


def literal(value: Any) -> str:
    """An SQL literal for a string, a number or a list of strings.

    >>> literal("o'brien"), literal(3), literal(["a", "b"])
    ("'o''brien'", '3', "['a', 'b']")
    """
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(literal(v) for v in value) + "]"
    return "'" + str(value).replace("'", "''") + "'"


def select(case: CaseHandle, pattern: Pattern = None, *, default: str = "bad") -> Selection:
    """Resolve ``pattern`` (see the module's docstring) to a :class:`Selection`."""
    if isinstance(pattern, Selection):
        return pattern
    if pattern is None:
        pattern = default
    if not isinstance(pattern, str):
        return _labels(case, [str(p) for p in pattern])
    text = pattern.strip()
    if not text:
        raise UsageError("an empty pattern", hint=_hint(case))
    kind, _, rest = text.partition(":")
    if kind in PREFIXES and rest.strip() and not _is_sql_colon(text):
        return _explicit(case, kind, rest.strip())
    if text == "bad":
        return Selection("bad", (), "is_bad", {}, "any bad signal (is_bad)")
    if text == "all":
        return Selection("all", (), "true", {}, "every event")
    if _WORD.match(text):
        return _word(case, text)
    return _sql(case, text)


def pattern_condition(case: CaseHandle, pattern: Pattern = None, *, label: str | None = None,
                      cluster: str | None = None,
                      where: str | None = None) -> tuple[str, dict[str, Any], str]:
    """(SQL condition over ``event_facts``, parameters, description): :func:`select` of
    ``pattern``, and of ``label`` / ``cluster`` / ``where`` when given (all must hold)."""
    parts = [select(case, pattern)] if pattern is not None or not (label or cluster or where) \
        else []
    if label is not None:
        parts.append(_explicit(case, "label", label))
    if cluster is not None:
        parts.append(_explicit(case, "cluster", cluster))
    if where:
        parts.append(select(case, where))
    if len(parts) == 1:
        return parts[0].condition, dict(parts[0].params), parts[0].description
    params: dict[str, Any] = {}
    for p in parts:
        params.update(p.params)
    return (" AND ".join(f"({p.condition})" for p in parts), params,
            " and ".join(p.description for p in parts))


# -- resolution ----------------------------------------------------------------------------

def _explicit(case: CaseHandle, kind: str, value: str) -> Selection:
    if kind == "label":
        return _labels(case, [value])
    if kind == "cluster":
        if not _has(case, "SELECT 1 FROM cluster_members WHERE cluster_id = ? LIMIT 1", value):
            raise UsageError(f"no cluster {value!r} in this case",
                             hint="clusters: " + _listing(_clusters(case))
                             + " (run `forensics cluster` to make them)")
        cond = "event_id IN (SELECT event_id FROM cluster_members WHERE cluster_id = $p_cluster)"
        return Selection("cluster", (value,), cond, {"p_cluster": value}, f"cluster {value}",
                         cond)
    if kind == "family":
        labels = _family_labels(case, value)
        if not labels:
            raise UsageError(f"no event in this case has a label of the family {value!r}",
                             hint="families in this case: " + _listing(_families(case)))
        sel = _labels(case, labels)
        return Selection("family", sel.values, sel.condition, sel.params,
                         f"family {value} ({', '.join(labels)})", sel.events_condition)
    return _sql(case, value)


def _word(case: CaseHandle, word: str) -> Selection:
    if _has(case, "SELECT 1 FROM labels WHERE label = ? LIMIT 1", word):
        return _labels(case, [word])
    if _has(case, "SELECT 1 FROM cluster_members WHERE cluster_id = ? LIMIT 1", word):
        return _explicit(case, "cluster", word)
    if _family_labels(case, word):
        return _explicit(case, "family", word)
    if _boolean(case, word):
        return _sql(case, word)
    if _has(case, "SELECT 1 FROM label_vocabulary WHERE label = ? LIMIT 1", word):
        raise UsageError(f"no event in this case has the label {word!r}",
                         hint="run `forensics detect` first; " + _hint(case))
    raise UsageError(f"{word!r} is not a label, cluster or failure family of this case",
                     hint=_hint(case))


def _labels(case: CaseHandle, labels: list[str]) -> Selection:
    present = {r[0] for r in rows(case.con, "SELECT DISTINCT label FROM labels "
                                            "WHERE list_contains(?, label)", [labels])}
    missing = [x for x in labels if x not in present]
    if missing:
        what = "the label" if len(missing) == 1 else "the labels"
        shown = ", ".join(repr(x) for x in missing)
        raise UsageError(f"no event in this case has {what} {shown}", hint=_hint(case))
    if len(labels) == 1:
        return Selection("label", (labels[0],), "list_contains(labels, $p_label)",
                         {"p_label": labels[0]}, f"label {labels[0]}",
                         "event_id IN (SELECT event_id FROM labels WHERE label = $p_label)")
    values = tuple(sorted(set(labels)))
    return Selection("labels", values, "list_has_any(labels, $p_labels)",
                     {"p_labels": list(values)}, " or ".join(values),
                     "event_id IN (SELECT event_id FROM labels "
                     "WHERE list_contains($p_labels, label))")


def _sql(case: CaseHandle, condition: str) -> Selection:
    """An SQL condition, checked to bind over ``event_facts`` as a BOOLEAN."""
    try:
        rel = case.con.sql(f"SELECT ({condition}) AS c FROM event_facts LIMIT 0")
        types = [str(t) for t in rel.types] if rel is not None else []
        if rel is not None:
            rel.fetchall()
    except duckdb.Error as exc:
        raise UsageError(f"the pattern {condition!r} is not a label, cluster or family of this "
                         f"case, nor an SQL condition over event_facts: {_first_line(exc)}",
                         hint=_hint(case)) from exc
    if types != ["BOOLEAN"]:
        raise UsageError(f"the SQL condition {condition!r} is {types[0] if types else 'empty'}, "
                         "not a true/false condition", hint=_hint(case))
    return Selection("sql", (condition,), f"({condition})", {}, condition)


def _boolean(case: CaseHandle, word: str) -> bool:
    try:
        rel = case.con.sql(f"SELECT ({word}) AS c FROM event_facts LIMIT 0")
        if rel is None:
            return False
        ok = [str(t) for t in rel.types] == ["BOOLEAN"]
        rel.fetchall()
        return ok
    except duckdb.Error:
        return False


def _is_sql_colon(text: str) -> bool:
    """``sql:...`` style prefixes are words; ``label::VARCHAR = 'x'`` is SQL."""
    return text.partition(":")[2].startswith(":")


# -- what the case holds, for errors that say what would have worked --------------------

def _has(case: CaseHandle, sql: str, value: str) -> bool:
    return bool(rows(case.con, sql, [value]))


def _family_labels(case: CaseHandle, name: str) -> list[str]:
    return [r[0] for r in rows(case.con, """
        SELECT DISTINCT l.label FROM labels l JOIN label_vocabulary v USING (label)
        WHERE v.bad AND (v.family = ? OR v.category = ?) ORDER BY 1""", [name, name])]


def _families(case: CaseHandle) -> list[str]:
    return [r[0] for r in rows(case.con, """
        SELECT DISTINCT unnest([v.family, v.category]) AS f
        FROM labels l JOIN label_vocabulary v USING (label) WHERE v.bad ORDER BY 1""")
        if r[0] is not None]


def _clusters(case: CaseHandle) -> list[str]:
    return [r[0] for r in rows(case.con, "SELECT DISTINCT cluster_id FROM cluster_members "
                                         "ORDER BY 1")]


def _case_labels(case: CaseHandle) -> list[str]:
    return [r[0] for r in rows(case.con, "SELECT label FROM labels GROUP BY label "
                                         "ORDER BY count(*) DESC, label")]


def _listing(values: list[str]) -> str:
    if not values:
        return "none"
    shown = ", ".join(values[:_LIST_MAX])
    return shown + (f" and {len(values) - _LIST_MAX} more" if len(values) > _LIST_MAX else "")


def _hint(case: CaseHandle) -> str:
    return ("labels: " + _listing(_case_labels(case)) + "; families: "
            + _listing(_families(case)) + "; clusters: " + _listing(_clusters(case))
            + "; or an SQL condition over event_facts, e.g. \"sql:feature = 'doc_qa'\"")


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
