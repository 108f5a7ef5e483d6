"""Daily rollups: per entity and day, the counts and sums from which every window metric is
derived without re-reading tasks. Everything here is mergeable: a window is the sum of its days.

Averages are kept as (sum, count of known values), so unknown values (null tokens, unknown cost)
are skipped, never counted as zeros. Response-time percentiles come from a log-binned histogram
(``latency.py``), which merges by adding counts.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from perf_pipeline.aggregates import latency
from perf_pipeline.aggregates.rolling import range_sums

# Entity type -> the task columns whose values (joined by "/") name the entity. A rollup row also
# stores those values in columns of their own (DIMENSIONS), so that no one has to split an id that
# may itself contain "/" (model names often do).
ENTITY_TYPES: dict[str, list[str]] = {
    "agent": ["agent_id"],
    "department": ["department"],
    "project": ["project_id"],
    "provider": ["provider"],
    "model": ["model"],
    "task_type": ["task_type"],
    "provider_task_type": ["provider", "task_type"],
    "prompt_version": ["prompt_version"],
    # Rolled up for the rankings and summaries, with no windows or trends of their own:
    "model_task_type": ["provider", "model", "task_type"],
    "project_agent": ["project_id", "agent_id"],
    "department_agent": ["department", "agent_id"],
}
WINDOWED_ENTITY_TYPES = ["agent", "department", "project", "provider", "model", "task_type", "provider_task_type",
                         "prompt_version"]
DIMENSIONS = ["agent_id", "department", "project_id", "provider", "model", "task_type", "prompt_version"]
# Averaged metrics: rollup columns sum_<name> and n_<name> (known values only).
AVERAGED = ["quality_score", "overall_score", "efficiency_score", "cost_usd", "completion_time_s", "total_tokens",
            "tool_invocations", "revision_count", "user_rating", "collaboration_score"]
COUNTS = ["n_tasks", "tasks_completed", "tasks_failed", "sla_known", "sla_met", "feedback_typed", "corrections",
          "enhancements", "approvals", "innovations"]
ROLLUP_COLUMNS = ["entity_type", "entity_id", "date", *DIMENSIONS, "first_task_at", "last_task_at", *COUNTS,
                  *[f"{prefix}_{m}" for m in AVERAGED for prefix in ("sum", "n")], "response_time_histogram"]
FAILED_STATUSES = ("failed", "timeout")


def exact_sums(grouped: pd.core.groupby.DataFrameGroupBy, columns: list[str]) -> pd.DataFrame:
    """Group sums, float columns correctly rounded (``math.fsum``), so that a backfilled range stores
    the same sums as its days run one by one: each group's rows made a range (``rolling.range_sums``)."""
    codes = grouped.ngroup().to_numpy()
    kept = np.flatnonzero(codes >= 0)  # rows whose keys are null belong to no group
    order = kept[np.argsort(codes[kept], kind="stable")]
    sorted_codes = codes[order]
    bounds = np.flatnonzero(np.r_[True, sorted_codes[1:] != sorted_codes[:-1], True]) if len(order) \
        else np.array([0])
    sums = range_sums(grouped.obj.iloc[order], columns, bounds[:-1], bounds[1:])
    sums.index = grouped.size().index
    return sums


def task_facts(tasks: pd.DataFrame) -> pd.DataFrame:
    """Per task, the numbers a rollup adds up (one row per task; columns as in ROLLUP_COLUMNS' sources)."""
    facts = pd.DataFrame(index=tasks.index)
    facts["n_tasks"] = 1
    facts["tasks_completed"] = (tasks["status"] == "success").astype(int)
    facts["tasks_failed"] = tasks["status"].isin(FAILED_STATUSES).astype(int)
    sla = pd.to_numeric(tasks["sla_seconds"], errors="coerce")
    elapsed = pd.to_numeric(tasks["completion_time_s"], errors="coerce")
    known = sla.notna() & elapsed.notna()
    facts["sla_known"] = known.astype(int)
    facts["sla_met"] = (known & (elapsed <= sla)).astype(int)
    kind = tasks["feedback_type"]
    facts["feedback_typed"] = kind.notna().astype(int)
    for column, value in (("corrections", "correction"), ("enhancements", "enhancement"),
                          ("approvals", "approval"), ("innovations", "innovation")):
        facts[column] = (kind == value).astype(int)
    # The mean rating of a task (user_score) times its ratings gives back the sum of its ratings.
    ratings = pd.to_numeric(tasks["user_rating_count"], errors="coerce").fillna(0)
    rating_sum = (pd.to_numeric(tasks["user_score"], errors="coerce") * 4 + 1) * ratings
    for metric in AVERAGED:
        if metric == "user_rating":
            facts["sum_user_rating"], facts["n_user_rating"] = rating_sum.fillna(0.0), ratings.astype(int)
        elif metric == "collaboration_score":
            continue  # per agent and day, added by daily_rollups from collaboration_scores
        else:
            values = pd.to_numeric(tasks[metric], errors="coerce").astype("float64")
            facts[f"sum_{metric}"], facts[f"n_{metric}"] = values.fillna(0.0), values.notna().astype(int)
    facts["latency_bin"] = latency.bin_index(pd.to_numeric(tasks["response_time_ms"], errors="coerce"))
    return facts


TEXT = pd.Series([""], dtype=object).astype(str).dtype  # what ``astype(str)`` makes: pandas' default strings


def as_text(values: pd.Series) -> pd.Series:
    """A column's values as text (``astype(str)``), missing ones kept missing; a column of pandas'
    default strings as it is (under pandas 2, ``astype(str)`` makes objects: every column is converted)."""
    if isinstance(values.dtype, pd.StringDtype) and values.dtype == TEXT:
        return values
    present = values.astype(object).where(values.notna())
    return present.astype(str).where(present.notna())


def entity_ids(texts: dict[str, pd.Series], entity_type: str) -> pd.Series:
    """The entity each task belongs to, from its columns as text (``as_text``): their values joined
    by "/"; a missing value (no prompt_version, say) gives no entity."""
    columns = ENTITY_TYPES[entity_type]
    ids = texts[columns[0]]
    for column in columns[1:]:
        part = texts[column]
        ids = (ids + "/" + part).where(ids.notna() & part.notna())
    return ids


def daily_rollups(tasks: pd.DataFrame, collaboration: pd.DataFrame,
                  entity_types: Sequence[str] = tuple(ENTITY_TYPES)) -> pd.DataFrame:
    """Rollup rows for ``tasks`` (task_events joined with task_scores, with ``partition_date``) and
    ``collaboration`` (collaboration_scores: agent_id, date, collaboration_score), of ``entity_types``
    (by default every one) in that order, each by entity and day.

    The tasks of every entity type (those naming an entity of it) are put one type after the other
    and grouped once, by type, entity and day: a day of 6,600 tasks took 0.29 s grouped type by
    type (pandas' work per call, eleven times over), 0.13 s so (``test_rolling.py`` compares the two)."""
    if tasks.empty:
        return pd.DataFrame(columns=ROLLUP_COLUMNS)
    tasks = tasks.assign(department=tasks["department"].fillna("unassigned"),
                         project_id=tasks["project_id"].fillna("unassigned")).reset_index(drop=True)
    facts = task_facts(tasks)
    texts = {column: as_text(tasks[column]) for column in DIMENSIONS}
    named = [entity_ids(texts, entity_type) for entity_type in entity_types]
    kept = [np.flatnonzero(ids.notna().to_numpy()) for ids in named]
    rows = np.concatenate(kept)
    grouped = pd.DataFrame({
        "kind": np.repeat(np.arange(len(entity_types)), [len(k) for k in kept]),
        "entity_id": pd.concat([ids.iloc[k] for ids, k in zip(named, kept, strict=True)], ignore_index=True),
        "date": tasks["partition_date"].to_numpy()[rows]}).groupby(["kind", "entity_id", "date"], sort=True)
    codes = grouped.ngroup().to_numpy()
    in_group = np.flatnonzero(codes >= 0)  # a task without a day belongs to no group
    codes, rows = codes[in_group].astype(np.int64), rows[in_group]
    order = np.argsort(codes, kind="stable")  # each group's tasks together, in their order
    rows, codes = rows[order], codes[order]
    bounds = np.flatnonzero(np.r_[True, codes[1:] != codes[:-1], True]) if len(rows) else np.array([0])
    groups = grouped.size().index.to_frame(index=False)
    kind = groups["kind"].to_numpy()
    rollups = pd.DataFrame({"entity_type": pd.Series(np.asarray(entity_types, dtype=object)[kind], dtype=TEXT),
                            "entity_id": groups["entity_id"], "date": groups["date"]})
    first = rows[bounds[:-1]]  # a group's first task: its entity's columns, never missing there
    for column in DIMENSIONS:
        own = np.isin(kind, [k for k, name in enumerate(entity_types) if column in ENTITY_TYPES[name]])
        rollups[column] = pd.Series(np.where(own, tasks[column].to_numpy(dtype=object)[first], None), dtype=object)
    # As series, whose time zone stays even when every value is missing.
    rollups["first_task_at"] = tasks["assigned_at"].take(rows).groupby(codes).min().set_axis(rollups.index)
    rollups["last_task_at"] = tasks["completed_at"].take(rows).groupby(codes).max().set_axis(rollups.index)
    numeric = [c for c in facts.columns if c != "latency_bin"]
    sums = range_sums(facts.take(rows), numeric, bounds[:-1], bounds[1:])
    rollups = pd.concat([rollups, sums], axis=1)
    rollups["response_time_histogram"] = latency.histograms(codes, facts["latency_bin"].to_numpy()[rows],
                                                            len(groups))
    scored = collaboration.dropna(subset=["collaboration_score"]) if not collaboration.empty else collaboration
    agents = rollups["entity_type"] == "agent"
    if not scored.empty:
        keyed = scored.set_index(["agent_id", "date"])["collaboration_score"]
        values = pd.Series(list(zip(rollups["entity_id"], rollups["date"], strict=True)), index=rollups.index).map(
            keyed.to_dict())
        rollups["sum_collaboration_score"] = values.where(agents).fillna(0.0).astype("float64")
        rollups["n_collaboration_score"] = (values.notna() & agents).astype(int)
    else:
        rollups["sum_collaboration_score"], rollups["n_collaboration_score"] = 0.0, 0
    int_columns = [*COUNTS, *[f"n_{m}" for m in AVERAGED]]
    rollups[int_columns] = rollups[int_columns].astype(np.int64)
    return rollups[ROLLUP_COLUMNS]
