"""The README's screenshots are made by ``python -m perf_pipeline_tests.screenshots``: it still runs, and
its three PNGs show something (not a blank page) and stay small."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from perf_pipeline_tests.screenshots import REPORT_PNG, SLACK_ALERT_PNG, SLACK_REPORT_PNG, main

# Text, tables, charts and emoji give hundreds of colours (the PNGs keep at most 256); a blank page a handful.
MIN_COLOURS = 100
MAX_BYTES = 400_000


@pytest.mark.slow
@pytest.mark.browser
def test_the_screenshot_script_writes_the_readme_pictures(tmp_path: Path, capsys: pytest.CaptureFixture,
                                                          chromium: str) -> None:
    out = tmp_path / "pictures"

    assert main(["--out", str(out), "--chromium", chromium]) == 0

    printed = capsys.readouterr().out
    sizes = {}
    for name in (REPORT_PNG, SLACK_REPORT_PNG, SLACK_ALERT_PNG):
        png = out / name
        assert str(png) in printed
        assert 0 < png.stat().st_size < MAX_BYTES, name
        with Image.open(png) as image:
            rgb = image.convert("RGB")
        assert len(rgb.getcolors(maxcolors=1 << 24)) >= MIN_COLOURS, name
        sizes[name] = rgb.size
    assert sizes[REPORT_PNG][0] == 1280 and sizes[REPORT_PNG][1] > 2000  # the whole page, charts included
    # Element screenshots: the message card alone, not the page around it.
    assert sizes[SLACK_REPORT_PNG][0] == sizes[SLACK_ALERT_PNG][0] < 900
    assert sizes[SLACK_ALERT_PNG][1] < sizes[SLACK_REPORT_PNG][1] < 1500
