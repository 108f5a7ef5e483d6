"""The webhook sender against a real receiver on 127.0.0.1: headers, signatures, faults and what they mean."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator

import pytest

from perf_pipeline.notify.errors import DeliveryError
from perf_pipeline.notify.webhook import PAYLOAD_SCHEMA, SIGNATURE_HEADER, WebhookSender, mask_url, sign, verify
from perf_pipeline_tests.fakes.webhook_receiver import FakeWebhookReceiver

SECRET = "whsec-do-not-print"
BODY = json.dumps({"schema": PAYLOAD_SCHEMA, "alert": "success_rate_drop", "state": "firing"}).encode()


@pytest.fixture
def receiver() -> Iterator[FakeWebhookReceiver]:
    server = FakeWebhookReceiver.start()
    yield server
    server.close()


@pytest.fixture
def sender() -> WebhookSender:
    return WebhookSender(SECRET, timeout=5)


def test_a_notification_arrives_signed_with_its_idempotency_key(receiver: FakeWebhookReceiver,
                                                                sender: WebhookSender) -> None:
    assert sender.send(f"{receiver.url}/hooks/perf", BODY, "alert-1|webhook:ops") == 200

    [request] = receiver.requests
    assert request.path == "/hooks/perf" and request.body == BODY
    assert request.headers["idempotency-key"] == "alert-1|webhook:ops"
    assert request.headers["content-type"] == "application/json"
    assert request.headers["user-agent"] == "perf-pipeline"
    assert receiver.verify(SECRET)
    assert not receiver.verify("another-secret")


def test_without_a_secret_no_signature_is_sent(receiver: FakeWebhookReceiver) -> None:
    WebhookSender(None).send(receiver.url, BODY, "k")

    assert SIGNATURE_HEADER.lower() not in receiver.requests[0].headers
    assert not receiver.verify(SECRET)


@pytest.mark.parametrize("status", [500, 503, 408])
def test_server_errors_and_timeouts_are_retryable(receiver: FakeWebhookReceiver, sender: WebhookSender,
                                                  status: int) -> None:
    receiver.fail_next(status)

    with pytest.raises(DeliveryError, match=f"HTTP {status}") as caught:
        sender.send(receiver.url, BODY, "k")

    assert (caught.value.retryable, caught.value.ambiguous, caught.value.configuration) == (True, False, False)
    assert receiver.delivered == {}


def test_a_rate_limit_is_retryable_after_the_receivers_delay(receiver: FakeWebhookReceiver,
                                                            sender: WebhookSender) -> None:
    receiver.fail_next(429, retry_after=30)

    with pytest.raises(DeliveryError, match="429") as caught:
        sender.send(receiver.url, BODY, "k")

    assert caught.value.retryable and caught.value.retry_after == 30.0


def test_a_lost_response_is_ambiguous_and_a_resend_is_delivered_once(receiver: FakeWebhookReceiver,
                                                                     sender: WebhookSender) -> None:
    receiver.drop_response_next()

    with pytest.raises(DeliveryError) as caught:
        sender.send(receiver.url, BODY, "alert-2|webhook:ops")
    assert caught.value.ambiguous and caught.value.retryable

    assert sender.send(receiver.url, BODY, "alert-2|webhook:ops") == 200
    assert len(receiver.requests) == 2
    assert receiver.delivered == {"alert-2|webhook:ops": BODY}


@pytest.mark.parametrize("status", [400, 404, 410])
def test_a_rejection_says_so_and_dead_letters_in_the_end(receiver: FakeWebhookReceiver, sender: WebhookSender,
                                                         status: int) -> None:
    receiver.fail_next(status)

    with pytest.raises(DeliveryError, match=f"rejected the notification with HTTP {status}") as caught:
        sender.send(receiver.url, BODY, "k")

    assert caught.value.retryable and not caught.value.ambiguous and not caught.value.configuration
    assert "dead-lettered" in str(caught.value)


def test_a_redirect_is_not_followed(receiver: FakeWebhookReceiver, sender: WebhookSender) -> None:
    receiver.fail_next(307, location=f"{receiver.url}/elsewhere")

    with pytest.raises(DeliveryError, match="redirects are not followed"):
        sender.send(f"{receiver.url}/hook", BODY, "k")

    assert [r.path for r in receiver.requests] == ["/hook"]


def test_errors_name_the_receiver_without_the_secrets_in_its_url(receiver: FakeWebhookReceiver,
                                                                  sender: WebhookSender) -> None:
    port = receiver.url.rsplit(":", 1)[1]
    url = f"http://hookuser:pa55word@127.0.0.1:{port}/services/T0SECRETPATH?token=tok-s3cr3t"
    receiver.fail_next(502)

    with pytest.raises(DeliveryError) as caught:
        sender.send(url, BODY, "k")

    message = str(caught.value)
    assert f"http://127.0.0.1:{port}/…" in message
    for secret in ("tok-s3cr3t", "T0SECRETPATH", "pa55word", "hookuser", SECRET):
        assert secret not in message
    assert "\n" not in message


def test_no_connection_is_retryable_and_not_ambiguous(sender: WebhookSender) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]

    with pytest.raises(DeliveryError, match="before the request was sent") as caught:
        sender.send(f"http://127.0.0.1:{port}/hook?token=tok-s3cr3t", BODY, "k")

    assert (caught.value.retryable, caught.value.ambiguous) == (True, False)
    assert "tok-s3cr3t" not in str(caught.value)
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


@pytest.mark.parametrize("url", ["", "hooks.example.com/perf", "ftp://example.com/x", "http://[::1/x",
                                 "https://example.com:99999/x"])
def test_a_missing_or_malformed_url_is_a_configuration_error(sender: WebhookSender, url: str) -> None:
    with pytest.raises(DeliveryError, match="fix the webhook configuration") as caught:
        sender.send(url, BODY, "k")

    assert caught.value.configuration and not caught.value.retryable


@pytest.mark.parametrize(("url", "masked"), [
    ("https://hooks.slack.com/services/T0/B0/XXXX", "https://hooks.slack.com/…"),
    ("https://user:pw@example.com:8443/path?secret=1#frag", "https://example.com:8443/…"),
    ("http://[2001:db8::1]:9000/hook", "http://[2001:db8::1]:9000/…"),
    ("https://example.com", "https://example.com/…"),
    ("not a url", "<unparseable URL>"),
    ("http://example.com:port/x", "<unparseable URL>"),
])
def test_mask_url_keeps_scheme_host_and_port_only(url: str, masked: str) -> None:
    assert mask_url(url) == masked


def test_verify_accepts_only_the_exact_body_and_secret() -> None:
    header = sign(SECRET, BODY)

    assert header.startswith("sha256=") and verify(SECRET, BODY, header)
    assert not verify(SECRET, BODY + b" ", header)
    assert not verify("other", BODY, header)
    assert not verify(SECRET, BODY, None)
    assert not verify(SECRET, BODY, "sha256=é")
