"""The local Dagster instance's event log: Dagster's SQLite event log storage with its connections kept.

Dagster's ``SqliteEventLogStorage`` opens a new SQLAlchemy engine and SQLite connection for every
read and write of its event log and throws both away afterwards. Each asset event is written twice
(to the run's database and to the index database), so a materialization, a planned materialization
or an observation costs about 18 ms, nearly all of it making and closing engines; a 30-day range
run of the daily assets records about 2,300 such events. ``PooledSqliteEventLogStorage`` is the
same storage, the same files and tables, with one engine kept per database (its connection pooled)
for the databases used last: about 5 ms an event.

What stays as Dagster does it: every connection is used under the storage's own lock, inside one
transaction, as before; other processes (the daemon, the webserver, runs they launch) read each
committed write, as SQLite's WAL journaling gives them. The webserver streams a run's new events
when the run's database file changes (a watchdog on ``<run_id>.db``): Dagster's storage changes it
when it closes its last connection (SQLite then copies the journal into the file); with the
connection kept, a transaction that wrote to a run's database copies it at once ("passive"
checkpoint), so the file changes with every write as before. Before Dagster deletes run databases
(``wipe``) this process closes its engines; wipe an instance with its daemon and webserver stopped,
as their connections would outlive the deleted files.

Used by the project's ``dagster.yaml`` (the embedded instance of ``perf-pipeline run``, ``demo`` and
``ui``); the production instance (``deploy/dagster.yaml``) keeps its events in PostgreSQL.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from dagster import Field, StringSource
from dagster._core.storage.event_log import SqliteEventLogStorage
from dagster._core.storage.event_log.sqlite.sqlite_event_log import INDEX_SHARD_NAME, SQLITE_BUSY_TIMEOUT_SECONDS
from dagster._serdes import ConfigurableClassData
from sqlalchemy.engine import Connection, Engine

# Engines kept: the index database's and those of the runs written last (a run writes its own
# database and the index; the webserver reads a few runs at a time).
KEPT_ENGINES = 8


def default_base_dir() -> str:
    """Where Dagster's default instance keeps its event logs: ``$DAGSTER_HOME/history/runs``."""
    home = os.environ.get("DAGSTER_HOME")
    if not home:
        raise ValueError("PooledSqliteEventLogStorage keeps its files under $DAGSTER_HOME/history/runs, and "
                         "DAGSTER_HOME is not set: set it to the instance's folder, or give the storage a "
                         "base_dir in dagster.yaml")
    return os.path.join(home, "history", "runs", "")


class PooledSqliteEventLogStorage(SqliteEventLogStorage):
    """``SqliteEventLogStorage`` keeping an engine per database for the ``KEPT_ENGINES`` used last.

    In ``dagster.yaml``::

        event_log_storage:
          module: perf_pipeline.instance_storage
          class: PooledSqliteEventLogStorage
          config:
            base_dir: /path/to/dir   # optional: $DAGSTER_HOME/history/runs, as Dagster's default
    """

    def __init__(self, base_dir: str, inst_data: ConfigurableClassData | None = None) -> None:
        self._engines: OrderedDict[str, Engine] = OrderedDict()
        super().__init__(base_dir, inst_data)

    @classmethod
    def config_type(cls) -> dict[str, Field]:
        return {"base_dir": Field(StringSource, is_required=False)}

    @classmethod
    def from_config_value(cls, inst_data: ConfigurableClassData | None,  # type: ignore[override]
                          config_value: Mapping[str, Any]) -> PooledSqliteEventLogStorage:
        return cls(config_value.get("base_dir") or default_base_dir(), inst_data=inst_data)

    @contextmanager
    def _connect(self, shard: str) -> Iterator[Connection]:
        """A connection to ``shard``'s database in a transaction, as Dagster's, from a kept engine;
        after a transaction that wrote to a run's database, its journal is copied into the file."""
        with self._db_lock:
            engine = self._engine(shard)
            if shard not in self._initialized_dbs:
                self._initdb(engine)
                self._initialized_dbs.add(shard)
            with engine.connect() as conn:
                sqlite = conn.connection.driver_connection
                changes = sqlite.total_changes
                with conn.begin():
                    yield conn
                if shard != INDEX_SHARD_NAME and sqlite.total_changes != changes:
                    sqlite.execute("PRAGMA wal_checkpoint(PASSIVE)")  # the run's file changes: watchers see it

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
