"""One run of the judge over a range of tasks: the quality judgement of each task and the reviews
of the LLM panel, through the cache. Returns frames for scoring and the run's judge figures.

Judgements are saved as they arrive, each batch in its own transaction: if the run dies later, a
re-run finds them in the cache and pays for nothing twice.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass, field

import pandas as pd
from sqlalchemy.engine import Engine

from perf_pipeline.scoring import plan as planning
from perf_pipeline.scoring.config import Persona, ScoringConfig
from perf_pipeline.scoring.judge import (
    SCORED,
    JudgeClient,
    JudgeItem,
    JudgeOutcome,
    prepare_item,
    rubric_version_for,
)
from perf_pipeline.scoring.redact import environment_secrets
from perf_pipeline.scoring.store import read_cache, save_outcomes

FLUSH_EVERY = 50
JUDGE_FIELDS = {"judge_accuracy": "accuracy", "judge_relevance": "relevance", "judge_completeness": "completeness"}


@dataclass
class JudgeRun:
    """What the judge did in one run: per-task results, panel reviews, and the run's figures."""

    judged: pd.DataFrame  # index task_id: judge_accuracy, judge_relevance, judge_completeness, status, error
    panel: pd.DataFrame  # panel_reviews rows
    statuses: Counter = field(default_factory=Counter)
    calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    calls_without_price: int = 0
    redactions: int = 0
    panel_reviews_new: int = 0
    judged_set: int = 0  # tasks the plan took (cached, or sent): what counts against budget.max_tasks

    def add(self, other: JudgeRun) -> None:
        """Count ``other`` (a run over other days) in this one's figures and panel reviews."""
        self.panel = pd.concat([frame for frame in (self.panel, other.panel) if not frame.empty] or [self.panel],
                               ignore_index=True)
        self.statuses += other.statuses
        self.calls += other.calls
        self.input_tokens += other.input_tokens
        self.output_tokens += other.output_tokens
        self.cost_usd += other.cost_usd
        self.calls_without_price += other.calls_without_price
        self.redactions += other.redactions
        self.panel_reviews_new += other.panel_reviews_new
        self.judged_set += other.judged_set


def judge_tasks(engine: Engine, tasks: pd.DataFrame, config: ScoringConfig, client: JudgeClient | None,
                model: str, run_id: str | None, task_budget: int | None) -> JudgeRun:
    """Judge ``tasks`` (task_events rows) and run the panel on them (``client`` None: no API key,
    nothing is sent; cached judgements are still used), at most ``task_budget`` tasks judged, cached
    ones counted (None: no cap)."""
    if tasks.empty:  # a quiet day: nothing to judge, nothing to read
        return JudgeRun(judged=pd.DataFrame(columns=["judge_status", "judge_error", *JUDGE_FIELDS]),
                        panel=pd.DataFrame())
    secrets = environment_secrets()
    rubric = rubric_version_for(config.judge)
    personas = [(p, p.model or model, rubric_version_for(config.judge, p)) for p in config.panel.personas
                if config.panel.sample_rate > 0]
    with engine.connect() as conn:
        cache = read_cache(conn, tasks["task_id"].tolist(), sorted({model, *(m for _, m, _ in personas)}))
    cached = {(r.task_id, r.content_hash, r.judge_model, r.rubric_version): r for r in cache.itertuples()}

    # Preparing an item (its prompt redacted and hashed) is needed to send it or to find its cached
    # judgement: without a client, only the tasks with something cached get one.
    cached_tasks = {task_id for task_id, *_ in cached}

    def item_for(i: int, persona: Persona | None, item_model: str, version: str) -> JudgeItem | None:
        if client is None and task_ids[i] not in cached_tasks:
            return None
        row = rows[i]
        return prepare_item(row.task_id, row.objective, row.input, row.output, model=item_model,
                            rubric_version=version, max_chars=config.judge.max_content_chars,
                            known_secrets=secrets, persona=persona)

    def key(item: JudgeItem | None) -> tuple[str, str, str, str] | None:
        return None if item is None else (item.task_id, item.content_hash, item.model, item.rubric_version)

    tasks = tasks.reset_index(drop=True)
    task_ids = tasks["task_id"].tolist()
    # What items read; not made when no task can get an item (no client and nothing cached): the
    # rows of a 30-day range of the fleet, 200,000 of them, take 1.5 s to make.
    rows = list(tasks[["task_id", "objective", "input", "output"]].itertuples(index=False)) \
        if client is not None or cached_tasks else []
    items = [item_for(i, None, model, rubric) for i in range(len(task_ids))]
    candidates = tasks[["task_id", "agent_id", "partition_date"]].assign(
        has_content=tasks["output"].notna() & (tasks["output"].astype(str).str.strip() != ""))
    in_cache = pd.Series([key(i) in cached for i in items], index=tasks.index, dtype=bool)
    plan = planning.plan_judging(candidates, in_cache, config.judge, has_key=client is not None, limit=task_budget)
    pending_rows = plan[plan["judge_status"] == planning.PENDING].sort_values("judge_priority", kind="stable")
    to_send = [items[i] for i in pending_rows.index]
    panel_items = [item for item in _panel_items(candidates, personas, item_for, config.panel.sample_rate)
                   if item is not None]
    panel_to_send = [i for i in panel_items if key(i) not in cached] if client is not None else []

    run = JudgeRun(judged=pd.DataFrame(), panel=pd.DataFrame())
    outcomes: dict[tuple[str, str, str, str], JudgeOutcome] = {}
    pending: list[JudgeOutcome] = []

    def flush() -> None:
        with engine.begin() as conn:
            save_outcomes(conn, pending, run_id)
        pending.clear()

    def collect(outcome: JudgeOutcome) -> None:
        outcomes[key(outcome.item)] = outcome
        pending.append(outcome)
        for call in outcome.calls:
            run.calls += 1
            run.input_tokens += call.input_tokens or 0
            run.output_tokens += call.output_tokens or 0
            run.cost_usd += call.cost_usd or 0.0
            run.calls_without_price += call.cost_usd is None and call.input_tokens is not None
        if len(pending) >= FLUSH_EVERY:
            flush()

    if client is not None and (to_send or panel_to_send):
        try:
            client.judge([*to_send, *panel_to_send], on_outcome=collect)
        finally:
            flush()
    run.redactions = sum(i.redactions for i in [*to_send, *panel_to_send])
    run.judged = _judged_frame(tasks["task_id"].tolist(), items, plan, cached, outcomes)
    run.statuses = Counter(run.judged["judge_status"])
    run.judged_set = int(plan["judge_status"].isin([planning.CACHED, planning.PENDING]).sum())
    run.panel, run.panel_reviews_new = _panel_frame(panel_items, tasks, cached, outcomes)
    return run


def _panel_items(candidates: pd.DataFrame, personas: list[tuple[Persona, str, str]], item_for,
                 sample_rate: float) -> list[JudgeItem]:
    """For each persona, a stable sample of tasks with an output, never the persona's own agent's
    (``item_for(i, ...)``: the item of the task at position i)."""
    items = []
    for persona, item_model, version in personas:
        unit = planning.stable_unit(candidates["task_id"], salt=f"panel:{persona.name}")
        chosen = (unit < sample_rate) & candidates["has_content"] & (candidates["agent_id"] != persona.agent_id)
        items += [item_for(i, persona, item_model, version) for i in chosen[chosen].index]
    return items


def _judged_frame(task_ids: list[str], items: list[JudgeItem | None], plan: pd.DataFrame, cached: dict,
                  outcomes: dict) -> pd.DataFrame:
    records = []
    for task_id, item, status in zip(task_ids, items, plan["judge_status"], strict=True):
        k = None if item is None else (item.task_id, item.content_hash, item.model, item.rubric_version)
        record = {"task_id": task_id, "judge_status": status, "judge_error": None}
        if status == planning.CACHED:
            record.update({column: getattr(cached[k], name) for column, name in JUDGE_FIELDS.items()})
        elif k in outcomes:
            outcome = outcomes[k]
            record["judge_status"], record["judge_error"] = outcome.status, outcome.error
            if outcome.status == SCORED:
                record.update({column: getattr(outcome.judgement, name) for column, name in JUDGE_FIELDS.items()})
        elif status == planning.PENDING:  # the client did not answer for it (it raised): not judged
            record.update(judge_status="failed", judge_error="the judge run stopped before this task")
        records.append(record)
    frame = pd.DataFrame.from_records(records, columns=["task_id", "judge_status", "judge_error", *JUDGE_FIELDS])
    return frame.set_index("task_id")


def _panel_frame(items: list[JudgeItem], tasks: pd.DataFrame, cached: dict,
                 outcomes: dict) -> tuple[pd.DataFrame, int]:
    """panel_reviews rows for the panel's judgements, cached or new."""
    by_task = tasks.set_index("task_id")
    rows, new = [], 0
    for item in items:
        k = (item.task_id, item.content_hash, item.model, item.rubric_version)
        if k in cached:
            found = cached[k]
            scores = (found.accuracy, found.relevance, found.completeness, found.rationale, found.judged_at)
        elif k in outcomes and outcomes[k].judgement is not None:
            j = outcomes[k].judgement
            scores = (j.accuracy, j.relevance, j.completeness, j.rationale,
                      dt.datetime.fromtimestamp(outcomes[k].calls[-1].called_at, dt.UTC))
            new += 1
        else:
            continue
        task = by_task.loc[item.task_id]
        rows.append({"evaluation_id": f"panel:{item.persona.name}:{item.task_id}", "task_id": item.task_id,
                     "partition_date": task["partition_date"], "evaluator_agent_id": f"panel:{item.persona.name}",
                     "evaluated_agent_id": task["agent_id"], "accuracy": scores[0], "relevance": scores[1],
                     "completeness": scores[2], "comment": scores[3], "created_at": scores[4],
                     "judge_model": item.model, "rubric_version": item.rubric_version})
    return pd.DataFrame(rows), new
