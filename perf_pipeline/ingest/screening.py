"""Screen chunks of landing lines: everything routing needs that does not depend on the warehouse.

Parsing, typing, canonical payloads and content hashes, identical copies within the chunk and
the Great Expectations suites depend only on the chunk's lines, so they run here, in worker
processes when the ingest is large (``perf_pipeline.ingest.workers``). The router
(``pipeline._Router``) receives, chunk by chunk and in order, what this module found, and adds
what only the warehouse knows: ids already staged, or already quarantined as conflicting. The
uniqueness rule is screened here, on the chunk; since copies identical to a warehouse copy are
duplicates before that rule applies, the router skips those of the ids it flagged
(``GroupVerdict.repeated``) and keeps its verdict for the copies left.
"""

from __future__ import annotations

import bisect
import datetime as dt
import itertools
import pickle
import tempfile
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd

from perf_pipeline.contract import EventSpec, event_specs
from perf_pipeline.ingest.normalize import (
    PARENT,
    PARTITION_DATE,
    ROW,
    NormalizedBatch,
    ReasonLog,
    Records,
    TypingOptions,
    content_hash,
    normalize,
    payload_slices,
)
from perf_pipeline.ingest.readers import ReadStats, SourceLine, parse_json, raw_text, read_lines
from perf_pipeline.ingest.verdicts import (
    ChunkEnd,
    ChunkStart,
    GroupVerdict,
    Message,
    Rejected,
    ScreenOptions,
    Unit,
    UnitEnd,
)
from perf_pipeline.validation import suites
from perf_pipeline.validation.reasons import Reason
from perf_pipeline.warehouse.schema import flat_fields

TABULAR_FORMATS = {"csv", "parquet"}
# Rows per GroupVerdict sent to the router: bounds what it holds at once.
SLICE_ROWS = 10_000


def screen_unit(unit: Unit, options: ScreenOptions) -> Iterator[Message]:
    """Read and screen a unit: per chunk a ChunkStart, its group slices, a ChunkEnd; then a UnitEnd."""
    stats = [ReadStats() for _ in unit.paths]
    typed: list[_TypedChunk] = []
    for chunk in _chunks(unit, stats):
        typed.append(_type_chunk(chunk, unit, options))
        if not unit.together:
            yield from _judged(typed, unit, options)
            typed = []
    yield from _judged(typed, unit, options)
    yield UnitEnd({position: s.blank_lines for position, s in enumerate(stats)})


def _chunks(unit: Unit, stats: list[ReadStats]) -> Iterator[Iterator[SourceLine]]:
    """The unit's lines, file after file, in chunks of ``unit.chunk_lines`` (each read as it is consumed)."""
    lines = _lines(unit, stats)
    while (first := next(lines, None)) is not None:
        yield itertools.chain([first], itertools.islice(lines, unit.chunk_lines - 1))


def _lines(unit: Unit, stats: list[ReadStats]) -> Iterator[SourceLine]:
    for position, (path, file_format) in enumerate(zip(unit.paths, unit.formats, strict=True)):
        for line in read_lines(path, file_format, stats[position]):
            line.file = position
            yield line


class _Spilled:
    """Texts added in parts to a temporary file, read back in order: a group's payloads wait there
    (not in memory) while the chunk is validated."""

    def __init__(self) -> None:
        self._file = tempfile.TemporaryFile()  # noqa: SIM115 - closed once read (or when collected)
        self._part: list[str] = []
        self._start = 0

    def add(self, texts: list[str]) -> None:
        pickle.dump(texts, self._file, protocol=pickle.HIGHEST_PROTOCOL)

    def reader(self) -> Callable[[int], str]:
        """A function giving text ``i``, to be asked in increasing order of ``i``."""
        self._file.seek(0)
        self._part, self._start = [], 0

        def text(i: int) -> str:
            while i >= self._start + len(self._part):
                self._start += len(self._part)
                self._part = pickle.load(self._file)
            return self._part[i - self._start]

        return text

    def close(self) -> None:
        self._file.close()


@dataclass
class _TypedGroup:
    """Records of one event type (and format family) of a chunk, typed and hashed, awaiting validation."""

    spec: EventSpec
    batch: NormalizedBatch
    kept: pd.DataFrame  # identical copies within the chunk left out
    payloads: _Spilled
    duplicates: dict[int, int]


@dataclass
class _TypedChunk:
    lines_read: dict[int, int]
    rejected: list[Rejected]
    groups: list[_TypedGroup]


def _type_chunk(chunk: Iterator[SourceLine], unit: Unit, options: ScreenOptions) -> _TypedChunk:
    """Parse the chunk's lines, reject those that cannot be typed, group the others by event type and type them.

    Lines are parsed as they are read, their record's values taken and their text dropped (see
    ``SourceLine``), so that the chunk's text and parsed objects are never all in memory at once.
    """
    specs = event_specs()
    lines_read: dict[int, int] = defaultdict(int)
    rejected: list[Rejected] = []
    groups: dict[tuple[str, bool], tuple[list[SourceLine], Records]] = {}
    accepted: dict[tuple[str, str], tuple[list[SourceLine], Records]] = {}  # by (event type, file format)
    for line in chunk:
        lines_read[line.file] += 1
        parse_json(line)
        record = line.record
        event_type = record.get("event_type") if record is not None else None
        group = accepted.get((event_type, unit.formats[line.file])) if type(event_type) is str else None
        if group is None:
            file_format = unit.formats[line.file]
            reason = _structural_reason(line, file_format, specs)
            if reason is not None:
                rejected.append(Rejected(line.file, line.line_number, line.raw, [reason]))
                line.record = None
                continue
            key = (event_type, file_format == "csv")
            if key not in groups:
                groups[key] = ([], Records(specs[event_type].names))
            group = accepted[(event_type, file_format)] = groups[key]
        group[0].append(line)
        group[1].add(record)
        line.record = None
        if line.offset >= 0:
            line.raw = None
    accepted.clear()
    typed = []
    for event_type, tabular in list(groups):  # each group's records dropped once typed
        lines, records = groups.pop((event_type, tabular))
        typing = TypingOptions(tabular=tabular, default_timezone=options.default_timezone)
        typed.append(_type_group(specs[event_type], lines, records, typing, unit))
        del lines, records
    return _TypedChunk(dict(lines_read), rejected, typed)


def _judged(chunks: list[_TypedChunk], unit: Unit, options: ScreenOptions) -> Iterator[Message]:
    """Validate the chunks' groups, then the chunks' messages (duplicates within a chunk found per chunk)."""
    by_type: dict[str, list[_TypedGroup]] = defaultdict(list)
    for group in (group for chunk in chunks for group in chunk.groups):
        by_type[group.spec.event_type].append(group)
    for groups in by_type.values():
        _validate(groups)
    for chunk in chunks:
        yield ChunkStart(chunk.lines_read, chunk.rejected)
        for group in chunk.groups:
            yield from _verdicts(group, unit, options)
        yield ChunkEnd()


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


def _type_group(spec: EventSpec, lines: list[SourceLine], records: Records, typing: TypingOptions,
                unit: Unit) -> _TypedGroup:
    """Type and hash the records of one group (a record that fails typing by its line's text); leave out
    identical copies."""
    batch = normalize(spec, lines, records, typing)
    frame = batch.frame
    payload_columns = [c for c in frame.columns if c not in (ROW, PARTITION_DATE)]
    failed = batch.reasons.failed_rows()
    payloads = _Spilled()
    digests: list[str] = []
    for part in payload_slices(frame, payload_columns):
        start = len(digests)
        digests += [content_hash(raw_text(unit.paths[lines[row].file], lines[row])) if row in failed
                    else content_hash(text) for row, text in enumerate(part, start)]
        payloads.add(part)
    frame = frame.assign(_digest=digests)
    kept, duplicates = _drop_identical_copies(frame, spec, lines)
    # Only what validation and routing read from here on: the other values can go.
    read = {ROW, PARTITION_DATE, "_digest", spec.id_field, spec.partition_field, *suites.rule_columns(_row_rules(spec))}
    batch.frame = frame[[]]
    return _TypedGroup(spec, batch, kept[[c for c in kept.columns if c in read]], payloads, duplicates)


def _drop_identical_copies(frame: pd.DataFrame, spec: EventSpec,
                           lines: list[SourceLine]) -> tuple[pd.DataFrame, dict[int, int]]:
    """Skip later copies of an identical event (same id, same content) within the chunk.

    Only rows whose id repeats can be copies: the pairs (id, content hash) are compared among those
    (few) rows, not hashed for every row.
    """
    ids = frame[spec.id_field]
    candidates = frame[ids.notna() & ids.duplicated(keep=False)]
    repeated = frame[ROW].isin(candidates.loc[candidates.duplicated(subset=[spec.id_field, "_digest"]), ROW])
    duplicates: dict[int, int] = defaultdict(int)
    for row in frame.loc[repeated, ROW]:
        duplicates[lines[row].file] += 1
    return frame[~repeated], dict(duplicates)


def _validate(groups: list[_TypedGroup]) -> None:
    """Run the row rules (field and cross-field, then steps) on groups of one event type, in one GX call each.

    The rules screen each row on its own, so validating several groups' rows together gives each
    row the reasons it would get alone; the frames are stacked with distinct ``_row`` values and
    the reasons filed back to each group's rows.
    """
    spec = groups[0].spec
    rules = _row_rules(spec)
    offsets = np.cumsum([0] + [len(group.batch.frame) for group in groups[:-1]]).tolist()
    reasons = _shared_reasons(groups, offsets)
    frame = _stacked([group.kept for group in groups], offsets)
    suites.run_rules(spec.event_type, suites.add_derived_columns(spec, frame), rules, reasons)
    all_steps = [group.batch.steps for group in groups]
    if any(steps is not None and not steps.empty for steps in all_steps):
        array = next(f for f in spec.fields if f.kind == "array")
        step_rules = suites.field_rules([(c.name, c, f"{array.name}.{c.name}") for c in array.children])
        step_offsets = np.cumsum([0] + [0 if s is None else len(s) for s in all_steps[:-1]]).tolist()
        parents = [parent + offset for steps, offset in zip(all_steps, offsets, strict=True) if steps is not None
                   for parent in steps[PARENT].tolist()]
        kept_steps = [steps[steps[PARENT].isin(group.kept[ROW])].assign(**{PARENT: steps[PARENT] + offset})
                      for group, steps, offset in zip(groups, all_steps, offsets, strict=True) if steps is not None]
        present = [offset for steps, offset in zip(all_steps, step_offsets, strict=True) if steps is not None]
        suites.run_rules(f"{spec.event_type}_steps", _stacked(kept_steps, present), step_rules, reasons,
                         parents=parents)
    for row, found in reasons.by_row.items():
        index = bisect.bisect_right(offsets, row) - 1
        groups[index].batch.reasons.by_row[row - offsets[index]] = found


def _row_rules(spec: EventSpec) -> list[suites.Rule]:
    """The field and cross-field rules of an event type (its steps have their own)."""
    columns = [(name, f, name.replace("code_review_", "code_review.", 1) if name.startswith("code_review_")
                else name) for name, f in flat_fields(spec)]
    return suites.field_rules(columns) + suites.cross_field_rules(spec)


def _shared_reasons(groups: list[_TypedGroup], offsets: list[int]) -> ReasonLog:
    """One log for the stacked groups, holding (not copying) each group's lists of reasons."""
    shared = ReasonLog()
    for group, offset in zip(groups, offsets, strict=True):
        for row, reasons in group.batch.reasons.by_row.items():
            shared.by_row[offset + row] = reasons
    return shared


def _stacked(frames: list[pd.DataFrame], offsets: list[int]) -> pd.DataFrame:
    """The frames one after the other, ``_row`` shifted by each one's offset and used as the index."""
    if len(frames) == 1 and offsets[0] == 0:
        return frames[0]
    stacked = pd.concat([frame.assign(**{ROW: frame[ROW] + offset}) for frame, offset in zip(frames, offsets,
                                                                                              strict=True)])
    return stacked.set_index(stacked[ROW].to_numpy(), drop=False)


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


def _verdicts(group: _TypedGroup, unit: Unit, options: ScreenOptions) -> Iterator[GroupVerdict]:
    """The group's kept rows, in order, with what the router needs of each (after the partition and
    uniqueness checks, which belong to the chunk), in parts of ``SLICE_ROWS`` (duplicates and repeated
    ids go with the first); the payloads are read back for one part at a time."""
    spec, batch, kept = group.spec, group.batch, group.kept
    _check_partition_range(spec, kept, batch, options.partition_start)
    valid = kept[~kept[ROW].isin(list(batch.reasons.failed_rows()))]
    suites.run_rules(f"{spec.event_type}_unique", valid, [suites.uniqueness_rule(spec)], batch.reasons)
    repeated = _repeated(valid, spec, batch.reasons)
    rows = kept[ROW].tolist()
    ids = [None if pd.isna(v) else str(v) for v in kept[spec.id_field].tolist()]
    digests = kept["_digest"].tolist()
    days = kept[PARTITION_DATE].dt.tz_localize(None).to_numpy(dtype="datetime64[D]")
    partitions = np.where(np.isnat(days), None, days.astype(object)).tolist()
    payload = group.payloads.reader()
    for start in range(0, max(len(rows), 1), SLICE_ROWS):
        stop = start + SLICE_ROWS
        lines = [batch.lines[row] for row in rows[start:stop]]
        reasons = {position: batch.reasons.by_row[row] for position, row in enumerate(rows[start:stop])
                   if batch.reasons.by_row.get(row)}
        yield GroupVerdict(
            event_type=spec.event_type,
            files=[line.file for line in lines],
            line_numbers=[line.line_number for line in lines],
            raws=[raw_text(unit.paths[line.file], line) if position in reasons else line.raw
                  for position, line in enumerate(lines)],
            offsets=[line.offset for line in lines],
            ids=ids[start:stop],
            digests=digests[start:stop],
            partitions=partitions[start:stop],
            payloads=[None if position in reasons else payload(row)
                      for position, row in enumerate(rows[start:stop])],
            reasons=reasons,
            duplicates=group.duplicates if start == 0 else {},
            repeated=repeated if start == 0 else None,
        )
    group.payloads.close()


def _repeated(valid: pd.DataFrame, spec: EventSpec, reasons: ReasonLog) -> dict[str, list[str]]:
    """The ids the uniqueness rule found on several valid rows, each with those rows' content hashes."""
    flagged = [row for row, found in reasons.by_row.items()
               if any(reason.code == "conflicting_duplicate" for reason in found)]
    copies = valid[valid[ROW].isin(flagged)]
    repeated: dict[str, list[str]] = defaultdict(list)
    for event_id, digest in zip(copies[spec.id_field].astype(str), copies["_digest"], strict=True):
        repeated[event_id].append(digest)
    return dict(repeated)
