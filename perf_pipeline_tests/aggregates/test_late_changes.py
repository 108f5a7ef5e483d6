"""Late data: a day that changes after later days were built rebuilds the windows that hold it."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

from dagster import DagsterInstance

from perf_pipeline.orchestrate import reached, run_pipeline
from perf_pipeline.warehouse.schema import task_scores, window_stats
from perf_pipeline_tests.aggregates.test_aggregate_assets import AGGREGATE_TABLES, DAYS, FIRST, many_days
from perf_pipeline_tests.events_factory import task, write_jsonl
from perf_pipeline_tests.scoring.test_scoring_assets import resources, rows


def test_a_change_reaches_the_days_after_it_up_to_the_horizon() -> None:
    day = dt.date(2026, 1, 10)
    assert reached([day], 90, day + dt.timedelta(days=200))[-1] == day + dt.timedelta(days=89)
    assert reached([day, day + dt.timedelta(days=1)], 90, day + dt.timedelta(days=3)) == [
        day + dt.timedelta(days=k) for k in range(4)]
    assert reached([], 90, day) == []


def late_tasks(landing: Path) -> None:
    day = FIRST + dt.timedelta(days=2)
    write_jsonl(landing / "late.jsonl", [
        task(f"late-{n}", agent_id="agent-3", status="success", assigned_at=f"{day}T10:00:00Z",
             started_at=f"{day}T10:01:00Z", completed_at=f"{day}T11:0{n}:00Z", user_rating=5)
        for n in range(6)])


def test_a_late_file_for_an_old_day_leaves_the_aggregates_as_a_clean_run_would(tmp_path: Path) -> None:
    instance = DagsterInstance.ephemeral()
    incremental, clean = tmp_path / "incremental", tmp_path / "clean"
    for folder in (incremental, clean):
        folder.mkdir()
        many_days(folder)
    urls = {name: f"sqlite:///{tmp_path / name}.db" for name in ("incremental", "clean")}
    run_pipeline(landing=incremental, instance=instance, resources=resources(urls["incremental"], incremental),
                 echo=lambda _: None)
    late_tasks(incremental)  # day 3 changes after days 1..12 were built
    said: list[str] = []
    run_pipeline(landing=incremental, instance=instance, resources=resources(urls["incremental"], incremental),
                 echo=said.append)
    assert any("day(s) after 2026-03-03 rebuilt" in line for line in said), said
    shutil.copy(incremental / "late.jsonl", clean / "late.jsonl")
    run_pipeline(landing=clean, instance=instance, resources=resources(urls["clean"], clean), echo=lambda _: None)
    for table in (task_scores, *AGGREGATE_TABLES):  # later days' efficiency baselines hold the late tasks
        assert rows(urls["incremental"], table) == rows(urls["clean"], table), table.name
    last = FIRST + dt.timedelta(days=DAYS - 1)
    agents = {entity for kind, entity, day in rows(urls["incremental"], window_stats, "entity_type",
                                                    "entity_id", "as_of_date") if day == last and kind == "agent"}
    assert "agent-3" in agents  # the windows as of the last day hold the late day's tasks
