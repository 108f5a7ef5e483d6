"""The production deploy files: the instance config loads against a real PostgreSQL server, the Helm
values launch runs on Kubernetes without inline secrets, and the image pins the storage library."""

from __future__ import annotations

import re
import shutil
import tomllib
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path

import pytest
import sqlalchemy as sa
import yaml
from dagster import DagsterInstance, DagsterRunStatus, QueuedRunCoordinator, asset, materialize
from dagster_postgres import PostgresRunStorage

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
SECRET_ENV = {"PERF_WAREHOUSE_URL", "OPENAI_API_KEY", "SLACK_BOT_TOKEN"}


@pytest.fixture
def production_instance(instance_database: sa.URL, tmp_path: Path,
                        monkeypatch: pytest.MonkeyPatch) -> Iterator[DagsterInstance]:
    """deploy/dagster.yaml as DAGSTER_HOME's instance, its DAGSTER_PG_* variables pointing at the new database."""
    shutil.copy(DEPLOY / "dagster.yaml", tmp_path / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
    monkeypatch.setenv("DAGSTER_PG_USERNAME", instance_database.username or "postgres")
    # A trust-auth server ignores the password, but the instance config needs the variable set.
    monkeypatch.setenv("DAGSTER_PG_PASSWORD", instance_database.password or "unused")
    monkeypatch.setenv("DAGSTER_PG_HOST", instance_database.host or "127.0.0.1")
    monkeypatch.setenv("DAGSTER_PG_DB", instance_database.database or "")
    monkeypatch.setenv("DAGSTER_PG_PORT", str(instance_database.port or 5432))
    with DagsterInstance.get() as instance:
        yield instance


@asset(pool="warehouse")
def warehouse_step() -> int:
    return 1


@pytest.mark.postgres
def test_the_production_instance_keeps_runs_in_postgres_and_queues_them(production_instance: DagsterInstance) -> None:
    assert isinstance(production_instance.run_storage, PostgresRunStorage)
    assert isinstance(production_instance.run_coordinator, QueuedRunCoordinator)
    concurrency = production_instance.get_concurrency_config()
    run_queue = concurrency.run_queue_config
    assert run_queue is not None
    assert run_queue.max_concurrent_runs == 4
    assert [(limit["key"], limit.get("value"), limit["limit"]) for limit in run_queue.tag_concurrency_limits] == [
        ("dagster/backfill", None, 2), ("perf_pipeline/serial", "ingest", 1)]
    assert concurrency.pool_config.default_pool_limit == 2
    assert production_instance.run_retries_enabled and production_instance.run_retries_max_retries == 2
    assert production_instance.run_monitoring_enabled

    # A step of the `warehouse` pool runs on this instance: its events are written (with a NOTIFY
    # that only the psycopg2 driver sends), the run is read back from PostgreSQL, and the pool was
    # given the default limit in the database.
    result = materialize([warehouse_step], instance=production_instance)
    assert result.success
    run = production_instance.get_run_by_id(result.run_id)
    assert run is not None and run.status == DagsterRunStatus.SUCCESS
    assert production_instance.event_log_storage.get_concurrency_info("warehouse").slot_count == 2


def _scalars(node: object, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], object]]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _scalars(value, (*path, str(key)))
    elif isinstance(node, list):
        for item in node:
            yield from _scalars(item, path)
    else:
        yield path, node


def _env_entries(node: object) -> Iterator[dict]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "env" and isinstance(value, list):
                yield from value
            else:
                yield from _env_entries(value)
    elif isinstance(node, list):
        for item in node:
            yield from _env_entries(item)


def test_the_helm_values_launch_a_pod_per_run_with_secrets_from_kubernetes() -> None:
    values = yaml.safe_load((DEPLOY / "values.yaml").read_text())
    assert values["runLauncher"]["type"] == "K8sRunLauncher"
    assert values["postgresql"]["enabled"] is False
    instance = yaml.safe_load((DEPLOY / "dagster.yaml").read_text())
    assert values["postgresql"]["postgresqlScheme"] == instance["storage"]["postgres"]["postgres_db"]["scheme"]
    assert values["dagsterDaemon"]["enabled"] is True
    assert values["dagsterDaemon"]["runCoordinator"]["type"] == "QueuedRunCoordinator"
    assert values["concurrency"]["pools"]["defaultLimit"] == 2

    # The instance password comes from a secret made with kubectl, never from a value.
    assert values["generatePostgresqlPasswordSecret"] is False
    assert "postgresqlPassword" not in values["postgresql"]

    # The pipeline's secrets come from a Kubernetes secret, never from an env value.
    (deployment,) = values["dagster-user-deployments"]["deployments"]
    assert [secret["name"] for secret in deployment["envSecrets"]] == ["perf-pipeline-env"]
    assert not SECRET_ENV & {entry["name"] for entry in _env_entries(values)}
    for path, value in _scalars(values):
        assert not (re.search(r"(?i)password|token|api_?key", path[-1]) and isinstance(value, str) and value), path
        if isinstance(value, str):
            # A URL with credentials, an OpenAI key, a Slack token.
            assert not re.search(r"://[^/\s:@]+:[^/\s@]+@|\bsk-\w|\bxox[abpr]-", value), path

    # The README's kubectl command makes the secret the values name, with the three keys.
    readme = (DEPLOY / "README.md").read_text()
    assert re.search(r"kubectl .*create secret generic perf-pipeline-env", readme)
    assert all(f"--from-literal={name}=" in readme for name in SECRET_ENV)


def test_the_image_installs_the_storage_and_k8s_libraries_of_this_dagster_release() -> None:
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    dependencies = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    (pinned,) = [dep.split("==")[1] for dep in dependencies if dep.startswith("dagster-postgres==")]

    assert re.findall(r"dagster-postgres==(\S+)", dockerfile) == [pinned]
    assert re.findall(r"dagster-k8s==(\S+)", dockerfile) == [pinned]
    # The installed library is that pin, and it pins the installed dagster.
    assert metadata.version("dagster-postgres") == pinned
    assert f"dagster=={metadata.version('dagster')}" in metadata.requires("dagster-postgres")

    assert re.search(r"^FROM python:3\.11-slim\b", dockerfile, re.MULTILINE)
    # The Helm chart passes `dagster api grpc ...` as the container's args: an ENTRYPOINT would swallow them.
    assert not re.search(r"^ENTRYPOINT", dockerfile, re.MULTILINE)
    for line in re.findall(r"^COPY (?!--from)(.+)$", dockerfile, re.MULTILINE):
        *sources, _target = line.split()
        assert all((ROOT / source).exists() for source in sources), line
