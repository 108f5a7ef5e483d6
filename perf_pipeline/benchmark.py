"""Ingest + validation benchmark: generate N task events, ingest them, report events/s and peak memory.

Run with ``perf-pipeline benchmark --events 1000000``. Generation runs in a child process so that
the peak memory reported is the ingest's own: that of this process and of the worker processes
it starts (sampled from /proc, as PSS so that pages they share count once), and this process's
``ru_maxrss``. The CPU time per line, of this process and of the workers, says where a faster
ingest has to save, and how busy the cores were says whether the work was spread over them.
"""

from __future__ import annotations

import datetime as dt
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

import sqlalchemy as sa

from perf_pipeline.ingest.pipeline import IngestOptions, ingest_landing
from perf_pipeline.partitions import PARTITION_START
from perf_pipeline.settings import usable_cpus
from perf_pipeline.warehouse.db import warehouse_engine
from perf_pipeline.warehouse.schema import staged_events

TASKS_PER_DAY = 20_000
SAMPLE_SECONDS = 1.0


def run_ingest_benchmark(events: int, warehouse_url: str | None = None, keep: bool = False) -> str:
    """Generate ``events`` task events (plus their feedback, reviews and messages), ingest, and report."""
    workdir = Path(tempfile.mkdtemp(prefix="perf-bench-"))
    landing = workdir / "landing"
    days = max(1, round(events / TASKS_PER_DAY))
    per_day = max(1, events // days)
    start = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=days + 1)
    gen_started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "perf_pipeline", "generate", "--out", str(landing), "--start",
                    start.isoformat(), "--days", str(days), "--tasks-per-day", str(per_day), "--agents", "200"],
                   check=True, stdout=subprocess.DEVNULL)
    gen_seconds = time.perf_counter() - gen_started
    url = warehouse_url or f"sqlite:///{workdir / 'warehouse.db'}"
    engine = warehouse_engine(url)
    rss_before = _peak_rss_mib()
    cpu_before = _own_cpu_seconds()
    started = time.perf_counter()
    with _MemorySampler() as memory:
        report = ingest_landing(engine, landing, IngestOptions(partition_start=PARTITION_START))
    seconds = time.perf_counter() - started
    own_cpu = _own_cpu_seconds() - cpu_before
    with engine.connect() as conn:
        tasks = conn.execute(sa.select(sa.func.count()).select_from(staged_events)
                             .where(staged_events.c.event_type == "task")).scalar_one()
    lines = report.total("lines_read")
    size = sum(p.stat().st_size for p in landing.iterdir())
    if not keep:
        shutil.rmtree(workdir, ignore_errors=True)
    return "\n".join([
        f"generated {days} days x {per_day:,} tasks/day ({size / 2**20:,.0f} MiB) in {gen_seconds:.1f}s",
        f"warehouse: {sa.engine.make_url(url).get_backend_name()}" + (f" (kept in {workdir})" if keep else ""),
        f"ingest + validation: {lines:,} lines ({tasks:,} task events staged, {report.total('loaded'):,} events "
        f"loaded, {report.total('quarantined'):,} quarantined, {report.total('duplicates'):,} duplicates) "
        f"in {seconds:.1f}s",
        f"throughput: {lines / seconds:,.0f} events/s",
        f"peak memory (ingesting process and its workers, PSS sampled every {SAMPLE_SECONDS}s): "
        + (f"{memory.peak_mib:,.0f} MiB" if memory.peak_mib else "not measured (no /proc)"),
        f"peak memory (max RSS of the ingesting process): {_peak_rss_mib():,.0f} MiB "
        f"(before ingest: {rss_before:,.0f} MiB)",
        _cpu_line(lines, seconds, own_cpu, memory.descendant_cpu_seconds),
        "conservation: " + ("holds for every file" if all(f.conserved for f in report.files) else "VIOLATED"),
    ])


def _cpu_line(lines: int, seconds: float, own: float, workers: float | None) -> str:
    per_line = f"CPU per line: {own / lines * 1e6:.1f} us in the ingesting process"
    if workers is None:
        return per_line + " (workers not measured: no /proc)"
    cpus = usable_cpus()
    busy = (own + workers) / (seconds * cpus)
    return (f"{per_line} + {workers / lines * 1e6:.1f} us in its workers = {(own + workers) / lines * 1e6:.1f} us; "
            f"the {cpus} CPUs were busy {busy:.0%} of the ingest")


def _own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class _MemorySampler:
    """The peak, while in the ``with`` block, of the memory of this process and its descendants, and the
    CPU time its descendants (the screening workers and the forkserver that starts them) used.

    Each process counts its PSS (its private pages plus its share of shared ones, so that the
    forkserver's preloaded libraries count once); RSS where PSS is not available. A descendant's CPU
    time is its last sample, so what it used in its last ``SAMPLE_SECONDS`` may be missed.

    The sampler shares the machine with what it measures, so a sample is kept cheap: the tree is
    followed from each process's children (not a scan of every process in /proc), and the PSS, for
    which the kernel walks each process's page tables, is read only when the tree's RSS (a few
    numbers in /proc/<pid>/status) passes the peak so far: a process's PSS is never above its RSS,
    so below that no new peak is possible (the processes share pages, so that sum is often above
    it). And a sample is taken every second: with a sample every 0.2 s, PSS read at each, and a scan
    of /proc, the sampler took 14 s of CPU in a 75 s pipeline benchmark of 100 agents, and the
    pipeline ran 8 % slower than with sampling off (77.0 s against 71.2 s); sampled every second,
    73.0 s, with the same peak (1,047 MiB; 1,040 MiB every 0.2 s).
    """

    def __init__(self) -> None:
        self.peak_mib = 0.0
        self._cpu_ticks: dict[int, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> _MemorySampler:
        if Path("/proc/self/stat").exists():
            self._thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    @property
    def descendant_cpu_seconds(self) -> float | None:
        if not self._thread.ident:
            return None
        return sum(self._cpu_ticks.values()) / os.sysconf("SC_CLK_TCK")

    def _sample(self) -> None:
        while True:
            tree = _process_tree(os.getpid())
            if sum(map(_rss_kib, tree)) / 1024 > self.peak_mib:
                self.peak_mib = max(self.peak_mib, sum(map(_memory_kib, tree)) / 1024)
            for pid in tree[1:]:
                self._cpu_ticks[pid] = max(self._cpu_ticks.get(pid, 0), _cpu_ticks(pid))
            if self._stop.wait(SAMPLE_SECONDS):
                return


def _process_tree(root: int) -> list[int]:
    """``root`` and its descendants, from each process's children in /proc (each of its threads has
    the list of the children it started); from a scan of every process where the kernel has no such
    lists."""
    if not Path(f"/proc/{root}/task/{root}/children").exists():
        return _scanned_process_tree(root)
    return _walk(root, _listed_children)


def _listed_children(pid: int) -> list[int]:
    """The children that the threads of ``pid`` started (none if it is gone)."""
    try:
        threads = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return []
    children: list[int] = []
    for thread in threads:
        try:
            children.extend(int(child) for child in (thread / "children").read_text().split())
        except OSError:
            continue
    return children


def _scanned_process_tree(root: int) -> list[int]:
    """``root`` and its descendants, from the parent of every process in /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(parent, []).append(int(entry.name))
    return _walk(root, lambda pid: children.get(pid, []))


def _walk(root: int, children: Callable[[int], list[int]]) -> list[int]:
    """``root`` and every process below it, by ``children``."""
    tree, pending = [], [root]
    while pending:
        pid = pending.pop()
        tree.append(pid)
        pending.extend(children(pid))
    return tree


def _cpu_ticks(pid: int) -> int:
    """The process's user + system CPU time in clock ticks, 0 if it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0
    return int(fields[11]) + int(fields[12])


def _memory_kib(pid: int) -> int:
    """The process's PSS in KiB (RSS where /proc has no smaps_rollup), 0 if it is gone."""
    for name, field in (("smaps_rollup", "Pss:"), ("status", "VmRSS:")):
        kib = _proc_field(pid, name, field)
        if kib is not None:
            return kib
    return 0


def _rss_kib(pid: int) -> int:
    """The process's RSS in KiB, 0 if it is gone."""
    return _proc_field(pid, "status", "VmRSS:") or 0


def _proc_field(pid: int, name: str, field: str) -> int | None:
    """The number after ``field`` in /proc/<pid>/<name>, None if the file or the field is missing."""
    try:
        for line in Path(f"/proc/{pid}/{name}").read_text().splitlines():
            if line.startswith(field):
                return int(line.split()[1])
    except OSError:
        return None
    return None
