"""A tiny document model: blocks rendered to Markdown and to self-contained HTML.

The post-mortem and the notification drafts are built once as blocks, so the Markdown and
its HTML twin always say the same thing. The HTML renders each block's text with a real
Markdown renderer (markdown-it, raw HTML off, no images or links from the text), gives
every heading an anchor, turns ``[F012]`` citations into links to the finding's heading,
adds a table of contents, folds code (the SQL appendix) into ``<details>`` and embeds
images as data URIs.

>>> doc = Document("Post-mortem")
>>> _ = doc.heading("Summary").para("It **broke** [F001].")
>>> _ = doc.heading("F001: the count", level=3, anchor="F001").code("SELECT 1", fold="SQL")
>>> print(doc.markdown())
# Post-mortem
<BLANKLINE>
## Summary
<BLANKLINE>
It **broke** [F001].
<BLANKLINE>
### F001: the count
<BLANKLINE>
```sql
SELECT 1
```
<BLANKLINE>
>>> html = doc.html()
>>> '<strong>broke</strong> <a class="cite" href="#F001">[F001]</a>' in html
True
>>> '<h3 id="F001">' in html, '<details><summary>SQL</summary>' in html
(True, True)
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass, field
from functools import cache
from html import escape
from pathlib import Path
from typing import Any

from markdown_it import MarkdownIt

from forensics.core.safe import code_fence, markdown_text

CITATION = re.compile(r"\[(F\d{3,})\]")
# a cell that is a time (or a date) never wraps; long hex digests may break anywhere
_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}( \d{2}:\d{2}(:\d{2})?( UTC)?)?$")
_HEX = re.compile(r"^[0-9a-f]{32,}$")
_NUM = re.compile(r"^[<>]?[-+]?[\d,]+(\.\d+)?%?$")


@dataclass
class Document:
    title: str
    blocks: list[tuple[str, Any]] = field(default_factory=list)

    def heading(self, text: str, level: int = 2, anchor: str | None = None) -> Document:
        """A heading; ``anchor`` is its id in the HTML (by default a slug of the text)."""
        self.blocks.append(("heading", (level, text, anchor)))
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

    def code(self, text: str, lang: str = "sql", fold: str | None = None) -> Document:
        """A code block; in the HTML it is folded under a ``fold`` summary when given."""
        self.blocks.append(("code", (lang, text, fold)))
        return self

    # -- rendering -------------------------------------------------------------------
    def markdown(self, base: Path | None = None) -> str:
        out = [f"# {self.title}", ""]
        for kind, value in self.blocks:
            out += [*_md(kind, value, base), ""]
        return "\n".join(out)

    def anchors(self) -> list[tuple[int, str, str]]:
        """(level, text, id) of every heading, ids unique, in document order.

        >>> Document("t").heading("Impact").heading("Impact", 3).anchors()
        [(2, 'Impact', 'impact'), (3, 'Impact', 'impact-2')]
        """
        seen: dict[str, int] = {}
        out = []
        for kind, value in self.blocks:
            if kind != "heading":
                continue
            level, text, anchor = value
            slug = anchor or slug_of(text)
            seen[slug] = seen.get(slug, 0) + 1
            out.append((level, text, slug if seen[slug] == 1 else f"{slug}-{seen[slug]}"))
        return out

    def html(self) -> str:
        heads = iter(self.anchors())
        ids = {a for _, _, a in self.anchors()}
        parts: list[str] = []
        folds: list[str | None] = []
        for kind, value in self.blocks:
            fold = value[2] if kind == "code" else None
            if fold and folds and folds[-1] == fold:
                # code blocks under the same summary share one fold (SQL and its parameters)
                parts[-1] = parts[-1].replace("</details>", _pre(value) + "</details>")
                continue
            folds.append(fold)
            if kind == "heading":
                level, _, anchor = next(heads)
                parts.append(f'<h{level} id="{escape(anchor)}">'
                             f"{_inline(value[1], ids)}</h{level}>")
            else:
                parts.append(_html(kind, value, ids))
        return ("<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
                "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
                f"<title>{escape(self.title)}</title><style>{_CSS}</style></head>\n"
                f"<body><main>\n<h1>{escape(self.title)}</h1>\n{_toc(self.anchors())}\n"
                + "\n".join(parts) + "\n</main></body></html>\n")


def slug_of(text: str) -> str:
    text = CITATION.sub("", text)
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return slug or "section"


def _toc(anchors: list[tuple[int, str, str]]) -> str:
    """Sections and their sub-sections; the appendix's finding headings are left out
    (the citations link to them)."""
    items = []
    for level, text, anchor in anchors:
        if level > 3 or (level == 3 and re.match(r"F\d{3,}$", anchor)):
            continue
        label = escape(CITATION.sub("", text).strip())
        items.append(f'<li class="toc{level}"><a href="#{escape(anchor)}">{label}</a></li>')
    if not items:
        return ""
    return f'<nav class="toc"><h2 id="contents">Contents</h2><ul>{"".join(items)}</ul></nav>'


@cache
def _renderer() -> MarkdownIt:
    # commonmark with raw HTML off: text from the evidence can never inject markup; images
    # and links are off too, so a quoted output cannot make the page load anything
    return MarkdownIt("commonmark", {"html": False}).disable(["image", "link", "autolink"])


def _cite(html: str, ids: set[str]) -> str:
    return CITATION.sub(lambda m: (f'<a class="cite" href="#{m[1]}">[{m[1]}]</a>'
                                   if m[1] in ids else m[0]), html)


def _inline(text: str, ids: set[str]) -> str:
    return _cite(_renderer().renderInline(text), ids)


def _block(text: str, ids: set[str]) -> str:
    return _cite(_renderer().render(text), ids)


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
    lang, text, _ = value
    fence = code_fence(text)
    return [f"{fence}{lang}", text.strip(), fence]


def _td(value: Any, ids: set[str]) -> str:
    text = "" if value is None else (f"{value:.4g}" if isinstance(value, float) else str(value))
    text = " ".join(text.split())
    words = text.split(" ")
    # times and short single words (ids, kinds, pseudonyms) never wrap; a long unbroken
    # token (an inferred change id) may break anywhere rather than widen the table
    cls = (' class="nowrap"' if _TIME.match(text) else ' class="hex"' if _HEX.match(text)
           else ' class="num"' if _NUM.match(text)
           else ' class="nowrap"' if len(words) == 1 and len(text) <= 24
           else ' class="long"' if max(map(len, words)) > 24 else "")
    return f"<td{cls}>{_inline(text, ids)}</td>"


def _html(kind: str, value: Any, ids: set[str]) -> str:
    if kind == "para":
        return _block(value, ids)
    if kind == "bullets":
        return "<ul>" + "".join(f"<li>{_inline(i, ids)}</li>" for i in value) + "</ul>"
    if kind == "table":
        columns, rows = value
        head = "".join(f"<th>{_inline(c, ids)}</th>" for c in columns)
        body = "".join("<tr>" + "".join(_td(v, ids) for v in row) + "</tr>" for row in rows)
        return (f'<div class="table"><table><thead><tr>{head}</tr></thead>'
                f"<tbody>{body}</tbody></table></div>")
    if kind == "image":
        path, alt = value
        data = base64.b64encode(Path(path).read_bytes()).decode()
        return (f'<figure><img alt="{escape(alt)}" src="data:image/png;base64,{data}">'
                f"<figcaption>{escape(alt)}</figcaption></figure>")
    fold = value[2]
    return f"<details><summary>{escape(fold)}</summary>{_pre(value)}</details>" if fold \
        else _pre(value)


def _pre(value: tuple[str, str, str | None]) -> str:
    lang, text, _ = value
    return f'<pre><code class="language-{escape(lang)}">{escape(text.strip())}</code></pre>'


_CSS = """
*{box-sizing:border-box}
html{-webkit-text-size-adjust:100%}
body{margin:0;color:#1f2328;background:#fff;line-height:1.5;
 font:16px/1.55 system-ui,-apple-system,"Segoe UI",Roboto,"Noto Sans",sans-serif}
main{max-width:58rem;margin:0 auto;padding:2rem clamp(1rem,4vw,2.5rem) 4rem}
h1{font-size:1.75rem;line-height:1.25;margin:0 0 1rem}
h2{font-size:1.35rem;margin:2.2rem 0 .6rem;padding-bottom:.25rem;border-bottom:1px solid #d8dee4}
h3{font-size:1.1rem;margin:1.6rem 0 .5rem}
h1,h2,h3{overflow-wrap:anywhere}
p,li{overflow-wrap:anywhere}
:target{background:#fff8c5}
a{color:#0969da}
a.cite{text-decoration:none;font-size:.85em;white-space:nowrap}
code{font:.88em/1.45 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;
 background:#f3f4f6;padding:.1em .3em;border-radius:4px;overflow-wrap:anywhere}
pre{background:#f6f8fa;border:1px solid #d8dee4;border-radius:6px;padding:.75rem;
 overflow:auto;max-height:24rem;white-space:pre}
pre code{background:none;padding:0;overflow-wrap:normal}
details{margin:.5rem 0 1rem}
summary{cursor:pointer;color:#57606a}
nav.toc{background:#f6f8fa;border:1px solid #d8dee4;border-radius:6px;
 padding:.5rem 1.25rem;margin:0 0 1.5rem}
nav.toc h2{font-size:1rem;border:0;margin:.5rem 0}
nav.toc ul{margin:0 0 .5rem;padding-left:1rem;list-style:none}
nav.toc li.toc3{padding-left:1.25rem;font-size:.93em}
div.table{overflow-x:auto;margin:1rem 0}
table{border-collapse:collapse;font-size:.9rem}
td,th{border:1px solid #d0d7de;padding:.3rem .6rem;text-align:left;vertical-align:top}
td.long{overflow-wrap:anywhere}
td.num{text-align:right;white-space:nowrap;font-variant-numeric:tabular-nums}
th{background:#f3f4f6;white-space:nowrap}
tbody tr:nth-child(even){background:#fafbfc}
td.nowrap{white-space:nowrap}
td.hex{word-break:break-all;font-family:ui-monospace,monospace;font-size:.8rem;min-width:12em}
figure{margin:1rem 0}
img{max-width:100%;height:auto}
figcaption{color:#57606a;font-size:.85rem}
@media print{
 body{font-size:11pt}
 main{max-width:none;padding:0}
 nav.toc{break-after:page}
 h2,h3{break-after:avoid}
 table,figure,pre{break-inside:avoid}
 pre{max-height:none;overflow:visible;white-space:pre-wrap}
 a{color:inherit}
 details::details-content{content-visibility:visible;display:contents}
 summary{display:none}
}
""".replace("\n", "")
