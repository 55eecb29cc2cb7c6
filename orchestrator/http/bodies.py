"""Reading a document body (a manifest) as JSON or YAML, with a size cap and errors that name the field."""

from __future__ import annotations

import json
from typing import Any

import yaml
from fastapi import Request

from orchestrator.catalog.manifest import Manifest
from orchestrator.http.errors import BodyTooLarge, MalformedBody, UnsupportedMediaType, field_error

# A manifest is a few hundred bytes; anything near this cap is a mistake or an attack.
MAX_DOCUMENT_BYTES = 256 * 1024
JSON_TYPES = frozenset({"application/json", ""})
YAML_TYPES = frozenset({"application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml"})


def _media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


async def read_limited(request: Request, limit: int) -> bytes | None:
    """The body, or None when it is (or says it is) larger than `limit` bytes.

    Checked while reading too: a chunked request has no Content-Length to refuse it by.
    """
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        return None
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            return None
    return bytes(body)


async def _read_capped(request: Request) -> bytes:
    raw = await read_limited(request, MAX_DOCUMENT_BYTES)
    if raw is None:
        raise BodyTooLarge(f"the body is over {MAX_DOCUMENT_BYTES} bytes")
    return raw


async def read_document(request: Request) -> Any:
    """The parsed body: JSON by default, YAML for a YAML content type (400 when it does not parse)."""
    media_type = _media_type(request)
    if media_type not in JSON_TYPES | YAML_TYPES:
        raise UnsupportedMediaType(
            f"{media_type} is not JSON or YAML",
            detail=[field_error("content-type", "send application/json or application/yaml", "header")],
        )
    raw = await _read_capped(request)
    if not raw.strip():
        raise MalformedBody("empty body", detail=[field_error("(body)", "the body is empty")])
    kind = "YAML" if media_type in YAML_TYPES else "JSON"
    try:
        text = raw.decode("utf-8")
        return yaml.safe_load(text) if kind == "YAML" else json.loads(text)
    except UnicodeDecodeError:
        raise MalformedBody("body is not UTF-8", detail=[field_error("(body)", "not UTF-8 text")]) from None
    except (ValueError, yaml.YAMLError) as exc:
        reason = f"not valid {kind}: {_where(exc)}"
        raise MalformedBody(f"the body is not valid {kind}", detail=[field_error("(body)", reason)]) from None


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
