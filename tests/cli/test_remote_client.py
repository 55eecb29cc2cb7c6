"""The remote commands' HTTP client (`orchestrator.cli.remote.Api`) on answers a real API never gives.

A small HTTP server on a free port plays a proxy or a broken deployment: a redirect, an HTML error
page, a server that never answers. The happy paths run against the real API in the other CLI tests.
"""

from __future__ import annotations

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
