"""The ingest benchmark's report: its figures are measured, not assumed."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from perf_pipeline.benchmark import (
    SAMPLE_SECONDS,
    _MemorySampler,
    _process_tree,
    _scanned_process_tree,
    run_ingest_benchmark,
)

# A child that uses ~0.6 s of CPU, then idles long enough to be sampled after it.
BUSY_CHILD = ("import time\n"
              "start = time.process_time()\n"
              "while time.process_time() - start < 0.6:\n"
              "    pass\n"
              f"time.sleep({2.5 * SAMPLE_SECONDS})\n")


def test_benchmark_reports_throughput_memory_cpu_and_conservation() -> None:
    report = run_ingest_benchmark(events=300)
    assert "ingest + validation: " in report
    assert "throughput: " in report and " events/s" in report
    assert "CPU per line: " in report
    assert "conservation: holds for every file" in report


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="the sampler reads /proc")
def test_sampler_counts_the_cpu_time_of_child_processes() -> None:
    with _MemorySampler() as sampler:
        subprocess.run([sys.executable, "-c", BUSY_CHILD], check=True, timeout=60)
    assert sampler.descendant_cpu_seconds is not None
    assert 0.4 <= sampler.descendant_cpu_seconds < 5
    assert sampler.peak_mib > 0


# A child that starts a grandchild, then holds ~300 MiB until its stdin closes.
HOLDING_CHILD = ("import subprocess, sys\n"
                 "grandchild = subprocess.Popen([sys.executable, '-c', 'import sys; sys.stdin.read()'],\n"
                 "                              stdin=subprocess.PIPE)\n"
                 "held = bytearray(300 * 1024 * 1024)\n"
                 "print(grandchild.pid, flush=True)\n"
                 "sys.stdin.read()\n"
                 "grandchild.stdin.close()\n"
                 "grandchild.wait()\n")


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="the sampler reads /proc")
def test_the_tree_from_children_lists_is_the_tree_from_a_scan_and_its_peak_is_found() -> None:
    with _MemorySampler() as sampler:
        child = subprocess.Popen([sys.executable, "-c", HOLDING_CHILD], stdin=subprocess.PIPE,
                                 stdout=subprocess.PIPE, text=True)
        try:
            grandchild = int(child.stdout.readline())
            tree = _process_tree(os.getpid())
            assert {child.pid, grandchild} <= set(tree)
            assert sorted(tree) == sorted(_scanned_process_tree(os.getpid()))
            time.sleep(4 * SAMPLE_SECONDS)
        finally:
            child.communicate("", timeout=60)
    assert sampler.peak_mib > 300
