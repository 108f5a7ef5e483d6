"""Shared fixtures: a warehouse on SQLite and on the PostgreSQL server, and a landing folder."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, settings

from perf_pipeline.warehouse.chunks import stop_workers
from perf_pipeline.warehouse.db import warehouse_engine

# The suite runs two tests at a time beside daemons and browsers: how long Hypothesis takes to draw
# an example says nothing about the code, so neither its deadline nor its too-slow check fails a test.
settings.register_profile("suite", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("suite")

POSTGRES_URL = os.environ.get("PERF_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def _postgres_schema_url(schema: str) -> str:
    url = sa.engine.make_url(POSTGRES_URL)
    return url.update_query_dict({"options": f"-csearch_path={schema}"}).render_as_string(hide_password=False)


@contextmanager
def _postgres_schema() -> Iterator[str]:
    """A new schema on the PostgreSQL server (dropped afterwards), as a URL whose search_path is it."""
    schema = f"perf_test_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(POSTGRES_URL)
    try:
        with admin.begin() as conn:
            conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    except sa.exc.OperationalError as exc:
        pytest.fail(f"PostgreSQL is not answering at {POSTGRES_URL}: {exc.orig}")
    try:
        yield _postgres_schema_url(schema)
    finally:
        warehouse_engine(_postgres_schema_url(schema)).dispose()
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The tests marked ``starts_first`` run first. The daemon's test takes about 10 minutes, paced by
    the daemon's 30-second backfill loop: started last, it ran alone for the suite's last 8 minutes;
    started first, the other worker runs the rest meanwhile (and ``--dist worksteal`` moves the tests
    queued behind it to whichever worker is free)."""
    items.sort(key=lambda item: item.get_closest_marker("starts_first") is None)


@pytest.fixture(autouse=True)
def _no_inherited_definitions_state() -> Iterator[None]:
    """Each test starts with no current definitions-state storage. A Dagster instance sets it while
    it is open and puts back the previous one when it closes; an instance a test (or Dagster itself)
    leaves set would be a closed one in the next test, and loading any definitions would fail."""
    from dagster._core.storage.defs_state.base import set_defs_state_storage

    with set_defs_state_storage(None):
        yield


@pytest.fixture(autouse=True)
def _chunk_workers_stopped() -> Iterator[None]:
    """The worker processes a test's backfill started (``warehouse/chunks.py`` keeps them for the
    process's later ranges) are stopped when the test ends."""
    yield
    stop_workers()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def warehouse_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty warehouse: a SQLite file, or a new schema on the PostgreSQL server."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'warehouse.db'}"
    else:
        with _postgres_schema() as url:
            yield url


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A new, empty schema on the PostgreSQL server, for tests of PostgreSQL itself."""
    with _postgres_schema() as url:
        yield url


@pytest.fixture
def instance_database() -> Iterator[sa.URL]:
    """A new, empty database on the PostgreSQL server for a Dagster instance (dropped afterwards)."""
    name = f"dagster_test_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    except sa.exc.OperationalError as exc:
        pytest.fail(f"PostgreSQL is not answering at {POSTGRES_URL}: {exc.orig}")
    try:
        yield sa.engine.make_url(POSTGRES_URL).set(database=name)
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def engine(warehouse_url: str) -> sa.Engine:
    return warehouse_engine(warehouse_url)


@pytest.fixture
def landing(tmp_path: Path) -> Path:
    folder = tmp_path / "landing"
    folder.mkdir()
    return folder


@pytest.fixture
def perf_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """PERF_HOME (and DAGSTER_HOME beneath it) in a temporary folder, for CLI and Dagster runs."""
    home = tmp_path / "perf_home"
    monkeypatch.setenv("PERF_HOME", str(home))
    monkeypatch.delenv("PERF_WAREHOUSE_URL", raising=False)
    monkeypatch.delenv("PERF_LANDING_DIR", raising=False)
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    return home


@pytest.fixture
def chromium() -> str:
    """Debian's chromium (never a browser Playwright downloads): skipped where it is missing, a
    failure in CI (``.ci/run`` installs it)."""
    path = shutil.which("chromium")
    if path is None:
        message = "Chromium is not installed (no chromium on PATH): apt-get install chromium"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path
