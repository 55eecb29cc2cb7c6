"""Error shapes: every failure is `{"error": code, "detail": ...}`, names the field, and hides internals."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import text

from orchestrator.db import get_engine
from orchestrator.http.bodies import MAX_DOCUMENT_BYTES
from tests.factories import manifest
from tests.http.helpers import Tokens, register

YAML = {"Content-Type": "application/yaml"}
JSON = {"Content-Type": "application/json"}


def _fields(response: Any) -> dict[str, str]:
    return {d["field"]: d["reason"] for d in response.json()["detail"]}


class TestBadManifest:
    """A manifest that parses but is wrong is a 422 naming each bad field."""

    @pytest.mark.parametrize(
        ("overrides", "field"),
        [
            ({"data_class": "secret"}, "data_class"),
            ({"owner": "not-an-email"}, "owner"),
            ({"name": ""}, "name"),
            ({"scopes": ["bad scope!"]}, "scopes"),
            ({"llm": {"uses_llm": "sometimes"}}, "llm.uses_llm"),
            ({"colour": "blue"}, "colour"),
        ],
    )
    def test_names_the_field(self, client: Any, tokens: Tokens, overrides: dict[str, Any], field: str) -> None:
        """The 422 detail lists the offending field and why."""
        response = client.post("/api/v1/apps", json=manifest(**overrides), headers=tokens.headers("admin"))
        assert response.status_code == 422
        assert response.json()["error"] == "validation_error"
        assert field in _fields(response)

    def test_missing_required_field(self, client: Any, tokens: Tokens) -> None:
        """A manifest without an owner is a 422 naming owner."""
        body = manifest()
        del body["owner"]
        response = client.post("/api/v1/apps", json=body, headers=tokens.headers("admin"))
        assert response.status_code == 422
        assert "owner" in _fields(response)

    def test_yaml_that_is_not_a_mapping(self, client: Any, tokens: Tokens) -> None:
        """A YAML list instead of a mapping is a 422 about the top level."""
        response = client.post("/api/v1/apps", content="- a\n- b\n", headers={**YAML, **tokens.headers("admin")})
        assert response.status_code == 422
        assert "(top level)" in _fields(response)

    def test_input_is_not_echoed(self, client: Any, tokens: Tokens) -> None:
        """A bad value is described, never repeated back (it could be a secret)."""
        value = "sk-" + "q" * 30
        response = client.post("/api/v1/apps", json=manifest(owner=value), headers=tokens.headers("admin"))
        assert response.status_code == 422
        assert value not in response.text


class TestMalformedBody:
    """Bodies that do not parse are a 400 naming the body and where it broke."""

    def test_malformed_json(self, client: Any, tokens: Tokens) -> None:
        """Broken JSON is 400 malformed_body with the line and column."""
        response = client.post("/api/v1/apps", content='{"name": ', headers={**JSON, **tokens.headers("admin")})
        assert response.status_code == 400
        assert response.json()["error"] == "malformed_body"
        assert "line 1" in _fields(response)["(body)"]

    def test_malformed_yaml(self, client: Any, tokens: Tokens) -> None:
        """Broken YAML is 400 malformed_body with the line, without quoting the input."""
        secret_line = "token: abc123secret"
        bad = f"name: x\n{secret_line}\n  owner: [unclosed\n"
        response = client.post("/api/v1/apps", content=bad, headers={**YAML, **tokens.headers("admin")})
        assert response.status_code == 400
        assert response.json()["error"] == "malformed_body"
        assert "not valid YAML" in _fields(response)["(body)"]
        assert "abc123secret" not in response.text

    def test_not_utf8(self, client: Any, tokens: Tokens) -> None:
        """Bytes that are not UTF-8 are a 400."""
        response = client.post("/api/v1/apps", content=b"\xff\xfe\x00", headers={**YAML, **tokens.headers("admin")})
        assert response.status_code == 400

    def test_empty_body(self, client: Any, tokens: Tokens) -> None:
        """An empty body is a 400."""
        response = client.post("/api/v1/apps", content=b"", headers={**JSON, **tokens.headers("admin")})
        assert response.status_code == 400
        assert _fields(response) == {"(body)": "the body is empty"}

    def test_unsupported_content_type(self, client: Any, tokens: Tokens) -> None:
        """A body that is neither JSON nor YAML is a 415 naming the content-type header."""
        headers = {"Content-Type": "text/plain", **tokens.headers("admin")}
        response = client.post("/api/v1/apps", content="name: x", headers=headers)
        assert response.status_code == 415
        assert response.json()["detail"][0]["field"] == "content-type"

    def test_body_too_large(self, client: Any, tokens: Tokens) -> None:
        """A body over the cap is a 413, whatever it contains."""
        huge = b"#" * (MAX_DOCUMENT_BYTES + 1)
        response = client.post("/api/v1/apps", content=huge, headers={**YAML, **tokens.headers("admin")})
        assert response.status_code == 413
        assert response.json()["error"] == "too_large"

    def test_action_with_malformed_json(self, client: Any, tokens: Tokens) -> None:
        """An action body that is not JSON is a 400 malformed_body, not a validation error about a position."""
        app = register(client, tokens.headers("admin"))
        response = client.post(
            f"/api/v1/apps/{app['id']}/retire", content="{nope", headers={**JSON, **tokens.headers("admin")}
        )
        assert response.status_code == 400
        assert response.json()["error"] == "malformed_body"
        assert response.json()["detail"][0]["field"] == "(body)"

    def test_action_with_bad_field(self, client: Any, tokens: Tokens) -> None:
        """A transfer to something that is not an email is a 422 naming owner."""
        app = register(client, tokens.headers("admin"))
        response = client.post(
            f"/api/v1/apps/{app['id']}/owner", json={"owner": "nobody"}, headers=tokens.headers("admin")
        )
        assert response.status_code == 422
        assert response.json()["detail"][0] | {"reason": ""} == {"field": "owner", "in": "body", "reason": ""}


class TestConflictsAndMissing:
    """409 for what the current state refuses, 404 for what does not exist."""

    def test_retiring_twice_is_409_with_stage_and_allowed(self, client: Any, tokens: Tokens) -> None:
        """The second retire names the current stage and the actions allowed from it."""
        app = register(client, tokens.headers("admin"))
        first = client.post(f"/api/v1/apps/{app['id']}/retire", json={}, headers=tokens.headers("admin"))
        assert first.status_code == 202
        second = client.post(f"/api/v1/apps/{app['id']}/retire", json={}, headers=tokens.headers("admin"))
        assert second.status_code == 409
        body = second.json()
        assert body["error"] == "invalid_transition"
        assert body["detail"]["stage"] == "sunsetting"
        assert body["detail"]["action"] == "retire"
        assert body["detail"]["allowed"] == ["complete_sunset"]
        assert "sunsetting" in body["detail"]["message"]

    def test_registering_an_existing_id_is_409(self, client: Any, tokens: Tokens) -> None:
        """A second app with the same id is a conflict."""
        register(client, tokens.headers("admin"))
        response = client.post("/api/v1/apps", json=manifest(), headers=tokens.headers("admin"))
        assert response.status_code == 409
        assert response.json() == {"error": "conflict", "detail": {"id": "expense-helper"}}

    def test_unknown_app_is_404(self, client: Any, tokens: Tokens) -> None:
        """An unknown id is a 404 in the error shape."""
        response = client.get("/api/v1/apps/no-such-app", headers=tokens.headers("admin"))
        assert response.status_code == 404
        assert response.json() == {"error": "not_found", "detail": "no app with id 'no-such-app'"}

    def test_unknown_route_is_404(self, client: Any) -> None:
        """A path nobody serves is a 404 in the error shape."""
        response = client.get("/api/v2/nothing")
        assert response.status_code == 404
        assert response.json()["error"] == "not_found"

    def test_wrong_method_is_405(self, client: Any, tokens: Tokens) -> None:
        """A method the route does not take is a 405 in the error shape."""
        response = client.delete("/api/v1/apps", headers=tokens.headers("admin"))
        assert response.status_code == 405
        assert response.json()["error"] == "method_not_allowed"


@contextmanager
def _broken_table(db_url: str, table: str) -> Iterator[None]:
    """Rename a table away for the duration, so queries on it fail inside the database driver."""
    with get_engine(db_url).begin() as conn:
        conn.execute(text(f"ALTER TABLE {table} RENAME TO {table}_broken"))
    try:
        yield
    finally:
        with get_engine(db_url).begin() as conn:
            conn.execute(text(f"ALTER TABLE {table}_broken RENAME TO {table}"))


def test_internal_error_hides_the_traceback(
    client: Any, tokens: Tokens, db_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A handler hitting a broken database answers the generic 500 body; the traceback goes to the log only."""
    with _broken_table(db_url, "microapp"):
        response = client.get("/api/v1/apps", headers={"X-Request-Id": "broken-db-1", **tokens.headers("admin")})
    assert response.status_code == 500
    body = response.json()
    assert body == {
        "error": "internal_error",
        "detail": "an internal error occurred; it has been logged (request broken-db-1)",
    }
    for leak in ("Traceback", "microapp", "sqlalchemy", "SELECT", "File "):
        assert leak not in response.text
    assert response.headers["x-request-id"] == "broken-db-1"
    logged = [r for r in caplog.records if isinstance(r.msg, dict) and r.msg.get("event") == "unhandled error"]
    assert len(logged) == 1
    assert logged[0].levelno == logging.ERROR
    fields = logged[0].msg
    assert isinstance(fields, dict)
    assert fields["request_id"] == "broken-db-1"
    assert "no such table" in fields["exception"] or "does not exist" in fields["exception"]
    # The API still works once the database is healthy again.
    assert client.get("/api/v1/apps", headers=tokens.headers("admin")).status_code == 200
