"""Canonical JSON of an audit entry, the bytes its hash covers: stable, UTC, unescaped, chain fields left out."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta, timezone

from orchestrator.audit.models import AuditEntry
from orchestrator.audit.service import GENESIS_HASH, canonical_json, entry_hash

AT = datetime(2026, 3, 1, 12, 30, 5, tzinfo=UTC)


def _entry(**overrides: object) -> AuditEntry:
    fields: dict[str, object] = {
        "seq": 7,
        "at": AT,
        "app_id": "expense-helper",
        "actor": "admin@example.com",
        "action": "lifecycle.approve",
        "reason": "looks fine",
        "data": {"b": 2, "a": [1, None, True]},
        "prev_hash": "1" * 64,
        "hash": "2" * 64,
    }
    fields.update(overrides)
    return AuditEntry(**fields)  # type: ignore[arg-type]


def test_exact_text() -> None:
    """Keys sorted at every level, no spaces, microsecond UTC timestamp; written out by hand, not derived."""
    assert canonical_json(_entry()) == (
        '{"action":"lifecycle.approve","actor":"admin@example.com","app_id":"expense-helper",'
        '"at":"2026-03-01T12:30:05.000000+00:00","data":{"a":[1,null,true],"b":2},'
        '"reason":"looks fine","seq":7}'
    )


def test_key_order_of_data_does_not_matter() -> None:
    """The same data inserted in another order gives the same text."""
    assert canonical_json(_entry(data={"a": [1, None, True], "b": 2})) == canonical_json(_entry())


def test_timestamps_are_normalised_to_utc() -> None:
    """A naive timestamp is read as UTC; an offset one is converted, so the same instant hashes the same."""
    naive = _entry(at=AT.replace(tzinfo=None))
    paris = _entry(at=AT.astimezone(timezone(timedelta(hours=1))))
    assert canonical_json(naive) == canonical_json(paris) == canonical_json(_entry())


def test_unicode_is_kept_as_is() -> None:
    """Non-ASCII text is written as UTF-8, not as \\u escapes (the hash covers its UTF-8 bytes)."""
    text = canonical_json(_entry(reason="Zoë approved ✓", data={"note": "naïve"}))
    assert "Zoë approved ✓" in text and "naïve" in text and "\\u" not in text


def test_chain_fields_are_not_covered() -> None:
    """id, prev_hash and hash are outside the canonical text (prev_hash is chained separately)."""
    assert canonical_json(_entry(id=99, prev_hash="3" * 64, hash="4" * 64)) == canonical_json(_entry())


def test_entry_hash_is_sha256_of_previous_hash_newline_canonical_json() -> None:
    """The hash an independent verifier would compute with hashlib alone."""
    entry = _entry()
    expected = hashlib.sha256((GENESIS_HASH + "\n" + canonical_json(entry)).encode("utf-8")).hexdigest()
    assert entry_hash(GENESIS_HASH, entry) == expected


def test_every_covered_field_changes_the_hash() -> None:
    """Changing any covered field, or the previous hash, gives a different hash."""
    base = entry_hash(GENESIS_HASH, _entry())
    changed = [
        _entry(seq=8),
        _entry(at=AT + timedelta(microseconds=1)),
        _entry(app_id="other-app"),
        _entry(app_id=None),
        _entry(actor="someone@example.com"),
        _entry(action="lifecycle.reject"),
        _entry(reason="looks fine."),
        _entry(data={"b": 2, "a": [1, None, False]}),
    ]
    hashes = {entry_hash(GENESIS_HASH, entry) for entry in changed}
    assert base not in hashes and len(hashes) == len(changed)
    assert entry_hash("f" * 64, _entry()) != base
