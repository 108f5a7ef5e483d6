"""Synthetic task logs of AI agents, for demos and for the 1,000,000-event ingest benchmark.

The lines follow the input contract (``perf_pipeline/contract/task_log.schema.json``) and carry
the quirks real logs have, so every stage of the pipeline has work to do: agents drift over the
run, tasks finish after midnight, feedback arrives days late, some values are unknown, some tasks
come without a ``task_type``, and a small share of lines is broken on purpose (quarantine),
repeated (deduplication) or re-sent with other content (conflict detection).

Everything derives from the seed and counters (no clock, no uuid4), so the same arguments give
byte-identical files. Numbers are drawn per day with numpy in bulk and only the assembly of each
event is a Python loop; big runs generate days in parallel worker processes, which keeps a
million tasks well under a minute.
"""

from __future__ import annotations

import csv
import functools
import gzip
import json
import multiprocessing
import random
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from datetime import date, timedelta
from operator import itemgetter
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from perf_pipeline.settings import usable_cpus

FILE_FORMATS = ("jsonl", "jsonl.gz", "csv", "parquet")
EVENT_TYPES = ("task", "feedback", "peer_evaluation", "message")
MALFORMED_KINDS = (
    "not_json",
    "missing_agent_id",
    "rating_out_of_range",
    "unknown_status",
    "timestamp_without_offset",
    "completed_before_assigned",
    "self_evaluation",
    "negative_tokens",
    "string_tokens",
)
DUPLICATE, CONFLICT = "duplicate", "conflict"
BAD_LINE_KINDS = (*MALFORMED_KINDS, DUPLICATE, CONFLICT)

STATUSES = ("success", "failed", "timeout", "cancelled")
SUCCESS, FAILED, TIMEOUT, CANCELLED = range(4)
PROMPT_VERSIONS = ("v1", "v2", "v3")
STEP_NODES = ("plan", "retrieve", "tool_call", "draft", "verify", "revise")
# Columns of the task table in CSV/Parquet mode: the contract's task fields, then the extra field.
TASK_COLUMNS = (
    "event_type", "task_id", "agent_id", "agent_name", "department", "project_id", "provider",
    "model", "task_type", "objective", "prompt_version", "assigned_at", "started_at",
    "completed_at", "status", "input_tokens", "output_tokens", "cost_usd", "tool_invocations",
    "revision_count", "response_time_ms", "sla_seconds", "input", "output", "code_review",
    "user_rating", "feedback_type", "steps", "trace_id",
)
_NESTED_COLUMNS = frozenset({"code_review", "steps"})
_PARQUET_TYPES = {
    **{name: pa.int64() for name in
       ("input_tokens", "output_tokens", "tool_invocations", "revision_count", "user_rating")},
    **{name: pa.float64() for name in ("cost_usd", "response_time_ms", "sla_seconds")},
}

DAY_MS = 86_400_000
_AFTER_DAY_MS = 2 * DAY_MS  # sort key past every event of a day's file
_MINUTE_MS = 60_000
_EPOCH = date(1970, 1, 1)
_MISSING = object()  # a key left out of the event entirely, unlike None which is written as null
T = TypeVar("T")
_encode = json.JSONEncoder(separators=(",", ":"), check_circular=False).encode


@dataclass(frozen=True)
class ModelProfile:
    """Price, speed and quality of a model: what drives cost, latency and success."""

    provider: str
    model: str
    usd_per_m_input: float | None  # None: self-hosted, the price is unknown
    usd_per_m_output: float | None
    latency_ms: float  # median time to first token
    ms_per_token: float  # decoding time per output token
    quality: float  # base success probability
    verbosity: float  # output-token multiplier


MODELS = (
    ModelProfile("openai", "gpt-4.1", 2.00, 8.00, 900, 12, 0.86, 1.00),
    ModelProfile("openai", "gpt-4.1-mini", 0.40, 1.60, 500, 6, 0.78, 0.90),
    ModelProfile("anthropic", "claude-sonnet-4", 3.00, 15.00, 1100, 14, 0.88, 1.10),
    ModelProfile("anthropic", "claude-haiku", 0.80, 4.00, 450, 6, 0.76, 0.85),
    ModelProfile("google", "gemini-2.5-pro", 1.25, 10.00, 1300, 10, 0.85, 1.15),
    ModelProfile("google", "gemini-2.5-flash", 0.30, 2.50, 400, 5, 0.75, 0.90),
    ModelProfile("vllm", "llama-3.1-70b", None, None, 700, 20, 0.72, 1.00),
)
_HOME_MODEL_SHARE = (0.18, 0.14, 0.20, 0.12, 0.12, 0.10, 0.14)


@dataclass(frozen=True)
class TaskTypeProfile:
    """What a kind of task looks like: its wording, size, tool use, SLA and difficulty."""

    name: str
    objectives: tuple[str, ...]  # templates: {s} subject, {p} project, {n} a number
    subjects: tuple[str, ...]
    context: str  # closes the input text
    result: str  # opens the output text of a success
    input_tokens: int  # median
    output_tokens: int  # median
    tool_calls: float  # mean
    sla_seconds: int
    difficulty: float  # lowers the success probability
    coding: bool  # carries a code_review object


_COMPONENTS = ("the rate limiter", "the session cache", "the invoice renderer",
               "the currency converter", "the retry policy", "the CSV exporter")
TASK_TYPES = (
    TaskTypeProfile(
        "code_generation", ("Implement {s} in {p}", "Implement {s} and wire it into the service"),
        ("a retry policy for the payment client", "pagination for the orders endpoint",
         "a CSV exporter for invoices", "rate limiting in the public gateway",
         "an LRU cache for session lookups", "signature checks for incoming webhooks"),
        "The service is Python 3.12 with FastAPI; keep the public interface stable.",
        "Added the change with type hints and a short migration note.",
        3000, 1200, 3.0, 120, 0.06, True),
    TaskTypeProfile(
        "bug_fix", ("Fix the bug where {s}", "Fix the bug in {p}: {s}"),
        ("the session cache returns stale entries", "totals are off by one cent",
         "requests hang after a rolling deploy", "the CSV exporter drops rows with emoji",
         "the scheduler runs nightly jobs twice", "login fails for emails with a plus sign"),
        "A stack trace and the last 200 log lines are attached below the request.",
        "Found the root cause, patched it and added a regression check.",
        4000, 800, 4.0, 180, 0.08, True),
    TaskTypeProfile(
        "code_review", ("Review pull request #{n}: {s}", "Review pull request #{n} in {p} before merge"),
        ("refactor the billing client", "add OpenTelemetry spans", "migrate to SQLAlchemy 2",
         "remove the legacy auth path", "bump pinned dependencies", "split the settings module"),
        "Focus on correctness, error handling and anything that could break callers.",
        "Left five comments; two are blocking, on error handling and a missing index.",
        6000, 600, 2.0, 90, 0.03, True),
    TaskTypeProfile(
        "research", ("Research {s} and recommend an option", "Research {s} for {p}"),
        ("vector databases for semantic search", "pricing of competing LLM APIs",
         "EU AI Act obligations for chatbots", "open-weight model licenses",
         "prompt caching in production", "churn benchmarks in B2B SaaS"),
        "Prefer primary sources from the last twelve months and note any conflicts.",
        "Compared four options against cost, maturity and lock-in; one stands out.",
        5000, 1500, 5.0, 240, 0.10, False),
    TaskTypeProfile(
        "summarization", ("Summarize {s} for the {p} team", "Summarize {s} in five bullet points"),
        ("the incident postmortem from Tuesday", "last week's customer interviews",
         "the on-call handover notes", "the latest support escalations",
         "the quarterly roadmap meeting", "the vendor contract changes"),
        "Keep names of customers out of the summary and flag open action items.",
        "Condensed the material into five points with owners for each open item.",
        8000, 500, 1.0, 60, 0.02, False),
    TaskTypeProfile(
        "data_analysis", ("Analyze the dataset {s}", "Analyze the dataset {s} and chart the result"),
        ("web_sessions for seasonal traffic patterns", "churn_events for the main drivers of churn",
         "refunds_daily for outliers", "support_tickets for first-response times",
         "revenue_daily by signup cohort", "signup_funnel for drop-off points"),
        "The warehouse table is refreshed nightly; exclude internal test accounts.",
        "Ran the queries, checked row counts and found two effects worth a follow-up.",
        3500, 900, 4.0, 180, 0.09, False),
    TaskTypeProfile(
        "documentation", ("Write documentation for {s}", "Write documentation for {s} with examples"),
        ("the orders API", "the deployment runbook", "the feature flag client",
         "the billing webhook payloads", "the data retention policy", "the on-call escalation path"),
        "Audience: new engineers in their first week; link to existing pages.",
        "Drafted the page with an overview, three examples and a troubleshooting list.",
        2500, 1400, 2.0, 120, 0.04, False),
    TaskTypeProfile(
        "testing", ("Write unit tests for {s}", "Write unit tests for {s} covering edge cases"),
        _COMPONENTS,
        "Use pytest, no network access, and keep each case under one second.",
        "Added twelve cases, including boundaries and error paths; all of them pass.",
        3000, 1500, 3.0, 120, 0.05, True),
)
# Objectives with no type keyword: the classifier must fall back to ``uncategorized``.
_OBJECTIVES_WITHOUT_KEYWORD = ("Handle ticket #{n} from the {p} team",
                               "Follow up on the {p} request from yesterday",
                               "Help the {p} team with their question")


@dataclass(frozen=True)
class Department:
    """A team of agents: its projects and the mix of task types it hands out."""

    name: str
    role: str  # second word of its agents' names
    projects: tuple[str, ...]
    task_mix: tuple[float, ...]  # share of each entry of TASK_TYPES


DEPARTMENTS = (
    Department("engineering", "Coder", ("checkout-service", "mobile-app", "platform-infra"),
               (0.30, 0.25, 0.20, 0.0, 0.0, 0.0, 0.10, 0.15)),
    Department("research", "Scout", ("market-insights", "model-eval", "competitor-watch"),
               (0.0, 0.0, 0.0, 0.45, 0.30, 0.15, 0.10, 0.0)),
    Department("support", "Helper", ("helpdesk", "kb-refresh"),
               (0.0, 0.15, 0.0, 0.20, 0.40, 0.0, 0.25, 0.0)),
    Department("data", "Analyst", ("churn-model", "revenue-dashboard", "etl-migration"),
               (0.20, 0.0, 0.10, 0.0, 0.10, 0.45, 0.05, 0.10)),
)
_DEPARTMENT_CYCLE = (0, 1, 0, 2, 3)  # engineering holds 40 % of agents, the others 20 % each
_PROJECTS = tuple(project for dept in DEPARTMENTS for project in dept.projects)
_FIRST_PROJECT = np.cumsum([0] + [len(dept.projects) for dept in DEPARTMENTS[:-1]])
_PROJECT_COUNT = np.array([len(dept.projects) for dept in DEPARTMENTS])
_AGENT_NAMES = ("Atlas", "Beacon", "Cinder", "Delta", "Ember", "Falcon", "Garnet", "Harbor",
                "Iris", "Juniper", "Kestrel", "Lumen", "Meridian", "Nova", "Onyx", "Pilot",
                "Quartz", "Raven", "Sable", "Tundra", "Umber", "Vesper", "Willow", "Zephyr")
_OFFSET_MINUTES = (0, 120, -300, 330, 540)
_OFFSET_SHARE = (0.70, 0.10, 0.10, 0.05, 0.05)

_FAILURE_REASONS = ("a tool returned HTTP 500 three times", "the repository did not build",
                    "the data source denied access", "the answer failed its own self-check",
                    "the context window was exceeded")
_FEEDBACK_COMMENTS = {
    "correction": ("The numbers in the second paragraph are wrong.",
                   "It missed the edge case I asked about."),
    "enhancement": ("Good start, please add examples.", "Useful, but too long for the update."),
    "approval": ("Exactly what I needed, thanks.", "Clear and correct."),
    "innovation": ("Nice idea to cache the lookups, we are adopting it.",
                   "The comparison table is a great format, keep it."),
}
_PEER_COMMENTS = ("Solid reasoning, minor gaps.", "Sources look outdated.",
                  "Complete and accurate.", "Misread part of the requirement.")

_MODEL_QUALITY = np.array([m.quality for m in MODELS])
_MODEL_VERBOSITY = np.array([m.verbosity for m in MODELS])
_MODEL_LATENCY = np.array([m.latency_ms for m in MODELS])
_MODEL_MS_PER_TOKEN = np.array([m.ms_per_token for m in MODELS])
_MODEL_PRICE_INPUT = np.array([np.nan if m.usd_per_m_input is None else m.usd_per_m_input
                               for m in MODELS])
_MODEL_PRICE_OUTPUT = np.array([np.nan if m.usd_per_m_output is None else m.usd_per_m_output
                                for m in MODELS])
_TYPE_INPUT = np.array([t.input_tokens for t in TASK_TYPES])
_TYPE_OUTPUT = np.array([t.output_tokens for t in TASK_TYPES])
_TYPE_TOOLS = np.array([t.tool_calls for t in TASK_TYPES])
_TYPE_SLA = np.array([t.sla_seconds for t in TASK_TYPES])
_TYPE_DIFFICULTY = np.array([t.difficulty for t in TASK_TYPES])
_TYPE_CODING = np.array([t.coding for t in TASK_TYPES])


@dataclass(frozen=True)
class GenerationSummary:
    """What ``generate_logs`` wrote; the counts add up to the lines and rows in ``files``."""

    files: list[Path]  # files written, in order
    events: dict[str, int]  # event_type -> number of well-formed events written
    malformed_lines: int  # lines deliberately broken
    duplicate_lines: int  # exact duplicates of earlier lines
    conflicting_lines: int  # same id as an earlier event, different content


def generate_logs(out_dir: Path, *, start: date, days: int, agents: int = 24,
                  tasks_per_day: int = 200, seed: int = 7, file_format: str = "jsonl",
                  malformed_rate: float = 0.002,
                  progress: Callable[[int, int], None] | None = None) -> GenerationSummary:
    """Write one file per day (two for CSV/Parquet) of synthetic agent logs into ``out_dir``.

    ``malformed_rate`` is the share of bad lines; when it is above 0 and at least two days have
    50 or more tasks, every kind of bad line appears at least once. ``progress(done, total)`` is
    called after each day.
    """
    if file_format not in FILE_FORMATS:
        raise ValueError(f"file_format must be one of {FILE_FORMATS}, got {file_format!r}")
    if agents < 2:
        raise ValueError(f"agents must be at least 2 (peer reviews need another agent), got {agents}")
    if min(days, tasks_per_day, seed) < 0:
        raise ValueError(f"days, tasks_per_day and seed must not be negative, got {days}, "
                         f"{tasks_per_day}, {seed}")
    if not 0 <= malformed_rate < 1:
        raise ValueError(f"malformed_rate must be in [0, 1), got {malformed_rate}")
    plan = _Plan(Path(out_dir), start, days, agents, tasks_per_day, seed, file_format, malformed_rate)
    plan.out_dir.mkdir(parents=True, exist_ok=True)
    assembler = _Assembler(plan)
    for result in _day_results(plan):
        assembler.add(result)
        if progress is not None:
            progress(result.day + 1, days)
    return assembler.summary()


@dataclass(frozen=True)
class _Plan:
    """The arguments of a run. A day's content depends only on the plan and the day's number,
    so days can be generated in any process and the files still come out byte-identical."""

    out_dir: Path
    start: date
    days: int
    agents: int
    tasks_per_day: int
    seed: int
    file_format: str
    malformed_rate: float

    def day_start(self, day: int) -> int:
        """Midnight UTC opening ``day``, in epoch milliseconds."""
        return ((self.start - _EPOCH).days + day) * DAY_MS

    def file_day(self, ms: int) -> int:
        """The day whose file holds an event created at ``ms``: its UTC date."""
        return ms // DAY_MS - (self.start - _EPOCH).days

    def progress(self, day: int) -> float:
        """0 on the first day, 1 on the last: drift and rollouts show in runs of any length."""
        return day / max(1, self.days - 1)


# Below this many tasks, starting worker processes costs more than it saves.
_PARALLEL_MIN_TASKS = 200_000


def _day_results(plan: _Plan) -> Iterator[_DayResult]:
    """Results of the days in order; big runs generate them in worker processes, a few ahead."""
    workers = min(usable_cpus(), plan.days, 8)
    if workers < 2 or plan.days * plan.tasks_per_day < _PARALLEL_MIN_TASKS:
        for day in range(plan.days):
            yield _generate_day(plan, day)
        return
    # spawn, not fork: the caller may be a threaded process (Dagster), where fork can deadlock.
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        ahead: deque[Future[_DayResult]] = deque()
        for day in range(plan.days):
            ahead.append(pool.submit(_generate_day, plan, day))
            if len(ahead) > 2 * workers:  # each result holds a day of lines: bound the memory
                yield ahead.popleft().result()
        while ahead:
            yield ahead.popleft().result()


@dataclass(frozen=True)
class _DayResult:
    """One day's output, handed from the (worker) generator to the assembling parent."""

    day: int
    lines: list[tuple[int, str]]  # (sort key, line) for this day's JSONL file
    late: list[tuple[int, int, str]]  # (file day, sort key, line) for the files of later days
    malformed: list[tuple[int, str]]
    repeats: list[str]  # DUPLICATE / CONFLICT lines the parent adds from earlier days
    task_sample: list[dict[str, Any]]  # sources for later conflicting re-sends
    events: dict[str, int]  # well-formed events made, late ones included
    table: Path | None  # the task file the generator wrote in CSV/Parquet mode


def _generate_day(plan: _Plan, day: int) -> _DayResult:
    return _Day(plan, day).run()


@dataclass(frozen=True)
class _Agents:
    """The fixed roster, as arrays indexed by agent number for bulk sampling."""

    ids: list[str]
    names: list[str]
    department: np.ndarray
    model: np.ndarray  # home model
    trend: np.ndarray  # +1 improves over the run, -1 declines, 0 stable
    skill: np.ndarray  # personal offset to the model's quality
    activity: np.ndarray  # share of the day's tasks
    offset_ms: np.ndarray  # UTC offset of the agent's host clock
    suffix: np.ndarray  # that offset as written in timestamps
    teammates: list[list[int]]  # other agents of the department, or all others when alone
    others: list[list[int]]


@functools.cache
def _roster(seed: int, count: int) -> _Agents:
    """The same roster in every process: it depends on the seed alone, not on the day."""
    rng = np.random.default_rng(seed)
    department = np.array([_DEPARTMENT_CYCLE[i % len(_DEPARTMENT_CYCLE)] for i in range(count)])
    model = rng.choice(len(MODELS), count, p=_HOME_MODEL_SHARE)
    order = rng.permutation(count)
    improving, declining = max(1, round(0.20 * count)), max(1, round(0.15 * count))
    trend = np.zeros(count)
    trend[order[:improving]] = 1
    trend[order[improving:improving + declining]] = -1
    skill = rng.normal(0, 0.04, count)
    activity = rng.lognormal(0, 0.4, count)
    offset_minutes = rng.choice(_OFFSET_MINUTES, count, p=_OFFSET_SHARE)
    others = [[j for j in range(count) if j != i] for i in range(count)]
    teammates = [[j for j in other if department[j] == department[i]] or other
                 for i, other in enumerate(others)]
    return _Agents(
        ids=[f"agent-{i + 1:03d}" for i in range(count)],
        names=[_agent_name(i, department[i]) for i in range(count)],
        department=department, model=model, trend=trend, skill=skill,
        activity=activity / activity.sum(), offset_ms=offset_minutes * _MINUTE_MS,
        suffix=np.array([_offset_suffix(int(m)) for m in offset_minutes]),
        teammates=teammates, others=others)


def _agent_name(index: int, department: int) -> str:
    """``Atlas Coder``; past the name list a number keeps names unique."""
    name = _AGENT_NAMES[index % len(_AGENT_NAMES)]
    round_ = index // len(_AGENT_NAMES)
    return f"{name} {DEPARTMENTS[department].role}" + (f" {round_ + 1}" if round_ else "")


def _offset_suffix(minutes: int) -> str:
    """RFC 3339 offset: ``Z`` for UTC, else ``+hh:mm`` / ``-hh:mm``."""
    if minutes == 0:
        return "Z"
    sign = "+" if minutes > 0 else "-"
    hours, mins = divmod(abs(minutes), 60)
    return f"{sign}{hours:02d}:{mins:02d}"


@functools.cache
def _date_text(epoch_day: int) -> str:
    return (_EPOCH + timedelta(days=epoch_day)).isoformat()


def _stamp(ms: int, offset_ms: int, suffix: str) -> str:
    """One RFC 3339 timestamp with milliseconds, in the writer's local time and offset."""
    day, rest = divmod(ms + offset_ms, DAY_MS)
    hour, rest = divmod(rest, 3_600_000)
    minute, rest = divmod(rest, _MINUTE_MS)
    second, milli = divmod(rest, 1000)
    return f"{_date_text(day)}T{hour:02d}:{minute:02d}:{second:02d}.{milli:03d}{suffix}"


def _tag(seed: int, day: int, counter: int, salt: int) -> str:
    """Four hex digits mixed from seed, day and counter, so runs with other seeds get other ids."""
    x = (counter * 0x9E3779B97F4A7C15 + day * 0xD6E8FEB86659FD93 + seed * 0xBF58476D1CE4E5B9
         + salt) & 0xFFFFFFFFFFFFFFFF
    x = ((x ^ (x >> 31)) * 0x94D049BB133111EB) & 0xFFFFFFFFFFFFFFFF
    return f"{(x ^ (x >> 29)) & 0xFFFF:04x}"


def _fit(text: str) -> str:
    """Keep texts between 100 and 300 characters, the size the LLM judge is tuned for."""
    while len(text) < 100:
        text += " Details are in the run log."
    return text if len(text) <= 300 else text[:297] + "..."


def _pick(rng: random.Random, options: Sequence[T]) -> T:
    return options[int(rng.random() * len(options))]


def _nullable(values: np.ndarray, known: np.ndarray) -> list[Any]:
    return [v if k else None for v, k in zip(values.tolist(), known.tolist(), strict=True)]


def _unit(values: np.ndarray) -> np.ndarray:
    return np.round(np.clip(values, 0.0, 1.0), 3)


def _ratings(quality: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """1-5 stars that follow the work's quality, with rater noise."""
    return np.clip(np.rint(1 + 4 * quality + rng.normal(0, 0.7, len(quality))), 1, 5).astype(np.int64)


def _feedback_type(rating: int, rng: random.Random) -> str:
    if rating <= 2:
        return "correction"
    if rating == 3:
        return "enhancement"
    return "innovation" if rating == 5 and rng.random() < 0.4 else "approval"


def _scheduled_bad_kinds(plan: _Plan, day: int) -> list[str]:
    """One line of each bad kind, spread over the days; repeats go where an earlier file exists."""
    if plan.malformed_rate <= 0 or plan.days < 2 or plan.tasks_per_day < 50:
        return []
    kinds = []
    for index, kind in enumerate(BAD_LINE_KINDS):
        kind_day = index * plan.days // len(BAD_LINE_KINDS)
        if kind in (DUPLICATE, CONFLICT):
            kind_day = max(1, kind_day)
        if kind_day == day:
            kinds.append(kind)
    return kinds


@dataclass(frozen=True)
class _TaskBatch:
    """The hidden truth of a day's tasks; rows, feedback and reviews are all derived from it."""

    ids: list[str]
    agent: np.ndarray
    model: np.ndarray
    task_type: np.ndarray
    project: np.ndarray
    prompt: np.ndarray
    status: np.ndarray
    quality: np.ndarray  # 0..1, drives ratings, reviews and peer scores
    input_tokens: np.ndarray
    output_tokens: np.ndarray
    tools: np.ndarray
    revisions: np.ndarray
    response_ms: np.ndarray
    assigned: np.ndarray  # epoch milliseconds
    started: np.ndarray
    completed: np.ndarray
    started_known: np.ndarray  # False: cancelled while still queued


class _Day:
    """Generates one day: its tasks, the events they cause and its share of broken lines.

    Random streams and id counters are seeded by (seed, day), never shared between days."""

    def __init__(self, plan: _Plan, day: int) -> None:
        self.plan, self.day = plan, day
        self.np_rng = np.random.default_rng((plan.seed, day))
        self.rng = random.Random(int(self.np_rng.integers(2**63)))
        self.agents = _roster(plan.seed, plan.agents)
        self.offsets: list[int] = self.agents.offset_ms.tolist()  # for per-event formatting
        self.suffixes: list[str] = self.agents.suffix.tolist()
        self.start = plan.day_start(day)
        self.date = _date_text(self.start // DAY_MS)
        self.counters = dict.fromkeys(("t", "fb", "pe", "m"), 0)
        self.events = dict.fromkeys(EVENT_TYPES, 0)

    def run(self) -> _DayResult:
        batch = self._sample_tasks(self.plan.tasks_per_day)
        rows = self._task_rows(batch)
        self.events["task"] = len(rows)
        lines, late = self._follow_ups(batch)
        keys = batch.completed.tolist()  # a task is logged when it completes
        table = None
        if self.plan.file_format.startswith("jsonl"):
            lines += [(key, _encode(row)) for key, row in zip(keys, rows, strict=True)]
        else:
            table = self._write_table([row for _, row in sorted(zip(keys, rows, strict=True),
                                                                 key=itemgetter(0))])
        malformed, repeats = self._bad_kinds(sum(self.events.values()))
        sample = self.rng.sample(rows, min(64, len(rows)))
        return _DayResult(self.day, lines, late, self._malformed(malformed), repeats, sample,
                          self.events, table)

    def _next_id(self, prefix: str) -> str:
        self.counters[prefix] += 1
        counter = self.counters[prefix]
        tag = _tag(self.plan.seed, self.day, counter, len(prefix))
        return f"{prefix}-{self.date.replace('-', '')}-{counter:06d}-{tag}"

    # ---- hidden truth of the tasks -------------------------------------------------------

    def _sample_tasks(self, n: int) -> _TaskBatch:
        """Draw who did what, how well, at what size and when, for ``n`` tasks of the day."""
        rng, ag = self.np_rng, self.agents
        agent = rng.choice(len(ag.ids), n, p=ag.activity)
        # Agents mostly use their home model; a few tasks go to another one (fallbacks, trials).
        model = np.where(rng.random(n) < 0.08, rng.integers(0, len(MODELS), n), ag.model[agent])
        department = ag.department[agent]
        task_type = self._sample_task_types(department)
        project = _FIRST_PROJECT[department] + (rng.random(n) * _PROJECT_COUNT[department]).astype(int)
        prompt = self._sample_prompt_versions(n)
        drift = ag.trend[agent] * self.plan.progress(self.day)
        base = (_MODEL_QUALITY[model] + ag.skill[agent] + 0.12 * drift + 0.02 * prompt
                - _TYPE_DIFFICULTY[task_type])
        status = self._sample_status(base)
        quality = np.clip(base + rng.normal(0, 0.08, n) - 0.3 * (status != SUCCESS), 0, 1)
        shrink = 1 - 0.2 * drift  # improving agents need fewer tokens, declining ones more
        input_tokens = np.maximum(1, _TYPE_INPUT[task_type] * rng.lognormal(0, 0.45, n)
                                  * shrink).astype(np.int64)
        output_tokens = np.maximum(1, _TYPE_OUTPUT[task_type] * _MODEL_VERBOSITY[model]
                                   * rng.lognormal(0, 0.55, n) * shrink
                                   * np.where(status == CANCELLED, 0.3, 1.0)).astype(np.int64)
        tools = rng.poisson(_TYPE_TOOLS[task_type])
        revisions = rng.poisson(0.15 + (1 - base).clip(0, 1))
        response_ms = (_MODEL_LATENCY[model] * rng.lognormal(0, 0.35, n)
                       + output_tokens * _MODEL_MS_PER_TOKEN[model])
        work_ms = self._work_ms(task_type, status, response_ms, tools, revisions)
        assigned, started, completed, started_known = self._timeline(status, work_ms)
        ids = [self._next_id("t") for _ in range(n)]
        return _TaskBatch(ids, agent, model, task_type, project, prompt, status, quality,
                          input_tokens, output_tokens, tools, revisions,
                          np.minimum(response_ms, work_ms), assigned, started, completed,
                          started_known)

    def _sample_task_types(self, department: np.ndarray) -> np.ndarray:
        task_type = np.zeros(len(department), dtype=np.int64)
        for index, dept in enumerate(DEPARTMENTS):
            members = department == index
            task_type[members] = self.np_rng.choice(len(TASK_TYPES), members.sum(), p=dept.task_mix)
        return task_type

    def _sample_prompt_versions(self, n: int) -> np.ndarray:
        """Prompt versions roll out over the run: mostly v1 at the start, v3 gaining later."""
        progress = self.plan.progress(self.day)
        share = np.array([max(0.05, 0.7 - 0.65 * progress), 0.3, 0.6 * progress])
        return self.np_rng.choice(len(PROMPT_VERSIONS), n, p=share / share.sum())

    def _sample_status(self, quality: np.ndarray) -> np.ndarray:
        n = len(quality)
        succeeded = self.np_rng.random(n) < np.clip(quality + 0.1, 0.3, 0.985)
        kind = self.np_rng.random(n)
        failure = np.select([kind < 0.6, kind < 0.88], [FAILED, TIMEOUT], CANCELLED)
        return np.where(succeeded, SUCCESS, failure)

    def _work_ms(self, task_type: np.ndarray, status: np.ndarray, response_ms: np.ndarray,
                 tools: np.ndarray, revisions: np.ndarray) -> np.ndarray:
        """Wall time from start to end: model calls, tool calls, overhead; cut by timeouts."""
        rng, n = self.np_rng, len(status)
        work = (response_ms * (1 + revisions) + tools * rng.lognormal(np.log(3000), 0.8, n)
                + rng.exponential(4000, n))
        work = np.where(status == TIMEOUT, _TYPE_SLA[task_type] * 1000 + rng.uniform(0, 3000, n), work)
        work = np.where(status == CANCELLED, work * rng.uniform(0.05, 0.6, n), work)
        return np.maximum(work, 1).astype(np.int64)

    def _timeline(self, status: np.ndarray, work_ms: np.ndarray
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Assigned, started and completed times; about 1 % of tasks run past midnight."""
        rng, n = self.np_rng, len(status)
        busy = rng.random(n) < 0.75  # office hours around 13:30 UTC, the rest spread evenly
        hours = np.where(busy, rng.normal(13.5, 3.0, n), rng.uniform(0, 24, n)) % 24
        midnight = self.start + DAY_MS
        assigned = (self.start + hours * 3_600_000).astype(np.int64)
        late = np.arange(n) < max(1, round(0.01 * n))
        assigned = np.where(late, midnight - rng.uniform(60_000, 900_000, n).astype(np.int64), assigned)
        queue = (rng.exponential(15_000, n) + 200).astype(np.int64)
        started_known = ~((status == CANCELLED) & (rng.random(n) < 0.4))
        started = assigned + queue
        completed = np.where(started_known, started + work_ms,
                             assigned + (queue * rng.uniform(0.2, 1.0, n)).astype(np.int64))
        past_midnight = midnight + rng.uniform(30_000, 1_200_000, n).astype(np.int64)
        completed = np.where(late, np.maximum(completed, past_midnight), completed)
        return assigned, started, completed, started_known

    # ---- task events -----------------------------------------------------------------------

    def _task_rows(self, batch: _TaskBatch) -> list[dict[str, Any]]:
        """Task events in the contract's field order; absent keys are left out, not nulled."""
        objectives = self._objectives(batch)
        columns = {**self._identity_columns(batch, objectives), **self._timing_columns(batch),
                   **self._usage_columns(batch), **self._text_columns(batch, objectives),
                   **self._quality_columns(batch)}
        n = len(batch.ids)
        traced = (self.np_rng.random(n) < 0.03).tolist()  # an unknown field the pipeline must keep
        trace_ids = self.np_rng.integers(0, 2**48, n).tolist()
        columns["trace_id"] = [f"tr-{value:012x}" if keep else _MISSING
                               for keep, value in zip(traced, trace_ids, strict=True)]
        keys = list(columns)
        return [{k: v for k, v in zip(keys, values, strict=True) if v is not _MISSING}
                for values in zip(*columns.values(), strict=True)]

    def _objectives(self, batch: _TaskBatch) -> list[str]:
        """Objectives worded with their type's keyword; ~3 % have none, to test the fallback."""
        rng = self.rng
        objectives = []
        for t, p in zip(batch.task_type.tolist(), batch.project.tolist(), strict=True):
            profile = TASK_TYPES[t]
            template = _pick(rng, _OBJECTIVES_WITHOUT_KEYWORD if rng.random() < 0.03 else profile.objectives)
            objectives.append(template.format(s=_pick(rng, profile.subjects), p=_PROJECTS[p],
                                              n=100 + int(rng.random() * 900)))
        return objectives

    def _identity_columns(self, batch: _TaskBatch, objectives: list[str]) -> dict[str, list[Any]]:
        rng, ag, n = self.np_rng, self.agents, len(batch.ids)
        agent, model = batch.agent.tolist(), batch.model.tolist()
        hide_type = (rng.random(n) < 0.30).tolist()  # the pipeline classifies these
        hide_project = (rng.random(n) < 0.02).tolist()  # the pipeline defaults these
        return {
            "event_type": ["task"] * n,
            "task_id": batch.ids,
            "agent_id": [ag.ids[a] for a in agent],
            "agent_name": [ag.names[a] for a in agent],
            "department": [DEPARTMENTS[d].name for d in ag.department[batch.agent].tolist()],
            "project_id": [_MISSING if hide else _PROJECTS[p]
                           for hide, p in zip(hide_project, batch.project.tolist(), strict=True)],
            "provider": [MODELS[m].provider for m in model],
            "model": [MODELS[m].model for m in model],
            "task_type": [_MISSING if hide else TASK_TYPES[t].name
                          for hide, t in zip(hide_type, batch.task_type.tolist(), strict=True)],
            "objective": objectives,
            "prompt_version": [PROMPT_VERSIONS[p] for p in batch.prompt.tolist()],
        }

    def _timing_columns(self, batch: _TaskBatch) -> dict[str, list[Any]]:
        started = self._stamps(batch.started, batch.agent)
        return {
            "assigned_at": self._stamps(batch.assigned, batch.agent),
            "started_at": [s if known else None
                           for s, known in zip(started, batch.started_known.tolist(), strict=True)],
            "completed_at": self._stamps(batch.completed, batch.agent),
            "status": [STATUSES[s] for s in batch.status.tolist()],
        }

    def _stamps(self, ms: np.ndarray, agent: np.ndarray) -> list[str]:
        """Bulk ``_stamp``: numpy formats the agents' local times, then the offset is appended."""
        local = (ms + self.agents.offset_ms[agent]).astype("datetime64[ms]")
        text = np.datetime_as_string(local, unit="ms").tolist()
        return [t + s for t, s in zip(text, self.agents.suffix[agent].tolist(), strict=True)]

    def _usage_columns(self, batch: _TaskBatch) -> dict[str, list[Any]]:
        rng, n = self.np_rng, len(batch.ids)
        ran = batch.started_known
        input_known = ran & (rng.random(n) >= 0.02)  # ~2 % unknown: null, never zero
        output_known = ran & (rng.random(n) >= 0.02)
        sla_known = (batch.status == TIMEOUT) | (rng.random(n) >= 0.05)
        return {
            "input_tokens": _nullable(batch.input_tokens, input_known),
            "output_tokens": _nullable(batch.output_tokens, output_known),
            "cost_usd": self._costs(batch, input_known & output_known),
            "tool_invocations": np.where(ran, batch.tools, 0).tolist(),
            "revision_count": np.where(ran, batch.revisions, 0).tolist(),
            "response_time_ms": _nullable(np.round(batch.response_ms, 1),
                                          ran & (rng.random(n) >= 0.01)),
            "sla_seconds": _nullable(_TYPE_SLA[batch.task_type], sla_known),
        }

    def _costs(self, batch: _TaskBatch, tokens_known: np.ndarray) -> list[Any]:
        """Tokens times list price; null when unknown, left out on ~10 % for the pipeline to fill."""
        price_in = _MODEL_PRICE_INPUT[batch.model]
        price_out = _MODEL_PRICE_OUTPUT[batch.model]
        cost = np.round((batch.input_tokens * price_in + batch.output_tokens * price_out) / 1e6, 6)
        omit = (self.np_rng.random(len(cost)) < 0.10) & ~np.isnan(price_in)
        known = tokens_known & ~np.isnan(cost)
        return [_MISSING if o else (c if k else None)
                for c, k, o in zip(cost.tolist(), known.tolist(), omit.tolist(), strict=True)]

    def _text_columns(self, batch: _TaskBatch, objectives: list[str]) -> dict[str, list[Any]]:
        """Short input and output texts from templates, sized for the LLM judge."""
        draw = self.rng.random
        teams = [DEPARTMENTS[d].name for d in self.agents.department[batch.agent].tolist()]
        projects = [_PROJECTS[p] for p in batch.project.tolist()]
        task_types = batch.task_type.tolist()
        inputs = [_fit(f"{objective}. Project {project} for the {team} team. "
                       f"{TASK_TYPES[t].context} Answer in under {150 + 50 * int(draw() * 4)} words.")
                  for objective, project, team, t in zip(objectives, projects, teams, task_types, strict=True)]
        outputs = [self._output_text(*values) for values in zip(
            objectives, projects, task_types, batch.status.tolist(), batch.tools.tolist(),
            batch.revisions.tolist(), batch.quality.tolist(), strict=True)]
        return {"input": inputs, "output": outputs}

    def _output_text(self, objective: str, project: str, task_type: int, status: int,
                     tools: int, revisions: int, quality: float) -> str | None:
        """What the agent answered; a cancelled task produced nothing."""
        if status == SUCCESS:
            return _fit(f"{TASK_TYPES[task_type].result} Project {project}: {tools} tool calls, "
                        f"{revisions} revisions, self-rated confidence {quality:.2f}.")
        if status == FAILED:
            reason = _pick(self.rng, _FAILURE_REASONS)
            return _fit(f"Failed: {reason}. Attempted '{objective}' with {tools} tool calls; "
                        "partial notes were kept for a retry.")
        if status == TIMEOUT:
            node = _pick(self.rng, STEP_NODES)
            return _fit(f"Timed out after {TASK_TYPES[task_type].sla_seconds} s while working on "
                        f"'{objective}'. The last finished step was {node}; partial work was discarded.")
        return None

    def _quality_columns(self, batch: _TaskBatch) -> dict[str, list[Any]]:
        rng, n = self.np_rng, len(batch.ids)
        rated = (batch.started_known & (rng.random(n) < 0.31)).tolist()
        typed = (rng.random(n) < 0.85).tolist()  # some raters leave the type out
        ratings = _ratings(batch.quality, rng).tolist()
        return {
            "code_review": self._code_reviews(batch),
            "user_rating": [r if is_rated else _MISSING for r, is_rated in zip(ratings, rated, strict=True)],
            "feedback_type": [_feedback_type(r, self.rng) if is_rated and is_typed else _MISSING
                              for r, is_rated, is_typed in zip(ratings, rated, typed, strict=True)],
            "steps": self._steps(batch),
        }

    def _code_reviews(self, batch: _TaskBatch) -> list[Any]:
        """Lint and test results for coding tasks that ran; worse work fails more tests."""
        rng, n, quality = self.np_rng, len(batch.ids), batch.quality
        lint = rng.poisson(4 * (1 - quality)).tolist()
        passed = (rng.poisson(20, n) + 1).tolist()
        failed = (rng.poisson(0.2 + 5 * (1 - quality)) + 3 * (batch.status == FAILED)).tolist()
        coverage = _nullable(_unit(0.45 + 0.5 * quality + rng.normal(0, 0.06, n)),
                             rng.random(n) >= 0.05)
        coding = (_TYPE_CODING[batch.task_type] & batch.started_known).tolist()
        return [{"lint_errors": lt, "tests_passed": p, "tests_failed": f, "coverage": c}
                if is_code else _MISSING
                for is_code, lt, p, f, c in zip(coding, lint, passed, failed, coverage, strict=True)]

    def _steps(self, batch: _TaskBatch) -> list[Any]:
        """Node-level traces on ~20 % of the tasks that ran."""
        steps: list[Any] = [_MISSING] * len(batch.ids)
        chosen = batch.started_known & (self.np_rng.random(len(batch.ids)) < 0.20)
        for i in np.flatnonzero(chosen).tolist():
            agent = int(batch.agent[i])
            steps[i] = self._step_nodes(
                int(batch.started[i]), int(batch.completed[i]),
                int(batch.input_tokens[i] + batch.output_tokens[i]), int(batch.status[i]),
                self.offsets[agent], self.suffixes[agent])
        return steps

    def _step_nodes(self, start: int, end: int, tokens: int, status: int, offset_ms: int,
                    suffix: str) -> list[dict[str, Any]]:
        """2-5 nodes that split the task's time and tokens; the last one carries its outcome."""
        draw = self.rng.random
        picked = sorted(self.rng.sample(range(1, len(STEP_NODES)), 1 + int(draw() * 4)))
        nodes = ["plan", *(STEP_NODES[j] for j in picked)]
        weights = [0.3 + draw() for _ in nodes]
        total, done, steps = sum(weights), 0.0, []
        begin = _stamp(start, offset_ms, suffix)
        for position, (node, weight) in enumerate(zip(nodes, weights, strict=True)):
            done += weight
            last = position == len(nodes) - 1
            finish = _stamp(end if last else start + int((end - start) * done / total), offset_ms, suffix)
            skipped = node == "retrieve" and draw() < 0.1
            steps.append({
                "node": node, "started_at": begin, "completed_at": finish,
                "tokens": None if skipped else max(1, int(tokens * weight / total)),
                "status": "skipped" if skipped else STATUSES[status] if last else "success",
            })
            begin = finish
        return steps

    # ---- feedback, peer evaluations, messages ---------------------------------------------

    def _follow_ups(self, batch: _TaskBatch) -> tuple[list[tuple[int, str]], list[tuple[int, int, str]]]:
        """Events caused by the day's tasks: those for today's file, and late ones for later files."""
        today: list[tuple[int, str]] = []
        late: list[tuple[int, int, str]] = []
        for key, line, event_type in (*self._feedback_events(batch), *self._peer_evaluations(batch)):
            file_day = self.plan.file_day(key)
            if file_day >= self.plan.days:
                continue  # falls after the last generated day
            self.events[event_type] += 1
            if file_day == self.day:
                today.append((key, line))
            else:
                late.append((file_day, key, line))
        for key, line in self._messages(batch):
            self.events["message"] += 1
            today.append((key, line))
        return today, late

    def _feedback_events(self, batch: _TaskBatch) -> Iterator[tuple[int, str, str]]:
        """User feedback on ~15 % of tasks, 0-5 days after completion (often in a later file)."""
        rng = self.np_rng
        picked = np.flatnonzero((rng.random(len(batch.ids)) < 0.155) & (batch.status != CANCELLED))
        delay = np.minimum(rng.exponential(0.9 * DAY_MS, len(picked)), 5 * DAY_MS - _MINUTE_MS)
        created = batch.completed[picked] + _MINUTE_MS + delay.astype(np.int64)
        ratings = _ratings(batch.quality[picked], rng)
        for i, ms, rating in zip(picked.tolist(), created.tolist(), ratings.tolist(), strict=True):
            kind = _feedback_type(rating, self.rng)
            yield ms, _encode({
                "event_type": "feedback", "feedback_id": self._next_id("fb"),
                "task_id": batch.ids[i], "user_rating": rating if self.rng.random() < 0.9 else None,
                "feedback_type": kind,
                "comment": _pick(self.rng, _FEEDBACK_COMMENTS[kind]) if self.rng.random() < 0.6 else None,
                "created_at": _stamp(ms, 0, "Z"),
            }), "feedback"

    def _peer_evaluations(self, batch: _TaskBatch) -> Iterator[tuple[int, str, str]]:
        """Reviews of ~10 % of tasks by a teammate; a quarter score only one or two aspects."""
        rng, draw = self.np_rng, self.rng.random
        picked = np.flatnonzero((rng.random(len(batch.ids)) < 0.10) & batch.started_known)
        k, quality = len(picked), batch.quality[picked]
        created = batch.completed[picked] + rng.uniform(10 * _MINUTE_MS, 30 * 60 * _MINUTE_MS,
                                                        k).astype(np.int64)
        scores = {"accuracy": _unit(quality + rng.normal(0, 0.10, k)).tolist(),
                  "relevance": _unit(quality + 0.05 + rng.normal(0, 0.08, k)).tolist(),
                  "completeness": _unit(quality - 0.05 + rng.normal(0, 0.12, k)).tolist()}
        for j, (i, ms) in enumerate(zip(picked.tolist(), created.tolist(), strict=True)):
            evaluated = int(batch.agent[i])
            evaluator = _pick(self.rng, self.agents.teammates[evaluated])
            aspects = list(scores)
            if draw() < 0.25:
                kept = self.rng.sample(aspects, 1 + int(draw() * 2))
                aspects = [aspect for aspect in aspects if aspect in kept]
            yield ms, _encode({
                "event_type": "peer_evaluation", "evaluation_id": self._next_id("pe"),
                "task_id": batch.ids[i], "evaluator_agent_id": self.agents.ids[evaluator],
                "evaluated_agent_id": self.agents.ids[evaluated],
                **{aspect: scores[aspect][j] for aspect in aspects},
                "comment": _pick(self.rng, _PEER_COMMENTS) if draw() < 0.4 else None,
                "created_at": _stamp(ms, self.offsets[evaluator], self.suffixes[evaluator]),
            }), "peer_evaluation"

    def _messages(self, batch: _TaskBatch) -> Iterator[tuple[int, str]]:
        """Requests on ~12 % of tasks (80 % answered), and handoffs, more often after failures."""
        rng, n = self.np_rng, len(batch.ids)
        asks = np.flatnonzero(rng.random(n) < 0.12)
        struggled = (batch.status == FAILED) | (batch.status == TIMEOUT)
        handoffs = np.flatnonzero(rng.random(n) < 0.02 + 0.10 * struggled)
        for i in asks.tolist():
            yield from self._conversation(batch, i)
        for i in handoffs.tolist():
            sender = int(batch.agent[i])
            sent = int(batch.completed[i]) + 1000 + int(self.rng.random() * 29_000)
            yield sent, self._message(sender, _pick(self.rng, self.agents.teammates[sender]), sent,
                                      "handoff", task_id=batch.ids[i])

    def _conversation(self, batch: _TaskBatch, i: int) -> Iterator[tuple[int, str]]:
        """A request sent while the task runs and, usually, the answer rated by the asker."""
        draw, ag = self.rng.random, self.agents
        sender = int(batch.agent[i])
        receiver = _pick(self.rng, (ag.teammates if draw() < 0.7 else ag.others)[sender])
        begin = int(batch.assigned[i])
        sent = begin + int(draw() * (int(batch.completed[i]) - begin))
        task_id = batch.ids[i] if draw() < 0.75 else _MISSING
        request_id = self._next_id("m")
        yield sent, self._message(sender, receiver, sent, "request", task_id=task_id,
                                  message_id=request_id)
        if draw() < 0.8:
            replied = sent + 2000 + int(self.rng.expovariate(1 / 60_000))
            skill = _MODEL_QUALITY[ag.model[receiver]] + ag.skill[receiver]
            helpfulness = min(5, max(1, round(3 + 8 * (skill - 0.8) + self.rng.gauss(0, 0.9))))
            yield replied, self._message(receiver, sender, replied, "response", task_id=task_id,
                                         in_reply_to=request_id, helpfulness=helpfulness)

    def _message(self, sender: int, receiver: int, sent: int, kind: str, *, task_id: Any,
                 message_id: str | None = None, **reply: Any) -> str:
        event = {
            "event_type": "message", "message_id": message_id or self._next_id("m"),
            "task_id": task_id, "from_agent_id": self.agents.ids[sender],
            "to_agent_id": self.agents.ids[receiver],
            "sent_at": _stamp(sent, self.offsets[sender], self.suffixes[sender]), "kind": kind,
            **reply,
        }
        return _encode({k: v for k, v in event.items() if v is not _MISSING})

    # ---- deliberate bad lines -------------------------------------------------------------

    def _bad_kinds(self, good_lines: int) -> tuple[list[str], list[str]]:
        """The day's bad lines: the scheduled kinds, topped up to ``malformed_rate``.

        Returns the kinds to break here and the repeats the parent makes from earlier days."""
        if self.plan.malformed_rate <= 0:
            return [], []
        kinds = _scheduled_bad_kinds(self.plan, self.day)
        extra = round(self.plan.malformed_rate * good_lines) - len(kinds)
        kinds += [_pick(self.rng, BAD_LINE_KINDS) for _ in range(extra)]
        return ([kind for kind in kinds if kind in MALFORMED_KINDS],
                [kind for kind in kinds if kind not in MALFORMED_KINDS])

    def _malformed(self, kinds: list[str]) -> list[tuple[int, str]]:
        """Break fresh, otherwise realistic tasks, one per kind, at random times of the day."""
        if not kinds:
            return []
        batch = self._sample_tasks(len(kinds))
        lines = []
        for i, (kind, row) in enumerate(zip(kinds, self._task_rows(batch), strict=True)):
            key = self.start + int(self.rng.random() * DAY_MS)
            lines.append((key, self._break(kind, dict(row), int(batch.assigned[i]), int(batch.agent[i]))))
        return lines

    def _break(self, kind: str, event: dict[str, Any], assigned: int, agent: int) -> str:
        if kind == "not_json":
            line = _encode(event)
            return line[: len(line) // 3]
        if kind == "self_evaluation":
            event = {"event_type": "peer_evaluation", "evaluation_id": self._next_id("pe"),
                     "task_id": event["task_id"], "evaluator_agent_id": event["agent_id"],
                     "evaluated_agent_id": event["agent_id"], "accuracy": 0.99,
                     "created_at": event["completed_at"]}
        elif kind == "missing_agent_id":
            del event["agent_id"]
        elif kind == "rating_out_of_range":
            event.update(user_rating=7, feedback_type="approval")
        elif kind == "unknown_status":
            event["status"] = "completed"
        elif kind == "timestamp_without_offset":
            event["assigned_at"] = event["assigned_at"][:19]
        elif kind == "completed_before_assigned":
            before = assigned - int((5 + self.rng.random() * 55) * _MINUTE_MS)
            event["completed_at"] = _stamp(before, self.offsets[agent], self.suffixes[agent])
        elif kind == "negative_tokens":
            event["input_tokens"] = -(event.get("input_tokens") or 1200)
        elif kind == "string_tokens":
            event["input_tokens"] = "many"
        return _encode(event)

    # ---- task table ------------------------------------------------------------------------

    def _write_table(self, rows: list[dict[str, Any]]) -> Path:
        """Task rows as CSV or Parquet: one column per field, nested fields as JSON text."""
        path = self.plan.out_dir / f"tasks-{self.date}.{self.plan.file_format}"
        cells = [_table_cells(row) for row in rows]
        if self.plan.file_format == "csv":
            with path.open("w", encoding="utf-8", newline="") as handle:
                writer = csv.writer(handle, lineterminator="\n")
                writer.writerow(TASK_COLUMNS)
                writer.writerows(cells)
        else:
            columns = list(zip(*cells, strict=True)) if cells else [()] * len(TASK_COLUMNS)
            pq.write_table(pa.table({
                name: pa.array(list(values), type=_PARQUET_TYPES.get(name, pa.string()))
                for name, values in zip(TASK_COLUMNS, columns, strict=True)}), path)
        return path


def _table_cells(row: dict[str, Any]) -> list[Any]:
    return [_encode(value) if name in _NESTED_COLUMNS and value is not None else value
            for name, value in ((name, row.get(name)) for name in TASK_COLUMNS)]


class _Assembler:
    """Writes the days in order: adds late events and repeats of earlier days, then the file."""

    def __init__(self, plan: _Plan) -> None:
        self.plan = plan
        self.rng = random.Random(plan.seed)
        self.pending: dict[int, list[tuple[int, str]]] = {}  # late events, by file day
        self.recent_lines: list[str] = []  # sources for duplicates
        self.recent_tasks: list[dict[str, Any]] = []  # sources for conflicting re-sends
        self.files: list[Path] = []
        self.events = dict.fromkeys(EVENT_TYPES, 0)
        self.bad = dict.fromkeys(("malformed", DUPLICATE, CONFLICT), 0)

    def summary(self) -> GenerationSummary:
        return GenerationSummary(
            files=list(self.files), events=dict(self.events), malformed_lines=self.bad["malformed"],
            duplicate_lines=self.bad[DUPLICATE], conflicting_lines=self.bad[CONFLICT])

    def add(self, result: _DayResult) -> None:
        stream = self.pending.pop(result.day, []) + result.lines
        for file_day, key, line in result.late:
            self.pending.setdefault(file_day, []).append((key, line))
        start = self.plan.day_start(result.day)
        repeats = [(kind, self._duplicate(start, stream) if kind == DUPLICATE
                    else self._conflict(start, result.task_sample)) for kind in result.repeats]
        self._remember(stream, result.task_sample)
        stream += result.malformed
        for kind, repeat in repeats:
            if repeat is not None:
                self.bad[kind] += 1
                stream.append(repeat)
        stream.sort(key=itemgetter(0))
        for event_type, count in result.events.items():
            self.events[event_type] += count
        self.bad["malformed"] += len(result.malformed)
        if result.table is not None:
            self.files.append(result.table)
        self._write_jsonl(result.day, stream)

    def _duplicate(self, start: int, stream: list[tuple[int, str]]) -> tuple[int, str] | None:
        """An exact copy of a line of an earlier file, else of this one, placed after it."""
        if self.recent_lines:
            return start + int(self.rng.random() * DAY_MS), _pick(self.rng, self.recent_lines)
        if stream:
            return start + _AFTER_DAY_MS, _pick(self.rng, stream)[1]
        return None

    def _conflict(self, start: int, today: list[dict[str, Any]]) -> tuple[int, str] | None:
        """A task re-sent after a retry: same task_id, new usage figures, cost left to compute."""
        if self.recent_tasks:
            source, key = _pick(self.rng, self.recent_tasks), start + int(self.rng.random() * DAY_MS)
        elif today:
            source, key = _pick(self.rng, today), start + _AFTER_DAY_MS
        else:
            return None
        event = dict(source)
        event["revision_count"] = (event.get("revision_count") or 0) + 1
        if isinstance(event.get("output_tokens"), int):
            event["output_tokens"] += 1 + int(self.rng.random() * 400)
        event.pop("cost_usd", None)
        return key, _encode(event)

    def _remember(self, stream: list[tuple[int, str]], tasks: list[dict[str, Any]]) -> None:
        """Keep samples of the day's good lines and tasks as sources for later repeats."""
        if stream:
            self.recent_lines = self.rng.sample([line for _, line in stream], min(256, len(stream)))
        if tasks:
            self.recent_tasks = tasks

    def _write_jsonl(self, day: int, stream: list[tuple[int, str]]) -> None:
        extension = self.plan.file_format if self.plan.file_format.startswith("jsonl") else "jsonl"
        path = self.plan.out_dir / f"events-{_date_text(self.plan.day_start(day) // DAY_MS)}.{extension}"
        data = ("\n".join(line for _, line in stream) + "\n").encode() if stream else b""
        if extension.endswith(".gz"):
            # mtime=0 and no file name in the header keep the bytes reproducible; level 1
            # because these files feed speed benchmarks, where compression time would dominate.
            with path.open("wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw,
                                                       mtime=0, compresslevel=1) as packed:
                packed.write(data)
        else:
            path.write_bytes(data)
        self.files.append(path)
