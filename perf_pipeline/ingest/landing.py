"""What the landing sensor sees in the landing folder: each landing file's content hash, recomputed
only for files whose size or modification time changed since the last look, and the files it could
not read. Pure of Dagster; the sensor keeps ``memo`` in its cursor."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from perf_pipeline.ingest.pipeline import discover, file_sha256


@dataclass(frozen=True)
class LandingLook:
    hashes: dict[str, str]  # path -> sha256 of each readable landing file
    unreadable: dict[str, str]  # path -> why it could not be read (looked at again next time)
    memo: dict[str, list]  # path -> [size, mtime_ns, sha256] of the files hashed, for the next look


def look(folder: Path, memo: dict[str, list]) -> LandingLook:
    """The landing files of ``folder`` and their hashes; ``memo`` is the previous look's."""
    files, _ = discover(folder)
    hashes, unreadable, seen = {}, {}, {}
    for path in files:
        key = str(path)
        try:
            stat = path.stat()
            known = memo.get(key)
            if known and known[0] == stat.st_size and known[1] == stat.st_mtime_ns:
                sha = known[2]
            else:
                sha, _ = file_sha256(path)
        except OSError as exc:
            unreadable[key] = f"{path}: cannot read: {exc.strerror or exc}"
            continue
        hashes[key] = sha
        seen[key] = [stat.st_size, stat.st_mtime_ns, sha]
    return LandingLook(hashes, unreadable, seen)


def batch_key(hashes: Iterable[str]) -> str:
    """One key for a set of file contents, whatever their order or names: the ingest run's key."""
    return hashlib.sha256("\n".join(sorted(set(hashes))).encode()).hexdigest()[:24]
