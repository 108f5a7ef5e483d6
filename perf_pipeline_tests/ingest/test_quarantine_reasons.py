"""Every quarantine reason: the line that earns it lands in quarantine, with its file, line, field and a
message naming the field; the good line beside it is loaded."""

from __future__ import annotations

import csv
import datetime as dt
from pathlib import Path

import pytest
import sqlalchemy as sa

from perf_pipeline.ingest.pipeline import IngestOptions, ingest_landing
from perf_pipeline.partitions import PARTITION_START
from perf_pipeline.validation.reasons import REASON_CODES
from perf_pipeline.warehouse.schema import quarantined_events, staged_events
from perf_pipeline_tests.events_factory import DROP, feedback, message, peer_evaluation, task, write_jsonl

TOMORROW_PLUS = (dt.datetime.now(dt.UTC) + dt.timedelta(days=3)).strftime("%Y-%m-%dT%H:%M:%SZ")

# code -> (the offending line, the field the reason names)
JSONL_CASES = {
    "not_utf8": (b'{"event_type": "task", "task_id": "caf\xe9"}', None),
    "invalid_json": ("this is not json", None),
    "not_an_object": ("[1, 2, 3]", None),
    "missing_event_type": ({"task_id": "t-x"}, "event_type"),
    "unknown_event_type": ({"event_type": "invoice", "id": 1}, "event_type"),
    "missing_required": (task("t-bad", agent_id=DROP), "agent_id"),
    "empty_value": (task("t-bad", provider=""), "provider"),
    "invalid_type": (task("t-bad", input_tokens="many"), "input_tokens"),
    "out_of_range": (task("t-bad", user_rating=7), "user_rating"),
    "invalid_enum": (task("t-bad", status="done"), "status"),
    "invalid_timestamp": (task("t-bad", completed_at="yesterday"), "completed_at"),
    "timestamp_without_offset": (task("t-bad", assigned_at="2026-03-01T09:00:00"), "assigned_at"),
    "timestamp_order": (task("t-bad", completed_at="2026-03-01T08:00:00Z"), "completed_at"),
    "self_review": (peer_evaluation("e-bad", evaluator_agent_id="agent-1"), "evaluated_agent_id"),
    "no_scores": (peer_evaluation("e-bad", accuracy=DROP, relevance=None, completeness=DROP), None),
    "outside_partitions": (task("t-bad", assigned_at="2020-01-01T00:00:00Z", started_at=DROP,
                                completed_at="2020-01-01T01:00:00Z"), "completed_at"),
}
CSV_CASES = {"malformed_csv_row", "unsupported_in_format"}
SPECIAL_CASES = {"truncated_line", "conflicting_duplicate"}


def ingest(engine: sa.Engine, landing: Path):
    return ingest_landing(engine, landing, IngestOptions(partition_start=PARTITION_START))


def quarantine_rows(engine: sa.Engine) -> list[dict]:
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(sa.select(quarantined_events)
                                                       .order_by(quarantined_events.c.line_number))]


def staged_ids(engine: sa.Engine) -> list[str]:
    with engine.connect() as conn:
        return sorted(conn.execute(sa.select(staged_events.c.event_id)).scalars())


def test_every_reason_code_has_a_case() -> None:
    assert set(JSONL_CASES) | CSV_CASES | SPECIAL_CASES == set(REASON_CODES)


@pytest.mark.parametrize("code", sorted(JSONL_CASES))
def test_a_bad_line_is_quarantined_with_its_reason(code: str, engine: sa.Engine, landing: Path) -> None:
    line, field = JSONL_CASES[code]
    path = write_jsonl(landing / "mixed.jsonl", [task("t-good"), line, feedback("f-good", task_id="t-good")])
    [result] = ingest(engine, landing).files
    assert (result.lines_read, result.loaded, result.quarantined, result.duplicates) == (3, 2, 1, 0)
    [row] = quarantine_rows(engine)
    assert row["source_file"] == str(path) and row["line_number"] == 2
    codes = [r["code"] for r in row["reasons"]]
    assert code in codes, row["reasons"]
    reason = next(r for r in row["reasons"] if r["code"] == code)
    assert reason["field"] == field
    if field:
        assert reason["message"].startswith(f"{field}: ") or field in reason["message"]
    assert staged_ids(engine) == ["f-good", "t-good"]


def test_a_record_with_several_faults_gets_every_reason(engine: sa.Engine, landing: Path) -> None:
    write_jsonl(landing / "a.jsonl", [task("t-bad", user_rating=9, status="done", input_tokens=-5,
                                           agent_id=DROP)])
    ingest(engine, landing)
    [row] = quarantine_rows(engine)
    assert {(r["code"], r["field"]) for r in row["reasons"]} == {
        ("out_of_range", "user_rating"), ("invalid_enum", "status"), ("out_of_range", "input_tokens"),
        ("missing_required", "agent_id")}
    assert row["reason_codes"].split(",") == list(dict.fromkeys(r["code"] for r in row["reasons"]))


def test_a_type_error_is_not_reported_again_as_missing(engine: sa.Engine, landing: Path) -> None:
    write_jsonl(landing / "a.jsonl", [task("t-bad", completed_at=12345)])
    ingest(engine, landing)
    [row] = quarantine_rows(engine)
    assert [(r["code"], r["field"]) for r in row["reasons"]] == [("invalid_timestamp", "completed_at")]


def test_a_truncated_last_line_is_quarantined_as_truncated(engine: sa.Engine, landing: Path) -> None:
    write_jsonl(landing / "a.jsonl", [task("t-good"), '{"event_type": "task", "task_id": "t-cut'],
                final_newline=False)
    [result] = ingest(engine, landing).files
    assert (result.loaded, result.quarantined) == (1, 1)
    [row] = quarantine_rows(engine)
    assert row["reason_codes"] == "truncated_line" and row["line_number"] == 2
    assert row["raw"] == '{"event_type": "task", "task_id": "t-cut'


def test_a_last_line_without_newline_that_parses_is_loaded(engine: sa.Engine, landing: Path) -> None:
    write_jsonl(landing / "a.jsonl", [task("t-1"), task("t-2")], final_newline=False)
    [result] = ingest(engine, landing).files
    assert (result.loaded, result.quarantined) == (2, 0)


def test_nested_step_faults_name_the_step(engine: sa.Engine, landing: Path) -> None:
    steps = [{"node": "plan", "tokens": 10}, {"node": "draft", "tokens": -1}, {"tokens": 3, "status": "lost"}]
    write_jsonl(landing / "a.jsonl", [task("t-bad", steps=steps, code_review={"coverage": 1.5})])
    ingest(engine, landing)
    [row] = quarantine_rows(engine)
    assert {(r["code"], r["field"]) for r in row["reasons"]} == {
        ("out_of_range", "steps[1].tokens"), ("missing_required", "steps[2].node"),
        ("invalid_enum", "steps[2].status"), ("out_of_range", "code_review.coverage")}


def test_conflicting_duplicates_in_one_file_are_both_quarantined(engine: sa.Engine, landing: Path) -> None:
    write_jsonl(landing / "a.jsonl", [task("t-1"), task("t-1", status="failed"), task("t-2")])
    [result] = ingest(engine, landing).files
    assert (result.loaded, result.quarantined, result.duplicates) == (1, 2, 0)
    rows = quarantine_rows(engine)
    assert [(r["line_number"], r["reason_codes"], r["event_id"]) for r in rows] == [
        (1, "conflicting_duplicate", "t-1"), (2, "conflicting_duplicate", "t-1")]


def test_future_events_are_outside_the_partitions(engine: sa.Engine, landing: Path) -> None:
    write_jsonl(landing / "a.jsonl", [message("m-future", sent_at=TOMORROW_PLUS)])
    ingest(engine, landing)
    [row] = quarantine_rows(engine)
    assert row["reason_codes"] == "outside_partitions"


def test_naive_timestamps_use_the_configured_time_zone(engine: sa.Engine, landing: Path) -> None:
    write_jsonl(landing / "a.jsonl", [task("t-1", assigned_at="2026-03-01T10:00:00", started_at=DROP,
                                           completed_at="2026-03-01T23:30:00")])
    ingest_landing(engine, landing, IngestOptions(partition_start=PARTITION_START,
                                                  default_timezone="Europe/Berlin"))
    assert quarantine_rows(engine) == []
    with engine.connect() as conn:
        row = conn.execute(sa.select(staged_events.c.partition_date, staged_events.c.payload)).one()
    assert str(row.partition_date)[:10] == "2026-03-01"  # 23:30 in Berlin is 22:30 UTC, the same day
    assert '"completed_at":"2026-03-01T22:30:00.000000Z"' in row.payload


def _write_csv(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


CSV_HEADER = ["task_id", "agent_id", "provider", "model", "assigned_at", "completed_at", "status", "input_tokens"]


def test_csv_rows_of_the_wrong_width_and_other_event_types(engine: sa.Engine, landing: Path) -> None:
    _write_csv(landing / "tasks.csv", [*CSV_HEADER, "event_type"], [
        ["t-1", "agent-1", "openai", "gpt", "2026-03-01T09:00:00Z", "2026-03-01T10:00:00Z", "success", "12", ""],
        ["t-2", "agent-1", "openai"],
        ["f-1", "agent-1", "openai", "gpt", "2026-03-01T09:00:00Z", "2026-03-01T10:00:00Z", "success", "1",
         "feedback"],
    ])
    [result] = ingest(engine, landing).files
    assert (result.lines_read, result.loaded, result.quarantined) == (3, 1, 2)
    rows = quarantine_rows(engine)
    assert [(r["line_number"], r["reason_codes"]) for r in rows] == [
        (3, "malformed_csv_row"), (4, "unsupported_in_format")]
    assert "3 cells, the header has 9" in rows[0]["reasons"][0]["message"]


@pytest.mark.parametrize("value", [1e300, 2**63, 10**400], ids=["1e300", "2**63", "10**400"])
def test_an_integer_beyond_64_bits_is_out_of_range(value: float | int, engine: sa.Engine, landing: Path) -> None:
    write_jsonl(landing / "a.jsonl", [
        task("t-good"), task("t-bad", input_tokens=value), task("t-step", steps=[{"node": "plan", "tokens": value}]),
        task("t-review", code_review={"lint_errors": value})])
    [result] = ingest(engine, landing).files
    assert (result.lines_read, result.loaded, result.quarantined) == (4, 1, 3)
    reasons = {row["event_id"]: row["reasons"] for row in quarantine_rows(engine)}
    assert {event_id: [(r["code"], r["field"]) for r in found] for event_id, found in reasons.items()} == {
        "t-bad": [("out_of_range", "input_tokens")], "t-step": [("out_of_range", "steps[0].tokens")],
        "t-review": [("out_of_range", "code_review.lint_errors")]}
    assert all(r["message"].startswith(f"{r['field']}: ") for found in reasons.values() for r in found)
    assert staged_ids(engine) == ["t-good"]


def test_an_integer_beyond_64_bits_in_csv_is_out_of_range(engine: sa.Engine, landing: Path) -> None:
    _write_csv(landing / "tasks.csv", CSV_HEADER, [
        ["t-1", "agent-1", "openai", "gpt", "2026-03-01T09:00:00Z", "2026-03-01T10:00:00Z", "success", "12"],
        ["t-2", "agent-1", "openai", "gpt", "2026-03-01T09:00:00Z", "2026-03-01T10:00:00Z", "success", "1e300"],
        ["t-3", "agent-1", "openai", "gpt", "2026-03-01T09:00:00Z", "2026-03-01T10:00:00Z", "success",
         str(2**63)],
    ])
    [result] = ingest(engine, landing).files
    assert (result.loaded, result.quarantined) == (1, 2)
    rows = quarantine_rows(engine)
    assert [(r["event_id"], [(x["code"], x["field"]) for x in r["reasons"]]) for r in rows] == [
        ("t-2", [("out_of_range", "input_tokens")]), ("t-3", [("out_of_range", "input_tokens")])]
    assert rows[0]["reasons"][0]["message"] == "input_tokens: \"1e300\" is outside the 64-bit integer range"


def test_invalid_and_offsetless_timestamps_in_one_column_each_get_their_reason(engine: sa.Engine,
                                                                              landing: Path) -> None:
    write_jsonl(landing / "a.jsonl", [task("t-naive", started_at="2026-03-01T09:01:00"),
                                      task("t-garbage", started_at="not a time"), task("t-good")])
    [result] = ingest(engine, landing).files
    assert (result.loaded, result.quarantined) == (1, 2)
    rows = {r["event_id"]: r["reason_codes"] for r in quarantine_rows(engine)}
    assert rows == {"t-naive": "timestamp_without_offset", "t-garbage": "invalid_timestamp"}
