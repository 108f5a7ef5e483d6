"""Which tasks the judge sees in a run: cache first, then a stable sample with a floor per agent
and day, then the run's task budget. Deterministic, so a re-run picks the same tasks (and finds
them in the cache)."""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd

from perf_pipeline.scoring.config import JudgeConfig

CACHED, SKIPPED_NO_KEY, SKIPPED_NO_CONTENT = "cached", "skipped_no_key", "skipped_no_content"
SKIPPED_SAMPLING, SKIPPED_BUDGET, PENDING = "skipped_sampling", "skipped_budget", "pending"


def stable_unit(keys: pd.Series, salt: str = "judge-sample") -> pd.Series:
    """A number in [0, 1) per key, the same on every run and machine (sha256, not Python's hash)."""
    return keys.map(lambda key: int.from_bytes(hashlib.sha256(f"{salt}:{key}".encode()).digest()[:8], "big") / 2**64)


def plan_judging(tasks: pd.DataFrame, cached: pd.Series, config: JudgeConfig, has_key: bool,
                 limit: int | None) -> pd.DataFrame:
    """judge_status and judge_priority per task (columns task_id, agent_id, partition_date, has_content).

    ``cached`` says, per row, whether a judgement for the task's current text, model and rubric
    exists. Statuses: cached; skipped_no_content (no output to judge); skipped_sampling (not in the
    sample); skipped_no_key (no API key: nothing can be judged); skipped_budget (beyond ``limit``
    judged tasks, cached ones counted: ``budget.max_tasks``, less what the run's earlier weeks took;
    None: no cap); pending (to judge, in ``judge_priority`` order: each agent's and day's floor
    first, then by the sampling hash).
    """
    plan = pd.DataFrame(index=tasks.index)
    unit = stable_unit(tasks["task_id"])
    has_content = tasks["has_content"].astype(bool)
    # The floor is counted among tasks there is something to judge in.
    rank = unit.where(has_content).groupby([tasks["agent_id"], tasks["partition_date"]]).rank(method="first") - 1
    floor = has_content & (rank < config.sampling.min_per_agent_day)
    selected = (unit < config.sampling.rate) | floor
    status = np.select(
        [cached.to_numpy(dtype=bool), ~has_content.to_numpy(), ~selected.to_numpy(),
         np.full(len(tasks), not has_key)],
        [CACHED, SKIPPED_NO_CONTENT, SKIPPED_SAMPLING, SKIPPED_NO_KEY], default=PENDING)
    plan["judge_status"] = pd.Series(status, index=tasks.index, dtype=object)
    plan["judge_priority"] = np.where(floor, 0.0, 1.0) + unit
    if limit is not None:
        # The cap is on the run's judged set, cached tasks included, in priority order: a re-run after
        # a crash judges the same tasks a clean run would, no more.
        judged = plan[plan["judge_status"].isin([CACHED, PENDING])].sort_values("judge_priority", kind="stable")
        over = judged.index[limit:]
        plan.loc[over[plan.loc[over, "judge_status"] == PENDING], "judge_status"] = SKIPPED_BUDGET
    return plan
