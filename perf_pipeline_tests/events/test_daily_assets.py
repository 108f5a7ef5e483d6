"""The Dagster assets, materialized for real: ingest, then daily partitions, on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import io
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa
from dagster import materialize

from perf_pipeline.events.assets import DAILY_EVENT_ASSETS, objective_templates_asset
from perf_pipeline.events.transform import LINEAGE, read_staged
from perf_pipeline.ingest.assets import ingest_landing_files
from perf_pipeline.ingest.checks import ingest_conservation
from perf_pipeline.launcher import RANGE_END_TAG, RANGE_START_TAG
from perf_pipeline.resources import LandingZoneResource, WarehouseResource
from perf_pipeline.synthetic.generator import generate_logs
from perf_pipeline.warehouse.chunks import uses_workers
from perf_pipeline.warehouse.db import warehouse_engine
from perf_pipeline.warehouse.schema import EVENT_TABLES, objective_templates, staged_events, task_steps
from perf_pipeline_tests.events_factory import DROP, feedback, message, peer_evaluation, task, write_jsonl

DAYS = ["2026-03-01", "2026-03-02", "2026-03-03"]


def resources(url: str, landing: Path) -> dict[str, object]:
    return {"warehouse": WarehouseResource(url=url), "landing": LandingZoneResource(path=str(landing))}


def ingest(url: str, landing: Path):
    result = materialize([ingest_landing_files, objective_templates_asset, ingest_conservation],
                         resources=resources(url, landing))
    assert result.success
    return result


def build(url: str, landing: Path, *, day: str | None = None, first: str | None = None, last: str | None = None):
    tags = {RANGE_START_TAG: first, RANGE_END_TAG: last} if first else None
    result = materialize(DAILY_EVENT_ASSETS, partition_key=day, tags=tags, resources=resources(url, landing))
    assert result.success
    return result


def table_rows(url: str, table: sa.Table) -> list[tuple]:
    key = [c for c in table.primary_key.columns]
    with warehouse_engine(url).connect() as conn:
        return [tuple(r) for r in conn.execute(sa.select(table).order_by(*key))]


def three_day_file(landing: Path) -> None:
    write_jsonl(landing / "logs.jsonl", [
        task("t-1", completed_at="2026-03-01T10:00:00Z", task_type=DROP, objective="Fix the crash on login",
             steps=[{"node": "plan", "started_at": "2026-03-01T09:01:00Z", "completed_at": "2026-03-01T09:02:30Z",
                     "tokens": 40, "status": "success"}, {"node": "draft", "tokens": None}]),
        task("t-2", completed_at="2026-03-02T00:30:00+02:00", task_type=DROP, objective="Say hello",
             output_tokens=None),
        task("t-3", completed_at="2026-03-02T10:00:00Z", task_type="research"),
        task("t-4", assigned_at="2026-03-03T09:00:00Z", started_at=DROP, completed_at="2026-03-03T11:00:00Z"),
        feedback("f-1", task_id="t-1", created_at="2026-03-03T08:00:00Z"),
        peer_evaluation("e-1", task_id="t-1", created_at="2026-03-02T08:00:00Z"),
        message("m-1", sent_at="2026-03-01T09:10:00Z"),
    ])


def test_each_partition_holds_the_events_of_its_utc_day(warehouse_url: str, landing: Path) -> None:
    three_day_file(landing)
    ingest(warehouse_url, landing)
    result = build(warehouse_url, landing, day="2026-03-01")
    tasks = {r[0]: r for r in table_rows(warehouse_url, EVENT_TABLES["task"])}
    assert sorted(tasks) == ["t-1", "t-2"]  # t-2 completed 22:30 UTC on March 1st
    checks = result.get_asset_check_evaluations()
    assert checks and all(c.passed for c in checks)
    build(warehouse_url, landing, day="2026-03-02")
    build(warehouse_url, landing, day="2026-03-03")
    assert [r[0] for r in table_rows(warehouse_url, EVENT_TABLES["task"])] == ["t-1", "t-2", "t-3", "t-4"]
    assert [r[0] for r in table_rows(warehouse_url, EVENT_TABLES["feedback"])] == ["f-1"]
    assert [r[0] for r in table_rows(warehouse_url, EVENT_TABLES["peer_evaluation"])] == ["e-1"]
    assert [r[0] for r in table_rows(warehouse_url, EVENT_TABLES["message"])] == ["m-1"]


def test_task_rows_are_typed_classified_and_derived(warehouse_url: str, landing: Path) -> None:
    three_day_file(landing)
    ingest(warehouse_url, landing)
    build(warehouse_url, landing, first=DAYS[0], last=DAYS[-1])
    table = EVENT_TABLES["task"]
    with warehouse_engine(warehouse_url).connect() as conn:
        rows = {r.task_id: r for r in conn.execute(sa.select(table))}
        steps = conn.execute(sa.select(task_steps).order_by(task_steps.c.step_index)).all()
    assert (rows["t-1"].task_type, rows["t-1"].task_type_source) == ("bug_fix", "template")
    assert (rows["t-2"].task_type, rows["t-2"].task_type_source) == ("uncategorized", "default")
    assert (rows["t-3"].task_type, rows["t-3"].task_type_source) == ("research", "reported")
    assert rows["t-1"].total_tokens == 1500 and rows["t-2"].total_tokens is None  # unknown, not 1200
    assert rows["t-4"].completion_time_s == pytest.approx(7200.0)
    assert rows["t-1"].step_count == 2
    assert [(s.node, s.tokens, s.duration_s) for s in steps] == [("plan", 40, pytest.approx(90.0)),
                                                                 ("draft", None, None)]


def test_rerunning_a_partition_changes_nothing(warehouse_url: str, landing: Path) -> None:
    three_day_file(landing)
    ingest(warehouse_url, landing)
    build(warehouse_url, landing, day="2026-03-02")
    before = {t.name: table_rows(warehouse_url, t) for t in [*EVENT_TABLES.values(), task_steps]}
    build(warehouse_url, landing, day="2026-03-02")
    ingest(warehouse_url, landing)
    assert {t.name: table_rows(warehouse_url, t) for t in [*EVENT_TABLES.values(), task_steps]} == before


def range_and_days_tables(tmp_path: Path, landing: Path) -> tuple[dict, dict]:
    """The event tables of the three days built as one range run, and built one day at a time."""
    three_day_file(landing)
    by_range, by_day = (f"sqlite:///{tmp_path / name}.db" for name in ("range", "day"))
    for url in (by_range, by_day):
        ingest(url, landing)
    build(by_range, landing, first=DAYS[0], last=DAYS[-1])
    for day in DAYS:
        build(by_day, landing, day=day)
    return tuple({table.name: table_rows(url, table) for table in [*EVENT_TABLES.values(), task_steps]}
                 for url in (by_range, by_day))


def test_a_backfill_in_one_run_equals_day_by_day(tmp_path: Path, landing: Path) -> None:
    by_range, by_day = range_and_days_tables(tmp_path, landing)
    for name in by_range:
        assert by_range[name] == by_day[name], name


def test_a_range_cut_into_chunks_equals_day_by_day(tmp_path: Path, landing: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("perf_pipeline.daily.CHUNK_DAYS", 2)  # 3 days: chunks of 2 days and 1 day
    by_range, by_day = range_and_days_tables(tmp_path, landing)
    for name in by_range:
        assert by_range[name] == by_day[name], name
        assert by_range[name], name  # every table has rows to compare


def test_a_range_cut_by_worker_processes_equals_day_by_day(tmp_path: Path, landing: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("perf_pipeline.daily.CHUNK_DAYS", 1)  # 3 chunks: workers cut them (warehouse/chunks.py)
    monkeypatch.setattr("perf_pipeline.settings.usable_cpus", lambda: 2)
    assert uses_workers(f"sqlite:///{tmp_path / 'range.db'}", len(DAYS))
    by_range, by_day = range_and_days_tables(tmp_path, landing)
    for name in by_range:
        assert by_range[name] == by_day[name], name
        assert by_range[name], name


def test_a_late_conflicting_copy_removes_the_task_when_its_day_is_rebuilt(warehouse_url: str, landing: Path) -> None:
    three_day_file(landing)
    ingest(warehouse_url, landing)
    build(warehouse_url, landing, first=DAYS[0], last=DAYS[-1])
    write_jsonl(landing / "late.jsonl", [task("t-3", completed_at="2026-03-02T10:00:00Z", status="failed")])
    result = ingest(warehouse_url, landing)
    changed = {m.materialization.partition: m.materialization.metadata
               for m in result.get_asset_materialization_events() if m.asset_key.to_user_string() == "staged_events"}
    assert list(changed) == ["2026-03-02"]  # the day the conflict removed a task from
    assert changed["2026-03-02"]["changed_event_types"].value == "task"
    assert changed["2026-03-02"]["task_events"].value == 0  # its only task had conflicting copies: none is kept
    build(warehouse_url, landing, day="2026-03-02")
    assert "t-3" not in [r[0] for r in table_rows(warehouse_url, EVENT_TABLES["task"])]


def test_a_user_template_overrides_the_defaults(warehouse_url: str, landing: Path) -> None:
    three_day_file(landing)
    ingest(warehouse_url, landing)
    with warehouse_engine(warehouse_url).begin() as conn:
        conn.execute(objective_templates.insert().values(template_id="greeting", task_type="small_talk",
                                                         pattern=r"\bhello\b", priority=1, source="user"))
    ingest(warehouse_url, landing)  # re-seeding keeps user rows
    build(warehouse_url, landing, day="2026-03-01")
    with warehouse_engine(warehouse_url).connect() as conn:
        kind = conn.execute(sa.select(EVENT_TABLES["task"].c.task_type)
                            .where(EVENT_TABLES["task"].c.task_id == "t-2")).scalar_one()
    assert kind == "small_talk"


def test_a_missing_landing_folder_fails_the_asset_with_its_path(tmp_path: Path) -> None:
    result = materialize([ingest_landing_files], raise_on_error=False,
                         resources=resources(f"sqlite:///{tmp_path / 'w.db'}", tmp_path / "missing"))
    assert not result.success
    [failure] = [e for e in result.all_events if e.is_step_failure]
    assert "missing does not exist" in failure.step_failure_data.user_failure_data.description


def _read_json_reference(conn, event_type: str, first: dt.date, last: dt.date) -> pd.DataFrame:
    """``read_staged`` as it was: the day's payloads parsed by ``pandas.read_json`` in one go."""
    query = (sa.select(staged_events.c.payload, staged_events.c.partition_date,
                       *[staged_events.c[c] for c in LINEAGE])
             .where(staged_events.c.event_type == event_type, staged_events.c.partition_date.between(first, last))
             .order_by(staged_events.c.partition_date, staged_events.c.event_id))
    rows = conn.execute(query).all()
    payloads = pd.read_json(io.StringIO("\n".join(r.payload for r in rows)), lines=True, dtype=False,
                            precise_float=True)
    lineage = pd.DataFrame([r[1:] for r in rows], columns=["partition_date", *LINEAGE])
    return pd.concat([payloads, lineage], axis=1)


def test_staged_payloads_parse_as_pandas_read_json_did(warehouse_url: str, landing: Path) -> None:
    """Synthetic logs with every kind of odd line (missing optional fields, nulls, nested steps,
    extra fields, offsets): each event type's staged payloads give the frame read_json gave."""
    generate_logs(landing, start=dt.date(2026, 3, 1), days=3, agents=6, tasks_per_day=120, malformed_rate=0.05)
    three_day_file(landing)
    ingest(warehouse_url, landing)
    with warehouse_engine(warehouse_url).connect() as conn:
        first, last = dt.date(2026, 2, 27), dt.date(2026, 3, 5)
        for event_type in EVENT_TABLES:
            new, old = read_staged(conn, event_type, first, last), _read_json_reference(conn, event_type, first, last)
            assert len(new) > 0, event_type
            pd.testing.assert_frame_equal(new, old, check_exact=True)
