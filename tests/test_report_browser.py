"""The HTML report in a real browser: headless Chromium at 1400 px (scripts/report_screenshot.py) finds no
sideways scroll, even with the every-column table opened, no clipped headline cell, and at least three
examples per run. Skips, saying why, where Chromium is not installed (apt-get install -y chromium)."""

from __future__ import annotations

import importlib.util

import pytest

from sumtune.report import write_report
from tiny_runs import REPO
from test_report import fake_run

spec = importlib.util.spec_from_file_location("report_screenshot", REPO / "scripts" / "report_screenshot.py")
report_screenshot = importlib.util.module_from_spec(spec)
spec.loader.exec_module(report_screenshot)

pytestmark = pytest.mark.skipif(report_screenshot.find_browser() is None,
                                reason="no Chromium here (apt-get install -y chromium); the HTML check needs a real browser")


def test_the_headline_fits_1400_pixels_with_no_sideways_scroll_and_three_examples_per_run(tiny_trained_runs, tmp_path):
    runs = [tiny_trained_runs["bart"].model_dir, tiny_trained_runs["llama"].model_dir]
    long_name = fake_run(tmp_path, "llama_3.2_korean_3b_with_a_long_experiment_name_20250101-120000",
                         scores=(0.3, 0.1, 0.2), checkpoint="Bllossom/llama-3.2-Korean-Bllossom-3B", quantization="4bit",
                         error=None)
    out = write_report([*runs, tmp_path / "models" / long_name], tmp_path / "report")
    facts = report_screenshot.measure(out / "comparison.html", width=1400)
    assert facts["scrollWidth"] <= 1400 and facts["scrollWidthDetailsOpen"] <= 1400, facts
    assert facts["clippedCells"] == [] and facts["headlineCells"] == 12 * 4  # the header and three runs
    assert facts["examples"] >= 3 * len(runs) + 1  # three per run, and the dialogues side by side


def test_the_script_exits_1_for_a_page_that_scrolls_sideways(tmp_path):
    page = tmp_path / "wide.html"
    page.write_text('<!DOCTYPE html><html><body><table class="headline"><tr><td style="white-space: nowrap">'
                    + "wide " * 600 + "</td></tr></table></body></html>", encoding="utf-8")
    assert report_screenshot.main([str(page)]) == 1
