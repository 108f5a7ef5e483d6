"""The local instance's event log (``instance_storage.py``): Dagster's SQLite event log with its
connections kept. Same files as Dagster's default storage, readable by it at any time, a run's new
events streamed to the UI's watcher as they are written, a bounded number of open databases, and
nothing left open on files Dagster deletes."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
from dagster import AssetKey, DagsterInstance, asset, materialize
from dagster._core.storage.event_log import SqliteEventLogStorage

from perf_pipeline.cli import ensure_dagster_home
from perf_pipeline.instance_storage import KEPT_ENGINES, PooledSqliteEventLogStorage


@asset
def counted() -> int:
    return 1


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
