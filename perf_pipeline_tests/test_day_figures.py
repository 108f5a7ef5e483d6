"""Per-day figures reach the Dagster UI as each day's, also when one run builds a range: each
partition's materialization holds the day's own figures, and the run's totals named as a range's."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from dagster import AssetKey, DagsterInstance, instance_for_test

from perf_pipeline.daily import RUN_KEYS
from perf_pipeline.definitions import build_definitions
from perf_pipeline.launcher import Launcher
from perf_pipeline.partitions import daily_partitions
from perf_pipeline_tests.events_factory import task, write_jsonl

DAYS = [dt.date(2026, 3, 1) + dt.timedelta(days=k) for k in range(3)]


def day_tasks(landing: Path) -> None:
    """1, 2 and 3 tasks on three days, all successful but one on the last day."""
    events = []
    for k, day in enumerate(DAYS):
        events += [task(f"t-{k}-{n}", completed_at=f"{day}T1{n}:00:00Z", status="failed" if (k, n) == (2, 0)
                        else "success", cost_usd=0.01 * (k + 1)) for n in range(k + 1)]
    write_jsonl(landing / "three.jsonl", events)


def day_figures(instance: DagsterInstance, key: str) -> dict[str, dict]:
    """The latest materialization's metadata of each partition of ``key``."""
    records = instance.fetch_materializations(AssetKey(key), limit=1000).records
    latest: dict[str, dict] = {}
    for record in sorted(records, key=lambda r: r.storage_id):
        materialization = record.asset_materialization
        latest[materialization.partition] = {name: value.value for name, value in materialization.metadata.items()}
    return latest


@pytest.mark.slow
def test_a_range_run_records_each_days_own_figures(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    landing = tmp_path / "landing"
    landing.mkdir()
    day_tasks(landing)
    monkeypatch.setenv("PERF_WAREHOUSE_URL", f"sqlite:///{tmp_path / 'warehouse.db'}")
    monkeypatch.setenv("PERF_LANDING_DIR", str(landing))
    defs = build_definitions()
    with instance_for_test() as instance:
        launcher = Launcher(defs, instance, echo=lambda _: None)
        launcher.tick("landing_sensor")
        launcher.execute("daily_job", None, DAYS[0].isoformat(), DAYS[-1].isoformat(), {})  # one run, 3 days
        tasks = day_figures(instance, "task_events")
        assert {day: figures["rows"] for day, figures in tasks.items()} == {
            "2026-03-01": 1, "2026-03-02": 2, "2026-03-03": 3}
        assert [tasks[day.isoformat()]["success_rate"] for day in DAYS] == [1.0, 1.0, round(2 / 3, 4)]
        assert [tasks[day.isoformat()]["total_cost_usd"] for day in DAYS] == [0.01, 0.04, 0.09]
        scores = day_figures(instance, "task_scores")
        assert [scores[day.isoformat()]["rows"] for day in DAYS] == [1, 2, 3]
        assert all(scores[day.isoformat()]["judge_cost_usd"] == 0.0 for day in DAYS)
        graph = defs.resolve_asset_graph()
        for key in graph.materializable_asset_keys:
            if graph.get(key).partitions_def == daily_partitions:  # the weekly report is not in daily_job
                figures = day_figures(instance, key.to_user_string())
                assert set(figures) == {d.isoformat() for d in DAYS}, key
                # Over several days the run's own figures are all named range_<name> (or are the
                # run's, such as partition_range): any other name is the day's.
                assert all(set(figures[d.isoformat()]) - RUN_KEYS - {n for n in figures[d.isoformat()]
                                                                     if n.startswith("range_")}
                           for d in DAYS), key
        # Each day's materialization: the day's own rows, and the range's total named so.
        assert [tasks[day.isoformat()]["range_rows"] for day in DAYS] == [6, 6, 6]
        assert {tasks[day.isoformat()]["partition_range"] for day in DAYS} == {"2026-03-01..2026-03-03"}
        # No event of their own: the figures ride on the materializations.
        assert not instance.fetch_observations(AssetKey("task_events"), limit=10).records
        per_day = instance.get_materialized_partitions(AssetKey("task_events"))
        assert per_day == {day.isoformat() for day in DAYS}
        staged_days = instance.fetch_materializations(AssetKey("staged_events"), limit=10).records
        assert {r.asset_materialization.partition: r.asset_materialization.metadata["task_events"].value
                for r in staged_days} == {"2026-03-01": 1, "2026-03-02": 2, "2026-03-03": 3}
