"""The renderings of a report: Markdown with every section, a self-contained HTML page with its charts,
and a Slack summary that stays within Block Kit's limits whatever the report holds."""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import json
from html.parser import HTMLParser
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from perf_pipeline.notify import blocks
from perf_pipeline.reports.charts import COST_PER_TASK, POOL_MIN_REPORTS, SCORE_TREND, ChartDrawer, charts
from perf_pipeline.reports.content import (
    AgentTrend,
    Alert,
    LeaderboardEntry,
    Period,
    Recommendation,
    Report,
    ScoreSeries,
    Totals,
    chart_roles,
)
from perf_pipeline.reports.render import SECTIONS, html, markdown, slack_blocks
from perf_pipeline.settings import usable_cpus
from perf_pipeline_tests.reports.test_content import planted_week

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
HOSTILE = '<img src="https://evil.example/x.png"> | *bold* & <script>alert(1)</script>'


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Report:
    return planted_week(tmp_path_factory)


def empty_report() -> Report:
    totals = Totals(n_tasks=0, tasks_completed=0, tasks_failed=0, success_rate=None, n_cost=0, total_cost_usd=None,
                    n_overall=0, avg_overall_score=None, n_sla=0, sla_compliance_rate=None, judge_calls=0,
                    judge_calls_priced=0, evaluation_cost_usd=None)
    return Report(period=Period.daily(dt.date(2026, 3, 4)), window_days=7, totals=totals, provider_costs=(),
                  leaderboard=(), most_improved=(), improving=(), declining=(), anomalies=(), alerts_firing=(),
                  alerts_resolved=(), provider_rankings=(), prompt_findings=(), recommendations=(), score_history=())


class Resources(HTMLParser):
    """The tags of a page and every URL it would load or link to."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.urls: list[str] = []
        self.images: list[str] = []
        self.title = ""
        self._in_title = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self._in_title = tag == "title"
        for name, value in attrs:
            if name in ("src", "href", "srcset", "action", "poster", "data") and value is not None:
                self.urls.append(value)
                if tag == "img" and name == "src":
                    self.images.append(value)

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title += data

    def handle_endtag(self, tag: str) -> None:
        self._in_title = False


def test_the_markdown_has_every_section(report: Report) -> None:
    text = markdown(report)
    assert text.startswith("# Weekly agent performance report, 2026-W11\n")
    positions = [text.index(f"\n## {title}\n") for title in SECTIONS]
    assert positions == sorted(positions)
    board = text[text.index("## Leaderboard"):text.index("## Trends")]
    assert sum(line.startswith("| ") for line in board.splitlines()) == len(report.leaderboard) + 2
    assert "| unranked | agent-09 | insufficient data (\\< 5 tasks) | engineering | unknown | 4 |" in board
    assert f"- {report.recommendations[0].text}" in text  # the declining agent's, with nothing to escape
    assert "code\\_review, openai/gpt-4.1-mini matches anthropic/claude-x's quality" in text
    assert "Cost: $" in text and "4 tasks of unknown cost, not counted" in text


def test_the_html_is_self_contained_with_its_charts(report: Report) -> None:
    drawn = charts(report)
    assert set(drawn) == {SCORE_TREND, COST_PER_TASK}
    page = html(report, drawn)
    parsed = Resources()
    parsed.feed(page)
    assert parsed.title == "Weekly agent performance report, 2026-W11"
    assert not [url for url in parsed.urls if not url.startswith("data:")]
    assert not {"script", "link", "iframe", "object", "embed"} & set(parsed.tags)
    assert "url(" not in page and "@import" not in page  # nothing fetched by the style either
    embedded = [base64.b64decode(src.removeprefix("data:image/png;base64,")) for src in parsed.images]
    assert embedded == [drawn[SCORE_TREND], drawn[COST_PER_TASK]]
    # Tables: the leaderboard, anomalies, provider rankings and prompt versions (the week has no alert).
    assert [parsed.tags.count(tag) for tag in ("h2", "table")] == [len(SECTIONS) + 1, 4]


def test_text_from_the_warehouse_is_escaped_in_every_format() -> None:
    entry = LeaderboardEntry(agent_id=HOSTILE, rank=1, status="ranked", department=HOSTILE, n_tasks=9, n_overall=9,
                             avg_overall_score=0.5, success_rate=1.0, avg_cost_per_task=0.01)
    report = dataclasses.replace(empty_report(), leaderboard=(entry,),
                                 recommendations=(Recommendation("declining_agent", HOSTILE, {}),))
    page = html(report, {})
    parsed = Resources()
    parsed.feed(page)
    assert parsed.images == [] and "script" not in parsed.tags and "&lt;script&gt;" in page
    text = markdown(report)
    escaped = r'\<img src="https://evil.example/x.png"\> \| \*bold\* & \<script\>alert(1)\</script\>'
    assert f"\n- {escaped}\n" in text and f"| 1 | {escaped} |  | {escaped} |" in text
    sections = [b["text"]["text"] for b in slack_blocks(report, None) if b["type"] == "section"]
    assert any("&lt;img src=\"https://evil.example/x.png\"&gt; | *bold* &amp; &lt;script&gt;" in s for s in sections)


def test_charts_are_the_same_bytes_every_time_and_none_without_data(report: Report) -> None:
    first, second = charts(report), charts(report)
    assert first == second
    for png in first.values():
        assert png.startswith(PNG_SIGNATURE) and b"matplotlib" not in png.lower() and b"Software" not in png
    empty = empty_report()
    assert charts(empty) == {}
    assert "Daily overall score, last 30 days: no data." in html(empty, {})
    assert "Average cost per task by provider: no data." in html(empty, {})


def test_a_backfill_draws_in_workers_the_bytes_drawn_in_process(report: Report) -> None:
    """A run of many reports draws their charts in worker processes: the same bytes, in order; a run
    of a few draws them itself."""
    days = [dataclasses.replace(report, period=Period.daily(report.period.first + dt.timedelta(days=k)))
            for k in range(POOL_MIN_REPORTS)] + [empty_report()]
    with ChartDrawer(len(days)) as drawer:
        assert drawer.workers == (min(usable_cpus(), len(days)) if usable_cpus() > 1 else 0)
        drawn = [drawer.submit(day) for day in days]
        assert [pictures() for pictures in drawn] == [charts(day) for day in days]
    with ChartDrawer(POOL_MIN_REPORTS - 1) as drawer:
        assert drawer.workers == 0
        assert drawer.submit(report)() == charts(report)


def test_the_slack_summary_of_the_planted_week(report: Report) -> None:
    summary = slack_blocks(report, "https://reports.example/weekly/2026-W11.html")
    assert summary[0] == blocks.header("Weekly agent performance report, 2026-W11")
    fields = {f["text"].split("\n")[0]: f["text"].split("\n")[1] for f in summary[1]["fields"]}
    assert fields["*Tasks*"] == "130" and fields["*Cost*"].endswith("(4 tasks of unknown cost)")
    texts = [b["text"]["text"] for b in summary if b["type"] == "section"]
    top = next(t for t in texts if t.startswith("*Top agents (7 days)*"))
    assert top.split("\n")[1:] == [f"{e.rank}. {e.agent_id}: {e.avg_overall_score:.3f} ({e.n_tasks} tasks)"
                                    for e in report.ranked]
    assert [e.agent_id for e in report.ranked] == ["agent-01", "agent-02", "agent-03", "agent-07"]
    assert "agent-07 declining over 7 days" in next(t for t in texts if t.startswith("*Declining agents*"))
    recommended = next(t for t in texts if t.startswith("*Recommendations*")).split("\n")
    assert [line[:3] for line in recommended[1:4]] == ["1. ", "2. ", "3. "]
    assert recommended[4] == f"… and {len(report.recommendations) - 3} more in " \
                             "<https://reports.example/weekly/2026-W11.html|the full report>"
    assert summary[-1]["type"] == "context" and "2026-W11.html" in summary[-1]["elements"][0]["text"]


# --- Block Kit limits, whatever the report ---------------------------------------------------------------------

names = st.text(min_size=1, max_size=30)
long_names = st.one_of(names, names.map(lambda name: name * 200))  # unicode, up to 6,000 characters
maybe_numbers = st.none() | st.floats(allow_nan=False, allow_infinity=False)
counts = st.integers(min_value=0, max_value=10**12)
days = st.dates(dt.date(2000, 1, 1), dt.date(2100, 1, 1))


def many(strategy: st.SearchStrategy) -> st.SearchStrategy:
    """None, a few, or thousands of items (a few drawn, repeated: drawing thousands would be slow)."""
    return st.tuples(st.lists(strategy, max_size=3), st.sampled_from([1, 2, 40, 1500])).map(
        lambda drawn: tuple(drawn[0] * drawn[1]))


totals = st.builds(Totals, n_tasks=counts, tasks_completed=counts, tasks_failed=counts, success_rate=maybe_numbers,
                   n_cost=counts, total_cost_usd=maybe_numbers, n_overall=counts, avg_overall_score=maybe_numbers,
                   n_sla=counts, sla_compliance_rate=maybe_numbers, judge_calls=counts, judge_calls_priced=counts,
                   evaluation_cost_usd=maybe_numbers)
entries = st.builds(LeaderboardEntry, agent_id=long_names, rank=st.none() | st.integers(1, 10**6),
                    status=st.sampled_from(["ranked", "insufficient_data", "no_scores"]),
                    department=st.none() | long_names, n_tasks=counts, n_overall=counts,
                    avg_overall_score=maybe_numbers, success_rate=maybe_numbers, avg_cost_per_task=maybe_numbers)
agent_trends = st.builds(AgentTrend, agent_id=long_names, window_days=st.sampled_from([7, 30]),
                         direction=st.sampled_from(["improving", "declining"]), n_points=counts,
                         slope_per_day=maybe_numbers, slope_low=maybe_numbers, slope_high=maybe_numbers,
                         relative_change=maybe_numbers, mann_kendall_p=maybe_numbers, n_tasks=st.none() | counts)
alert_states = st.builds(Alert, rule=long_names, entity_type=names, entity_id=long_names,
                         severity=st.sampled_from(["warning", "critical"]),
                         status=st.sampled_from(["firing", "resolved"]), started_on=days,
                         resolved_on=st.none() | days, as_of_date=days, metric=st.none() | names,
                         window_days=st.none() | st.integers(1, 90), observed=maybe_numbers, threshold=maybe_numbers,
                         baseline=maybe_numbers, n_tasks=st.none() | counts, silenced_by=st.none() | counts)
recommended = st.builds(Recommendation, kind=names, text=long_names, evidence=st.just({}))
periods = st.one_of(days.map(Period.daily), days.map(lambda day: Period.weekly(day - dt.timedelta(day.weekday()))))
reports = st.builds(Report, period=periods, window_days=st.sampled_from([7, 30]), totals=totals,
                    provider_costs=st.just(()), leaderboard=many(entries), most_improved=st.just(()),
                    improving=many(agent_trends), declining=many(agent_trends), anomalies=st.just(()),
                    alerts_firing=many(alert_states), alerts_resolved=many(alert_states), provider_rankings=st.just(()),
                    prompt_findings=st.just(()), recommendations=many(recommended), score_history=st.just(()))
urls = st.none() | st.text(max_size=3000).map(lambda path: "https://reports.example/" + quote(path))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(report=reports, report_url=urls)
def test_the_slack_summary_stays_within_block_kit_limits(report: Report, report_url: str | None) -> None:
    summary = slack_blocks(report, report_url)
    json.dumps(summary)  # sendable as it is
    assert 1 <= len(summary) <= blocks.MAX_BLOCKS and summary[0]["type"] == "header"
    for block in summary:
        if block["type"] == "header":
            assert 0 < len(block["text"]["text"]) <= blocks.MAX_HEADER_TEXT
        elif block["type"] == "section":
            assert 0 < len(block["text"]["text"]) <= blocks.MAX_SECTION_TEXT
            assert len(block.get("fields", [])) <= 10
            assert all(0 < len(f["text"]) <= 2000 for f in block.get("fields", []))
        elif block["type"] == "context":
            assert 0 < len(block["elements"]) <= blocks.MAX_CONTEXT_ELEMENTS
            assert all(0 < len(e["text"]) <= blocks.MAX_SECTION_TEXT for e in block["elements"])
        else:
            assert block == blocks.divider()


def _declining(agent: str, window: int) -> AgentTrend:
    return AgentTrend(agent_id=agent, window_days=window, direction="declining", n_points=7, slope_per_day=-0.01,
                      slope_low=-0.02, slope_high=-0.005, relative_change=-0.2, mann_kendall_p=0.01, n_tasks=20)


# As the report holds them: shortest window first, steepest first; agent-b declines on both windows.
DECLINING_AGENTS = (_declining("agent-b", 7), _declining("agent-a", 7), _declining("agent-b", 30),
                    _declining("agent-c", 30), _declining("agent-d", 30), _declining("agent-e", 30))


def test_the_score_chart_shows_the_top_agents_and_the_first_declining_ones() -> None:
    board = [LeaderboardEntry(agent_id=f"agent-{name}", rank=rank, status="ranked", department="eng", n_tasks=9,
                              n_overall=9, avg_overall_score=0.9 - rank / 10, success_rate=1.0,
                              avg_cost_per_task=0.01) for rank, name in enumerate("xyaz", start=1)]
    board.append(dataclasses.replace(board[0], agent_id="agent-w", rank=None, status="insufficient_data"))
    roles = chart_roles(board, DECLINING_AGENTS)
    # The top 3 ranked (agent-a, ranked third, also declines: charted as declining) and the first 3
    # distinct declining agents; agent-z (rank 4), agent-c's followers and the unranked are left out.
    assert roles == {"agent-x": "rank 1", "agent-y": "rank 2", "agent-a": "declining", "agent-b": "declining",
                     "agent-c": "declining"}
    assert chart_roles([], ()) == {}


def test_the_score_chart_counts_the_declining_agents_it_does_not_draw(report: Report,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from matplotlib.axes import Axes

    written: list[str] = []
    text = Axes.text

    def recorded(self: Axes, x: float, y: float, s: str, *args, **kwargs):
        written.append(s)
        return text(self, x, y, s, *args, **kwargs)

    monkeypatch.setattr(Axes, "text", recorded)
    drawn = [ScoreSeries(agent, "declining", ((report.period.last, 0.5),)) for agent in ("agent-b", "agent-a")]
    drawn.append(ScoreSeries("agent-c", "declining", ()))  # no score in the period: not drawn
    png = charts(dataclasses.replace(report, declining=DECLINING_AGENTS, score_history=tuple(drawn)))
    assert png[SCORE_TREND].startswith(PNG_SIGNATURE)
    assert written == ["3 more declining agents: see Trends"]  # agent-c, agent-d and agent-e
    written.clear()
    charts(dataclasses.replace(report, declining=DECLINING_AGENTS[:3], score_history=tuple(drawn[:2])))
    assert written == []  # every declining agent is drawn
