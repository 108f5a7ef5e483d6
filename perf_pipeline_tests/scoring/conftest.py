"""Fixtures of the scoring tests: the OpenAI-compatible test server."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from perf_pipeline_tests.fakes.openai_server import FakeOpenAIServer


@pytest.fixture
def judge_server() -> Iterator[FakeOpenAIServer]:
    server = FakeOpenAIServer.start()
    try:
        yield server
    finally:
        server.close()
