"""The HTML post-mortem as a reader's browser shows it: the committed sample drill's
post-mortem loaded in headless Chromium (Debian's package) at 820 and 1280 px. Checks: no
raw Markdown in the rendered text, every in-page link (citations, contents) lands on an
element, nothing wider than the window, and a screenshot is made. The structural checks
(anchors, folded SQL, no empty parameter box) run without a browser."""

from __future__ import annotations

import importlib.util
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("screenshots", REPO / "docs" / "screenshots.py")
assert _spec and _spec.loader
shots = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(shots)

needs_chromium = pytest.mark.skipif(not shots.CHROMIUM.exists(),
                                    reason=f"{shots.CHROMIUM} not installed (apt-get install)")


@pytest.fixture(scope="module")
def postmortem(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return Path(shots._postmortem(tmp_path_factory.mktemp("html")))


class _Page(HTMLParser):
    """Ids, in-page hrefs, <details> count and the text outside <pre>/<code>/<style>."""

    def __init__(self) -> None:
        super().__init__()
        self.ids: set[str] = set()
        self.hrefs: list[str] = []
        self.details = 0
        self.text: list[str] = []
        self.pre_texts: list[str] = []
        self._skip = 0
        self._in_pre = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if a.get("id"):
            self.ids.add(str(a["id"]))
        if tag == "a" and str(a.get("href", "")).startswith("#"):
            self.hrefs.append(str(a["href"])[1:])
        self.details += tag == "details"
        if tag in ("pre", "code", "style", "script"):
            self._skip += 1
        if tag == "pre":
            self._in_pre = True
            self.pre_texts.append("")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("pre", "code", "style", "script"):
            self._skip -= 1
        if tag == "pre":
            self._in_pre = False

    def handle_data(self, data: str) -> None:
        if self._in_pre:
            self.pre_texts[-1] += data
        if not self._skip:
            self.text.append(data)


def _parse(path: Path) -> _Page:
    page = _Page()
    page.feed(path.read_text(encoding="utf-8"))
    return page


def test_html_structure(postmortem: Path) -> None:
    page = _parse(postmortem / "postmortem.html")
    md = (postmortem / "postmortem.md").read_text(encoding="utf-8")
    cited = set(re.findall(r"\[(F\d{3})\]", md))
    assert cited and cited <= page.ids                      # every cited finding has an anchor
    assert cited <= set(page.hrefs)                         # and every citation is a link
    assert set(page.hrefs) <= page.ids
    assert {"contents", "summary", "impact", "root-cause", "evidence-appendix"} <= page.ids
    text = " ".join(page.text)
    for token in ("**", "`", "## "):
        assert token not in text, token
    assert page.details >= len(cited)                       # the SQL is folded, per finding
    assert all(t.strip() not in ("{}", "") for t in page.pre_texts)   # no empty box


@pytest.mark.browser
@needs_chromium
@pytest.mark.parametrize("width", [820, 1280])
def test_html_in_a_real_browser(postmortem: Path, width: int, tmp_path: Path) -> None:
    html = postmortem / "postmortem.html"
    got: dict[str, Any] = shots.probe(html, width)
    assert got["clientWidth"] == width
    assert got["scrollWidth"] <= got["clientWidth"], got["wide"]     # no horizontal overflow
    assert got["wide"] == []
    text = got["text"]
    assert "Root cause" in text and "Contents" in text
    for token in ("**", "`", "## "):
        assert token not in text, token
    assert got["cites"] and all(found for _, found in got["cites"]), \
        [c for c in got["cites"] if not c[1]]
    png = shots.screenshot(html, tmp_path / f"postmortem-{width}.png", width)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 50_000
