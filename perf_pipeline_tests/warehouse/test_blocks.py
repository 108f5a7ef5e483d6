"""Day blocks (``warehouse/blocks.py``): what the aggregates read from a table's day blocks is what
reading the table's rows gives, value for value and dtype for dtype (histograms aside, which come as
an Arrow map column and must give the same entries); a table written without blocks is read from
its rows; days never written do not hide the blocks of the others."""

from __future__ import annotations

import datetime as dt
from functools import partial
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pytest
import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st

from perf_pipeline.aggregates import latency
from perf_pipeline.aggregates.rollups import daily_rollups as compute_rollups
from perf_pipeline.aggregates.store import read_days, read_rollups
from perf_pipeline.aggregates.windows import SUMMED, RollingWindowStrategy
from perf_pipeline.partitions import days_between
from perf_pipeline.warehouse import blocks
from perf_pipeline.warehouse.db import (
    TrailingDays,
    create_warehouse_engine,
    initialize_warehouse,
    insert_frame,
    read_frame,
    replace_partition,
    warehouse_engine,
)
from perf_pipeline.warehouse.schema import daily_metrics, daily_rollups, day_blocks, node_rollups, row_order

FIRST = dt.date(2026, 3, 1)


def _tasks(days: int, seed: int = 3) -> pd.DataFrame:
    """Scored tasks with the columns rollups read: several agents, nulls and feedback included."""
    rng = np.random.default_rng(seed)
    n = days * 40
    start = pd.Timestamp(FIRST, tz="UTC") + pd.to_timedelta(rng.integers(0, days * 86_400, n), unit="s")
    quality = np.where(rng.random(n) < 0.2, np.nan, rng.random(n))
    return pd.DataFrame({
        "agent_id": rng.choice(["agent-1", "agent-2", "ägent-3"], n), "department": rng.choice(["ops", "eng"], n),
        "project_id": rng.choice(["p1", "p2", None], n), "provider": rng.choice(["openai", "anthropic"], n),
        "model": rng.choice(["m1", "m2"], n), "task_type": rng.choice(["bug_fix", "research"], n),
        "prompt_version": rng.choice(["v1", "v2"], n), "partition_date": [t.date() for t in start],
        "assigned_at": start, "completed_at": start + pd.to_timedelta(rng.integers(1, 900, n), unit="s"),
        "status": rng.choice(["success", "failed"], n), "completion_time_s": rng.lognormal(4, 1, n),
        "total_tokens": np.where(rng.random(n) < 0.1, np.nan, rng.integers(100, 5000, n).astype(float)),
        "tool_invocations": rng.integers(0, 5, n), "revision_count": rng.integers(0, 3, n),
        "sla_seconds": np.where(rng.random(n) < 0.5, np.nan, 600.0),
        "response_time_ms": np.where(rng.random(n) < 0.1, np.nan, rng.lognormal(7, 1, n)),
        "quality_score": quality, "overall_score": quality, "efficiency_score": rng.random(n),
        "cost_usd": rng.random(n) / 100, "user_score": np.where(rng.random(n) < 0.7, np.nan, rng.random(n)),
        "user_rating_count": 0, "feedback_type": rng.choice(np.array([None, "correction", "approval"], dtype=object),
                                                            n)})


def _write_days(conn: sa.Connection, frame: pd.DataFrame, table: sa.Table, first: dt.date, last: dt.date) -> None:
    replace_partition(conn, table, first, last, frame, date_column="date")


def _histograms_as_dicts(frame: pd.DataFrame) -> pd.DataFrame:
    """The frame with its Arrow histogram column as the {bin: count} dicts the table's rows give."""
    column = frame["response_time_histogram"]
    lengths, bins, counts = latency.entries(column)
    ends = np.cumsum(lengths)
    dicts = [{str(b): int(c) for b, c in zip(bins[end - length:end], counts[end - length:end], strict=True)}
             for length, end in zip(lengths, ends, strict=True)]
    return frame.assign(response_time_histogram=pd.Series(dicts, index=frame.index, dtype=object))


def _sql_rollups(conn: sa.Connection, first: dt.date, last: dt.date, **kwargs: Any) -> pd.DataFrame:
    """read_rollups as it reads the table's rows (the blocks out of the way for the call)."""
    original = blocks.read
    blocks.read = lambda *args, **kw: None
    try:
        return read_rollups(conn, first, last, **kwargs)
    finally:
        blocks.read = original


def test_rollups_read_from_blocks_equal_those_read_from_rows(warehouse_url: str) -> None:
    rollups = compute_rollups(_tasks(12), pd.DataFrame(columns=["agent_id", "date", "collaboration_score"]))
    last = FIRST + dt.timedelta(days=11)
    engine = warehouse_engine(warehouse_url)
    with engine.begin() as conn:
        _write_days(conn, rollups, daily_rollups, FIRST, last)
    with engine.connect() as conn:
        for kwargs in ({}, {"columns": [*SUMMED, "response_time_histogram"]},
                       {"entity_types": ["department_agent"], "columns": ["department", "agent_id", "n_tasks"]},
                       {"entity_types": ["model_task_type"]}):
            from_blocks = blocks.read(conn, daily_rollups, FIRST, last,
                                      columns=kwargs.get("columns") and ["entity_type", "entity_id", "date",
                                                                          *kwargs["columns"]],
                                      parts=kwargs.get("entity_types", ["agent", "department", "project", "provider",
                                                                        "model", "task_type", "provider_task_type",
                                                                        "prompt_version"]))
            assert from_blocks is not None
            read = read_rollups(conn, FIRST, last, **kwargs)
            expected = _sql_rollups(conn, FIRST, last, **kwargs)
            assert len(read) == len(expected) > 0
            if "response_time_histogram" in read:
                assert isinstance(read["response_time_histogram"].dtype, pd.ArrowDtype)
                read = _histograms_as_dicts(read)
            pd.testing.assert_frame_equal(read, expected, check_exact=True)
        # The windows computed from either are the same, to the last bit.
        columns = [*SUMMED, "response_time_histogram"]
        days = [FIRST + dt.timedelta(days=k) for k in range(12)]
        pd.testing.assert_frame_equal(
            RollingWindowStrategy().compute(read_rollups(conn, FIRST, last, columns=columns), days),
            RollingWindowStrategy().compute(_sql_rollups(conn, FIRST, last, columns=columns), days), check_exact=True)
    # A table without a part column (node rollups), read in key order from its blocks.
    steps = pd.DataFrame({"agent_id": ["agent-2", "ägent-3", "agent-2", "agent-1"] * 6,
                          "node": ["act", "plan", "plan", "act"] * 6,
                          "date": [FIRST + dt.timedelta(days=k % 3) for k in range(24)]})
    nodes = steps.drop_duplicates().assign(n_steps=2, n_status_known=2, n_failed=1, n_duration=2, n_tokens=1,
                                           sum_duration_s=1.5, sum_tokens=300.0)
    with engine.begin() as conn:
        _write_days(conn, nodes, node_rollups, FIRST, last)
    with engine.connect() as conn:
        from_blocks = read_days(conn, node_rollups, "date", FIRST, last)
        blocks_read = blocks.read(conn, node_rollups, FIRST, last,
                                  order=row_order(node_rollups))
        from_rows = read_frame(conn, sa.select(node_rollups).where(node_rollups.c.date.between(FIRST, last))
                               .order_by(*[node_rollups.c[c] for c in row_order(node_rollups)]))
    assert blocks_read is not None and len(from_rows) == len(nodes)
    pd.testing.assert_frame_equal(from_blocks, from_rows, check_exact=True)
    pd.testing.assert_frame_equal(blocks_read, from_rows, check_exact=True)


def _node_rows(draw: st.DrawFn) -> pd.DataFrame:
    n = draw(st.integers(1, 40))
    floats = st.one_of(st.floats(allow_nan=False, allow_infinity=False, width=64), st.just(0.0))
    keys = draw(st.lists(st.tuples(st.sampled_from(["a", "b", "ü", "a/b", ""]), st.sampled_from(["plan", "act"]),
                                   st.integers(0, 5)), min_size=n, max_size=n, unique=True))
    return pd.DataFrame({
        "agent_id": [k[0] for k in keys], "node": [k[1] for k in keys],
        "date": [FIRST + dt.timedelta(days=k[2]) for k in keys],
        **{name: draw(st.lists(st.integers(0, 2**40), min_size=n, max_size=n))
           for name in ("n_steps", "n_status_known", "n_failed", "n_duration", "n_tokens")},
        "sum_duration_s": draw(st.lists(floats, min_size=n, max_size=n)),
        "sum_tokens": draw(st.lists(floats, min_size=n, max_size=n))})


def _metric_rows(draw: st.DrawFn) -> pd.DataFrame:
    n = draw(st.integers(1, 40))
    keys = draw(st.lists(st.tuples(st.sampled_from(["agent", "provider"]), st.sampled_from(["x", "y", "z"]),
                                   st.integers(0, 5)), min_size=n, max_size=n, unique=True))
    metric = st.one_of(st.none(), st.floats(allow_nan=False, allow_infinity=False))
    every_metric = [c.name for c in daily_metrics.columns][4:]
    all_null = draw(st.sampled_from(every_metric))  # a column without any value reads as None objects
    return pd.DataFrame({
        "entity_type": [k[0] for k in keys], "entity_id": [k[1] for k in keys],
        "date": [FIRST + dt.timedelta(days=k[2]) for k in keys],
        "n_tasks": draw(st.lists(st.integers(0, 1000), min_size=n, max_size=n)),
        **{name: [None] * n if name == all_null else draw(st.lists(metric, min_size=n, max_size=n))
           for name in every_metric}})


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_any_rows_read_from_blocks_equal_the_rows_read_from_the_table(tmp_path_factory: pytest.TempPathFactory,
                                                                       data: st.DataObject) -> None:
    engine = create_warehouse_engine(f"sqlite:///{tmp_path_factory.mktemp('blocks') / 'warehouse.db'}")
    initialize_warehouse(engine)
    table = data.draw(st.sampled_from([node_rollups, daily_metrics]))
    frame = data.draw(st.composite(_node_rows if table is node_rollups else _metric_rows)())
    last = FIRST + dt.timedelta(days=5)
    try:
        with engine.begin() as conn:
            _write_days(conn, frame, table, FIRST, last)
        order = row_order(table)
        with engine.connect() as conn:
            from_blocks = blocks.read(conn, table, FIRST, last, order=order)
            from_rows = read_frame(conn, sa.select(table).where(table.c.date.between(FIRST, last)).order_by(
                *[table.c[c] for c in order]))
            assert from_blocks is not None
            pd.testing.assert_frame_equal(from_blocks, from_rows, check_exact=True)
            assert read_days(conn, table, "date", FIRST, last).equals(from_rows)
    finally:
        engine.dispose()


def test_blocks_that_do_not_match_the_table_are_not_read(warehouse_url: str) -> None:
    engine = warehouse_engine(warehouse_url)
    rollups = compute_rollups(_tasks(4), pd.DataFrame(columns=["agent_id", "date", "collaboration_score"]))
    last = FIRST + dt.timedelta(days=3)
    with engine.begin() as conn:
        _write_days(conn, rollups, daily_rollups, FIRST, last)
    with engine.connect() as conn:
        assert blocks.read(conn, daily_rollups, FIRST, last) is not None
    marker = (day_blocks.c.part == blocks.MARKER) & (day_blocks.c.date == FIRST + dt.timedelta(days=1))
    with engine.begin() as conn:  # blocks of another format or table layout
        conn.execute(day_blocks.update().where(marker).values(payload=b"0/lz4/0000000000000000"))
    with engine.connect() as conn:
        assert blocks.read(conn, daily_rollups, FIRST, last) is None
        assert blocks.read(conn, daily_rollups, FIRST + dt.timedelta(days=2), last) is not None
    with engine.begin() as conn:  # rows changed by hand after the blocks were written
        conn.execute(day_blocks.update().where(marker).values(payload=blocks._signature(daily_rollups)))
        conn.execute(daily_rollups.delete().where(daily_rollups.c.date == last, daily_rollups.c.entity_type == "agent"))
    with engine.connect() as conn:
        assert blocks.read(conn, daily_rollups, FIRST, last - dt.timedelta(days=1)) is not None
        assert blocks.read(conn, daily_rollups, FIRST, last) is None
        assert blocks.read(conn, daily_rollups, FIRST, last, parts=["agent"]) is None
        # Only the parts read are checked: the other entity types of that day are as written.
        departments = blocks.read(conn, daily_rollups, FIRST, last, parts=["department"])
        assert departments is not None and set(departments["entity_type"]) == {"department"}
        pd.testing.assert_frame_equal(read_rollups(conn, FIRST, last), _sql_rollups(conn, FIRST, last),
                                      check_exact=True)


def test_markers_of_the_first_version_without_a_payload_are_read_from_the_rows(tmp_path) -> None:
    """A warehouse made by the first version of blocks keeps its nullable payload column and its
    markers without a payload: their days are read from the table's rows, without an error."""
    engine = warehouse_engine(f"sqlite:///{tmp_path / 'warehouse.db'}")
    rollups = compute_rollups(_tasks(3), pd.DataFrame(columns=["agent_id", "date", "collaboration_score"]))
    last = FIRST + dt.timedelta(days=2)
    with engine.begin() as conn:
        conn.exec_driver_sql("DROP TABLE day_blocks")
        conn.exec_driver_sql("CREATE TABLE day_blocks (table_name VARCHAR(64) NOT NULL, date DATE NOT NULL, "
                             "part TEXT NOT NULL, n_rows BIGINT NOT NULL, payload BLOB, "
                             "PRIMARY KEY (table_name, date, part))")
        _write_days(conn, rollups, daily_rollups, FIRST, last)
        conn.execute(day_blocks.update().where(day_blocks.c.part == blocks.MARKER,
                                               day_blocks.c.date == FIRST).values(payload=None))
    with engine.connect() as conn:
        assert blocks.read(conn, daily_rollups, FIRST, last) is None
        assert blocks.read(conn, daily_rollups, FIRST + dt.timedelta(days=1), last) is not None
        pd.testing.assert_frame_equal(read_rollups(conn, FIRST, last), _sql_rollups(conn, FIRST, last),
                                      check_exact=True)


def test_windows_over_days_read_both_ways_are_those_read_from_the_rows(tmp_path) -> None:
    """After an upgrade, a range's first chunk holds days written without blocks (read from the rows)
    and the next chunk days with blocks: the chunks' rows, joined, give the windows of the rows."""
    engine = warehouse_engine(f"sqlite:///{tmp_path / 'warehouse.db'}")
    rollups = compute_rollups(_tasks(20), pd.DataFrame(columns=["agent_id", "date", "collaboration_score"]))
    middle, last = FIRST + dt.timedelta(days=9), FIRST + dt.timedelta(days=19)
    with engine.begin() as conn:
        insert_frame(conn, daily_rollups, rollups[rollups["date"] <= middle])
        _write_days(conn, rollups[rollups["date"] > middle], daily_rollups, middle + dt.timedelta(days=1), last)
    columns = [*SUMMED, "response_time_histogram"]
    strategy = RollingWindowStrategy(windows=(3, 7))
    history = TrailingDays(partial(read_rollups, columns=columns), 7, "date")
    with engine.connect() as conn:
        # The first chunk's span is read from the rows, the days the second one adds from blocks.
        assert blocks.read(conn, daily_rollups, FIRST - dt.timedelta(days=6), middle) is None
        assert blocks.read(conn, daily_rollups, middle + dt.timedelta(days=1), last) is not None
        chunks = [(FIRST, middle), (middle + dt.timedelta(days=1), last)]
        joined = pd.concat([strategy.compute(history.read(conn, start, end), days_between(start, end))
                            for start, end in chunks], ignore_index=True)
        expected = strategy.compute(_sql_rollups(conn, FIRST - dt.timedelta(days=6), last, columns=columns),
                                    days_between(FIRST, last))
    pd.testing.assert_frame_equal(joined, expected, check_exact=True)


def test_a_table_written_without_blocks_is_read_from_its_rows(tmp_path) -> None:
    engine = warehouse_engine(f"sqlite:///{tmp_path / 'warehouse.db'}")
    rollups = compute_rollups(_tasks(6), pd.DataFrame(columns=["agent_id", "date", "collaboration_score"]))
    last = FIRST + dt.timedelta(days=5)
    with engine.begin() as conn:  # the last day written by a version without blocks, the others with
        _write_days(conn, rollups[rollups["date"] < last], daily_rollups, FIRST, last - dt.timedelta(days=1))
        insert_frame(conn, daily_rollups, rollups[rollups["date"] == last])
    with engine.connect() as conn:
        assert blocks.read(conn, daily_rollups, FIRST, last) is None
        assert blocks.read(conn, daily_rollups, FIRST, last - dt.timedelta(days=1)) is not None
        pd.testing.assert_frame_equal(read_rollups(conn, FIRST, last), _sql_rollups(conn, FIRST, last),
                                      check_exact=True)


def test_days_never_written_leave_the_blocks_of_the_others_in_use(tmp_path) -> None:
    engine = warehouse_engine(f"sqlite:///{tmp_path / 'warehouse.db'}")
    rollups = compute_rollups(_tasks(3), pd.DataFrame(columns=["agent_id", "date", "collaboration_score"]))
    with engine.begin() as conn:
        _write_days(conn, rollups, daily_rollups, FIRST, FIRST + dt.timedelta(days=2))
    with engine.connect() as conn:  # a window reaching 30 days before the first partition
        read = blocks.read(conn, daily_rollups, FIRST - dt.timedelta(days=30), FIRST + dt.timedelta(days=2))
        assert read is not None and len(read) == len(rollups)
        markers = conn.execute(sa.select(day_blocks.c.date, day_blocks.c.n_rows).where(
            day_blocks.c.part == blocks.MARKER).order_by(day_blocks.c.date)).all()
    assert [(day, n) for day, n in markers] == [
        (day, int((rollups["date"] == day).sum())) for day in sorted(set(rollups["date"]))]


def test_histogram_entries_are_the_same_from_dicts_and_from_an_arrow_map() -> None:
    dicts = [{"3": 1, "17": 4}, None, {}, {"799": 2}, {"0": 5, "1": 1, "2": 7}]
    from_dicts = latency.entries(dicts)
    column = pd.Series(pd.arrays.ArrowExtensionArray(
        blocks._arrow_column(daily_rollups.c.response_time_histogram, pd.Series(dicts, dtype=object), len(dicts))))
    for part in (slice(None), slice(1, 4), slice(3, None)):  # slices keep only their own entries
        expected = latency.entries(dicts[part])
        got = latency.entries(column.iloc[part].reset_index(drop=True))
        for a, b in zip(got, expected, strict=True):
            np.testing.assert_array_equal(a, b)
    assert [len(a) for a in from_dicts] == [5, 6, 6]


HISTOGRAMS = st.lists(st.one_of(st.none(), st.dictionaries(st.integers(0, 799).map(str), st.integers(1, 10**6),
                                                          max_size=12)), max_size=30)


@settings(max_examples=80, deadline=None)
@given(histograms=HISTOGRAMS)
def test_histograms_encode_as_the_list_of_their_entries(histograms: list[dict[str, int] | None]) -> None:
    """The histogram column made from keys and counts at once is the array, and encodes to the bytes,
    of each row's (bin, count) tuples (the way blocks were first written)."""
    entries = pa.array([None if h is None else [(int(k), int(v)) for k, v in h.items()] for h in histograms],
                       type=blocks.HISTOGRAM)
    made = blocks._histograms(histograms)
    assert made.equals(entries) and made.null_count == entries.null_count
    assert blocks._ipc(pa.table({"h": made})) == blocks._ipc(pa.table({"h": entries}))


@pytest.mark.parametrize("keys", [
    {"a": pa.array([0, 0]), "w": pa.array([2**62, -(2**62) - 1], pa.int64())},  # a last key too wide to diff
    {"t": pa.array(["x", "x", "x"]), "w": pa.array([2**63 - 1, -2, 5], pa.int64())},
    {"k": pa.array([2**63, 1], pa.uint64())},  # beyond int64
    {"k": pa.array([2**64 - 1, 2**64 - 3, 2**64 - 2], pa.uint64()), "j": pa.array([3, 2, 1], pa.int8())},
    {"k": pa.array([127, -128, 0], pa.int8()), "d": pa.array([dt.date(1960, 1, 1)] * 3, pa.date32())},
])
def test_wide_and_unsigned_keys_are_ordered_as_arrow_orders_them(keys: dict[str, pa.Array]) -> None:
    rows = pa.table(keys)
    expected = pc.sort_indices(rows, [(key, "ascending") for key in keys]).to_numpy()
    np.testing.assert_array_equal(blocks._sort_indices(rows, list(keys)), expected)


@settings(max_examples=80, deadline=None)
@given(data=st.data())
def test_rows_are_ordered_as_arrow_orders_them(data: st.DataObject) -> None:
    """``blocks._sort_indices`` (codes of the keys' values, one stable sort) is Arrow's ``sort_indices``:
    text by code point (accents, symbols, characters beyond the BMP), dates, integers, repeated keys,
    a last key in order already (rows read day after day) or not, codes too many for one integer."""
    n = data.draw(st.integers(0, 60))
    text = st.text(alphabet=st.sampled_from(["a", "B", "z", "é", "ü", "/", "-", " ", "\U0001f600", "日"]), max_size=3)
    rows = pa.table({
        "entity_id": pa.array(data.draw(st.lists(text, min_size=n, max_size=n)), pa.string()),
        "node": pa.array(data.draw(st.lists(st.sampled_from(["plan", "act", "Act"]), min_size=n, max_size=n))),
        "date": pa.array(data.draw(st.lists(st.dates(dt.date(2020, 1, 1), dt.date(2030, 1, 1)), min_size=n,
                                            max_size=n)), pa.date32()),
        "window_days": pa.array(data.draw(st.lists(st.integers(-5, 90), min_size=n, max_size=n)), pa.int64()),
        "wide": pa.array(data.draw(st.lists(st.integers(-(2**63), 2**63 - 1), min_size=n, max_size=n)), pa.int64())})
    if n and data.draw(st.booleans()):  # a null key: Arrow's own way
        rows = rows.set_column(0, "entity_id", pa.array([None, *rows.column(0).to_pylist()[1:]], pa.string()))
    if n > 1:  # a span is many blocks joined: chunked columns
        cut = data.draw(st.integers(1, n - 1))
        rows = pa.concat_tables([rows.slice(0, cut), rows.slice(cut)])
    order = data.draw(st.permutations(rows.column_names))[:data.draw(st.integers(1, 5))]
    if data.draw(st.booleans()):  # the last key in order already, as days read one after the other
        rows = rows.take(pc.sort_indices(rows, [(order[-1], "ascending")]))
    expected = pc.sort_indices(rows, [(key, "ascending") for key in order]).to_numpy()
    np.testing.assert_array_equal(blocks._sort_indices(rows, order), expected)
