"""The page-cursor codec: what it issues comes back intact; anything else is a BadCursor naming `cursor`."""

from __future__ import annotations

import base64
import json

import pytest

from orchestrator.errors import ValidationFailed
from orchestrator.pagination import MAX_CURSOR_CHARS, BadCursor, decode_cursor, encode_cursor


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


@pytest.mark.parametrize(
    "parts",
    [
        ("expense-helper",),
        ("2026-12-04T21:00:00.123456+00:00", "0f3c9a"),
        ("zürich-café-☕",),  # unicode survives the round trip
        ('quote " back\\slash | pipe',),
        ("a" * 250,),
    ],
)
def test_round_trip(parts: tuple[str, ...]) -> None:
    """decode(encode(x)) is x, and the cursor is URL-safe text."""
    cursor = encode_cursor("things", *parts)
    assert cursor.replace("-", "").replace("_", "").isalnum()
    assert decode_cursor(cursor, "things", parts=len(parts)) == parts


@pytest.mark.parametrize(
    "cursor, why",
    [
        ("", "empty"),
        ("!!not-base64!!", "base64url"),
        ("abc=", "base64url"),  # padding is never issued
        ("a b", "base64url"),
        ("abcde", "base64url"),  # a length no base64 text has
        ("abc", "decode"),  # decodes to bytes that are not UTF-8 JSON
        (_b64(b"\xff\xfe"), "decode"),  # not UTF-8
        (_b64(b"after:expense-helper"), "decode"),  # the old catalog format
        (_b64(b'["things","\\ud800"]'), "decode"),  # a lone surrogate
        (_b64(b'{"kind":"things"}'), "wrong shape"),
        (_b64(b'["things",1]'), "wrong shape"),
        (_b64(b'["things"]'), "wrong shape"),  # no position
        (_b64(b'["things","a","b"]'), "wrong shape"),  # too many parts
        (_b64(b'["things",""]'), "wrong shape"),  # an empty position
        (_b64(b"[]"), "not a cursor of the things list"),
        (encode_cursor("other", "x"), "not a cursor of the things list"),  # another list's cursor
        (_b64(b'[ "things", "x" ]'), "canonical"),  # same value, different text
        ("x" * (MAX_CURSOR_CHARS + 1), "longer than"),
    ],
)
def test_anything_else_is_refused(cursor: str, why: str) -> None:
    """Garbage, tampered, wrong-shape, wrong-kind and overlong cursors raise BadCursor with a reason."""
    with pytest.raises(BadCursor) as refused:
        decode_cursor(cursor, "things", parts=1)
    assert why in refused.value.reason
    assert isinstance(refused.value, ValidationFailed)  # the API answers it 422
    [field] = refused.value.detail
    assert field["field"] == "cursor" and field["in"] == "query" and why in field["reason"]


def test_tampered_cursor_is_refused() -> None:
    """Flipping one character of a real cursor never yields another list's or a broken position silently."""
    cursor = encode_cursor("things", "expense-helper")
    for i in range(len(cursor)):
        flipped = cursor[:i] + ("A" if cursor[i] != "A" else "B") + cursor[i + 1 :]
        try:
            parts = decode_cursor(flipped, "things", parts=1)
        except BadCursor:
            continue
        # The only edits that survive are ones inside the id itself: still a well-formed position.
        assert json.loads(base64.urlsafe_b64decode(flipped + "=" * (-len(flipped) % 4)))[1] == parts[0]


def test_overlong_position_is_not_issued() -> None:
    """encode refuses to issue a cursor decode could not take back."""
    with pytest.raises(ValueError, match="over"):
        encode_cursor("things", "x" * MAX_CURSOR_CHARS)
