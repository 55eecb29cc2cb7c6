"""Registration (JSON, YAML, idempotent) and the actions: retire, extension request, owner transfer."""

from __future__ import annotations

from typing import Any

import yaml
from sqlmodel import select

from orchestrator.approvals.models import ApprovalRequest, ApprovalStatus
from orchestrator.catalog import service as catalog
from orchestrator.catalog.lifecycle import Action
from orchestrator.catalog.models import MicroApp, Person
from orchestrator.catalog.policy import get_policy
from orchestrator.db import session_scope
from orchestrator.events.models import Event
from tests.factories import manifest
from tests.http.helpers import MAKER, OTHER, Tokens, register, seed_app


def _events(app_id: str, type_: str) -> list[Event]:
    with session_scope(write=False) as session:
        return list(session.exec(select(Event).where(Event.app_id == app_id, Event.type == type_)).all())


class TestRegister:
    """POST /api/v1/apps catalogues an app from its manifest and raises app.created."""

    def test_json(self, client: Any, tokens: Tokens) -> None:
        """A JSON manifest registers the app in `registered` with a sandbox expiry and one app.created event."""
        response = client.post("/api/v1/apps", json=manifest(), headers=tokens.headers("maker"))
        assert response.status_code == 201
        body = response.json()
        assert body["duplicate"] is False
        assert body["app"]["stage"] == "registered"
        assert body["app"]["expires_at"] is not None
        assert [e.id for e in _events("expense-helper", "app.created")] == [body["event_id"]]

    def test_yaml(self, client: Any, tokens: Tokens) -> None:
        """A YAML manifest with Content-Type application/yaml registers the same way."""
        text = yaml.safe_dump(manifest(name="Yaml App", data_class="Restricted", co_owners=[OTHER]))
        response = client.post(
            "/api/v1/apps", content=text, headers={"Content-Type": "application/yaml", **tokens.headers("maker")}
        )
        assert response.status_code == 201, response.text
        app = response.json()["app"]
        assert (app["id"], app["data_class"], app["co_owners"]) == ("yaml-app", "restricted", [OTHER])

    def test_idempotency_key_repeat_returns_first_event(self, client: Any, tokens: Tokens) -> None:
        """A repeat with the same Idempotency-Key answers 200 with the first event id and writes nothing."""
        headers = {"Idempotency-Key": "retry-7f3a", **tokens.headers("maker")}
        first = client.post("/api/v1/apps", json=manifest(), headers=headers)
        assert first.status_code == 201
        again = client.post("/api/v1/apps", json=manifest(), headers=headers)
        assert again.status_code == 200
        assert again.json()["event_id"] == first.json()["event_id"]
        assert again.json()["duplicate"] is True
        assert len(_events("expense-helper", "app.created")) == 1
        shown = client.get("/api/v1/apps/expense-helper", headers=tokens.headers("maker")).json()
        assert [e["action"] for e in shown["timeline"]] == ["app.registered"]

    def test_idempotency_key_is_per_caller(self, client: Any, tokens: Tokens) -> None:
        """Another caller's identical key does not replay the first caller's registration."""
        key = {"Idempotency-Key": "same-key"}
        assert (
            client.post("/api/v1/apps", json=manifest(), headers={**key, **tokens.headers("maker")}).status_code == 201
        )
        other = client.post(
            "/api/v1/apps", json=manifest(owner=OTHER, name="Other App"), headers={**key, **tokens.headers("other")}
        )
        assert other.status_code == 201
        assert other.json()["duplicate"] is False

    def test_idempotency_key_reused_for_another_app(self, client: Any, tokens: Tokens) -> None:
        """Reusing a key for a different manifest is a 409, not a silent replay."""
        headers = {"Idempotency-Key": "k1", **tokens.headers("maker")}
        assert client.post("/api/v1/apps", json=manifest(), headers=headers).status_code == 201
        response = client.post("/api/v1/apps", json=manifest(name="Different"), headers=headers)
        assert response.status_code == 409
        assert response.json()["error"] == "conflict"

    def test_idempotency_key_too_long(self, client: Any, tokens: Tokens) -> None:
        """An Idempotency-Key over 200 characters is a 422 naming the header."""
        headers = {"Idempotency-Key": "k" * 201, **tokens.headers("maker")}
        response = client.post("/api/v1/apps", json=manifest(), headers=headers)
        assert response.status_code == 422
        assert response.json()["detail"][0]["in"] == "header"


class TestRetire:
    """POST /retire moves the app to sunsetting, records why, and raises app.retire_requested."""

    def test_retire(self, client: Any, tokens: Tokens) -> None:
        """The app moves to sunsetting; the timeline shows who and why."""
        app = register(client, tokens.headers("maker"))
        response = client.post(
            f"/api/v1/apps/{app['id']}/retire", json={"reason": "replaced by v2"}, headers=tokens.headers("maker")
        )
        assert response.status_code == 202
        assert response.json()["app"]["stage"] == "sunsetting"
        assert [e.id for e in _events(app["id"], "app.retire_requested")] == [response.json()["event_id"]]
        timeline = client.get(f"/api/v1/apps/{app['id']}", headers=tokens.headers("maker")).json()["timeline"]
        last = timeline[-1]
        assert (last["action"], last["actor"], last["reason"]) == ("lifecycle.retire", MAKER, "replaced by v2")
        assert last["data"] == {"from": "registered", "to": "sunsetting"}
        assert [e["seq"] for e in timeline] == sorted(e["seq"] for e in timeline)

    def test_retire_without_body(self, client: Any, tokens: Tokens) -> None:
        """The reason is optional; no body at all is fine."""
        app = register(client, tokens.headers("maker"))
        response = client.post(f"/api/v1/apps/{app['id']}/retire", headers=tokens.headers("maker"))
        assert response.status_code == 202


class TestExtension:
    """POST /extension opens one approval request per cycle."""

    def test_one_approval_per_cycle(self, client: Any, tokens: Tokens) -> None:
        """A second ask while one is pending returns it; after a decision, the next ask opens cycle 2."""
        app = register(client, tokens.headers("maker"))
        url = f"/api/v1/apps/{app['id']}/extension"
        first = client.post(url, json={"days": 30, "reason": "pilot"}, headers=tokens.headers("maker"))
        assert first.status_code == 202
        assert first.json()["duplicate"] is False
        again = client.post(url, json={"days": 30}, headers=tokens.headers("maker"))
        assert again.status_code == 200
        assert again.json()["approval_id"] == first.json()["approval_id"]
        assert again.json()["duplicate"] is True
        assert again.json()["event_id"] is None
        assert len(_events(app["id"], "extension.requested")) == 1

        with session_scope() as session:
            request = session.get(ApprovalRequest, first.json()["approval_id"])
            assert request is not None
            request.status = ApprovalStatus.approved
            session.add(request)
        third = client.post(url, json={}, headers=tokens.headers("maker"))
        assert third.status_code == 202
        with session_scope(write=False) as session:
            rows = session.exec(select(ApprovalRequest).where(ApprovalRequest.app_id == app["id"])).all()
        assert sorted((r.cycle, r.status.value) for r in rows) == [(1, "approved"), (2, "pending")]
        assert next(r for r in rows if r.cycle == 2).payload == {
            "days": get_policy().for_class("internal").max_extension_days
        }

    def test_more_days_than_policy_allows(self, client: Any, tokens: Tokens) -> None:
        """Asking beyond the data class's maximum extension is a 422 naming days."""
        app = register(client, tokens.headers("maker"))
        too_many = get_policy().for_class("internal").max_extension_days + 1
        response = client.post(
            f"/api/v1/apps/{app['id']}/extension", json={"days": too_many}, headers=tokens.headers("maker")
        )
        assert response.status_code == 422
        assert response.json()["detail"][0]["field"] == "days"

    def test_nothing_to_extend(self, client: Any, tokens: Tokens) -> None:
        """An app with no expiry (retired here) cannot be extended: 409 with its stage and allowed actions."""
        app = register(client, tokens.headers("maker"))
        client.post(f"/api/v1/apps/{app['id']}/retire", json={}, headers=tokens.headers("maker"))
        response = client.post(f"/api/v1/apps/{app['id']}/extension", json={}, headers=tokens.headers("maker"))
        assert response.status_code == 409
        assert response.json()["detail"]["stage"] == "sunsetting"


class TestTransfer:
    """POST /owner gives an app a new owner."""

    def test_orphaned_app_returns_to_previous_stage(self, client: Any, tokens: Tokens) -> None:
        """An app orphaned from in_review goes back to in_review under its new owner."""
        app_id = seed_app(name="Orphan", owner=MAKER)
        policy = get_policy()
        with session_scope() as session:
            app = catalog.get_app(session, app_id)
            catalog.apply_action(session, app, Action.submit_for_review, actor="test", policy=policy)
            person = session.get(Person, MAKER)
            assert person is not None
            person.active = False
            session.add(person)
            session.flush()
            catalog.apply_action(session, app, Action.orphan, actor="test", policy=policy)
        assert client.get(f"/api/v1/apps/{app_id}", headers=tokens.headers("admin")).json()["stage"] == "orphaned"

        response = client.post(
            f"/api/v1/apps/{app_id}/owner",
            json={"owner": OTHER, "reason": "team lead takes over"},
            headers=tokens.headers("approver"),
        )
        assert response.status_code == 200, response.text
        moved = response.json()["app"]
        assert (moved["stage"], moved["owner"], moved["previous_stage"]) == ("in_review", OTHER, None)
        actions = [
            e["action"]
            for e in client.get(f"/api/v1/apps/{app_id}", headers=tokens.headers("other")).json()["timeline"]
        ]
        assert actions[-2:] == ["lifecycle.reassign", "app.owner_transferred"]

    def test_owner_hands_over(self, client: Any, tokens: Tokens) -> None:
        """The owning maker transfers their app; it then belongs to (and is visible to) the new owner only."""
        app = register(client, tokens.headers("maker"))
        response = client.post(
            f"/api/v1/apps/{app['id']}/owner", json={"owner": OTHER}, headers=tokens.headers("maker")
        )
        assert response.status_code == 200
        assert response.json()["app"]["stage"] == "registered"
        assert client.get(f"/api/v1/apps/{app['id']}", headers=tokens.headers("other")).status_code == 200
        assert client.get(f"/api/v1/apps/{app['id']}", headers=tokens.headers("maker")).status_code == 404

    def test_to_a_person_who_left(self, client: Any, tokens: Tokens) -> None:
        """Transferring to someone inactive is a 422 naming owner, and changes nothing."""
        app = register(client, tokens.headers("maker"))
        with session_scope() as session:
            session.add(Person(email="gone@example.com", active=False))
        response = client.post(
            f"/api/v1/apps/{app['id']}/owner", json={"owner": "gone@example.com"}, headers=tokens.headers("admin")
        )
        assert response.status_code == 422
        assert response.json()["detail"][0]["field"] == "owner"
        with session_scope(write=False) as session:
            row = session.get(MicroApp, app["id"])
            assert row is not None and row.owner_email == MAKER


class TestConcurrentRegister:
    """Simultaneous registrations never answer 500 and never create the app twice."""

    def _race(self, client: Any, headers: dict[str, str], n: int = 6) -> list[Any]:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=n) as pool:
            futures = [pool.submit(client.post, "/api/v1/apps", json=manifest(), headers=headers) for _ in range(n)]
            return [f.result() for f in futures]

    def test_same_idempotency_key(self, client: Any, tokens: Tokens) -> None:
        """Racing repeats of one key: one 201, the rest 200 duplicates of the same event."""
        responses = self._race(client, {"Idempotency-Key": "race-1", **tokens.headers("maker")})
        statuses = sorted(r.status_code for r in responses)
        assert statuses == [200] * 5 + [201], [r.text for r in responses]
        assert len({r.json()["event_id"] for r in responses}) == 1
        assert len(_events("expense-helper", "app.created")) == 1

    def test_same_app_without_key(self, client: Any, tokens: Tokens) -> None:
        """Racing registrations of one app id without a key: one 201, the rest 409 conflicts."""
        responses = self._race(client, tokens.headers("maker"))
        statuses = sorted(r.status_code for r in responses)
        assert statuses == [201] + [409] * 5, [r.text for r in responses]
        assert len(_events("expense-helper", "app.created")) == 1
