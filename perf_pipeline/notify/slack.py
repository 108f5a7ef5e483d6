"""Slack delivery with the official ``slack_sdk``: a message with Block Kit blocks, its charts in the thread.

``chat.postMessage`` takes no idempotency key, so each message carries its key in Slack's message metadata;
after a lost response, :meth:`SlackSender.already_posted` finds the message by that key instead of posting twice.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from http.client import HTTPException
from pathlib import Path
from typing import TypeVar
from urllib.error import HTTPError, URLError

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackRequestError
from slack_sdk.http_retry.builtin_handlers import ConnectionErrorRetryHandler, RateLimitErrorRetryHandler
from slack_sdk.web import SlackResponse

from perf_pipeline.notify.errors import DeliveryError, parse_retry_after

EVENT_TYPE = "perf_pipeline_notification"
HISTORY_LIMIT = 200
T = TypeVar("T")

# Slack error codes that only an operator can fix, with what to tell them.
CONFIGURATION_ERRORS = {
    "invalid_auth": "the bot token is not valid",
    "not_authed": "no bot token was sent",
    "account_inactive": "the bot's account is deactivated",
    "token_revoked": "the bot token was revoked",
    "channel_not_found": "no such channel, or the bot cannot see it",
    "not_in_channel": "the bot must be invited to the channel",
    "is_archived": "the channel is archived",
    "missing_scope": "the Slack app lacks an OAuth scope",
}
_TRANSPORT_ERRORS = (OSError, HTTPException, SlackRequestError)


@dataclass(frozen=True)
class SlackMessage:
    """One message to one channel; ``files`` are PNG charts uploaded into the message's thread."""

    channel: str
    text: str
    blocks: list[dict]
    idempotency_key: str
    files: tuple[Path, ...] = ()

    def __post_init__(self) -> None:
        # Outbox payloads are JSON, so their chart paths arrive as strings.
        object.__setattr__(self, "files", tuple(Path(path) for path in self.files))


class ShortRateLimitRetryHandler(RateLimitErrorRetryHandler):
    """Waits out a 429 inside the call only when Slack asks for at most ``max_wait_s`` seconds; a
    longer wait comes back as a DeliveryError with ``retry_after``, and the outbox schedules the
    retry, so that a sensor tick never sleeps past Dagster's time limit."""

    def __init__(self, max_retry_count: int, max_wait_s: float) -> None:
        super().__init__(max_retry_count=max_retry_count)
        self.max_wait_s = max_wait_s

    def _can_retry(self, *, state, request, response=None, error=None) -> bool:
        if not super()._can_retry(state=state, request=request, response=response, error=error):
            return False
        wait = parse_retry_after(next((v[0] if isinstance(v, list) else v for k, v in response.headers.items()
                                       if k.lower() == "retry-after"), None))
        return wait is None or wait <= self.max_wait_s


class SlackSender:
    """Posts :class:`SlackMessage` s; every failure comes out as a :class:`DeliveryError`."""

    def __init__(self, token: str, base_url: str | None = None, timeout: float = 10.0,
                 rate_limit_retries: int = 3, max_rate_limit_wait_s: float = 5.0) -> None:
        options = {} if base_url is None else {"base_url": base_url}
        self._client = WebClient(token=token, timeout=timeout, **options)
        # The SDK's default handler also repeats a request whose connection broke after it was sent, which posts
        # a message twice when only the response was lost; a URLError comes before the request went out.
        self._client.retry_handlers = [ConnectionErrorRetryHandler(error_types=[URLError]),
                                       ShortRateLimitRetryHandler(rate_limit_retries, max_rate_limit_wait_s)]

    def send(self, message: SlackMessage) -> str:
        """Post the message, then upload its charts into its thread; returns the message's ``ts``.

        If the charts fail, the error is ambiguous (the message is on the channel): look it up with
        :meth:`already_posted` and finish with :meth:`upload_files`.
        """
        _check_destination(message.channel, message.files)
        metadata = {"event_type": EVENT_TYPE, "event_payload": {"idempotency_key": message.idempotency_key}}
        posted = self._call("post to", message.channel, lambda: self._client.chat_postMessage(
            channel=message.channel, text=message.text, blocks=message.blocks, metadata=metadata))
        ts = posted["ts"]
        if message.files:
            try:
                self.upload_files(message.channel, ts, message.files)
            except DeliveryError as exc:
                raise DeliveryError(f"The message to Slack channel {message.channel} was posted (ts {ts}) but its "
                                    f"charts were not: {exc}", retryable=exc.retryable, ambiguous=True,
                                    configuration=exc.configuration, retry_after=exc.retry_after) from exc
        return ts

    def upload_files(self, channel: str, thread_ts: str, files: tuple[Path, ...]) -> None:
        """Upload charts into the thread of the message ``thread_ts`` (files.getUploadURLExternal, the upload,
        files.completeUploadExternal)."""
        _check_destination(channel, files)
        uploads = [{"file": str(path), "title": path.name} for path in files]
        self._call("upload charts to", channel, lambda: self._client.files_upload_v2(
            channel=channel, file_uploads=uploads, thread_ts=thread_ts))

    def already_posted(self, channel: str, idempotency_key: str) -> str | None:
        """The ``ts`` of the message carrying ``idempotency_key`` among the channel's latest 200, or None.

        None too when the token may not read history (missing scope): the caller then posts again, accepting a
        possible duplicate rather than never delivering.
        """
        def read_history() -> SlackResponse | None:
            try:
                return self._client.conversations_history(channel=channel, limit=HISTORY_LIMIT,
                                                          include_all_metadata=True)
            except SlackApiError as exc:
                if _error_code(exc) == "missing_scope":
                    return None
                raise

        history = self._call("read the history of", channel, read_history)
        for item in history.get("messages", []) if history is not None else []:
            metadata = item.get("metadata") or {}
            payload = metadata.get("event_payload") or {}
            if metadata.get("event_type") == EVENT_TYPE and payload.get("idempotency_key") == idempotency_key:
                return item["ts"]
        return None

    def _call(self, action: str, channel: str, call: Callable[[], T]) -> T:
        try:
            return call()
        except SlackApiError as exc:
            raise _api_error(exc, f"{action} Slack channel {channel}") from exc
        except _TRANSPORT_ERRORS as exc:
            raise _transport_error(exc, f"{action} Slack channel {channel}") from exc


def _check_destination(channel: str, files: tuple[Path, ...]) -> None:
    """Fail before anything is sent on what no retry can fix."""
    if not channel.strip():
        raise DeliveryError("Cannot post to Slack: no channel is configured for this notification.",
                            retryable=False, configuration=True)
    missing = [str(path) for path in files if not path.is_file()]
    if missing:
        raise DeliveryError(f"Cannot post to Slack channel {channel}: chart file(s) {', '.join(missing)} do not "
                            "exist.", retryable=True)


def _error_code(exc: SlackApiError) -> str | None:
    data = exc.response.data
    return data.get("error") if isinstance(data, dict) else None


def _api_error(exc: SlackApiError, doing: str) -> DeliveryError:
    response, code = exc.response, _error_code(exc)
    if code in CONFIGURATION_ERRORS:
        needed = f" ({response.get('needed')})" if code == "missing_scope" and response.get("needed") else ""
        return DeliveryError(f"Could not {doing}: {code}, {CONFIGURATION_ERRORS[code]}{needed}; fix the configuration "
                             "and the notification will go out.", retryable=False, configuration=True)
    if response.status_code == 429 or code == "ratelimited":
        retry_after = next((value for name, value in response.headers.items() if name.lower() == "retry-after"), None)
        return DeliveryError(f"Could not {doing}: Slack is still rate limiting after the client's retries.",
                             retryable=True, retry_after=parse_retry_after(retry_after))
    if response.status_code >= 500:
        return DeliveryError(f"Could not {doing}: Slack answered HTTP {response.status_code}.", retryable=True)
    # invalid_blocks, msg_too_long...: retried all the same, the message is dead-lettered after the last attempt.
    return DeliveryError(f"Could not {doing}: Slack refused the request with {code or 'no error code'}.",
                         retryable=True)


def _transport_error(exc: Exception, doing: str) -> DeliveryError:
    if isinstance(exc, HTTPError):  # only the upload step, which the SDK sends with urlopen outside its API calls
        return DeliveryError(f"Could not {doing}: the upload answered HTTP {exc.code}.", retryable=True,
                             retry_after=parse_retry_after(exc.headers.get("Retry-After")))
    if isinstance(exc, URLError):  # urllib wraps only failures of sending: Slack has not seen the request
        return DeliveryError(f"Could not {doing}: no connection to Slack ({exc.reason}).", retryable=True)
    return DeliveryError(f"Could not {doing}: {type(exc).__name__} after the request was sent, so Slack may have "
                         "it.", retryable=True, ambiguous=True)
