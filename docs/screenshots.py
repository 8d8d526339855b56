"""Screenshots of what an investigator sees: the HTML post-mortem (820 and 1280 px wide),
each chart, and each notebook (run by nbconvert, rendered to HTML, then shot).

    .venv/bin/python docs/screenshots.py [--out build/screenshots] [--no-notebooks]

Uses Debian's Chromium (``apt-get install chromium``) headless; the screenshots land in
``build/screenshots/`` (not committed). The same helpers drive the browser test
(tests/test_html_browser.py): :func:`probe` loads a page with a small script that writes
what the test checks (page and viewport widths, the rendered text, citation targets) into
the DOM, and reads it back from ``--dump-dom``.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run",
         "--hide-scrollbars", "--run-all-compositor-stages-before-draw",
         "--virtual-time-budget=5000"]

# run after layout: widths, the visible text, every citation and whether its target exists,
# and the elements sticking out past the viewport (to say what overflows)
_PROBE = """<script>
addEventListener('load', () => {
  const de = document.documentElement, vw = de.clientWidth;
  const wide = [...document.querySelectorAll('body *')]
    .filter(e => e.getBoundingClientRect().right > vw + 1 && !e.closest('div.table, pre'))
    .slice(0, 10).map(e => e.tagName + '.' + e.className);
  const cites = [...document.querySelectorAll('a[href^="#"]')].map(a => {
    const id = decodeURIComponent(a.getAttribute('href').slice(1));
    return [id, document.getElementById(id) !== null];
  });
  const out = {scrollWidth: de.scrollWidth, clientWidth: vw, height: de.scrollHeight,
               text: document.body.innerText, cites, wide};
  const p = document.createElement('pre'); p.id = 'forensics-probe';
  p.textContent = JSON.stringify(out); document.body.appendChild(p);
});
</script>"""


def _run(args: list[str], profile: Path) -> str:
    cmd = [str(CHROMIUM), *FLAGS, f"--user-data-dir={profile}", *args]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"chromium failed ({done.returncode}): {done.stderr[-2000:]}")
    return done.stdout


def probe(html: Path, width: int) -> dict[str, Any]:
    """Load ``html`` at ``width`` px and return the probe's measurements."""
    with tempfile.TemporaryDirectory() as tmp:
        page = Path(tmp) / html.name
        page.write_text(html.read_text(encoding="utf-8").replace("</body>", _PROBE + "</body>"),
                        encoding="utf-8")
        dom = _run([f"--window-size={width},1000", "--dump-dom", page.as_uri()],
                   Path(tmp) / "profile")
    found = re.search(r'<pre id="forensics-probe">(.*?)</pre>', dom, re.S)
    if not found:
        raise RuntimeError("the probe script did not run")
    from html import unescape
    return dict(json.loads(unescape(found[1])))


def screenshot(html: Path, png: Path, width: int, max_height: int = 16_000) -> Path:
    """A full-page screenshot of ``html`` at ``width`` px (height measured first)."""
    height = min(max_height, int(probe(html, width)["height"]))
    png.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        _run([f"--window-size={width},{max(height, 400)}", f"--screenshot={png.resolve()}",
              html.resolve().as_uri()], Path(tmp) / "profile")
    return png


def _postmortem(work: Path) -> Path:
    """The post-mortem of the committed sample drill, written to ``work/postmortem``."""
    import forensics

    sample = REPO / "sample_data" / "prompt_regression"
    with forensics.open(work / "case.duckdb") as case:
        for name in ("events.jsonl.gz", "changes.jsonl", "feedback.jsonl.gz"):
            case.load(sample / name)
        case.detect()
        case.cluster()
        case.postmortem(work / "postmortem")
    return work / "postmortem"


def _notebooks(out: Path, work: Path) -> list[Path]:
    shots = []
    for nb in sorted((REPO / "notebooks").glob("*.ipynb")):
        html = work / "notebooks" / f"{nb.stem}.html"
        subprocess.run([sys.executable, "-m", "jupyter", "nbconvert", "--to", "html",
                        "--execute", "--output-dir", str(html.parent), str(nb)],
                       check=True, cwd=REPO / "notebooks", capture_output=True)
        shots.append(screenshot(html, out / f"notebook-{nb.stem}.png", 1280))
    return shots


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "build" / "screenshots")
    parser.add_argument("--no-notebooks", action="store_true")
    args = parser.parse_args(argv)
    if not CHROMIUM.exists():
        print(f"{CHROMIUM} not found: apt-get install chromium", file=sys.stderr)
        return 2
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        pm = _postmortem(work)
        shots = [screenshot(pm / "postmortem.html", out / f"postmortem-{w}.png", w)
                 for w in (820, 1280)]
        for chart in sorted((pm / "charts").glob("*.png")):
            shots.append(Path(shutil.copy(chart, out / f"chart-{chart.name}")))
        shutil.copy(pm / "postmortem.html", out / "postmortem.html")
        if not args.no_notebooks:
            shots += _notebooks(out, work)
    for shot in shots:
        print(shot)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
