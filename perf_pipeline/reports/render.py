"""The reports' renderings: Markdown, a self-contained HTML page, and a Slack Block Kit summary.

Markdown and HTML say the same things: both are drawn from one list of sections (title, sentences,
a table, a list), so a figure cannot appear in one and be missing from the other. Every text from
the warehouse (agent names, task types, rules) is escaped for the format it goes into. The Slack
summary is short by design, and goes through ``notify.blocks.fit``, which keeps it within Slack's
limits however many agents, alerts or recommendations there are.
"""

from __future__ import annotations

import base64
import html as html_lib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from perf_pipeline.alerts.lifecycle import RESOLVED
from perf_pipeline.notify import blocks
from perf_pipeline.reports.charts import TITLES as CHART_TITLES
from perf_pipeline.reports.content import (
    WEEKLY,
    AgentTrend,
    Alert,
    MostImproved,
    Report,
    count,
    percent,
    score,
    signif,
    usd,
)

KEY_FIGURES, RECOMMENDATIONS, LEADERBOARD, TRENDS, ALERTS, ANOMALIES, PROVIDERS, PROMPTS, CHARTS = (
    "Key figures", "Recommendations", "Leaderboard", "Trends", "Alerts", "Anomalies", "Provider rankings",
    "Prompt versions", "Charts")
SECTIONS = (KEY_FIGURES, RECOMMENDATIONS, LEADERBOARD, TRENDS, ALERTS, ANOMALIES, PROVIDERS, PROMPTS)
SLACK_LIST_LINES = 5  # lines of a list in the Slack summary; the rest is in the full report
SLACK_RECOMMENDATIONS = 3
UNRANKED_REASONS = {"insufficient_data": "insufficient data (< 5 tasks)", "no_scores": "no scores"}


@dataclass(frozen=True)
class Section:
    """A part of the report in plain text, for any format to render (and escape) its own way."""

    title: str
    sentences: tuple[str, ...] = ()
    header: tuple[str, ...] = ()
    rows: tuple[tuple[str, ...], ...] = ()
    items: tuple[str, ...] = ()


def title(report: Report) -> str:
    kind = "Weekly" if report.period.kind == WEEKLY else "Daily"
    return f"{kind} agent performance report, {report.period.label}"


def _during(report: Report) -> str:
    period = report.period
    return f"in week {period.label}" if period.kind == WEEKLY else f"on {period.label}"


def sections(report: Report) -> list[Section]:
    """The report's sections, in reading order: what to do first, then the evidence."""
    return [_key_figures(report), _recommendations(report), _leaderboard(report), _trends(report),
            _alerts(report), _anomalies(report), _providers(report), _prompts(report)]


# --- Markdown --------------------------------------------------------------------------------------------------


def markdown(report: Report) -> str:
    """The report as Markdown (CommonMark with pipe tables), for a wiki page or a pull request."""
    lines = [f"# {_md(title(report))}", ""]
    for part in sections(report):
        lines += [f"## {part.title}", ""]
        lines += [f"{_md(sentence)}\n" for sentence in part.sentences]
        if part.rows:
            rule = "|" + " --- |" * len(part.header)
            lines += [_md_row(part.header), rule, *map(_md_row, part.rows), ""]
        if part.items:
            lines += [*(f"- {_md(item)}" for item in part.items), ""]
    return "\n".join(lines).rstrip() + "\n"


_MD_SPECIAL = str.maketrans({c: f"\\{c}" for c in "\\`*_[]<>#|~"})


def _md(text: str) -> str:
    """Text shown as is: Markdown's special characters escaped, line breaks as spaces."""
    return " ".join(text.split("\n")).translate(_MD_SPECIAL)


def _md_row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(map(_md, cells)) + " |"


# --- HTML ------------------------------------------------------------------------------------------------------

STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 2rem auto; max-width: 60rem;
       padding: 0 1rem; color: #1f2328; background: #ffffff; line-height: 1.45; }
h1 { font-size: 1.6rem; border-bottom: 2px solid #4c78a8; padding-bottom: .3rem; }
h2 { font-size: 1.2rem; margin-top: 2rem; color: #24476b; }
table { border-collapse: collapse; width: 100%; font-size: .9rem; margin: .5rem 0 1rem; }
th, td { border: 1px solid #d0d7de; padding: .3rem .5rem; text-align: left; vertical-align: top; }
th { background: #eef3f8; }
tr:nth-child(even) td { background: #f8fafc; }
ul { padding-left: 1.3rem; }
li { margin: .25rem 0; }
figure { margin: 1rem 0; }
figure img { max-width: 100%; height: auto; border: 1px solid #d0d7de; }
.no-data { color: #57606a; font-style: italic; }
"""


def html(report: Report, charts: Mapping[str, bytes]) -> str:
    """A self-contained page (inline style, charts as data: URLs): it opens from a file or an email
    without fetching anything."""
    esc = html_lib.escape
    body = [f"<h1>{esc(title(report))}</h1>"]
    for part in sections(report):
        body.append(f"<section><h2>{esc(part.title)}</h2>")
        body += [f"<p>{esc(sentence)}</p>" for sentence in part.sentences]
        if part.rows:
            head = "".join(f"<th>{esc(cell)}</th>" for cell in part.header)
            rows = "".join("<tr>" + "".join(f"<td>{esc(cell)}</td>" for cell in row) + "</tr>" for row in part.rows)
            body.append(f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")
        if part.items:
            body.append("<ul>" + "".join(f"<li>{esc(item)}</li>" for item in part.items) + "</ul>")
        body.append("</section>")
    body.append(f"<section><h2>{CHARTS}</h2>")
    for name, caption in CHART_TITLES.items():
        if name in charts:
            data = base64.b64encode(charts[name]).decode("ascii")
            body.append(f'<figure><img src="data:image/png;base64,{data}" alt="{esc(caption)}"></figure>')
        else:
            body.append(f'<p class="no-data">{esc(caption)}: no data.</p>')
    body.append("</section>")
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>{esc(title(report))}"
            f"</title>\n<style>{STYLE}</style>\n</head>\n<body>\n" + "\n".join(body) + "\n</body>\n</html>\n")


# --- Slack -----------------------------------------------------------------------------------------------------


def slack_blocks(report: Report, report_url: str | None) -> list[dict]:
    """A Block Kit summary: key figures, top and declining agents, alerts, the first recommendations,
    and a pointer to the full report; within Slack's limits whatever the report holds."""
    esc = blocks.escape
    where = f"<{report_url}|the full report>" if report_url else "the full report"
    t = report.totals
    unknown_cost = f" ({count(t.tasks_cost_unknown, 'task')} of unknown cost)" if t.tasks_cost_unknown else ""
    figures = ({"Tasks": f"{t.n_tasks:,}", "Success rate": percent(t.success_rate),
                "Cost": usd(t.total_cost_usd) + unknown_cost, "Evaluation cost": _evaluation_cost(report),
                "SLA compliance": percent(t.sla_compliance_rate), "Average overall score": score(t.avg_overall_score)}
               if t.n_tasks else {"Tasks": "0", "Evaluation cost": _evaluation_cost(report)})
    ranked, declining = report.ranked, report.declining
    listed_alerts = (*report.alerts_firing, *report.alerts_resolved)
    summary = [
        blocks.header(title(report)),
        {**blocks.section(f"*{KEY_FIGURES}*" + ("" if t.n_tasks else f": no tasks were completed {_during(report)}.")),
         "fields": [{"type": "mrkdwn", "text": f"*{name}*\n{value}"} for name, value in figures.items()]},
        blocks.divider(),
        blocks.section(_slack_list(
            f"Top agents ({report.window_days} days)", len(ranked), "no agent is ranked", where,
            [f"{e.rank}. {esc(e.agent_id)}: {score(e.avg_overall_score)} ({count(e.n_tasks, 'task')})"
             for e in ranked[:SLACK_LIST_LINES]])),
        blocks.section(_slack_list("Declining agents", len(declining), "none", where,
                                   [esc(_trend_line(trend)) for trend in declining[:SLACK_LIST_LINES]])),
        blocks.section(_slack_list(
            f"Alerts ({len(report.alerts_firing)} firing, {len(report.alerts_resolved)} resolved)", len(listed_alerts),
            "none fired or resolved", where,
            [f"{_alert_icon(a)} {esc(_alert_line(a))}" for a in listed_alerts[:SLACK_LIST_LINES]])),
        blocks.section(_slack_list(RECOMMENDATIONS, len(report.recommendations), "none", where, [
            f"{n}. {esc(rec.text)}" for n, rec in enumerate(report.recommendations[:SLACK_RECOMMENDATIONS], start=1)])),
        blocks.context(f"Everything else, with the evidence and the charts: {where}."),
    ]
    return blocks.fit(summary, f"… {{n}} more blocks in {where}.")


def _slack_list(heading: str, total: int, empty: str, where: str, shown: list[str]) -> str:
    """A heading and the lines shown, then how many more the full report has."""
    if total > len(shown):
        shown = [*shown, f"… and {total - len(shown)} more in {where}"]
    return f"*{heading}*\n" + ("\n".join(shown) if shown else f"_{empty}_")


def _alert_icon(alert: Alert) -> str:
    if alert.status == RESOLVED:
        return ":white_check_mark:"
    return ":red_circle:" if alert.severity == "critical" else ":large_orange_circle:"


# --- sections --------------------------------------------------------------------------------------------------


def _key_figures(report: Report) -> Section:
    t = report.totals
    if not t.n_tasks:
        return Section(KEY_FIGURES, (f"No tasks were completed {_during(report)}.",
                                     f"Evaluation cost (LLM judge): {_evaluation_cost(report)}."))
    unknown_cost = (f"; {count(t.tasks_cost_unknown, 'task')} of unknown cost, not counted"
                    if t.tasks_cost_unknown else "")
    return Section(KEY_FIGURES, items=(
        f"Tasks: {t.n_tasks:,} ({t.tasks_completed:,} succeeded, {t.tasks_failed:,} failed or timed out)",
        f"Success rate: {percent(t.success_rate)}",
        f"Cost: {usd(t.total_cost_usd)} for {count(t.n_cost, 'task')} of known cost{unknown_cost}",
        f"Evaluation cost (LLM judge): {_evaluation_cost(report)}",
        f"SLA compliance: {percent(t.sla_compliance_rate)} of {count(t.n_sla, 'task')} with an SLA",
        f"Average overall score: {score(t.avg_overall_score)} over {count(t.n_overall, 'scored task')}",
    ))


def _evaluation_cost(report: Report) -> str:
    t = report.totals
    if not t.judge_calls:
        return "none (no judge calls)"
    unpriced = f", {count(t.judge_calls_unpriced, 'call')} without a price" if t.judge_calls_unpriced else ""
    return f"{usd(t.evaluation_cost_usd)} for {count(t.judge_calls, 'call')}{unpriced}"


def _recommendations(report: Report) -> Section:
    if not report.recommendations:
        return Section(RECOMMENDATIONS, (f"No recommendation as of {report.period.last}: no agent is declining, "
                                         "no provider is ranked and no prompt version beats another.",))
    return Section(RECOMMENDATIONS, items=tuple(rec.text for rec in report.recommendations))


def _leaderboard(report: Report) -> Section:
    intro = f"Agents as of {report.period.last}, over the {report.window_days} days ending that day."
    if not report.leaderboard:
        return Section(LEADERBOARD, (f"No leaderboard for {report.period.last}: no agent has tasks in the "
                                     f"{report.window_days} days ending that day.",))
    rows = tuple((str(e.rank) if e.rank is not None else "unranked", e.agent_id,
                  "" if e.rank is not None else UNRANKED_REASONS.get(e.status, e.status), e.department or "unknown",
                  score(e.avg_overall_score), f"{e.n_tasks:,}", percent(e.success_rate), usd(e.avg_cost_per_task))
                 for e in report.leaderboard)
    return Section(LEADERBOARD, (intro,), ("Rank", "Agent", "Why unranked", "Department", "Overall score", "Tasks",
                                           "Success rate", "Cost per task"), rows)


def _trends(report: Report) -> Section:
    items = [_most_improved_line(best) for best in report.most_improved]
    items += [_trend_line(trend) for trend in (*report.improving, *report.declining)]
    if not report.improving and not report.declining:
        items.append("No agent's overall score is improving or declining significantly.")
    return Section(TRENDS, (f"Overall-score trends of agents as of {report.period.last} (Theil-Sen slope per day, "
                            "95 % interval).",), items=tuple(items))


def _most_improved_line(best: MostImproved) -> str:
    if best.agent_id is None:
        return (f"Most improved over {best.window_days} days: none ({best.candidates} of "
                f"{count(best.agents_evaluated, 'agent')} evaluated improved significantly).")
    return (f"Most improved over {best.window_days} days: {best.agent_id}, {_signed(best.slope_per_day)}/day "
            f"(95 % interval {signif(best.slope_low)} to {signif(best.slope_high)}), n = {best.n_points} days.")


def _trend_line(trend: AgentTrend) -> str:
    return (f"{trend.agent_id} {trend.direction} over {trend.window_days} days: {_signed(trend.slope_per_day)}/day "
            f"(95 % interval {signif(trend.slope_low)} to {signif(trend.slope_high)}; change over the window "
            f"{_signed_percent(trend.relative_change)}; Mann-Kendall p = {signif(trend.mann_kendall_p)}), "
            f"n = {trend.n_points} days, {count(trend.n_tasks, 'task')}.")


def _signed(value: float | None) -> str:
    text = signif(value)
    return f"+{text}" if value is not None and value > 0 else text


def _signed_percent(value: float | None) -> str:
    text = percent(value)
    return f"+{text}" if value is not None and value > 0 else text


def _alerts(report: Report) -> Section:
    listed = (*report.alerts_firing, *report.alerts_resolved)
    if not listed:
        return Section(ALERTS, (f"No alert fired or resolved {_during(report)}.",))
    rows = tuple((a.severity, a.status if a.silenced_by is None else f"{a.status} (silenced by #{a.silenced_by})",
                  a.rule, f"{a.entity_type} {a.entity_id}", a.metric or "", signif(a.observed, 3),
                  _limit(a), str(a.started_on), str(a.resolved_on or "")) for a in listed)
    return Section(ALERTS, (f"{len(report.alerts_firing)} firing and {len(report.alerts_resolved)} resolved "
                            f"{_during(report)}, as of their latest evaluation.",),
                   ("Severity", "Status", "Rule", "Entity", "Metric", "Observed", "Limit", "Since", "Resolved on"),
                   rows)


def _limit(alert: Alert) -> str:
    if alert.threshold is not None:
        return f"threshold {signif(alert.threshold, 3)}"
    if alert.baseline is not None:
        return f"baseline {signif(alert.baseline, 3)}"
    return ""


def _alert_line(alert: Alert) -> str:
    silenced = f", silenced by #{alert.silenced_by}" if alert.silenced_by is not None else ""
    observed = f" {alert.metric} = {signif(alert.observed, 3)}" if alert.metric else ""
    limit = f" ({_limit(alert)})" if alert.threshold is not None or alert.baseline is not None else ""
    since = (f"resolved on {alert.resolved_on}" if alert.resolved_on and alert.status == RESOLVED
             else f"since {alert.started_on}")
    return f"{alert.severity} {alert.rule} on {alert.entity_id}:{observed}{limit}, {since}{silenced}"


def _anomalies(report: Report) -> Section:
    if not report.anomalies:
        return Section(ANOMALIES, (f"No anomaly {_during(report)}.",))
    rows = tuple((str(a.date), a.entity_id, a.metric, signif(a.observed, 3), signif(a.baseline_median, 3),
                  f"{a.baseline_days}", signif(a.robust_z, 3), a.direction or "unknown") for a in report.anomalies)
    return Section(ANOMALIES, ("Days whose value is far from the median of the previous days (|robust z| above "
                               "the threshold), per provider and task type.",),
                   ("Date", "Provider/task type", "Metric", "Observed", "Baseline median", "Baseline days",
                    "Robust z", "Direction"), rows)


def _providers(report: Report) -> Section:
    if not report.provider_rankings:
        return Section(PROVIDERS, (f"No provider ranking for {report.period.last}.",))
    window = report.provider_rankings[0].window_days
    rows = tuple((r.task_type, str(r.rank) if r.rank is not None else f"unranked: {r.status.replace('_', ' ')}",
                  r.candidate, score(r.avg_quality_score), usd(r.avg_cost_per_task), _ms(r.p50_response_time_ms),
                  percent(r.success_rate), score(r.utility), f"{r.n_tasks:,}") for r in report.provider_rankings)
    return Section(PROVIDERS, (f"Per task type, provider/model candidates over the {window} days ending "
                               f"{report.period.last}, ranked by utility (quality, cost and latency).",),
                   ("Task type", "Rank", "Provider/model", "Quality", "Cost per task", "Median response",
                    "Success rate", "Utility", "Tasks"), rows)


def _ms(value: float | None) -> str:
    return "unknown" if value is None else f"{value:,.0f} ms"


def _prompts(report: Report) -> Section:
    if not report.prompt_findings:
        return Section(PROMPTS, (f"No prompt version beats another significantly as of {report.period.last}.",))
    rows = tuple((f.task_type, f.better, f.worse, f"{signif(f.median_better)} vs {signif(f.median_worse)}",
                  signif(f.prob_better_wins), signif(f.p_value_holm), f"{f.n_better} and {f.n_worse}",
                  f"{f.window_days}") for f in report.prompt_findings)
    return Section(PROMPTS, ("Prompt versions whose quality scores beat another version's (Mann-Whitney U, "
                             "p-values Holm-adjusted per task type).",),
                   ("Task type", "Better", "Than", "Median quality", "P(better scores higher)", "Holm-adjusted p",
                    "Tasks", "Days"), rows)
