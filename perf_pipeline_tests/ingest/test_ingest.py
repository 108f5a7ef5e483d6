"""Ingest end to end: conservation, idempotency, duplicates across files and formats, unreadable files."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import sqlalchemy as sa

from perf_pipeline.ingest import pipeline as pipeline_module
from perf_pipeline.ingest.checks import conservation_violations
from perf_pipeline.ingest.pipeline import (
    IngestOptions,
    _Ingest,
    _Known,
    _plan,
    _unit_bytes,
    _Unreadable,
    discover,
    ingest_landing,
)
from perf_pipeline.partitions import PARTITION_START
from perf_pipeline.warehouse.db import warehouse_engine
from perf_pipeline.warehouse.schema import ingested_files, quarantined_events, staged_events
from perf_pipeline_tests.events_factory import feedback, message, peer_evaluation, task, write_jsonl

OPTIONS = IngestOptions(partition_start=PARTITION_START)


def ingest(engine: sa.Engine, landing: Path):
    return ingest_landing(engine, landing, OPTIONS)


def snapshot(engine: sa.Engine) -> dict[str, list[tuple]]:
    """Every row of the ingest tables, without the columns that record when (timestamps, run ids)."""
    tables = {
        "staged": sa.select(staged_events).order_by(staged_events.c.event_type, staged_events.c.event_id),
        "quarantined": sa.select(*[c for c in quarantined_events.c if c.name != "quarantined_at"]).order_by(
            quarantined_events.c.quarantine_id),
        "files": sa.select(*[c for c in ingested_files.c if c.name not in ("ingested_at", "run_id")]).order_by(
            ingested_files.c.file_id),
    }
    with engine.connect() as conn:
        return {name: [tuple(r) for r in conn.execute(query)] for name, query in tables.items()}


def mixed_lines() -> list:
    return [
        task("t-1"), task("t-1"),                                     # identical duplicate: skipped
        task("t-2"), task("t-2", output_tokens=999),                  # conflicting: both quarantined
        task("t-3", user_rating=0),                                   # bad: quarantined
        "{broken", feedback("f-1"), peer_evaluation("e-1"), message("m-1"),
        message("m-1"),                                               # identical duplicate
    ]


def test_conservation_on_good_bad_duplicate_and_conflicting_rows(engine: sa.Engine, landing: Path) -> None:
    write_jsonl(landing / "mixed.jsonl", mixed_lines())
    [result] = ingest(engine, landing).files
    assert (result.lines_read, result.loaded, result.quarantined, result.duplicates) == (10, 4, 4, 2)
    assert result.conserved
    with engine.connect() as conn:
        assert conservation_violations(conn) == []
        ledger = conn.execute(sa.select(ingested_files)).one()
    assert (ledger.lines_read, ledger.events_loaded, ledger.quarantined, ledger.duplicates_skipped) == (10, 4, 4, 2)


def test_reingesting_the_same_content_changes_nothing(engine: sa.Engine, landing: Path) -> None:
    write_jsonl(landing / "mixed.jsonl", mixed_lines())
    ingest(engine, landing)
    before = snapshot(engine)
    (landing / "copy-under-another-name.jsonl").write_bytes((landing / "mixed.jsonl").read_bytes())
    second = ingest(engine, landing)
    assert [f.status for f in second.files] == ["already_ingested", "already_ingested"]
    assert snapshot(engine) == before


def test_identical_event_in_a_later_file_is_a_skipped_duplicate(engine: sa.Engine, landing: Path) -> None:
    write_jsonl(landing / "a.jsonl", [task("t-1"), task("t-2")])
    ingest(engine, landing)
    write_jsonl(landing / "b.jsonl", [task("t-2"), task("t-3")])
    [_, result] = ingest(engine, landing).files
    assert (result.loaded, result.duplicates, result.quarantined) == (1, 1, 0)


def test_a_later_conflicting_copy_moves_the_staged_one_to_quarantine(engine: sa.Engine, landing: Path) -> None:
    write_jsonl(landing / "a.jsonl", [task("t-1"), task("t-2")])
    ingest(engine, landing)
    write_jsonl(landing / "b.jsonl", [task("t-2", status="failed")])
    report = ingest(engine, landing)
    assert report.affected["task"]  # the day of t-2 must be rebuilt
    with engine.connect() as conn:
        staged = conn.execute(sa.select(staged_events.c.event_id)).scalars().all()
        quarantined = conn.execute(sa.select(quarantined_events.c.source_file, quarantined_events.c.event_id,
                                             quarantined_events.c.reason_codes)
                                   .order_by(quarantined_events.c.source_file)).all()
        counts = conn.execute(sa.select(ingested_files.c.path, ingested_files.c.events_loaded,
                                        ingested_files.c.quarantined).order_by(ingested_files.c.path)).all()
        assert conservation_violations(conn) == []
    assert staged == ["t-1"]
    assert [(Path(s).name, i, c) for s, i, c in quarantined] == [
        ("a.jsonl", "t-2", "conflicting_duplicate"), ("b.jsonl", "t-2", "conflicting_duplicate")]
    assert [(Path(p).name, loaded, q) for p, loaded, q in counts] == [("a.jsonl", 1, 1), ("b.jsonl", 0, 1)]
    # a third copy that matches one of the quarantined ones is an identical duplicate; a new one conflicts
    write_jsonl(landing / "c.jsonl", [task("t-2", status="failed"), task("t-2", status="timeout")])
    [*_, third] = ingest(engine, landing).files
    assert (third.duplicates, third.quarantined, third.loaded) == (1, 1, 0)


def test_the_same_event_as_jsonl_csv_and_parquet_is_one_event(engine: sa.Engine, landing: Path) -> None:
    event = task("t-1", code_review={"lint_errors": 2, "tests_passed": 10, "tests_failed": 0, "coverage": 0.8},
                 steps=[{"node": "plan", "started_at": "2026-03-01T09:01:00Z",
                         "completed_at": "2026-03-01T09:05:00+00:00", "tokens": 50, "status": "success"}])
    write_jsonl(landing / "a.jsonl", [event])
    flat = {k: (json.dumps(v) if isinstance(v, dict | list) else v) for k, v in event.items()}
    pd.DataFrame([flat]).to_csv(landing / "b.csv", index=False)
    pd.DataFrame([flat]).to_parquet(landing / "c.parquet", index=False)
    report = ingest(engine, landing)
    assert [(f.loaded, f.duplicates, f.quarantined) for f in report.files] == [(1, 0, 0), (0, 1, 0), (0, 1, 0)]


def test_csv_and_parquet_values_are_typed(engine: sa.Engine, landing: Path) -> None:
    pd.DataFrame([task("t-1", input_tokens=None, extra_field="kept")]).to_csv(landing / "a.csv", index=False)
    pd.DataFrame([task("t-2", cost_usd=None)]).to_parquet(landing / "b.parquet", index=False)
    ingest(engine, landing)
    with engine.connect() as conn:
        payloads = dict(conn.execute(sa.select(staged_events.c.event_id, staged_events.c.payload)).all())
    one, two = json.loads(payloads["t-1"]), json.loads(payloads["t-2"])
    assert one["input_tokens"] is None and one["output_tokens"] == 300 and one["cost_usd"] == 0.012
    assert one["extra"] == {"extra_field": "kept"}
    assert two["cost_usd"] is None and two["input_tokens"] == 1200


def test_a_file_spanning_several_dates_stages_each_event_on_its_day(engine: sa.Engine, landing: Path) -> None:
    write_jsonl(landing / "a.jsonl", [
        task("t-1", completed_at="2026-03-01T23:59:59Z"),
        task("t-2", completed_at="2026-03-02T00:30:00+01:00"),  # 23:30 UTC on March 1st
        task("t-3", completed_at="2026-03-02T00:00:00Z"),
        feedback("f-1", created_at="2026-03-05T08:00:00Z"),
    ])
    report = ingest(engine, landing)
    with engine.connect() as conn:
        days = dict(conn.execute(sa.select(staged_events.c.event_id, staged_events.c.partition_date)).all())
    assert {k: str(v)[:10] for k, v in days.items()} == {
        "t-1": "2026-03-01", "t-2": "2026-03-01", "t-3": "2026-03-02", "f-1": "2026-03-05"}
    assert {k: sorted(str(d) for d in v) for k, v in report.affected.items()} == {
        "task": ["2026-03-01", "2026-03-02"], "feedback": ["2026-03-05"]}


def test_unknown_fields_are_kept(engine: sa.Engine, landing: Path) -> None:
    write_jsonl(landing / "a.jsonl", [task("t-1", trace_id="abc", code_review={"coverage": 0.5, "tool": "ruff"})])
    ingest(engine, landing)
    with engine.connect() as conn:
        payload = json.loads(conn.execute(sa.select(staged_events.c.payload)).scalar_one())
    assert payload["extra"] == {"code_review": {"tool": "ruff"}, "trace_id": "abc"}


def test_gzip_jsonl_is_read(engine: sa.Engine, landing: Path) -> None:
    with gzip.open(landing / "a.jsonl.gz", "wt") as handle:
        handle.write(json.dumps(task("t-1")) + "\n" + json.dumps(task("t-2")) + "\n")
    [result] = ingest(engine, landing).files
    assert (result.status, result.loaded) == ("ingested", 2)


def test_a_corrupt_gzip_file_fails_whole_with_a_message_and_is_retried(engine: sa.Engine, landing: Path) -> None:
    data = gzip.compress((json.dumps(task("t-1")) + "\n").encode() * 2000)
    (landing / "a.jsonl.gz").write_bytes(data[: len(data) // 2])
    [result] = ingest(engine, landing).files
    assert result.status == "failed"
    assert str(landing / "a.jsonl.gz") in result.error and "corrupt or still being written" in result.error
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(staged_events)).scalar_one() == 0
        assert conn.execute(sa.select(ingested_files.c.status)).scalars().all() == ["failed"]
    (landing / "a.jsonl.gz").write_bytes(gzip.compress((json.dumps(task("t-1")) + "\n").encode()))
    [retried] = ingest(engine, landing).files
    assert (retried.status, retried.loaded) == ("ingested", 1)


def test_a_file_of_garbage_bytes_is_quarantined_line_by_line(engine: sa.Engine, landing: Path) -> None:
    (landing / "garbage.jsonl").write_bytes(bytes(range(256)) * 40 + b"\n\xff\xfe\x00binary\n")
    [result] = ingest(engine, landing).files
    assert result.status == "ingested" and result.loaded == 0
    assert result.quarantined == result.lines_read > 0
    assert set(result.reason_counts) <= {"not_utf8", "invalid_json", "truncated_line"}


def test_an_unreadable_file_is_recorded_as_failed(engine: sa.Engine, landing: Path) -> None:
    (landing / "unreadable.jsonl").symlink_to("/proc/self/mem")  # reading it fails even for root
    write_jsonl(landing / "good.jsonl", [task("t-1")])
    results = {Path(f.path).name: f for f in ingest(engine, landing).files}
    assert results["good.jsonl"].loaded == 1
    assert results["unreadable.jsonl"].status == "failed"
    assert "unreadable.jsonl: cannot read" in results["unreadable.jsonl"].error


def test_a_missing_landing_folder_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"landing folder .*nowhere does not exist.*PERF_LANDING_DIR"):
        discover(tmp_path / "nowhere")


def test_files_that_are_not_logs_are_ignored_and_listed(engine: sa.Engine, landing: Path) -> None:
    write_jsonl(landing / "a.jsonl", [task("t-1")])
    (landing / "notes.txt").write_text("hello")
    (landing / "b.jsonl.part").write_text("half written")
    report = ingest(engine, landing)
    assert [Path(f.path).name for f in report.files] == ["a.jsonl"]
    assert sorted(Path(p).name for p in report.ignored) == ["b.jsonl.part", "notes.txt"]


def test_blank_lines_are_counted_apart(engine: sa.Engine, landing: Path) -> None:
    write_jsonl(landing / "a.jsonl", [task("t-1"), "", "   ", task("t-2")])
    [result] = ingest(engine, landing).files
    assert (result.lines_read, result.blank_lines, result.loaded) == (2, 2, 2)


def test_small_files_are_batched_so_that_the_workers_share_them(engine: sa.Engine, landing: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("perf_pipeline.ingest.pipeline.MIN_UNIT_BYTES", 1)
    monkeypatch.setattr("perf_pipeline.ingest.pipeline.STREAM_BYTES", 3000)
    for number in (0, 1, 2, 3, 4, 6, 7):  # files of the same size
        write_jsonl(landing / f"{number:02d}.jsonl", [task(f"t-{number}-{i}") for i in range(3)])
    (landing / "03z.jsonl").write_bytes((landing / "03.jsonl").read_bytes())  # a copy: known, in no batch
    write_jsonl(landing / "05.jsonl", [task(f"t-5-{i}") for i in range(20)])  # large: streamed alone
    files, _ = discover(landing)
    plan = _plan(engine, files)
    # 8 small files (the copy counts: it is in the folder) in 4 batches: a batch closes at 2 files.
    assert [(type(action).__name__, [f.path.name for f in action.files] if isinstance(action, _Ingest)
             else action.path.name, getattr(action, "streaming", None)) for action in plan] == [
        ("_Ingest", ["00.jsonl", "01.jsonl"], False), ("_Ingest", ["02.jsonl", "03.jsonl"], False),
        ("_Known", "03z.jsonl", None), ("_Ingest", ["04.jsonl"], False), ("_Ingest", ["05.jsonl"], True),
        ("_Ingest", ["06.jsonl", "07.jsonl"], False)]


@pytest.mark.parametrize(("small_bytes", "expected"), [
    (150_000_000, 37_500_000), (10_000, 16 * 2**20), (0, 16 * 2**20), (2_000_000_001, 500_000_001)])
def test_a_batch_closes_at_a_quarter_of_the_folder_or_16_mib(small_bytes: int, expected: int) -> None:
    assert _unit_bytes(small_bytes) == expected


def _repeating_files(landing: Path) -> None:
    """6 files, each repeating, conflicting with and extending the ones before it."""
    lines = mixed_lines()
    for number in range(6):
        write_jsonl(landing / f"{number:02d}.jsonl", [*lines[number:], task(f"t-new-{number}"), task("t-4")])


def test_the_staged_events_do_not_depend_on_how_files_are_batched(tmp_path: Path, landing: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """Repeats, conflicts and bad lines across files, screened in one batch or a batch per file,
    stage the same events, every line accounted for. (Which copy of a line repeated in several
    files is quarantined, and which counted as its duplicate, follows the batches, as it follows
    the ingests when the files arrive one by one.)"""
    _repeating_files(landing)
    planned: list[list[_Known | _Unreadable | _Ingest]] = []

    def recorded(*args: Any) -> list[_Known | _Unreadable | _Ingest]:
        planned.append(_plan(*args))
        return planned[-1]

    monkeypatch.setattr("perf_pipeline.ingest.pipeline._plan", recorded)
    monkeypatch.setattr("perf_pipeline.ingest.pipeline.MIN_UNITS", 100)
    staged = []
    for name, min_bytes, batches in (("one-batch", 10**9, 1), ("a-batch-per-file", 1, 6)):
        monkeypatch.setattr("perf_pipeline.ingest.pipeline.MIN_UNIT_BYTES", min_bytes)
        engine = warehouse_engine(f"sqlite:///{tmp_path / name}.db")
        report = ingest(engine, landing)
        assert sum(isinstance(action, _Ingest) for action in planned[-1]) == batches
        assert all(result.conserved for result in report.files)
        with engine.connect() as conn:
            assert conservation_violations(conn) == []
        staged.append(snapshot(engine)["staged"])
        engine.dispose()
    assert staged[0] == staged[1] and len(staged[0]) == 11  # t-1, t-4, t-new-0..5, f-1, e-1, m-1


def test_a_crash_between_batches_and_a_rerun_give_the_clean_runs_warehouse(
        tmp_path: Path, landing: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The first batch committed, the second crashing: the re-run cuts the remaining files into the
    batches the clean run made (the files already ingested still count), so every table, the
    quarantine and the files' counts included, is the clean run's."""
    _repeating_files(landing)
    monkeypatch.setattr("perf_pipeline.ingest.pipeline.MIN_UNIT_BYTES", 1)  # 6 files, 4 batches or so
    clean = warehouse_engine(f"sqlite:///{tmp_path / 'clean'}.db")
    ingest(clean, landing)
    expected = snapshot(clean)
    clean.dispose()

    batches = pipeline_module._ingest_batch
    calls: list[int] = []

    def crashing(*args: Any, **kwargs: Any) -> list:
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("the machine went down")
        return batches(*args, **kwargs)

    engine = warehouse_engine(f"sqlite:///{tmp_path / 'crashed'}.db")
    monkeypatch.setattr("perf_pipeline.ingest.pipeline._ingest_batch", crashing)
    with pytest.raises(RuntimeError, match="went down"):
        ingest(engine, landing)
    monkeypatch.setattr("perf_pipeline.ingest.pipeline._ingest_batch", batches)
    with engine.connect() as conn:
        assert 0 < conn.execute(sa.select(sa.func.count()).select_from(ingested_files)).scalar() < 6
    ingest(engine, landing)
    assert snapshot(engine) == expected
    engine.dispose()
