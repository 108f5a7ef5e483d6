"""Scoring assets: the price table, one score row per task, and collaboration per agent and day.

``task_scores`` judges through the cache (``llm_judgements``): a re-run or backfill pays only for
tasks whose text, judge model or rubric changed. Partitions are replaced in one transaction, and
ranges run as one run (``BackfillPolicy.single_run``).

The partition mappings state what a day's scores read: the tasks and reviews of the 90 days before
(efficiency and cost baselines, reviewer leniency with the LLM panel's reviews of those tasks), the
feedback that lands after the task, and for collaboration the answers sent in the days after a
request. Feedback and reviews that arrive after a day was scored are found by ``late_feedback_sensor``.
"""

import datetime as dt
from collections import Counter
from collections.abc import Iterator

import pandas as pd
from dagster import (
    AssetDep,
    AssetExecutionContext,
    AssetSelection,
    MaterializeResult,
    MetadataValue,
    asset,
)

from perf_pipeline.automation import rebuild_when_upstream_changes
from perf_pipeline.config import ANSWER_LOOKAHEAD_DAYS, MAX_WINDOW_DAYS
from perf_pipeline.daily import daily_asset, day_chunks, mean, partition_days, range_metadata, record_days
from perf_pipeline.jobs import REFERENCE, SCORING
from perf_pipeline.partitions import days_between, following_days, trailing_days
from perf_pipeline.resources import ScoringResource, WarehouseResource
from perf_pipeline.scoring.checks import (
    collaboration_check,
    collaboration_check_spec,
    judge_and_cost_results,
    judge_failures_check_spec,
    scores_check_spec,
    scores_result,
    unknown_cost_check_spec,
)
from perf_pipeline.scoring.chunk_step import PANEL_WINDOW_COLUMNS, score_chunk
from perf_pipeline.scoring.components import effective_prices, reviewer_agreement
from perf_pipeline.scoring.judge import JudgePrice
from perf_pipeline.scoring.judging import JudgeRun, judge_tasks
from perf_pipeline.scoring.store import (
    JUDGED_TASK_COLUMNS,
    judge_cost_by_day,
    orphan_counts,
    read_history,
    read_messages,
    read_prices,
    read_task_peer_scores,
    read_tasks,
    seed_prices,
)
from perf_pipeline.scoring.strategies import collaboration_strategy
from perf_pipeline.warehouse.chunks import each_chunk
from perf_pipeline.warehouse.db import TrailingDays, replace_partition
from perf_pipeline.warehouse.schema import collaboration_scores

# Most feedback lands within a month of its task; any later is found by the late feedback sensor.
FEEDBACK_LOOKAHEAD_DAYS = 30


@asset(name="price_table", group_name=REFERENCE, description=(
    "Model prices (USD per million tokens) effective from a date, seeded from sql/seeds/price_table.sql; "
    "rows you add with source='user' are kept. Costs tasks without cost_usd, and the judge's calls."))
def price_table_asset(warehouse: WarehouseResource) -> MaterializeResult:
    with warehouse.engine().begin() as conn:
        prices = seed_prices(conn)
    preview = prices.sort_values(["provider", "model", "effective_from"]).to_markdown(index=False)
    return MaterializeResult(metadata={"prices": len(prices), "models": int(prices.groupby(["provider", "model"])
                                                                             .ngroups),
                                       "preview": MetadataValue.md(preview)})


@daily_asset(name="task_scores", group_name=SCORING,
             deps=[AssetDep("task_events", partition_mapping=trailing_days(MAX_WINDOW_DAYS)),
                   AssetDep("peer_evaluations", partition_mapping=trailing_days(MAX_WINDOW_DAYS)),
                   AssetDep("feedback_events", partition_mapping=following_days(FEEDBACK_LOOKAHEAD_DAYS)),
                   "price_table"],
             automation_condition=rebuild_when_upstream_changes(ignore=AssetSelection.assets("feedback_events")),
             check_specs=[scores_check_spec(), judge_failures_check_spec(), unknown_cost_check_spec()],
             description=(
                 "One row per task of the day: efficiency, cost, LLM-judged quality, peer review (leniency-corrected, "
                 "with the LLM panel's reviews), user feedback and code review, and the configured quality and overall "
                 "composites with the weights used. Writes the judge cache llm_judgements, llm_judge_calls and "
                 "panel_reviews, and prompt_quality (each task's type, prompt version and quality, for the prompt "
                 "comparisons)."))
def task_scores_asset(context: AssetExecutionContext, warehouse: WarehouseResource,
                      scoring: ScoringResource) -> Iterator:
    first, last = partition_days(context)
    config = scoring.config()
    engine = warehouse.engine()
    with engine.connect() as conn:
        prices = read_prices(conn)
    price = judge_price(prices, scoring.judge_model, config.judge.input_usd_per_mtok,
                        config.judge.output_usd_per_mtok)
    client = scoring.judge_client(config, price)
    if client is None:
        context.log.info("OPENAI_API_KEY is not set: the LLM judge is skipped (judge_status skipped_no_key)")
    judged = JudgeRun(judged=pd.DataFrame(), panel=pd.DataFrame())
    lookback = dt.timedelta(days=config.peer_review.leniency_days - 1)
    max_tasks = config.judge.budget.max_tasks
    panel = pd.DataFrame()  # the range's panel reviews judged so far, of the next chunk's leniency window
    # Each chunk's baselines: read here a week at a time, carried from chunk to chunk (a chunk read by a
    # worker would read its 29 days before again: a fifth of the workers' time over 91 days of the fleet).
    history = TrailingDays(read_history, max(config.efficiency.baseline_days, config.cost.baseline_days),
                           "partition_date", ["task_id"])

    def prepare(start: dt.date, end: dt.date) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, dt.date,
                                                        pd.DataFrame]:
        """A chunk's judging, here, in chunk order: its results, its panel reviews (rows to write), the
        range's panel reviews its leniency window reads (their review columns) and its history."""
        nonlocal panel
        with engine.connect() as conn:
            tasks = read_tasks(conn, start, end, JUDGED_TASK_COLUMNS)
            trailing = history.read(conn, start, end)
        # budget.max_tasks is the run's: a week gets what the weeks before left.
        left = None if max_tasks is None else max(max_tasks - judged.judged_set, 0)
        chunk_judged = judge_tasks(engine, tasks, config, client, scoring.judge_model, context.run.run_id, left)
        judged.add(chunk_judged)
        own = chunk_judged.panel
        parts = [part for part in (panel, own[PANEL_WINDOW_COLUMNS] if not own.empty else own) if not part.empty]
        window = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
        # The next chunk's window: from lookback days before its first day.
        panel = window[window["partition_date"] >= end + dt.timedelta(days=1) - lookback] if parts else window
        return chunk_judged.judged, own, window, first, trailing

    # A week at a time, each committed as a run of those days would be; by two workers in a backfill.
    parts = each_chunk(warehouse.resolved_url(), day_chunks(first, last), score_chunk, config, prices,
                       prepare=prepare)
    scores = pd.concat([part.scores for part in parts if not part.scores.empty] or [parts[0].scores],
                       ignore_index=True)
    in_range = pd.concat([part.reviews for part in parts], ignore_index=True)
    check: Counter[str] = Counter()
    for part in parts:  # each chunk counted in its own transaction
        check.update(part.check)
    with engine.connect() as conn:
        orphans = orphan_counts(conn)
        judge_cost = judge_cost_by_day(conn, context.run.run_id, first, last)
    context.log.info(f"{first}..{last}: scored {len(scores)} tasks; judge {dict(judged.statuses)}; "
                     f"{judged.calls} judge calls, ${judged.cost_usd:.4f}")
    record_days(context, "task_scores", scores, "partition_date",
                lambda day, rows: {**score_day_figures(rows), "judge_cost_usd": round(judge_cost.get(day, 0.0), 6)})
    yield MaterializeResult(metadata=range_metadata(context, _score_metadata(
        first, last, scores, judged, in_range, orphans, client)))
    yield scores_result(check, first, last)
    yield from judge_and_cost_results(check, first, last)


def score_day_figures(scores: pd.DataFrame) -> dict[str, object]:
    """A day's scored tasks: how many, their mean scores, their cost and how many have no known cost."""
    return {"rows": len(scores), "mean_quality_score": mean(scores["quality_score"]),
            "mean_overall_score": mean(scores["overall_score"]),
            "mean_efficiency_score": mean(scores["efficiency_score"]),
            "total_cost_usd": round(float(scores["cost_usd"].sum()), 6),
            "cost_unknown_tasks": int((scores["cost_source"] == "unknown").sum())}


def judge_price(prices: pd.DataFrame, model: str, input_usd: float | None,
                output_usd: float | None) -> JudgePrice | None:
    """The judge model's price today: price_table (any provider) first, else the configured one."""
    rows = prices[prices["model"] == model]
    if not rows.empty:
        today = pd.Series([dt.datetime.now(dt.UTC).date()])
        price_in, price_out = effective_prices(rows["provider"].iloc[:1].reset_index(drop=True),
                                               pd.Series([model]), today, rows)
        if pd.notna(price_in.iloc[0]):
            return JudgePrice(float(price_in.iloc[0]), float(price_out.iloc[0]))
    if input_usd is not None and output_usd is not None:
        return JudgePrice(input_usd, output_usd)
    return None


def _score_metadata(first: dt.date, last: dt.date, scores: pd.DataFrame, judged, reviews: pd.DataFrame,
                    orphans: dict[str, int], client: object) -> dict:
    agreement = reviewer_agreement(reviews)
    statuses = dict(judged.statuses)
    metadata = {
        "partition_range": f"{first}..{last}",
        **score_day_figures(scores),
        "judge": "skipped: OPENAI_API_KEY is not set" if client is None else "on",
        **{f"judge_{status}": count for status, count in sorted(statuses.items())},
        "judge_calls": judged.calls,
        "judge_input_tokens": judged.input_tokens,
        "judge_output_tokens": judged.output_tokens,
        "judge_cost_usd": round(judged.cost_usd, 6),
        "judge_calls_without_price": judged.calls_without_price,
        "secrets_redacted": judged.redactions,
        "panel_reviews": len(judged.panel),
        "panel_reviews_new": judged.panel_reviews_new,
        "tasks_without_quality": int(scores["quality_score"].isna().sum()),
        "cost_from_price_table": int((scores["cost_source"] == "price_table").sum()),
        "reviewer_agreement_alpha": agreement["krippendorff_alpha"],
        "reviewer_mean_abs_difference": agreement["mean_abs_difference"],
        "tasks_with_several_reviews": agreement["tasks_with_several_reviews"],
        **{f"orphan_{kind}_events": count for kind, count in orphans.items()},
    }
    if not scores.empty:
        preview = (scores.groupby("agent_id")[["quality_score", "overall_score", "efficiency_score"]].mean()
                   .sort_values("overall_score", ascending=False).head(10).round(3))
        metadata["top_agents"] = MetadataValue.md(preview.to_markdown())
    return {k: v for k, v in metadata.items() if v is not None}


@daily_asset(name="collaboration_scores", group_name=SCORING,
             deps=[AssetDep("collaboration_messages", partition_mapping=following_days(ANSWER_LOOKAHEAD_DAYS)),
                   "task_scores"],
             check_specs=[collaboration_check_spec()],
             description=(
                 "Per agent and day: requests answered, response latency, helpfulness ratings received and peer review "
                 "of the agent's tasks, combined into collaboration_score (separate from quality)."))
def collaboration_scores_asset(context: AssetExecutionContext, warehouse: WarehouseResource,
                               scoring: ScoringResource) -> Iterator:
    first, last = partition_days(context)
    config = scoring.config()
    strategy = collaboration_strategy(config)
    days = days_between(first, last)
    with warehouse.engine().begin() as conn:
        messages = read_messages(conn, first, last, dt.timedelta(hours=config.collaboration.answer_window_hours))
        frame = strategy.score(messages, read_task_peer_scores(conn, first, last), days)
        columns = [c.name for c in collaboration_scores.columns]
        stored = frame[columns] if not frame.empty else pd.DataFrame(columns=columns)
        replace_partition(conn, collaboration_scores, first, last, stored, date_column="date")
        check = collaboration_check(conn, first, last)
    scored = frame["collaboration_score"].dropna() if not frame.empty else pd.Series(dtype=float)
    record_days(context, "collaboration_scores", stored[["date", "collaboration_score"]], "date",
                lambda _day, day_rows: {"rows": len(day_rows),
                                        "mean_collaboration_score": mean(day_rows["collaboration_score"].dropna())})
    yield MaterializeResult(metadata=range_metadata(context, {
        "partition_range": f"{first}..{last}", "rows": len(stored), "agents_scored": int(scored.size),
        "mean_collaboration_score": round(float(scored.mean()), 4) if scored.size else 0.0,
        "requests_received": int(frame["requests_received"].sum()) if len(stored) else 0,
        "requests_answered": int(frame["requests_answered"].sum()) if len(stored) else 0}))
    yield check


SCORING_ASSETS = [task_scores_asset, collaboration_scores_asset]
