"""Every GitHub mapping, from a real signed payload through the handler, on SQLite and PostgreSQL."""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING

from orchestrator.catalog.models import MicroApp, Person
from orchestrator.events.runner import run_event
from tests.events.helpers import HELLO_REPO, OCTO_REPO, audit_actions, catalogue, delivery, events, payload

if TYPE_CHECKING:
    from fastapi.testclient import TestClient

    from tests.events.fake_github import FakeGitHub

URL = "/webhooks/github"
GHES_REPO = "http://rachmari-0a7d40112fe15292b.ghe-test.net/Octocoders/Hello-World"


def _app(app_id: str) -> MicroApp | None:
    from orchestrator.catalog.models import MicroApp
    from orchestrator.db import session_scope

    with session_scope(write=False) as session:
        return session.get(MicroApp, app_id)


def test_push_to_default_branch_is_app_updated(client: TestClient, webhook_secret: str) -> None:
    """A push to the default branch of a catalogued repo becomes app.updated with its commit, handled once."""
    catalogue("hello", repo=HELLO_REPO + ".git")
    body = payload("push.with-new-branch.payload")
    response = client.post(URL, **delivery("push", body, webhook_secret))
    assert response.status_code == 202, response.text
    event_id = response.json()["event_id"]
    [event] = events(id=event_id)
    assert (event.type, event.app_id, event.source) == ("app.updated", "hello", "github")
    assert (event.payload["after"], event.payload["ref"]) == (body["after"], "refs/heads/master")
    assert run_event(event_id).status == "handled"
    assert run_event(event_id).status == "skipped"


def test_other_pushes_are_ignored(client: TestClient, webhook_secret: str) -> None:
    """Tag pushes, deleted branches, other branches and unknown repositories are 202 ignored."""
    catalogue("hello", repo=HELLO_REPO)
    tag = payload("push.payload")
    other_branch = payload("push.with-new-branch.payload")
    other_branch["ref"] = "refs/heads/feature"
    unknown = copy.deepcopy(payload("push.with-new-branch.payload"))
    unknown["repository"]["html_url"] = "https://github.com/someone/else"
    for key in ("clone_url", "git_url", "ssh_url", "svn_url"):
        unknown["repository"].pop(key)
    for body in (tag, other_branch, unknown):
        response = client.post(URL, **delivery("push", body, webhook_secret))
        assert response.status_code == 202 and response.json()["ignored"] is True, response.text
    # One read: a second one may see the first one's events marked published meanwhile.
    assert {e.type for e in events()} <= {"app.created"}


def test_repository_created_with_manifest_registers_app(
    client: TestClient, webhook_secret: str, fake_github: FakeGitHub
) -> None:
    """repository.created whose repo holds microapp.yaml (read via the contents API) catalogues the app."""
    fake_github.files[("Octocoders/Hello-World", "microapp.yaml")] = (
        b"name: Hello World\nowner: octo@example.com\ndata_class: internal\ndescription: from GitHub\n"
    )
    fake_github.fail_next = 1  # one 502 first: the client retries
    response = client.post(URL, **delivery("repository", payload("repository.created.payload"), webhook_secret))
    assert response.status_code == 202, response.text
    assert run_event(response.json()["event_id"]).status == "handled"
    app = _app("hello-world")
    assert app is not None and app.repo_url == OCTO_REPO and app.owner_email == "octo@example.com"
    [created] = events(type="app.created", app_id="hello-world")
    assert created.source == "github"


def test_repository_created_without_manifest_catalogues_nothing(
    client: TestClient, webhook_secret: str, fake_github: FakeGitHub
) -> None:
    """A new repository without microapp.yaml is handled with a note and catalogues nothing."""
    response = client.post(URL, **delivery("repository", payload("repository.created.payload"), webhook_secret))
    event_id = response.json()["event_id"]
    assert run_event(event_id).status == "handled"
    [event] = events(id=event_id)
    assert "no microapp.yaml" in (event.last_error or "")
    assert _app("hello-world") is None


def test_repository_archived_or_deleted_retires_app(client: TestClient, webhook_secret: str) -> None:
    """repository archived or deleted moves the app to sunsetting and emits app.retire_requested."""
    catalogue("ghes-app", repo=GHES_REPO)
    catalogue("octo-app", repo=OCTO_REPO)
    deleted = payload("repository.deleted.payload")
    archived = payload("repository.created.payload")
    archived["action"] = "archived"
    for app_id, body in (("ghes-app", deleted), ("octo-app", archived)):
        response = client.post(URL, **delivery("repository", body, webhook_secret))
        assert response.status_code == 202, response.text
        assert run_event(response.json()["event_id"]).status == "handled"
        app = _app(app_id)
        assert app is not None and app.stage.value == "sunsetting"
        [retire] = events(type="app.retire_requested", app_id=app_id)
        assert retire.source == "github"


def test_repository_renamed_or_transferred_updates_repo_url(client: TestClient, webhook_secret: str) -> None:
    """renamed / transferred update the app's repo URL and write an audit entry."""
    renamed = payload("repository.renamed.payload")
    renamed["changes"]["repository"]["name"]["from"] = "Old-Name"
    catalogue("renamed-app", repo="https://github.com/Octocoders/Old-Name")
    response = client.post(URL, **delivery("repository", renamed, webhook_secret))
    assert run_event(response.json()["event_id"]).status == "handled"
    app = _app("renamed-app")
    assert app is not None and app.repo_url == OCTO_REPO
    [moved] = [e for e in audit_actions("renamed-app") if e.action == "app.repo_moved"]
    assert moved.data == {"from": "https://github.com/Octocoders/Old-Name", "to": OCTO_REPO}

    catalogue("moved-app", repo="https://github.com/octocat/Hello-World")
    response = client.post(URL, **delivery("repository", payload("repository.transferred.payload"), webhook_secret))
    assert run_event(response.json()["event_id"]).status == "handled"
    app = _app("moved-app")
    assert app is not None and app.repo_url == OCTO_REPO


def test_member_removed_is_owner_left(client: TestClient, webhook_secret: str) -> None:
    """organization.member_removed for a known GitHub login becomes owner.left for that person."""
    from orchestrator.db import session_scope

    body = payload("organization.member_removed.payload")
    assert client.post(URL, **delivery("organization", body, webhook_secret)).json()["ignored"] is True
    with session_scope() as session:
        session.add(Person(email="hacker@example.com", github_login="hacktocat"))
    response = client.post(URL, **delivery("organization", body, webhook_secret))
    assert response.status_code == 202, response.text
    [event] = events(id=response.json()["event_id"])
    assert event.type == "owner.left" and event.payload["email"] == "hacker@example.com"
    assert run_event(event.id).status == "handled"
