"""Block Kit building blocks, and :func:`fit` to keep a message within Slack's limits.

Slack rejects a whole message (``invalid_blocks``, ``msg_too_long``) when one block breaks a limit, and a
rejected notification is a lost one; so texts are cut and the tail of a long message is replaced by a pointer
to the full report. Pure: no Slack call here.
"""

from __future__ import annotations

MAX_BLOCKS = 50
MAX_SECTION_TEXT = 3000
MAX_HEADER_TEXT = 150
MAX_CONTEXT_ELEMENTS = 10
MAX_FALLBACK_TEXT = 3000  # Slack allows 40,000; a notification's fallback is a preview, not the message
ELLIPSIS = "…"


def header(text: str) -> dict:
    return {"type": "header", "text": {"type": "plain_text", "text": text, "emoji": True}}


def section(markdown: str) -> dict:
    return {"type": "section", "text": {"type": "mrkdwn", "text": markdown}}


def context(*markdowns: str) -> dict:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": text} for text in markdowns]}


def divider() -> dict:
    return {"type": "divider"}


def escape(text: str) -> str:
    """Text shown as is in mrkdwn: ``&``, ``<`` and ``>`` would otherwise start entities, links and mentions."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def fit(blocks: list[dict], pointer: str) -> list[dict]:
    """The blocks within Slack's limits: long texts cut with "…", at most 10 context elements, at most 50 blocks.

    Past 50 blocks the first 49 are kept and a last section says ``pointer``, where ``{n}`` stands for the number
    of blocks left out (e.g. ``"… {n} more: see <https://example.org/report|the report>"``). The input is not
    changed.
    """
    if len(blocks) > MAX_BLOCKS:
        kept = MAX_BLOCKS - 1
        blocks = [*blocks[:kept], section(pointer.replace("{n}", str(len(blocks) - kept)))]
    return [_fit_block(block) for block in blocks]


def slack_text(blocks: list[dict]) -> str:
    """The plain fallback (notifications, screen readers): the header and section texts, in order, cut to 3000."""
    texts = [block["text"]["text"] for block in blocks if block.get("type") in ("header", "section")
             and "text" in block]
    return _cut("\n".join(texts), MAX_FALLBACK_TEXT)


def _fit_block(block: dict) -> dict:
    kind = block.get("type")
    if kind in ("header", "section") and "text" in block:
        limit = MAX_HEADER_TEXT if kind == "header" else MAX_SECTION_TEXT
        return {**block, "text": {**block["text"], "text": _cut(block["text"]["text"], limit)}}
    if kind == "context":
        elements = [{**element, "text": _cut(element["text"], MAX_SECTION_TEXT)} if "text" in element else element
                    for element in block["elements"][:MAX_CONTEXT_ELEMENTS]]
        return {**block, "elements": elements}
    return block


def _cut(text: str, limit: int) -> str:
    """``text`` in at most ``limit`` characters, ending with "…" when cut: at the last line break when one falls
    in the second half of the room, so a cut list loses whole lines rather than half of one."""
    if len(text) <= limit:
        return text
    room = limit - len(ELLIPSIS)
    line_end = text.rfind("\n", 0, room + 1)
    end = line_end if line_end >= room // 2 else room
    return text[:end] + ELLIPSIS
