"""Which repositories a manifest may name: https on REVIEW_REPO_HOSTS, local paths only under REVIEW_LOCAL_ROOT."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from orchestrator.catalog.manifest import parse_manifest
from orchestrator.errors import ValidationFailed
from tests.factories import auth, manifest


@pytest.fixture
def local_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """REVIEW_LOCAL_ROOT set to a fresh directory holding one repository folder."""
    from orchestrator.config import get_settings

    root = tmp_path / "repos"
    (root / "app").mkdir(parents=True)
    monkeypatch.setenv("REVIEW_LOCAL_ROOT", str(root))
    get_settings.cache_clear()
    yield root
    get_settings.cache_clear()


@pytest.fixture
def no_local_root(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The production default: REVIEW_LOCAL_ROOT unset."""
    from orchestrator.config import get_settings

    monkeypatch.delenv("REVIEW_LOCAL_ROOT", raising=False)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def _refusal(repo: str) -> str:
    with pytest.raises(ValidationFailed) as caught:
        parse_manifest(manifest(repo=repo))
    [error] = caught.value.detail
    assert error["field"] == "repo"
    return str(error["reason"])


@pytest.mark.parametrize(
    "repo",
    [
        "http://github.com/example/x",
        "http://169.254.169.254/latest/meta-data",
        "git@github.com:example/x.git",
        "ssh://git@github.com/example/x.git",
        "git://github.com/example/x.git",
        "ftp://example.com/x",
        "https://internal.example.com/x.git",
        "https://github.com:8443/example/x",
        "https://127.0.0.1/x",
    ],
)
def test_network_repositories_off_the_allow_list_are_refused(repo: str, no_local_root: None) -> None:
    """Only https:// on an allowed host: no http, ssh, git@, other hosts, ports or IPs."""
    assert "https" in _refusal(repo) or "allowed host" in _refusal(repo)


@pytest.mark.parametrize("repo", ["/etc", "/srv/app", "file:///etc/passwd", "file:///srv/app"])
def test_local_repositories_are_off_by_default(repo: str, no_local_root: None) -> None:
    """With no REVIEW_LOCAL_ROOT, no path of the worker host is accepted."""
    assert "REVIEW_LOCAL_ROOT" in _refusal(repo)


def test_local_repositories_only_under_the_root(local_root: Path) -> None:
    """Under the root: accepted; outside, via `..`, or via a link pointing out: refused."""
    inside = local_root / "app"
    assert parse_manifest(manifest(repo=str(inside))).repo == str(inside)
    assert parse_manifest(manifest(repo=inside.as_uri())).repo == inside.as_uri()
    (local_root / "out").symlink_to("/etc")
    for repo in ["/etc", f"{inside}/../../..", str(local_root / "out"), "file:///etc/passwd", "file://host/x"]:
        assert "REVIEW_LOCAL_ROOT" in _refusal(repo) or "local path" in _refusal(repo), repo


def test_allowed_hosts_come_from_settings(monkeypatch: pytest.MonkeyPatch, no_local_root: None) -> None:
    """REVIEW_REPO_HOSTS replaces the default github.com."""
    from orchestrator.config import get_settings

    monkeypatch.setenv("REVIEW_REPO_HOSTS", "git.example.com, GHE.corp.example")
    get_settings.cache_clear()
    assert parse_manifest(manifest(repo="https://ghe.corp.example/team/x")).repo
    assert "git.example.com" in _refusal("https://github.com/example/x")


def test_register_over_http_refuses_a_local_path(client: Any, make_token: Any, no_local_root: None) -> None:
    """At the door: 422 naming `repo`, nothing catalogued."""
    headers = auth(make_token("maker", "maker@example.com"))
    response = client.post("/api/v1/apps", json=manifest(repo="/etc"), headers=headers)
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["field"] == "repo"
    assert client.get("/api/v1/apps", headers=headers).json()["items"] == []
