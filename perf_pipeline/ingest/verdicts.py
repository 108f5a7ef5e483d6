"""What screening a unit of landing files tells the router: the messages, and the unit itself.

Kept apart from ``perf_pipeline.ingest.screening`` (pandas, Great Expectations) so that the process
that routes verdicts into the warehouse need not load what only the screeners use.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path

from perf_pipeline.validation.reasons import Reason


@dataclass(frozen=True)
class ScreenOptions:
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
    """Rows of one event type of a chunk, in order, screened as far as the chunk can tell.

    Identical copies within the chunk are left out (counted in ``duplicates``, per file).
    ``reasons`` holds, by position, the reasons of rows that failed; ``payloads`` the canonical
    text of the others (None for failed rows). A row's raw text is None where ``offsets`` finds it
    in its (uncompressed JSON Lines) file, for the router to read if it quarantines the row.

    A group is sent in slices; its first slice also carries ``duplicates`` and ``repeated``: the
    ids that the uniqueness rule found on several of the group's rows, with those rows' content
    hashes (for the router to skip first those identical to a warehouse copy). Later slices carry
    no ``duplicates`` and ``repeated`` None.
    """

    event_type: str
    files: list[int]
    line_numbers: list[int]
    raws: list[str | None]
    offsets: list[int]
    ids: list[str | None]
    digests: list[str]
    partitions: list[dt.date | None]
    payloads: list[str | None]
    reasons: dict[int, list[Reason]]
    duplicates: dict[int, int] = field(default_factory=dict)
    repeated: dict[str, list[str]] | None = None


@dataclass(frozen=True)
class Unit:
    """Files ingested in one transaction, read in order as one sequence of lines cut into chunks.

    Several small files (a batch), or one large file streamed; ``formats`` and ``paths`` are
    indexed by the file's position in the unit (``SourceLine.file``). The row rules of a batch's
    chunks are validated together (``together``): GX's cost is mostly per call, and a batch's
    last chunk is often small. A streamed file's chunks are validated one by one, to bound memory.
    """

    paths: tuple[Path, ...]
    formats: tuple[str, ...]
    chunk_lines: int
    together: bool


@dataclass
class ChunkStart:
    """A chunk's lines read per file and lines rejected before typing; its groups follow."""

    lines_read: dict[int, int]
    rejected: list[Rejected]


@dataclass
class ChunkEnd:
    """All of the chunk's groups have been sent."""


@dataclass
class UnitEnd:
    """The unit is read: blank lines skipped, per file."""

    blank_lines: dict[int, int]


Message = ChunkStart | GroupVerdict | ChunkEnd | UnitEnd


