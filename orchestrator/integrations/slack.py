"""The Slack Web API adapter: one `WebClient`, our idempotency key in message metadata, our errors.

Slack has no idempotency key, so a blind retry of `chat.postMessage` after a timeout or a 5xx can
post twice. This adapter therefore:

- lets slack-sdk retry only 429s (`RateLimitErrorRetryHandler`, which honours `Retry-After`); the
  default connection-error handler is left out on purpose, because a reset after Slack accepted the
  post would repeat it;
- retries the rest itself with tenacity (bounded), and before every repeat looks for our key in the
  channel (`conversations.history` / `conversations.replies` with `include_all_metadata`);
- maps `ok: false` codes to our errors: operator problems (`channel_not_found`, `not_in_channel`,
  bad token, missing scope) are permanent `SlackOperatorError`s, never retried; Slack-side trouble
  is a `TransientIntegrationError`.
"""

from __future__ import annotations

import http.client
import socket
import urllib.error
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_handlers import RateLimitErrorRetryHandler
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from orchestrator.errors import IntegrationError, TransientIntegrationError
from orchestrator.logs import get_logger

log = get_logger(__name__)

METADATA_EVENT_TYPE = "orchestrator_message"
T = TypeVar("T")

# ok:false codes that a retry cannot fix: an operator has to act. The text says what to do.
OPERATOR_ERRORS: dict[str, str] = {
    "channel_not_found": "the channel does not exist or the bot cannot see it; check the policy's slack_channel",
    "not_in_channel": "the bot is not a member of the channel; invite it with /invite",
    "is_archived": "the channel is archived; point the policy at a live channel",
    "invalid_auth": "SLACK_BOT_TOKEN is not valid",
    "not_authed": "SLACK_BOT_TOKEN is missing",
    "account_inactive": "the bot's token belongs to a deactivated app or user",
    "token_revoked": "SLACK_BOT_TOKEN was revoked",
    "missing_scope": "the bot token lacks a scope this call needs",
    "users_not_found": "no Slack user has this email",
    "user_not_found": "no such Slack user",
    "invalid_blocks": "Slack refused the message blocks",
    "msg_too_long": "the message is too long",
    "expired_trigger_id": "the click is older than 3 s; the modal could not be opened",
    "invalid_trigger_id": "the trigger id is not valid",
    "message_not_found": "the message to update no longer exists",
    "cant_update_message": "the bot may not edit this message",
}
TRANSIENT_ERRORS = frozenset(
    {"ratelimited", "internal_error", "fatal_error", "service_unavailable", "request_timeout", "team_added_to_org"}
)
_NETWORK_ERRORS = (urllib.error.URLError, TimeoutError, socket.timeout, ConnectionError, http.client.HTTPException)


class SlackOperatorError(IntegrationError):
    """Slack refused a call for a reason an operator must fix; retrying would only loop."""

    code = "slack_error"

    def __init__(self, message: str, *, error_code: str) -> None:
        super().__init__(message, detail={"slack_error": error_code, "message": message})
        self.error_code = error_code


@dataclass(frozen=True)
class Posted:
    """Where a message ended up; `found` when a retry found the earlier post instead of posting."""

    channel_id: str
    ts: str
    found: bool = False


def translate(exc: Exception, method: str) -> IntegrationError:
    """Our error for a failed Slack call: permanent for operator problems, transient otherwise."""
    if isinstance(exc, SlackApiError):
        status = exc.response.status_code
        data = exc.response.data if isinstance(exc.response.data, dict) else {}
        code = str(data.get("error") or f"http_{status}")
        if status == 429 or status >= 500 or code in TRANSIENT_ERRORS:
            return TransientIntegrationError(f"slack {method}: {code} (HTTP {status})")
        hint = OPERATOR_ERRORS.get(code, "Slack refused the call")
        return SlackOperatorError(f"slack {method} failed: {code}: {hint}", error_code=code)
    if isinstance(exc, _NETWORK_ERRORS):
        return TransientIntegrationError(f"slack {method}: {type(exc).__name__}: {exc}")
    return IntegrationError(f"slack {method}: unexpected {type(exc).__name__}: {exc}")


class SlackClient:
    """The Notifier that talks to Slack (or a Slack-compatible gateway at SLACK_API_URL)."""

    enabled = True

    def __init__(
        self,
        *,
        token: str,
        base_url: str,
        timeout: float = 10.0,
        rate_limit_retries: int = 3,
        attempts: int = 3,
        backoff_seconds: float = 0.5,
    ) -> None:
        # No ConnectionErrorRetryHandler: a reset after Slack accepted a post would post twice.
        self.web = WebClient(
            token=token,
            base_url=base_url,
            timeout=timeout,  # type: ignore[arg-type]  # urllib takes a float
            retry_handlers=[RateLimitErrorRetryHandler(max_retry_count=rate_limit_retries)],
        )
        self.attempts = attempts
        self.backoff_seconds = backoff_seconds
        self._channels: dict[str, str] = {}

    # ------------------------------------------------------------------ plumbing

    def _call(self, method: str, fn: Callable[[], T]) -> T:
        try:
            return fn()
        except Exception as exc:
            raise translate(exc, method) from None

    def _retrying(self) -> Retrying:
        return Retrying(
            stop=stop_after_attempt(self.attempts),
            wait=wait_exponential(multiplier=self.backoff_seconds, max=5),
            retry=retry_if_exception_type(TransientIntegrationError),
            reraise=True,
        )

    # ------------------------------------------------------------------ lookups

    def resolve_channel(self, channel: str) -> str:
        """A channel id for `#name` (cached per client), an IM id for a user id, ids unchanged."""
        if channel.startswith(("U", "W")):
            return self.dm_channel(user_id=channel)
        if not channel.startswith("#"):
            return channel
        name = channel[1:]
        if name not in self._channels:
            cursor = None
            for _ in range(50):  # 50 pages of 1000 channels is far beyond any workspace we serve
                page = self._list_channels(cursor)
                for item in page.get("channels", []):
                    self._channels[item["name"]] = item["id"]
                cursor = (page.get("response_metadata") or {}).get("next_cursor")
                if name in self._channels or not cursor:
                    break
        if name not in self._channels:
            raise SlackOperatorError(
                f"slack: no channel named {channel} is visible to the bot: {OPERATOR_ERRORS['channel_not_found']}",
                error_code="channel_not_found",
            )
        return self._channels[name]

    def _list_channels(self, cursor: str | None) -> Any:
        return self._call(
            "conversations.list",
            lambda: self.web.conversations_list(
                types="public_channel,private_channel", exclude_archived=True, limit=1000, cursor=cursor
            ),
        )

    def _thread_page(self, channel_id: str, thread_ts: str, cursor: str | None) -> Any:
        return self._call(
            "conversations.replies",
            lambda: self.web.conversations_replies(
                channel=channel_id, ts=thread_ts, include_all_metadata=True, limit=200, cursor=cursor
            ),
        )

    def _history_page(self, channel_id: str, oldest: str | None, cursor: str | None) -> Any:
        return self._call(
            "conversations.history",
            lambda: self.web.conversations_history(
                channel=channel_id, include_all_metadata=True, oldest=oldest, limit=200, cursor=cursor
            ),
        )

    def dm_channel(self, *, user_id: str) -> str:
        """The id of the bot's direct-message channel with a user."""
        resp: Any = self._call("conversations.open", lambda: self.web.conversations_open(users=user_id))
        return str(resp["channel"]["id"])

    def lookup_user(self, *, email: str) -> str | None:
        """The Slack user id for an email, or None when nobody in the workspace has it."""
        try:
            resp: Any = self._call("users.lookupByEmail", lambda: self.web.users_lookupByEmail(email=email))
        except SlackOperatorError as exc:
            if exc.error_code == "users_not_found":
                return None
            raise
        return str(resp["user"]["id"])

    def find_by_key(
        self, *, channel_id: str, key: str, thread_ts: str | None = None, since: datetime | None
    ) -> str | None:
        """The ts of the message that carries our idempotency key in its metadata, if it was posted."""
        oldest = f"{since.timestamp() - 300:.6f}" if since else None
        cursor = None
        for _ in range(10):
            if thread_ts:
                page = self._thread_page(channel_id, thread_ts, cursor)
            else:
                page = self._history_page(channel_id, oldest, cursor)
            for message in page.get("messages", []):
                meta = message.get("metadata") or {}
                if (
                    meta.get("event_type") == METADATA_EVENT_TYPE
                    and (meta.get("event_payload") or {}).get("key") == key
                ):
                    return str(message["ts"])
            cursor = (page.get("response_metadata") or {}).get("next_cursor")
            if not cursor:
                return None
        return None

    # ------------------------------------------------------------------ messages

    def post(
        self,
        *,
        channel: str,
        text: str,
        blocks: list[dict[str, Any]],
        key: str,
        thread_ts: str | None = None,
        check_first: bool = False,
        since: datetime | None = None,
    ) -> Posted:
        """Post once: a repeat (after a failure, or when `check_first`) first looks for our key."""
        channel_id = self.resolve_channel(channel)
        metadata = {"event_type": METADATA_EVENT_TYPE, "event_payload": {"key": key}}
        for attempt in self._retrying():
            with attempt:
                if check_first or attempt.retry_state.attempt_number > 1:
                    ts = self.find_by_key(channel_id=channel_id, key=key, thread_ts=thread_ts, since=since)
                    if ts:
                        log.info("slack post found, not repeated", key=key, channel=channel_id, ts=ts)
                        return Posted(channel_id, ts, found=True)
                resp: Any = self._call(
                    "chat.postMessage",
                    lambda: self.web.chat_postMessage(
                        channel=channel_id,
                        text=text,
                        blocks=blocks or None,
                        thread_ts=thread_ts,
                        metadata=metadata,
                        unfurl_links=False,
                    ),
                )
                return Posted(str(resp["channel"]), str(resp["ts"]))
        raise AssertionError("unreachable: tenacity reraises")  # pragma: no cover

    def update(self, *, channel_id: str, ts: str, text: str, blocks: list[dict[str, Any]]) -> None:
        """Replace a message's text and blocks (idempotent, so plain retries are safe)."""
        for attempt in self._retrying():
            with attempt:
                self._call(
                    "chat.update", lambda: self.web.chat_update(channel=channel_id, ts=ts, text=text, blocks=blocks)
                )

    def ephemeral(self, *, channel: str, user: str, text: str) -> None:
        """A message only `user` sees; sent once, since a lost one is harmless and a repeat is noise."""
        self._call("chat.postEphemeral", lambda: self.web.chat_postEphemeral(channel=channel, user=user, text=text))

    def open_view(self, *, trigger_id: str, view: dict[str, Any]) -> None:
        """Open a modal; the trigger id is only good for 3 s after the click, so no retry."""
        self._call("views.open", lambda: self.web.views_open(trigger_id=trigger_id, view=view))


_clients: dict[tuple[str, str, float], SlackClient] = {}


def from_settings(*, timeout: float | None = None) -> SlackClient | None:
    """The Slack client configured by SLACK_BOT_TOKEN / SLACK_API_URL (cached), or None without a token."""
    from orchestrator.config import get_settings

    settings = get_settings()
    if settings.slack_bot_token is None:
        return None
    token = settings.slack_bot_token.get_secret_value()
    wait = min(timeout, settings.slack_timeout_seconds) if timeout else settings.slack_timeout_seconds
    cache_key = (token, settings.slack_api_url, wait)
    if cache_key not in _clients:
        _clients[cache_key] = SlackClient(
            token=token,
            base_url=settings.slack_api_url,
            timeout=wait,
            rate_limit_retries=settings.slack_rate_limit_retries,
        )
    return _clients[cache_key]
