"""The checks a data engineer watches, beside their assets, as warnings: the share of quarantined
lines, the judge's failure rate, tasks of unknown cost, and the freshness of the latest day."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from dagster import AssetCheckKey, AssetCheckSeverity, AssetKey, AssetSelection, instance_for_test, materialize

from perf_pipeline.aggregates.assets import window_stats_asset
from perf_pipeline.aggregates.checks import build_freshness_checks
from perf_pipeline.ingest.assets import ingest_landing_files
from perf_pipeline.ingest.checks import quarantine_share
from perf_pipeline.partitions import daily_partitions
from perf_pipeline.scoring.checks import JUDGE_FAILURES_CHECK, UNKNOWN_COST_CHECK
from perf_pipeline_tests.events_factory import task, write_jsonl
from perf_pipeline_tests.fakes.openai_server import FakeOpenAIServer
from perf_pipeline_tests.scoring.test_scoring_assets import ingest_and_build, resources, score


def evaluations(result) -> dict[str, object]:
    return {e.check_name: e for e in result.get_asset_check_evaluations()}


def test_a_high_share_of_quarantined_lines_warns(tmp_path: Path, landing: Path) -> None:
    url = f"sqlite:///{tmp_path / 'w.db'}"
    write_jsonl(landing / "mostly_good.jsonl", [*[task(f"t-{n}") for n in range(39)], "{not json"])
    first = materialize([ingest_landing_files, quarantine_share], resources=resources(url, landing))
    check = evaluations(first)["quarantine_share"]
    assert check.passed and check.metadata["share"].value == 0.025  # 1 of 40 lines
    write_jsonl(landing / "new_format.jsonl", [task("t-a"), "{still not json", "[1, 2]", "nope"])
    second = evaluations(materialize([ingest_landing_files, quarantine_share], resources=resources(url, landing)))
    check = second["quarantine_share"]
    assert not check.passed and check.severity == AssetCheckSeverity.WARN
    assert check.metadata["share"].value == 0.75 and check.metadata["lines"].value == 4  # the latest run's lines


def test_judge_failures_and_unknown_costs_warn_without_blocking(tmp_path: Path, landing: Path) -> None:
    url = f"sqlite:///{tmp_path / 'w.db'}"
    day = "2026-03-01"
    write_jsonl(landing / "tasks.jsonl", [
        task("ok-1", output="patched"), task("ok-2", output="patched again"),
        task("broken", output="[[status:500:99]] the judge's server keeps failing on this one"),
        task("free", cost_usd=None, model="model-without-a-price", output="done")])
    ingest_and_build(url, landing, day, day)
    server = FakeOpenAIServer.start()
    try:
        result = score(url, landing, day, server=server)  # the run succeeds: warnings do not block
    finally:
        server.close()
    checks = evaluations(result)
    judge = checks[JUDGE_FAILURES_CHECK]
    assert not judge.passed and judge.severity == AssetCheckSeverity.WARN
    assert judge.metadata["judge_failures"].value == 1 and judge.metadata["tasks_sent_to_judge"].value == 4
    cost = checks[UNKNOWN_COST_CHECK]
    assert not cost.passed and cost.severity == AssetCheckSeverity.WARN
    assert cost.metadata["share"].value == 0.25
    assert checks["one_valid_score_per_task"].passed


def test_freshness_warns_until_the_latest_day_is_built(tmp_path: Path, landing: Path) -> None:
    checks = build_freshness_checks(dt.time(2, 0))
    key = AssetCheckKey(AssetKey("window_stats"), "freshness_check")
    [window_check] = [c for c in checks if key in c.check_keys]
    res = resources(f"sqlite:///{tmp_path / 'w.db'}", landing)
    with instance_for_test() as instance:
        before = materialize([window_stats_asset, window_check], instance=instance, resources=res,
                             selection=AssetSelection.checks(key))
        [stale] = before.get_asset_check_evaluations()
        assert not stale.passed and stale.severity == AssetCheckSeverity.WARN
        # The expected partition is the latest at the last deadline: today's, or yesterday's before 04:00.
        for partition in daily_partitions.get_partition_keys()[-2:]:
            assert materialize([window_stats_asset], instance=instance, resources=res, partition_key=partition).success
        after = materialize([window_stats_asset, window_check], instance=instance, resources=res,
                            selection=AssetSelection.checks(key))
        [fresh] = after.get_asset_check_evaluations()
        assert fresh.passed
