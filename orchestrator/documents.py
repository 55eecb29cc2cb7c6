"""Parsing untrusted documents (JSON, YAML) with bounded depth and CPU, and spotting control characters.

Python's `json` and PyYAML's composer recurse once per nesting level: a body nested a thousand deep
raises RecursionError (a 500), and PyYAML spends about a second on 500 levels. Every door that parses
what a client sent goes through `load_json` / `load_yaml` here, which measure the nesting first with a
linear scan (JSON: brackets outside strings; YAML: the parser's event stream, which does not recurse)
and refuse aliases, so nothing over `MAX_DEPTH` ever reaches a recursive parser.
"""

from __future__ import annotations

import json
import re
from typing import Any

import yaml

MAX_DEPTH = 64
# Strings (with their escapes) are removed before brackets are counted, so "[[[" inside a string is text.
_JSON_STRING_RE = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"')  # the unrolled form: linear, no backtracking
_BRACKET_RE = re.compile(r"[\[\]{}]")
_NUL_ESCAPE = "\\u0000"  # the JSON escape (six characters), not a NUL
_NUL_ESCAPE_BYTES = _NUL_ESCAPE.encode()
# C0 controls and DEL; tab, newline and carriage return are allowed only where free text is (see `control_character`).
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")
_CONTROL_NO_WS_RE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_SafeLoader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class DocumentRefused(ValueError):
    """A document refused before (or instead of) parsing: too deep, or uses YAML aliases; the message says which."""


def control_character(value: str, *, free_text: bool = False) -> bool:
    """True when `value` holds a control character (NUL included); `free_text` allows tab and line breaks."""
    return (_CONTROL_NO_WS_RE if free_text else _CONTROL_RE).search(value) is not None


def describe(value: str | bytes) -> str:
    """What a refused value was, for a log line, without the value itself."""
    return f"{type(value).__name__} of length {len(value)}"


def json_depth(text: str | bytes, *, stop_after: int = MAX_DEPTH) -> int:
    """The deepest bracket nesting of JSON text (stops counting once past `stop_after`)."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    depth = deepest = 0
    for match in _BRACKET_RE.finditer(_JSON_STRING_RE.sub("", text)):
        depth += 1 if match.group() in "[{" else -1
        if depth > deepest:
            deepest = depth
            if deepest > stop_after:
                break
    return deepest


def _openings(text: str | bytes) -> int:
    if isinstance(text, bytes):
        return text.count(b"[") + text.count(b"{")
    return text.count("[") + text.count("{")


def load_json(text: str | bytes, *, max_depth: int = MAX_DEPTH, refuse_nul: bool = False) -> Any:
    """`json.loads`, refusing (DocumentRefused) a document nested deeper than `max_depth`.

    `refuse_nul` also refuses a NUL escape anywhere: for documents stored or looked up as they are
    (webhook deliveries), where PostgreSQL would refuse it later and no field can be named.
    """
    if refuse_nul and (_NUL_ESCAPE in text if isinstance(text, str) else _NUL_ESCAPE_BYTES in text):
        raise DocumentRefused("a NUL character (\\u0000) is not accepted")
    # Depth cannot pass the number of opening brackets: counting them (in C) spares most documents —
    # a push of a few commits has about 60 — the scan, which costs as much as the parse itself.
    if _openings(text) > max_depth and json_depth(text, stop_after=max_depth) > max_depth:
        raise DocumentRefused(f"nested too deep (more than {max_depth} levels)")
    try:
        return json.loads(text)
    except RecursionError:  # defence in depth: the scan above should make this unreachable
        raise DocumentRefused("nested too deep") from None


def check_yaml(text: str, *, max_depth: int = MAX_DEPTH) -> None:
    """Walk the YAML event stream (no recursion, no objects built): refuse aliases and nesting past `max_depth`."""
    depth = 0
    for event in yaml.parse(text, Loader=_SafeLoader):
        if isinstance(event, yaml.AliasEvent):
            raise DocumentRefused("YAML aliases (*name) are not accepted")
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > max_depth:
                raise DocumentRefused(f"nested too deep (more than {max_depth} levels)")
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1


def load_yaml(text: str, *, max_depth: int = MAX_DEPTH) -> Any:
    """`yaml.safe_load` behind `check_yaml`: DocumentRefused for aliases or over-deep nesting, YAMLError as usual."""
    check_yaml(text, max_depth=max_depth)
    return yaml.load(text, Loader=_SafeLoader)  # noqa: S506 - a safe loader, checked above
