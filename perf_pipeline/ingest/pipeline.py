"""Ingest landing files: every line ends staged, quarantined with its reasons, or skipped as a duplicate.

A file is ingested in one transaction (its ledger row, staged events, quarantined rows and any
conflict evictions), so a crash leaves no trace and a re-run does the whole file again. The same
content (by sha256) is never ingested twice. Conservation holds per file by construction and is
re-checked from the tables by an asset check: lines read = loaded + quarantined + duplicates.

Files are first planned (hashed, looked up in the ledger, small ones counted and gathered into
batches), then ingested in that order. What a batch's lines are (parsed, typed, hashed, validated)
is screened by ``perf_pipeline.ingest.screening``, in worker processes for large ingests, while this
process routes the verdicts of earlier batches into the warehouse.
"""

from __future__ import annotations

import datetime as dt
import gc
import hashlib
import json
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from perf_pipeline.contract import EventSpec, event_specs
from perf_pipeline.ingest.readers import ReadStats, UnreadableFileError, detect_format, read_line_at, read_lines
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
from perf_pipeline.ingest.workers import Screeners, default_workers
from perf_pipeline.validation.reasons import Reason
from perf_pipeline.warehouse.db import chunked, insert_many, insert_new_rows, to_python_date
from perf_pipeline.warehouse.schema import ingested_files, quarantined_events, staged_day_changes, staged_events

LOOKUP_BATCH = 5_000
# Great Expectations costs ~15 ms per expectation per validation call whatever the row count, so
# lines are validated in large chunks that may span several small files.
VALIDATION_CHUNK_LINES = 200_000
# Small files are batched by size: a batch closes at this share of the landing folder's small files
# (2 batches per worker on 2 CPUs for a folder of new files)...
MIN_UNITS = 4
# ... or at this size (about 20,000 lines: below it, validation's cost per call shows), whichever is
# larger, or at VALIDATION_CHUNK_LINES lines.
MIN_UNIT_BYTES = 16 * 2**20
# Files up to this size are read whole and ingested with others in one transaction; larger ones
# stream in chunks, alone in their own transaction, to bound memory.
STREAM_BYTES = 64 * 2**20
# Units screened ahead of the one being written, per worker (their verdicts wait on disk).
UNITS_AHEAD = 2
STAGED_COLUMNS = ("event_type", "event_id", "partition_date", "content_hash", "payload", "source_file",
                  "line_number", "file_id")
QUARANTINE_COLUMNS = ("source_file", "file_id", "line_number", "event_type", "event_id", "partition_date",
                      "content_hash", "raw", "reasons", "reason_codes", "quarantined_at")


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
    """A file on its way in: identity, format, and its line count (small files, counted when planned)."""

    path: Path
    sha256: str
    size: int
    file_format: str
    line_count: int = 0
    stats: ReadStats = field(default_factory=ReadStats)
    file_id: int = 0


@dataclass
class _Known:
    """A file whose content is already ingested, or comes again in this run."""

    path: Path
    sha256: str
    file_id: int | None  # its ledger row, when already there at planning
    size: int = 0


@dataclass
class _Unreadable:
    """A file that cannot be read: recorded as failed."""

    landing_file: _LandingFile
    error: str

    @property
    def size(self) -> int:
        return self.landing_file.size


@dataclass
class _Ingest:
    """Files ingested in one transaction: a batch of small files, or one large file streamed."""

    files: list[_LandingFile]
    streaming: bool
    ticket: int = 0  # its position among the units, which is its ticket with the screeners

    def unit(self) -> Unit:
        return Unit(tuple(f.path for f in self.files), tuple(f.file_format for f in self.files),
                    VALIDATION_CHUNK_LINES, together=not self.streaming)


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
    a re-run ingests those files again, so the warehouse ends as after one clean run. Batches
    are screened ahead (in worker processes when there are several) and written in order.
    """
    started = time.perf_counter()
    report = IngestReport()
    files, report.ignored = discover(landing)
    workers = default_workers()
    screen_options = ScreenOptions(options.partition_start, options.default_timezone)
    with Screeners(screen_options, workers) as screeners, _gc_paused():
        plan = _plan(engine, files)
        units = [action for action in plan if isinstance(action, _Ingest)]
        for ticket, unit in enumerate(units):
            unit.ticket = ticket
        _submit_ahead(screeners, units, 0, workers)
        for action in plan:
            if isinstance(action, _Ingest):
                _submit_ahead(screeners, units, action.ticket, workers)
            for result in _execute(engine, action, screeners, options, report.affected):
                report.files.append(result)
                if progress:
                    progress(len(report.files), len(files), result)
    report.seconds = time.perf_counter() - started
    return report


def _submit_ahead(screeners: Screeners, units: list[_Ingest], current: int, workers: int) -> None:
    """Submit the units up to ``UNITS_AHEAD`` per worker past the one being written (``current``)."""
    while screeners.submitted < len(units) and screeners.submitted <= current + UNITS_AHEAD * max(workers, 1):
        screeners.submit(units[screeners.submitted].unit())


@contextmanager
def _gc_paused() -> Iterator[None]:
    """No automatic cyclic garbage collection while ingesting.

    Routing and screening allocate millions of short-lived objects while many more stay alive; the
    collector would traverse the live ones again and again (a third of the parsing time). Reference
    counting still frees everything acyclic; one collection runs at the end.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
        gc.collect()


def _plan(engine: Engine, files: list[Path]) -> list[_Known | _Unreadable | _Ingest]:
    """What to do with each file, in order: skip it, record it as unreadable, or ingest it.

    Small files are gathered into batches of ``_unit_bytes`` bytes (or ``VALIDATION_CHUNK_LINES``
    lines); a large file closes the batch before it and is streamed alone. Planning writes nothing:
    the actions write to the warehouse when executed, in this order.
    """
    surveyed = list(_survey(engine, files))
    target = _unit_bytes(sum(item.size for item in surveyed if item.size <= STREAM_BYTES))
    plan: list[_Known | _Unreadable | _Ingest] = []
    batch: list[_LandingFile] = []
    batch_bytes = batch_lines = 0
    for item in surveyed:
        small = isinstance(item, _LandingFile) and item.size <= STREAM_BYTES
        large = isinstance(item, _LandingFile) and not small
        if small:
            batch.append(item)
            batch_bytes, batch_lines = batch_bytes + item.size, batch_lines + item.line_count
        if batch and (large or batch_bytes >= target or batch_lines >= VALIDATION_CHUNK_LINES):
            plan.append(_Ingest(batch, streaming=False))
            batch, batch_bytes, batch_lines = [], 0, 0
        if large:
            plan.append(_Ingest([item], streaming=True))
        elif not small:  # known or unreadable: in place, the open batch going on after it
            plan.append(item)
    if batch:
        plan.append(_Ingest(batch, streaming=False))
    return plan


def _unit_bytes(small_bytes: int) -> int:
    """The size at which a batch of small files closes: a ``MIN_UNITS``-th of the landing folder's
    small files (``small_bytes``), so that a folder of new files makes about ``MIN_UNITS`` batches
    which the workers share evenly (none idles while another screens a last big batch), the first
    ones written while the next are screened; ``MIN_UNIT_BYTES`` at least (validation has a cost
    per call).

    Which lines are screened together decides which copy of a line repeated across files is the
    one quarantined, so the batches follow from the landing folder alone: not from the machine's
    CPUs (the same files give the same warehouse everywhere), nor from which files are already
    ingested (the files ingested before a crash count as they did, so that the re-run cuts the
    rest into the batches the first run would have made)."""
    return max(MIN_UNIT_BYTES, -(-small_bytes // MIN_UNITS))


def _survey(engine: Engine, files: list[Path]) -> Iterator[_Known | _Unreadable | _LandingFile]:
    """Each file hashed: already ingested (or a copy of an earlier file of this run), unreadable, or
    to ingest (a small JSON Lines file with its line count)."""
    seen: set[str] = set()
    for path in files:
        file_format = detect_format(path) or "jsonl"
        try:
            sha, size, data = _hash(path, file_format)
        except OSError as exc:
            yield _Unreadable(_LandingFile(path, "", 0, file_format), f"{path}: cannot read: {exc.strerror or exc}")
            continue
        done = _ingested_file_id(engine, sha)
        if done is not None or sha in seen:
            yield _Known(path, sha, done, size)
            continue
        seen.add(sha)
        landing_file = _LandingFile(path, sha, size, file_format)
        if size <= STREAM_BYTES:
            try:
                landing_file.line_count = _count_lines(landing_file, data)
            except UnreadableFileError as exc:
                yield _Unreadable(landing_file, str(exc))
                continue
        yield landing_file


def _hash(path: Path, file_format: str) -> tuple[str, int, bytes | None]:
    """sha256 and size of the file, and its bytes when it is small JSON Lines (to count its lines)."""
    if file_format == "jsonl" and path.stat().st_size <= STREAM_BYTES:
        data = path.read_bytes()
        return hashlib.sha256(data).hexdigest(), len(data), data
    sha, size = file_sha256(path)
    return sha, size, None


def file_sha256(path: Path) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
            size += len(block)
    return digest.hexdigest(), size


def _count_lines(landing_file: _LandingFile, data: bytes | None) -> int:
    """The number of lines in the file, to size batches: blank ones included in JSON Lines (counting
    newlines is a scan in C, telling blank lines apart a Python loop), excluded elsewhere."""
    if data is None:
        return sum(1 for _ in read_lines(landing_file.path, landing_file.file_format, ReadStats()))
    return data.count(b"\n") + (not data.endswith(b"\n") and bool(data))


def _ingested_file_id(engine: Engine, sha: str) -> int | None:
    """The ledger row of a file with this content that was ingested, if any."""
    with engine.connect() as conn:
        done = conn.execute(sa.select(ingested_files.c.file_id).where(
            ingested_files.c.sha256 == sha, ingested_files.c.status == "ingested")).first()
    return done.file_id if done else None


def _execute(engine: Engine, action: _Known | _Unreadable | _Ingest, screeners: Screeners, options: IngestOptions,
             affected: dict[str, set[dt.date]]) -> list[FileResult]:
    if isinstance(action, _Known):
        file_id = action.file_id if action.file_id is not None else _ingested_file_id(engine, action.sha256)
        return [FileResult(str(action.path), "already_ingested", sha256=action.sha256, file_id=file_id)]
    if isinstance(action, _Unreadable):
        return [_record_failure(engine, action.landing_file, action.error, options)]
    if action.streaming:
        return [_ingest_streaming(engine, action, screeners, options, affected)]
    return _ingest_batch(engine, action, screeners, options, affected)


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


def _ingest_batch(engine: Engine, action: _Ingest, screeners: Screeners, options: IngestOptions,
                  affected: dict[str, set[dt.date]]) -> list[FileResult]:
    """Small files, validated together and committed in one transaction."""
    started = time.perf_counter()
    with engine.begin() as conn:
        router = _Router(conn, _register(conn, action.files, options), options)
        router.route(screeners.messages(action.ticket))
        results = _finish(conn, action.files, router)
        _record_changes(conn, router.changes)
    for event_type, dates in router.changes.items():
        affected[event_type] |= dates
    seconds = time.perf_counter() - started
    total_lines = sum(r.lines_read for r in results) or 1
    for result in results:  # the batch's time, shared by the files' line counts
        result.seconds = seconds * result.lines_read / total_lines
    return results


def _ingest_streaming(engine: Engine, action: _Ingest, screeners: Screeners, options: IngestOptions,
                      affected: dict[str, set[dt.date]]) -> FileResult:
    """A large file, chunk by chunk, in its own transaction; unreadable part-way means nothing of it lands."""
    started = time.perf_counter()
    [landing_file] = action.files
    try:
        with engine.begin() as conn:
            router = _Router(conn, _register(conn, [landing_file], options), options)
            router.route(screeners.messages(action.ticket))
            [result] = _finish(conn, [landing_file], router)
            _record_changes(conn, router.changes)
    except UnreadableFileError as exc:
        return _record_failure(engine, landing_file, str(exc), options)
    for event_type, dates in router.changes.items():
        affected[event_type] |= dates
    result.seconds = time.perf_counter() - started
    return result


def _record_changes(conn: Connection, changes: dict[str, set[dt.date]]) -> None:
    """The days whose staged events changed, in the transaction that changed them (``staged_day_changes``)."""
    insert_new_rows(conn, staged_day_changes, [{"event_type": event_type, "partition_date": day}
                                               for event_type, days in changes.items() for day in sorted(days)])


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
class _KnownCopies:
    """Copies already in the warehouse of the ids being routed: staged ones, and conflicting ones in quarantine."""

    staged: dict[str, Any]
    poisoned: dict[str, set[str]]

    def is_identical(self, event_id: str | None, digest: str) -> bool:
        copy = self.staged.get(event_id)
        return (copy is not None and copy.content_hash == digest) or digest in self.poisoned.get(event_id, ())

    def conflicts(self, event_id: str | None) -> bool:
        return event_id in self.staged or event_id in self.poisoned


@dataclass
class _Repeats:
    """What the warehouse makes of the ids that the uniqueness rule found on several rows of a group.

    Identical copies of an event in the warehouse are skipped before the uniqueness rule applies, as
    they are when alone; the screening could not know them. So the copies of those ids that are identical
    to a warehouse copy are duplicates (``identical``), and an id left with a single copy
    (``alone``) is no longer repeated within the chunk: that copy conflicts with the warehouse one.
    """

    identical: set[tuple[str, str]] = field(default_factory=set)
    alone: set[str] = field(default_factory=set)

    @classmethod
    def of(cls, copies: dict[str, list[str]], known: _KnownCopies) -> _Repeats:
        """``copies``: the content hashes of each repeated id's rows; ``known``: those ids' warehouse copies."""
        identical = {(i, d) for i, digests in copies.items() for d in digests if known.is_identical(i, d)}
        alone = {i for i, digests in copies.items() if sum((i, d) not in identical for d in digests) == 1}
        return cls(identical, alone)


@dataclass
class _Tally:
    """Per-file counts kept while routing: what the tables cannot tell (duplicates, reasons seen)."""

    duplicates: int = 0
    evicted: int = 0
    reason_counts: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    examples: list[str] = field(default_factory=list)


def _ids_param(dialect: str) -> sa.ColumnElement[Any]:
    """A subquery of the ids passed as one JSON array in the parameter ``ids``.

    One parameter, whatever the number of ids: SQLAlchemy renders an expanding ``IN`` parameter
    anew at each execution, one bound name per id, which cost more than the lookup itself.
    """
    if dialect == "sqlite":
        ids = sa.func.json_each(sa.bindparam("ids", type_=sa.Text)).table_valued("value")
    else:  # PostgreSQL
        ids = sa.func.json_array_elements_text(sa.cast(sa.bindparam("ids", type_=sa.Text), sa.JSON)).table_valued(
            "value")
    return sa.select(ids.c.value).scalar_subquery()


@cache
def _lookups(dialect: str) -> tuple[sa.Select, sa.Select]:
    """The lookups by id of a dialect, built once: staged copies, and conflicting copies in quarantine."""
    existing = sa.select(*(staged_events.c[c] for c in ("event_id", "content_hash", "partition_date", "payload",
                                                        "source_file", "line_number", "file_id"))).where(
        staged_events.c.event_type == sa.bindparam("event_type"),
        staged_events.c.event_id.in_(_ids_param(dialect)))
    poisoned = sa.select(quarantined_events.c.event_id, quarantined_events.c.content_hash).where(
        quarantined_events.c.event_type == sa.bindparam("event_type"),
        quarantined_events.c.event_id.in_(_ids_param(dialect)),
        quarantined_events.c.reason_codes.contains("conflicting_duplicate"))
    return existing, poisoned


class _Router:
    """Route screened rows (of one or several files) into the warehouse: stage, quarantine, or skip as duplicate.

    The screeners tell what a chunk shows (reasons, identical copies within it); the router adds what
    the warehouse knows: an id already staged (the same content: a duplicate; other content: both
    copies quarantined, the staged one evicted) or already quarantined as conflicting.
    """

    def __init__(self, conn: Connection, files: list[_LandingFile], options: IngestOptions) -> None:
        self.conn, self.files, self.options = conn, files, options
        self.paths = [str(f.path) for f in files]
        self.tallies: dict[int, _Tally] = defaultdict(_Tally)
        self.lines_read: dict[int, int] = defaultdict(int)
        self.evicted_from: set[int] = set()
        self.changes: dict[str, set[dt.date]] = defaultdict(set)
        self.quarantine_rows: list[tuple[Any, ...]] = []
        self.staged_rows: list[tuple[Any, ...]] = []
        self.now = _now()
        self.repeats = _Repeats()

    def route(self, messages: Iterable[Message]) -> None:
        """Route a unit's messages, writing each group's rows (a slice at a time) once routed.

        Written at once, a group's rows are seen by the lookups of the groups after it: lines of one
        event type typed as separate groups (CSV and JSON task lines in one chunk) must see each
        other's copies to tell duplicates and conflicts.
        """
        for message in messages:
            match message:
                case ChunkStart():
                    for position, count in message.lines_read.items():
                        self.lines_read[position] += count
                    for rejected in message.rejected:
                        self._quarantine_rejected(rejected)
                case GroupVerdict():
                    self._route_group(message)
                    self._write()
                case ChunkEnd():
                    self._write()
                case UnitEnd():
                    for position, blank_lines in message.blank_lines.items():
                        self.files[position].stats.blank_lines = blank_lines

    def _write(self) -> None:
        insert_many(self.conn, staged_events, STAGED_COLUMNS, self.staged_rows)
        insert_many(self.conn, quarantined_events, QUARANTINE_COLUMNS, self.quarantine_rows)
        self.staged_rows, self.quarantine_rows = [], []

    def _quarantine_rejected(self, rejected: Rejected) -> None:
        self._quarantine(rejected.file, rejected.line_number, rejected.raw, rejected.reasons)

    def _quarantine(self, file: int, line_number: int, raw: str, reasons: list[Reason], *,
                    event_type: str | None = None, event_id: str | None = None,
                    partition_date: dt.date | None = None, digest: str | None = None, evicted: Any = None) -> None:
        """Quarantine a line of this batch, or (``evicted``) a staged row of an earlier one.

        ``raw`` is stored with NUL characters written as the text ``\\x00``: PostgreSQL text cannot hold NUL.
        """
        file_id = evicted.file_id if evicted is not None else self.files[file].file_id
        source = evicted.source_file if evicted is not None else self.paths[file]
        self.quarantine_rows.append((
            source, file_id, line_number, event_type, event_id, partition_date, digest, raw.replace("\x00", "\\x00"),
            [r.as_dict() for r in reasons], ",".join(dict.fromkeys(r.code for r in reasons)), self.now))
        if evicted is not None:
            return
        tally = self.tallies[file]
        for reason in reasons:
            tally.reason_counts[reason.code] += 1
        if len(tally.examples) < self.options.max_examples:
            tally.examples.append(f"{source}:{line_number}: " + "; ".join(r.message for r in reasons))

    def _route_group(self, group: GroupVerdict) -> None:
        """Stage, quarantine or skip each row of a group's slice, after looking up its ids' warehouse copies."""
        spec = event_specs()[group.event_type]
        for position, count in group.duplicates.items():
            self.tallies[position].duplicates += count
        if group.repeated is not None:  # the group's first slice
            self.repeats = _Repeats.of(group.repeated, self._known(spec, sorted(group.repeated)))
        lookup = {event_id for i, event_id in enumerate(group.ids)
                  if event_id is not None and (i not in group.reasons or _is_repeat(group.reasons[i]))}
        known = self._known(spec, sorted(lookup))
        staged, changes = self.staged_rows, self.changes[spec.event_type]
        for i, (event_id, digest, partition) in enumerate(zip(group.ids, group.digests, group.partitions, strict=True)):
            file, line_number = group.files[i], group.line_numbers[i]
            if i not in group.reasons and event_id not in known.staged and event_id not in known.poisoned:
                # Valid and new to the warehouse (most rows): staged, as ``_reasons`` would tell.
                staged.append((spec.event_type, event_id, partition, digest, group.payloads[i], self.paths[file],
                               line_number, self.files[file].file_id))
                changes.add(partition)
                continue
            reasons = self._reasons(spec, group.reasons.get(i, []), event_id, digest, known)
            if reasons is None:
                self.tallies[file].duplicates += 1
                continue
            if event_id in known.staged and _has_code(reasons, "conflicting_duplicate"):
                self._evict(spec, known.staged.pop(event_id), file, line_number)
            if reasons:
                raw = group.raws[i] if group.raws[i] is not None else read_line_at(self.files[file].path,
                                                                                   group.offsets[i])
                self._quarantine(file, line_number, raw, reasons, event_type=spec.event_type,
                                 event_id=event_id, partition_date=partition, digest=digest)
                continue
            staged.append((spec.event_type, event_id, partition, digest, group.payloads[i], self.paths[file],
                           line_number, self.files[file].file_id))
            changes.add(partition)

    def _reasons(self, spec: EventSpec, reasons: list[Reason], event_id: str | None, digest: str,
                 known: _KnownCopies) -> list[Reason] | None:
        """The row's reasons once the warehouse is known (none: stage it), or None for a duplicate to skip.

        A copy identical to one in the warehouse is a duplicate, whether or not the uniqueness
        rule saw other copies of its id in the chunk (see ``_Repeats``).
        """
        if not reasons:
            if known.is_identical(event_id, digest):
                return None
        elif _is_repeat(reasons):
            if (event_id, digest) in self.repeats.identical:
                return None
            if event_id in self.repeats.alone:
                reasons = []
        if not reasons and known.conflicts(event_id):
            other = known.staged.get(event_id)
            where = f"{other.source_file}:{other.line_number}" if other else "copies already in quarantine"
            return [Reason("conflicting_duplicate", spec.id_field,
                           f"{spec.id_field}: {event_id!r} conflicts with {where}")]
        return reasons

    def _known(self, spec: EventSpec, ids: list[str]) -> _KnownCopies:
        return _KnownCopies(self._existing(spec.event_type, ids), self._poisoned(spec.event_type, ids))

    def _existing(self, event_type: str, ids: list[str]) -> dict[str, Any]:
        found: dict[str, Any] = {}
        existing, _ = _lookups(self.conn.dialect.name)
        for batch in chunked(ids, LOOKUP_BATCH):
            rows = self.conn.execute(existing, {"event_type": event_type, "ids": json.dumps(batch)})
            found.update({row.event_id: row for row in rows})
        return found

    def _poisoned(self, event_type: str, ids: list[str]) -> dict[str, set[str]]:
        """Ids already quarantined as conflicting, with the content hashes of their copies."""
        found: dict[str, set[str]] = defaultdict(set)
        _, poisoned = _lookups(self.conn.dialect.name)
        for batch in chunked(ids, LOOKUP_BATCH):
            for row in self.conn.execute(poisoned, {"event_type": event_type, "ids": json.dumps(batch)}):
                found[row.event_id].add(row.content_hash)
        return found

    def _evict(self, spec: EventSpec, staged: Any, file: int, line_number: int) -> None:
        """Move a staged copy to quarantine: a conflicting copy (``file``, ``line_number``) has arrived."""
        self.conn.execute(staged_events.delete().where(staged_events.c.event_type == spec.event_type,
                                                       staged_events.c.event_id == staged.event_id))
        partition = to_python_date(staged.partition_date)
        where = f"{self.files[file].path}:{line_number}"
        self._quarantine(0, staged.line_number, staged.payload,
                         [Reason("conflicting_duplicate", spec.id_field,
                                 f"{spec.id_field}: {staged.event_id!r} conflicts with {where}")],
                         event_type=spec.event_type, event_id=staged.event_id, partition_date=partition,
                         digest=staged.content_hash, evicted=staged)
        self.evicted_from.add(staged.file_id)
        self.tallies[file].evicted += 1
        self.changes[spec.event_type].add(partition)


def _has_code(reasons: Iterable[Reason], code: str) -> bool:
    return any(r.code == code for r in reasons)


def _is_repeat(reasons: list[Reason]) -> bool:
    """The screening's verdict of the uniqueness rule: the id is on several (valid) rows of the chunk."""
    return _has_code(reasons, "conflicting_duplicate")
