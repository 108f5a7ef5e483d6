"""The perf-pipeline command as a user runs it: help with examples, clear errors, the demo end to end."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

from perf_pipeline.cli import main
from perf_pipeline.warehouse.db import warehouse_engine


def perf_pipeline(*args: str, env_home: Path) -> subprocess.CompletedProcess:
    env = {"PERF_HOME": str(env_home), "PATH": str(Path(sys.executable).parent)}
    return subprocess.run([sys.executable, "-m", "perf_pipeline", *args], capture_output=True, text=True,
                          env=env, timeout=600)


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
    assert "no new events" in again.stdout and "3 already ingested" in again.stdout
