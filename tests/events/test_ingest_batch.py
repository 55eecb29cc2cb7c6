"""Webhook deliveries stored many to a statement: the same rows and answers as one at a time."""

from __future__ import annotations

from typing import Any

import pytest

from orchestrator.db import session_scope
from orchestrator.events.models import Event, EventStatus
from orchestrator.events.outbox import NewEvent, _row_values, emit, emit_many
from orchestrator.events.types import EventType
from orchestrator.http.github import _Delivery, _ingest_batch
from tests.events.helpers import HELLO_REPO, catalogue, events, payload


def test_row_values_cover_every_column() -> None:
    """The hand-built row has exactly the table's columns (a new column must get its default there)."""
    row = _row_values(NewEvent(EventType.app_updated, "test"))
    assert set(row) == set(Event.__table__.columns.keys())  # type: ignore[attr-defined]
    assert row["status"] == EventStatus.pending and row["attempts"] == 0


@pytest.mark.usefixtures("db_url")
def test_emit_many_inserts_in_order_and_answers_duplicates() -> None:
    """New keys are inserted; a key taken before, or earlier in the same call, answers the first event."""
    with session_scope() as session:
        before = emit(session, type=EventType.app_updated, source="test", dedup_key="k-old", payload={"n": 0})
    batch = [
        NewEvent(EventType.app_updated, "test", "app-1", {"n": 1, "nested": {"a": [1, "x"]}}, "k-1"),
        NewEvent(EventType.app_updated, "test", None, {"n": 2}, "k-old"),
        NewEvent(EventType.app_created, "test", "app-2", None, "k-2"),
        NewEvent(EventType.app_updated, "test", "app-1", {"n": 3}, "k-1"),
    ]
    with session_scope() as session:
        out = emit_many(session, batch)
    assert [e.duplicate for e in out] == [False, True, False, True]
    assert out[1].event_id == before.event_id
    assert out[3].event_id == out[0].event_id
    stored = {e.dedup_key: e for e in events(source="test")}
    assert set(stored) == {"k-old", "k-1", "k-2"}
    first = stored["k-1"]
    assert (first.id, first.type, first.app_id, first.payload) == (
        out[0].event_id,
        "app.updated",
        "app-1",
        batch[0].payload,
    )
    assert first.status == EventStatus.pending and first.attempts == 0 and first.received_at is not None
    assert stored["k-2"].payload == {} and stored["k-2"].published_at is None
    assert out[0].event.id == out[0].event_id and out[1].event.dedup_key == "k-old"


@pytest.mark.usefixtures("db_url")
def test_emit_many_refuses_an_unknown_type_before_writing() -> None:
    """One unknown type fails the call and writes nothing."""
    with pytest.raises(ValueError, match="unknown event type"), session_scope() as session:
        emit_many(session, [NewEvent(EventType.app_updated, "test", dedup_key="k-a"), NewEvent("no.such", "test")])
    assert events(source="test") == []


@pytest.mark.usefixtures("db_url")
def test_a_batch_of_deliveries_answers_each_as_alone() -> None:
    """Pushes, an ignored delivery, a malformed one and a repeat in one batch get their own answers."""
    catalogue("hello", repo=HELLO_REPO)
    push = payload("push.with-new-branch.payload")
    push = {**push, "ref": f"refs/heads/{push['repository']['default_branch']}"}
    elsewhere = dict.fromkeys(("clone_url", "git_url", "ssh_url", "svn_url"))
    elsewhere["html_url"] = "https://github.com/o/x"
    items: list[_Delivery] = [
        _Delivery("push", "d-1", push),
        _Delivery("push", "d-2", {**push, "repository": {**push["repository"], **elsewhere}}),
        _Delivery("push", "d-3", {**push, "repository": "not an object"}),
        _Delivery("push", "d-1", push),
        _Delivery("watch", "d-4", {"action": "started"}),
    ]
    with session_scope() as session:
        answers: list[Any] = _ingest_batch(session, items)
    assert [a[0] for a in answers] == [202, 202, 400, 200, 202]
    assert answers[1][1] == {"ignored": True, "reason": "repository not catalogued"}
    assert answers[3][1] == {"event_id": answers[0][1]["event_id"], "duplicate": True}
    assert answers[4][2] == "ignored"
    stored = events(type="app.updated")
    assert [(e.id, e.app_id, e.dedup_key) for e in stored] == [(answers[0][1]["event_id"], "hello", "github:d-1")]
    assert stored[0].payload["after"] == push["after"]


@pytest.mark.usefixtures("db_url")
def test_a_repository_url_the_driver_cannot_bind_fails_only_its_own_delivery() -> None:
    """A lone surrogate in a URL (valid JSON) is that delivery's 400; the batch's other push is stored."""
    catalogue("hello", repo=HELLO_REPO)
    push = payload("push.with-new-branch.payload")
    push = {**push, "ref": f"refs/heads/{push['repository']['default_branch']}"}
    bad = {**push, "repository": {**push["repository"], "html_url": "https://github.com/o/\ud800"}}
    with session_scope() as session:
        answers: list[Any] = _ingest_batch(session, [_Delivery("push", "d-bad", bad), _Delivery("push", "d-ok", push)])
    assert [(a[0], a[2]) for a in answers] == [(400, "UnicodeEncodeError"), (202, "accepted")]
    assert [e.dedup_key for e in events(type="app.updated")] == ["github:d-ok"]
