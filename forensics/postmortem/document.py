"""A tiny document model: blocks rendered to Markdown and to self-contained HTML.

The post-mortem and the notification drafts are built once as blocks, so the Markdown and
its HTML twin always say the same thing; images are embedded in the HTML as data URIs.

>>> doc = Document("Post-mortem")
>>> _ = doc.heading("Summary").para("It broke.")
>>> print(doc.markdown())
# Post-mortem
<BLANKLINE>
## Summary
<BLANKLINE>
It broke.
<BLANKLINE>
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from html import escape
from pathlib import Path
from typing import Any

from forensics.core.safe import code_fence, markdown_text


@dataclass
class Document:
    title: str
    blocks: list[tuple[str, Any]] = field(default_factory=list)

    def heading(self, text: str, level: int = 2) -> Document:
        self.blocks.append(("heading", (level, text)))
        return self

    def para(self, text: str) -> Document:
        self.blocks.append(("para", text))
        return self

    def bullets(self, items: list[str]) -> Document:
        if items:
            self.blocks.append(("bullets", list(items)))
        return self

    def table(self, columns: list[str], rows: list[list[Any]]) -> Document:
        self.blocks.append(("table", (columns, rows)))
        return self

    def image(self, path: Path, alt: str) -> Document:
        self.blocks.append(("image", (path, alt)))
        return self

    def code(self, text: str, lang: str = "sql") -> Document:
        self.blocks.append(("code", (lang, text)))
        return self

    # -- rendering -------------------------------------------------------------------
    def markdown(self, base: Path | None = None) -> str:
        out = [f"# {self.title}", ""]
        for kind, value in self.blocks:
            out += [*_md(kind, value, base), ""]
        return "\n".join(out)

    def html(self) -> str:
        body = "\n".join(_html(kind, value) for kind, value in self.blocks)
        return ("<!doctype html>\n<html><head><meta charset='utf-8'>"
                f"<title>{escape(self.title)}</title><style>{_CSS}</style></head>"
                f"<body><h1>{escape(self.title)}</h1>\n{body}\n</body></html>\n")


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value).replace("|", "\\|").replace("\n", " ")


def _md(kind: str, value: Any, base: Path | None) -> list[str]:
    # quoted text is made inert here (HTML tags, script links): markdown_text
    if kind == "heading":
        return ["#" * value[0] + " " + markdown_text(value[1])]
    if kind == "para":
        return [markdown_text(value)]
    if kind == "bullets":
        return [f"- {markdown_text(item)}" for item in value]
    if kind == "table":
        columns, rows = value
        lines = ["| " + " | ".join(markdown_text(_cell(c)) for c in columns) + " |",
                 "|" + "---|" * len(columns)]
        lines += ["| " + " | ".join(markdown_text(_cell(v)) for v in row) + " |"
                  for row in rows]
        return lines
    if kind == "image":
        path, alt = value
        rel = path.relative_to(base) if base and path.is_relative_to(base) else path
        return [f"![{markdown_text(alt)}]({rel.as_posix()})"]
    lang, text = value
    fence = code_fence(text)
    return [f"{fence}{lang}", text.strip(), fence]


def _html(kind: str, value: Any) -> str:
    if kind == "heading":
        return f"<h{value[0]}>{escape(value[1])}</h{value[0]}>"
    if kind == "para":
        return f"<p>{escape(value)}</p>"
    if kind == "bullets":
        return "<ul>" + "".join(f"<li>{escape(i)}</li>" for i in value) + "</ul>"
    if kind == "table":
        columns, rows = value
        head = "".join(f"<th>{escape(c)}</th>" for c in columns)
        body = "".join("<tr>" + "".join(f"<td>{escape(_cell(v))}</td>" for v in row) + "</tr>"
                       for row in rows)
        return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
    if kind == "image":
        path, alt = value
        data = base64.b64encode(Path(path).read_bytes()).decode()
        return f"<p><img alt='{escape(alt)}' src='data:image/png;base64,{data}'></p>"
    lang, text = value
    return f"<pre><code class='{escape(lang)}'>{escape(text.strip())}</code></pre>"


_CSS = ("body{font-family:system-ui,sans-serif;max-width:60em;margin:2em auto;"
        "line-height:1.45;color:#222}table{border-collapse:collapse;margin:1em 0}"
        "td,th{border:1px solid #ccc;padding:3px 8px;font-size:90%}th{background:#f3f3f3}"
        "pre{background:#f6f6f6;padding:8px;overflow-x:auto}img{max-width:100%}")
