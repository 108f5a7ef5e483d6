"""The reports' charts as PNG bytes: the daily overall score of the top ranked agents and of the first
declining ones (``content.chart_roles``), and the cost per task of each provider over the period.

Each chart is drawn on a Figure of its own with matplotlib's Agg renderer (no pyplot: no global
state shared between runs in threads), at a fixed size and resolution and without the metadata
matplotlib would stamp, so one report always gives the same bytes. A chart with nothing to draw is
None, and the report says "no data" rather than showing empty axes.

The axes sit at fixed margins, room for the title, the axis label and two lines of tick labels: a
layout engine ("constrained") would draw each figure twice to measure it, and took 0.96 s for a
report's two charts against 0.43 s. Drawing is still most of a report's time, so a run of many
reports (a backfill) draws them in worker processes (``ChartDrawer``) while the next reports are
gathered; the same code draws them, so the bytes are the same.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from datetime import timedelta
from types import TracebackType

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.dates import DateFormatter
from matplotlib.figure import Figure

from perf_pipeline.aggregates.trends import DECLINING
from perf_pipeline.reports.content import HISTORY_DAYS, Report, usd
from perf_pipeline.settings import usable_cpus, worker_context

SIZE_INCHES = (8.0, 4.0)
DPI = 100
# Fractions of the figure: left of the axes, the y label and tick labels; below, the x tick labels
# (a provider of unknown cost takes two lines); above, the title.
LEFT, RIGHT, TOP = 0.1, 0.98, 0.91
BOTTOM_ONE_LINE, BOTTOM_TWO_LINES = 0.1, 0.17
SCORE_TREND, COST_PER_TASK = "score_trend", "cost_per_task"
# From this many reports in a run on, their charts are drawn by worker processes: starting a worker
# (importing matplotlib) costs about as much as drawing a few reports.
POOL_MIN_REPORTS = 4
TITLES = {SCORE_TREND: f"Daily overall score, last {HISTORY_DAYS} days",
          COST_PER_TASK: "Average cost per task by provider"}


def charts(report: Report) -> dict[str, bytes]:
    """The charts that have data, by name (SCORE_TREND, COST_PER_TASK)."""
    drawn = {SCORE_TREND: score_trend(report), COST_PER_TASK: cost_per_task(report)}
    return {name: png for name, png in drawn.items() if png is not None}


def score_trend(report: Report) -> bytes | None:
    """Daily average overall score of the agents of ``content.chart_roles``: the top ranked ones and
    the first declining ones (dashed); how many other agents decline is written in a corner."""
    series = [s for s in report.score_history if s.points]
    if not series:
        return None
    figure = _figure(BOTTOM_ONE_LINE)
    axes = figure.add_subplot()
    for s in series:
        days, scores = zip(*s.points, strict=True)
        axes.plot(days, scores, marker="o", markersize=3, linewidth=1.6,
                  linestyle="--" if s.role == DECLINING else "-", label=f"{s.agent_id} ({s.role})")
    last = report.period.last
    axes.set_xlim(last - timedelta(days=HISTORY_DAYS - 1), last)
    axes.set_ylim(0, 1)
    axes.set_ylabel("average overall score")
    axes.xaxis.set_major_formatter(DateFormatter("%m-%d"))
    axes.grid(alpha=0.3)
    axes.legend(loc="lower left", fontsize="small", ncols=2)
    more = len({t.agent_id for t in report.declining} - {s.agent_id for s in series})  # declining, not drawn
    if more:
        axes.text(0.99, 0.02, f"{more} more declining agent{'s' if more > 1 else ''}: see Trends",
                  transform=axes.transAxes, ha="right", va="bottom", fontsize="small")
    axes.set_title(TITLES[SCORE_TREND])
    return _png(figure)


def cost_per_task(report: Report) -> bytes | None:
    """Average cost per task of each provider's tasks of known cost; providers whose costs are all
    unknown are named under the axis, without a bar (an unknown cost is not a zero)."""
    costs = report.provider_costs
    if not any(c.avg_cost_per_task is not None for c in costs):
        return None
    figure = _figure(BOTTOM_TWO_LINES)
    axes = figure.add_subplot()
    positions = range(len(costs))
    heights = [c.avg_cost_per_task or 0.0 for c in costs]
    bars = axes.bar(positions, heights, color="#4C78A8")
    labels = [f"{usd(c.avg_cost_per_task)}\nn = {c.n_cost}" if c.avg_cost_per_task is not None else ""
              for c in costs]
    axes.bar_label(bars, labels=labels, fontsize="small", padding=2)
    axes.set_xticks(list(positions), [c.provider if c.avg_cost_per_task is not None else f"{c.provider}\n(cost unknown)"
                                      for c in costs])
    axes.set_ylabel("USD per task")
    axes.set_ylim(0, max(heights) * 1.25)
    axes.grid(axis="y", alpha=0.3)
    axes.set_title(f"{TITLES[COST_PER_TASK]}, {report.period.label}")
    return _png(figure)


def _figure(bottom: float) -> Figure:
    figure = Figure(figsize=SIZE_INCHES, dpi=DPI)
    FigureCanvasAgg(figure)
    figure.subplots_adjust(left=LEFT, right=RIGHT, bottom=bottom, top=TOP)
    return figure


def _png(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI, metadata={"Software": None})
    return buffer.getvalue()


class ChartDrawer:
    """Draws reports' charts, in worker processes when a run has ``POOL_MIN_REPORTS`` reports or more
    and more than one CPU, else in this process when asked for them.

    ``submit(report)`` returns a function giving that report's ``charts``. Workers come from
    ``settings.worker_context``, as the ingest's do (a forkserver preloading this module, unless an
    ingest of this process started it first). Leaving the ``with`` block stops the workers, dropping
    what was not drawn yet when it is left by an error.
    """

    def __init__(self, reports: int) -> None:
        workers = min(usable_cpus(), reports) if reports >= POOL_MIN_REPORTS else 1
        self._pool: ProcessPoolExecutor | None = None
        self.workers = workers if workers > 1 else 0  # 0: drawn in this process
        if workers > 1:
            self._pool = ProcessPoolExecutor(workers, mp_context=worker_context([__name__]))

    def submit(self, report: Report) -> Callable[[], dict[str, bytes]]:
        if self._pool is None:
            return lambda: charts(report)
        return self._pool.submit(charts, report).result

    def __enter__(self) -> ChartDrawer:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=error is not None)
