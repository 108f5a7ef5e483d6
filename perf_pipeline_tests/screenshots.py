"""The README's pictures, made by a command rather than by hand:

    python -m perf_pipeline_tests.screenshots --out deploy

writes three PNGs into ``--out`` (default: the project's ``deploy`` folder):

- ``report-weekly.png``: the HTML report (with its charts) of week 2026-W11 of the planted warehouse of
  ``perf_pipeline_tests.reports.test_content``, built for real in a temporary folder, as headless
  Chromium shows it (the full page, 1280 px wide);
- ``slack-report.png``: the Slack summary of that report (``render.slack_blocks``);
- ``slack-alert.png``: an alert message (``alerts.messages.slack_payload``): two agents below the
  ``low_success_rate`` threshold, first firing.

Slack itself is not called: the Block Kit blocks are drawn by the small renderer below as a Slack-like
message card (header, mrkdwn sections and fields, context, dividers; emoji as small inline drawings,
since no colour emoji font is installed), and each card is screenshotted alone. Chromium is Debian's
(``apt-get install chromium``), driven by Playwright, as in the browser tests, at a device scale factor
of 1; the PNGs are saved with a 256-colour palette, which keeps each well under 400 KB. Everything is
drawn from fixed data, so a re-run gives the same pictures.
"""

from __future__ import annotations

import argparse
import html as html_lib
import io
import re
import shutil
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from PIL import Image
from playwright.sync_api import Browser, sync_playwright

from perf_pipeline.alerts.lifecycle import FIRING, FIRST, Announcement, Message, group_messages, notification_key
from perf_pipeline.alerts.messages import slack_payload
from perf_pipeline.reports.charts import charts
from perf_pipeline.reports.content import Report, gather
from perf_pipeline.reports.render import html, slack_blocks
from perf_pipeline.warehouse.db import warehouse_engine
from perf_pipeline_tests.reports.test_content import LAST, WEEK, build_warehouse
from perf_pipeline_tests.test_ui_browser import CHROMIUM_FLAGS

ROOT = Path(__file__).resolve().parents[1]
REPORT_PNG, SLACK_REPORT_PNG, SLACK_ALERT_PNG = "report-weekly.png", "slack-report.png", "slack-alert.png"
REPORT_VIEWPORT = {"width": 1280, "height": 900}
SLACK_VIEWPORT = {"width": 900, "height": 700}
BOT_NAME = "perf_pipeline"
# The README's pictures stay small: an adaptive palette of this many colours (median cut, no dithering) cannot be
# told from the screenshot, and makes the full report page about 200 KB instead of 500 KB.
PALETTE_COLOURS = 256
CARD = ".message"

# The alert of the picture: two agents under low_success_rate's threshold (alerts.yaml: success_rate below
# 0.8 over 7 days), first announced as of the last day of the planted logs.
LOW_SUCCESS = {"agent-07": (0.62, 38), "agent-04": (0.71, 41)}


# --- a Slack-like rendering of Block Kit blocks ------------------------------------------------------------------

def _svg(body: str) -> str:
    return f'<svg class="emoji" viewBox="0 0 16 16" aria-hidden="true">{body}</svg>'


# The emoji the project's messages use, drawn inline (no colour emoji font is needed); others stay as :name:.
EMOJI = {
    "red_circle": _svg('<circle cx="8" cy="8" r="7" fill="#dd2e44"/>'),
    "large_orange_circle": _svg('<circle cx="8" cy="8" r="7" fill="#f4900c"/>'),
    "white_check_mark": _svg('<rect x="1" y="1" width="14" height="14" rx="3" fill="#77b255"/>'
                             '<path d="M4 8.5 L7 11.5 L12 5" stroke="#fff" stroke-width="2" fill="none"/>'),
    "rotating_light": _svg('<path d="M3.5 13 V8.5 a4.5 4.5 0 0 1 9 0 V13 Z" fill="#dd2e44"/>'
                           '<rect x="6.6" y="6" width="2.8" height="5" rx="1" fill="#fff" opacity=".7"/>'
                           '<rect x="1.5" y="13" width="13" height="2.5" rx="1" fill="#66757f"/>'
                           '<path d="M1 4 L3 5.5 M15 4 L13 5.5 M8 0.5 V2.5" stroke="#f4900c" stroke-width="1.3"/>'),
    "repeat": _svg('<rect x="1" y="1" width="14" height="14" rx="3" fill="#3b88c3"/>'
                   '<path d="M4 9 V6.5 H11 M9.5 4.8 L11.5 6.5 L9.5 8.2 M12 7 V9.5 H5 M6.5 11.2 L4.5 9.5 L6.5 7.8"'
                   ' stroke="#fff" stroke-width="1.3" fill="none"/>'),
    "sos": _svg('<rect x="0.5" y="1" width="15" height="14" rx="3" fill="#dd2e44"/>'
                '<text x="8" y="10.6" font-size="6" font-weight="bold" text-anchor="middle" fill="#fff"'
                ' font-family="Liberation Sans, Arial, sans-serif">SOS</text>'),
}

STYLE = """
body { margin: 0; padding: 24px; background: #ffffff; }
.message { display: flex; gap: 8px; width: 760px; box-sizing: border-box; padding: 16px 20px 18px;
           background: #ffffff; border: 1px solid #dddddd; border-radius: 8px; color: #1d1c1d;
           font: 15px/1.46668 Lato, "Liberation Sans", "DejaVu Sans", Arial, sans-serif; }
.avatar { flex: none; width: 36px; height: 36px; border-radius: 6px; background: #4c78a8; color: #fff;
          font: bold 15px/36px "Liberation Sans", Arial, sans-serif; text-align: center; letter-spacing: -.5px; }
.content { flex: 1; min-width: 0; }
.name { font-weight: 900; }
.badge { font-size: 10px; font-weight: bold; color: #616061; background: rgba(29,28,29,.13); border-radius: 2px;
         padding: 1px 3px; margin-left: 4px; vertical-align: 2px; }
.time { font-size: 12px; color: #616061; margin-left: 6px; }
.block { margin: 6px 0; }
.header { font-size: 18px; font-weight: 900; line-height: 1.33; margin: 6px 0 8px; }
.fields { display: grid; grid-template-columns: 1fr 1fr; gap: 8px 16px; margin-top: 8px; }
.context { font-size: 12px; color: #616061; display: flex; flex-wrap: wrap; gap: 8px; }
hr { border: 0; border-top: 1px solid #dddddd; margin: 12px 0; }
a { color: #1264a3; text-decoration: none; }
.mention { color: #1264a3; background: rgba(29,155,209,.1); border-radius: 3px; padding: 0 2px; }
code { font: 12px "DejaVu Sans Mono", "Liberation Mono", monospace; color: #e01e5a; background: rgba(29,28,29,.04);
       border: 1px solid rgba(29,28,29,.13); border-radius: 3px; padding: 2px 3px 1px; }
pre { font: 12px/1.5 "DejaVu Sans Mono", "Liberation Mono", monospace; background: rgba(29,28,29,.04);
      border: 1px solid rgba(29,28,29,.13); border-radius: 4px; padding: 8px; margin: 4px 0;
      white-space: pre-wrap; }
.emoji { width: 1.15em; height: 1.15em; vertical-align: -.22em; margin: 0 1px; }
.image { border: 1px solid #dddddd; border-radius: 4px; padding: 24px; color: #616061; text-align: center; }
.unsupported { color: #616061; font-style: italic; }
"""

# Slack's own markup, found in order: ```pre```, `code`, <link|label> (also <@user>, <#channel>, <!here>).
_TOKEN = re.compile(r"```(?P<pre>.+?)```|`(?P<code>[^`\n]+)`|<(?P<link>[^<>|\n]+)(?:\|(?P<label>[^<>\n]+))?>",
                    re.DOTALL)
# *bold*, _italic_, ~strike~: only at word edges, so success_rate or 2*3*4 stay as they are.
_STYLES = [(re.compile(rf"(?<![\w{mark}])\{mark}(?=\S)([^{mark}\n]+?)(?<=\S)\{mark}(?![\w{mark}])"), tag)
           for mark, tag in (("*", "b"), ("_", "i"), ("~", "s"))]
_EMOJI_CODE = re.compile(r":([a-z0-9_+-]+):")


def _unescape(text: str) -> str:
    """Slack's three entities back to characters (mrkdwn escapes only these)."""
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def _emoji(escaped: str) -> str:
    return _EMOJI_CODE.sub(lambda match: EMOJI.get(match[1], match[0]), escaped)


def _styled(text: str) -> str:
    """Plain mrkdwn (no code or links) as HTML: escaped, then bold/italic/strike, emoji and line breaks."""
    out = html_lib.escape(_unescape(text), quote=False)
    for pattern, tag in _STYLES:
        out = pattern.sub(rf"<{tag}>\1</{tag}>", out)
    return _emoji(out).replace("\n", "<br>")


def _link(target: str, label: str | None) -> str:
    target = _unescape(target)
    if target[:1] in "@#!":
        name = label or {"!": "@"}.get(target[0], target[0]) + target[1:]
        return f'<span class="mention">{html_lib.escape(name)}</span>'
    shown = _styled(label) if label else html_lib.escape(target)
    return f'<a href="{html_lib.escape(target)}">{shown}</a>'


def mrkdwn(text: str) -> str:
    """Slack mrkdwn as HTML."""
    out, at = [], 0
    for token in _TOKEN.finditer(text):
        out.append(_styled(text[at:token.start()]))
        if token["pre"] is not None:
            out.append(f"<pre>{html_lib.escape(_unescape(token['pre'].strip(chr(10))), quote=False)}</pre>")
        elif token["code"] is not None:
            out.append(f"<code>{html_lib.escape(_unescape(token['code']), quote=False)}</code>")
        else:
            out.append(_link(token["link"], token["label"]))
        at = token.end()
    out.append(_styled(text[at:]))
    return "".join(out)


def _text(obj: dict[str, Any]) -> str:
    if obj.get("type") == "mrkdwn":
        return mrkdwn(obj["text"])
    escaped = html_lib.escape(obj["text"], quote=False)
    return (_emoji(escaped) if obj.get("emoji", True) else escaped).replace("\n", "<br>")


def _block(block: dict[str, Any]) -> str:
    kind = block.get("type")
    if kind == "header":
        return f'<div class="header">{_text(block["text"])}</div>'
    if kind == "section":
        parts = [f"<div>{_text(block['text'])}</div>"] if "text" in block else []
        if block.get("fields"):
            parts.append('<div class="fields">' + "".join(f"<div>{_text(field)}</div>" for field in block["fields"])
                         + "</div>")
        return '<div class="block section">' + "".join(parts) + "</div>"
    if kind == "context":
        elements = [f"<span>{_text(e)}</span>" if "text" in e else f"<span>[{html_lib.escape(e.get('alt_text', ''))}]"
                    "</span>" for e in block.get("elements", [])]
        return '<div class="block context">' + "".join(elements) + "</div>"
    if kind == "divider":
        return "<hr>"
    if kind == "image":
        return f'<div class="block image">{html_lib.escape(block.get("alt_text", "image"))}</div>'
    return f'<div class="block unsupported">[{html_lib.escape(str(kind))} block]</div>'


def slack_page(blocks: list[dict[str, Any]], title: str) -> str:
    """A self-contained page with the blocks as one Slack message from the perf_pipeline bot."""
    body = "\n".join(map(_block, blocks))
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            f"<title>{html_lib.escape(title)}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n"
            f'<div class="message"><div class="avatar">pp</div><div class="content">\n'
            f'<div><span class="name">{BOT_NAME}</span><span class="badge">APP</span>'
            f'<span class="time">9:00 AM</span></div>\n{body}\n</div></div>\n</body>\n</html>\n')


# --- what is shown --------------------------------------------------------------------------------------------

def weekly_report(folder: Path) -> Report:
    """The report of week 2026-W11 of the planted warehouse, built in ``folder``."""
    url = f"sqlite:///{folder / 'warehouse.db'}"
    build_warehouse(url, folder)
    engine = warehouse_engine(url)
    try:
        with engine.connect() as conn:
            return gather(conn, WEEK)
    finally:
        engine.dispose()


def alert_message() -> Message:
    """The first announcement of ``low_success_rate`` firing for two agents, grouped as the pipeline groups it."""
    found = []
    for agent, (observed, n_tasks) in LOW_SUCCESS.items():
        state = {"as_of_date": LAST, "rule": "low_success_rate", "entity_type": "agent", "entity_id": agent,
                 "status": FIRING, "started_on": LAST, "last_held_on": LAST, "resolved_on": None,
                 "resolution_final": False, "escalated": False, "silenced_by": None, "severity": "warning",
                 "kind": "threshold", "metric": "success_rate", "window_days": 7, "observed": observed,
                 "threshold": 0.8, "baseline": None, "n_tasks": n_tasks, "evidence": {"direction": "below"}}
        found.append(Announcement(kind=FIRST, as_of_date=LAST, state=state,
                                  entries=((FIRST, notification_key(state, FIRST)),)))
    [message] = group_messages(found)
    return message


# --- screenshots ----------------------------------------------------------------------------------------------

def _save(screenshot: bytes, png: Path) -> None:
    image = Image.open(io.BytesIO(screenshot)).convert("RGB")
    image.quantize(PALETTE_COLOURS, Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(png, optimize=True)


def _report_png(browser: Browser, page_file: Path, png: Path) -> None:
    page = browser.new_page(viewport=REPORT_VIEWPORT, device_scale_factor=1)
    try:
        page.goto(page_file.as_uri(), wait_until="load")
        _save(page.screenshot(full_page=True), png)
    finally:
        page.close()


def _card_png(browser: Browser, page_file: Path, png: Path) -> None:
    page = browser.new_page(viewport=SLACK_VIEWPORT, device_scale_factor=1)
    try:
        page.goto(page_file.as_uri(), wait_until="load")
        _save(page.locator(CARD).screenshot(), png)
    finally:
        page.close()


def make(out: Path, chromium: str) -> dict[str, Path]:
    """Writes the three PNGs into ``out``; returns them by name."""
    out.mkdir(parents=True, exist_ok=True)
    written = {name: out / name for name in (REPORT_PNG, SLACK_REPORT_PNG, SLACK_ALERT_PNG)}
    with tempfile.TemporaryDirectory(prefix="perf-screenshots-") as temporary:
        folder = Path(temporary)
        report = weekly_report(folder / "warehouse")
        alert = slack_payload(alert_message(), [])
        pages = {REPORT_PNG: html(report, charts(report)),
                 SLACK_REPORT_PNG: slack_page(slack_blocks(report, None), "Slack: weekly report summary"),
                 SLACK_ALERT_PNG: slack_page(alert["blocks"], "Slack: alert message")}
        files = {}
        for name, text in pages.items():
            files[name] = folder / name.replace(".png", ".html")
            files[name].write_text(text, encoding="utf-8")
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_FLAGS)
            try:
                _report_png(browser, files[REPORT_PNG], written[REPORT_PNG])
                for name in (SLACK_REPORT_PNG, SLACK_ALERT_PNG):
                    _card_png(browser, files[name], written[name])
            finally:
                browser.close()
    return written


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m perf_pipeline_tests.screenshots", description=(
        "Screenshot the weekly HTML report and Slack-like previews of a report summary and an alert message."))
    parser.add_argument("--out", type=Path, default=ROOT / "deploy", help="folder of the PNGs (default: %(default)s)")
    parser.add_argument("--chromium", default=shutil.which("chromium"),
                        help="Chromium executable (default: chromium on PATH; apt-get install chromium)")
    args = parser.parse_args(argv)
    if not args.chromium:
        parser.error("Chromium is not installed (no chromium on PATH): apt-get install chromium")
    for path in make(args.out, args.chromium).values():
        print(f"wrote {path} ({path.stat().st_size:,} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
