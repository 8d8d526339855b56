"""The result object every investigation step returns.

A ``Result`` holds a Polars DataFrame (``.df``), the SQL and parameters that produced it
(``.sql``, ``.params``: run them again and you get the same rows), a title, free-form
``meta`` (summary figures, warnings), and renders itself in Jupyter, as Markdown, as JSON
and as HTML.

>>> r = Result(pl.DataFrame({"n": [1]}), sql="SELECT 1 AS n", title="one")
>>> r.to_dict()["rows"]
[{'n': 1}]
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import math
import re
from decimal import Decimal
from html import escape
from pathlib import Path
from typing import Any

import polars as pl

from forensics.core.safe import frame_csv, markdown_text

MAX_RENDER_ROWS = 50
MAX_NOTEBOOK_ROWS = 400    # a time series of weeks of hours shows whole, incident days too
_RATE_WORDS = ("rate", "share", "ratio")
MAX_CELL_CHARS = 120

# Polars types whose values are not plain JSON scalars: in CSV they are written as the
# JSON text of their value (nested lists, arrays, structs and maps: any nested type),
# base64 (binary) or seconds (durations), the same conversion as in JSON output.
_TEXT_IN_CSV = (pl.Binary, pl.Object, pl.Duration)


def _html_cell(column: str, value: Any, numeric: bool) -> str:
    """A notebook cell: rates and shares (floats in [0, 1] of a column so named) as %."""
    if (isinstance(value, float) and 0 <= value <= 1
            and any(w in column.lower() for w in _RATE_WORDS)):
        text = f"{100 * value:.2f}%"
    else:
        text = cell_text(value)
    return f"<td style='text-align:{'right' if numeric else 'left'}'>{escape(text)}</td>"


def jsonable(value: Any) -> Any:
    """Any cell, row or document as plain JSON values, without loss where JSON allows it:
    the one conversion behind ``--json``, ``--format json``, :meth:`Result.to_dict`, CSV
    cells of nested columns and findings stored in the case.

    Integers (HUGEINT, UHUGEINT included) stay exact JSON integers; a DECIMAL is a JSON
    number when its digits survive a float exactly (``0.0123``), else its exact digits as
    a string; NaN and infinities, which JSON has no number for, are the strings ``"NaN"``,
    ``"Infinity"``, ``"-Infinity"``; times are ISO 8601 text; durations are seconds; BLOBs
    are base64 text; maps are objects with text keys; anything else is its text.

    >>> jsonable({"cost": Decimal("0.012300"), "tokens": Decimal("12"), "z": float("inf")})
    {'cost': 0.0123, 'tokens': 12, 'z': 'Infinity'}
    >>> jsonable(Decimal("12345678901234567890.123456789"))
    '12345678901234567890.123456789'
    >>> jsonable([dt.date(2026, 3, 1), b"\\x00\\xff", None])
    ['2026-03-01', 'AP8=', None]
    """
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return _float(value)
    if isinstance(value, Decimal):
        return _decimal(value)
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, (bytes, bytearray, memoryview)):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, dict):
        return {str(jsonable(k)): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [jsonable(v) for v in value]
    if isinstance(value, pl.Series):
        return [jsonable(v) for v in value.to_list()]
    if hasattr(value, "item") and callable(value.item):  # numpy scalars
        return jsonable(value.item())
    if hasattr(value, "tolist") and callable(value.tolist):  # numpy arrays
        return jsonable(value.tolist())
    return str(value)


def _float(value: float) -> float | str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return value


def _decimal(value: Decimal) -> int | float | str:
    if not value.is_finite():
        return _float(float(value))
    if int(value.as_tuple().exponent) >= 0:
        return int(value)
    as_float = float(value)
    exact = math.isfinite(as_float) and Decimal(repr(as_float)) == value
    return as_float if exact else str(value)


def dumps(value: Any, **kwargs: Any) -> str:
    """JSON text of :func:`jsonable` ``(value)``: always valid JSON (no bare NaN).

    >>> dumps({"n": Decimal("3"), "x": float("nan")})
    '{"n": 3, "x": "NaN"}'
    """
    kwargs.setdefault("ensure_ascii", False)
    return json.dumps(jsonable(value), allow_nan=False, **kwargs)


def cell_text(value: Any, max_chars: int | None = MAX_CELL_CHARS) -> str:
    r"""One cell as short text for a table on screen (Markdown, the CLI table, notebook
    HTML): NULL is empty, floats to 4 significant digits, decimals exact, times to the
    second, nested values as compact JSON, BLOBs with ``\xHH`` escapes (as DuckDB shows
    them), control characters as ``\xHH`` (line breaks and tabs as a space), long text cut
    at ``max_chars`` with ``...``.

    >>> cell_text(Decimal("0.012300")), cell_text(0.123456), cell_text({"a": [1, None]})
    ('0.012300', '0.1235', '{"a": [1, null]}')
    >>> cell_text(b"ab\x00"), cell_text(float("-inf")), cell_text("x" * 200)[-5:]
    ('ab\\x00', '-inf', 'xx...')
    >>> cell_text("two\nlines \x1b[31mred")
    'two lines \\x1B[31mred'
    """
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        text = f"{value:.4g}"
    elif isinstance(value, dt.datetime):   # to the second on screen; JSON keeps it whole
        text = value.replace(microsecond=0).isoformat(sep=" ")
    elif isinstance(value, (dt.date, dt.time)):
        text = value.isoformat()
    elif isinstance(value, (bytes, bytearray, memoryview)):
        text = "".join(chr(b) if 32 <= b < 127 and b != 92 else f"\\x{b:02X}"
                       for b in bytes(value))
    elif isinstance(value, (dict, list, tuple, set, frozenset, pl.Series)):
        text = dumps(value)
    else:
        text = str(value)
    text = _CONTROL.sub(_visible, text)
    if max_chars is not None and len(text) > max_chars:
        text = text[:max_chars - 3] + "..."
    return text


# Control characters never reach a screen as they are (an ESC from a model output would
# drive the terminal): line breaks and tabs show as a space, the others as \xHH escapes.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def _visible(match: re.Match[str]) -> str:
    char = match.group()
    if char in "\n\r\t\u2028\u2029":
        return " "
    return f"\\x{ord(char):02X}"


def text_frame(df: pl.DataFrame) -> pl.DataFrame:
    """``df`` with every column CSV can hold kept as it is and every other one (nested,
    binary, durations, objects) as the :func:`dumps` text of its values; what
    :meth:`Result.to_csv` writes.

    >>> text_frame(pl.DataFrame({"l": [[1, 2]], "n": [1]})).rows()
    [('[1, 2]', 1)]
    """
    def as_text(value: Any) -> str | None:
        if value is None:
            return None
        converted = jsonable(value)
        return converted if isinstance(converted, str) else dumps(converted)

    columns = [c for c, t in df.schema.items() if t.is_nested() or isinstance(t, _TEXT_IN_CSV)
               or t in _TEXT_IN_CSV]
    if not columns:
        return df
    return df.with_columns(pl.Series(c, [as_text(v) for v in df[c].to_list()], dtype=pl.String)
                           for c in columns)


def _exact_times(df: pl.DataFrame) -> pl.DataFrame:
    """Nanosecond timestamps as ISO text: Python datetimes stop at microseconds."""
    ns = [c for c, t in df.schema.items()
          if isinstance(t, pl.Datetime) and t.time_unit == "ns"]
    if not ns:
        return df
    return df.with_columns(
        pl.col(c).dt.strftime("%Y-%m-%dT%H:%M:%S%.9f"
                              + ("%:z" if df.schema[c].time_zone else "")) for c in ns)  # type: ignore[attr-defined]


def _md(text: str) -> str:
    """Text safe inside a Markdown table cell."""
    return text.replace("|", "\\|").replace("\r", " ").replace("\n", " ")


class Result:
    """A reproducible answer: rows plus the SQL and parameters that produced them."""

    kind = "result"

    def __init__(self, df: pl.DataFrame, sql: str = "", params: dict[str, Any] | None = None,
                 title: str = "", meta: dict[str, Any] | None = None) -> None:
        self.df = df
        self.sql = sql
        self.params = dict(params or {})
        self.title = title
        self.meta = dict(meta or {})

    # -- conversions ---------------------------------------------------------------
    def __len__(self) -> int:
        return self.df.height

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.title!r}: {self.df.height} rows>"

    def rows(self) -> list[dict[str, Any]]:
        return [jsonable(r) for r in _exact_times(self.df).to_dicts()]

    def to_dict(self) -> dict[str, Any]:
        """Everything needed to reproduce and re-render this result, JSON-ready."""
        return {"kind": self.kind, "title": self.title, "sql": self.sql,
                "params": jsonable(self.params), "meta": jsonable(self.meta),
                "columns": self.df.columns, "rows": self.rows()}

    def to_json(self, **kwargs: Any) -> str:
        return dumps(self.to_dict(), **kwargs)

    def to_csv(self) -> str:
        """The rows as CSV: nested, binary and duration cells as their JSON text, formula
        starts neutralised and every text cell quoted (:func:`forensics.core.safe.frame_csv`)."""
        return frame_csv(text_frame(self.df))

    def to_markdown(self, max_rows: int = MAX_RENDER_ROWS) -> str:
        lines = [f"**{self.title}**", ""] if self.title else []
        lines += [f"- {k}: {cell_text(jsonable(v), max_chars=None)}"
                  for k, v in self.meta.items()
                  if not isinstance(v, (list, dict))]
        if lines and self.meta:
            lines.append("")
        if self.df.width:
            cols = self.df.columns
            lines.append("| " + " | ".join(_md(c) for c in cols) + " |")
            lines.append("|" + "---|" * len(cols))
            for row in self.df.head(max_rows).iter_rows():
                cells = [_md(markdown_text(cell_text(v))) for v in row]
                lines.append("| " + " | ".join(cells) + " |")
            if self.df.height > max_rows:
                lines.append(f"\n_{self.df.height - max_rows} more rows not shown_")
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        """The table first (text left, numbers right, rates and shares as percentages,
        every row up to :data:`MAX_NOTEBOOK_ROWS`, else head and tail), then the summary
        values and the SQL folded a click away."""
        head = f"<h4>{escape(self.title)}</h4>" if self.title else ""
        items = [(k, v) for k, v in self.meta.items()
                 if v is not None and not isinstance(v, (list, dict))]
        meta = "".join(f"<li><b>{escape(str(k))}</b>: "
                       f"{escape(cell_text(jsonable(v), max_chars=None))}</li>"
                       for k, v in items)
        meta = (f"<details><summary>{len(items)} summary values</summary><ul>{meta}</ul>"
                "</details>" if meta else "")
        numeric = {c for c, t in self.df.schema.items() if t.is_numeric()}
        header = "".join(f"<th style='text-align:{'right' if c in numeric else 'left'}'>"
                         f"{escape(c)}</th>" for c in self.df.columns)
        n = self.df.height
        shown = (self.df if n <= MAX_NOTEBOOK_ROWS else
                 pl.concat([self.df.head(MAX_NOTEBOOK_ROWS // 2),
                            self.df.tail(MAX_NOTEBOOK_ROWS // 2)]))
        rows = []
        for i, row in enumerate(shown.iter_rows()):
            if n > MAX_NOTEBOOK_ROWS and i == MAX_NOTEBOOK_ROWS // 2:
                rows.append(f"<tr><td colspan='{self.df.width}' style='text-align:center'>"
                            f"<i>{n - MAX_NOTEBOOK_ROWS:,} rows in the middle not shown "
                            "(.df has them all)</i></td></tr>")
            rows.append("<tr>" + "".join(_html_cell(c, v, c in numeric)
                                         for c, v in zip(self.df.columns, row, strict=True))
                        + "</tr>")
        sql = (f"<details><summary>SQL</summary><pre>{escape(self.sql)}</pre>"
               f"<pre>{escape(dumps(self.params))}</pre></details>"
               if self.sql else "")
        return (f"<div class='forensics-result'>{head}<table><thead><tr>{header}"
                f"</tr></thead><tbody>{''.join(rows)}</tbody></table>{meta}{sql}</div>")

    def plot(self, ax: Any = None) -> Any:
        """Draw the result with matplotlib; the base class draws a bar of the first
        numeric column against the first column."""
        import matplotlib.pyplot as plt

        if ax is None:
            _, ax = plt.subplots(figsize=(8, 3.5))
        numeric = [c for c, t in self.df.schema.items() if t.is_numeric()]
        if not numeric or self.df.width < 2:
            ax.text(0.5, 0.5, "nothing to plot", ha="center")
            return ax
        labels = [str(v) for v in self.df[self.df.columns[0]].to_list()]
        ax.bar(labels, self.df[numeric[0]].to_list())
        ax.set_title(self.title)
        ax.set_ylabel(numeric[0])
        return ax

    # -- persistence -----------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Save as JSON (``.json``) or a standalone HTML page (``.html``)."""
        path = Path(path)
        if path.suffix == ".html":
            page = ("<!doctype html><meta charset='utf-8'><title>"
                    f"{escape(self.title)}</title>{self._repr_html_()}")
            path.write_text(page, encoding="utf-8")
        else:
            path.write_text(self.to_json(indent=2), encoding="utf-8")
        return path

    @classmethod
    def load(cls, path: str | Path) -> Result:
        """Load a result saved as JSON by :meth:`save`."""
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        df = pl.DataFrame(data["rows"], schema=data["columns"], orient="row") \
            if data["rows"] else pl.DataFrame({c: [] for c in data["columns"]})
        return cls(df, sql=data.get("sql", ""), params=data.get("params"),
                   title=data.get("title", ""), meta=data.get("meta"))
