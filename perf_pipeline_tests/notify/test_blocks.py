"""Block Kit helpers: whatever goes into ``fit`` comes out within Slack's limits, and says what it left out."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from perf_pipeline.notify import blocks

POINTER = "… {n} more: see <https://perf.example.org/report|the report>"

# Short texts, and long ones made by repeating a piece (unicode, emoji and line breaks included).
texts = st.one_of(st.text(max_size=200),
                  st.builds(lambda piece, times: piece * times, st.text(min_size=1, max_size=40),
                            st.integers(min_value=1, max_value=400)))
# The length is drawn first: left to itself, Hypothesis rarely builds lists past 50, where the pointer comes in.
block_lists = st.integers(min_value=0, max_value=120).flatmap(
    lambda size: st.lists(st.one_of(texts.map(blocks.section), texts.map(blocks.header)),
                          min_size=size, max_size=size))


def text_of(block: dict) -> str:
    return block["text"]["text"]


@given(block_lists)
def test_fit_keeps_every_message_within_slacks_limits(original: list[dict]) -> None:
    fitted = blocks.fit(original, POINTER)

    assert len(fitted) <= blocks.MAX_BLOCKS
    for block in fitted:
        limit = blocks.MAX_HEADER_TEXT if block["type"] == "header" else blocks.MAX_SECTION_TEXT
        assert len(text_of(block)) <= limit


@given(block_lists)
def test_fit_adds_the_pointer_exactly_when_blocks_are_left_out(original: list[dict]) -> None:
    fitted = blocks.fit(original, POINTER)

    if len(original) <= blocks.MAX_BLOCKS:
        kept = original
    else:
        kept = original[:blocks.MAX_BLOCKS - 1]
        assert text_of(fitted[-1]) == POINTER.replace("{n}", str(len(original) - len(kept)))
    for before, after in zip(kept, fitted, strict=False):
        assert after["type"] == before["type"]
        assert text_of(after) == text_of(before) or (text_of(after).endswith("…")
                                                     and text_of(before).startswith(text_of(after)[:-1]))
    assert len(fitted) == len(kept) + (len(original) > blocks.MAX_BLOCKS)


@pytest.mark.parametrize(("count", "last"), [
    (50, "agent-49"), (51, "… 2 more: see <https://perf.example.org/report|the report>"),
    (87, "… 38 more: see <https://perf.example.org/report|the report>")])
def test_fit_counts_the_blocks_left_out_and_leaves_its_input_alone(count: int, last: str) -> None:
    original = [blocks.section(f"agent-{i}") for i in range(count)]

    fitted = blocks.fit(original, POINTER)

    assert len(fitted) == 50
    assert [text_of(b) for b in fitted[:49]] == [f"agent-{i}" for i in range(49)]
    assert text_of(fitted[-1]) == last
    assert len(original) == count and text_of(original[-1]) == f"agent-{count - 1}"


def test_a_long_section_is_cut_at_a_line_break() -> None:
    lines = [f"• agent-{i:03d}: success 91.0% → 72.5%" for i in range(200)]
    [fitted] = blocks.fit([blocks.section("\n".join(lines))], POINTER)

    shown = text_of(fitted)
    assert len(shown) <= blocks.MAX_SECTION_TEXT
    assert shown.endswith("…")
    assert all(line in lines for line in shown[:-1].split("\n"))


def test_a_text_without_line_breaks_is_cut_at_the_limit() -> None:
    [fitted] = blocks.fit([blocks.header("é" * 400)], POINTER)

    assert text_of(fitted) == "é" * 149 + "…"


def test_context_keeps_ten_elements_and_other_blocks_pass_through() -> None:
    original = [blocks.context(*(f"tag {i}" for i in range(14))), blocks.divider(),
                {"type": "image", "image_url": "https://perf.example.org/chart.png", "alt_text": "success rate"}]

    context, divider, image = blocks.fit(original, POINTER)

    assert [e["text"] for e in context["elements"]] == [f"tag {i}" for i in range(10)]
    assert divider == {"type": "divider"}
    assert image == original[2]


def test_escape_makes_user_text_literal_in_mrkdwn() -> None:
    assert blocks.escape("<!channel> R&D > 5") == "&lt;!channel&gt; R&amp;D &gt; 5"


def test_slack_text_is_a_short_plain_preview_of_headers_and_sections() -> None:
    message = [blocks.header("Success rate fell"), blocks.context("since 2026-11-20"), blocks.divider(),
               blocks.section("*agent-a*: 92% → 71%"), blocks.section("x" * 5000)]

    text = blocks.slack_text(message)

    assert text.startswith("Success rate fell\n*agent-a*: 92% → 71%\nxxx")
    assert len(text) == blocks.MAX_FALLBACK_TEXT and text.endswith("…")
