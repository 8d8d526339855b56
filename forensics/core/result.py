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

import datetime as dt
import json
from html import escape
from pathlib import Path
from typing import Any

import polars as pl

from forensics.core.safe import markdown_text

MAX_RENDER_ROWS = 50


def jsonable(value: Any) -> Any:
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, float) and value != value:  # NaN
        return None
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if hasattr(value, "item"):  # numpy scalars
        return jsonable(value.item())
    return value


def cell_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, dt.datetime):   # to the second on screen; JSON keeps it whole
        return value.replace(microsecond=0).isoformat(sep=" ")
    if isinstance(value, float):
        return f"{value:.4g}"
    text = str(value)
    return text if len(text) <= 120 else text[:117] + "..."


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
        return [jsonable(r) for r in self.df.to_dicts()]

    def to_dict(self) -> dict[str, Any]:
        """Everything needed to reproduce and re-render this result, JSON-ready."""
        return {"kind": self.kind, "title": self.title, "sql": self.sql,
                "params": jsonable(self.params), "meta": jsonable(self.meta),
                "columns": self.df.columns, "rows": self.rows()}

    def to_json(self, **kwargs: Any) -> str:
        return json.dumps(self.to_dict(), **kwargs)

    def to_markdown(self, max_rows: int = MAX_RENDER_ROWS) -> str:
        lines = [f"**{self.title}**", ""] if self.title else []
        lines += [f"- {k}: {cell_text(jsonable(v))}" for k, v in self.meta.items()
                  if not isinstance(v, (list, dict))]
        if lines and self.meta:
            lines.append("")
        if self.df.width:
            cols = self.df.columns
            lines.append("| " + " | ".join(cols) + " |")
            lines.append("|" + "---|" * len(cols))
            for row in self.df.head(max_rows).iter_rows():
                cells = [markdown_text(cell_text(v)).replace("|", "\\|").replace("\n", " ")
                         .replace("\r", " ") for v in row]
                lines.append("| " + " | ".join(cells) + " |")
            if self.df.height > max_rows:
                lines.append(f"\n_{self.df.height - max_rows} more rows not shown_")
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        head = f"<h4>{escape(self.title)}</h4>" if self.title else ""
        meta = "".join(f"<li><b>{escape(str(k))}</b>: {escape(cell_text(jsonable(v)))}</li>"
                       for k, v in self.meta.items()
                       if v is not None and not isinstance(v, (list, dict)))
        meta = f"<ul>{meta}</ul>" if meta else ""
        header = "".join(f"<th>{escape(c)}</th>" for c in self.df.columns)
        body = "".join(
            "<tr>" + "".join(f"<td>{escape(cell_text(v))}</td>" for v in row) + "</tr>"
            for row in self.df.head(MAX_RENDER_ROWS).iter_rows())
        more = (f"<p><i>{self.df.height - MAX_RENDER_ROWS} more rows</i></p>"
                if self.df.height > MAX_RENDER_ROWS else "")
        sql = (f"<details><summary>SQL</summary><pre>{escape(self.sql)}</pre>"
               f"<pre>{escape(json.dumps(jsonable(self.params)))}</pre></details>"
               if self.sql else "")
        return (f"<div class='forensics-result'>{head}{meta}<table><thead><tr>{header}"
                f"</tr></thead><tbody>{body}</tbody></table>{more}{sql}</div>")

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
