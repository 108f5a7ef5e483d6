"""The Dagster code location loads the way `dagster dev -w workspace.yaml` loads it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from dagster import AssetKey

from perf_pipeline.definitions import defs

ROOT = Path(__file__).resolve().parents[1]


def test_dagster_validates_the_workspace() -> None:
    dagster = Path(sys.executable).with_name("dagster")
    done = subprocess.run([str(dagster), "definitions", "validate", "-w", "workspace.yaml"], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Validation successful" in done.stdout + done.stderr


def test_the_assets_jobs_and_checks_are_defined() -> None:
    graph = defs.resolve_asset_graph()
    keys = {key.to_user_string() for key in graph.get_all_asset_keys()}
    assert {"ingested_files", "staged_events", "quarantined_events", "objective_templates", "task_events",
            "task_steps", "feedback_events", "peer_evaluations", "collaboration_messages"} <= keys
    assert {job.name for job in defs.resolve_all_job_defs()} >= {"ingest_job", "daily_events_job"}
    check_keys = {(k.asset_key.to_user_string(), k.name) for k in graph.asset_check_keys}
    assert ("ingested_files", "ingest_conservation") in check_keys
    assert ("task_events", "matches_staging") in check_keys
    assert graph.get(AssetKey("task_events")).partitions_def is not None
