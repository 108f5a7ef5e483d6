"""Judge chunks of landing lines: everything routing needs that does not depend on the warehouse.

Parsing, typing, canonical payloads and content hashes, identical copies within the chunk and
the Great Expectations suites depend only on the chunk's lines, so they run here, in worker
processes when the ingest is large (``perf_pipeline.ingest.workers``). The router
(``pipeline._Router``) receives, chunk by chunk and in order, what this module found, and adds
what only the warehouse knows: ids already staged, or already quarantined as conflicting.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from perf_pipeline.contract import EventSpec, event_specs
from perf_pipeline.ingest.normalize import (
    PARENT,
    PARTITION_DATE,
    ROW,
    NormalizedBatch,
    Records,
    TypingOptions,
    canonical_payloads,
    content_hash,
    normalize,
)
from perf_pipeline.ingest.readers import ReadStats, SourceLine, parse_json, read_lines
from perf_pipeline.validation import suites
from perf_pipeline.validation.reasons import Reason
from perf_pipeline.warehouse.schema import flat_fields

TABULAR_FORMATS = {"csv", "parquet"}
# Rows per GroupVerdict sent to the router: bounds what it holds at once.
SLICE_ROWS = 25_000


@dataclass(frozen=True)
class JudgeOptions:
    partition_start: dt.date
    default_timezone: str | None = None


@dataclass
class Rejected:
    """A line quarantined before typing (not JSON, no or unknown event type, wrong format)."""

    file: int
    line_number: int
    raw: str
    reasons: list[Reason]


@dataclass
class GroupVerdict:
    """Rows of one event type of a chunk, in order, judged as far as the chunk can tell.

    Identical copies within the chunk are left out (counted in ``duplicates``, per file).
    ``reasons`` holds, by position, the reasons of rows that failed; ``payloads`` the canonical
    text of the others (None for failed rows).
    """

    event_type: str
    files: list[int]
    line_numbers: list[int]
    raws: list[str]
    ids: list[str | None]
    digests: list[str]
    partitions: list[dt.date | None]
    payloads: list[str | None]
    reasons: dict[int, list[Reason]]
    duplicates: dict[int, int] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.ids)

    def slices(self, size: int) -> Iterator[GroupVerdict]:
        """The verdict in consecutive parts of at most ``size`` rows (duplicates go with the first)."""
        for start in range(0, max(len(self), 1), size):
            stop = start + size
            yield GroupVerdict(
                self.event_type, self.files[start:stop], self.line_numbers[start:stop], self.raws[start:stop],
                self.ids[start:stop], self.digests[start:stop], self.partitions[start:stop],
                self.payloads[start:stop],
                {row - start: reasons for row, reasons in self.reasons.items() if start <= row < stop},
                self.duplicates if start == 0 else {})


@dataclass
class ChunkVerdict:
    """A chunk judged: lines read per file, lines rejected before typing, and one verdict per group.

    ``shared_types`` is true when an event type has several groups (CSV and JSON lines of one
    type in one chunk); the router then writes the chunk's rows only once it has routed them all.
    """

    lines_read: dict[int, int]
    rejected: list[Rejected]
    groups: list[GroupVerdict]

    @property
    def shared_types(self) -> bool:
        types = [group.event_type for group in self.groups]
        return len(types) != len(set(types))


@dataclass(frozen=True)
class Unit:
    """Files ingested in one transaction, read in order as one sequence of lines cut into chunks.

    Several small files (a batch), or one large file streamed; ``formats`` and ``paths`` are
    indexed by the file's position in the unit (``SourceLine.file``).
    """

    paths: tuple[Path, ...]
    formats: tuple[str, ...]
    chunk_lines: int


@dataclass
class ChunkStart:
    """A chunk's lines read per file and lines rejected before typing; its groups follow."""

    lines_read: dict[int, int]
    rejected: list[Rejected]
    shared_types: bool


@dataclass
class ChunkEnd:
    """All of the chunk's groups have been sent."""


@dataclass
class UnitEnd:
    """The unit is read: blank lines skipped, per file."""

    blank_lines: dict[int, int]


Message = ChunkStart | GroupVerdict | ChunkEnd | UnitEnd


def judge_unit(unit: Unit, options: JudgeOptions) -> Iterator[Message]:
    """Read and judge a unit chunk by chunk: per chunk a ChunkStart, its group slices, a ChunkEnd."""
    stats = [ReadStats() for _ in unit.paths]
    for chunk in _chunks(unit, stats):
        verdict = judge_chunk(chunk, list(unit.formats), options)
        yield ChunkStart(verdict.lines_read, verdict.rejected, verdict.shared_types)
        for group in verdict.groups:
            yield from group.slices(SLICE_ROWS)
        yield ChunkEnd()
    yield UnitEnd({position: s.blank_lines for position, s in enumerate(stats)})


def _chunks(unit: Unit, stats: list[ReadStats]) -> Iterator[list[SourceLine]]:
    """The unit's lines, file after file, in chunks of ``unit.chunk_lines``."""
    chunk: list[SourceLine] = []
    for position, (path, file_format) in enumerate(zip(unit.paths, unit.formats, strict=True)):
        for line in read_lines(path, file_format, stats[position]):
            line.file = position
            chunk.append(line)
            if len(chunk) >= unit.chunk_lines:
                yield chunk
                chunk = []
    if chunk:
        yield chunk


def judge_chunk(chunk: list[SourceLine], formats: list[str], options: JudgeOptions) -> ChunkVerdict:
    """Parse, group by event type, type, hash and validate the lines of one chunk.

    ``formats`` gives the file format of each file position (``SourceLine.file``).
    """
    specs = event_specs()
    lines_read: dict[int, int] = defaultdict(int)
    rejected: list[Rejected] = []
    groups: dict[tuple[str, bool], tuple[list[SourceLine], Records]] = {}
    for line in chunk:
        lines_read[line.file] += 1
        parse_json(line)
        reason = _structural_reason(line, formats[line.file], specs)
        if reason is not None:
            rejected.append(Rejected(line.file, line.line_number, line.raw, [reason]))
            line.record = None
            continue
        key = (line.record["event_type"], formats[line.file] == "csv")
        if key not in groups:
            groups[key] = ([], Records(specs[key[0]].names))
        lines, records = groups[key]
        lines.append(line)
        records.add(line.record)
        line.record = None
    verdicts = [_judge_group(specs[event_type], lines, records,
                             TypingOptions(tabular=tabular, default_timezone=options.default_timezone), options)
                for (event_type, tabular), (lines, records) in groups.items()]
    return ChunkVerdict(dict(lines_read), rejected, verdicts)


def _structural_reason(line: SourceLine, file_format: str, specs: dict[str, EventSpec]) -> Reason | None:
    """Why the line cannot be typed at all, or None."""
    if line.reason is not None:
        return line.reason
    event_type = line.record.get("event_type")
    if event_type in (None, ""):
        return Reason("missing_event_type", "event_type", "event_type: required but missing")
    if not isinstance(event_type, str) or event_type not in specs:
        return Reason("unknown_event_type", "event_type",
                      f"event_type: {event_type!r} is not one of {', '.join(specs)}")
    if file_format in TABULAR_FORMATS and event_type != "task":
        return Reason("unsupported_in_format", "event_type",
                      f"event_type: {event_type!r} rows belong in JSON Lines files; "
                      f"{file_format} files carry task events only")
    return None


def _judge_group(spec: EventSpec, lines: list[SourceLine], records: Records, typing: TypingOptions,
                 options: JudgeOptions) -> GroupVerdict:
    """Type, hash and validate the records of one event type (and format family) of a chunk."""
    batch = normalize(spec, lines, records, typing)
    frame = batch.frame
    payload_columns = [c for c in frame.columns if c not in (ROW, PARTITION_DATE)]
    payloads = canonical_payloads(frame, payload_columns)
    typed_ok = ~frame[ROW].isin(list(batch.reasons.failed_rows()))
    digests = [content_hash(p) if ok else content_hash(line.raw)
               for p, ok, line in zip(payloads, typed_ok, lines, strict=True)]
    frame = frame.assign(_digest=digests)
    kept, duplicates = _drop_identical_copies(frame, spec, lines)
    _validate(spec, batch, kept)
    _check_partition_range(spec, kept, batch, options.partition_start)
    valid = kept[~kept[ROW].isin(list(batch.reasons.failed_rows()))]
    suites.run_rules(f"{spec.event_type}_unique", valid, [suites.uniqueness_rule(spec)], batch.reasons)
    return _verdict(spec, batch, kept, payloads, duplicates)


def _drop_identical_copies(frame: pd.DataFrame, spec: EventSpec,
                           lines: list[SourceLine]) -> tuple[pd.DataFrame, dict[int, int]]:
    """Skip later copies of an identical event (same id, same content) within the chunk."""
    has_id = frame[spec.id_field].notna()
    repeated = has_id & frame.duplicated(subset=[spec.id_field, "_digest"], keep="first")
    duplicates: dict[int, int] = defaultdict(int)
    for row in frame.loc[repeated, ROW]:
        duplicates[lines[row].file] += 1
    return frame[~repeated], dict(duplicates)


def _validate(spec: EventSpec, batch: NormalizedBatch, kept: pd.DataFrame) -> None:
    columns = [(name, f, name.replace("code_review_", "code_review.", 1) if name.startswith("code_review_")
                else name) for name, f in flat_fields(spec)]
    rules = suites.field_rules(columns) + suites.cross_field_rules(spec)
    suites.run_rules(spec.event_type, suites.add_derived_columns(spec, kept), rules, batch.reasons)
    steps = batch.steps
    if steps is not None and not steps.empty:
        array = next(f for f in spec.fields if f.kind == "array")
        step_rules = suites.field_rules([(c.name, c, f"{array.name}.{c.name}") for c in array.children])
        steps = steps[steps[PARENT].isin(kept[ROW])]
        suites.run_rules(f"{spec.event_type}_steps", steps, step_rules, batch.reasons,
                         parents=batch.steps[PARENT].tolist())


def _check_partition_range(spec: EventSpec, kept: pd.DataFrame, batch: NormalizedBatch,
                           partition_start: dt.date) -> None:
    dates = kept[PARTITION_DATE]
    first = pd.Timestamp(partition_start, tz="UTC")
    last = pd.Timestamp(dt.datetime.now(dt.UTC).date(), tz="UTC")
    outside = dates.notna() & ((dates < first) | (dates > last))
    for row, value in zip(kept.loc[outside, ROW], kept.loc[outside, spec.partition_field], strict=True):
        batch.reasons.add([row], "outside_partitions", spec.partition_field, [
            f"{spec.partition_field}: {value.isoformat()} is outside the partitions "
            f"{partition_start} .. today (UTC)"])


def _verdict(spec: EventSpec, batch: NormalizedBatch, kept: pd.DataFrame, payloads: list[str],
             duplicates: dict[int, int]) -> GroupVerdict:
    """The kept rows, in order, with what the router needs of each."""
    rows = kept[ROW].tolist()
    lines = [batch.lines[row] for row in rows]
    reasons_of = batch.reasons.by_row
    reasons = {position: reasons_of[row] for position, row in enumerate(rows) if reasons_of.get(row)}
    days = kept[PARTITION_DATE].dt.tz_localize(None).to_numpy(dtype="datetime64[D]")
    return GroupVerdict(
        event_type=spec.event_type,
        files=[line.file for line in lines],
        line_numbers=[line.line_number for line in lines],
        raws=[line.raw for line in lines],
        ids=[None if pd.isna(v) else str(v) for v in kept[spec.id_field].tolist()],
        digests=kept["_digest"].tolist(),
        partitions=np.where(np.isnat(days), None, days.astype(object)).tolist(),
        payloads=[None if position in reasons else payloads[row] for position, row in enumerate(rows)],
        reasons=reasons,
        duplicates=duplicates,
    )
