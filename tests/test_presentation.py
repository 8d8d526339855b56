"""What the investigator sees, on the committed sample drill's post-mortem.

The HTML loaded in headless Chromium (Debian's package) at 820 and 1280 px. Checks: no
raw Markdown in the rendered text, every in-page link (citations, contents) lands on an
element, nothing wider than the window, and a screenshot is made. The structural checks
(anchors, folded SQL, no empty parameter box) run without a browser. The charts are
checked as figure objects: marker labels that do not overlap, axes that end with the
data, legends for the band and the window, a panel per cohort dimension with values."""

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


# -- the charts, as figure objects ------------------------------------------------------

@pytest.fixture(scope="module")
def facts(postmortem: Path) -> Any:
    import forensics
    from forensics.postmortem.facts import gather

    case = forensics.open(postmortem.parent / "case.duckdb")
    try:
        yield gather(case)
    finally:
        case.close()


def _overlap(a: Any, b: Any) -> bool:
    return bool(a.x0 < b.x1 and b.x0 < a.x1 and a.y0 < b.y1 and b.y0 < a.y1)


def test_timeline_chart_reads_at_a_glance(facts: Any) -> None:
    import matplotlib.dates as mdates
    from matplotlib.ticker import PercentFormatter

    from forensics.postmortem.charts import label_boxes, timeline_figure

    fig = timeline_figure(facts)
    ax = fig.axes[0]
    boxes = label_boxes(fig)
    assert len(boxes) >= 2                                   # the drill has close changes
    assert not any(_overlap(a, b) for i, a in enumerate(boxes) for b in boxes[i + 1:])
    buckets = facts.series.df["bucket"]
    assert ax.get_xlim() == pytest.approx((mdates.date2num(buckets.min()),
                                           mdates.date2num(buckets.max())))
    assert isinstance(ax.yaxis.get_major_formatter(), PercentFormatter)
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "95% interval" in legend and any(t.startswith("exposure window") for t in legend)
    key = [t.get_text() for t in ax.texts if "CHG-" in t.get_text()]
    assert key and all(f"{i}  " in key[0] for i in range(1, len(boxes) + 1))


def test_impact_chart_is_a_panel_per_dimension_with_values(facts: Any) -> None:
    from forensics.postmortem.charts import impact_figure

    fig = impact_figure(facts, lambda r: r.df)
    panels = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title(loc="left") for ax in panels] == [f"by {b}" for b in facts.cohorts]
    for ax, result in zip(panels, facts.cohorts.values(), strict=True):
        values = sorted(int(v) for v in result.df.filter(
            result.df["cohort"] != "all")["users"].head(6).to_list())
        shown = sorted(int(t.get_text().replace(",", "")) for t in ax.texts)
        assert shown == values
        assert ax.get_xlim()[1] >= max(values)


def test_clusters_chart_has_the_window_and_whole_titles(facts: Any) -> None:
    from forensics.postmortem.charts import clusters_figure

    fig = clusters_figure(facts, str)
    ax = fig.axes[0]
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert any(t.startswith("exposure window") for t in legend)
    titles = {str(t) for t in facts.clusters.df["title"].to_list()}
    assert all(any(t.endswith(title) for title in titles) for t in legend
               if not t.startswith("exposure window"))
    assert ax.get_ylim()[0] == 0
