"""Check a comparison report in a real browser and take its picture: headless Chromium at 1400 px.

    python scripts/report_screenshot.py reports/mine                       # check only
    python scripts/report_screenshot.py reports/mine --out docs/report_example.png --height 2600

The check (``measure``) loads a copy of comparison.html with a small script at the end of its body that
writes what the browser laid out into the DOM, read back with ``--dump-dom``: the page's scrollWidth against
the window's width (a sideways scroll when it is larger; measured again with the collapsed
every-column table opened, which must scroll inside itself), headline-table cells whose content is wider than
the cell (clipped), and how many example tables there are. It exits 1 when the page scrolls sideways or a
headline cell is clipped. Needs Debian's chromium (``apt-get install -y chromium``); each launch gets a new
empty profile, without network, sync or component updates.
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

BROWSERS = ("chromium", "chromium-browser", "google-chrome")
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync", "--hide-scrollbars")
MEASURE = """<script>
(() => {
  const page = document.documentElement;
  const cells = [...document.querySelectorAll("table.headline th, table.headline td")];
  const facts = {
    scrollWidth: page.scrollWidth, clientWidth: page.clientWidth,
    clippedCells: cells.filter(cell => cell.scrollWidth > cell.clientWidth + 1).map(cell => cell.textContent),
    headlineCells: cells.length, examples: document.querySelectorAll("table.example").length,
  };
  document.querySelectorAll("details").forEach(details => { details.open = true; });
  facts.scrollWidthDetailsOpen = page.scrollWidth;  // the every-column table scrolls inside itself
  const out = document.createElement("pre");
  out.id = "sumtune-measure";
  out.textContent = JSON.stringify(facts);
  document.body.appendChild(out);
})();
</script>"""


def find_browser() -> str | None:
    return next((found for name in BROWSERS if (found := shutil.which(name))), None)


def run_browser(*arguments: str, timeout: int = 120) -> str:
    browser = find_browser()
    if browser is None:
        raise FileNotFoundError("no Chromium found (looked for " + ", ".join(BROWSERS) + "); apt-get install -y chromium")
    with tempfile.TemporaryDirectory() as profile:
        done = subprocess.run([browser, *FLAGS, f"--user-data-dir={profile}", *arguments],
                              capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"{browser} exited {done.returncode}: {done.stderr[-2000:]}")
    return done.stdout


def report_html(path: Path) -> Path:
    return path / "comparison.html" if path.is_dir() else path


def measure(page: Path, width: int = 1400, height: int = 1000) -> dict:
    """What Chromium laid out for ``page`` in a window ``width`` pixels wide (see the module docstring)."""
    text = page.read_text(encoding="utf-8")
    with tempfile.TemporaryDirectory() as scratch:
        probe = Path(scratch) / page.name
        probe.write_text(text.replace("</body>", MEASURE + "</body>", 1), encoding="utf-8")
        dom = run_browser(f"--window-size={width},{height}", "--dump-dom", probe.as_uri())
    found = re.search(r'<pre id="sumtune-measure">(.*?)</pre>', dom, re.S)
    if found is None:
        raise RuntimeError(f"the browser wrote no measurement for {page}; its DOM began: {dom[:300]!r}")
    facts = json.loads(found.group(1).replace("&quot;", '"').replace("&amp;", "&").replace("&lt;", "<").replace("&gt;", ">"))
    facts["width"] = width
    facts["scrolls_sideways"] = max(facts["scrollWidth"], facts["scrollWidthDetailsOpen"]) > facts["clientWidth"]
    return facts


def screenshot(page: Path, picture: Path, width: int = 1400, height: int = 2400) -> Path:
    picture.parent.mkdir(parents=True, exist_ok=True)
    run_browser(f"--window-size={width},{height}", f"--screenshot={picture.resolve()}", page.resolve().as_uri())
    return picture


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("report", type=Path, help="a report directory (its comparison.html) or an HTML file")
    parser.add_argument("--out", type=Path, help="write a screenshot PNG here")
    parser.add_argument("--width", type=int, default=1400)
    parser.add_argument("--height", type=int, default=2400, help="of the screenshot")
    args = parser.parse_args(argv)
    page = report_html(args.report)
    facts = measure(page, args.width)
    print(json.dumps(facts, ensure_ascii=False))
    if args.out:
        print(f"screenshot: {screenshot(page, args.out, args.width, args.height)}")
    problems = (["the page scrolls sideways"] if facts["scrolls_sideways"] else []) + (
        [f"{len(facts['clippedCells'])} headline cell(s) clipped"] if facts["clippedCells"] else [])
    for problem in problems:
        print(f"{page} at {args.width} px: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
