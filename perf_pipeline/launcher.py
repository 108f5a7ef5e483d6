"""Launch, in this process, what the Dagster daemon would launch: the CLI's ``run`` and ``demo``.

This module holds no rule of the pipeline. It ticks the project's own sensors (the landing sensor,
then the late feedback sensor, and last the notification sender), evaluates the daily assets'
automation conditions with Dagster's evaluator, and executes what they request as runs of the
project's named jobs, until nothing more is requested. A range rebuild (``--start/--end``) is what
a single-run backfill of ``daily_job`` does. So the CLI, the daemon and a backfill from the UI
build the same warehouse.

The automation cursor is kept on the Dagster instance and saved after each evaluation whose requested
runs all succeeded: a run that fails (or a crash) leaves the previous cursor, and the next
``perf-pipeline run`` requests the same partitions again.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from dagster import (
    AssetKey,
    DagsterInstance,
    Definitions,
    RunRequest,
    build_sensor_context,
    evaluate_automation_conditions,
)
from dagster._core.definitions.asset_daemon_cursor import AssetDaemonCursor
from dagster._serdes import deserialize_value, serialize_value

from perf_pipeline import settings
from perf_pipeline.partitions import contiguous

RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"
RUN_KEY_TAG = "dagster/run_key"
TRIGGER_TAG = "perf_pipeline/trigger"
CURSOR_KEY = "perf_pipeline/cli_automation_cursor"
DAILY_JOB, WEEKLY_JOB = "daily_job", "weekly_job"
PARTITIONED_JOBS = (DAILY_JOB, WEEKLY_JOB)
# Sensors the CLI ticks, in order: new files first, then scores made stale by late feedback.
SENSORS = ("landing_sensor", "late_feedback_sensor")
# Each round runs what the previous one's runs made stale; a chain of the daily assets settles in a
# few. A limit that is reached means a condition keeps requesting: an error, not a silent stop.
MAX_ROUNDS = 20
# INFO shows the assets' own progress lines (files ingested, days built), not Dagster's step events.
RUN_CONFIG = {"loggers": {"console": {"config": {"log_level": "INFO"}}}}


class PipelineRunError(RuntimeError):
    """A Dagster run of the pipeline failed; the message says which run and step."""


def initialized(resource: Any) -> Any:
    """A resource usable outside a run: its ``EnvVar`` fields resolved and its config validated (an
    unresolved ``EnvVar`` is only the variable's name)."""
    return resource.process_config_and_initialize()


@dataclass(frozen=True)
class RunTiming:
    """One executed run: its id and job, the assets it materialized (all of the job's when empty), its
    days and how long it took."""

    run_id: str
    job: str
    keys: tuple[AssetKey, ...]
    start: str | None
    end: str | None
    seconds: float


@dataclass
class Launched:
    """What one launch did: its runs (with their timings), the ingest's figures, and the partitions
    built per asset."""

    runs: list[RunTiming] = field(default_factory=list)
    ingest: dict[str, Any] | None = None
    built: dict[AssetKey, set[str]] = field(default_factory=dict)

    def days(self, key: str) -> list[dt.date]:
        return sorted(dt.date.fromisoformat(day) for day in self.built.get(AssetKey(key), ()))


class Launcher:
    """Executes the project's decisions in process against ``instance``."""

    def __init__(self, defs: Definitions, instance: DagsterInstance, echo: Callable[[str], Any] = print) -> None:
        settings.tune_garbage_collection()  # this process executes the runs, as a run worker of the daemon does
        self.defs = defs
        self.instance = instance
        self.echo = echo
        self.graph = defs.resolve_asset_graph()
        self.launched = Launched()

    def run(self, first: dt.date | None = None, last: dt.date | None = None) -> Launched:
        """Tick the sensors, rebuild [first, last] when given, then follow the automation conditions."""
        cursor = self.load_cursor()
        if cursor is None:  # a first evaluation only records where the conditions start from
            cursor = evaluate_automation_conditions(defs=self.defs, instance=self.instance).cursor
            self._save_cursor(cursor)
        self.tick("landing_sensor")
        if first is not None and last is not None:
            self.execute(DAILY_JOB, None, first.isoformat(), last.isoformat(), {TRIGGER_TAG: "cli_range"})
        # Conditions first, then the sensor, as the daemon's ticks come: an evaluation that saw both a
        # day's build and its re-scoring at once could not tell which came last.
        for _ in range(MAX_ROUNDS):
            result = evaluate_automation_conditions(defs=self.defs, instance=self.instance, cursor=cursor)
            requested = {key: result.get_requested_partitions(key) for key in self.graph.materializable_asset_keys}
            requested = {key: partitions for key, partitions in requested.items() if partitions}
            self._execute_requested(requested)
            cursor = result.cursor
            self._save_cursor(cursor)
            if not self.tick("late_feedback_sensor") and not requested:
                self.tick("notification_sender")  # what the runs announced leaves now, as the daemon would send it
                return self.launched
        raise PipelineRunError(f"the automation conditions still request partitions after {MAX_ROUNDS} rounds")

    def tick(self, name: str) -> int:
        """Evaluate sensor ``name`` once and execute its run requests; returns how many."""
        sensor = self.defs.get_sensor_def(name)
        context = build_sensor_context(instance=self.instance, resources=dict(self.defs.resources),
                                       definitions=self.defs, sensor_name=name)
        result = sensor.evaluate_tick(context)
        for request in result.run_requests or []:
            self._execute_request(request, sensor.job_name)
        return len(result.run_requests or [])

    def _execute_request(self, request: RunRequest, job_name: str) -> None:
        tags = {**request.tags, **({RUN_KEY_TAG: request.run_key} if request.run_key else {})}
        key = request.partition_key
        self.execute(request.job_name or job_name, request.asset_selection, key, key, tags)

    def _execute_requested(self, requested: dict[AssetKey, Any]) -> None:
        """Run the requested partitions in waves: each wave, the assets none of whose requested parents
        is still to run, as one run per set of assets with the same days and per range of those days."""
        partitions: dict[AssetKey, set[str]] = {}
        for key, keys in requested.items():  # assets computed together run together
            for member in self.graph.get(key).execution_set_asset_keys:
                partitions.setdefault(member, set()).update(keys)
        remaining = set(partitions)
        while remaining:
            ready = [key for key in self.graph.toposorted_asset_keys if key in remaining
                     and not self._waits_for(key, remaining)]
            by_days: dict[frozenset[str], list[AssetKey]] = {}
            for key in ready:
                by_days.setdefault(frozenset(partitions[key]), []).append(key)
            for days, keys in by_days.items():
                for job, members in self._by_job(keys).items():
                    for start, end in contiguous(days, step_days=7 if job == WEEKLY_JOB else 1):
                        self.execute(job, members, start, end, {TRIGGER_TAG: "automation"})
            remaining -= set(ready)

    def _by_job(self, keys: list[AssetKey]) -> dict[str, list[AssetKey]]:
        """The keys by the named job that runs them: daily_job for the daily partitions, weekly_job
        for the weekly report."""
        jobs: dict[str, list[AssetKey]] = {}
        for key in keys:
            name = next(name for name in PARTITIONED_JOBS
                        if key in self.defs.resolve_job_def(name).asset_layer.executable_asset_keys)
            jobs.setdefault(name, []).append(key)
        return jobs

    def _waits_for(self, key: AssetKey, remaining: set[AssetKey]) -> bool:
        """Whether ``key``, or an asset computed with it, has a parent still to run."""
        together = self.graph.get(key).execution_set_asset_keys
        parents = set().union(*(self.graph.get(member).parent_keys for member in together))
        return bool((parents - together) & remaining)

    def execute(self, job_name: str, keys: Iterable[AssetKey] | None, start: str | None, end: str | None,
                tags: dict[str, str]) -> None:
        """One run of ``job_name`` (of ``keys`` only, when given) for the days ``start``..``end`` (one
        partition, or a range as a single-run backfill runs it; None for an unpartitioned job)."""
        job = self.defs.resolve_job_def(job_name)
        selection = list(keys) if keys else None
        if start is not None and start != end:
            tags = {**tags, RANGE_START_TAG: start, RANGE_END_TAG: end}
        started = time.perf_counter()
        result = job.execute_in_process(instance=self.instance, run_config=RUN_CONFIG, tags=tags,
                                        asset_selection=selection, raise_on_error=False,
                                        partition_key=start if start is not None and start == end else None)
        what = ", ".join(k.to_user_string() for k in selection) if selection else "all assets"
        days = "" if start is None else f" {start}" if start == end else f" {start}..{end}"
        if not result.success:
            detail = "; ".join(f"{event.step_key}: {str(event.step_failure_data.error.message).strip()}"
                               for event in result.all_events if event.is_step_failure and event.step_failure_data
                               and event.step_failure_data.error) or "see the run in the Dagster UI"
            raise PipelineRunError(f"{job_name} ({what}{days}), run {result.run_id}, failed: {detail}")
        self.launched.runs.append(RunTiming(result.run_id, job_name, tuple(selection or ()), start, end,
                                            time.perf_counter() - started))
        self.echo(f"{job_name}{days}: {what} (run {result.run_id[:8]})")
        for event in result.get_asset_materialization_events():
            materialization = event.event_specific_data.materialization
            if materialization.partition:
                self.launched.built.setdefault(materialization.asset_key, set()).add(materialization.partition)
            elif materialization.asset_key == AssetKey("ingested_files"):
                self.launched.ingest = {k: v.value for k, v in materialization.metadata.items()}

    def load_cursor(self) -> AssetDaemonCursor | None:
        """Where the CLI's evaluations of the automation conditions stand (None before the first)."""
        stored = self.instance.run_storage.get_cursor_values({CURSOR_KEY}).get(CURSOR_KEY)
        return deserialize_value(stored, AssetDaemonCursor) if stored else None

    def _save_cursor(self, cursor: AssetDaemonCursor) -> None:
        self.instance.run_storage.set_cursor_values({CURSOR_KEY: serialize_value(cursor)})
