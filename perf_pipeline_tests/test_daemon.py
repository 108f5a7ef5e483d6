"""The deployment as it runs: the Dagster daemon and webserver on the production instance config
(deploy/dagster.yaml, PostgreSQL). A file dropped in the landing folder becomes windows and trends with
no command run (the landing sensor, then the automation sensor's backfills), and a backfill of
``daily_job`` launched through the webserver's GraphQL API builds the rows that day-by-day runs build."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import ExitStack, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest
import sqlalchemy as sa
from dagster import instance_for_test

from perf_pipeline.definitions import build_definitions
from perf_pipeline.launcher import DAILY_JOB, RANGE_END_TAG, RANGE_START_TAG
from perf_pipeline.partitions import days_between
from perf_pipeline.warehouse.db import warehouse_engine
from perf_pipeline.warehouse.schema import (
    collaboration_scores,
    daily_rollups,
    leaderboard,
    task_events,
    task_scores,
    trends,
    window_stats,
)
from perf_pipeline_tests.events_factory import message, peer_evaluation, task, write_jsonl

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent  # dagster-daemon and dagster-webserver of this environment

TODAY = dt.datetime.now(dt.UTC).date()
YESTERDAY = TODAY - dt.timedelta(days=1)
EVENT_DAYS = days_between(YESTERDAY - dt.timedelta(days=2), YESTERDAY)
BACKFILL_DAYS = days_between(YESTERDAY - dt.timedelta(days=6), YESTERDAY)
# The deployment's first partition, a few days before the backfill: the day-by-day build starts there,
# and a short history keeps each automation evaluation small.
PARTITION_START = BACKFILL_DAYS[0] - dt.timedelta(days=3)
LOCATION = "perf_pipeline"
REPOSITORY = "__repository__"  # the repository Dagster makes of a code location's Definitions
AUTOMATION_SENSOR = {"repositoryName": REPOSITORY, "repositoryLocationName": LOCATION,
                     "sensorName": "daily_assets_automation"}

# Bounds of the waits on 2 cores. The daemon's backfill loop looks at backfills every 30 s; each look
# launches the next layer of an automation backfill (a landed file's days take three) or completes it.
STARTUP_SECONDS = 180
AUTOMATION_SECONDS = 360
BACKFILL_SECONDS = 240
# Settling after the backfill launches several layers of runs (about 4 minutes when the machine is
# shared with the suite's other worker); 300 s was exceeded twice on a day this machine ran 2.5 times
# slower, and 600 s once on a day it ran the whole suite in 35 minutes instead of 16 (the test alone
# passed, in 13 minutes). A bound against a hang, not a performance target.
SETTLE_SECONDS = 900
POLL_SECONDS = 3
STOP_SECONDS = 30

# Compared day by day; the lineage columns name the file and line an event came from, not a result.
COMPARED_TABLES = [task_events, task_scores, collaboration_scores, daily_rollups, window_stats, trends, leaderboard]
LINEAGE_COLUMNS = {"source_file", "line_number"}
DAY_COLUMNS = ("partition_date", "date", "as_of_date")

T = TypeVar("T")


def landing_file(folder: Path) -> Path:
    """Three days up to yesterday: four tasks a day for each of two agents (one failed), and each
    day each agent reviews the other's first task and sends it a request."""
    events: list[dict[str, Any]] = []
    for d, day in enumerate(EVENT_DAYS):
        for agent, other in (("agent-1", "agent-2"), ("agent-2", "agent-1")):
            for n in range(4):
                events.append(task(f"t-{day}-{agent}-{n}", agent_id=agent, status="failed" if n == 3 else "success",
                                   assigned_at=f"{day}T08:00:00Z", started_at=f"{day}T08:01:00Z",
                                   completed_at=f"{day}T{9 + n:02d}:{10 + d:02d}:00Z", input_tokens=900 + 40 * n,
                                   response_time_ms=400.0 + 25 * n + d, cost_usd=0.01 + 0.002 * n))
            events.append(peer_evaluation(f"e-{day}-{agent}", task_id=f"t-{day}-{agent}-0",
                                          evaluator_agent_id=other, evaluated_agent_id=agent,
                                          accuracy=0.6 + d / 10, created_at=f"{day}T20:00:00Z"))
            events.append(message(f"m-{day}-{agent}", task_id=f"t-{day}-{agent}-0", from_agent_id=agent,
                                  to_agent_id=other, sent_at=f"{day}T09:30:00Z"))
    return write_jsonl(folder / "agents.jsonl", events)


def stop(process: subprocess.Popen) -> None:
    """SIGTERM to the process's group (the code servers and run workers it started are in it), a
    bounded wait, then SIGKILL to whatever of the group is left."""
    with suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    with suppress(subprocess.TimeoutExpired):
        process.wait(timeout=STOP_SECONDS)
    with suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=STOP_SECONDS)


@dataclass
class Deployment:
    """The daemon and the webserver, their logs, and the webserver's GraphQL API."""

    port: int
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)
    logs: dict[str, Path] = field(default_factory=dict)

    def tail(self, lines: int = 40) -> str:
        return "".join(f"\n--- last lines of {name} ---\n"
                       + "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
                       for name, log in self.logs.items())

    def stop(self) -> None:
        while self.processes:
            stop(self.processes.popitem()[1])

    def check_alive(self) -> None:
        for name, process in self.processes.items():
            if process.poll() is not None:
                pytest.fail(f"{name} exited with {process.returncode}{self.tail()}")

    def graphql(self, query: str, **variables: Any) -> dict[str, Any]:
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}/graphql", method="POST",
                                         data=json.dumps({"query": query, "variables": variables}).encode(),
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=60) as response:
            body = json.load(response)
        assert not body.get("errors"), f"{body['errors']}{self.tail()}"
        return body["data"]

    def wait_for(self, what: str, found: Callable[[], T], seconds: float) -> T:
        """``found()`` once it is truthy, polling; fails after ``seconds`` or when a process exited."""
        deadline = time.monotonic() + seconds
        while True:
            self.check_alive()
            value = found()
            if value:
                return value
            if time.monotonic() > deadline:
                pytest.fail(f"{what}: not within {seconds:.0f} s{self.tail()}")
            time.sleep(POLL_SECONDS)


def answer(node: dict[str, Any], typename: str) -> dict[str, Any]:
    """A GraphQL union's member, failing with the error the server returned instead."""
    assert node["__typename"] == typename, node
    return node


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def child_environment(dagster_home: Path, database: sa.URL, warehouse_url: str, home: Path,
                      landing: Path) -> dict[str, str]:
    """This environment without the judge's key or any Dagster or perf_pipeline setting of the
    caller's, plus the instance's DAGSTER_PG_* variables, the pipeline's folders and warehouse, the
    shortest sensor interval and a first partition a few days back."""
    kept = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "PERF_", "DAGSTER_"))}
    return {**kept, "DAGSTER_HOME": str(dagster_home),
            "DAGSTER_PG_USERNAME": database.username or "postgres",
            # A trust-auth server ignores the password, but the instance config needs the variable set.
            "DAGSTER_PG_PASSWORD": database.password or "unused",
            "DAGSTER_PG_HOST": database.host or "127.0.0.1",
            "DAGSTER_PG_DB": database.database or "",
            "DAGSTER_PG_PORT": str(database.port or 5432),
            "PERF_HOME": str(home), "PERF_WAREHOUSE_URL": warehouse_url, "PERF_LANDING_DIR": str(landing),
            "PERF_SENSOR_SECONDS": "5", "PERF_PARTITION_START": PARTITION_START.isoformat()}


LOCATION_STATUS = """
query { workspaceOrError { __typename ... on PythonError { message } ... on Workspace { locationEntries {
  name loadStatus locationOrLoadError { __typename ... on PythonError { message } } } } } }"""


def location_loaded(deployment: Deployment) -> bool:
    try:
        workspace = deployment.graphql(LOCATION_STATUS)["workspaceOrError"]
    except (urllib.error.URLError, ConnectionError):
        return False  # not listening yet
    (entry,) = answer(workspace, "Workspace")["locationEntries"]
    loaded = entry["locationOrLoadError"]
    assert loaded is None or loaded["__typename"] == "RepositoryLocation", f"{loaded}{deployment.tail()}"
    return entry["loadStatus"] == "LOADED" and loaded is not None


@pytest.fixture
def deployment(instance_database: sa.URL, postgres_url: str, tmp_path: Path) -> Iterator[Deployment]:
    """`dagster-daemon run` and `dagster-webserver` on deploy/dagster.yaml, each in its own session,
    once the webserver has loaded the code location; the landing folder is tmp_path/landing."""
    dagster_home = tmp_path / "dagster_home"
    dagster_home.mkdir()
    shutil.copy(ROOT / "deploy" / "dagster.yaml", dagster_home / "dagster.yaml")
    (tmp_path / "landing").mkdir()
    env = child_environment(dagster_home, instance_database, postgres_url, tmp_path / "perf_home",
                            tmp_path / "landing")
    running = Deployment(port=free_port())
    commands = {"dagster-daemon": ["run", "-w", "workspace.yaml"],
                "dagster-webserver": ["-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(running.port)]}
    with ExitStack() as stack:
        stack.callback(running.stop)
        for name, args in commands.items():
            running.logs[name] = tmp_path / f"{name}.log"
            output = stack.enter_context(running.logs[name].open("wb"))
            running.processes[name] = subprocess.Popen(
                [str(BIN / name), *args], cwd=ROOT, env=env, stdout=output, stderr=subprocess.STDOUT,
                start_new_session=True)
        running.wait_for("the webserver loaded the code location", lambda: location_loaded(running),
                         STARTUP_SECONDS)
        yield running


def as_of_days(url: str, table: sa.Table) -> set[dt.date]:
    """The days ``table`` holds rows as of; none while no run has created it."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return set(conn.execute(sa.select(table.c.as_of_date).distinct()).scalars())
    except sa.exc.ProgrammingError:
        return set()
    finally:
        engine.dispose()


ACTIVITY = """
query Activity($sensor: SensorSelector!) {
  runsOrError(filter: {statuses: [QUEUED, NOT_STARTED, STARTING, STARTED, CANCELING]}) {
    __typename ... on Error { message } ... on Runs { results { runId } } }
  partitionBackfillsOrError(filters: {statuses: [REQUESTED, CANCELING, FAILING]}) {
    __typename ... on Error { message } ... on PartitionBackfills { results { id } } }
  sensorOrError(sensorSelector: $sensor) {
    __typename ... on Error { message } ... on Sensor { sensorState { ticks(limit: 1) { status timestamp } } } }
}"""


class Settled:
    """Whether the deployment has nothing left to do: no run or backfill in progress since a moment
    after which an automation tick requested nothing. Runs alone do not say it: an automation
    backfill has no run until the backfill loop's next look."""

    def __init__(self, deployment: Deployment) -> None:
        self.deployment = deployment
        self.quiet_since: float | None = None

    def __call__(self) -> bool:
        data = self.deployment.graphql(ACTIVITY, sensor=AUTOMATION_SENSOR)
        if (answer(data["runsOrError"], "Runs")["results"]
                or answer(data["partitionBackfillsOrError"], "PartitionBackfills")["results"]):
            self.quiet_since = None
            return False
        if self.quiet_since is None:
            self.quiet_since = time.time()
            return False
        ticks = answer(data["sensorOrError"], "Sensor")["sensorState"]["ticks"]
        return bool(ticks) and ticks[0]["status"] == "SKIPPED" and ticks[0]["timestamp"] > self.quiet_since


FAILED_RUNS = """
query { runsOrError(filter: {statuses: [FAILURE, CANCELED]}) {
  __typename ... on Error { message } ... on Runs { results { runId jobName } } } }"""

STEP_FAILURES = """
query Failures($id: ID!) { logsForRun(runId: $id) { __typename ... on Error { message }
  ... on EventConnection { events { __typename ... on ExecutionStepFailureEvent { stepKey error { message } } } } } }"""


def failed_runs(deployment: Deployment) -> list[str]:
    """Each failed or canceled run: its job, id and the error of each failed step."""
    failed = []
    for run in answer(deployment.graphql(FAILED_RUNS)["runsOrError"], "Runs")["results"]:
        logs = answer(deployment.graphql(STEP_FAILURES, id=run["runId"])["logsForRun"], "EventConnection")
        errors = [f"{event['stepKey']}: {event['error']['message'].strip()}" for event in logs["events"]
                  if event["__typename"] == "ExecutionStepFailureEvent"]
        failed.append(f"{run['jobName']} {run['runId']}: {'; '.join(errors) or 'no step failed'}")
    return failed


def settle(deployment: Deployment, after: str) -> None:
    """Wait until the deployment has nothing left to do; every run it made succeeded."""
    deployment.wait_for(f"the automation to settle after {after}", Settled(deployment), SETTLE_SECONDS)
    failed = failed_runs(deployment)
    assert not failed, "\n".join(failed)


LAUNCH_BACKFILL = """
mutation Launch($params: LaunchBackfillParams!) { launchPartitionBackfill(backfillParams: $params) {
  __typename ... on Error { message } ... on LaunchBackfillSuccess { backfillId } } }"""

BACKFILL = """
query Backfill($id: String!) { partitionBackfillOrError(backfillId: $id) {
  __typename ... on Error { message }
  ... on PartitionBackfill { status error { message } runs { runId status tags { key value } } } } }"""


def launch_backfill(deployment: Deployment) -> str:
    """A backfill of ``daily_job`` over BACKFILL_DAYS, as the UI's "Launch backfill" of the job launches it."""
    launched = deployment.graphql(LAUNCH_BACKFILL, params={
        "selector": {"partitionSetName": f"{DAILY_JOB}_partition_set", "repositorySelector": {
            "repositoryName": REPOSITORY, "repositoryLocationName": LOCATION}},
        "partitionNames": [day.isoformat() for day in BACKFILL_DAYS]})["launchPartitionBackfill"]
    return answer(launched, "LaunchBackfillSuccess")["backfillId"]


def finished_backfill(deployment: Deployment, backfill_id: str) -> dict[str, Any] | None:
    """The backfill once it completed; fails when it failed or was canceled."""
    backfill = answer(deployment.graphql(BACKFILL, id=backfill_id)["partitionBackfillOrError"], "PartitionBackfill")
    assert backfill["status"] not in {"FAILED", "FAILING", "COMPLETED_FAILED", "CANCELED", "CANCELING"}, (
        f"{backfill}{deployment.tail()}")
    return backfill if backfill["status"] in {"COMPLETED", "COMPLETED_SUCCESS"} else None


def run_range(run: dict[str, Any]) -> tuple[str, str | None, str | None]:
    """A run's status and the first and last day of its partition range."""
    tags = {tag["key"]: tag["value"] for tag in run["tags"]}
    return run["status"], tags.get(RANGE_START_TAG), tags.get(RANGE_END_TAG)


def build_day_by_day(tmp_path: Path, landing: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A second warehouse built in process from the same landing folder: the ingest, then
    ``daily_job`` one partition at a time from the deployment's first partition to yesterday."""
    url = f"sqlite:///{tmp_path / 'day_by_day.db'}"
    for name in list(os.environ):
        if name.startswith(("OPENAI_", "PERF_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("PERF_HOME", str(tmp_path / "day_by_day_home"))
    monkeypatch.setenv("PERF_WAREHOUSE_URL", url)
    monkeypatch.setenv("PERF_LANDING_DIR", str(landing))
    defs = build_definitions()
    with instance_for_test() as instance:
        assert defs.resolve_job_def("ingest_job").execute_in_process(instance=instance).success
        for day in days_between(PARTITION_START, YESTERDAY):
            result = defs.resolve_job_def(DAILY_JOB).execute_in_process(partition_key=day.isoformat(),
                                                                        instance=instance)
            assert result.success, day
    return url


def rows_of_days(url: str, table: sa.Table, days: list[dt.date]) -> list[tuple]:
    """``table``'s rows of ``days`` in key order, without lineage; timestamps as naive UTC (SQLite
    keeps no offset, PostgreSQL returns one)."""
    columns = [c for c in table.columns if c.name not in LINEAGE_COLUMNS]
    (day_column,) = [table.c[name] for name in DAY_COLUMNS if name in table.c]
    query = sa.select(*columns).where(day_column.in_(days)).order_by(*table.primary_key.columns)
    with warehouse_engine(url).connect() as conn:
        return [tuple(value.astimezone(dt.UTC).replace(tzinfo=None)
                      if isinstance(value, dt.datetime) and value.tzinfo else value for value in row)
                for row in conn.execute(query)]


@pytest.mark.starts_first
@pytest.mark.slow
@pytest.mark.postgres
def test_the_daemon_builds_a_landed_file_and_a_backfill_matches_day_by_day_runs(
        deployment: Deployment, postgres_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A file lands; the landing sensor ingests it and the automation sensor builds the days it touched.
    landing_file(tmp_path / "landing")
    deployment.wait_for(
        "window_stats and trends as of each day of the landed file",
        lambda: all(set(EVENT_DAYS) <= as_of_days(postgres_url, table) for table in (window_stats, trends)),
        AUTOMATION_SECONDS)
    settle(deployment, "the landed file")

    # A week's backfill, launched as from the UI: one run over the range (single-run backfill policy).
    backfill_id = launch_backfill(deployment)
    backfill = deployment.wait_for(f"backfill {backfill_id} to complete",
                                   lambda: finished_backfill(deployment, backfill_id), BACKFILL_SECONDS)
    assert [run_range(run) for run in backfill["runs"]] == [
        ("SUCCESS", BACKFILL_DAYS[0].isoformat(), BACKFILL_DAYS[-1].isoformat())], backfill["runs"]
    # The automation then rebuilds what depends on the rewritten days: the collaboration of the two
    # days before the range (answers may come later), and the windows from there on, the range's too.
    settle(deployment, "the backfill")
    deployment.stop()  # the in-process build below gets the cores to itself

    day_by_day = build_day_by_day(tmp_path, tmp_path / "landing", monkeypatch)
    for table in COMPARED_TABLES:
        backfilled = rows_of_days(postgres_url, table, BACKFILL_DAYS)
        assert backfilled, table.name
        assert backfilled == rows_of_days(day_by_day, table, BACKFILL_DAYS), table.name
