"""Builders of contract events and landing files for tests: valid by default, overridable per field."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def task(task_id: str = "t-1", **fields: Any) -> dict[str, Any]:
    event = {
        "event_type": "task", "task_id": task_id, "agent_id": "agent-1", "agent_name": "Ada",
        "department": "engineering", "project_id": "proj-1", "provider": "openai", "model": "gpt-4.1",
        "task_type": "bug_fix", "objective": "Fix the bug in the parser", "prompt_version": "v1",
        "assigned_at": "2026-03-01T09:00:00Z", "started_at": "2026-03-01T09:01:00Z",
        "completed_at": "2026-03-01T09:30:00Z", "status": "success", "input_tokens": 1200,
        "output_tokens": 300, "cost_usd": 0.012, "tool_invocations": 3, "revision_count": 1,
        "response_time_ms": 850.0, "sla_seconds": 3600, "input": "stack trace", "output": "patched",
    }
    event.update(fields)
    return {k: v for k, v in event.items() if v is not _DROP}


def feedback(feedback_id: str = "f-1", **fields: Any) -> dict[str, Any]:
    event = {"event_type": "feedback", "feedback_id": feedback_id, "task_id": "t-1", "user_rating": 4,
             "feedback_type": "approval", "comment": "good", "created_at": "2026-03-03T12:00:00Z"}
    event.update(fields)
    return {k: v for k, v in event.items() if v is not _DROP}


def peer_evaluation(evaluation_id: str = "e-1", **fields: Any) -> dict[str, Any]:
    event = {"event_type": "peer_evaluation", "evaluation_id": evaluation_id, "task_id": "t-1",
             "evaluator_agent_id": "agent-2", "evaluated_agent_id": "agent-1", "accuracy": 0.9,
             "relevance": 0.8, "completeness": 0.7, "created_at": "2026-03-02T10:00:00Z"}
    event.update(fields)
    return {k: v for k, v in event.items() if v is not _DROP}


def message(message_id: str = "m-1", **fields: Any) -> dict[str, Any]:
    event = {"event_type": "message", "message_id": message_id, "task_id": "t-1", "from_agent_id": "agent-1",
             "to_agent_id": "agent-2", "sent_at": "2026-03-01T09:10:00Z", "kind": "request"}
    event.update(fields)
    return {k: v for k, v in event.items() if v is not _DROP}


class _Drop:
    def __repr__(self) -> str:
        return "DROP"


DROP = _Drop()  # pass as a field value to leave the field out entirely
_DROP = DROP


def write_jsonl(path: Path, lines: list[dict[str, Any] | str | bytes], *, final_newline: bool = True) -> Path:
    """Write events (dicts), raw text lines or raw bytes, one per line."""
    encoded = [line if isinstance(line, bytes) else (line if isinstance(line, str) else json.dumps(line)).encode()
               for line in lines]
    path.write_bytes(b"\n".join(encoded) + (b"\n" if final_newline else b""))
    return path
