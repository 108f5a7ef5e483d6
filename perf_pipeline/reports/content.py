"""What the daily and weekly reports say, gathered from the warehouse as of the period's last day.

A report repeats what the pipeline computed (leaderboard, trends, rankings, prompt comparisons,
anomalies, alerts) and adds up the period's own tasks with the rollups' own code, so a figure read
in Slack is the figure in the warehouse. Nothing is filled in: a value the warehouse does not know
is None here and "unknown" in the text, never a zero. Recommendations carry the numbers they were
made from, so a stakeholder can check them before dropping an agent or a provider.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import date, timedelta
from typing import Any, TypeVar

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from perf_pipeline.aggregates.prompts import A_BETTER, B_BETTER
from perf_pipeline.aggregates.rankings import RANKED
from perf_pipeline.aggregates.store import TASKS, read_rollups
from perf_pipeline.aggregates.trends import DECLINING, IMPROVING
from perf_pipeline.aggregates.windows import window_metrics
from perf_pipeline.alerts.lifecycle import FIRING, RESOLVED
from perf_pipeline.warehouse.schema import (
    alerts,
    anomalies,
    daily_metrics,
    leaderboard,
    llm_judge_calls,
    most_improved_agents,
    prompt_version_comparisons,
    provider_rankings,
    trends,
    window_stats,
)

DAILY, WEEKLY = "daily", "weekly"
# Both reports read the 7-day leaderboard and trends as of their last day: a weekly report's
# window is then exactly its week, and a daily report's the week that ends with its day.
WINDOW_DAYS = 7
TREND_WINDOWS = (7, 30)
HISTORY_DAYS = 30  # days of daily scores behind the trend chart
TOP_AGENTS = 3  # ranked agents whose daily scores are charted
# Declining agents charted, the first of the report's (shortest window first, steepest first): a
# fleet may have dozens, and a line and a legend entry each would hide the chart; the report's trends
# list them all.
CHARTED_DECLINING = 3
# A cheaper candidate whose average quality is at most this far below the best one "matches" it:
# within the 0.05 quality points the provider ranking trades for a doubling of cost.
QUALITY_MARGIN = 0.02
OVERALL_SCORE = "avg_overall_score"

T = TypeVar("T")


@dataclass(frozen=True)
class Period:
    """The days a report covers: one day, or an ISO week (Monday to Sunday)."""

    kind: str  # "daily" or "weekly"
    first: date
    last: date
    label: str  # "2026-03-04" or "2026-W10"

    @classmethod
    def daily(cls, day: date) -> Period:
        return cls(DAILY, day, day, day.isoformat())

    @classmethod
    def weekly(cls, monday: date) -> Period:
        if monday.weekday() != 0:
            raise ValueError(f"a weekly report starts on a Monday; {monday} is a {monday:%A}")
        year, week, _ = monday.isocalendar()
        return cls(WEEKLY, monday, monday + timedelta(days=6), f"{year}-W{week:02d}")


@dataclass(frozen=True)
class Totals:
    """The period's own tasks (those completed on its days), as window_stats would count them."""

    n_tasks: int
    tasks_completed: int
    tasks_failed: int  # failed or timed out
    success_rate: float | None  # completed / tasks: every task reports a final status
    n_cost: int  # tasks whose cost is known (reported, or priced from the price table)
    total_cost_usd: float | None  # of the tasks of known cost; None when there are none
    n_overall: int
    avg_overall_score: float | None
    n_sla: int  # tasks with an SLA and a completion time
    sla_compliance_rate: float | None
    judge_calls: int  # calls to the LLM judge about the period's tasks, in any run
    judge_calls_priced: int
    evaluation_cost_usd: float | None  # of the priced calls; None when no call has a price

    @property
    def tasks_cost_unknown(self) -> int:
        return self.n_tasks - self.n_cost

    @property
    def judge_calls_unpriced(self) -> int:
        return self.judge_calls - self.judge_calls_priced


@dataclass(frozen=True)
class ProviderCost:
    """A provider's tasks of the period and what they cost (tasks of unknown cost not counted)."""

    provider: str
    n_tasks: int
    n_cost: int
    total_cost_usd: float | None
    avg_cost_per_task: float | None


@dataclass(frozen=True)
class LeaderboardEntry:
    agent_id: str
    rank: int | None  # None: unranked, status says why (insufficient_data, no_scores)
    status: str
    department: str | None
    n_tasks: int
    n_overall: int
    avg_overall_score: float | None
    success_rate: float | None
    avg_cost_per_task: float | None


@dataclass(frozen=True)
class MostImproved:
    """The most_improved_agents row of a window: agent_id None when no agent improved significantly."""

    window_days: int
    agent_id: str | None
    n_points: int | None
    slope_per_day: float | None
    slope_low: float | None
    slope_high: float | None
    relative_change: float | None
    candidates: int
    agents_evaluated: int


@dataclass(frozen=True)
class AgentTrend:
    """An agent's significant overall-score trend, with the tasks of its window."""

    agent_id: str
    window_days: int
    direction: str  # improving or declining
    n_points: int  # days with a score
    slope_per_day: float | None
    slope_low: float | None
    slope_high: float | None
    relative_change: float | None
    mann_kendall_p: float | None
    n_tasks: int | None  # the window's tasks (window_stats); None when the window has no row


@dataclass(frozen=True)
class Anomaly:
    date: date
    entity_type: str
    entity_id: str
    metric: str
    observed: float
    baseline_median: float | None
    baseline_days: int
    robust_z: float | None
    direction: str | None  # better or worse


@dataclass(frozen=True)
class Alert:
    """An alert as of its latest evaluation in the period."""

    rule: str
    entity_type: str
    entity_id: str
    severity: str  # warning or critical
    status: str  # firing or resolved
    started_on: date
    resolved_on: date | None
    as_of_date: date
    metric: str | None
    window_days: int | None
    observed: float | None
    threshold: float | None
    baseline: float | None
    n_tasks: int | None
    silenced_by: int | None  # the silence that held back its notifications


@dataclass(frozen=True)
class ProviderRanking:
    task_type: str
    provider: str
    model: str
    window_days: int
    rank: int | None  # None: not a candidate, status says why
    status: str
    n_tasks: int
    avg_quality_score: float | None
    avg_cost_per_task: float | None
    p50_response_time_ms: float | None
    success_rate: float | None
    utility: float | None

    @property
    def candidate(self) -> str:
        return f"{self.provider}/{self.model}"


@dataclass(frozen=True)
class PromptFinding:
    """A prompt version that beats another on quality (Mann-Whitney U, Holm-adjusted)."""

    task_type: str
    window_days: int
    better: str
    worse: str
    n_better: int
    n_worse: int
    median_better: float | None
    median_worse: float | None
    prob_better_wins: float | None  # P(a task of ``better`` scores above one of ``worse``), ties half
    p_value_holm: float | None


@dataclass(frozen=True)
class Recommendation:
    kind: str  # declining_agent, cheaper_provider, prompt_version or best_provider
    text: str
    evidence: dict[str, Any]  # every number the text states, under a name


@dataclass(frozen=True)
class ScoreSeries:
    """An agent's daily average overall score (days with a score only), for the trend chart."""

    agent_id: str
    role: str  # "rank 1".., or "declining"
    points: tuple[tuple[date, float], ...]


@dataclass(frozen=True)
class Report:
    """Everything a daily or weekly report says, as of ``period.last``."""

    period: Period
    window_days: int  # of the leaderboard
    totals: Totals
    provider_costs: tuple[ProviderCost, ...]
    leaderboard: tuple[LeaderboardEntry, ...]  # ranked by rank, then the unranked
    most_improved: tuple[MostImproved, ...]  # one per window of TREND_WINDOWS computed
    improving: tuple[AgentTrend, ...]  # by window, steepest first
    declining: tuple[AgentTrend, ...]  # by window, steepest first
    anomalies: tuple[Anomaly, ...]
    alerts_firing: tuple[Alert, ...]
    alerts_resolved: tuple[Alert, ...]
    provider_rankings: tuple[ProviderRanking, ...]
    prompt_findings: tuple[PromptFinding, ...]
    recommendations: tuple[Recommendation, ...]  # most pressing first
    score_history: tuple[ScoreSeries, ...]

    @property
    def ranked(self) -> tuple[LeaderboardEntry, ...]:
        return tuple(entry for entry in self.leaderboard if entry.rank is not None)

    @property
    def unranked(self) -> tuple[LeaderboardEntry, ...]:
        return tuple(entry for entry in self.leaderboard if entry.rank is None)


def gather(conn: Connection, period: Period) -> Report:
    """The report of ``period``, read from the warehouse as of its last day."""
    day = period.last
    rollups = read_rollups(conn, period.first, period.last, entity_types=["provider"])
    totals, provider_costs = _period_totals(rollups, _judge_costs(conn, period))
    board = _leaderboard(conn, day)
    agent_trends = _agent_trends(conn, day)
    improving = tuple(t for t in agent_trends if t.direction == IMPROVING)
    declining = tuple(t for t in agent_trends if t.direction == DECLINING)
    rankings = _provider_rankings(conn, day)
    findings = _prompt_findings(conn, day)
    listed_alerts = _alerts(conn, period)
    return Report(
        period=period, window_days=WINDOW_DAYS, totals=totals, provider_costs=provider_costs, leaderboard=board,
        most_improved=_most_improved(conn, day), improving=improving, declining=declining,
        anomalies=_anomalies(conn, period),
        alerts_firing=tuple(a for a in listed_alerts if a.status == FIRING),
        alerts_resolved=tuple(a for a in listed_alerts if a.status == RESOLVED),
        provider_rankings=rankings, prompt_findings=findings,
        recommendations=recommendations(declining, rankings, findings),
        score_history=_score_history(conn, day, board, declining))


# --- reading -----------------------------------------------------------------------------------------------------


def _rows(conn: Connection, cls: type[T], query: sa.Select) -> tuple[T, ...]:
    """``cls`` made from each row of ``query``, whose columns are named as its fields (and maybe more)."""
    result = conn.execute(query)
    columns = list(result.keys())
    positions = [columns.index(f.name) for f in fields(cls)]  # the fields' order, for positional arguments
    return tuple(cls(*[row[i] for i in positions]) for row in result)


def _known(value: Any) -> float | None:
    return None if value is None or pd.isna(value) else float(value)


def _period_totals(by_provider: pd.DataFrame, judge: Mapping[str, Any]) -> tuple[Totals, tuple[ProviderCost, ...]]:
    """Totals and per-provider costs of the period's tasks, from the providers' daily rollups (every
    task has a provider) by the windows' code over the period instead of a window, so that they agree
    with window_stats' definitions."""
    judged = {"judge_calls": judge["calls"], "judge_calls_priced": judge["priced"],
              "evaluation_cost_usd": _known(judge["cost_usd"]) if judge["priced"] else None}
    if by_provider.empty:
        return Totals(n_tasks=0, tasks_completed=0, tasks_failed=0, success_rate=None, n_cost=0,
                      total_cost_usd=None, n_overall=0, avg_overall_score=None, n_sla=0, sla_compliance_rate=None,
                      **judged), ()
    fleet = window_metrics(by_provider.assign(fleet="all"), ["fleet"]).iloc[0]
    totals = Totals(
        n_tasks=int(fleet["n_tasks"]), tasks_completed=int(fleet["tasks_completed"]),
        tasks_failed=int(fleet["tasks_failed"]), success_rate=_known(fleet["success_rate"]),
        n_cost=int(fleet["n_cost"]), total_cost_usd=_known(fleet["total_cost_usd"]),
        n_overall=int(fleet["n_overall"]), avg_overall_score=_known(fleet["avg_overall_score"]),
        n_sla=int(fleet["n_sla"]), sla_compliance_rate=_known(fleet["sla_compliance_rate"]), **judged)
    providers = window_metrics(by_provider, ["entity_id"])
    costs = tuple(ProviderCost(provider=str(provider), n_tasks=int(row["n_tasks"]), n_cost=int(row["n_cost"]),
                               total_cost_usd=_known(row["total_cost_usd"]),
                               avg_cost_per_task=_known(row["avg_cost_per_task"]))
                  for provider, row in providers.iterrows())
    return totals, costs


def _judge_costs(conn: Connection, period: Period) -> Mapping[str, Any]:
    """Calls made to the LLM judge about the period's tasks (retries and panel reviews included)."""
    calls = llm_judge_calls.c
    query = (sa.select(sa.func.count().label("calls"), sa.func.count(calls.cost_usd).label("priced"),
                       sa.func.sum(calls.cost_usd).label("cost_usd"))
             .select_from(llm_judge_calls.join(TASKS, TASKS.c.task_id == calls.task_id))
             .where(TASKS.c.partition_date.between(period.first, period.last)))
    return conn.execute(query).mappings().one()


def _leaderboard(conn: Connection, day: date) -> tuple[LeaderboardEntry, ...]:
    board = leaderboard.c
    query = (sa.select(leaderboard).where(board.as_of_date == day, board.window_days == WINDOW_DAYS)
             .order_by(board.rank.nulls_last(), board.agent_id))
    return _rows(conn, LeaderboardEntry, query)


def _most_improved(conn: Connection, day: date) -> tuple[MostImproved, ...]:
    best = most_improved_agents.c
    query = (sa.select(most_improved_agents).where(best.as_of_date == day, best.window_days.in_(TREND_WINDOWS))
             .order_by(best.window_days))
    return _rows(conn, MostImproved, query)


def _agent_trends(conn: Connection, day: date) -> tuple[AgentTrend, ...]:
    """Agents' improving and declining overall-score trends of TREND_WINDOWS, steepest first."""
    trend, stats = trends.c, window_stats.c
    query = (sa.select(trends, trend.entity_id.label("agent_id"), stats.n_tasks)
             .select_from(trends.outerjoin(window_stats, sa.and_(
                 stats.entity_type == trend.entity_type, stats.entity_id == trend.entity_id,
                 stats.as_of_date == trend.as_of_date, stats.window_days == trend.window_days)))
             .where(trend.as_of_date == day, trend.entity_type == "agent", trend.metric == OVERALL_SCORE,
                    trend.window_days.in_(TREND_WINDOWS), trend.direction.in_([IMPROVING, DECLINING]))
             .order_by(trend.window_days, sa.func.abs(trend.slope_per_day).desc(), trend.entity_id))
    return _rows(conn, AgentTrend, query)


def _anomalies(conn: Connection, period: Period) -> tuple[Anomaly, ...]:
    flagged = anomalies.c
    query = (sa.select(anomalies).where(flagged.date.between(period.first, period.last))
             .order_by(flagged.date, flagged.entity_type, flagged.entity_id, flagged.metric))
    return _rows(conn, Anomaly, query)


def _provider_rankings(conn: Connection, day: date) -> tuple[ProviderRanking, ...]:
    ranking = provider_rankings.c
    query = (sa.select(provider_rankings).where(ranking.as_of_date == day)
             .order_by(ranking.task_type, ranking.rank.nulls_last(), ranking.provider, ranking.model))
    return _rows(conn, ProviderRanking, query)


def _prompt_findings(conn: Connection, day: date) -> tuple[PromptFinding, ...]:
    """The significant comparisons of prompt versions, the better version first in each."""
    compared = prompt_version_comparisons.c
    query = (sa.select(prompt_version_comparisons)
             .where(compared.as_of_date == day, compared.verdict.in_([A_BETTER, B_BETTER]))
             .order_by(compared.p_value_holm, compared.task_type, compared.version_a, compared.version_b))
    findings = []
    for row in conn.execute(query).mappings():
        a_wins = row["verdict"] == A_BETTER
        prob_a = row["prob_a_beats_b"]
        findings.append(PromptFinding(
            task_type=row["task_type"], window_days=row["window_days"],
            better=row["version_a"] if a_wins else row["version_b"],
            worse=row["version_b"] if a_wins else row["version_a"],
            n_better=row["n_a"] if a_wins else row["n_b"], n_worse=row["n_b"] if a_wins else row["n_a"],
            median_better=row["median_a"] if a_wins else row["median_b"],
            median_worse=row["median_b"] if a_wins else row["median_a"],
            # U counts ties as half a win, so P(b beats a) = 1 - P(a beats b).
            prob_better_wins=None if prob_a is None else (prob_a if a_wins else 1.0 - prob_a),
            p_value_holm=row["p_value_holm"]))
    return tuple(findings)


SEVERITY_ORDER = {"critical": 0, "warning": 1}


def _alerts(conn: Connection, period: Period) -> tuple[Alert, ...]:
    """Each alert evaluated during the period, in its state as of its latest evaluation in it: an
    alert that fired and then resolved within the period is listed as resolved. Resolved alerts
    whose resolution came before the period (still in their resolve-after days) are left out."""
    state = alerts.c
    query = (sa.select(*[state[f.name] for f in fields(Alert)])
             .where(state.as_of_date.between(period.first, period.last)).order_by(state.as_of_date))
    latest: dict[tuple, Alert] = {}
    for alert in _rows(conn, Alert, query):
        latest[(alert.rule, alert.entity_type, alert.entity_id, alert.started_on)] = alert
    listed = [a for a in latest.values() if a.status == FIRING or (
        a.status == RESOLVED and a.resolved_on is not None and period.first <= a.resolved_on <= period.last)]
    return tuple(sorted(listed, key=lambda a: (SEVERITY_ORDER.get(a.severity, len(SEVERITY_ORDER)), a.started_on,
                                               a.rule, a.entity_type, a.entity_id)))


def _score_history(conn: Connection, day: date, board: Sequence[LeaderboardEntry],
                   declining: Sequence[AgentTrend]) -> tuple[ScoreSeries, ...]:
    """Daily overall scores of the last HISTORY_DAYS days of the agents of ``chart_roles``."""
    roles = chart_roles(board, declining)
    if not roles:
        return ()
    metric = daily_metrics.c
    query = (sa.select(metric.entity_id, metric.date, metric.avg_overall_score)
             .where(metric.entity_type == "agent", metric.entity_id.in_(list(roles)),
                    metric.date.between(day - timedelta(days=HISTORY_DAYS - 1), day),
                    metric.avg_overall_score.is_not(None))
             .order_by(metric.entity_id, metric.date))
    points: dict[str, list[tuple[date, float]]] = {agent: [] for agent in roles}
    for agent, when, score in conn.execute(query):
        points[agent].append((when, score))
    return tuple(ScoreSeries(agent, role, tuple(points[agent])) for agent, role in roles.items() if points[agent])


def chart_roles(board: Sequence[LeaderboardEntry], declining: Sequence[AgentTrend]) -> dict[str, str]:
    """The agents the score chart shows, by agent, with their role: the TOP_AGENTS top ranked ("rank
    N") and the first CHARTED_DECLINING distinct declining agents of ``declining`` (shortest window
    first, steepest first), "declining" (a top agent among them included)."""
    roles = {entry.agent_id: f"rank {entry.rank}" for entry in board if entry.rank is not None}
    roles = dict(list(roles.items())[:TOP_AGENTS])
    first_declining = list(dict.fromkeys(trend.agent_id for trend in declining))[:CHARTED_DECLINING]
    roles.update(dict.fromkeys(first_declining, DECLINING))
    return roles


# --- recommendations ---------------------------------------------------------------------------------------------


def recommendations(declining: Sequence[AgentTrend], rankings: Sequence[ProviderRanking],
                    findings: Sequence[PromptFinding]) -> tuple[Recommendation, ...]:
    """What to act on, most pressing first: agents whose work gets worse, then cheaper providers of
    the same quality, prompt versions that do better, and the best provider of each task type."""
    ranked = [r for r in rankings if r.rank is not None and r.status == RANKED]
    by_task_type: dict[str, list[ProviderRanking]] = {}
    for ranking in ranked:
        by_task_type.setdefault(ranking.task_type, []).append(ranking)
    cheaper = [rec for candidates in by_task_type.values() if (rec := _cheaper_provider(candidates))]
    return (*_declining_agents(declining),
            *sorted(cheaper, key=lambda rec: rec.evidence["cost_share"]),
            *(_prompt_version(finding) for finding in findings),
            *(_best_provider(candidates) for _, candidates in sorted(by_task_type.items())))


def _declining_agents(declining: Sequence[AgentTrend]) -> list[Recommendation]:
    """One per declining agent, on its shortest declining window (the most recent evidence)."""
    shortest: dict[str, AgentTrend] = {}
    for trend in sorted(declining, key=lambda t: t.window_days):
        shortest.setdefault(trend.agent_id, trend)
    steepest_first = sorted(shortest.values(), key=lambda t: (t.slope_per_day is None, t.slope_per_day or 0.0,
                                                              t.agent_id))
    return [Recommendation(
        kind="declining_agent",
        text=(f"{t.agent_id}'s overall score fell {signif(_magnitude(t.slope_per_day))}/day over {t.window_days} "
              f"days (95 % interval {signif(t.slope_low)} to {signif(t.slope_high)} per day), "
              f"n = {t.n_points} days with scores, {count(t.n_tasks, 'task')}: review its recent work."),
        evidence={"agent_id": t.agent_id, "window_days": t.window_days, "slope_per_day": t.slope_per_day,
                  "slope_low": t.slope_low, "slope_high": t.slope_high, "relative_change": t.relative_change,
                  "mann_kendall_p": t.mann_kendall_p, "n_points": t.n_points, "n_tasks": t.n_tasks})
        for t in steepest_first]


def _cheaper_provider(candidates: Sequence[ProviderRanking]) -> Recommendation | None:
    """The cheapest candidate whose quality is within QUALITY_MARGIN of the best quality, if it is
    cheaper than the candidate of the best quality."""
    best = max(candidates, key=lambda r: (r.avg_quality_score, -r.rank))
    matching = [r for r in candidates if r.avg_quality_score >= best.avg_quality_score - QUALITY_MARGIN
                and r.avg_cost_per_task < best.avg_cost_per_task]
    if not matching:
        return None
    cheap = min(matching, key=lambda r: (r.avg_cost_per_task, -r.avg_quality_score, r.rank))
    share = cheap.avg_cost_per_task / best.avg_cost_per_task
    return Recommendation(
        kind="cheaper_provider",
        text=(f"On {cheap.task_type}, {cheap.candidate} matches {best.candidate}'s quality "
              f"({cheap.avg_quality_score:.2f} vs {best.avg_quality_score:.2f}) at {share * 100:.0f} % of the cost "
              f"({usd(cheap.avg_cost_per_task)} vs {usd(best.avg_cost_per_task)} per task) over "
              f"{cheap.window_days} days (n = {cheap.n_tasks} and {best.n_tasks})."),
        evidence={"task_type": cheap.task_type, "candidate": cheap.candidate, "reference": best.candidate,
                  "quality": cheap.avg_quality_score, "reference_quality": best.avg_quality_score,
                  "cost_per_task": cheap.avg_cost_per_task, "reference_cost_per_task": best.avg_cost_per_task,
                  "cost_share": share, "window_days": cheap.window_days, "n_tasks": cheap.n_tasks,
                  "reference_n_tasks": best.n_tasks, "quality_margin": QUALITY_MARGIN})


def _prompt_version(finding: PromptFinding) -> Recommendation:
    f = finding
    return Recommendation(
        kind="prompt_version",
        text=(f"On {f.task_type}, prompt {f.better} beats {f.worse}: median quality {signif(f.median_better)} vs "
              f"{signif(f.median_worse)}, P({f.better} scores higher) = {signif(f.prob_better_wins)}, Holm-adjusted "
              f"p = {signif(f.p_value_holm)} over {f.window_days} days (n = {f.n_better} and {f.n_worse})."),
        evidence={"task_type": f.task_type, "better": f.better, "worse": f.worse, "median_better": f.median_better,
                  "median_worse": f.median_worse, "prob_better_wins": f.prob_better_wins,
                  "p_value_holm": f.p_value_holm, "window_days": f.window_days, "n_better": f.n_better,
                  "n_worse": f.n_worse})


def _best_provider(candidates: Sequence[ProviderRanking]) -> Recommendation:
    top = min(candidates, key=lambda r: (r.rank, r.provider, r.model))
    others = [r for r in candidates if r is not top]
    runner_up = min(others, key=lambda r: (r.rank, r.provider, r.model)) if others else None
    ahead = (f", {top.utility - runner_up.utility:.3f} utility ahead of {runner_up.candidate}" if runner_up
             else ", the only ranked candidate")
    return Recommendation(
        kind="best_provider",
        text=(f"On {top.task_type}, use {top.candidate}: best utility over {top.window_days} days{ahead} "
              f"(quality {top.avg_quality_score:.2f}, {usd(top.avg_cost_per_task)} per task, median response "
              f"{top.p50_response_time_ms:,.0f} ms, n = {top.n_tasks})."),
        evidence={"task_type": top.task_type, "candidate": top.candidate, "utility": top.utility,
                  "quality": top.avg_quality_score, "cost_per_task": top.avg_cost_per_task,
                  "p50_response_time_ms": top.p50_response_time_ms, "n_tasks": top.n_tasks,
                  "window_days": top.window_days, "runner_up": runner_up.candidate if runner_up else None,
                  "runner_up_utility": runner_up.utility if runner_up else None,
                  "candidates": len(candidates)})


# --- wording of figures (shared with the renderings) -------------------------------------------------------------

UNKNOWN = "unknown"


def _magnitude(value: float | None) -> float | None:
    return None if value is None else abs(value)


def signif(value: float | None, digits: int = 2) -> str:
    """``value`` to ``digits`` significant digits (0.013, -0.00014, 2e-07); "unknown" for None."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return UNKNOWN
    return f"{value:.{digits}g}"


def usd(value: float | None) -> str:
    """Dollars with cents, or four significant digits below a dollar ($0.0123); "unknown" for None."""
    if value is None:
        return UNKNOWN
    return f"${value:,.2f}" if abs(value) >= 1 else f"${value:.4g}"


def percent(value: float | None) -> str:
    return UNKNOWN if value is None else f"{value * 100:.1f} %"


def count(value: int | None, noun: str) -> str:
    """"1 task", "28 tasks", or "tasks unknown"."""
    if value is None:
        return f"{noun}s {UNKNOWN}"
    return f"{value:,} {noun}{'' if value == 1 else 's'}"


def score(value: float | None) -> str:
    return UNKNOWN if value is None else f"{value:.3f}"

