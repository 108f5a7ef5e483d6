"""Where perf_pipeline keeps its files, resolved from the environment at call time.

Read lazily (never at import) so that a test or the CLI can set the environment first.

| variable                | default                              |
|-------------------------|--------------------------------------|
| ``PERF_HOME``           | ``./.perf``                          |
| ``PERF_WAREHOUSE_URL``  | ``sqlite:///$PERF_HOME/warehouse.db`` |
| ``PERF_LANDING_DIR``    | ``$PERF_HOME/landing``               |
| ``PERF_DEFAULT_TIMEZONE`` | unset: timestamps without a UTC offset are quarantined |
"""

from __future__ import annotations

import os
from pathlib import Path


def usable_cpus() -> int:
    """The CPUs this process may run on (its affinity, which containers and taskset narrow)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def perf_home() -> Path:
    return Path(os.environ.get("PERF_HOME") or ".perf").resolve()


def warehouse_url() -> str:
    return os.environ.get("PERF_WAREHOUSE_URL") or f"sqlite:///{perf_home() / 'warehouse.db'}"


def landing_dir() -> Path:
    configured = os.environ.get("PERF_LANDING_DIR")
    return Path(configured).resolve() if configured else perf_home() / "landing"


def default_timezone() -> str | None:
    return os.environ.get("PERF_DEFAULT_TIMEZONE") or None


def redact_url(url: str) -> str:
    """The URL with its password masked, for messages and metadata."""
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)
