"""The synthetic logs must be reproducible, countable and true to the input contract.

Every test reads the files back, as the pipeline would, instead of trusting the summary.
"""

from __future__ import annotations

import csv
import gzip
import json
import re
from collections import Counter
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import jsonschema
import pyarrow.parquet as pq
import pytest

from perf_pipeline.settings import usable_cpus
from perf_pipeline.synthetic import generator
from perf_pipeline.synthetic.generator import MALFORMED_KINDS, GenerationSummary, generate_logs

SCHEMA = json.loads((Path(generator.__file__).parents[1] / "contract" / "task_log.schema.json").read_text())
VALIDATOR = jsonschema.Draft202012Validator(SCHEMA)
TASK_FIELDS = set(SCHEMA["$defs"]["task"]["properties"])
EXTRA_FIELDS = {"trace_id"}  # deliberately unknown to the contract
RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")
ID_FIELD = {"task": "task_id", "feedback": "feedback_id", "peer_evaluation": "evaluation_id",
            "message": "message_id"}
TIME_FIELDS = {"task": ("assigned_at", "started_at", "completed_at"), "feedback": ("created_at",),
               "peer_evaluation": ("created_at",), "message": ("sent_at",)}
KEYWORDS = {"code_generation": "Implement", "bug_fix": "Fix the bug", "code_review": "Review pull request",
            "research": "Research", "summarization": "Summarize", "data_analysis": "Analyze the dataset",
            "documentation": "Write documentation", "testing": "Write unit tests"}
FORMATS = ["jsonl", "jsonl.gz", "csv", "parquet"]


def _generate(tmp_path: Path, name: str = "run", **options: Any) -> GenerationSummary:
    return generate_logs(tmp_path / name, **({"start": date(2026, 1, 5), "days": 3, "tasks_per_day": 60}
                                             | options))


def _lines(path: Path) -> list[str]:
    data = path.read_bytes()
    return (gzip.decompress(data) if path.suffix == ".gz" else data).decode("utf-8").splitlines()


def _row_count(path: Path) -> int:
    if path.suffix == ".csv":
        with path.open(newline="", encoding="utf-8") as handle:
            return sum(1 for _ in csv.DictReader(handle))
    if path.suffix == ".parquet":
        return pq.read_metadata(path).num_rows
    return len(_lines(path))


def _utc(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp).astimezone(UTC)


def _problems(line: str) -> list[str]:
    """Why a line breaks the contract (schema, offsets, time order, self-review); [] if it does not."""
    try:
        event = json.loads(line)
    except json.JSONDecodeError:
        return ["not_json"]
    problems = [error.message for error in VALIDATOR.iter_errors(event)]
    if problems:
        return problems
    kind = event["event_type"]
    stamps = [event[field] for field in TIME_FIELDS[kind] if event.get(field) is not None]
    stamps += [step[field] for step in event.get("steps") or [] for field in ("started_at", "completed_at")]
    problems += [f"no offset: {stamp}" for stamp in stamps if not RFC3339.match(stamp)]
    if problems:
        return problems
    if kind == "task":
        times = [_utc(event[field]) for field in TIME_FIELDS["task"] if event.get(field) is not None]
        if times != sorted(times):
            problems.append("timestamps out of order")
    if kind == "peer_evaluation" and event["evaluator_agent_id"] == event["evaluated_agent_id"]:
        problems.append("agent reviews itself")
    return problems


def _malformed_kind(line: str) -> str:
    """Name the deliberate defect of a broken line, in the generator's vocabulary."""
    try:
        event = json.loads(line)
    except json.JSONDecodeError:
        return "not_json"
    if event["event_type"] == "peer_evaluation":
        return "self_evaluation"
    checks = {
        "missing_agent_id": "agent_id" not in event,
        "rating_out_of_range": event.get("user_rating") == 7,
        "unknown_status": event["status"] not in ("success", "failed", "timeout", "cancelled"),
        "timestamp_without_offset": not RFC3339.match(event["assigned_at"]),
        "negative_tokens": isinstance(event.get("input_tokens"), int) and event["input_tokens"] < 0,
        "string_tokens": isinstance(event.get("input_tokens"), str),
    }
    found = [kind for kind, hit in checks.items() if hit]
    return found[0] if found else "completed_before_assigned"


def _classify(files: list[Path]) -> tuple[Counter[str], list[str], list[dict[str, Any]]]:
    """Read JSONL files in order like a deduplicating ingester: count each line's class."""
    counts: Counter[str] = Counter()
    seen_lines: set[str] = set()
    seen_ids: dict[tuple[str, str], str] = {}
    broken: list[str] = []
    good: list[dict[str, Any]] = []
    for path in files:
        for line in _lines(path):
            if line in seen_lines:
                counts["duplicate"] += 1
                continue
            seen_lines.add(line)
            if _problems(line):
                counts["malformed"] += 1
                broken.append(line)
                continue
            event = json.loads(line)
            key = (event["event_type"], event[ID_FIELD[event["event_type"]]])
            if key in seen_ids:
                counts["conflict"] += 1
                continue
            seen_ids[key] = line
            counts[event["event_type"]] += 1
            good.append(event | {"_file": path.name})
    return counts, broken, good


@pytest.mark.parametrize("file_format", FORMATS)
def test_same_arguments_give_byte_identical_files(tmp_path: Path, file_format: str) -> None:
    first = _generate(tmp_path, "first", file_format=file_format)
    second = _generate(tmp_path, "second", file_format=file_format)
    assert [p.name for p in first.files] == [p.name for p in second.files]
    assert all(a.read_bytes() == b.read_bytes() for a, b in zip(first.files, second.files, strict=True))
    third = _generate(tmp_path, "other-seed", file_format=file_format, seed=8)
    assert first.files[0].read_bytes() != third.files[0].read_bytes()


@pytest.mark.parametrize("file_format", FORMATS)
def test_counts_add_up_to_the_lines_and_rows_written(tmp_path: Path, file_format: str) -> None:
    summary = _generate(tmp_path, file_format=file_format)
    written = sum(_row_count(path) for path in summary.files)
    assert sum(summary.events.values()) + summary.malformed_lines + summary.duplicate_lines \
        + summary.conflicting_lines == written
    assert all(summary.events[event_type] > 0 for event_type in ID_FIELD)
    assert summary.events["task"] == 3 * 60


@pytest.mark.parametrize("file_format", ["jsonl", "csv"])
def test_file_names_follow_the_day_and_format(tmp_path: Path, file_format: str) -> None:
    summary = _generate(tmp_path, file_format=file_format, days=2)
    expected = {"jsonl": ["events-2026-01-05.jsonl", "events-2026-01-06.jsonl"],
                "csv": ["tasks-2026-01-05.csv", "events-2026-01-05.jsonl",
                        "tasks-2026-01-06.csv", "events-2026-01-06.jsonl"]}[file_format]
    assert [path.name for path in summary.files] == expected


def test_bad_lines_are_exactly_the_counted_ones_and_every_kind_occurs(tmp_path: Path) -> None:
    summary = _generate(tmp_path)
    counts, broken, _ = _classify(summary.files)
    assert counts["malformed"] == summary.malformed_lines
    assert counts["duplicate"] == summary.duplicate_lines >= 1
    assert counts["conflict"] == summary.conflicting_lines >= 1
    assert {event_type: counts[event_type] for event_type in ID_FIELD} == summary.events
    assert {_malformed_kind(line) for line in broken} == set(MALFORMED_KINDS)


def test_malformed_rate_zero_gives_only_valid_unique_lines(tmp_path: Path) -> None:
    summary = _generate(tmp_path, malformed_rate=0)
    lines = [line for path in summary.files for line in _lines(path)]
    assert [line for line in lines if _problems(line)] == []
    ids = [(e["event_type"], e[ID_FIELD[e["event_type"]]]) for e in map(json.loads, lines)]
    assert len(set(ids)) == len(ids) == sum(summary.events.values())
    assert (summary.malformed_lines, summary.duplicate_lines, summary.conflicting_lines) == (0, 0, 0)


def test_task_fields_are_contract_properties_apart_from_deliberate_extras(tmp_path: Path) -> None:
    _, _, good = _classify(_generate(tmp_path).files)
    fields = {field for event in good if event["event_type"] == "task" for field in event} - {"_file"}
    assert fields - TASK_FIELDS == EXTRA_FIELDS  # the extra field is there, for the pipeline to keep
    csv_file = _generate(tmp_path, "csv", file_format="csv").files[0]
    with csv_file.open(newline="", encoding="utf-8") as handle:
        header = next(csv.reader(handle))
    parquet_file = _generate(tmp_path, "parquet", file_format="parquet").files[0]
    assert set(header) - TASK_FIELDS == set(pq.read_schema(parquet_file).names) - TASK_FIELDS == EXTRA_FIELDS


def test_timestamps_carry_offsets_mostly_utc(tmp_path: Path) -> None:
    _, _, good = _classify(_generate(tmp_path).files)
    stamps = [e[f] for e in good for f in TIME_FIELDS[e["event_type"]] if e.get(f)]
    assert all(RFC3339.match(stamp) for stamp in stamps)
    utc_share = sum(stamp.endswith("Z") for stamp in stamps) / len(stamps)
    assert 0.5 < utc_share < 1


def test_a_day_file_spans_dates_and_feedback_arrives_in_later_files(tmp_path: Path) -> None:
    _, _, good = _classify(_generate(tmp_path).files)
    dates_by_file: dict[str, set[date]] = {}
    for event in good:
        if event["event_type"] == "task":
            dates_by_file.setdefault(event["_file"], set()).add(_utc(event["completed_at"]).date())
    assert any(len(dates) > 1 for dates in dates_by_file.values())
    task_file = {e["task_id"]: e["_file"] for e in good if e["event_type"] == "task"}
    completed = {e["task_id"]: _utc(e["completed_at"]) for e in good if e["event_type"] == "task"}
    feedback = [e for e in good if e["event_type"] == "feedback" and e["task_id"] in task_file]
    assert all(_utc(e["created_at"]) >= completed[e["task_id"]] for e in feedback)
    assert any(e["_file"] > task_file[e["task_id"]] for e in feedback)


def test_about_30_percent_of_tasks_lack_task_type_and_objectives_name_their_type(tmp_path: Path) -> None:
    _, _, good = _classify(_generate(tmp_path).files)
    tasks = [e for e in good if e["event_type"] == "task"]
    untyped = sum("task_type" not in e for e in tasks) / len(tasks)
    assert 0.2 < untyped < 0.4
    typed = [e for e in tasks if "task_type" in e]
    with_keyword = [e for e in typed if KEYWORDS[e["task_type"]] in e["objective"]]
    assert len(with_keyword) / len(typed) > 0.9
    assert any(not any(k in e["objective"] for k in KEYWORDS.values()) for e in tasks)


def test_cost_follows_tokens_and_price_and_is_null_for_the_local_model(tmp_path: Path) -> None:
    _, _, good = _classify(_generate(tmp_path, tasks_per_day=300).files)
    tasks = [e for e in good if e["event_type"] == "task"]
    local = [e for e in tasks if e["provider"] == "vllm"]
    assert local and all(e.get("cost_usd") is None for e in local)
    priced = [e for e in tasks if e["model"] == "gpt-4.1" and e.get("cost_usd") is not None]
    assert priced and all(e["cost_usd"] == round((e["input_tokens"] * 2 + e["output_tokens"] * 8) / 1e6, 6)
                          for e in priced)
    assert any("cost_usd" not in e for e in tasks)  # some left for the pipeline to compute


@pytest.mark.parametrize("file_format", ["csv", "parquet"])
def test_task_tables_hold_only_tasks_with_nested_fields_as_json(tmp_path: Path, file_format: str) -> None:
    summary = _generate(tmp_path, file_format=file_format)
    table = summary.files[0]
    if file_format == "csv":
        with table.open(newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
        missing: Any = ""
    else:
        rows = pq.read_table(table).to_pylist()
        missing = None
    assert {row["event_type"] for row in rows} == {"task"}
    reviews = [json.loads(row["code_review"]) for row in rows if row["code_review"] != missing]
    steps = [json.loads(row["steps"]) for row in rows if row["steps"] != missing]
    assert reviews and all(0 <= review["coverage"] <= 1 for review in reviews if review["coverage"] is not None)
    assert steps and all(2 <= len(nodes) <= 5 and nodes[0]["node"] == "plan" for nodes in steps)
    assert any(row["task_type"] == missing for row in rows)


def test_progress_is_reported_after_each_day(tmp_path: Path) -> None:
    calls: list[tuple[int, int]] = []
    _generate(tmp_path, progress=lambda done, total: calls.append((done, total)))
    assert calls == [(1, 3), (2, 3), (3, 3)]


@pytest.mark.skipif(usable_cpus() < 2, reason="needs two CPUs to run workers")
def test_parallel_generation_writes_the_same_bytes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sequential = _generate(tmp_path, "sequential", days=4)
    monkeypatch.setattr(generator, "_PARALLEL_MIN_TASKS", 0)
    parallel = _generate(tmp_path, "parallel", days=4)
    assert parallel == GenerationSummary(
        [tmp_path / "parallel" / p.name for p in sequential.files], sequential.events,
        sequential.malformed_lines, sequential.duplicate_lines, sequential.conflicting_lines)
    assert all(a.read_bytes() == b.read_bytes() for a, b in zip(sequential.files, parallel.files, strict=True))


def test_unknown_format_is_rejected_with_the_choices(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=re.escape("one of ('jsonl', 'jsonl.gz', 'csv', 'parquet'), got 'xml'")):
        _generate(tmp_path, file_format="xml")
