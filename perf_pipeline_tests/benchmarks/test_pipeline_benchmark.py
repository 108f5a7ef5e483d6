"""The pipeline benchmark, run as users run it: every figure is measured, and the SQL reference agrees
with the pipeline's windows."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

from perf_pipeline.warehouse.db import warehouse_engine
from perf_pipeline.warehouse.schema import window_stats

pytestmark = pytest.mark.slow

STAGES = ("ingest", "events", "scoring", "aggregates")  # among others: alerts, reports, automation and sensors


def test_pipeline_benchmark_times_every_stage_and_agrees_with_the_reference(tmp_path: Path) -> None:
    command = shutil.which("perf-pipeline", path=str(Path(sys.executable).parent)) or "perf-pipeline"
    out = tmp_path / "r.json"
    env = {**os.environ, "PERF_HOME": str(tmp_path / "home")}
    subprocess.run([command, "benchmark", "pipeline", "--agents", "5", "--days", "3", "--tasks-per-day", "40",
                    "--out", str(out), "--keep", str(tmp_path / "run")],
                   check=True, env=env, cwd=tmp_path, timeout=600, stdout=subprocess.DEVNULL)
    result = json.loads(out.read_text())

    # Each stage: the ingest, or the asset groups of a run (several when assets of several groups ran together).
    assert set(STAGES) <= {group for stage in result["stages"] for group in stage.split(" + ")}
    assert all(seconds > 0 for seconds in result["stages"].values())
    # The stages are every run perf-pipeline run launched, plus the time between them: the whole run.
    assert sum(result["stages"].values()) == pytest.approx(result["pipeline_seconds"])
    assert any(line.startswith("ingest_job") for line in result["run_list"])
    # The daily partitions start with the first generated day: no run builds a day before it.
    starts = [re.search(r" (\d{4}-\d\d-\d\d)", line) for line in result["run_list"] if line.startswith("daily_job")]
    assert starts and min(found.group(1) for found in starts) == result["first_day"]
    assert result["reference"]["seconds"] > 0
    assert result["reference"]["seconds"] == statistics.median(result["reference"]["runs_seconds"])
    assert len(result["reference"]["runs_seconds"]) == 3
    assert result["ratio_pipeline_to_reference"] == pytest.approx(
        result["pipeline_seconds"] / result["reference"]["seconds"])
    assert result["tasks"] == result["reference"]["tasks"] > 0
    assert result["tasks_per_second"] == pytest.approx(result["tasks"] / result["pipeline_seconds"])
    assert result["peak_memory_mib"]["pipeline_process_max_rss"] > 0
    if Path("/proc/self/stat").exists():
        assert result["peak_memory_mib"]["process_tree_pss"] > result["peak_memory_mib"]["pipeline_process_max_rss"] / 2

    last_day = result["last_day"]
    agent, reference = next((agent, window) for agent, window in sorted(result["agreement"]["reference_7d"].items())
                            if window["n_tasks"] >= 5)  # fewer: the pipeline says insufficient_data, no rate
    with warehouse_engine(result["warehouse"]).connect() as conn:
        stored = conn.execute(sa.select(window_stats.c.n_tasks, window_stats.c.success_rate).where(
            window_stats.c.entity_type == "agent", window_stats.c.entity_id == agent,
            window_stats.c.window_days == 7, window_stats.c.as_of_date == dt.date.fromisoformat(last_day))).one()
    assert stored.n_tasks == reference["n_tasks"]
    assert stored.success_rate == pytest.approx(reference["success_rate"], abs=1e-9)
    assert result["agreement"]["windows_compared"] > 0  # trends need 5 days: none over these 3
    assert result["agreement"]["differ"] == dict.fromkeys(result["agreement"]["differ"], 0)


def test_without_the_reference_the_pipeline_is_timed_alone(tmp_path: Path) -> None:
    command = shutil.which("perf-pipeline", path=str(Path(sys.executable).parent)) or "perf-pipeline"
    out = tmp_path / "r.json"
    done = subprocess.run([command, "benchmark", "pipeline", "--agents", "3", "--days", "2", "--tasks-per-day", "20",
                           "--out", str(out), "--no-reference"], env={**os.environ, "PERF_HOME": str(tmp_path / "h")},
                          cwd=tmp_path, timeout=600, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "reference (DuckDB)      not run (--no-reference)" in done.stdout
    result = json.loads(out.read_text())
    assert result["reference"] is None and result["agreement"] is None and result["ratio_pipeline_to_reference"] is None
    assert result["pipeline_seconds"] > 0 and result["tasks"] > 0


@pytest.mark.postgres
def test_the_pipeline_benchmark_runs_into_the_empty_warehouse_it_is_given(tmp_path: Path, postgres_url: str) -> None:
    """``--warehouse-url``: the pipeline's tables are in that warehouse, the figures name its backend
    and never its password; a warehouse holding tasks already, a URL that does not parse and a server
    that does not answer are refused with a message naming the option."""
    command = shutil.which("perf-pipeline", path=str(Path(sys.executable).parent)) or "perf-pipeline"
    url = sa.engine.make_url(postgres_url).set(password="not-a-real-secret")  # the server trusts: ignored
    given = url.render_as_string(hide_password=False)
    out = tmp_path / "r.json"
    env = {**os.environ, "PERF_HOME": str(tmp_path / "home")}
    done = subprocess.run([command, "benchmark", "pipeline", "--agents", "3", "--days", "2", "--tasks-per-day", "20",
                           "--out", str(out), "--no-reference", f"--warehouse-url={given}"],
                          env=env, cwd=tmp_path, timeout=600, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "warehouse: postgresql" in done.stdout
    assert "not-a-real-secret" not in done.stdout + done.stderr + out.read_text()
    result = json.loads(out.read_text())
    assert result["warehouse_backend"] == "postgresql"
    assert result["warehouse"] == url.render_as_string(hide_password=True)
    assert "***" in result["command"] and result["tasks"] > 0
    with warehouse_engine(postgres_url).connect() as conn:
        stored = conn.execute(sa.select(sa.func.count()).select_from(window_stats)).scalar_one()
    assert stored > 0  # the pipeline's rows are in the warehouse given

    refused = [
        (given, "the warehouse must be empty (a new database or schema)"),
        ("not a url", "error: --warehouse-url: Could not parse SQLAlchemy URL"),
        ("postgresql+psycopg://u@127.0.0.1:notaport/db", "error: --warehouse-url: invalid literal for int()"),
        (url.set(port=1).render_as_string(hide_password=False), "cannot connect"),
        (url.set(port=1, password=None).update_query_dict({"password": "not-a-real-secret"})
         .render_as_string(hide_password=False), "cannot connect"),
    ]
    for warehouse, message in refused:
        again = subprocess.run([command, "benchmark", "pipeline", "--agents", "3", "--days", "2", "--tasks-per-day",
                                "20", "--out", str(tmp_path / "again.json"), "--no-reference", "--warehouse-url",
                                warehouse], env=env, cwd=tmp_path, timeout=600, capture_output=True, text=True)
        assert again.returncode == 1 and message in again.stderr, again.stdout + again.stderr
        assert "not-a-real-secret" not in again.stdout + again.stderr
        assert not (tmp_path / "again.json").exists()
