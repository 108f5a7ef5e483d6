"""The local instance's event log (``instance_storage.py``): Dagster's SQLite event log with its
connections kept. Same files as Dagster's default storage, readable by it at any time, a run's new
events streamed to the UI's watcher as they are written, a bounded number of open databases, and
nothing left open on files Dagster deletes."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from dagster import (
    AssetKey,
    BackfillPolicy,
    DagsterEventType,
    DagsterInstance,
    DailyPartitionsDefinition,
    asset,
    materialize,
)
from dagster._core.storage.event_log import SqliteEventLogStorage

from perf_pipeline.cli import ensure_dagster_home
from perf_pipeline.instance_storage import BATCH_SIZE_VARIABLE, KEPT_ENGINES, PooledSqliteEventLogStorage


@asset
def counted() -> int:
    return 1


@asset(partitions_def=DailyPartitionsDefinition(start_date="2026-01-01"),
       backfill_policy=BackfillPolicy.single_run())
def daily_counted() -> None:
    return None


RANGE_TAGS = {"dagster/asset_partition_range_start": "2026-01-01",
              "dagster/asset_partition_range_end": "2026-01-05"}


def _instance(home: Path, monkeypatch: pytest.MonkeyPatch) -> DagsterInstance:
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    return DagsterInstance.get()


def _project_instance(home: Path, monkeypatch: pytest.MonkeyPatch) -> DagsterInstance:
    """The instance ``perf-pipeline run`` makes in ``home``: the project's dagster.yaml, the storage added."""
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    ensure_dagster_home()
    return DagsterInstance.get()


def test_the_project_instance_keeps_the_default_event_log_files(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """An instance made with Dagster's default storage keeps its history under the project's
    dagster.yaml, and what the pooled storage writes Dagster's own storage reads, in another process."""
    home = tmp_path / "dagster"
    home.mkdir()
    with _instance(home, monkeypatch) as default:  # no dagster.yaml yet: Dagster's own storage
        assert type(default.event_log_storage) is SqliteEventLogStorage
        assert materialize([counted], instance=default).success
    with _project_instance(home, monkeypatch) as pooled:
        assert isinstance(pooled.event_log_storage, PooledSqliteEventLogStorage)
        assert Path(pooled.event_log_storage._base_dir) == home / "history" / "runs"
        # What `dagster dev` hands its webserver and daemon, and they their runs: the same folder,
        # whatever the environment of the process that rebuilds it.
        monkeypatch.delenv("DAGSTER_HOME")
        with DagsterInstance.from_ref(pooled.get_ref()) as rebuilt:
            assert Path(rebuilt.event_log_storage._base_dir) == home / "history" / "runs"
        monkeypatch.setenv("DAGSTER_HOME", str(home))
        assert len(pooled.fetch_materializations(AssetKey("counted"), limit=10).records) == 1
        for _ in range(2):
            assert materialize([counted], instance=pooled).success
        # Read while this process keeps its connections open, by Dagster's storage in another process.
        reader = ("from dagster._core.storage.event_log import SqliteEventLogStorage\n"
                  "from dagster import AssetKey\n"
                  f"storage = SqliteEventLogStorage({str(home / 'history' / 'runs')!r})\n"
                  "print(len(storage.fetch_materializations(AssetKey('counted'), limit=10).records))")
        read = subprocess.run([sys.executable, "-c", reader], capture_output=True, text=True, timeout=120, check=True)
        assert read.stdout.strip() == "3"


def test_open_databases_are_bounded_and_closed_before_dagster_deletes_them(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "dagster"
    with _project_instance(home, monkeypatch) as instance:
        storage = instance.event_log_storage
        runs = [materialize([counted], instance=instance).run_id for _ in range(KEPT_ENGINES + 3)]
        assert len(storage._engines) <= KEPT_ENGINES
        # Every run's events are there, those of runs whose engine was closed included.
        assert all(instance.all_logs(run_id) for run_id in runs)
        assert len(instance.fetch_materializations(AssetKey("counted"), limit=100).records) == len(runs)
        storage.wipe()
        assert set(storage._engines) <= {"index"}  # the runs' databases, deleted, have no engine left
        assert not list((home / "history" / "runs").glob(f"{runs[0]}.db*"))
        # Usable after a wipe: a new run writes a new database.
        assert materialize([counted], instance=instance).success
        assert len(instance.fetch_materializations(AssetKey("counted"), limit=100).records) == 1


def test_the_ui_watcher_sees_every_write_to_a_run_while_connections_stay_open(tmp_path: Path,
                                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """The webserver streams a run's events when its database file changes (Dagster's watchdog on
    <run_id>.db). The writing process and the watching one both keep their connections open, and each
    new event still reaches the watcher, within seconds."""
    home = tmp_path / "dagster"
    run_id = "a-watched-run"
    with _project_instance(home, monkeypatch) as writer:
        writer.report_engine_event("first", job_name="watched", run_id=run_id)
        watcher = PooledSqliteEventLogStorage(str(home / "history" / "runs"))  # as the webserver's
        assert len(watcher.get_logs_for_run(run_id)) == 1  # its connection to the run's database, kept
        seen: list[str] = []
        handler = lambda event, _cursor: seen.append(event.dagster_event.message)  # noqa: E731
        watcher.watch(run_id, None, handler)
        try:
            for k in range(3):
                writer.report_engine_event(f"event {k}", job_name="watched", run_id=run_id)
                deadline = time.monotonic() + 10
                while f"event {k}" not in seen and time.monotonic() < deadline:
                    time.sleep(0.05)
                assert f"event {k}" in seen, seen
        finally:
            watcher.end_watch(run_id, handler)
            watcher.dispose()


def test_a_range_runs_materializations_are_written_as_one_batch(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """The project instance turns on Dagster's event batches, and a range run's planned
    materializations and materializations (one per day) reach the storage as batches: each day's
    event is there, as Dagster's own storage reads it in another process."""
    monkeypatch.setenv(BATCH_SIZE_VARIABLE, "")  # recorded, so that the value the storage sets is undone
    monkeypatch.delenv(BATCH_SIZE_VARIABLE)
    home = tmp_path / "dagster"
    with _project_instance(home, monkeypatch) as instance:
        storage = instance.event_log_storage
        assert int(os.environ[BATCH_SIZE_VARIABLE]) > 1
        batches: list[tuple[list[DagsterEventType], int]] = []
        original_batch, original_after_commit = storage.store_event_batch, storage._after_commit
        commits: list[str] = []

        def recorded(events):
            before = len(commits)
            original_batch(events)
            batches.append(([event.dagster_event_type for event in events], len(commits) - before))

        def counted_commit(shard, conn, changes):
            commits.append(shard)
            original_after_commit(shard, conn, changes)

        monkeypatch.setattr(storage, "store_event_batch", recorded)
        monkeypatch.setattr(storage, "_after_commit", counted_commit)
        assert materialize([daily_counted], instance=instance, tags=RANGE_TAGS).success
        # The 5 days' materializations: one batch, one commit in the run's database and one in the index.
        assert ([DagsterEventType.ASSET_MATERIALIZATION] * 5, 2) in batches
        assert any(DagsterEventType.ASSET_MATERIALIZATION_PLANNED in kinds for kinds, _ in batches)
        records = instance.fetch_materializations(AssetKey("daily_counted"), limit=10).records
        assert sorted(record.partition_key for record in records) == [f"2026-01-0{d}" for d in range(1, 6)]
        reader = ("from dagster._core.storage.event_log import SqliteEventLogStorage\n"
                  "from dagster import AssetKey\n"
                  f"storage = SqliteEventLogStorage({str(home / 'history' / 'runs')!r})\n"
                  "records = storage.fetch_materializations(AssetKey('daily_counted'), limit=10).records\n"
                  "print(sorted(record.partition_key for record in records))")
        read = subprocess.run([sys.executable, "-c", reader], capture_output=True, text=True, timeout=120, check=True)
        assert read.stdout.strip() == str([f"2026-01-0{d}" for d in range(1, 6)])


def test_a_batch_that_fails_keeps_none_of_its_events(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A write failing midway through a batch rolls back the events written before it, in the run's
    database and in the index, so that Dagster's fallback (storing them one by one) stores each once."""
    home = tmp_path / "dagster"
    with _project_instance(home, monkeypatch) as instance:
        storage = instance.event_log_storage
        run_id = materialize([daily_counted], instance=instance, tags=RANGE_TAGS).run_id
        events = [event._replace(run_id="a-failing-batch") for event in instance.all_logs(run_id)
                  if event.dagster_event_type == DagsterEventType.ASSET_MATERIALIZATION]
        assert len(events) == 5
        original, stored = storage.store_event, []

        def failing_third(event):
            if len(stored) == 2:
                raise RuntimeError("disk full")
            original(event)
            stored.append(event)

        monkeypatch.setattr(storage, "store_event", failing_third)
        with pytest.raises(RuntimeError, match="disk full"):
            storage.store_event_batch(events)
        monkeypatch.undo()
        assert storage.get_logs_for_run("a-failing-batch") == []
        assert len(instance.fetch_materializations(AssetKey("daily_counted"), limit=20).records) == 5
        storage.store_event_batch(events)  # the storage is usable after the failure
        assert len(storage.get_logs_for_run("a-failing-batch")) == 5
        assert len(instance.fetch_materializations(AssetKey("daily_counted"), limit=20).records) == 10
