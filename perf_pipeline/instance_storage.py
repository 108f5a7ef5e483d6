"""The local Dagster instance's event log: Dagster's SQLite event log storage with its connections kept.

Dagster's ``SqliteEventLogStorage`` opens a new SQLAlchemy engine and SQLite connection for every
read and write of its event log and throws both away afterwards. Each asset event is written twice
(to the run's database and to the index database), so a materialization, a planned materialization
or an observation costs about 18 ms, nearly all of it making and closing engines; a 30-day range
run of the daily assets records about 2,300 such events. ``PooledSqliteEventLogStorage`` is the
same storage, the same files and tables, with one engine kept per database (its connection pooled)
for the databases used last: about 5 ms an event.

Dagster hands a storage the events of a batch together when ``DAGSTER_EVENT_BATCH_SIZE`` is set (a
run's planned materializations; a range run's materializations of an asset, one per day); its
SQLite storage then still writes them one transaction each. This one writes a batch in one
transaction per database, and sets the variable in the processes that build it: 6 daily assets
materialized over a year in one run took 14.5 to 17.3 s without batches, 5.7 to 7.3 s with them.

What stays as Dagster does it: every connection is used under the storage's own lock, inside one
transaction, as before; other processes (the daemon, the webserver, runs they launch) read each
committed write, as SQLite's WAL journaling gives them. The webserver streams a run's new events
when the run's database file changes (a watchdog on ``<run_id>.db``): Dagster's storage changes it
when it closes its last connection (SQLite then copies the journal into the file); with the
connection kept, a transaction that wrote to a run's database copies it at once ("passive"
checkpoint), so the file changes with every write as before. Before Dagster deletes run databases
(``wipe``) this process closes its engines; wipe an instance with its daemon and webserver stopped,
as their connections would outlive the deleted files.

Set by ``perf-pipeline run``, ``demo`` and ``ui`` in their instance's dagster.yaml (``instance_config``,
the project's dagster.yaml with this storage and its folder added); a bare ``dagster dev`` in the
project's folder reads the project's file, and so Dagster's own storage. The production instance
(``deploy/dagster.yaml``) keeps its events in PostgreSQL.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import textwrap
import threading
from collections import OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from dagster._core.events.log import EventLogEntry
from dagster._core.storage.event_log import SqliteEventLogStorage
from dagster._core.storage.event_log.sqlite.sqlite_event_log import INDEX_SHARD_NAME, SQLITE_BUSY_TIMEOUT_SECONDS
from dagster._serdes import ConfigurableClassData
from sqlalchemy.engine import Connection, Engine

# Engines kept: the index database's and those of the runs written last (a run writes its own
# database and the index; the webserver reads a few runs at a time).
KEPT_ENGINES = 8
# Dagster hands an event log the events of a batch together (a run's planned materializations; the
# materializations of a range run's output, one per day) when this variable is above 0: up to this
# many at once. This storage writes a batch in one transaction per database.
BATCH_SIZE_VARIABLE, EVENT_BATCH_SIZE = "DAGSTER_EVENT_BATCH_SIZE", 1000


def instance_config(home: Path) -> str:
    """The dagster.yaml block that gives the instance in ``home`` (its DAGSTER_HOME) this event log,
    in ``home/history/runs`` as Dagster's default. The folder is written out, not derived from the
    environment: the runs and servers an instance starts rebuild its storage from this config."""
    base_dir = json.dumps(str(home.resolve() / "history" / "runs"))
    return textwrap.dedent(f"""
        # Added by perf-pipeline: the event log with its connections kept (perf_pipeline/instance_storage.py).
        event_log_storage:
          module: {__name__}
          class: {PooledSqliteEventLogStorage.__name__}
          config:
            base_dir: {base_dir}
        """)


class PooledSqliteEventLogStorage(SqliteEventLogStorage):
    """``SqliteEventLogStorage`` keeping an engine per database for the ``KEPT_ENGINES`` used last.

    In ``dagster.yaml``::

        event_log_storage:
          module: perf_pipeline.instance_storage
          class: PooledSqliteEventLogStorage
          config:
            base_dir: /path/to/dagster_home/history/runs   # as Dagster's default (instance_config)
    """

    def __init__(self, base_dir: str, inst_data: ConfigurableClassData | None = None) -> None:
        self._engines: OrderedDict[str, Engine] = OrderedDict()
        self._local = threading.local()  # .batch: the open transactions of the batch this thread writes
        super().__init__(base_dir, inst_data)
        # Every process that writes events to this storage (the CLI's, the daemon's runs) builds it
        # from the instance's dagster.yaml: here Dagster's batches are turned on for them, for the
        # whole process and those it starts. An instance of another storage in the same process
        # gets batches too, written as that storage writes them (Dagster's SQLite storage one event
        # at a time, as without batches; its PostgreSQL storage in one statement). A value already
        # set is kept: 0 turns batches off.
        os.environ.setdefault(BATCH_SIZE_VARIABLE, str(EVENT_BATCH_SIZE))

    @classmethod
    def from_config_value(cls, inst_data: ConfigurableClassData | None,  # type: ignore[override]
                          config_value: Mapping[str, Any]) -> PooledSqliteEventLogStorage:
        return cls(config_value["base_dir"], inst_data=inst_data)

    @contextmanager
    def _connect(self, shard: str) -> Iterator[Connection]:
        """A connection to ``shard``'s database in a transaction, as Dagster's, from a kept engine;
        after a transaction that wrote to a run's database, its journal is copied into the file.
        Within ``store_event_batch`` (this thread holding the lock), the batch's transaction on it."""
        batch: dict[str, tuple[Connection, int]] | None = getattr(self._local, "batch", None)
        if batch is not None:
            if shard not in batch:
                conn = self._ready_engine(shard).connect()
                batch[shard] = (conn, conn.connection.driver_connection.total_changes)  # closed by the batch
                conn.begin()
            yield batch[shard][0]
            return
        with self._db_lock, self._ready_engine(shard).connect() as conn:
            sqlite = conn.connection.driver_connection
            changes = sqlite.total_changes
            with conn.begin():
                yield conn
            self._after_commit(shard, conn, changes)

    def store_event_batch(self, events: Sequence[EventLogEntry]) -> None:
        """Each event written as ``store_event`` writes it, all in one transaction per database: one
        commit and one checkpoint per database for the batch instead of one per event (each event's
        rows are still inserted). If a write fails nothing of the batch is kept, and Dagster then
        stores its events one by one. (The run's database commits before the index: a failure
        between the two commits, which only a full disk or a lost file can cause, leaves the run's
        copies of the events twice.)"""
        with self._db_lock:
            batch: dict[str, tuple[Connection, int]] = {}
            self._local.batch = batch
            try:
                for event in events:
                    self.store_event(event)
                for shard in sorted(batch, key=lambda name: name == INDEX_SHARD_NAME):
                    batch[shard][0].commit()
            except BaseException:
                for conn, _ in batch.values():
                    conn.rollback()
                raise
            else:
                # The events are stored: a checkpoint that fails only delays the run's watchers,
                # and must not send the batch to be stored a second time.
                with contextlib.suppress(sa.exc.DBAPIError, sqlite3.Error):
                    for shard, (conn, changes) in batch.items():
                        self._after_commit(shard, conn, changes)
            finally:
                self._local.batch = None
                for conn, _ in batch.values():
                    conn.close()

    def _ready_engine(self, shard: str) -> Engine:
        """The kept engine of ``shard``, its database set up on first use. Called under ``_db_lock``."""
        engine = self._engine(shard)
        if shard not in self._initialized_dbs:
            self._initdb(engine)
            self._initialized_dbs.add(shard)
        return engine

    @staticmethod
    def _after_commit(shard: str, conn: Connection, changes_before: int) -> None:
        """After a committed transaction on a run's database that wrote to it: its journal copied into
        the file ("passive" checkpoint), so that watchers of the file see the new events."""
        sqlite = conn.connection.driver_connection
        if shard != INDEX_SHARD_NAME and sqlite.total_changes != changes_before:
            sqlite.execute("PRAGMA wal_checkpoint(PASSIVE)")

    def _engine(self, shard: str) -> Engine:
        """The kept engine of ``shard`` (made on first use; the one used longest ago is closed when
        more than ``KEPT_ENGINES`` are kept). Called under ``_db_lock``."""
        engine = self._engines.get(shard)
        if engine is None:
            # One connection kept per engine (every use holds the storage's lock); Dagster's set-up
            # of a new database opens a second one for a moment, closed when returned.
            engine = sa.create_engine(self.conn_string_for_shard(shard), pool_size=1, max_overflow=2,
                                      connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS})
            self._engines[shard] = engine
            while len(self._engines) > KEPT_ENGINES:
                self._engines.popitem(last=False)[1].dispose()
        else:
            self._engines.move_to_end(shard)
        return engine

    def _close_engines(self) -> None:
        with self._db_lock:
            while self._engines:
                self._engines.popitem()[1].dispose()

    def wipe(self) -> None:
        self._close_engines()  # Dagster deletes the runs' database files
        super().wipe()

    def dispose(self) -> None:
        self._close_engines()
        super().dispose()
