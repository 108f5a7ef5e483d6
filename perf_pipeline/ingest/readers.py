"""Read landing files into numbered records, in chunks, losing no line.

Each reader yields ``SourceLine`` objects: the record (a dict) when the line could be decoded,
or the structural reason why not (not UTF-8, not JSON, truncated, not an object, a CSV row of
the wrong width). Files that cannot be read at all raise ``UnreadableFileError`` with a message
naming the file, so that the caller records the failure and retries the file later.
"""

from __future__ import annotations

import csv
import gzip
import io
import itertools
import json
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from perf_pipeline import jsontext
from perf_pipeline.validation.reasons import Reason

CHUNK_LINES = 50_000
# JSON Lines files are read this much at a time (then cut after the block's last newline).
BLOCK_BYTES = 8 * 2**20
# What bytes.strip() strips: a line of only these is blank.
ASCII_WHITESPACE = " \t\n\r\x0b\x0c"
FORMATS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".jsonl.gz": "jsonl.gz", ".ndjson.gz": "jsonl.gz",
           ".csv": "csv", ".parquet": "parquet"}
# Files still being written by their producer, by common convention.
IN_PROGRESS_SUFFIXES = (".tmp", ".part", ".partial", ".inprogress")


class UnreadableFileError(Exception):
    """The file as a whole cannot be read (permissions, corrupt compression, not Parquet)."""


@dataclass(slots=True)
class SourceLine:
    """One line (JSONL), row (CSV, Parquet) of a file: its record, or why it has none.

    ``file`` is the file's position in the ingest batch, set when lines of several files are
    validated together. JSON lines are parsed lazily (``parse_json``), as a validation chunk is
    read; the text of a line read from an uncompressed file is then dropped (the few that are
    needed again, to be quarantined, are read again from ``offset``).
    """

    line_number: int
    raw: str | None  # None once parsed, for a line that ``offset`` finds again (``raw_text``)
    record: dict[str, Any] | None = None
    reason: Reason | None = None
    file: int = 0
    complete: bool = True  # ended with a newline; a last line without one that fails to parse is truncated
    offset: int = -1  # where the line starts in an uncompressed JSON Lines file, -1 elsewhere


@dataclass
class ReadStats:
    blank_lines: int = 0


def detect_format(path: Path) -> str | None:
    """The file format from the name, or None for files that are not landing files."""
    name = path.name.lower()
    if name.startswith(".") or name.endswith(IN_PROGRESS_SUFFIXES):
        return None
    for suffix in sorted(FORMATS, key=len, reverse=True):
        if name.endswith(suffix):
            return FORMATS[suffix]
    return None


def read_lines(path: Path, file_format: str, stats: ReadStats) -> Iterator[SourceLine]:
    """The file's source lines, in order (blank lines counted in ``stats``, not yielded)."""
    readers = {"jsonl": _plain_jsonl_lines, "jsonl.gz": _jsonl_lines, "csv": _csv_rows, "parquet": _parquet_rows}
    return readers[file_format](path, file_format, stats)


def _open_binary(path: Path, file_format: str) -> io.BufferedIOBase:
    try:
        if file_format == "jsonl.gz":
            return gzip.open(path, "rb")
        return open(path, "rb")
    except OSError as exc:
        raise UnreadableFileError(f"{path}: cannot open: {exc.strerror or exc}") from exc


def _jsonl_lines(path: Path, file_format: str, stats: ReadStats) -> Iterator[SourceLine]:
    handle = _open_binary(path, file_format)
    line_number = 0
    try:
        with handle:
            for line_number, data in enumerate(handle, start=1):
                yield from _decode_jsonl_line(line_number, data, stats)
    except (OSError, EOFError, zlib.error) as exc:
        raise UnreadableFileError(
            f"{path}: unreadable after line {line_number}: {exc} (the file is corrupt or still being written)"
        ) from exc


def _plain_jsonl_lines(path: Path, file_format: str, stats: ReadStats) -> Iterator[SourceLine]:
    """An uncompressed file's lines, read in blocks of whole lines (decoded and split at once, see
    ``_block_lines``). Compressed files are read line by line: where a corrupt one fails is told by line."""
    handle = _open_binary(path, file_format)
    line_number = offset = 0
    try:
        with handle:
            rest = b""
            while block := handle.read(BLOCK_BYTES):
                data = rest + block
                cut = data.rfind(b"\n") + 1
                rest = data[cut:]
                if cut:
                    yield from _block_lines(data[:cut], line_number, offset, stats)
                    line_number += data.count(b"\n", 0, cut)
                    offset += cut
            if rest:
                line_number += 1
                for line in _decode_jsonl_line(line_number, rest, stats):
                    line.offset = offset
                    yield line
    except (OSError, EOFError, zlib.error) as exc:
        raise UnreadableFileError(
            f"{path}: unreadable after line {line_number}: {exc} (the file is corrupt or still being written)"
        ) from exc


def _block_lines(block: bytes, line_number: int, offset: int, stats: ReadStats) -> Iterator[SourceLine]:
    """The lines of ``block`` (whole lines, each ending with a newline), numbered after ``line_number``;
    ``offset`` is where the block starts in the file.

    The block is decoded and split in one go; what ``_decode_jsonl_line`` does line by line gives
    the same lines (a newline byte never occurs inside a UTF-8 sequence). A block that is not
    valid UTF-8 is taken line by line, to tell which lines are not.
    """
    pieces = block.split(b"\n")[:-1]
    starts = itertools.accumulate((len(piece) + 1 for piece in pieces), initial=offset)
    try:
        text = block.decode("utf-8")
    except UnicodeDecodeError:
        for number, start, data in zip(itertools.count(line_number + 1), starts, pieces):
            for line in _decode_jsonl_line(number, data + b"\n", stats):
                line.offset = start
                yield line
        return
    for number, start, line in zip(itertools.count(line_number + 1), starts, text.split("\n")[:-1]):
        body = line.rstrip("\r")
        if body.strip(ASCII_WHITESPACE):
            yield SourceLine(number, body, offset=start)
        else:
            stats.blank_lines += 1


def raw_text(path: Path, line: SourceLine) -> str:
    """The line's text, read again from the file if it was dropped after parsing."""
    if line.raw is not None:
        return line.raw
    return read_line_at(path, line.offset)


def read_line_at(path: Path, offset: int) -> str:
    """The text of the (valid UTF-8) line that starts at byte ``offset``, as the reader gave it."""
    with open(path, "rb") as handle:
        handle.seek(offset)
        return handle.readline().rstrip(b"\r\n").decode("utf-8")


def _decode_jsonl_line(line_number: int, data: bytes, stats: ReadStats) -> Iterator[SourceLine]:
    """The line as text; its JSON is parsed later, by ``parse_json`` (see ``SourceLine``)."""
    complete = data.endswith(b"\n")
    body = data.rstrip(b"\r\n")
    if not body.strip():
        stats.blank_lines += 1
        return
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raw = body.decode("utf-8", errors="backslashreplace")
        yield SourceLine(line_number, raw, reason=Reason("not_utf8", None, f"byte {exc.start}: {exc.reason}"))
        return
    yield SourceLine(line_number, text, complete=complete)


def parse_json(line: SourceLine) -> None:
    """Fill ``line.record`` from its JSON text, or ``line.reason`` when it is not a JSON object."""
    if line.record is not None or line.reason is not None:
        return
    try:
        value = jsontext.loads(line.raw)
    except ValueError as exc:
        code = "invalid_json" if line.complete else "truncated_line"
        line.reason = Reason(code, None, f"column {getattr(exc, 'colno', '?')}: {getattr(exc, 'msg', exc)}")
        return
    if isinstance(value, dict):
        line.record = value
    else:
        line.reason = Reason("not_an_object", None, f"expected a JSON object, got {type(value).__name__}")


def _csv_rows(path: Path, _format: str, stats: ReadStats) -> Iterator[SourceLine]:
    try:
        handle = open(path, encoding="utf-8", newline="")  # noqa: SIM115 - closed below
    except OSError as exc:
        raise UnreadableFileError(f"{path}: cannot open: {exc.strerror or exc}") from exc
    try:
        with handle:
            reader = csv.reader(handle)
            header = next(reader, None)
            if header is None:
                return
            header = [name.strip() for name in header]
            for row in reader:
                if not any(cell.strip() for cell in row):
                    stats.blank_lines += 1
                    continue
                yield _csv_record(reader.line_num, header, row)
    except UnicodeDecodeError as exc:
        raise UnreadableFileError(f"{path}: not UTF-8 text near byte {exc.start}: {exc.reason}") from exc
    except csv.Error as exc:
        raise UnreadableFileError(f"{path}: not a readable CSV file: {exc}") from exc


def _csv_record(line_number: int, header: list[str], row: list[str]) -> SourceLine:
    raw = _csv_raw(row)
    if len(row) != len(header):
        reason = Reason("malformed_csv_row", None, f"{len(row)} cells, the header has {len(header)}")
        return SourceLine(line_number, raw, reason=reason)
    record = {name: (cell if cell != "" else None) for name, cell in zip(header, row, strict=True)}
    record.setdefault("event_type", "task")
    if record["event_type"] is None:
        record["event_type"] = "task"
    return SourceLine(line_number, raw, record=record)


def _csv_raw(row: list[str]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="").writerow(row)
    return buffer.getvalue()


def _parquet_rows(path: Path, _format: str, stats: ReadStats) -> Iterator[SourceLine]:
    try:
        parquet = pq.ParquetFile(path)
    except (OSError, pa.ArrowInvalid) as exc:
        raise UnreadableFileError(f"{path}: not a readable Parquet file: {exc}") from exc
    row_number = 0
    for batch in parquet.iter_batches(batch_size=CHUNK_LINES):
        for record in batch.to_pylist():
            row_number += 1
            record.setdefault("event_type", "task")
            if record["event_type"] is None:
                record["event_type"] = "task"
            yield SourceLine(row_number, json.dumps(record, default=str, ensure_ascii=False), record=record)
