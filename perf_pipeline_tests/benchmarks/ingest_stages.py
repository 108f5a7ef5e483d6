"""Benchmark: where a screening worker's CPU time goes, per line, stage by stage.

    python -m perf_pipeline_tests.benchmarks.ingest_stages --lines 200000

``perf-pipeline benchmark`` tells how fast the whole ingest is and how its CPU time splits between
the writing process and the screening workers; this tells what a worker spends its time on. It
generates synthetic logs (as the ingest benchmark does: 20,000 tasks a day and their feedback,
reviews and messages), gathers files into one unit of at least ``--lines`` lines, as the ingest
plans a batch, and screens it here, in this process, with the cyclic garbage collector off (as a
worker runs). The stages are timed by wrapping the screening module's own functions:

- reading: the lines read from the files, alone;
- parsing: reading and ``json.loads`` of every line, less reading;
- records: the rest of gathering a chunk's lines into records by event type;
- typing: ``normalize`` (contract types, nested objects, steps);
- payloads: the canonical JSON text of every row, and where it waits for validation;
- hashing: sha256 of the payloads;
- identical copies: finding later copies of an identical event within the chunk;
- Great Expectations: every suite run (row rules, steps, uniqueness);
- verdicts: the rest, building what the router receives.

A worker in the ingest shares the machine with another worker and the writing process, so it
runs slower than here; the proportions are what this is for.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

from perf_pipeline.ingest import screening
from perf_pipeline.ingest.readers import ReadStats, parse_json, read_lines
from perf_pipeline.ingest.verdicts import ScreenOptions, Unit
from perf_pipeline.partitions import PARTITION_START
from perf_pipeline.validation import suites

TASKS_PER_DAY = 20_000
CHUNK_LINES = 200_000


class _Timers:
    """Seconds spent in wrapped functions, by name (a call inside another counts in both)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)

    def wrap(self, module: ModuleType, name: str) -> None:
        function = getattr(module, name)

        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                self.seconds[name] += time.perf_counter() - started

        setattr(module, name, timed)


def _timed(run: Callable[[], Iterator[Any]]) -> tuple[float, int]:
    """Seconds to exhaust ``run()``, and how many items it gave."""
    started = time.perf_counter()
    items = sum(1 for _ in run())
    return time.perf_counter() - started, items


def stage_seconds(paths: tuple[Path, ...]) -> tuple[int, dict[str, float]]:
    """Lines read and seconds per stage for screening ``paths`` as one unit."""
    def read() -> Iterator[Any]:
        for path in paths:
            yield from read_lines(path, "jsonl", ReadStats())

    def read_and_parse() -> Iterator[Any]:
        for line in read():
            parse_json(line)
            yield line

    reading, lines = _timed(read)
    parsing = _timed(read_and_parse)[0] - reading
    timers = _Timers()
    for name in ("_type_chunk", "_type_group", "normalize", "content_hash", "_drop_identical_copies"):
        timers.wrap(screening, name)
    timers.wrap(suites, "run_rules")
    unit = Unit(paths, tuple("jsonl" for _ in paths), CHUNK_LINES, together=True)
    total = _timed(lambda: screening.screen_unit(unit, ScreenOptions(partition_start=PARTITION_START)))[0]
    t = timers.seconds
    grouping = t["_type_group"] - t["normalize"] - t["content_hash"] - t["_drop_identical_copies"]
    return lines, {
        "reading": reading,
        "parsing": parsing,
        "records": t["_type_chunk"] - t["_type_group"] - reading - parsing,
        "typing": t["normalize"],
        "payloads": grouping,
        "hashing": t["content_hash"],
        "identical copies": t["_drop_identical_copies"],
        "Great Expectations": t["run_rules"],
        "verdicts": total - t["_type_chunk"] - t["run_rules"],
        "total": total,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lines", type=int, default=200_000, help="screen a unit of at least this many lines")
    parser.add_argument("--folder", type=Path, help="generate into this folder (default: a temporary one)")
    args = parser.parse_args(argv)
    folder = args.folder or Path(tempfile.mkdtemp(prefix="perf-stages-"))
    days = max(1, -(-args.lines // (TASKS_PER_DAY * 3 // 2)))  # a day of 20,000 tasks is ~30,000 lines
    start = dt.date.today() - dt.timedelta(days=days + 1)
    subprocess.run([sys.executable, "-m", "perf_pipeline", "generate", "--out", str(folder), "--start",
                    start.isoformat(), "--days", str(days), "--tasks-per-day", str(TASKS_PER_DAY), "--agents", "200"],
                   check=True, stdout=subprocess.DEVNULL)
    paths: list[Path] = []
    counted = 0
    for path in sorted(folder.glob("*.jsonl")):
        if counted >= args.lines:
            break
        paths.append(path)
        with path.open("rb") as handle:
            counted += sum(1 for _ in handle)
    gc.disable()
    lines, seconds = stage_seconds(tuple(paths))
    print(f"one unit of {len(paths)} files, {lines:,} lines, screened in this process in {seconds['total']:.1f} s")
    for stage, value in seconds.items():
        print(f"{stage:>20}: {value / lines * 1e6:5.1f} us per line")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
