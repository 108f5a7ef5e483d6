"""The HTML report opened from a file in headless Chromium, as a stakeholder opens it: it loads nothing
from the network, and its charts are drawn."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image
from playwright.sync_api import sync_playwright

from perf_pipeline.reports.charts import DPI, SIZE_INCHES, charts
from perf_pipeline.reports.render import html
from perf_pipeline_tests.reports.test_content import planted_week
from perf_pipeline_tests.test_ui_browser import CHROMIUM_FLAGS

VIEWPORT = {"width": 1280, "height": 900}
CHART_PIXELS = [round(SIZE_INCHES[0] * DPI), round(SIZE_INCHES[1] * DPI)]
# Text, tables and two antialiased charts give thousands of colours; a blank or broken page a handful.
MIN_PAGE_COLOURS = 1000
MIN_CHART_COLOURS = 50


@pytest.mark.slow
@pytest.mark.browser
def test_the_html_report_shows_its_charts_in_chromium(tmp_path: Path, tmp_path_factory: pytest.TempPathFactory,
                                                      chromium: str) -> None:
    report = planted_week(tmp_path_factory)
    page_file = tmp_path / "report.html"
    page_file.write_text(html(report, charts(report)), encoding="utf-8")
    requested: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_FLAGS)
        try:
            page = browser.new_page(viewport=VIEWPORT)
            page.on("request", lambda request: requested.append(request.url))
            page.goto(page_file.as_uri(), wait_until="load")
            title = page.title()
            images = page.eval_on_selector_all("img", """images => images.map(image => {
                const box = image.getBoundingClientRect();
                return {complete: image.complete, natural: [image.naturalWidth, image.naturalHeight],
                        box: [box.left + window.scrollX, box.top + window.scrollY, box.right + window.scrollX,
                              box.bottom + window.scrollY]};
            })""")
            screenshot = Image.open(io.BytesIO(page.screenshot(full_page=True))).convert("RGB")
        finally:
            browser.close()

    assert title == "Weekly agent performance report, 2026-W11"
    assert [url for url in requested if not url.startswith(("file:", "data:"))] == []
    assert [(image["complete"], image["natural"]) for image in images] == [(True, CHART_PIXELS)] * 2
    assert screenshot.height > VIEWPORT["height"]  # the whole page, not just the first screen
    assert len(screenshot.getcolors(maxcolors=1 << 24)) >= MIN_PAGE_COLOURS
    for image in images:
        drawn = screenshot.crop(tuple(round(edge) for edge in image["box"]))
        assert drawn.width > 0 and len(drawn.getcolors(maxcolors=1 << 24)) >= MIN_CHART_COLOURS
