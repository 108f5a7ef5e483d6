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
    TypingOptions,
    canonical_payloads,
    content_hash,
    normalize,
)
from perf_pipeline.ingest.readers import ReadStats, SourceLine, UnreadableFileError, detect_format, read_chunks
from perf_pipeline.validation import suites
from perf_pipeline.validation.reasons import Reason
from perf_pipeline.warehouse.db import chunked, insert_rows
from perf_pipeline.warehouse.schema import flat_fields, ingested_files, quarantined_events, staged_events

LOOKUP_BATCH = 5_000
TABULAR_FORMATS = {"csv", "parquet"}


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

    @property
    def affected_dates(self) -> list[dt.date]:
        return sorted(set().union(*self.affected.values())) if self.affected else []


@dataclass(frozen=True)
class IngestOptions:
    partition_start: dt.date
    default_timezone: str | None = None
    run_id: str | None = None
    max_examples: int = 5


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
    """Ingest every landing file not ingested before; one transaction per file."""
    started = time.perf_counter()
    report = IngestReport()
    files, report.ignored = discover(landing)
    for position, path in enumerate(files, start=1):
        result = ingest_file(engine, path, options, report.affected)
        report.files.append(result)
        if progress:
            progress(position, len(files), result)
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


def ingest_file(engine: Engine, path: Path, options: IngestOptions,
                affected: dict[str, set[dt.date]] | None = None) -> FileResult:
    """Ingest one file unless its content was ingested before. Unreadable files are recorded as failed."""
    started = time.perf_counter()
    affected = affected if affected is not None else defaultdict(set)
    try:
        sha, size = file_sha256(path)
    except OSError as exc:
        return _record_failure(engine, path, None, None, f"{path}: cannot read: {exc.strerror or exc}", options)
    with engine.connect() as conn:
        done = conn.execute(sa.select(ingested_files.c.file_id).where(
            ingested_files.c.sha256 == sha, ingested_files.c.status == "ingested")).first()
    if done:
        return FileResult(str(path), "already_ingested", sha256=sha, file_id=done.file_id)
    file_format = detect_format(path) or "jsonl"
    changes: dict[str, set[dt.date]] = defaultdict(set)
    try:
        with engine.begin() as conn:
            result = _ingest_in_transaction(conn, path, sha, size, file_format, options, changes)
    except UnreadableFileError as exc:
        return _record_failure(engine, path, sha, size, str(exc), options)
    for event_type, dates in changes.items():
        affected[event_type] |= dates
    result.seconds = time.perf_counter() - started
    return result


def _record_failure(engine: Engine, path: Path, sha: str | None, size: int | None, error: str,
                    options: IngestOptions) -> FileResult:
    with engine.begin() as conn:
        file_id = conn.execute(ingested_files.insert().values(
            path=str(path), sha256=sha, size_bytes=size, file_format=detect_format(path), status="failed",
            error=error, ingested_at=_now(), run_id=options.run_id)).inserted_primary_key[0]
    return FileResult(str(path), "failed", sha256=sha, file_id=file_id, error=error)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _ingest_in_transaction(conn: Connection, path: Path, sha: str, size: int, file_format: str,
                           options: IngestOptions, changes: dict[str, set[dt.date]]) -> FileResult:
    file_id = conn.execute(ingested_files.insert().values(
        path=str(path), sha256=sha, size_bytes=size, file_format=file_format, status="ingested",
        ingested_at=_now(), run_id=options.run_id)).inserted_primary_key[0]
    result = FileResult(str(path), "ingested", sha256=sha, file_id=file_id)
    stats = ReadStats()
    typing = TypingOptions(tabular=file_format == "csv", default_timezone=options.default_timezone)
    touched_files: set[int] = {file_id}
    for chunk in read_chunks(path, file_format, stats):
        result.lines_read += len(chunk)
        outcome = _Chunk(conn, str(path), file_id, file_format, typing, options)
        outcome.process(chunk)
        result.duplicates += outcome.duplicates
        touched_files |= outcome.evicted_from
        result.evicted += len(outcome.evicted_from_rows)
        for reasons in outcome.quarantine_reasons:
            for reason in reasons:
                result.reason_counts[reason.code] += 1
        for example in outcome.examples:
            if len(result.examples) < options.max_examples:
                result.examples.append(example)
        for event_type, dates in outcome.changes.items():
            changes[event_type] |= dates
    result.blank_lines = stats.blank_lines
    _refresh_ledger_counts(conn, touched_files)
    counts = conn.execute(sa.select(ingested_files).where(ingested_files.c.file_id == file_id)).one()
    dates = conn.execute(sa.select(sa.func.min(staged_events.c.partition_date),
                                   sa.func.max(staged_events.c.partition_date))
                         .where(staged_events.c.file_id == file_id)).one()
    conn.execute(ingested_files.update().where(ingested_files.c.file_id == file_id).values(
        lines_read=result.lines_read, blank_lines=result.blank_lines, duplicates_skipped=result.duplicates,
        min_partition_date=dates[0], max_partition_date=dates[1]))
    result.loaded, result.quarantined = counts.events_loaded, counts.quarantined
    return result


def _refresh_ledger_counts(conn: Connection, file_ids: Iterable[int]) -> None:
    """Set events_loaded and quarantined of these files from the tables (evictions move rows)."""
    for file_id in file_ids:
        loaded = sa.select(sa.func.count()).select_from(staged_events).where(staged_events.c.file_id == file_id)
        quarantined = sa.select(sa.func.count()).select_from(quarantined_events).where(
            quarantined_events.c.file_id == file_id)
        conn.execute(ingested_files.update().where(ingested_files.c.file_id == file_id).values(
            events_loaded=loaded.scalar_subquery(), quarantined=quarantined.scalar_subquery()))


class _Chunk:
    """Validate and route one chunk of lines: stage, quarantine or skip each one."""

    def __init__(self, conn: Connection, source_file: str, file_id: int, file_format: str,
                 typing: TypingOptions, options: IngestOptions) -> None:
        self.conn, self.source_file, self.file_id = conn, source_file, file_id
        self.file_format, self.typing, self.options = file_format, typing, options
        self.duplicates = 0
        self.quarantine_rows: list[dict[str, Any]] = []
        self.quarantine_reasons: list[list[Reason]] = []
        self.staged_rows: list[dict[str, Any]] = []
        self.evicted_from: set[int] = set()
        self.evicted_from_rows: list[Any] = []
        self.changes: dict[str, set[dt.date]] = defaultdict(set)
        self.examples: list[str] = []
        self.now = _now()

    def process(self, chunk: list[SourceLine]) -> None:
        by_type: dict[str, list[SourceLine]] = defaultdict(list)
        specs = event_specs()
        for line in chunk:
            if line.reason is not None:
                self._quarantine(line, [line.reason])
                continue
            event_type = line.record.get("event_type")
            if event_type in (None, ""):
                self._quarantine(line, [Reason("missing_event_type", "event_type", "event_type: required but missing")])
            elif not isinstance(event_type, str) or event_type not in specs:
                self._quarantine(line, [Reason("unknown_event_type", "event_type",
                                               f"event_type: {event_type!r} is not one of {', '.join(specs)}")])
            elif self.file_format in TABULAR_FORMATS and event_type != "task":
                self._quarantine(line, [Reason("unsupported_in_format", "event_type",
                                               f"event_type: {event_type!r} rows belong in JSON Lines files; "
                                               f"{self.file_format} files carry task events only")])
            else:
                by_type[event_type].append(line)
        for event_type, lines in by_type.items():
            self._process_type(specs[event_type], lines)
        insert_rows(self.conn, staged_events, self.staged_rows)
        insert_rows(self.conn, quarantined_events, self.quarantine_rows)

    def _quarantine(self, line: SourceLine, reasons: list[Reason], *, event_type: str | None = None,
                    event_id: str | None = None, partition_date: dt.date | None = None,
                    digest: str | None = None, file_id: int | None = None, source_file: str | None = None) -> None:
        source = source_file or self.source_file
        self.quarantine_rows.append({
            "source_file": source, "file_id": file_id or self.file_id, "line_number": line.line_number,
            "event_type": event_type, "event_id": event_id, "partition_date": partition_date,
            "content_hash": digest, "raw": line.raw, "reasons": [r.as_dict() for r in reasons],
            "reason_codes": ",".join(dict.fromkeys(r.code for r in reasons)), "quarantined_at": self.now,
        })
        self.quarantine_reasons.append(reasons)
        if len(self.examples) < self.options.max_examples:
            self.examples.append(f"{source}:{line.line_number}: " + "; ".join(r.message for r in reasons))

    def _process_type(self, spec: EventSpec, lines: list[SourceLine]) -> None:
        batch = normalize(spec, lines, self.typing)
        frame = batch.frame
        payload_columns = [c for c in frame.columns if c not in (ROW, PARTITION_DATE)]
        payloads = canonical_payloads(frame, payload_columns)
        typed_ok = ~frame[ROW].isin(list(batch.reasons.failed_rows()))
        digests = [content_hash(p) if ok else content_hash(line.raw)
                   for p, ok, line in zip(payloads, typed_ok, lines, strict=True)]
        frame = frame.assign(_digest=digests)
        kept = self._drop_identical_copies(frame, spec)
        self._validate(spec, batch, kept)
        self._check_partition_range(spec, kept, batch)
        valid = kept[~kept[ROW].isin(list(batch.reasons.failed_rows()))]
        suites.run_rules(f"{spec.event_type}_unique", valid, [suites.uniqueness_rule(spec)], batch.reasons)
        self._route(spec, batch, kept, payloads)

    def _drop_identical_copies(self, frame: pd.DataFrame, spec: EventSpec) -> pd.DataFrame:
        """Skip later copies of an identical event (same id, same content) within the chunk."""
        has_id = frame[spec.id_field].notna()
        repeated = has_id & frame.duplicated(subset=[spec.id_field, "_digest"], keep="first")
        self.duplicates += int(repeated.sum())
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
        failed = batch.reasons.failed_rows()
        conflicting_ids = {str(kept.at[i, spec.id_field]) for i in kept.index
                           if _has_code(batch.reasons.by_row.get(int(kept.at[i, ROW]), ()), "conflicting_duplicate")}
        candidates = kept[~kept[ROW].isin(list(failed))]
        ids = sorted(set(candidates[spec.id_field].astype(str)) | conflicting_ids)
        existing = self._existing(spec.event_type, ids)
        poisoned = self._poisoned(spec.event_type, ids)
        for position in kept.index:
            row = int(kept.at[position, ROW])
            line = batch.lines[row]
            event_id = kept.at[position, spec.id_field]
            event_id = None if pd.isna(event_id) else str(event_id)
            digest = kept.at[position, "_digest"]
            partition = kept.at[position, PARTITION_DATE]
            partition = None if pd.isna(partition) else partition.date()
            reasons = batch.reasons.by_row.get(row, [])
            if not reasons and event_id in existing and existing[event_id].content_hash == digest:
                self.duplicates += 1
                continue
            if not reasons and event_id in poisoned and digest in poisoned[event_id]:
                self.duplicates += 1
                continue
            if not reasons and (event_id in existing or event_id in poisoned):
                other = existing.get(event_id)
                where = f"{other.source_file}:{other.line_number}" if other else "copies already in quarantine"
                reasons = [Reason("conflicting_duplicate", spec.id_field,
                                  f"{spec.id_field}: {event_id!r} conflicts with {where}")]
            if _has_code(reasons, "conflicting_duplicate") and event_id in existing:
                self._evict(spec, existing.pop(event_id))
            if reasons:
                self._quarantine(line, reasons, event_type=spec.event_type, event_id=event_id,
                                 partition_date=partition, digest=digest)
                continue
            self.staged_rows.append({
                "event_type": spec.event_type, "event_id": event_id, "partition_date": partition,
                "content_hash": digest, "payload": payloads[row], "source_file": self.source_file,
                "line_number": line.line_number, "file_id": self.file_id})
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

    def _evict(self, spec: EventSpec, staged: Any) -> None:
        """Move a staged copy to quarantine: a conflicting copy has arrived."""
        self.conn.execute(staged_events.delete().where(staged_events.c.event_type == spec.event_type,
                                                       staged_events.c.event_id == staged.event_id))
        partition = staged.partition_date
        partition = partition if isinstance(partition, dt.date) else dt.date.fromisoformat(str(partition)[:10])
        line = SourceLine(staged.line_number, staged.payload)
        self._quarantine(line, [Reason("conflicting_duplicate", spec.id_field,
                                       f"{spec.id_field}: {staged.event_id!r} conflicts with a copy in "
                                       f"{self.source_file}")],
                         event_type=spec.event_type, event_id=staged.event_id, partition_date=partition,
                         digest=staged.content_hash, file_id=staged.file_id, source_file=staged.source_file)
        self.evicted_from.add(staged.file_id)
        self.evicted_from_rows.append(staged)
        self.changes[spec.event_type].add(partition)


def _has_code(reasons: Iterable[Reason], code: str) -> bool:
    return any(r.code == code for r in reasons)
