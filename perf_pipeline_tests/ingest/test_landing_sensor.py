"""The landing sensor, ticked with an instance as the daemon ticks it: one ingest run per new content,
nothing for an unchanged folder, an unreadable file logged and retried, never a crash."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from dagster import DagsterInstance, build_sensor_context, instance_for_test, materialize

from perf_pipeline.ingest.assets import ingest_landing_files
from perf_pipeline.ingest.landing import batch_key
from perf_pipeline.ingest.pipeline import file_sha256
from perf_pipeline.ingest.sensors import build_landing_sensor
from perf_pipeline.resources import LandingZoneResource, WarehouseResource
from perf_pipeline_tests.events_factory import task, write_jsonl

SENSOR = build_landing_sensor(minimum_interval_seconds=30)


@pytest.fixture
def instance() -> DagsterInstance:
    with instance_for_test() as instance:
        yield instance


def resources(url: str, landing: Path) -> dict[str, object]:
    return {"warehouse": WarehouseResource(url=url), "landing": LandingZoneResource(path=str(landing))}


def tick(instance: DagsterInstance, url: str, landing: Path, cursor: str | None = None):
    context = build_sensor_context(instance=instance, cursor=cursor, resources=resources(url, landing))
    return SENSOR.evaluate_tick(context)


def test_new_files_start_one_ingest_run_keyed_by_their_content(instance, tmp_path: Path, landing: Path) -> None:
    url = f"sqlite:///{tmp_path / 'w.db'}"
    empty = tick(instance, url, landing)
    assert empty.run_requests == [] and "no new files" in empty.skip_message
    first = write_jsonl(landing / "a.jsonl", [task("t-1")])
    second = write_jsonl(landing / "b.jsonl", [task("t-2")])
    result = tick(instance, url, landing, empty.cursor)
    [request] = result.run_requests
    assert SENSOR.job_name == "ingest_job"
    assert request.run_key == f"landing:{batch_key([file_sha256(first)[0], file_sha256(second)[0]])}"
    assert request.tags["perf_pipeline/new_files"] == "2"
    assert set(json.loads(result.cursor)) == {str(first), str(second)}
    # Until the run has ingested them, every tick asks for the same run, which Dagster launches once.
    assert tick(instance, url, landing, result.cursor).run_requests[0].run_key == request.run_key
    assert materialize([ingest_landing_files], resources=resources(url, landing), instance=instance).success
    after = tick(instance, url, landing, result.cursor)
    assert after.run_requests == [] and "no new files" in after.skip_message and "2 ingested" in after.skip_message
    write_jsonl(second, [task("t-2"), task("t-3")])  # the log grew: new content, a new run
    grown = tick(instance, url, landing, after.cursor)
    [again] = grown.run_requests
    assert again.run_key == f"landing:{batch_key([file_sha256(second)[0]])}"


def test_an_unreadable_file_is_logged_and_tried_again_without_stopping_the_sensor(
        instance, tmp_path: Path, landing: Path, capfd: pytest.CaptureFixture) -> None:
    url = f"sqlite:///{tmp_path / 'w.db'}"
    (landing / "broken.jsonl").symlink_to("/proc/self/mem")  # reading it fails even for root
    alone = tick(instance, url, landing)
    assert alone.run_requests == [] and "1 unreadable, tried again next tick" in alone.skip_message
    readable = write_jsonl(landing / "ok.jsonl", [task("t-1")])
    result = tick(instance, url, landing, alone.cursor)
    [request] = result.run_requests  # the readable file is not held back
    assert request.run_key == f"landing:{batch_key([file_sha256(readable)[0]])}"
    logged = capfd.readouterr().err
    assert "broken.jsonl: cannot read" in logged and "trying again on the next tick" in logged
    assert str(landing / "broken.jsonl") not in json.loads(result.cursor)  # so the next tick reads it again
    (landing / "broken.jsonl").unlink()
    fixed = write_jsonl(landing / "broken.jsonl", [task("t-9")])
    [retried] = tick(instance, url, landing, result.cursor).run_requests
    assert retried.run_key == f"landing:{batch_key([file_sha256(readable)[0], file_sha256(fixed)[0]])}"


def test_a_missing_landing_folder_is_a_skip_that_names_it(instance, tmp_path: Path) -> None:
    result = tick(instance, f"sqlite:///{tmp_path / 'w.db'}", tmp_path / "nowhere")
    assert result.run_requests == []
    assert f"landing folder {tmp_path / 'nowhere'} does not exist" in result.skip_message


def test_the_cursor_spares_hashing_unchanged_files(instance, tmp_path: Path, landing: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"sqlite:///{tmp_path / 'w.db'}"
    write_jsonl(landing / "a.jsonl", [task("t-1")])
    first = tick(instance, url, landing)
    hashed: list[Path] = []
    from perf_pipeline.ingest import landing as landing_module

    real = landing_module.file_sha256
    monkeypatch.setattr(landing_module, "file_sha256", lambda path: hashed.append(path) or real(path))
    tick(instance, url, landing, first.cursor)
    assert hashed == []
    write_jsonl(landing / "b.jsonl", [task("t-2")])
    tick(instance, url, landing, first.cursor)
    assert hashed == [landing / "b.jsonl"]
