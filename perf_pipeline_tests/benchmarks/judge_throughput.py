"""Judge throughput benchmark: tasks judged per second through the pipeline's judge path (prepare,
redact, plan, cache lookup, the openai client, saving judgements and calls to a SQLite warehouse)
against the loopback OpenAI-compatible test server, which adds a fixed latency to every answer.

    python -m perf_pipeline_tests.benchmarks.judge_throughput --tasks 2000 --concurrency 32 --latency-ms 250

The server runs in its own process so that it does not share this process's interpreter lock.
The ceiling is concurrency / latency (32 / 0.25 s = 128 tasks/s).
"""

from __future__ import annotations

import argparse
import datetime as dt
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import sqlalchemy as sa

from perf_pipeline.scoring.config import load_scoring_config
from perf_pipeline.scoring.judge import JudgePrice, OpenAIJudgeClient
from perf_pipeline.scoring.judging import judge_tasks
from perf_pipeline.warehouse.db import warehouse_engine
from perf_pipeline.warehouse.schema import llm_judge_calls, llm_judgements

DAY = dt.date(2026, 3, 1)


def synthetic_tasks(count: int) -> pd.DataFrame:
    return pd.DataFrame({
        "task_id": [f"bench-{i:06d}" for i in range(count)],
        "agent_id": [f"agent-{i % 50:03d}" for i in range(count)],
        "partition_date": [DAY] * count,
        "objective": ["Fix the race in the scheduler's retry loop"] * count,
        "input": ["Traceback (most recent call last): ... TimeoutError in retry()"] * count,
        "output": [f"Patched retry() to hold the lock across the check; added test {i}." for i in range(count)],
    })


def run(tasks: int, concurrency: int, latency_ms: float) -> str:
    server = subprocess.Popen([sys.executable, "-m", "perf_pipeline_tests.fakes.openai_server",
                               "--latency-ms", str(latency_ms)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    try:
        url = server.stdout.readline().strip()
        workdir = Path(tempfile.mkdtemp(prefix="perf-judge-bench-"))
        engine = warehouse_engine(f"sqlite:///{workdir / 'warehouse.db'}")
        config = load_scoring_config()
        config = config.model_copy(update={"judge": config.judge.model_copy(update={"concurrency": concurrency})})
        client = OpenAIJudgeClient(api_key="benchmark-key", base_url=url, config=config.judge,
                                   price=JudgePrice(0.40, 1.60))
        frame = synthetic_tasks(tasks)
        started = time.perf_counter()
        result = judge_tasks(engine, frame, config, client, "bench-model", "benchmark", None)
        seconds = time.perf_counter() - started
        with engine.connect() as conn:
            stored = conn.execute(sa.select(sa.func.count()).select_from(llm_judgements)).scalar_one()
            latencies = pd.Series(conn.execute(sa.select(llm_judge_calls.c.latency_ms)).scalars().all())
        rerun_started = time.perf_counter()
        cached = judge_tasks(engine, frame, config, client, "bench-model", "benchmark", None)
        rerun_seconds = time.perf_counter() - rerun_started
    finally:
        server.stdin.close()
        server.wait(timeout=30)
    server_line = server.stderr.read().strip().splitlines()[-1]
    return "\n".join([
        f"judged {result.statuses.get('scored', 0):,} of {tasks:,} tasks in {seconds:.1f}s "
        f"with {concurrency} in flight and {latency_ms:.0f} ms added latency",
        f"throughput: {result.statuses.get('scored', 0) / seconds:,.1f} tasks/s "
        f"(ceiling {concurrency / (latency_ms / 1000):,.0f}/s)",
        f"call latency at the client: p50 {latencies.median():,.0f} ms, p95 {latencies.quantile(0.95):,.0f} ms",
        f"server: {server_line}",
        f"judgements stored: {stored:,}; judge tokens {result.input_tokens:,} in / {result.output_tokens:,} out, "
        f"${result.cost_usd:.4f} at $0.40/$1.60 per million",
        f"re-run: {cached.statuses.get('cached', 0):,} cached, {cached.calls} calls, in {rerun_seconds:.1f}s",
    ])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--latency-ms", type=float, default=250.0)
    args = parser.parse_args()
    print(run(args.tasks, args.concurrency, args.latency_ms))


if __name__ == "__main__":
    main()
