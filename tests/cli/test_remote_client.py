"""The remote commands' HTTP client (`orchestrator.cli.remote.Api`) on answers a real API never gives.

A small HTTP server on a free port plays a proxy or a broken deployment: a redirect, an HTML error
page, a server that never answers. The happy paths run against the real API in the other CLI tests.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from typer.testing import CliRunner

from orchestrator.cli import build, remote


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - the name http.server calls
        if self.path.startswith("/api/v1/apps/moved"):
            self.send_response(302)
            self.send_header("Location", "http://127.0.0.1:1/elsewhere")
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif self.path.startswith("/api/v1/apps/slow"):
            time.sleep(2)
        else:
            body = b"<html>Bad Gateway</html>"
            self.send_response(502)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the signature http.server calls
        pass


@pytest.fixture
def server() -> Iterator[str]:
    """Base URL of the stand-in server."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def show(url: str, app_id: str) -> tuple[int, str]:
    """Exit code and stderr of `orchestrator show APP_ID --url URL` without a token."""
    result = CliRunner().invoke(build(), ["show", app_id, "--url", url], env={"ORCHESTRATOR_TOKEN": ""})
    return result.exit_code, result.stderr


def test_a_non_json_error_page_is_reported_with_its_status(server: str) -> None:
    """An HTML 502 from a proxy: exit 1, `error: http_502: <the page>`."""
    assert show(server, "broken") == (1, "error: http_502: <html>Bad Gateway</html>\n")


def test_a_redirect_is_not_followed(server: str) -> None:
    """A 302 is reported as the answer it is, not followed to another host."""
    code, err = show(server, "moved")
    assert code == 1 and err.startswith("error: http_302: ")


def test_a_server_that_never_answers_times_out(server: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """No answer within the timeout: exit 3 saying so."""
    monkeypatch.setattr(remote, "TIMEOUT_SECONDS", 0.5)
    assert show(server, "slow") == (3, f"error: the API at {server} did not answer within 0.5s\n")


class _Pages(BaseHTTPRequestHandler):
    """GET /api/v1/apps in pages of `limit` over APPS, on HTTP/1.1 keep-alive; records each client port."""

    protocol_version = "HTTP/1.1"
    APPS = [f"app-{n:02d}" for n in range(7)]
    ports: list[int] = []

    def do_GET(self) -> None:  # noqa: N802 - the name http.server calls
        from urllib.parse import parse_qs, urlsplit

        type(self).ports.append(self.client_address[1])
        query = parse_qs(urlsplit(self.path).query)
        start = int(query.get("cursor", ["0"])[0])
        size = int(query["limit"][0])
        chunk = self.APPS[start : start + size]
        following = start + size if start + size < len(self.APPS) else None
        items = [
            {"id": a, "name": a, "stage": "production", "data_class": "internal", "owner": "o@example.com"}
            for a in chunk
        ]
        body = json.dumps({"items": items, "next_cursor": str(following) if following else None}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the signature http.server calls
        pass


@pytest.fixture
def pages() -> Iterator[tuple[str, list[int]]]:
    """Base URL of a paginating stand-in API, and the client port of every request it got."""
    ports: list[int] = []
    handler = type("Pages", (_Pages,), {"ports": ports})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", ports
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_list_follows_every_page_on_one_connection(pages: tuple[str, list[int]]) -> None:
    """Piped, `list` follows all 4 pages; they travel on one kept-alive connection."""
    url, ports = pages
    result = CliRunner().invoke(build(), ["list", "--url", url, "--page-size", "2"], env={"ORCHESTRATOR_TOKEN": "x"})
    assert result.exit_code == 0, result.output
    assert [line.split()[0] for line in result.stdout.splitlines()[1:-1]] == _Pages.APPS
    assert result.stdout.splitlines()[-1] == "7 apps"
    assert len(ports) == 4 and len(set(ports)) == 1


def test_list_in_a_terminal_shows_a_page_at_a_time(pages: tuple[str, list[int]]) -> None:
    """In a terminal: a page, a prompt; Enter shows the next page, q stops without fetching the rest."""
    import os
    import pty
    import subprocess
    import sys

    url, ports = pages
    leader, follower = pty.openpty()
    env = {**os.environ, "ORCHESTRATOR_TOKEN": "x", "COLUMNS": "120"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "orchestrator.cli", "list", "--url", url, "--page-size", "2"],
        stdin=follower, stdout=follower, stderr=follower, env=env, close_fds=True,
    )  # fmt: skip
    os.close(follower)
    seen = b""

    def read_until(marker: bytes) -> None:
        nonlocal seen
        deadline = time.monotonic() + 30
        while marker not in seen and time.monotonic() < deadline:
            try:
                seen += os.read(leader, 4096)
            except OSError:
                break
        assert marker in seen, seen.decode(errors="replace")

    try:
        read_until(b"2 shown; Enter for more, q to stop")
        assert b"app-00" in seen and b"app-01" in seen and b"app-02" not in seen
        os.write(leader, b"\n")
        read_until(b"4 shown")
        assert b"app-03" in seen and b"app-04" not in seen
        os.write(leader, b"q\n")
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(leader)
    assert len(ports) == 2, "the pages after q were never fetched"
