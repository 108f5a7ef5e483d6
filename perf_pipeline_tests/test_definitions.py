"""The Dagster code location loads the way `dagster dev -w workspace.yaml` loads it."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from dagster import AssetKey

from perf_pipeline.definitions import build_definitions

ROOT = Path(__file__).resolve().parents[1]


def test_dagster_validates_the_workspace() -> None:
    dagster = Path(sys.executable).with_name("dagster")
    done = subprocess.run([str(dagster), "definitions", "validate", "-w", "workspace.yaml"], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Validation successful" in done.stdout + done.stderr


def test_the_assets_jobs_and_checks_are_defined() -> None:
    defs = build_definitions()
    graph = defs.resolve_asset_graph()
    keys = {key.to_user_string() for key in graph.get_all_asset_keys()}
    assert {"ingested_files", "staged_events", "quarantined_events", "objective_templates", "task_events",
            "task_steps", "feedback_events", "peer_evaluations", "collaboration_messages", "price_table",
            "task_scores", "collaboration_scores"} <= keys
    assert {job.name for job in defs.resolve_all_job_defs()} >= {"ingest_job", "daily_job", "scoring_job",
                                                                 "weekly_job"}
    assert defs.resolve_job_def("ingest_job").run_tags["perf_pipeline/serial"] == "ingest"  # one ingest at a time
    assert {sensor.name: sensor.default_status.value for sensor in defs.sensors} == dict.fromkeys(
        ["landing_sensor", "late_feedback_sensor", "daily_assets_automation", "freshness_checks_sensor",
         "notification_sender", "run_failure_notifier"], "RUNNING")
    automation = next(sensor for sensor in defs.sensors if sensor.name == "daily_assets_automation")
    assert automation.run_tags == {"perf_pipeline/trigger": "automation"}  # its runs say who launched them
    assert {schedule.name: schedule.default_status.value for schedule in defs.schedules} == {
        "daily_schedule": "RUNNING", "weekly_schedule": "RUNNING"}
    assert ("quarantined_events", "quarantine_share") in {(k.asset_key.to_user_string(), k.name)
                                                         for k in graph.asset_check_keys}
    check_keys = {(k.asset_key.to_user_string(), k.name) for k in graph.asset_check_keys}
    assert ("ingested_files", "ingest_conservation") in check_keys
    assert ("task_events", "matches_staging") in check_keys
    assert ("task_scores", "one_valid_score_per_task") in check_keys
    assert ("alerts", "notifications_delivered") in check_keys
    assert graph.get(AssetKey("task_events")).partitions_def is not None


def test_every_asset_is_described_grouped_and_every_daily_asset_automated() -> None:
    graph = build_definitions().resolve_asset_graph()
    groups = ["ingest", "reference", "events", "scoring", "aggregates", "alerts", "reports"]  # as the data flows
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        assert node.description, key
        assert node.group_name in groups, key
        daily = node.partitions_def is not None
        assert daily == (node.group_name in groups[2:] or key == AssetKey("staged_events")), key
        if daily and node.is_materializable:
            assert node.automation_condition is not None, key
            assert node.backfill_policy is not None and node.backfill_policy.max_partitions_per_run is None, key
            assert node.pools == {"warehouse"}, key


@pytest.mark.slow
def test_perf_pipeline_ui_serves_the_assets_without_alarming_a_newcomer(tmp_path: Path) -> None:
    """`perf-pipeline ui` as a newcomer runs it, from the project folder: the webserver lists every
    asset, and the output holds no warning to decode (superseded command, ignored dagster.yaml,
    beta parameters)."""
    port = _free_port()
    env = {"PATH": str(Path(sys.executable).parent), "PERF_HOME": str(tmp_path / "home")}
    log = tmp_path / "ui.log"
    with open(log, "w") as out:
        ui = subprocess.Popen([str(Path(sys.executable).with_name("perf-pipeline")), "ui", "--port", str(port)],
                              cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            keys = _asset_keys(port, deadline=time.monotonic() + 120)
            time.sleep(3)  # the daemon's first ticks
        finally:
            os.killpg(ui.pid, signal.SIGTERM)
            try:
                ui.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(ui.pid, signal.SIGKILL)
                ui.wait(timeout=10)
    assert {"ingested_files", "quarantined_events", "task_events", "collaboration_messages"} <= keys
    output = log.read_text()
    for alarm in ("superseded", "will not be used", "Warning:"):
        assert alarm not in output, output


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _asset_keys(port: int, deadline: float) -> set[str]:
    query = json.dumps({"query": "{ assetNodes { assetKey { path } } }"}).encode()
    while time.monotonic() < deadline:
        try:
            request = urllib.request.Request(f"http://127.0.0.1:{port}/graphql", data=query,
                                             headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(request, timeout=10) as response:
                nodes = json.load(response)["data"]["assetNodes"]
            if nodes:
                return {"/".join(node["assetKey"]["path"]) for node in nodes}
        except (OSError, KeyError, TypeError, ValueError):
            pass
        time.sleep(1)
    raise AssertionError(f"the webserver on port {port} did not list assets in time")


def test_judge_settings_come_from_the_environment_and_the_key_stays_hidden(monkeypatch: pytest.MonkeyPatch) -> None:
    from dagster import EnvVar

    from perf_pipeline.definitions import build_resources

    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-abcdefghijklmnopqrstuvwx")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    monkeypatch.setenv("PERF_JUDGE_MODEL", "local-judge")
    scoring = build_resources()["scoring"]
    assert isinstance(scoring.judge_api_key, EnvVar) and scoring.judge_api_key.env_var_name == "OPENAI_API_KEY"
    assert "sk-test" not in repr(scoring)
    monkeypatch.delenv("OPENAI_API_KEY")
    assert build_resources()["scoring"].judge_api_key is None


@pytest.mark.parametrize("entry", ["dagster", "cli"])
def test_a_process_that_runs_steps_collects_garbage_the_pipelines_way(entry: str) -> None:
    """The libraries' objects frozen out of collections and the thresholds raised (``settings``), in a
    process that loads the code location as Dagster's run workers and code servers load it, and in
    one that runs the pipeline as the CLI does; not in one that only builds the definitions."""
    start = {"dagster": "d.defs()",  # what Dagster's loader does with the module's lazy definitions
             "cli": "from dagster import DagsterInstance; from perf_pipeline.launcher import Launcher; "
                    "Launcher(d.build_definitions(), DagsterInstance.ephemeral())"}[entry]
    script = ("import gc; import perf_pipeline.definitions as d; d.build_definitions(); "
              "built = (gc.get_freeze_count(), *gc.get_threshold()); "
              f"{start}; print(*built, gc.get_freeze_count(), *gc.get_threshold())")
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    frozen_when_built, *built_thresholds, frozen, zero, one, two = map(int, done.stdout.split())
    assert frozen_when_built == 0 and tuple(built_thresholds) == (700, 10, 10)
    assert frozen > 100_000 and (zero, one, two) == (50_000, 20, 20)
