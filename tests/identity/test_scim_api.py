"""The SCIM 2.0 endpoint driven with the request bodies Okta and Entra document, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pytest

from orchestrator.events.runner import run_event
from tests.events.helpers import catalogue
from tests.factories import auth
from tests.identity.helpers import idp_payload, owner_left_events, scim_call

if TYPE_CHECKING:
    from fastapi.testclient import TestClient

OKTA_USER = "test.user@example.com"
ENTRA_EMAIL = "test_user_fd0ea19b-0777-472c-9f96-4f70d2226f2e@testuser.com"
ERROR_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:Error"


def _okta(name: str) -> dict[str, Any]:
    """Okta's documented body, its reserved `okta.local` domain moved to example.com (manifests refuse it)."""
    body: dict[str, Any] = json.loads(json.dumps(idp_payload(name)).replace("@okta.local", "@example.com"))
    return body


def _person(email: str) -> Any:
    from orchestrator.catalog.models import Person
    from orchestrator.db import session_scope

    with session_scope(write=False) as session:
        person = session.get(Person, email)
        if person is not None:
            session.expunge(person)
        return person


def _app(app_id: str) -> Any:
    from orchestrator.catalog.models import MicroApp
    from orchestrator.db import session_scope

    with session_scope(write=False) as session:
        app = session.get(MicroApp, app_id)
        assert app is not None
        session.expunge(app)
        return app


def _audit(action: str) -> list[dict[str, Any]]:
    from sqlmodel import select

    from orchestrator.audit.models import AuditEntry
    from orchestrator.db import session_scope

    with session_scope(write=False) as session:
        return [dict(e.data) for e in session.exec(select(AuditEntry).where(AuditEntry.action == action)).all()]


def _assert_scim_error(answer: Any, status: int, scim_type: str | None = None) -> dict[str, Any]:
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"].startswith("application/scim+json")
    body: dict[str, Any] = answer.json()
    assert body["schemas"] == [ERROR_SCHEMA] and body["status"] == str(status) and body["detail"]
    assert body.get("scimType") == scim_type
    return body


def test_only_a_scim_token_opens_scim_and_it_opens_nothing_else(
    client: TestClient, make_token: Callable[..., str]
) -> None:
    """No token, an admin token and a bad token get SCIM 401s; a scim token gets 401 on the rest of the API."""
    scim, admin = make_token("scim", None, "okta"), make_token("admin", "it@example.com")
    _assert_scim_error(client.get("/scim/v2/Users"), 401)
    _assert_scim_error(client.get("/scim/v2/Users", headers=auth(admin)), 401)
    _assert_scim_error(client.get("/scim/v2/Users", headers=auth("mat_" + "x" * 20)), 401)
    assert client.get("/scim/v2/Users", headers=auth(scim)).status_code == 200
    assert client.get("/api/v1/apps", headers=auth(scim)).status_code == 401
    assert client.get("/api/v1/events", headers=auth(scim)).status_code == 401
    assert client.post("/api/v1/people/a@example.com/left", headers=auth(scim)).status_code == 401


def test_okta_provisions_deactivates_and_replays_once(client: TestClient, make_token: Callable[..., str]) -> None:
    """Okta's create, filter and deactivate: one owner.left, the co-owner takes over, the leaver's token dies."""
    scim = make_token("scim", None, "okta")
    created = scim_call(client, "POST", "/Users", scim, _okta("okta_create_user"))
    assert created.status_code == 201, created.text
    user = created.json()
    assert created.headers["location"] == user["meta"]["location"]
    assert created.headers["location"].endswith(f"/scim/v2/Users/{user['id']}")
    assert user["userName"] == OKTA_USER and user["active"] is True and "password" not in user
    assert user["externalId"] == "00ujl29u0le5T6Aj10h7" and user["meta"]["resourceType"] == "User"
    assert _person(OKTA_USER).name == "Test User"  # the IdP's people are the catalog's people

    from orchestrator.catalog.models import Person
    from orchestrator.db import session_scope

    with session_scope() as session:
        session.add(Person(email="co@example.com"))
    catalogue("okta-app", owner=OKTA_USER, co_owners=("co@example.com",))
    leaver_token = make_token("maker", OKTA_USER)
    assert client.get("/api/v1/apps", headers=auth(leaver_token)).status_code == 200

    # Okta looks a user up by userName before creating it; userName is case-insensitive.
    found = scim_call(client, "GET", "/Users", scim, filter='userName eq "Test.User@example.com"')
    assert found.status_code == 200 and found.json()["totalResults"] == 1
    assert found.json()["Resources"][0]["id"] == user["id"]
    assert (
        scim_call(client, "GET", "/Users", scim, filter='userName eq "nobody@okta.local"').json()["totalResults"] == 0
    )

    patched = scim_call(client, "PATCH", f"/Users/{user['id']}", scim, idp_payload("okta_deactivate_user"))
    assert patched.status_code == 200, patched.text
    assert patched.json()["active"] is False
    [(event_id, source, payload, _)] = owner_left_events()
    assert (source, payload["email"], payload["actor"]) == ("scim", OKTA_USER, "scim:okta")
    assert run_event(event_id).status == "handled"
    assert _app("okta-app").owner_email == "co@example.com"
    assert _person(OKTA_USER).active is False
    assert client.get("/api/v1/apps", headers=auth(leaver_token)).status_code == 401

    # Okta retries: the same PATCH again raises nothing new.
    again = scim_call(client, "PATCH", f"/Users/{user['id']}", scim, idp_payload("okta_deactivate_user"))
    assert again.status_code == 200 and len(owner_left_events()) == 1

    # A reactivation is recorded and ends nothing: the person stays gone, the app stays re-owned.
    back = scim_call(client, "PATCH", f"/Users/{user['id']}", scim, idp_payload("okta_reactivate_user"))
    assert back.status_code == 200 and back.json()["active"] is True
    assert [d["idp_user_id"] for d in _audit("idp.user_reactivated")] == [user["id"]]
    assert _person(OKTA_USER).active is False and _app("okta-app").owner_email == "co@example.com"
    assert len(owner_left_events()) == 1
    # Deactivated a second time: a second departure, a second event.
    scim_call(client, "PATCH", f"/Users/{user['id']}", scim, idp_payload("okta_deactivate_user"))
    assert len(owner_left_events()) == 2


def test_entra_string_boolean_capitalised_ops_and_manager(client: TestClient, make_token: Callable[..., str]) -> None:
    """Entra's create, its Add-manager list form, multi-valued replace and `"active": "False"` are all understood."""
    scim = make_token("scim", None, "okta")
    manager = scim_call(client, "POST", "/Users", scim, idp_payload("entra_create_user"))
    assert manager.status_code == 201, manager.text
    report_body = {
        **idp_payload("entra_create_user"),
        "externalId": "report-1",
        "userName": "report@testuser.com",
        "emails": [{"primary": True, "type": "work", "value": "report@testuser.com"}],
    }
    report = scim_call(client, "POST", "/Users", scim, report_body).json()
    added = scim_call(client, "PATCH", f"/Users/{report['id']}", scim, idp_payload("entra_add_manager"))
    assert added.status_code == 200, added.text
    enterprise = added.json()["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"]
    assert enterprise["manager"]["value"] == "Test_User_ab6490ee-1e48-479e-a20b-2d77186b5dd1"
    assert _person("report@testuser.com").manager_email == ENTRA_EMAIL

    renamed = scim_call(client, "PATCH", f"/Users/{report['id']}", scim, idp_payload("entra_update_multivalued"))
    assert renamed.status_code == 200, renamed.text
    assert renamed.json()["name"]["familyName"] == "updatedFamilyName"

    disabled = scim_call(
        client, "PATCH", f"/Users/{manager.json()['id']}", scim, idp_payload("entra_disable_user_string")
    )
    assert disabled.status_code == 200 and disabled.json()["active"] is False
    again = scim_call(client, "PATCH", f"/Users/{manager.json()['id']}", scim, idp_payload("entra_disable_user"))
    assert again.status_code == 200
    [(_, _, payload, _)] = owner_left_events()
    assert payload["email"] == ENTRA_EMAIL


def test_put_with_active_false_and_delete_raise_owner_left(client: TestClient, make_token: Callable[..., str]) -> None:
    """A PUT deactivation and a hard DELETE each raise owner.left; a deleted user is 404 afterwards."""
    scim = make_token("scim", None, "okta")
    okta = scim_call(client, "POST", "/Users", scim, _okta("okta_create_user")).json()
    entra = scim_call(client, "POST", "/Users", scim, idp_payload("entra_create_user")).json()
    replaced = scim_call(client, "PUT", f"/Users/{okta['id']}", scim, {**_okta("okta_create_user"), "active": False})
    assert replaced.status_code == 200 and replaced.json()["active"] is False
    assert scim_call(client, "DELETE", f"/Users/{entra['id']}", scim).status_code == 204
    assert sorted(p["email"] for _, _, p, _ in owner_left_events()) == sorted([OKTA_USER, ENTRA_EMAIL])
    _assert_scim_error(scim_call(client, "GET", f"/Users/{entra['id']}", scim), 404)
    _assert_scim_error(scim_call(client, "DELETE", f"/Users/{entra['id']}", scim), 404)
    assert len(owner_left_events()) == 2


def test_deactivating_someone_the_catalog_does_not_know_is_recorded(
    client: TestClient, make_token: Callable[..., str]
) -> None:
    """A user with no person row (none was made: no email) still answers 200 and its event says why nothing moved."""
    scim = make_token("scim", None, "okta")
    body = {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "no-email-user", "active": True}
    user = scim_call(client, "POST", "/Users", scim, body).json()
    answer = scim_call(client, "PATCH", f"/Users/{user['id']}", scim, idp_payload("entra_disable_user"))
    assert answer.status_code == 200
    [(event_id, _, payload, _)] = owner_left_events()
    assert run_event(event_id).status == "handled"
    from orchestrator.db import session_scope
    from orchestrator.events.models import Event

    with session_scope(write=False) as session:
        row = session.get(Event, event_id)
        assert row is not None and "not a known person" in (row.last_error or "")
    assert payload["email"] == "no-email-user"


def test_pagination_is_one_based_and_counts_everything(client: TestClient, make_token: Callable[..., str]) -> None:
    """startIndex/count pages through users in creation order; totalResults counts them all."""
    scim = make_token("scim", None, "okta")
    names = [f"user{i}@example.com" for i in range(5)]
    for name in names:
        assert scim_call(client, "POST", "/Users", scim, {"userName": name}).status_code == 201
    page = scim_call(client, "GET", "/Users", scim, startIndex=3, count=2).json()
    assert (page["totalResults"], page["startIndex"], page["itemsPerPage"]) == (5, 3, 2)
    assert [r["userName"] for r in page["Resources"]] == names[2:4]
    last = scim_call(client, "GET", "/Users", scim, startIndex=5, count=10).json()
    assert [r["userName"] for r in last["Resources"]] == names[4:]


@pytest.mark.parametrize(
    ("method", "path", "body", "params", "status", "scim_type"),
    [
        ("GET", "/Users", None, {"filter": 'title co "x"'}, 400, "invalidFilter"),
        ("GET", "/Users", None, {"count": "many"}, 400, "invalidValue"),
        ("POST", "/Users", {"name": {"givenName": "x"}}, {}, 400, "invalidValue"),
        ("POST", "/Users", "not an object", {}, 400, "invalidSyntax"),
        ("POST", "/Users", {"userName": "x", "active": "maybe"}, {}, 400, "invalidValue"),
        ("GET", "/Users/unknown-id", None, {}, 404, None),
        ("GET", "/Schemas/urn:nope", None, {}, 404, None),
    ],
)
def test_bad_requests_get_scim_errors(
    client: TestClient,
    make_token: Callable[..., str],
    method: str,
    path: str,
    body: Any,
    params: dict[str, str],
    status: int,
    scim_type: str | None,
) -> None:
    """Each refusal is a SCIM Error with the RFC 7644 status and scimType."""
    _assert_scim_error(
        scim_call(client, method, path, make_token("scim", None, "okta"), body, **params), status, scim_type
    )


def test_patch_and_create_refusals(client: TestClient, make_token: Callable[..., str]) -> None:
    """A duplicate userName is 409 uniqueness; an unknown path 400 invalidPath; broken JSON 400 invalidSyntax."""
    scim = make_token("scim", None, "okta")
    user = scim_call(client, "POST", "/Users", scim, _okta("okta_create_user")).json()
    _assert_scim_error(scim_call(client, "POST", "/Users", scim, _okta("okta_create_user")), 409, "uniqueness")
    bad_path = {"Operations": [{"op": "replace", "path": "shoeSize", "value": "44"}]}
    _assert_scim_error(scim_call(client, "PATCH", f"/Users/{user['id']}", scim, bad_path), 400, "invalidPath")
    _assert_scim_error(
        scim_call(client, "PATCH", f"/Users/{user['id']}", scim, {"Operations": []}), 400, "invalidSyntax"
    )
    broken = client.post(
        "/scim/v2/Users", content=b"{not json", headers={**auth(scim), "Content-Type": "application/scim+json"}
    )
    _assert_scim_error(broken, 400, "invalidSyntax")
    assert owner_left_events() == []


def test_discovery_endpoints(client: TestClient, make_token: Callable[..., str]) -> None:
    """ServiceProviderConfig, ResourceTypes and Schemas describe Users with the enterprise extension."""
    scim = make_token("scim", None, "okta")
    config = scim_call(client, "GET", "/ServiceProviderConfig", scim).json()
    assert config["patch"]["supported"] is True and config["bulk"]["supported"] is False
    assert config["filter"] == {"supported": True, "maxResults": 200}
    types = scim_call(client, "GET", "/ResourceTypes", scim).json()
    [user_type] = types["Resources"]
    assert user_type["endpoint"] == "/Users"
    assert user_type["schemaExtensions"][0]["schema"] == "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
    assert scim_call(client, "GET", "/ResourceTypes/User", scim).json()["id"] == "User"
    schemas = scim_call(client, "GET", "/Schemas", scim).json()
    ids = {s["id"] for s in schemas["Resources"]}
    assert ids == {
        "urn:ietf:params:scim:schemas:core:2.0:User",
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User",
    }
    one = scim_call(client, "GET", "/Schemas/urn:ietf:params:scim:schemas:core:2.0:User", scim).json()
    assert any(a["name"] == "userName" for a in one["attributes"])


def test_okta_documented_create_with_reserved_domain_is_accepted(
    client: TestClient, make_token: Callable[..., str]
) -> None:
    """Okta's example user, verbatim (`@okta.local`), is provisioned: the IdP owns its addresses."""
    created = scim_call(client, "POST", "/Users", make_token("scim", None, "okta"), idp_payload("okta_create_user"))
    assert created.status_code == 201, created.text
    assert created.json()["emails"][0]["value"] == "test.user@okta.local"


def test_search_attributes_and_unknown_endpoints(client: TestClient, make_token: Callable[..., str]) -> None:
    """POST /Users/.search, attributes/excludedAttributes, 405 on a known path, SCIM 404 elsewhere."""
    scim = make_token("scim", None, "okta")
    user = scim_call(client, "POST", "/Users", scim, _okta("okta_create_user")).json()
    found = scim_call(
        client, "POST", "/Users/.search", scim, {"filter": f'userName eq "{OKTA_USER}"', "attributes": ["userName"]}
    ).json()
    assert found["totalResults"] == 1 and "name" not in found["Resources"][0]
    one = scim_call(client, "GET", f"/Users/{user['id']}", scim, excludedAttributes="name").json()
    assert "name" not in one and one["userName"] == OKTA_USER
    refused = scim_call(client, "DELETE", "/ServiceProviderConfig", scim)
    _assert_scim_error(refused, 405)
    assert refused.headers["allow"] == "GET"
    _assert_scim_error(scim_call(client, "GET", "/Groups", scim), 404)
    _assert_scim_error(client.get("/scim/v2/Groups"), 401)
