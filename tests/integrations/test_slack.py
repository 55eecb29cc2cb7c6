"""The Slack adapter against the local Slack server: rate limits, no double posts, error codes."""

from __future__ import annotations

import time
from typing import Any

import pytest

from bench.fake_slack import FakeSlack
from orchestrator.errors import TransientIntegrationError
from orchestrator.integrations.slack import METADATA_EVENT_TYPE, SlackClient, SlackOperatorError

CHANNEL = "C0APPROVAL"


def client(fake: FakeSlack, *, timeout: float = 2.0) -> SlackClient:
    """A client on the local server with short back-offs."""
    return SlackClient(token=fake.token, base_url=fake.base_url, timeout=timeout, backoff_seconds=0.05)  # type: ignore[attr-defined]


def test_post_carries_key_in_metadata(slack: FakeSlack) -> None:
    """Every post carries our idempotency key in its message metadata and resolves #names to ids."""
    posted = client(slack).post(channel="#microapp-approvals", text="hi", blocks=[], key="k-1")
    assert posted.channel_id == CHANNEL and not posted.found
    [message] = slack.messages(CHANNEL)
    assert message["metadata"] == {"event_type": METADATA_EVENT_TYPE, "event_payload": {"key": "k-1"}}
    assert slack.calls("chat.postMessage")[0]["channel"] == CHANNEL


def test_rate_limit_waits_for_retry_after(slack: FakeSlack) -> None:
    """A 429 is retried by slack-sdk after its Retry-After, and the message is posted once."""
    slack.fail("chat.postMessage", retry_after=1)
    started = time.monotonic()
    client(slack).post(channel=CHANNEL, text="hi", blocks=[], key="k-429")
    assert time.monotonic() - started >= 1.0
    assert [r.status for r in slack.requests if r.method == "chat.postMessage"] == [429, 200]
    assert len(slack.messages(CHANNEL)) == 1


@pytest.mark.parametrize(
    "fault",
    [
        {"status": 500, "after_effect": True},  # Slack posted, then answered 500
        {"delay": 1.5, "after_effect": True},  # Slack posted, the answer came after our timeout
    ],
    ids=["5xx-after-post", "timeout-after-post"],
)
def test_retry_after_lost_answer_does_not_post_twice(slack: FakeSlack, fault: dict[str, Any]) -> None:
    """A retry after a 5xx or a timeout finds the first post by its metadata key instead of posting again."""
    slack.fail("chat.postMessage", **fault)
    posted = client(slack, timeout=0.7).post(channel=CHANNEL, text="once", blocks=[], key="k-once")
    assert posted.found
    assert len(slack.messages(CHANNEL)) == 1
    assert slack.messages(CHANNEL)[0]["ts"] == posted.ts
    history = slack.calls("conversations.history")
    assert history and history[0]["include_all_metadata"] in ("1", "true", True)


def test_retry_after_5xx_without_effect_posts_once(slack: FakeSlack) -> None:
    """A 5xx before anything was posted is retried (after checking) and posts exactly one message."""
    slack.fail("chat.postMessage", status=503)
    posted = client(slack).post(channel=CHANNEL, text="x", blocks=[], key="k-503")
    assert not posted.found
    assert len(slack.calls("chat.postMessage")) == 2
    assert len(slack.messages(CHANNEL)) == 1


def test_retries_are_bounded(slack: FakeSlack) -> None:
    """When Slack keeps failing, the adapter gives up with a transient error after its attempts."""
    slack.fail("chat.postMessage", times=5, status=500)
    with pytest.raises(TransientIntegrationError):
        client(slack).post(channel=CHANNEL, text="x", blocks=[], key="k-down")
    assert len(slack.calls("chat.postMessage")) == 3
    assert slack.messages(CHANNEL) == []


@pytest.mark.parametrize("code", ["channel_not_found", "not_in_channel"])
def test_operator_errors_are_not_retried(slack: FakeSlack, code: str) -> None:
    """channel_not_found / not_in_channel become a clear operator error after one call, no retry loop."""
    slack.add_channel("private-ops", "C0PRIVATE0", member=code != "not_in_channel")
    target = "C0NOWHERE0" if code == "channel_not_found" else "C0PRIVATE0"
    with pytest.raises(SlackOperatorError) as raised:
        client(slack).post(channel=target, text="x", blocks=[], key=f"k-{code}")
    assert raised.value.error_code == code
    assert code in raised.value.message and ("invite" in raised.value.message or "policy" in raised.value.message)
    assert len(slack.calls("chat.postMessage")) == 1


def test_unknown_channel_name_is_an_operator_error(slack: FakeSlack) -> None:
    """A #name nobody knows fails before posting, naming the channel."""
    with pytest.raises(SlackOperatorError, match="#no-such-channel"):
        client(slack).post(channel="#no-such-channel", text="x", blocks=[], key="k")
    assert slack.calls("chat.postMessage") == []


def test_lookup_user_by_email(slack: FakeSlack) -> None:
    """users.lookupByEmail gives the id, or None for an email nobody has."""
    c = client(slack)
    assert c.lookup_user(email="approver@example.com") == "U0APPROV01"
    assert c.lookup_user(email="nobody@example.com") is None
