"""Property: whatever mix of good, bad, duplicate and conflicting lines lands, in however many files,
every line is accounted for exactly once and no id is both loaded and in conflict."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from perf_pipeline.ingest.checks import conservation_violations
from perf_pipeline.ingest.pipeline import IngestOptions, ingest_landing
from perf_pipeline.partitions import PARTITION_START
from perf_pipeline.warehouse.db import warehouse_engine
from perf_pipeline.warehouse.schema import quarantined_events, staged_events
from perf_pipeline_tests.events_factory import feedback, task, write_jsonl

LINE_KINDS = st.one_of(
    st.builds(lambda i: task(f"t-{i}"), st.integers(0, 5)),                           # good (repeats: duplicates)
    st.builds(lambda i, s: task(f"t-{i}", status=s), st.integers(0, 5),
              st.sampled_from(["failed", "timeout"])),                                # same id, other content
    st.builds(lambda i, r: task(f"t-{i}", user_rating=r), st.integers(0, 5), st.integers(6, 9)),  # invalid
    st.builds(lambda i: feedback(f"f-{i}", task_id=f"t-{i}"), st.integers(0, 3)),
    st.sampled_from(["{not json", "[]", "", '{"event_type": "nope"}']),
)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(files=st.lists(st.lists(LINE_KINDS, min_size=1, max_size=12), min_size=1, max_size=3))
def test_every_line_is_accounted_for_once(files: list[list]) -> None:
    with tempfile.TemporaryDirectory() as folder:
        landing = Path(folder) / "landing"
        landing.mkdir()
        engine = warehouse_engine(f"sqlite:///{folder}/w.db")
        for number, lines in enumerate(files):
            write_jsonl(landing / f"{number:02d}.jsonl", lines)
            ingest_landing(engine, landing, IngestOptions(partition_start=PARTITION_START))
        with engine.connect() as conn:
            assert conservation_violations(conn) == []
            staged = conn.execute(sa.select(staged_events.c.event_type, staged_events.c.event_id)).all()
            conflicts = set(conn.execute(sa.select(quarantined_events.c.event_type, quarantined_events.c.event_id)
                                         .where(quarantined_events.c.reason_codes.contains("conflicting"))).all())
        engine.dispose()
    assert not set(staged) & conflicts
    distinct_contents = {json.dumps(line, sort_keys=True) for lines in files for line in lines
                         if isinstance(line, dict)}
    assert len(staged) <= len(distinct_contents)
