"""The perf-pipeline command as a user runs it: help with examples, clear errors, the demo end to end."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

from perf_pipeline.cli import main
from perf_pipeline.warehouse.db import warehouse_engine

COMMAND = Path(sys.executable).with_name("perf-pipeline")  # the installed console script


def perf_pipeline(*args: str, env_home: Path, **env: str) -> subprocess.CompletedProcess:
    """The installed ``perf-pipeline`` command in a subprocess, with only PERF_HOME and ``env`` set."""
    environment = {"PERF_HOME": str(env_home), "PATH": str(Path(sys.executable).parent), **env}
    return subprocess.run([str(COMMAND), *args], capture_output=True, text=True, env=environment, timeout=600)


def count(url: str, table: str) -> int:
    with warehouse_engine(url).connect() as conn:
        return conn.execute(sa.text(f"select count(*) from {table}")).scalar_one()


@pytest.mark.slow
def test_run_builds_the_warehouse_that_perf_warehouse_url_names(warehouse_url: str, tmp_path: Path) -> None:
    """PERF_WAREHOUSE_URL set to a SQLite file and to the PostgreSQL server: the command ingests and
    builds every layer there, and nothing in the default warehouse under PERF_HOME."""
    home, landing = tmp_path / "home", tmp_path / "landing"
    generated = perf_pipeline("generate", "--out", str(landing), "--days", "3", "--agents", "3",
                              "--tasks-per-day", "12", env_home=home)
    assert generated.returncode == 0, generated.stderr
    done = perf_pipeline("run", env_home=home, PERF_WAREHOUSE_URL=warehouse_url, PERF_LANDING_DIR=str(landing))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "conservation holds" in done.stdout
    tasks = count(warehouse_url, "task_events")
    assert tasks >= 30 and count(warehouse_url, "task_scores") == tasks
    assert count(warehouse_url, "window_stats") > 0 and count(warehouse_url, "trends") > 0
    assert not (home / "warehouse.db").exists()
    again = perf_pipeline("run", env_home=home, PERF_WAREHOUSE_URL=warehouse_url, PERF_LANDING_DIR=str(landing))
    assert again.returncode == 0, again.stderr
    assert "no new files (3 already ingested)" in again.stdout


def test_a_bad_partition_start_is_named(tmp_path: Path) -> None:
    done = perf_pipeline("run", env_home=tmp_path, PERF_PARTITION_START="last monday")
    assert done.returncode == 1
    assert "PERF_PARTITION_START='last monday' is not a date like 2026-01-31" in done.stderr


@pytest.mark.parametrize("command", ["generate", "run", "demo"])
def test_every_command_has_help_with_examples(command: str, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    assert "examples:" in capsys.readouterr().out


def test_run_without_a_landing_folder_says_where_it_looked(perf_home: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["run"]) == 1
    error = capsys.readouterr().err
    assert f"landing folder {perf_home / 'landing'} does not exist" in error
    assert "PERF_LANDING_DIR" in error


def test_bad_dates_are_refused(perf_home: Path, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit):
        main(["run", "--start", "March 1st"])
    assert "is not a date like 2026-01-31" in capsys.readouterr().err


@pytest.mark.slow
def test_demo_builds_the_warehouse_and_a_second_run_ingests_nothing(tmp_path: Path) -> None:
    home = tmp_path / "home"
    first = perf_pipeline("demo", "--days", "3", "--agents", "4", "--tasks-per-day", "30", env_home=home)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "conservation holds" in first.stdout and "Where to look next" in first.stdout
    engine = warehouse_engine(f"sqlite:///{home / 'warehouse.db'}")
    with engine.connect() as conn:
        tasks = conn.execute(sa.text("select count(*) from task_events")).scalar_one()
        health = conn.execute(sa.text("select sum(unaccounted_lines) from v_ingest_health")).scalar_one()
    assert tasks > 60 and health == 0
    assert (home / "dagster" / "dagster.yaml").exists()  # the instance the UI shows
    again = perf_pipeline("run", env_home=home)
    assert again.returncode == 0, again.stderr
    assert "no new events" in again.stdout and "no new files (3 already ingested)" in again.stdout
