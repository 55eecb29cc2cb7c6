"""`notify_many`: many messages in one statement, with the same once-per-key rule as `notify`."""

from __future__ import annotations

from sqlmodel import select

from orchestrator.db import session_scope
from orchestrator.notifications.delivery import deliver
from orchestrator.notifications.models import Notification
from orchestrator.notifications.service import Message, notify, notify_many


def _rows() -> dict[str, Notification]:
    with session_scope(write=False) as session:
        return {row.key: row for row in session.exec(select(Notification)).all()}


def test_each_key_is_one_message_across_batches_and_single_notifies(db_url: str) -> None:
    """A key repeated in a batch, or written before (by notify() or a batch), is one row; the first wins."""
    with session_scope() as session:
        notify(session, to="#it-approvers", text="single", key="k-single")
    with session_scope() as session:
        notify_many(
            session,
            [
                Message(to="Ann@Example.com", text="first", key="k-a", app_id="app-a"),
                Message(to="#it-approvers", text="second", key="k-b"),
                Message(to="ann@example.com", text="repeat in batch", key="k-a"),
                Message(to="#it-approvers", text="repeat of single", key="k-single"),
            ],
        )
    with session_scope() as session:
        notify_many(session, [Message(to="bob@example.com", text="again", key="k-b"),
                              Message(to="bob@example.com", text="new", key="k-c")])  # fmt: skip
    with session_scope() as session:
        notify_many(session, [])  # nothing to write is no statement and no error
    rows = _rows()
    assert sorted(rows) == ["k-a", "k-b", "k-c", "k-single"]
    assert {key: row.text for key, row in rows.items()} == {
        "k-a": "first",
        "k-b": "second",
        "k-c": "new",
        "k-single": "single",
    }
    ann = rows["k-a"]
    assert (ann.recipient_type, ann.recipient, ann.app_id) == ("user", "ann@example.com", "app-a")
    assert (rows["k-b"].recipient_type, rows["k-b"].recipient) == ("channel", "#it-approvers")
    # The rows are ordinary outbox rows: the delivery worker takes them (the log without Slack).
    assert {deliver(row.id or 0) for row in rows.values()} == {"logged"}
