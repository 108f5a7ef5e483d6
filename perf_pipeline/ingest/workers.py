"""Worker processes that judge ingest units while the main process writes to the warehouse.

Judging a unit (parsing, typing, hashing, Great Expectations) is most of an ingest's CPU time and
needs no warehouse, so large ingests judge their units in worker processes, ahead of the main
process, which routes the verdicts into the warehouse unit by unit. Units go to the workers in
turn and each worker answers its units in the order received, so what the main process reads
back does not depend on timing. A worker blocks on sending until the main process reads, which
bounds how far ahead (and how much memory) it gets.

The ingest may run in a thread of Dagster's process, where forking is unsafe: workers come from
a "forkserver" (or, where there is none, "spawn") context. The forkserver imports pandas and
Great Expectations once, so that each worker starts in milliseconds.
"""

from __future__ import annotations

import contextlib
import gc
import multiprocessing
import os
import traceback
from collections.abc import Iterator
from dataclasses import dataclass
from multiprocessing.connection import Connection
from types import TracebackType

from perf_pipeline.ingest.judge import JudgeOptions, Message, Unit, UnitEnd, judge_unit
from perf_pipeline.ingest.readers import UnreadableFileError

JOIN_SECONDS = 10


@dataclass
class _Failed:
    """Judging a unit raised ``error`` (sent instead of the unit's remaining messages)."""

    error: Exception


class Judges:
    """Judge units, in worker processes or (``workers`` = 0) in this process when their messages are read.

    ``submit`` returns a ticket; ``messages`` of the tickets must then be read in ticket order.
    """

    def __init__(self, options: JudgeOptions, workers: int) -> None:
        self.options = options
        self.workers = workers
        self._connections: list[Connection] = []
        self._processes: list[multiprocessing.process.BaseProcess] = []
        self._inline: dict[int, Unit] = {}
        self._tickets = 0

    def submit(self, unit: Unit) -> int:
        ticket = self._tickets
        self._tickets += 1
        if not self.workers:
            self._inline[ticket] = unit
            return ticket
        if not self._processes:
            self._start()
        self._connections[ticket % self.workers].send(unit)
        return ticket

    def messages(self, ticket: int) -> Iterator[Message]:
        """The unit's messages in order, ending with ``UnitEnd``; raises what judging it raised."""
        if not self.workers:
            yield from judge_unit(self._inline.pop(ticket), self.options)
            return
        connection = self._connections[ticket % self.workers]
        while True:
            message = connection.recv()
            if isinstance(message, _Failed):
                raise message.error
            yield message
            if isinstance(message, UnitEnd):
                return

    def _start(self) -> None:
        methods = multiprocessing.get_all_start_methods()
        context = multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")
        if context.get_start_method() == "forkserver":
            context.set_forkserver_preload([__name__])
        for _ in range(self.workers):
            here, there = context.Pipe()
            process = context.Process(target=_serve, args=(there, self.options), daemon=True,
                                      name="perf-pipeline-judge")
            process.start()
            there.close()
            self._connections.append(here)
            self._processes.append(process)

    def close(self) -> None:
        """Stop the workers (those still busy, after an error, are terminated)."""
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
        self._connections, self._processes = [], []

    def __enter__(self) -> Judges:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        if error is not None:
            for process in self._processes:
                process.terminate()
        self.close()


def default_workers() -> int:
    """One worker per CPU this process may use."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _serve(connection: Connection, options: JudgeOptions) -> None:
    """A worker's loop: judge each unit received and send its messages, until told to stop (None).

    Judging allocates millions of objects that live until the unit is sent; the cyclic garbage
    collector would traverse them all again and again (it costs a third of the parsing time), so
    it is off while a unit is judged, and run once after.
    """
    gc.disable()
    while (unit := connection.recv()) is not None:
        try:
            for message in judge_unit(unit, options):
                connection.send(message)
        except UnreadableFileError as exc:
            connection.send(_Failed(exc))
        except Exception:  # the main process raises it, with this traceback
            connection.send(_Failed(RuntimeError(f"judging {', '.join(map(str, unit.paths))} failed:\n"
                                                 f"{traceback.format_exc()}")))
        gc.collect()
