"""The review worker fetches only allowed repositories, whatever the catalog holds (a URL stored before the rule)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from orchestrator.catalog.policy import ReviewLimits
from orchestrator.config import Settings
from orchestrator.errors import IntegrationError
from orchestrator.reviews.source.fetch import fetch_source
from tests.reviews.helpers import make_repo


class _Counting(BaseHTTPRequestHandler):
    hits: list[str] = []

    def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
        self.hits.append(self.path)
        self.send_response(404)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the stdlib's signature
        """Quiet."""


@pytest.fixture
def internal_service() -> Iterator[tuple[str, list[str]]]:
    """A plain-http service on localhost standing in for an internal one; its URL and the paths it was asked for."""
    hits: list[str] = []
    handler = type("Handler", (_Counting,), {"hits": hits})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/repo.git", hits
    server.shutdown()
    server.server_close()


def _settings(**overrides: Any) -> Settings:
    return Settings(_env_file=None, **{"review_local_root": None, **overrides})


def test_plain_http_is_refused_without_a_request(internal_service: tuple[str, list[str]], tmp_path: Path) -> None:
    """An http:// URL in the catalog never reaches the network."""
    url, hits = internal_service
    with pytest.raises(IntegrationError, match="repository refused"):
        fetch_source(url, ref=None, dest=tmp_path / "co", limits=ReviewLimits(), settings=_settings())
    assert hits == []


def test_local_paths_are_refused_by_default(tmp_path: Path) -> None:
    """A real repository on the worker host is not read when REVIEW_LOCAL_ROOT is unset."""
    repo = make_repo(tmp_path / "r", {"secret.txt": "host file\n"})
    for url in (str(repo.path), repo.path.as_uri()):
        with pytest.raises(IntegrationError, match="REVIEW_LOCAL_ROOT"):
            fetch_source(url, ref=None, dest=tmp_path / "co", limits=ReviewLimits(), settings=_settings())
    assert not (tmp_path / "co" / "secret.txt").exists()


def test_local_paths_under_the_root_are_fetched(tmp_path: Path) -> None:
    """Under REVIEW_LOCAL_ROOT (the embedded demo, tests) a local repository is reviewed as before."""
    repo = make_repo(tmp_path / "r", {"a.py": "v1\n"})
    settings = _settings(review_local_root=tmp_path)
    out = fetch_source(str(repo.path), ref=None, dest=tmp_path / "co", limits=ReviewLimits(), settings=settings)
    assert out.commit and (tmp_path / "co" / "a.py").read_text() == "v1\n"
    with pytest.raises(IntegrationError, match="under REVIEW_LOCAL_ROOT"):
        fetch_source("/etc", ref=None, dest=tmp_path / "co2", limits=ReviewLimits(), settings=settings)
