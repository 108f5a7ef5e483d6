"""Ingest landing files: every line ends staged, quarantined with its reasons, or skipped as a duplicate.

A file is ingested in one transaction (its ledger row, staged events, quarantined rows and any
conflict evictions), so a crash leaves no trace and a re-run does the whole file again. The same
content (by sha256) is never ingested twice. Conservation holds per file by construction and is
re-checked from the tables by an asset check: lines read = loaded + quarantined + duplicates.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

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
from perf_pipeline.ingest.readers import (
    ReadStats,
    SourceLine,
    UnreadableFileError,
    detect_format,
    parse_json,
    read_chunks,
)
from perf_pipeline.validation import suites
from perf_pipeline.validation.reasons import Reason
from perf_pipeline.warehouse.db import chunked, insert_rows, to_python_date
from perf_pipeline.warehouse.schema import flat_fields, ingested_files, quarantined_events, staged_events

LOOKUP_BATCH = 5_000
TABULAR_FORMATS = {"csv", "parquet"}
# Great Expectations costs ~15 ms per expectation per validation call whatever the row count, so
# lines are validated in large chunks that may span several small files.
VALIDATION_CHUNK_LINES = 200_000
# Files up to this size are read whole and ingested with others in one transaction; larger ones
# stream in chunks, alone in their own transaction, to bound memory.
STREAM_BYTES = 64 * 2**20


@dataclass
class FileResult:
    """What happened to one landing file."""

    path: str
    status: str  # ingested, already_ingested, failed
    sha256: str | None = None
    file_id: int | None = None
    error: str | None = None
    lines_read: int = 0
    blank_lines: int = 0
    loaded: int = 0
    quarantined: int = 0
    duplicates: int = 0
    evicted: int = 0
    seconds: float = 0.0
    reason_counts: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    examples: list[str] = field(default_factory=list)

    @property
    def conserved(self) -> bool:
        return self.lines_read == self.loaded + self.quarantined + self.duplicates


@dataclass
class IngestReport:
    """The outcome of one ingest: per file, and the partitions whose events changed."""

    files: list[FileResult] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)
    affected: dict[str, set[dt.date]] = field(default_factory=lambda: defaultdict(set))
    seconds: float = 0.0

    def total(self, name: str) -> int:
        return sum(getattr(f, name) for f in self.files)


@dataclass(frozen=True)
class IngestOptions:
    partition_start: dt.date
    default_timezone: str | None = None
    run_id: str | None = None
    max_examples: int = 5


@dataclass
class _LandingFile:
    """A file on its way in: identity, format, and (for small files) its lines, read whole."""

    path: Path
    sha256: str
    size: int
    file_format: str
    lines: list[SourceLine] = field(default_factory=list)
    stats: ReadStats = field(default_factory=ReadStats)
    file_id: int = 0
    result: FileResult | None = None


def discover(landing: Path) -> tuple[list[Path], list[str]]:
    """Landing files in path order, and the names of files that are not landing files."""
    if not landing.exists():
        raise FileNotFoundError(
            f"landing folder {landing} does not exist: create it, or point PERF_LANDING_DIR (or --landing) at "
            "the folder your agents write their logs to")
    if not landing.is_dir():
        raise NotADirectoryError(f"landing folder {landing} is a file, not a folder")
    files, ignored = [], []
    for path in sorted(p for p in landing.rglob("*") if p.is_file()):
        (files if detect_format(path) else ignored).append(path)
    return files, [str(p) for p in ignored]


def ingest_landing(engine: Engine, landing: Path, options: IngestOptions,
                   progress: Callable[[int, int, FileResult], None] | None = None) -> IngestReport:
    """Ingest every landing file whose content was not ingested before.

    Small files are validated together and committed in one transaction per batch; a file over
    ``STREAM_BYTES`` streams alone in its own. A crash rolls back the open transaction only, and
    a re-run ingests those files again, so the warehouse ends as after one clean run.
    """
    started = time.perf_counter()
    report = IngestReport()
    files, report.ignored = discover(landing)
    batch: list[_LandingFile] = []
    seen: set[str] = set()

    def record(result: FileResult) -> None:
        report.files.append(result)
        if progress:
            progress(len(report.files), len(files), result)

    def flush() -> None:
        if batch:
            for result in _ingest_batch(engine, batch, options, report.affected):
                record(result)
            batch.clear()

    for path in files:
        landing_file = _identify(engine, path, seen, options)
        if isinstance(landing_file, FileResult):
            record(landing_file)
        elif landing_file.size > STREAM_BYTES:
            flush()
            record(_ingest_streaming(engine, landing_file, options, report.affected))
        else:
            try:
                landing_file.lines = [line for chunk in read_chunks(path, landing_file.file_format,
                                                                    landing_file.stats) for line in chunk]
            except UnreadableFileError as exc:
                record(_record_failure(engine, landing_file, str(exc), options))
                continue
            batch.append(landing_file)
            if sum(len(f.lines) for f in batch) >= VALIDATION_CHUNK_LINES:
                flush()
    flush()
    report.seconds = time.perf_counter() - started
    return report


def file_sha256(path: Path) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
            size += len(block)
    return digest.hexdigest(), size


def _identify(engine: Engine, path: Path, seen: set[str], options: IngestOptions) -> _LandingFile | FileResult:
    """The file to ingest, or the result for a file that is unreadable or whose content is already in."""
    file_format = detect_format(path) or "jsonl"
    try:
        sha, size = file_sha256(path)
    except OSError as exc:
        pending = _LandingFile(path, "", 0, file_format)
        return _record_failure(engine, pending, f"{path}: cannot read: {exc.strerror or exc}", options)
    with engine.connect() as conn:
        done = conn.execute(sa.select(ingested_files.c.file_id).where(
            ingested_files.c.sha256 == sha, ingested_files.c.status == "ingested")).first()
    if done or sha in seen:
        return FileResult(str(path), "already_ingested", sha256=sha, file_id=done.file_id if done else None)
    seen.add(sha)
    return _LandingFile(path, sha, size, file_format)


def _record_failure(engine: Engine, landing_file: _LandingFile, error: str, options: IngestOptions) -> FileResult:
    with engine.begin() as conn:
        file_id = conn.execute(ingested_files.insert().values(
            path=str(landing_file.path), sha256=landing_file.sha256 or None, size_bytes=landing_file.size or None,
            file_format=landing_file.file_format, status="failed", error=error, ingested_at=_now(),
            run_id=options.run_id)).inserted_primary_key[0]
    return FileResult(str(landing_file.path), "failed", sha256=landing_file.sha256 or None, file_id=file_id,
                      error=error)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _ingest_batch(engine: Engine, batch: list[_LandingFile], options: IngestOptions,
                  affected: dict[str, set[dt.date]]) -> list[FileResult]:
    """Small files, read whole, validated together and committed in one transaction."""
    started = time.perf_counter()
    with engine.begin() as conn:
        router = _Router(conn, _register(conn, batch, options), options)
        lines = []
        for position, landing_file in enumerate(batch):
            for line in landing_file.lines:
                line.file = position
            lines.extend(landing_file.lines)
        for chunk in chunked(lines, VALIDATION_CHUNK_LINES):
            router.process(list(chunk))
        results = _finish(conn, batch, router)
    for event_type, dates in router.changes.items():
        affected[event_type] |= dates
    seconds = time.perf_counter() - started
    total_lines = sum(r.lines_read for r in results) or 1
    for result in results:  # the batch's time, shared by the files' line counts
        result.seconds = seconds * result.lines_read / total_lines
    return results


def _ingest_streaming(engine: Engine, landing_file: _LandingFile, options: IngestOptions,
                      affected: dict[str, set[dt.date]]) -> FileResult:
    """A large file, chunk by chunk, in its own transaction; unreadable part-way means nothing of it lands."""
    started = time.perf_counter()
    try:
        with engine.begin() as conn:
            router = _Router(conn, _register(conn, [landing_file], options), options)
            for chunk in read_chunks(landing_file.path, landing_file.file_format, landing_file.stats,
                                     VALIDATION_CHUNK_LINES):
                router.process(chunk)
            [result] = _finish(conn, [landing_file], router)
    except UnreadableFileError as exc:
        return _record_failure(engine, landing_file, str(exc), options)
    for event_type, dates in router.changes.items():
        affected[event_type] |= dates
    result.seconds = time.perf_counter() - started
    return result


def _register(conn: Connection, batch: list[_LandingFile], options: IngestOptions) -> list[_LandingFile]:
    """Insert the ledger rows (counts filled in by ``_finish``, in the same transaction)."""
    for landing_file in batch:
        landing_file.file_id = conn.execute(ingested_files.insert().values(
            path=str(landing_file.path), sha256=landing_file.sha256, size_bytes=landing_file.size,
            file_format=landing_file.file_format, status="ingested", ingested_at=_now(),
            run_id=options.run_id)).inserted_primary_key[0]
    return batch


def _finish(conn: Connection, batch: list[_LandingFile], router: _Router) -> list[FileResult]:
    """Write each file's counts to the ledger (loaded and quarantined recounted from the tables)."""
    _refresh_ledger_counts(conn, {f.file_id for f in batch} | router.evicted_from)
    results = []
    for position, landing_file in enumerate(batch):
        tally = router.tallies[position]
        lines_read = router.lines_read[position]
        dates = conn.execute(sa.select(sa.func.min(staged_events.c.partition_date),
                                       sa.func.max(staged_events.c.partition_date))
                             .where(staged_events.c.file_id == landing_file.file_id)).one()
        conn.execute(ingested_files.update().where(ingested_files.c.file_id == landing_file.file_id).values(
            lines_read=lines_read, blank_lines=landing_file.stats.blank_lines,
            duplicates_skipped=tally.duplicates, min_partition_date=dates[0], max_partition_date=dates[1]))
        counts = conn.execute(sa.select(ingested_files.c.events_loaded, ingested_files.c.quarantined)
                              .where(ingested_files.c.file_id == landing_file.file_id)).one()
        results.append(FileResult(
            str(landing_file.path), "ingested", sha256=landing_file.sha256, file_id=landing_file.file_id,
            lines_read=lines_read, blank_lines=landing_file.stats.blank_lines, loaded=counts.events_loaded,
            quarantined=counts.quarantined, duplicates=tally.duplicates, evicted=tally.evicted,
            reason_counts=tally.reason_counts, examples=tally.examples))
        landing_file.lines = []  # release memory once counted
    return results


def _refresh_ledger_counts(conn: Connection, file_ids: Iterable[int]) -> None:
    """Set events_loaded and quarantined of these files from the tables (evictions move rows)."""
    for file_id in file_ids:
        loaded = sa.select(sa.func.count()).select_from(staged_events).where(staged_events.c.file_id == file_id)
        quarantined = sa.select(sa.func.count()).select_from(quarantined_events).where(
            quarantined_events.c.file_id == file_id)
        conn.execute(ingested_files.update().where(ingested_files.c.file_id == file_id).values(
            events_loaded=loaded.scalar_subquery(), quarantined=quarantined.scalar_subquery()))


@dataclass
class _Tally:
    """Per-file counts kept while routing: what the tables cannot tell (duplicates, reasons seen)."""

    duplicates: int = 0
    evicted: int = 0
    reason_counts: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    examples: list[str] = field(default_factory=list)


class _Router:
    """Validate lines (of one or several files) and route each: stage, quarantine, or skip as duplicate."""

    def __init__(self, conn: Connection, files: list[_LandingFile], options: IngestOptions) -> None:
        self.conn, self.files, self.options = conn, files, options
        self.tallies: dict[int, _Tally] = defaultdict(_Tally)
        self.lines_read: dict[int, int] = defaultdict(int)
        self.evicted_from: set[int] = set()
        self.changes: dict[str, set[dt.date]] = defaultdict(set)
        self.quarantine_rows: list[dict[str, Any]] = []
        self.staged_rows: list[dict[str, Any]] = []
        self.now = _now()

    def process(self, chunk: list[SourceLine]) -> None:
        groups: dict[tuple[str, bool], tuple[list[SourceLine], Records]] = {}
        specs = event_specs()
        for line in chunk:
            self.lines_read[line.file] += 1
            parse_json(line)
            file_format = self.files[line.file].file_format
            if line.reason is not None:
                self._quarantine(line, [line.reason])
                continue
            event_type = line.record.get("event_type")
            if event_type in (None, ""):
                self._quarantine(line, [Reason("missing_event_type", "event_type", "event_type: required but missing")])
            elif not isinstance(event_type, str) or event_type not in specs:
                self._quarantine(line, [Reason("unknown_event_type", "event_type",
                                               f"event_type: {event_type!r} is not one of {', '.join(specs)}")])
            elif file_format in TABULAR_FORMATS and event_type != "task":
                self._quarantine(line, [Reason("unsupported_in_format", "event_type",
                                               f"event_type: {event_type!r} rows belong in JSON Lines files; "
                                               f"{file_format} files carry task events only")])
            else:
                group = groups.get((event_type, file_format == "csv"))
                if group is None:
                    group = groups[(event_type, file_format == "csv")] = ([], Records(specs[event_type].names))
                group[0].append(line)
                group[1].add(line.record)
                line.record = None
        for (event_type, tabular), (lines, records) in groups.items():
            typing = TypingOptions(tabular=tabular, default_timezone=self.options.default_timezone)
            self._process_type(specs[event_type], lines, records, typing)
        insert_rows(self.conn, staged_events, self.staged_rows)
        insert_rows(self.conn, quarantined_events, self.quarantine_rows)
        self.staged_rows, self.quarantine_rows = [], []
        for line in chunk:
            line.record = None  # routed: free the parsed record

    def _quarantine(self, line: SourceLine, reasons: list[Reason], *, event_type: str | None = None,
                    event_id: str | None = None, partition_date: dt.date | None = None,
                    digest: str | None = None, evicted: Any = None) -> None:
        """Quarantine a line of this batch, or (``evicted``) a staged row of an earlier one."""
        file_id = evicted.file_id if evicted is not None else self.files[line.file].file_id
        source = evicted.source_file if evicted is not None else str(self.files[line.file].path)
        self.quarantine_rows.append({
            "source_file": source, "file_id": file_id, "line_number": line.line_number,
            "event_type": event_type, "event_id": event_id, "partition_date": partition_date,
            "content_hash": digest, "raw": line.raw, "reasons": [r.as_dict() for r in reasons],
            "reason_codes": ",".join(dict.fromkeys(r.code for r in reasons)), "quarantined_at": self.now,
        })
        if evicted is not None:
            return
        tally = self.tallies[line.file]
        for reason in reasons:
            tally.reason_counts[reason.code] += 1
        if len(tally.examples) < self.options.max_examples:
            tally.examples.append(f"{source}:{line.line_number}: " + "; ".join(r.message for r in reasons))

    def _process_type(self, spec: EventSpec, lines: list[SourceLine], records: Records, typing: TypingOptions) -> None:
        batch = normalize(spec, lines, records, typing)
        frame = batch.frame
        payload_columns = [c for c in frame.columns if c not in (ROW, PARTITION_DATE)]
        payloads = canonical_payloads(frame, payload_columns)
        typed_ok = ~frame[ROW].isin(list(batch.reasons.failed_rows()))
        digests = [content_hash(p) if ok else content_hash(line.raw)
                   for p, ok, line in zip(payloads, typed_ok, lines, strict=True)]
        frame = frame.assign(_digest=digests)
        kept = self._drop_identical_copies(frame, spec, lines)
        self._validate(spec, batch, kept)
        self._check_partition_range(spec, kept, batch)
        valid = kept[~kept[ROW].isin(list(batch.reasons.failed_rows()))]
        suites.run_rules(f"{spec.event_type}_unique", valid, [suites.uniqueness_rule(spec)], batch.reasons)
        self._route(spec, batch, kept, payloads)

    def _drop_identical_copies(self, frame: pd.DataFrame, spec: EventSpec, lines: list[SourceLine]) -> pd.DataFrame:
        """Skip later copies of an identical event (same id, same content) within the chunk."""
        has_id = frame[spec.id_field].notna()
        repeated = has_id & frame.duplicated(subset=[spec.id_field, "_digest"], keep="first")
        for row in frame.loc[repeated, ROW]:
            self.tallies[lines[row].file].duplicates += 1
        return frame[~repeated]

    def _validate(self, spec: EventSpec, batch: NormalizedBatch, kept: pd.DataFrame) -> None:
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

    def _check_partition_range(self, spec: EventSpec, kept: pd.DataFrame, batch: NormalizedBatch) -> None:
        dates = kept[PARTITION_DATE]
        first = pd.Timestamp(self.options.partition_start, tz="UTC")
        last = pd.Timestamp(_now().date(), tz="UTC")
        outside = dates.notna() & ((dates < first) | (dates > last))
        for row, value in zip(kept.loc[outside, ROW], kept.loc[outside, spec.partition_field], strict=True):
            batch.reasons.add([row], "outside_partitions", spec.partition_field, [
                f"{spec.partition_field}: {value.isoformat()} is outside the partitions "
                f"{self.options.partition_start} .. today (UTC)"])

    def _route(self, spec: EventSpec, batch: NormalizedBatch, kept: pd.DataFrame, payloads: list[str]) -> None:
        rows = kept[ROW].tolist()
        ids = [None if pd.isna(v) else str(v) for v in kept[spec.id_field].tolist()]
        digests = kept["_digest"].tolist()
        partitions = [None if pd.isna(v) else v.date() for v in kept[PARTITION_DATE].tolist()]
        reasons_of = batch.reasons.by_row
        conflicting = {i for r, i in zip(rows, ids, strict=True)
                       if _has_code(reasons_of.get(r, ()), "conflicting_duplicate")}
        valid_ids = {i for r, i in zip(rows, ids, strict=True) if r not in reasons_of and i is not None}
        lookup = sorted(valid_ids | conflicting)
        existing = self._existing(spec.event_type, lookup)
        poisoned = self._poisoned(spec.event_type, lookup)
        for row, event_id, digest, partition in zip(rows, ids, digests, partitions, strict=True):
            line = batch.lines[row]
            reasons = reasons_of.get(row, [])
            if not reasons and ((event_id in existing and existing[event_id].content_hash == digest)
                                or digest in poisoned.get(event_id, ())):
                self.tallies[line.file].duplicates += 1
                continue
            if not reasons and (event_id in existing or event_id in poisoned):
                other = existing.get(event_id)
                where = f"{other.source_file}:{other.line_number}" if other else "copies already in quarantine"
                reasons = [Reason("conflicting_duplicate", spec.id_field,
                                  f"{spec.id_field}: {event_id!r} conflicts with {where}")]
            if event_id in existing and _has_code(reasons, "conflicting_duplicate"):
                self._evict(spec, existing.pop(event_id), line)
            if reasons:
                self._quarantine(line, reasons, event_type=spec.event_type, event_id=event_id,
                                 partition_date=partition, digest=digest)
                continue
            landing_file = self.files[line.file]
            self.staged_rows.append({
                "event_type": spec.event_type, "event_id": event_id, "partition_date": partition,
                "content_hash": digest, "payload": payloads[row], "source_file": str(landing_file.path),
                "line_number": line.line_number, "file_id": landing_file.file_id})
            self.changes[spec.event_type].add(partition)

    def _existing(self, event_type: str, ids: list[str]) -> dict[str, Any]:
        found: dict[str, Any] = {}
        columns = [staged_events.c[c] for c in ("event_id", "content_hash", "partition_date", "payload",
                                                 "source_file", "line_number", "file_id")]
        for batch in chunked(ids, LOOKUP_BATCH):
            query = sa.select(*columns).where(staged_events.c.event_type == event_type,
                                              staged_events.c.event_id.in_(batch))
            found.update({row.event_id: row for row in self.conn.execute(query)})
        return found

    def _poisoned(self, event_type: str, ids: list[str]) -> dict[str, set[str]]:
        """Ids already quarantined as conflicting, with the content hashes of their copies."""
        found: dict[str, set[str]] = defaultdict(set)
        for batch in chunked(ids, LOOKUP_BATCH):
            query = sa.select(quarantined_events.c.event_id, quarantined_events.c.content_hash).where(
                quarantined_events.c.event_type == event_type, quarantined_events.c.event_id.in_(batch),
                quarantined_events.c.reason_codes.contains("conflicting_duplicate"))
            for row in self.conn.execute(query):
                found[row.event_id].add(row.content_hash)
        return found

    def _evict(self, spec: EventSpec, staged: Any, arriving: SourceLine) -> None:
        """Move a staged copy to quarantine: a conflicting copy has arrived."""
        self.conn.execute(staged_events.delete().where(staged_events.c.event_type == spec.event_type,
                                                       staged_events.c.event_id == staged.event_id))
        partition = to_python_date(staged.partition_date)
        where = f"{self.files[arriving.file].path}:{arriving.line_number}"
        self._quarantine(SourceLine(staged.line_number, staged.payload),
                         [Reason("conflicting_duplicate", spec.id_field,
                                 f"{spec.id_field}: {staged.event_id!r} conflicts with {where}")],
                         event_type=spec.event_type, event_id=staged.event_id, partition_date=partition,
                         digest=staged.content_hash, evicted=staged)
        self.evicted_from.add(staged.file_id)
        self.tallies[arriving.file].evicted += 1
        self.changes[spec.event_type].add(partition)


def _has_code(reasons: Iterable[Reason], code: str) -> bool:
    return any(r.code == code for r in reasons)
