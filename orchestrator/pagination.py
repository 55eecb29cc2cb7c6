"""The one codec for opaque page cursors: keyset positions, strictly checked on the way back in.

A cursor is the base64url text (no padding) of a compact JSON array `[kind, part, ...]` of strings.
`kind` names the list that issued it, so a cursor from one list is refused by another. Anything that
is not exactly what `encode_cursor` produced for that kind and number of parts — bad characters,
bad base64, not UTF-8, not JSON, the wrong shape, the wrong kind, too long — raises `BadCursor`, a
`ValidationFailed` naming the `cursor` query parameter: the API answers 422, never a 500 and never
page 1. Cursors are not signed: a hand-made one only moves the page start, every filter still applies.
"""

from __future__ import annotations

import base64
import binascii
import json
import re

from orchestrator.errors import ValidationFailed

MAX_CURSOR_CHARS = 1200
_ALPHABET_RE = re.compile(r"^[A-Za-z0-9_-]+$")
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")


class BadCursor(ValidationFailed):
    """A cursor we did not issue for this list; `detail` names the query parameter and why."""

    def __init__(self, reason: str) -> None:
        super().__init__(
            f"bad cursor: {reason}",
            detail=[{"field": "cursor", "in": "query", "reason": f"not a cursor we issued: {reason}"}],
        )
        self.reason = reason


def encode_cursor(kind: str, *parts: str) -> str:
    """An opaque cursor for list `kind` holding the keyset position `parts`.

    ValueError when the result would be longer than MAX_CURSOR_CHARS (decode_cursor could not take it back).
    """
    raw = json.dumps([kind, *parts], ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    cursor = base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")
    if len(cursor) > MAX_CURSOR_CHARS:
        raise ValueError(f"a {kind} cursor would be {len(cursor)} characters, over {MAX_CURSOR_CHARS}")
    return cursor


def decode_cursor(cursor: str, kind: str, *, parts: int) -> tuple[str, ...]:
    """The `parts` non-empty strings of a cursor `encode_cursor(kind, ...)` issued; BadCursor otherwise."""
    if not cursor:
        raise BadCursor("it is empty")
    if len(cursor) > MAX_CURSOR_CHARS:
        raise BadCursor(f"it is longer than {MAX_CURSOR_CHARS} characters")
    if not _ALPHABET_RE.match(cursor) or len(cursor) % 4 == 1:
        raise BadCursor("it is not base64url text")
    try:
        # validate=True: the lenient decoder silently drops stray characters and accepts garbage.
        raw = base64.b64decode(cursor + "=" * (-len(cursor) % 4), altchars=b"-_", validate=True)
        value = json.loads(raw.decode("utf-8"))
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise BadCursor("it does not decode") from None
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise BadCursor("it has the wrong shape")
    if not value or value[0] != kind:
        raise BadCursor(f"it is not a cursor of the {kind} list")
    if len(value) != parts + 1 or not all(value[1:]):
        raise BadCursor("it has the wrong shape")
    if any(_CONTROL_RE.search(item) for item in value):
        # No id or timestamp holds one, and PostgreSQL refuses NUL in a query parameter (a 500).
        raise BadCursor("it holds a control character")
    # Re-encoding must give back the same text: refuses non-canonical spellings of a cursor (padding
    # bits set, whitespace in the JSON) so that one position has exactly one cursor.
    try:
        canonical = encode_cursor(kind, *value[1:])
    except ValueError:  # a lone surrogate escaped in the JSON has no UTF-8 form
        raise BadCursor("it does not decode") from None
    if canonical != cursor:
        raise BadCursor("it is not in canonical form")
    return tuple(value[1:])
