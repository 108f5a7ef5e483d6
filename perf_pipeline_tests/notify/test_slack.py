"""The Slack sender against the Slack Web API stand-in, through the real ``slack_sdk`` client and its retries."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from perf_pipeline.notify import blocks
from perf_pipeline.notify.errors import DeliveryError
from perf_pipeline.notify.slack import SlackMessage, SlackSender
from perf_pipeline_tests.fakes.slack_server import FakeSlackServer

TOKEN = "xoxb-1234-secret-token"
CHANNEL = "C0ALERTS"
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4


@pytest.fixture
def slack() -> Iterator[FakeSlackServer]:
    server = FakeSlackServer.start(token=TOKEN, channels=(CHANNEL,))
    yield server
    server.close()


@pytest.fixture
def sender(slack: FakeSlackServer) -> SlackSender:
    return SlackSender(TOKEN, base_url=slack.url, timeout=5)


def message(key: str = "alert-1|slack:C0ALERTS", channel: str = CHANNEL,
            files: tuple[Path | str, ...] = ()) -> SlackMessage:
    body = [blocks.header("Success rate fell"), blocks.section("*agent-a*: 92% → 71% over 7 days")]
    return SlackMessage(channel, blocks.slack_text(body), body, key, files)


def test_a_message_is_posted_with_its_blocks_and_idempotency_key(slack: FakeSlackServer, sender: SlackSender) -> None:
    ts = sender.send(message())

    [posted] = slack.messages(CHANNEL)
    assert posted["ts"] == ts
    assert posted["blocks"] == message().blocks
    assert posted["text"] == "Success rate fell\n*agent-a*: 92% → 71% over 7 days"
    assert posted["metadata"] == {"event_type": "perf_pipeline_notification",
                                  "event_payload": {"idempotency_key": "alert-1|slack:C0ALERTS"}}


def test_charts_upload_in_three_steps_into_the_message_thread(slack: FakeSlackServer, sender: SlackSender,
                                                              tmp_path: Path) -> None:
    charts = (tmp_path / "success_rate.png", tmp_path / "cost.png")
    for index, chart in enumerate(charts):
        chart.write_bytes(PNG + bytes([index]))

    ts = sender.send(message(files=tuple(str(chart) for chart in charts)))  # as read back from a JSON payload

    assert [r.method for r in slack.requests] == [
        "chat.postMessage", "files.getUploadURLExternal", "files.getUploadURLExternal",
        "/upload/F000001", "/upload/F000002", "files.completeUploadExternal"]
    assert [(u.title, u.data, u.channel, u.thread_ts) for u in slack.uploads] == [
        ("success_rate.png", PNG + b"\x00", CHANNEL, ts), ("cost.png", PNG + b"\x01", CHANNEL, ts)]


def test_a_rate_limit_is_waited_out_by_the_sdk_and_the_message_posted_once(slack: FakeSlackServer,
                                                                           sender: SlackSender) -> None:
    slack.fail_next(status=429, retry_after=1)
    started = time.monotonic()

    sender.send(message())

    assert time.monotonic() - started >= 1.0
    assert [r.status for r in slack.calls("chat.postMessage")] == [429, 200]
    assert len(slack.messages(CHANNEL)) == 1


def test_a_rate_limit_outlasting_the_retries_is_retryable_after_the_servers_delay(slack: FakeSlackServer) -> None:
    slack.fail_next(status=429, retry_after=7)
    impatient = SlackSender(TOKEN, base_url=slack.url, rate_limit_retries=0)

    with pytest.raises(DeliveryError) as caught:
        impatient.send(message())

    assert (caught.value.retryable, caught.value.retry_after, caught.value.configuration) == (True, 7.0, False)
    assert slack.messages() == []


def test_a_server_error_is_retryable_and_not_ambiguous(slack: FakeSlackServer, sender: SlackSender) -> None:
    slack.fail_next(status=500)

    with pytest.raises(DeliveryError, match="HTTP 500") as caught:
        sender.send(message())

    assert (caught.value.retryable, caught.value.ambiguous, caught.value.configuration) == (True, False, False)
    assert slack.messages() == []


def test_an_invalid_token_is_a_configuration_error_that_does_not_reveal_the_token(slack: FakeSlackServer) -> None:
    wrong_token = "xoxb-9999-leaked-if-shown"

    with pytest.raises(DeliveryError, match="invalid_auth") as caught:
        SlackSender(wrong_token, base_url=slack.url).send(message())

    assert caught.value.configuration and not caught.value.retryable
    assert wrong_token not in str(caught.value) and TOKEN not in str(caught.value)
    assert CHANNEL in str(caught.value)


def test_an_unknown_channel_is_a_configuration_error_naming_the_channel(sender: SlackSender) -> None:
    with pytest.raises(DeliveryError, match="channel_not_found") as caught:
        sender.send(message(channel="C0NOWHERE"))

    assert caught.value.configuration
    assert "C0NOWHERE" in str(caught.value)


def test_a_missing_channel_fails_as_configuration_before_calling_slack(slack: FakeSlackServer,
                                                                       sender: SlackSender) -> None:
    with pytest.raises(DeliveryError) as caught:
        sender.send(message(channel=" "))

    assert caught.value.configuration
    assert slack.requests == []


def test_a_message_slack_refuses_counts_as_an_attempt(sender: SlackSender) -> None:
    too_many = [blocks.section(f"line {i}") for i in range(60)]
    refused = SlackMessage(CHANNEL, "too many", too_many, "key-1")

    with pytest.raises(DeliveryError, match="invalid_blocks") as caught:
        sender.send(refused)
    assert caught.value.retryable and not caught.value.configuration

    assert sender.send(SlackMessage(CHANNEL, "fitted", blocks.fit(too_many, "… {n} more"), "key-1"))


def test_a_lost_response_is_ambiguous_and_the_message_is_found_by_its_key(slack: FakeSlackServer,
                                                                          sender: SlackSender) -> None:
    slack.drop_response_next()

    with pytest.raises(DeliveryError) as caught:
        sender.send(message(key="alert-7|slack:C0ALERTS"))

    assert caught.value.ambiguous and caught.value.retryable
    [posted] = slack.messages(CHANNEL)  # the SDK did not post it a second time on its own
    assert sender.already_posted(CHANNEL, "alert-7|slack:C0ALERTS") == posted["ts"]
    assert sender.already_posted(CHANNEL, "alert-8|slack:C0ALERTS") is None
    assert len(slack.messages(CHANNEL)) == 1


def test_already_posted_is_none_when_the_token_may_not_read_history() -> None:
    server = FakeSlackServer.start(token=TOKEN, channels=(CHANNEL,), history_readable=False)
    try:
        sender = SlackSender(TOKEN, base_url=server.url)
        sender.send(message(key="k"))
        assert sender.already_posted(CHANNEL, "k") is None
    finally:
        server.close()


def test_charts_that_fail_after_the_post_are_ambiguous_and_can_be_finished(slack: FakeSlackServer,
                                                                           sender: SlackSender,
                                                                           tmp_path: Path) -> None:
    chart = tmp_path / "trend.png"
    chart.write_bytes(PNG)
    slack.fail_next(status=500, method="files.completeUploadExternal")

    with pytest.raises(DeliveryError, match="was posted") as caught:
        sender.send(message(key="k", files=(chart,)))
    assert caught.value.ambiguous and caught.value.retryable
    assert slack.uploads == []

    ts = sender.already_posted(CHANNEL, "k")
    sender.upload_files(CHANNEL, ts, (chart,))
    assert [(u.title, u.thread_ts) for u in slack.uploads] == [("trend.png", ts)]
    assert len(slack.messages()) == 1


def test_no_connection_is_retryable_and_not_ambiguous() -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]

    with pytest.raises(DeliveryError, match="no connection") as caught:
        SlackSender(TOKEN, base_url=f"http://127.0.0.1:{port}/api/", timeout=2).send(message())

    assert (caught.value.retryable, caught.value.ambiguous) == (True, False)
