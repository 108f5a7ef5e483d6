"""Dagster resources: the warehouse (the only thing that opens database connections) and the landing zone."""

from __future__ import annotations

from pathlib import Path

from dagster import ConfigurableResource
from pydantic import Field
from sqlalchemy.engine import Engine

from perf_pipeline import settings
from perf_pipeline.warehouse.db import warehouse_engine


class WarehouseResource(ConfigurableResource):
    """The SQL warehouse. ``url`` comes from ``EnvVar("PERF_WAREHOUSE_URL")`` when that is set;
    otherwise it is the SQLite file under ``PERF_HOME``."""

    url: str | None = Field(default=None, description="SQLAlchemy URL of the warehouse.")

    def resolved_url(self) -> str:
        return self.url or settings.warehouse_url()

    def engine(self) -> Engine:
        """A shared engine whose schema exists (tables created, views refreshed, once per process)."""
        return warehouse_engine(self.resolved_url())


class LandingZoneResource(ConfigurableResource):
    """The folder agents write their task logs to, and how to read naive timestamps."""

    path: str | None = Field(default=None,
                             description="Landing folder; default PERF_LANDING_DIR or $PERF_HOME/landing.")
    default_timezone: str | None = Field(
        default=None, description="IANA zone for timestamps without a UTC offset; unset: such rows are quarantined.")

    def folder(self) -> Path:
        return Path(self.path).resolve() if self.path else settings.landing_dir()

    def timezone(self) -> str | None:
        return self.default_timezone or settings.default_timezone()
