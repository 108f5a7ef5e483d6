"""The ingest benchmark's report: its figures are measured, not assumed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from perf_pipeline.benchmark import _MemorySampler, run_ingest_benchmark

# A child that uses ~0.6 s of CPU, then idles long enough to be sampled after it.
BUSY_CHILD = ("import time\n"
              "start = time.process_time()\n"
              "while time.process_time() - start < 0.6:\n"
              "    pass\n"
              "time.sleep(0.6)\n")


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
