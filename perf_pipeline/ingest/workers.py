"""Worker processes that screen ingest units while the main process writes to the warehouse.

Judging a unit (parsing, typing, hashing, Great Expectations) is most of an ingest's CPU time and
needs no warehouse, so large ingests screen their units in worker processes, ahead of the main
process, which routes the verdicts into the warehouse unit by unit. Units go to the workers in
turn and each worker answers its units in the order received, so what the main process reads
back does not depend on timing.

A worker writes a unit's messages to a file of its own (in a temporary folder of the ingest) and
then tells the main process: it never waits for the writer, and the verdicts waiting to be
routed are on disk, not in memory. The main process submits only a few units ahead, which
bounds that disk use.

The ingest may run in a thread of Dagster's process, where forking is unsafe: workers come from
a "forkserver" (or, where there is none, "spawn") context. The forkserver imports the screening
(pandas, Great Expectations) once, so that each worker starts in milliseconds; the main process
does not import it unless it screens units itself.
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import multiprocessing
import pickle
import shutil
import tempfile
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from types import TracebackType

from perf_pipeline.ingest.readers import UnreadableFileError
from perf_pipeline.ingest.verdicts import Message, ScreenOptions, Unit, UnitEnd
from perf_pipeline.settings import usable_cpus, worker_context

# What workers run, imported by them (and preloaded by the forkserver), not by the main process.
SCREENING_MODULE = "perf_pipeline.ingest.screening"

JOIN_SECONDS = 10
# A worker screens about a third of what the one writing process can route, and holds up to ~0.8 GB
# while screening a 200k-line chunk: more workers than this add memory, not speed.
MAX_WORKERS = 4


@dataclass
class _Screened:
    """The unit's messages are in ``path``, pickled one after the other."""

    path: Path


@dataclass
class _Failed:
    """Judging a unit raised ``error``."""

    error: Exception


class Screeners:
    """Screen units in up to ``workers`` worker processes, or in this process.

    ``submit`` returns a ticket; ``messages`` of the tickets must then be read in ticket order.
    Workers start with the second unit submitted: one unit alone would wait for them to start and
    then be screened by one of them anyway, so it is screened here when its messages are read.
    """

    def __init__(self, options: ScreenOptions, workers: int) -> None:
        self.options = options
        self.workers = workers
        self._connections: list[Connection] = []
        self._processes: list[multiprocessing.process.BaseProcess] = []
        self._unsent: dict[int, Unit] = {}
        self._folder: Path | None = None
        self._tickets = 0

    @property
    def submitted(self) -> int:
        return self._tickets

    def submit(self, unit: Unit) -> int:
        ticket = self._tickets
        self._tickets += 1
        self._unsent[ticket] = unit
        if self.workers and self._tickets > 1:
            if not self._processes:
                self._start()
            for sent, pending in sorted(self._unsent.items()):
                self._connections[sent % self.workers].send((pending, self._folder / f"unit-{sent}.pickle"))
            self._unsent.clear()
        return ticket

    def messages(self, ticket: int) -> Iterator[Message]:
        """The unit's messages in order, ending with ``UnitEnd``; raises what screening it raised."""
        if ticket in self._unsent:
            yield from _screen_unit()(self._unsent.pop(ticket), self.options)
            return
        answer = self._connections[ticket % self.workers].recv()
        if isinstance(answer, _Failed):
            raise answer.error
        try:
            with open(answer.path, "rb") as handle:
                while not isinstance(message := pickle.load(handle), UnitEnd):
                    yield message
                yield message
        finally:
            answer.path.unlink()

    def _start(self) -> None:
        context = worker_context([SCREENING_MODULE, __name__])
        self._folder = Path(tempfile.mkdtemp(prefix="perf-pipeline-screeners-"))
        for _ in range(self.workers):
            here, there = context.Pipe()
            process = context.Process(target=_serve, args=(there, self.options), daemon=True,
                                      name="perf-pipeline-screener")
            process.start()
            there.close()
            self._connections.append(here)
            self._processes.append(process)

    def close(self) -> None:
        """Stop the workers (those still busy, after an error, are terminated) and remove their files."""
        for connection in self._connections:
            with contextlib.suppress(OSError):  # a worker that died has closed its end
                connection.send(None)
        for process in self._processes:
            process.join(JOIN_SECONDS)
            if process.is_alive():
                process.terminate()
                process.join()
        for connection in self._connections:
            connection.close()
        if self._folder is not None:
            shutil.rmtree(self._folder, ignore_errors=True)
        self._connections, self._processes, self._folder = [], [], None

    def __enter__(self) -> Screeners:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        if error is not None:
            for process in self._processes:
                process.terminate()
        self.close()


def default_workers() -> int:
    """One worker per CPU this process may use, at most ``MAX_WORKERS``."""
    return min(usable_cpus(), MAX_WORKERS)


def _screen_unit() -> Callable[[Unit, ScreenOptions], Iterator[Message]]:
    return importlib.import_module(SCREENING_MODULE).screen_unit


def _serve(connection: Connection, options: ScreenOptions) -> None:
    """A worker's loop: screen each unit received into its file and answer, until told to stop (None).

    Judging allocates millions of objects that live until the unit is written; the cyclic garbage
    collector would traverse them all again and again (it costs a third of the parsing time), so
    it is off while a unit is screened, and run once after. What the worker inherited from the
    forkserver (the preloaded libraries) is frozen out of collection: collecting would write to
    every one of those objects and so copy the memory pages it shares with the other workers.
    """
    screen_unit = _screen_unit()
    gc.disable()
    gc.freeze()
    while (request := connection.recv()) is not None:
        unit, path = request
        try:
            with open(path, "wb") as handle:
                for message in screen_unit(unit, options):
                    pickle.dump(message, handle, protocol=pickle.HIGHEST_PROTOCOL)
            connection.send(_Screened(path))
        except UnreadableFileError as exc:
            connection.send(_Failed(exc))
        except Exception:  # the main process raises it, with this traceback
            connection.send(_Failed(RuntimeError(f"screening {', '.join(map(str, unit.paths))} failed:\n"
                                                 f"{traceback.format_exc()}")))
        gc.collect()
