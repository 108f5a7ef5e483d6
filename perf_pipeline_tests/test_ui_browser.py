"""The Dagster UI in headless Chromium, used as a person would: the global asset lineage shows every
group of the project, and one daily partition is materialized from an asset's page."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Locator, Page, expect, sync_playwright

from perf_pipeline.definitions import build_definitions

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = Path(sys.executable).parent
# Without these, Chromium's own background connections (updates, sync, QUIC) hang where the network is
# closed. Playwright gives every launch a fresh profile directory of its own.
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]
VIEWPORT = {"width": 1600, "height": 1000}
DAILY_ASSET = "task_events"
STARTUP_SECONDS = 180
RUN_SECONDS = 180
STOP_SECONDS = 10
SETTLE_SECONDS = 10

RUN_QUERY = """
query Run($runId: String!) {
  runsOrError(filter: {runIds: [$runId]}) {
    ... on Runs { results {
      status
      tags { key value }
      assetMaterializations { assetKey { path } partition }
      eventConnection { events { ... on MessageEvent { level message } } }
    } }
  }
}"""


@pytest.mark.slow
@pytest.mark.browser
def test_the_asset_graph_shows_every_group_and_a_daily_partition_materializes(tmp_path: Path) -> None:
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.fail("Chromium is not installed (no chromium on PATH): apt-get install chromium")
    env = _environment(tmp_path)
    day = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=2)
    _perf_pipeline("generate", "--out", env["PERF_LANDING_DIR"], "--start", day.isoformat(), "--days", "2",
                   "--agents", "2", "--tasks-per-day", "10", env=env)
    _perf_pipeline("run", env=env)
    groups = sorted({node.group_name for node in build_definitions().resolve_asset_graph().asset_nodes})
    screenshot = Path(os.environ.get("PERF_UI_SCREENSHOT") or tmp_path / "asset-graph.png")

    with _dagster_dev(env, tmp_path / "dagster-dev.log") as url, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_FLAGS)
        try:
            page = browser.new_page(viewport=VIEWPORT)
            _show_the_asset_graph(page, url, groups, screenshot)
            run_id = _launch_one_partition(page, url, DAILY_ASSET, day.isoformat())
            run = _wait_for_run(url, run_id)
            errors = [event["message"] for event in run["eventConnection"]["events"] if event.get("level") == "ERROR"]
            assert run["status"] == "SUCCESS", f"run {run_id} ended {run['status']}: {errors}"
            expect(page.get_by_text("Success", exact=True)).to_be_visible()
        finally:
            browser.close()

    assert {"key": "dagster/partition", "value": day.isoformat()} in run["tags"]
    assert {"assetKey": {"path": [DAILY_ASSET]}, "partition": day.isoformat()} in run["assetMaterializations"]
    assert screenshot.stat().st_size > 0


def _environment(tmp_path: Path) -> dict[str, str]:
    """This machine's environment without the project's or Dagster's own settings (nor a judge key,
    which would send tasks to a paid API), pointed at a warehouse, landing folder and instance in tmp_path."""
    env = {name: value for name, value in os.environ.items()
           if not name.startswith(("PERF_", "DAGSTER_", "OPENAI_"))}
    dagster_home = tmp_path / "dagster"
    dagster_home.mkdir()
    shutil.copyfile(ROOT / "dagster.yaml", dagster_home / "dagster.yaml")
    landing = tmp_path / "landing"
    landing.mkdir()
    return {**env, "DAGSTER_HOME": str(dagster_home), "PERF_HOME": str(tmp_path / "perf"),
            "PERF_WAREHOUSE_URL": f"sqlite:///{tmp_path / 'warehouse.db'}", "PERF_LANDING_DIR": str(landing)}


def _perf_pipeline(*args: str, env: dict[str, str]) -> None:
    done = subprocess.run([str(SCRIPTS / "perf-pipeline"), *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, f"perf-pipeline {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"


@contextmanager
def _dagster_dev(env: dict[str, str], log: Path) -> Iterator[str]:
    """`dagster dev -w workspace.yaml` on a free local port, until its code location has loaded; yields its URL.
    It runs in a session of its own so that its webserver, daemon, code servers and runs stop with it."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    with log.open("wb") as output:
        server = subprocess.Popen([str(SCRIPTS / "dagster"), "dev", "-w", "workspace.yaml", "-p", str(port),
                                   "-h", "127.0.0.1"], cwd=ROOT, env=env, stdout=output, stderr=subprocess.STDOUT,
                                  start_new_session=True)
    try:
        _wait_until_loaded(url, server, log)
        # The UI's one-time invitation to join the community would cover the page.
        _graphql(url, "mutation { setNuxSeen }")
        yield url
    finally:
        _stop_group(server)


def _stop_group(leader: subprocess.Popen) -> None:
    """SIGTERM to the whole process group, whose clean shutdown takes a few seconds, then SIGKILL to whatever
    is left of it (all of it when the shutdown hangs, as it does when SIGINT was ignored where it started)."""
    with suppress(ProcessLookupError):
        os.killpg(leader.pid, signal.SIGTERM)
    with suppress(subprocess.TimeoutExpired):
        leader.wait(timeout=STOP_SECONDS)
    with suppress(ProcessLookupError):
        os.killpg(leader.pid, signal.SIGKILL)
    leader.wait()


def _wait_until_loaded(url: str, server: subprocess.Popen, log: Path) -> None:
    query = """{ workspaceOrError { ... on Workspace { locationEntries {
        name loadStatus locationOrLoadError { __typename ... on PythonError { message } } } } } }"""
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise AssertionError(f"dagster dev exited with {server.returncode}:\n{_tail(log)}")
        with suppress(OSError):
            entries = _graphql(url, query)["workspaceOrError"]["locationEntries"]
            for entry in entries:
                error = entry["locationOrLoadError"] or {}
                assert error.get("__typename") != "PythonError", f"{entry['name']} failed to load: {error['message']}"
            if entries and all(entry["loadStatus"] == "LOADED" for entry in entries):
                return
        time.sleep(1)
    raise AssertionError(f"dagster dev did not load the code location within {STARTUP_SECONDS} s:\n{_tail(log)}")


def _show_the_asset_graph(page: Page, url: str, groups: list[str], screenshot: Path) -> None:
    """The global asset lineage, every group expanded and laid out top to bottom (it is then wider than
    tall, like the page), fitted to the page with the navigation and the asset list hidden."""
    page.goto(f"{url}/asset-groups")
    expect(page.get_by_text("Global asset lineage", exact=True)).to_be_visible()
    page.get_by_role("button", name="Hide navigation").click()
    page.get_by_role("button", name="panel_show_right", exact=True).click()  # hides the asset list
    # The graph's own settings button: the page's navigation has one named settings too.
    page.locator("#zoom-slider-container").get_by_role("button", name="settings").click()
    page.get_by_role("menuitem", name="Expand all groups").click()
    page.get_by_role("menuitem", name="Change graph to vertical orientation").click()
    expect(page.get_by_role("menuitem", name="Change graph to horizontal orientation")).to_be_visible()
    page.keyboard.press("Escape")
    expect(page.get_by_role("menu")).to_be_hidden()
    graph = page.locator("svg:has(foreignObject)")  # the graph's nodes are HTML inside its SVG
    graph.dispatch_event("dblclick")  # a double click on the graph's background fits it to the page
    _wait_until_still(graph)
    for group in groups:
        expect(graph.get_by_text(group, exact=True).first).to_be_visible()  # "alerts" is also an asset
    expect(graph.get_by_text(DAILY_ASSET, exact=True)).to_be_visible()
    screenshot.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=screenshot)


def _wait_until_still(element: Locator) -> None:
    """Until the element is where it was a moment before: the graph glides to its new place and size."""
    deadline = time.monotonic() + SETTLE_SECONDS
    previous, box = None, element.bounding_box()
    while box != previous:
        assert time.monotonic() < deadline, f"the asset graph was still moving after {SETTLE_SECONDS} s"
        element.page.wait_for_timeout(250)
        previous, box = box, element.bounding_box()


def _launch_one_partition(page: Page, url: str, asset: str, partition: str) -> str:
    """Materialize one partition of ``asset`` from its page; returns the run's id, from the run page it opens."""
    page.goto(f"{url}/assets/{asset}")
    page.get_by_role("button", name="Materialize…").click()
    # task_events and task_steps are written by one op: the UI says both will be materialized.
    page.get_by_role("dialog").filter(has_text="Additional assets will be materialized").get_by_role(
        "button", name="Confirm").click()
    launch = page.get_by_role("dialog").filter(has_text="Launch runs to materialize")
    partitions = launch.get_by_role("textbox")
    partitions.fill(partition)
    partitions.press("Enter")
    expect(launch.get_by_text("1 partition", exact=True)).to_be_visible()
    launch.get_by_role("button", name="Launch 1 run").click()
    page.get_by_role("link", name="View", exact=True).click()  # in the "Launched run" notice
    expect(page).to_have_url(re.compile(r"/runs/[0-9a-f-]{36}$"))
    return page.url.rsplit("/", 1)[-1]


def _wait_for_run(url: str, run_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + RUN_SECONDS
    while time.monotonic() < deadline:
        (run,) = _graphql(url, RUN_QUERY, {"runId": run_id})["runsOrError"]["results"]
        if run["status"] in {"SUCCESS", "FAILURE", "CANCELED"}:
            return run
        time.sleep(1)
    raise AssertionError(f"run {run_id} did not finish within {RUN_SECONDS} s (last status {run['status']})")


def _graphql(url: str, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
    request = urllib.request.Request(f"{url}/graphql", data=json.dumps({"query": query, "variables": variables or {}})
                                     .encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        body = json.load(response)
    assert "errors" not in body, body["errors"]
    return body["data"]


def _tail(log: Path, lines: int = 40) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
