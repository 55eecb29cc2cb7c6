"""Reversible redaction of prompts with the review's own detectors (one definition of each).

Each detected value becomes a stable placeholder for the request (`<EMAIL_1>`, `<CARD_1>` …): the
same value gets the same placeholder everywhere in the request, so the model can still refer to it.
`Vault.restore` puts the values back into the answer; `StreamRestorer` does so across streamed
chunks, holding back a tail that may be the start of a placeholder split over two chunks.

Pure code: no I/O. Values live in memory only and are never logged.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from orchestrator.reviews.checks.pii import scan_pii
from orchestrator.reviews.checks.secrets import scan_text

# The review's PII kinds → the policy's detector names (and the placeholder label).
_PII_DETECTOR = {
    "email": "email",
    "phone-number": "phone",
    "payment-card": "card",
    "iban": "iban",
    "us-ssn": "national_id",
}
_LABEL = {
    "email": "EMAIL",
    "phone": "PHONE",
    "card": "CARD",
    "iban": "IBAN",
    "national_id": "NATIONAL_ID",
    "secret": "SECRET",
}
PLACEHOLDER_RE = re.compile(r"<(?:EMAIL|PHONE|CARD|IBAN|NATIONAL_ID|SECRET)_\d{1,6}>")
_MAX_PLACEHOLDER = len("<NATIONAL_ID_999999>")
# JSON keys whose string values are protocol, not content: never scanned or changed.
# Keys whose string values are JSON documents themselves (OpenAI tool-call arguments, Anthropic's
# streamed tool input): placeholders in them are restored JSON-escaped.
_JSON_TEXT_KEYS = frozenset({"arguments", "partial_json"})
_PROTOCOL_KEYS = frozenset({"model", "role", "type", "id", "tool_call_id", "tool_use_id", "encoding_format"})


def _json_escaped(value: str) -> str:
    return json.dumps(value)[1:-1]


@dataclass(frozen=True)
class Detection:
    """One value found in a prompt (in memory only)."""

    detector: str
    value: str = field(repr=False)


def detect(text: str, detectors: Iterable[str]) -> list[Detection]:
    """Every value of the enabled `detectors` in `text` (the review's PII and secret scanners)."""
    enabled = set(detectors)
    found: list[Detection] = []
    if enabled & set(_PII_DETECTOR.values()):
        for hit in scan_pii(text):
            name = _PII_DETECTOR.get(hit.kind)
            if name in enabled:
                found.append(Detection(name, hit.value))
    if "secret" in enabled:
        found.extend(Detection("secret", hit.value) for hit in scan_text(text))
    return found


class Vault:
    """The placeholders of one request: value ↔ placeholder, and how many of each kind were replaced."""

    def __init__(self) -> None:
        self._by_value: dict[str, str] = {}
        self._by_placeholder: dict[str, str] = {}
        self._counts: Counter[str] = Counter()
        self.replaced: Counter[str] = Counter()

    def __bool__(self) -> bool:
        return bool(self._by_placeholder)

    def placeholder(self, detector: str, value: str) -> str:
        """The placeholder of `value` (a new one the first time it is seen)."""
        existing = self._by_value.get(value)
        if existing is not None:
            return existing
        self._counts[detector] += 1
        token = f"<{_LABEL[detector]}_{self._counts[detector]}>"
        self._by_value[value] = token
        self._by_placeholder[token] = value
        return token

    def mask(self, text: str, detections: list[Detection]) -> str:
        """`text` with every detected value replaced by its placeholder (longest values first)."""
        for det in sorted(detections, key=lambda d: -len(d.value)):
            if det.value and det.value in text:
                self.replaced[det.detector] += text.count(det.value)
                text = text.replace(det.value, self.placeholder(det.detector, det.value))
        return text

    def restore(self, text: str, *, json_text: bool = False) -> str:
        """`text` with every placeholder of this request replaced by its value.

        `json_text`: `text` is (part of) a JSON document — a tool call's arguments — whose
        placeholders sit inside JSON strings, so each value goes in JSON-escaped (a quote or a
        backslash in a value must not break the document the app will parse).
        """
        if not self._by_placeholder or "<" not in text:
            return text
        if json_text:
            return PLACEHOLDER_RE.sub(lambda m: _json_escaped(self._by_placeholder.get(m.group(0), m.group(0))), text)
        return PLACEHOLDER_RE.sub(lambda m: self._by_placeholder.get(m.group(0), m.group(0)), text)

    def restore_json(self, value: Any, key: str | None = None) -> Any:
        """A JSON document with the placeholders in its strings restored (OpenAI's tool-call
        `arguments`, a JSON document in a string, as JSON text)."""
        if not self:
            return value
        if isinstance(value, str):
            return self.restore(value, json_text=key in _JSON_TEXT_KEYS)
        if isinstance(value, list):
            return [self.restore_json(v, key) for v in value]
        if isinstance(value, dict):
            return {k: self.restore_json(v, k) for k, v in value.items()}
        return value


def scan_json(body: Any, detectors: Iterable[str]) -> list[Detection]:
    """Every detection in the content strings of a JSON request body."""
    detectors = list(detectors)
    found: list[Detection] = []
    for text in _strings(body):
        found.extend(detect(text, detectors))
    return found


def mask_json(body: Any, vault: Vault, detectors: Iterable[str]) -> Any:
    """The request body with every detected value in its content strings replaced by a placeholder."""
    detectors = list(detectors)

    def walk(value: Any, key: str | None) -> Any:
        if isinstance(value, str):
            if key in _PROTOCOL_KEYS:
                return value
            hits = detect(value, detectors)
            return vault.mask(value, hits) if hits else value
        if isinstance(value, list):
            return [walk(v, key) for v in value]
        if isinstance(value, dict):
            return {k: walk(v, k) for k, v in value.items()}
        return value

    return walk(body, None)


def _strings(value: Any, key: str | None = None) -> Iterable[str]:
    if isinstance(value, str):
        if key not in _PROTOCOL_KEYS:
            yield value
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v, key)
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _strings(v, k)


class StreamRestorer:
    """Restores placeholders in a stream of text pieces, even when one is split across pieces."""

    def __init__(self, vault: Vault, *, json_text: bool = False) -> None:
        self.vault = vault
        self.json_text = json_text  # pieces of a JSON document (tool-call arguments): values JSON-escaped
        self._held = ""

    def feed(self, piece: str) -> str:
        """The restored text that is safe to emit now (a possible placeholder start is held back)."""
        text = self._held + piece
        self._held = ""
        cut = text.rfind("<")
        if cut != -1 and ">" not in text[cut:] and len(text) - cut < _MAX_PLACEHOLDER:
            self._held, text = text[cut:], text[:cut]
        return self.vault.restore(text, json_text=self.json_text)

    def flush(self) -> str:
        """Whatever is still held back (the end of the stream: it was not a placeholder after all)."""
        text, self._held = self._held, ""
        return self.vault.restore(text, json_text=self.json_text)
