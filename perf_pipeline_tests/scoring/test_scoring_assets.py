"""The scoring assets materialized for real, with the judge talking to the loopback test server."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
import sqlalchemy as sa
import yaml
from dagster import DagsterInstance, ExecuteInProcessResult, build_sensor_context, materialize

from perf_pipeline.config import ConfigError
from perf_pipeline.daily import day_chunks
from perf_pipeline.events.assets import DAILY_EVENT_ASSETS, objective_templates_asset
from perf_pipeline.ingest.assets import ingest_landing_files
from perf_pipeline.launcher import RANGE_END_TAG, RANGE_START_TAG
from perf_pipeline.resources import AggregatesResource, LandingZoneResource, ScoringResource, WarehouseResource
from perf_pipeline.scoring import judge as judge_module
from perf_pipeline.scoring.assets import SCORING_ASSETS, price_table_asset
from perf_pipeline.scoring.config import load_scoring_config
from perf_pipeline.scoring.sensors import late_feedback_sensor
from perf_pipeline.scoring.store import stale_score_days
from perf_pipeline.synthetic.generator import generate_logs
from perf_pipeline.warehouse.chunks import uses_workers
from perf_pipeline.warehouse.db import warehouse_engine
from perf_pipeline.warehouse.schema import (
    collaboration_scores,
    feedback_events,
    llm_judge_calls,
    llm_judgements,
    panel_reviews,
    prompt_quality,
    task_scores,
)
from perf_pipeline_tests.events_factory import feedback, message, peer_evaluation, task, write_jsonl
from perf_pipeline_tests.fakes.openai_server import FakeOpenAIServer

MODEL = "judge-test-model"


@pytest.fixture
def config_file(tmp_path: Path):
    """Writes a scoring configuration (merged over the defaults) and returns its path."""

    def write(**sections) -> str:
        path = tmp_path / "scoring.yaml"
        path.write_text(yaml.safe_dump(sections))
        return str(path)

    return write


def resources(url: str, landing: Path, server: FakeOpenAIServer | None = None, config: str | None = None,
              model: str = MODEL) -> dict[str, object]:
    scoring = ScoringResource(config_path=config, judge_model=model,
                              judge_api_key="sk-test-0123456789abcdef" if server else None,
                              judge_base_url=server.url if server else None)
    return {"warehouse": WarehouseResource(url=url), "landing": LandingZoneResource(path=str(landing)),
            "scoring": scoring, "aggregates": AggregatesResource()}


def ingest_and_build(url: str, landing: Path, first: str, last: str) -> None:
    res = resources(url, landing)
    assert materialize([ingest_landing_files, objective_templates_asset, price_table_asset], resources=res).success
    assert materialize(DAILY_EVENT_ASSETS, resources=res,
                       tags={RANGE_START_TAG: first, RANGE_END_TAG: last}).success


def score(url: str, landing: Path, first: str, last: str | None = None, **kwargs):
    tags = {RANGE_START_TAG: first, RANGE_END_TAG: last} if last else None
    result = materialize(SCORING_ASSETS, resources=resources(url, landing, **kwargs), tags=tags,
                         partition_key=None if last else first)
    assert result.success
    return result


def metadata(result, asset: str = "task_scores") -> dict:
    """The run's figures for ``asset``; a run over several days names them range_<name> (beside the
    figures of the day whose materialization it is, which they take the place of here)."""
    for event in result.get_asset_materialization_events():
        materialization = event.event_specific_data.materialization
        if materialization.asset_key.to_user_string() == asset:
            tags = result.dagster_run.tags
            ranged = tags.get(RANGE_START_TAG) not in (None, tags.get(RANGE_END_TAG))
            figures = {k: v.value for k, v in materialization.metadata.items()}
            if not ranged:
                return figures
            return {**{k: v for k, v in figures.items() if not k.startswith("range_")},
                    **{k.removeprefix("range_"): v for k, v in figures.items() if k.startswith("range_")}}
    raise AssertionError(f"{asset} not materialized")


def reported(result: ExecuteInProcessResult) -> dict[tuple[str, str | None], dict]:
    """What a run reported: each materialization's metadata (the range's figures and the day's own)
    and each check's evaluation, by asset (or check) and partition."""
    materialized = {(event.asset_key.to_user_string(), event.partition): dict(event.materialization.metadata)
                    for event in result.get_asset_materialization_events()}
    checked = {(check.check_name, None): {"passed": check.passed, **check.metadata}
               for check in result.get_asset_check_evaluations()}
    return {**materialized, **checked}


def rows(url: str, table: sa.Table, *columns: str) -> list[tuple]:
    selected = [table.c[c] for c in columns] if columns else [table]
    key = list(table.primary_key.columns)
    with warehouse_engine(url).connect() as conn:
        return [tuple(r) for r in conn.execute(sa.select(*selected).order_by(*key))]


def two_days_of_tasks(landing: Path) -> None:
    events = []
    for day in ("2026-03-01", "2026-03-02"):
        for agent in ("agent-1", "agent-2"):
            for n in range(3):
                events.append(task(f"t-{day[-2:]}-{agent[-1]}-{n}", agent_id=agent, output=f"result {day} {agent} {n}",
                                   assigned_at=f"{day}T09:00:00Z", started_at=f"{day}T09:01:00Z",
                                   completed_at=f"{day}T09:{10 + n}:00Z", user_rating=4, cost_usd=None))
    events += [peer_evaluation("e-1", task_id="t-01-1-0", evaluator_agent_id="agent-2", created_at="2026-03-01T12:00Z"),
               message("m-1", from_agent_id="agent-2", to_agent_id="agent-1", sent_at="2026-03-01T10:00:00Z"),
               message("m-2", kind="response", in_reply_to="m-1", from_agent_id="agent-1", to_agent_id="agent-2",
                       sent_at="2026-03-01T10:02:00Z", helpfulness=5)]
    write_jsonl(landing / "tasks.jsonl", events)


def test_judged_once_then_cached_and_judged_again_on_a_new_model(warehouse_url: str, landing: Path,
                                                                  judge_server: FakeOpenAIServer,
                                                                  config_file) -> None:
    two_days_of_tasks(landing)
    ingest_and_build(warehouse_url, landing, "2026-03-01", "2026-03-02")
    config = config_file(judge={"input_usd_per_mtok": 1.0, "output_usd_per_mtok": 2.0})
    first = score(warehouse_url, landing, "2026-03-01", "2026-03-02", server=judge_server, config=config)
    meta = metadata(first)
    assert meta["judge_scored"] == 12 and meta["judge_calls"] == 12 and judge_server.answered == 12
    assert meta["judge_cost_usd"] > 0 and meta["judge_input_tokens"] > 0 and meta["judge_output_tokens"] == 360
    assert len(rows(warehouse_url, llm_judgements)) == 12 and len(rows(warehouse_url, llm_judge_calls)) == 12
    with warehouse_engine(warehouse_url).connect() as conn:
        view = conn.execute(sa.text("SELECT calls, answered, output_tokens, cost_usd FROM v_judge_cost")).one()
    assert tuple(view[:3]) == (12, 12, 360) and view[3] == pytest.approx(meta["judge_cost_usd"])
    score_columns = [c.name for c in task_scores.columns if c.name != "judge_status"]
    scores = rows(warehouse_url, task_scores, *score_columns)

    again = score(warehouse_url, landing, "2026-03-01", "2026-03-02", server=judge_server, config=config)
    assert judge_server.answered == 12  # not one new call at the server
    assert metadata(again)["judge_cached"] == 12 and metadata(again)["judge_calls"] == 0
    assert rows(warehouse_url, task_scores, *score_columns) == scores  # the same scores, now from the cache
    judge_status = rows(warehouse_url, task_scores, "judge_status", "judge_accuracy", "judge_score")
    assert {(status, accuracy, round(mean, 9)) for status, accuracy, mean in judge_status} == {("cached", 0.7, 0.7)}

    without_key = score(warehouse_url, landing, "2026-03-01", "2026-03-02", config=config)
    assert metadata(without_key)["judge_cached"] == 12  # no key: the cached judgements still count
    assert rows(warehouse_url, task_scores, *score_columns) == scores

    score(warehouse_url, landing, "2026-03-01", "2026-03-02", server=judge_server, config=config, model="other")
    assert judge_server.answered == 24  # a new judge model judges again


def test_a_new_rubric_version_judges_again(warehouse_url: str, landing: Path, judge_server: FakeOpenAIServer,
                                           config_file, monkeypatch: pytest.MonkeyPatch) -> None:
    two_days_of_tasks(landing)
    ingest_and_build(warehouse_url, landing, "2026-03-01", "2026-03-01")
    score(warehouse_url, landing, "2026-03-01", server=judge_server)
    monkeypatch.setitem(judge_module.RUBRICS, "test-v2", "Grade strictly.")
    score(warehouse_url, landing, "2026-03-01", server=judge_server, config=config_file(judge={"rubric_version":
                                                                                             "test-v2"}))
    assert judge_server.answered == 12
    versions = {r[0] for r in rows(warehouse_url, llm_judgements, "rubric_version")}
    assert versions == {load_scoring_config().judge.rubric_version, "test-v2"}


def test_without_a_key_the_judge_is_skipped_and_the_rest_is_scored(warehouse_url: str, landing: Path) -> None:
    two_days_of_tasks(landing)
    ingest_and_build(warehouse_url, landing, "2026-03-01", "2026-03-02")
    result = score(warehouse_url, landing, "2026-03-01", "2026-03-02")
    meta = metadata(result)
    assert meta["judge"] == "skipped: OPENAI_API_KEY is not set" and meta["judge_skipped_no_key"] == 12
    assert meta["judge_calls"] == 0
    scored = rows(warehouse_url, task_scores, "judge_score", "user_score", "quality_score", "cost_source")
    assert all(r[0] is None and r[1] == 0.75 and r[2] is not None for r in scored)
    assert {r[3] for r in scored} == {"price_table"}  # cost computed from tokens where it was left out
    collaboration = rows(warehouse_url, collaboration_scores, "agent_id", "requests_answered", "helpfulness_score")
    assert collaboration[0] == ("agent-1", 1, 1.0)  # answered agent-2's request; rated 5


def test_sampling_floor_and_task_budget(warehouse_url: str, landing: Path, judge_server: FakeOpenAIServer,
                                        config_file) -> None:
    two_days_of_tasks(landing)
    ingest_and_build(warehouse_url, landing, "2026-03-01", "2026-03-02")
    config = config_file(judge={"sampling": {"rate": 0.0, "min_per_agent_day": 1}})
    meta = metadata(score(warehouse_url, landing, "2026-03-01", "2026-03-02", server=judge_server, config=config))
    assert (meta["judge_scored"], meta["judge_skipped_sampling"]) == (4, 8)  # one per agent and day
    judged = rows(warehouse_url, task_scores, "agent_id", "partition_date", "judge_status")
    assert sorted((a, str(d)) for a, d, s in judged if s == "scored") == [
        ("agent-1", "2026-03-01"), ("agent-1", "2026-03-02"), ("agent-2", "2026-03-01"), ("agent-2", "2026-03-02")]

    judge_server.reset()
    config = config_file(judge={"sampling": {"rate": 1.0, "min_per_agent_day": 1}, "budget": {"max_tasks": 6}})
    meta = metadata(score(warehouse_url, landing, "2026-03-01", "2026-03-02", server=judge_server, config=config))
    # The cap counts the judged set, cached tasks included: 4 from the cache, 2 new, 6 over the cap.
    assert (meta["judge_cached"], meta["judge_scored"], meta["judge_skipped_budget"]) == (4, 2, 6)
    assert judge_server.answered == 2


def test_the_task_budget_is_the_runs_not_each_weeks(tmp_path: Path, landing: Path,
                                                    judge_server: FakeOpenAIServer, config_file,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """A range is judged a week at a time: budget.max_tasks caps the run's judged tasks, each week
    taking what the weeks before left."""
    two_days_of_tasks(landing)
    url = f"sqlite:///{tmp_path / 'warehouse.db'}"
    ingest_and_build(url, landing, "2026-03-01", "2026-03-02")
    config = config_file(judge={"sampling": {"rate": 1.0, "min_per_agent_day": 0}, "budget": {"max_tasks": 5}})
    monkeypatch.setattr("perf_pipeline.daily.CHUNK_DAYS", 1)  # a chunk a day: the budget spans two chunks
    meta = metadata(score(url, landing, "2026-03-01", "2026-03-02", server=judge_server, config=config))
    assert (meta["judge_scored"], meta["judge_skipped_budget"]) == (5, 7) and judge_server.answered == 5
    judged = rows(url, task_scores, "partition_date", "judge_status")
    assert sorted(str(day) for day, status in judged if status == "scored") == ["2026-03-01"] * 5
    # A re-run finds the 5 in the cache and judges no more: they are the run's 5.
    meta = metadata(score(url, landing, "2026-03-01", "2026-03-02", server=judge_server, config=config))
    assert (meta["judge_cached"], meta["judge_skipped_budget"]) == (5, 7) and judge_server.answered == 5


def test_failures_end_as_failed_and_the_run_goes_on(warehouse_url: str, landing: Path,
                                                    judge_server: FakeOpenAIServer) -> None:
    write_jsonl(landing / "tasks.jsonl", [
        task("t-ok", output="fine"), task("t-bad", output="[[malformed]]"), task("t-no", output="[[refuse]]"),
        task("t-empty", output="  ")])
    ingest_and_build(warehouse_url, landing, "2026-03-01", "2026-03-01")
    score(warehouse_url, landing, "2026-03-01", server=judge_server)
    status = dict(rows(warehouse_url, task_scores, "task_id", "judge_status"))
    assert status == {"t-ok": "scored", "t-bad": "failed", "t-no": "failed", "t-empty": "skipped_no_content"}
    errors = dict(rows(warehouse_url, task_scores, "task_id", "judge_error"))
    assert "not JSON" in errors["t-bad"] and "refused" in errors["t-no"] and errors["t-ok"] is None
    outcomes = sorted(r[0] for r in rows(warehouse_url, llm_judge_calls, "outcome"))
    assert outcomes == ["malformed", "malformed", "ok", "refusal", "refusal"]
    score(warehouse_url, landing, "2026-03-01", server=judge_server)  # failures are not cached: asked again
    assert dict(rows(warehouse_url, task_scores, "task_id", "judge_status"))["t-ok"] == "cached"
    assert judge_server.answered == 9


def test_late_feedback_rescores_the_day_without_judging_again(warehouse_url: str, landing: Path,
                                                              judge_server: FakeOpenAIServer) -> None:
    two_days_of_tasks(landing)
    ingest_and_build(warehouse_url, landing, "2026-03-01", "2026-03-02")
    score(warehouse_url, landing, "2026-03-01", "2026-03-02", server=judge_server)
    calls = judge_server.answered
    engine = warehouse_engine(warehouse_url)
    with engine.connect() as conn:
        assert stale_score_days(conn) == []

    write_jsonl(landing / "late.jsonl", [
        feedback("f-late", task_id="t-01-1-0", user_rating=1, created_at="2026-03-06T08:00:00Z"),
        peer_evaluation("e-late", task_id="t-02-2-1", evaluator_agent_id="agent-1", evaluated_agent_id="agent-2",
                        created_at="2026-03-07T08:00:00Z"),
        feedback("f-orphan", task_id="t-unknown", created_at="2026-03-06T09:00:00Z")])
    ingest_and_build(warehouse_url, landing, "2026-03-06", "2026-03-07")
    with engine.connect() as conn:
        stale = stale_score_days(conn)
    assert [(str(s.day), s.tasks) for s in stale] == [("2026-03-01", 1), ("2026-03-02", 1)]

    resources_ = resources(warehouse_url, landing, server=judge_server)
    with DagsterInstance.ephemeral() as instance:
        context = build_sensor_context(instance=instance, resources={"warehouse": resources_["warehouse"]})
        requests = list(late_feedback_sensor(context))
    assert sorted(r.partition_key for r in requests) == ["2026-03-01", "2026-03-02"]
    assert len({r.run_key for r in requests}) == 2

    for request in requests:
        result = score(warehouse_url, landing, request.partition_key, server=judge_server)
    assert judge_server.answered == calls  # the judge was not called again
    assert metadata(result)["orphan_feedback_events"] == 1
    user = dict(rows(warehouse_url, task_scores, "task_id", "user_score"))
    assert user["t-01-1-0"] == pytest.approx((0.75 + 0.0) / 2)  # ratings 4 and 1
    peers = dict(rows(warehouse_url, task_scores, "task_id", "peer_review_count"))
    assert peers["t-02-2-1"] == 1
    with engine.connect() as conn:
        assert stale_score_days(conn) == []
    assert ("f-orphan",) in rows(warehouse_url, feedback_events, "feedback_id")  # kept, never dropped


def test_panel_reviews_never_review_their_own_agent(warehouse_url: str, landing: Path,
                                                    judge_server: FakeOpenAIServer, config_file) -> None:
    two_days_of_tasks(landing)
    ingest_and_build(warehouse_url, landing, "2026-03-01", "2026-03-01")
    config = config_file(panel={"sample_rate": 1.0, "personas": [
        {"name": "strict", "agent_id": "agent-1", "instructions": "Be strict."},
        {"name": "kind", "model": "kind-model", "instructions": "Be kind."}]})
    meta = metadata(score(warehouse_url, landing, "2026-03-01", server=judge_server, config=config))
    reviews = rows(warehouse_url, panel_reviews, "evaluator_agent_id", "evaluated_agent_id", "judge_model")
    assert sorted(set(reviews)) == [("panel:kind", "agent-1", "kind-model"), ("panel:kind", "agent-2", "kind-model"),
                                    ("panel:strict", "agent-2", MODEL)]
    assert len(reviews) == 9 and meta["panel_reviews_new"] == 9  # 3 by strict (agent-2 only), 6 by kind
    counts = dict(rows(warehouse_url, task_scores, "task_id", "peer_review_count"))
    assert counts["t-01-1-0"] == 2 and counts["t-01-2-0"] == 2  # t-01-1-0: the ingested review + kind
    personas = [r.body["messages"][0]["content"] for r in judge_server.requests if "Reviewer persona" in
                r.body["messages"][0]["content"]]
    assert len(personas) == 9
    score(warehouse_url, landing, "2026-03-01", server=judge_server, config=config)
    assert judge_server.answered == 6 + 9  # quality and panel judgements both cached


def test_backfill_range_equals_day_by_day(tmp_path: Path, landing: Path) -> None:
    two_days_of_tasks(landing)
    urls = [f"sqlite:///{tmp_path / name}.db" for name in ("range", "days")]
    for url in urls:
        ingest_and_build(url, landing, "2026-03-01", "2026-03-02")
    score(urls[0], landing, "2026-03-01", "2026-03-02")
    score(urls[1], landing, "2026-03-01")
    score(urls[1], landing, "2026-03-02")
    for table in (task_scores, collaboration_scores):
        assert rows(urls[0], table) == rows(urls[1], table)


def test_a_range_scored_a_day_at_a_time_equals_one_run(tmp_path: Path, landing: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    two_days_of_tasks(landing)
    urls = [f"sqlite:///{tmp_path / name}.db" for name in ("whole", "chunked")]
    for url in urls:
        ingest_and_build(url, landing, "2026-03-01", "2026-03-02")
    score(urls[0], landing, "2026-03-01", "2026-03-02")
    monkeypatch.setattr("perf_pipeline.daily.CHUNK_DAYS", 1)  # the run scores its range in chunks of one day
    chunked = score(urls[1], landing, "2026-03-01", "2026-03-02")
    assert metadata(chunked)["rows"] == 12  # the range's figures add up its chunks
    for table in (task_scores, collaboration_scores, panel_reviews):
        assert rows(urls[0], table) == rows(urls[1], table)


def test_chunks_reading_their_trailing_baselines_score_as_one_run_and_as_days(
        tmp_path: Path, landing: Path, monkeypatch: pytest.MonkeyPatch, config_file) -> None:
    """Ten days of synthetic tasks with 3-day baselines: each chunk of a range reads the days of its
    window, its own and those before it."""
    generate_logs(landing, start=dt.date(2026, 3, 1), days=10, agents=6, tasks_per_day=60)
    config = config_file(efficiency={"baseline_days": 3, "min_baseline_tasks": 2},
                         cost={"baseline_days": 4, "min_baseline_tasks": 2})
    urls = {name: f"sqlite:///{tmp_path / name}.db" for name in ("whole", "chunked", "days")}
    for url in urls.values():
        ingest_and_build(url, landing, "2026-03-01", "2026-03-10")
    score(urls["whole"], landing, "2026-03-01", "2026-03-10", config=config)
    for day in range(1, 11):
        score(urls["days"], landing, f"2026-03-{day:02d}", config=config)
    monkeypatch.setattr("perf_pipeline.daily.CHUNK_DAYS", 2)
    score(urls["chunked"], landing, "2026-03-01", "2026-03-10", config=config)
    whole = rows(urls["whole"], task_scores)
    assert len(whole) > 500 and len({r for r in rows(urls["whole"], task_scores, "efficiency_baseline_n")}) > 3
    assert rows(urls["chunked"], task_scores) == whole == rows(urls["days"], task_scores)


def days_reviewed_by_the_panel(landing: Path, days: int) -> None:
    """Three agents' tasks whose judged grades vary (the test server grades ``[[score:x]]``), and an
    ingested review a day: reviewers' leniency differs from one day's window to the next."""
    events = []
    for d in range(days):
        day = dt.date(2026, 3, 1) + dt.timedelta(days=d)
        for a in (1, 2, 3):
            for n in range(2):
                grade = (0.2, 0.5, 0.9)[(d + n + a) % 3]
                events.append(task(f"t-{d}-{a}-{n}", agent_id=f"agent-{a}", output=f"[[score:{grade}]] {d} {a} {n}",
                                   assigned_at=f"{day}T09:00:00Z", started_at=f"{day}T09:01:00Z",
                                   completed_at=f"{day}T09:{10 + n}:00Z"))
        events.append(peer_evaluation(f"e-{d}", task_id=f"t-{d}-1-0", evaluator_agent_id="agent-2",
                                      evaluated_agent_id="agent-1", accuracy=0.3 + 0.1 * (d % 5),
                                      created_at=f"{day}T12:00:00Z"))
    write_jsonl(landing / "tasks.jsonl", events)


def test_a_range_scored_by_worker_processes_equals_one_process_and_its_days(
        tmp_path: Path, landing: Path, judge_server: FakeOpenAIServer, config_file,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The judge stays in the run's process, and the panel reviews of a chunk's earlier days reach its
    leniency window before the other worker commits them: workers write the rows and report the
    figures one process does, and the days scored one after the other give the same rows. The panel
    reviews stored before came from another panel, and the range starts after the first days, so
    a window reads stored reviews, reviews judged by the run, and drops those that left it."""
    days_reviewed_by_the_panel(landing, 8)
    first, last = "2026-03-03", "2026-03-08"
    urls = {name: f"sqlite:///{tmp_path / name}.db" for name in ("workers", "one_process", "days")}
    strict = {"name": "strict", "agent_id": "agent-1", "instructions": "Be strict."}
    leniency = {"leniency_days": 3}
    config = config_file(panel={"sample_rate": 1.0, "personas": [strict]}, peer_review=leniency)
    for url in urls.values():
        ingest_and_build(url, landing, "2026-03-01", last)
        score(url, landing, "2026-03-01", last, server=judge_server, config=config)
    stale = rows(urls["workers"], task_scores)
    config = config_file(panel={"sample_rate": 0.6, "personas": [
        strict, {"name": "kind", "model": "kind-model", "instructions": "Be kind."}]}, peer_review=leniency)
    for day in range(3, 9):
        score(urls["days"], landing, f"2026-03-{day:02d}", server=judge_server, config=config)
    monkeypatch.setattr("perf_pipeline.daily.CHUNK_DAYS", 2)  # 3 chunks: by two workers, or one after the other
    assert len(day_chunks(dt.date(2026, 3, 3), dt.date(2026, 3, 8))) == 3
    monkeypatch.setattr("perf_pipeline.settings.usable_cpus", lambda: 1)
    assert not uses_workers(urls["one_process"], 3)
    here = score(urls["one_process"], landing, first, last, server=judge_server, config=config)
    monkeypatch.setattr("perf_pipeline.settings.usable_cpus", lambda: 2)
    assert uses_workers(urls["workers"], 3)
    by_workers = score(urls["workers"], landing, first, last, server=judge_server, config=config)
    for table in (task_scores, panel_reviews, prompt_quality, collaboration_scores):
        # Each warehouse has a judge cache of its own: its panel reviews are as old as its judgements.
        columns = [column.name for column in table.columns if column.name != "created_at"]
        assert (rows(urls["workers"], table, *columns) == rows(urls["one_process"], table, *columns)
                == rows(urls["days"], table, *columns)), table.name
    scores = rows(urls["workers"], task_scores, "task_id", "peer_score")
    assert rows(urls["workers"], task_scores) != stale and len({score for _, score in scores}) > 6
    assert reported(by_workers) == reported(here)  # every figure per day and per range, every check


def test_a_wrong_configuration_names_the_file_and_the_key(config_file) -> None:
    path = config_file(quality={"weights": {"judge": -1}}, judge={"concurrency": 0})
    with pytest.raises(ConfigError) as error:
        load_scoring_config(path)
    message = str(error.value)
    assert path in message and "judge.concurrency" in message and "quality" in message
    with pytest.raises(ConfigError, match="unknown weight"):
        load_scoring_config(config_file(quality={"weights": {"vibes": 1.0}}))


def test_a_day_without_tasks_scores_nothing_and_succeeds(warehouse_url: str, landing: Path,
                                                        judge_server: FakeOpenAIServer) -> None:
    write_jsonl(landing / "messages.jsonl", [message("m-1", task_id=None, sent_at="2026-03-05T10:00:00Z")])
    ingest_and_build(warehouse_url, landing, "2026-03-05", "2026-03-05")
    result = score(warehouse_url, landing, "2026-03-05", server=judge_server)
    assert metadata(result)["rows"] == 0 and judge_server.requests == []
