"""The perf-pipeline command as a user runs it: help with examples, clear errors, the demo end to end."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from perf_pipeline.cli import main
from perf_pipeline.warehouse.db import warehouse_engine
from perf_pipeline_tests.events_factory import task, write_jsonl
from perf_pipeline_tests.fakes.openai_server import FakeOpenAIServer

COMMAND = Path(sys.executable).with_name("perf-pipeline")  # the installed console script
ROOT = Path(__file__).resolve().parents[1]


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


def test_a_range_before_the_first_partition_is_refused(perf_home: Path, capsys: pytest.CaptureFixture,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    (perf_home / "landing").mkdir(parents=True)
    monkeypatch.setenv("PERF_PARTITION_START", "2026-03-01")
    assert main(["run", "--start", "2026-02-20", "--end", "2026-03-02"]) == 1
    assert "--start 2026-02-20 is before the first partition 2026-03-01 (PERF_PARTITION_START)" in (
        capsys.readouterr().err)


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


@pytest.mark.slow
def test_run_honours_every_documented_variable(tmp_path: Path) -> None:
    """The judge's, the configuration's, the time zone's and the first partition's variables, set for
    the installed command: each changes what the warehouse holds as the README says."""
    home, landing = tmp_path / "home", tmp_path / "landing"
    landing.mkdir()
    # Yesterday, so that the days depending on it end today; the first partition two days ago.
    today = dt.datetime.now(dt.UTC).date()
    day, early, first = (today - dt.timedelta(days=n) for n in (1, 5, 2))
    write_jsonl(landing / "logs.jsonl", [
        task("t-1", completed_at=f"{day}T10:00:00Z", output="patched the parser"),
        task("t-naive", assigned_at=f"{day}T09:00:00", started_at=f"{day}T09:01:00",
             completed_at=f"{day}T09:30:00", output="no offset on these times"),
        task("t-early", assigned_at=f"{early}T09:00:00Z", started_at=f"{early}T09:01:00Z",
             completed_at=f"{early}T09:30:00Z"),
    ])
    config = tmp_path / "scoring.yaml"
    config.write_text("overall:\n  weights: {quality: 1.0}\n")
    aggregates = tmp_path / "aggregates.yaml"
    aggregates.write_text("windows: [3]\n")
    server = FakeOpenAIServer.start()
    try:
        done = perf_pipeline("run", env_home=home, PERF_LANDING_DIR=str(landing), PERF_PARTITION_START=str(first),
                             PERF_DEFAULT_TIMEZONE="Europe/Paris", PERF_SCORING_CONFIG=str(config),
                             PERF_AGGREGATES_CONFIG=str(aggregates),
                             OPENAI_API_KEY="sk-test-from-the-environment", OPENAI_BASE_URL=server.url,
                             PERF_JUDGE_MODEL="judge-from-the-environment")
        assert done.returncode == 0, done.stdout + done.stderr
        assert server.requests and all(r.body["model"] == "judge-from-the-environment" for r in server.requests)
        assert all(r.headers["authorization"] == "Bearer sk-test-from-the-environment" for r in server.requests)
    finally:
        server.close()
    assert "sk-test-from-the-environment" not in done.stdout + done.stderr
    url = f"sqlite:///{home / 'warehouse.db'}"
    with warehouse_engine(url).connect() as conn:
        judged = conn.execute(sa.text("select task_id, judge_model from llm_judgements order by task_id")).all()
        weights = conn.execute(sa.text("select distinct weights_used from task_scores")).scalars().all()
        windows = conn.execute(sa.text("select distinct window_days from window_stats")).scalars().all()
        naive = conn.execute(sa.text("select completed_at from task_events where task_id = 't-naive'")).scalar_one()
        early = conn.execute(sa.text("select reason_codes from quarantined_events where event_id = 't-early'")
                             ).scalar_one()
    assert judged == [("t-1", "judge-from-the-environment"), ("t-naive", "judge-from-the-environment")]
    assert len(weights) == 1 and "efficiency" not in str(weights[0])  # the file's overall weights
    assert windows == [3]  # the aggregates file's windows
    paris = dt.datetime.fromisoformat(f"{day}T09:30:00").replace(tzinfo=ZoneInfo("Europe/Paris"))
    assert str(naive).startswith(paris.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S"))
    assert "outside_partitions" in early


def test_the_daily_schedule_time_reaches_the_code_location(tmp_path: Path) -> None:
    """PERF_DAILY_SCHEDULE_TIME, as Dagster's own command sees the definitions."""
    dagster = Path(sys.executable).with_name("dagster")
    env = {"PATH": str(Path(sys.executable).parent), "DAGSTER_HOME": str(tmp_path),
           "PERF_DAILY_SCHEDULE_TIME": "04:15", "PERF_SENSOR_SECONDS": "7"}
    done = subprocess.run([str(dagster), "schedule", "list", "-w", str(ROOT / "workspace.yaml")], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Schedule: daily_schedule [RUNNING]" in done.stdout and "Cron Schedule: 15 4 * * *" in done.stdout


def test_silences_are_added_listed_and_expired_from_the_command_line(tmp_path: Path) -> None:
    home = tmp_path / "home"
    rules = tmp_path / "alerts.yaml"
    rules.write_text("rules:\n  - name: slow_agents\n    severity: warning\n    entity_types: [agent]\n"
                     "    window_days: 7\n"
                     "    condition: {kind: threshold, metric: p95_response_time_ms, above: 9000}\n")
    env = {"PERF_ALERTS_CONFIG": str(rules)}
    unknown = perf_pipeline("silence", "add", "--rule", "low_success_rate", "--until", "2h", "--reason", "x",
                            env_home=home, **env)
    assert unknown.returncode == 1 and "the rules are: slow_agents" in unknown.stderr  # the file's rules
    added = perf_pipeline("silence", "add", "--rule", "slow_agents", "--entity", "agent-07", "--until", "3d",
                          "--reason", "retraining, known", env_home=home, **env)
    assert added.returncode == 0, added.stderr
    assert added.stdout.startswith("silence 1: slow_agents for agent-07 until ")
    listed = perf_pipeline("silence", "list", env_home=home, **env)
    assert "slow_agents" in listed.stdout and "retraining, known" in listed.stdout
    past = perf_pipeline("silence", "add", "--rule", "slow_agents", "--until", "2020-01-01T00:00+02:00",
                         "--reason", "x", env_home=home, **env)
    assert past.returncode == 1 and "--until 2019-12-31T22:00:00+00:00 is not in the future" in past.stderr
    assert perf_pipeline("silence", "expire", "1", env_home=home, **env).returncode == 0
    assert "no active silences" in perf_pipeline("silence", "list", env_home=home, **env).stdout
    assert "retraining, known" in perf_pipeline("silence", "list", "--all", env_home=home, **env).stdout
    again = perf_pipeline("silence", "expire", "1", env_home=home, **env)
    assert again.returncode == 1 and "silence 1 was already expired" in again.stderr
    alerts = perf_pipeline("query", "alerts", env_home=home, **env)
    assert alerts.returncode == 0 and "(no rows)" in alerts.stdout
