"""Reading request bodies: the one capped, streaming reader, and documents (manifests) as JSON or YAML.

Every endpoint that reads its body by hand — webhooks, OAuth forms, manifests — reads it through
`read_body`: a Content-Length over the cap is refused before a byte is read, and a body without one
is read chunk by chunk from `request.stream()` and refused as soon as it passes the cap, so no
endpoint ever holds more than the cap (plus one transport chunk) of a body it will refuse.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import yaml
from fastapi import Request

from orchestrator.catalog.manifest import Manifest
from orchestrator.documents import DocumentRefused, load_json, load_yaml
from orchestrator.errors import MalformedPayload, PayloadTooLarge
from orchestrator.http.errors import UnsupportedMediaType, field_error

# A manifest is a few hundred bytes; anything near this cap is a mistake or an attack.
MAX_DOCUMENT_BYTES = 256 * 1024
JSON_TYPES = frozenset({"application/json", ""})
YAML_TYPES = frozenset({"application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml"})


def _media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


async def read_body(request: Request, limit: int, *, on_chunk: Callable[[bytes], None] | None = None) -> bytes:
    """The whole body, at most `limit` bytes; PayloadTooLarge as soon as it is (or says it is) larger.

    `on_chunk` sees every chunk as it arrives (a webhook feeds its HMACs this way, so the signature
    is computed while reading rather than over a second pass).
    """
    refuse_declared_oversize(request, limit)
    body = bytearray()
    async for chunk in request.stream():
        if len(body) + len(chunk) > limit:
            # Stop here: the rest of the body is never pulled from the client.
            raise PayloadTooLarge(f"the body is over {limit} bytes (read while streaming)", detail=_too_large(limit))
        if on_chunk is not None:
            on_chunk(chunk)
        body += chunk
    return bytes(body)


def refuse_declared_oversize(request: Request, limit: int) -> None:
    """PayloadTooLarge when the Content-Length alone is over `limit`: refused before a byte is read."""
    declared = request.headers.get("content-length", "")
    if declared.isascii() and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"the body is over {limit} bytes (Content-Length {declared})", detail=_too_large(limit))


def _too_large(limit: int) -> str:
    return f"the body is over {limit} bytes"


async def read_document(request: Request) -> Any:
    """The parsed body: JSON by default, YAML for a YAML content type (400 when it does not parse)."""
    media_type = _media_type(request)
    if media_type not in JSON_TYPES | YAML_TYPES:
        raise UnsupportedMediaType(
            f"{media_type} is not JSON or YAML",
            detail=[field_error("content-type", "send application/json or application/yaml", "header")],
        )
    raw = await read_body(request, MAX_DOCUMENT_BYTES)
    if not raw.strip():
        raise MalformedPayload("empty body", detail=[field_error("(body)", "the body is empty")])
    kind = "YAML" if media_type in YAML_TYPES else "JSON"
    try:
        text = raw.decode("utf-8")
        return load_yaml(text) if kind == "YAML" else load_json(text)
    except DocumentRefused as exc:
        reason = f"not accepted as {kind}: {exc}"
        raise MalformedPayload(f"the body is refused: {exc}", detail=[field_error("(body)", reason)]) from None
    except UnicodeDecodeError:
        raise MalformedPayload("body is not UTF-8", detail=[field_error("(body)", "not UTF-8 text")]) from None
    except (ValueError, yaml.YAMLError) as exc:
        reason = f"not valid {kind}: {_where(exc)}"
        raise MalformedPayload(f"the body is not valid {kind}", detail=[field_error("(body)", reason)]) from None


def _where(exc: Exception) -> str:
    """What went wrong and where, without quoting the input (it may hold a secret)."""
    if isinstance(exc, json.JSONDecodeError):
        return f"{exc.msg} at line {exc.lineno}, column {exc.colno}"
    if isinstance(exc, yaml.MarkedYAMLError) and exc.problem_mark is not None:
        mark = exc.problem_mark
        return f"{exc.problem or 'syntax error'} at line {mark.line + 1}, column {mark.column + 1}"
    return type(exc).__name__


def _inline_refs(schema: Any, defs: dict[str, Any]) -> Any:
    if isinstance(schema, dict):
        ref = schema.get("$ref", "")
        if ref.startswith("#/$defs/"):
            return _inline_refs(defs[ref.removeprefix("#/$defs/")], defs)
        return {k: _inline_refs(v, defs) for k, v in schema.items() if k != "$defs"}
    if isinstance(schema, list):
        return [_inline_refs(v, defs) for v in schema]
    return schema


def _manifest_schema() -> dict[str, Any]:
    schema = Manifest.model_json_schema()
    return dict(_inline_refs(schema, schema.get("$defs", {})))


# The register route reads its body by hand (JSON or YAML), so its OpenAPI body is declared here.
MANIFEST_REQUEST_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "The app's manifest (microapp.yaml), as JSON or as YAML text.",
        "content": {
            "application/json": {"schema": _manifest_schema()},
            "application/yaml": {"schema": {"type": "string", "description": "microapp.yaml text"}},
        },
    }
}
