"""Catalog commands that talk to a running API: `register`, `list`, `show`, `retire`, `extend`, `transfer`,
`update-manifest` and `request-review`.

The API is at `--url` (default: ORCHESTRATOR_URL, else PUBLIC_URL, itself http://API_HOST:API_PORT) and the bearer token
comes from ORCHESTRATOR_TOKEN (never from the command line, where `ps` would show it). Output is a
readable table; `--json` prints the API's JSON for scripts. Exit codes: 0 success, 1 the API refused
(`error: <code>: <detail>` on stderr), 2 a local problem (unreadable file), 3 the API is unreachable.
"""

from __future__ import annotations

import http.client
import json
import os
import sys
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, NoReturn
from urllib.parse import urlsplit

import typer

from orchestrator.catalog.enums import DataClass
from orchestrator.catalog.lifecycle import Stage
from orchestrator.cli.output import print_json, print_rows, render_table

DEFAULT_URL = ""  # PUBLIC_URL (itself http://API_HOST:API_PORT when unset)
TIMEOUT_SECONDS = 15.0
EXIT_API_ERROR = 1
EXIT_LOCAL_ERROR = 2
EXIT_UNREACHABLE = 3

UrlOption = Annotated[str, typer.Option("--url", envvar="ORCHESTRATOR_URL", help="base URL of the orchestrator API")]
JsonOption = Annotated[bool, typer.Option("--json", help="print the API's JSON instead of a table")]
AppIdArg = Annotated[str, typer.Argument(help="the app id (slug)")]
ReasonOption = Annotated[str, typer.Option(help="why; recorded in the audit trail")]


def _fail(message: str, code: int) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def _describe_detail(detail: Any) -> str:
    """One line for an error detail: a message, a list of field errors, or a transition refusal."""
    if isinstance(detail, str):
        return detail
    if isinstance(detail, list) and all(isinstance(d, dict) and "field" in d for d in detail):
        return "; ".join(f"{d['field']}: {d.get('reason', 'invalid')}" for d in detail)
    if isinstance(detail, dict) and "message" in detail:
        if "stage" not in detail:
            return str(detail["message"])
        allowed = ", ".join(detail.get("allowed") or []) or "none"
        return f"{detail['message']} (stage {detail['stage']}; allowed: {allowed})"
    return json.dumps(detail, default=str)


def _reason(exc: object) -> str:
    text = str(exc).lower()
    return "connection refused" if "refused" in text else (str(exc) or type(exc).__name__)


class Api:
    """A thin client for /api/v1: JSON in, JSON out; failures become CLI errors.

    Built on the standard library rather than httpx: each command runs in a fresh process, and
    importing httpx and setting up its TLS context would take longer than the request itself. One
    connection serves every request of a command (kept alive), so following 500 pages of `list`
    costs one TCP (and TLS) handshake, not 500. Redirects are answers, never followed.
    """

    def __init__(self, url: str) -> None:
        if not url:
            from orchestrator.config import get_settings

            url = get_settings().public_url
        self.url = url.rstrip("/")
        self.token = os.environ.get("ORCHESTRATOR_TOKEN", "").strip()
        self.headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        self._connection: http.client.HTTPConnection | None = None

    def call(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        json: Any = None,
        content: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, Any]:
        """Send one request; the status and parsed JSON on 2xx, else print `error: code: detail` and exit."""
        status, reason, raw = self._send(method, path, params=params, json_body=json, content=content, headers=headers)
        text = raw.decode("utf-8", errors="replace")
        body = _parsed(text)
        if 200 <= status < 300:
            return status, body
        if isinstance(body, dict) and "error" in body:
            message = f"{body['error']}: {_describe_detail(body.get('detail'))}"
        else:
            message = f"http_{status}: {text.strip()[:200] or reason}"
        if status == 401 and not self.token:
            message += " (set ORCHESTRATOR_TOKEN to an API token)"
        _fail(message, EXIT_API_ERROR)

    def status_of(self, method: str, path: str) -> tuple[int, Any]:
        """Send one request and return its status and parsed JSON whatever the status (a 404 is an answer)."""
        status, _, raw = self._send(method, path, params=None, json_body=None, content=None, headers=None)
        return status, _parsed(raw.decode("utf-8", errors="replace"))

    def __enter__(self) -> Api:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the kept-alive connection (a later call opens a new one)."""
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def _connect(self) -> tuple[http.client.HTTPConnection, bool]:
        """The open connection (reused: True) or a new one to the API's host."""
        if self._connection is not None:
            return self._connection, True
        parts = urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            _fail(f"--url must be an http:// or https:// URL, not {self.url!r}", EXIT_LOCAL_ERROR)
        if parts.scheme == "https":
            import ssl

            self._connection = http.client.HTTPSConnection(
                parts.hostname, parts.port, timeout=TIMEOUT_SECONDS, context=ssl.create_default_context()
            )
        else:
            self._connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=TIMEOUT_SECONDS)
        return self._connection, False

    def _send(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None,
        json_body: Any,
        content: bytes | None,
        headers: dict[str, str] | None,
    ) -> tuple[int, str, bytes]:
        """(status, reason phrase, body) of one exchange; a transport failure exits with EXIT_UNREACHABLE."""
        from urllib.parse import urlencode

        target = urlsplit(self.url).path.rstrip("/") + path
        if params:
            target += "?" + urlencode({k: str(v).lower() if isinstance(v, bool) else v for k, v in params.items()})
        sent_headers = {**self.headers, **(headers or {})}
        data = content
        if json_body is not None:
            data = json.dumps(json_body).encode()
            sent_headers.setdefault("Content-Type", "application/json")
        if data is None and method in ("POST", "PUT", "PATCH"):
            data = b""  # an explicit empty body (Content-Length: 0), as HTTP clients send it
        while True:
            connection, reused = self._connect()
            try:
                connection.request(method, target, body=data, headers=sent_headers)
                response = connection.getresponse()
                body = response.read()
                if response.will_close:
                    self.close()
                return response.status, response.reason, body
            except TimeoutError:
                self.close()
                self._timed_out()
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError) as exc:
                self.close()
                # The server closed a kept-alive connection while it was idle: a GET is sent again.
                if reused and method == "GET":
                    continue
                _fail(f"cannot talk to the API at {self.url}: {_reason(exc)}", EXIT_UNREACHABLE)
            except (http.client.HTTPException, OSError, ValueError) as exc:
                self.close()
                _fail(
                    f"cannot reach the API at {self.url} ({_reason(exc)}); is `orchestrator api` running?",
                    EXIT_UNREACHABLE,
                )

    def _timed_out(self) -> NoReturn:
        _fail(f"the API at {self.url} did not answer within {TIMEOUT_SECONDS:g}s", EXIT_UNREACHABLE)


def api_call(url: str, method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
    """One request on a connection of its own (closed after it): see `Api.call`."""
    with Api(url) as api:
        return api.call(method, path, **kwargs)


def _parsed(text: str) -> Any:
    """The JSON in `text`, or None when it is empty or not JSON (an error page from a proxy)."""
    try:
        return json.loads(text) if text else None
    except ValueError:
        return None


# ---------------------------------------------------------------- rendering


def _when(value: str | None) -> str:
    if not value:
        return "-"
    try:
        return datetime.fromisoformat(value).strftime("%Y-%m-%d %H:%M")
    except ValueError:
        return value


def _listed(values: list[str] | None) -> str:
    return ", ".join(values) if values else "-"


def _app_lines(app: dict[str, Any]) -> str:
    llm = app.get("llm") or {}
    fields = [
        ("id", app["id"]),
        ("name", app["name"]),
        ("stage", app["stage"] + (f" (was {app['previous_stage']})" if app.get("previous_stage") else "")),
        ("data class", app["data_class"]),
        ("owner", app["owner"]),
        ("co-owners", _listed(app.get("co_owners"))),
        ("team", app.get("team") or "-"),
        ("repo", app.get("repo_url") or "-"),
        ("created", _when(app.get("created_at"))),
        ("approved", _when(app.get("approved_at"))),
        ("expires", _when(app.get("expires_at"))),
        ("next review", _when(app.get("next_review_at"))),
        ("connectors", _listed(app.get("connectors"))),
        ("scopes", _listed(app.get("requested_scopes"))),
        ("endpoints", _listed(app.get("external_endpoints"))),
        ("llm", f"yes via {llm.get('connector') or llm.get('provider') or '?'}" if llm.get("uses_llm") else "no"),
        ("description", app.get("description") or "-"),
    ]
    width = max(len(k) for k, _ in fields)
    return "\n".join(f"{k.ljust(width)}  {v}" for k, v in fields)


# ---------------------------------------------------------------- commands


def register_cmd(
    file: Annotated[str, typer.Argument(help="microapp.yaml (or .json) to register; - reads stdin")],
    url: UrlOption = DEFAULT_URL,
    as_json: JsonOption = False,
    idempotency_key: Annotated[
        str | None, typer.Option(help="send as Idempotency-Key; a repeat returns the first registration")
    ] = None,
) -> None:
    """Register an app from its manifest."""
    content, headers = _read_manifest(file)
    if idempotency_key:
        headers["Idempotency-Key"] = idempotency_key
    _, body = api_call(url, "POST", "/api/v1/apps", content=content, headers=headers)
    if as_json:
        print_json(body)
        return
    app = body.get("app") or {}
    if body.get("duplicate"):
        typer.echo(f"already registered {app.get('id', '?')} (first event {body['event_id']})")
        return
    typer.echo(
        f"registered {app['id']}: stage {app['stage']}, expires {_when(app.get('expires_at'))} "
        f"(event {body['event_id']})"
    )


def _read_manifest(file: str) -> tuple[bytes, dict[str, str]]:
    """The manifest file's bytes (stdin for -) and the Content-Type to send them with."""
    try:
        content = sys.stdin.buffer.read() if file == "-" else Path(file).read_bytes()
    except OSError as exc:
        _fail(f"cannot read {file}: {exc.strerror or exc}", EXIT_LOCAL_ERROR)
    content_type = "application/json" if file.lower().endswith(".json") else "application/yaml"
    return content, {"Content-Type": content_type}


def update_manifest_cmd(
    app_id: AppIdArg,
    file: Annotated[str, typer.Argument(help="the new microapp.yaml (or .json); - reads stdin")],
    url: UrlOption = DEFAULT_URL,
    as_json: JsonOption = False,
) -> None:
    """Send a new manifest: less reach applies at once, more reach waits for its review and an approval."""
    content, headers = _read_manifest(file)
    _, body = api_call(url, "PUT", f"/api/v1/apps/{app_id}/manifest", content=content, headers=headers)
    if as_json:
        print_json(body)
        return
    typer.echo(f"{app_id}: review #{body['review_id']} queued; stage {body['app']['stage']}")
    for line in body.get("applied") or []:
        typer.echo(f"  applied now: {line}")
    for line in body.get("waiting_for_approval") or []:
        typer.echo(f"  waiting for approval: {line}")
    if not body.get("applied") and not body.get("waiting_for_approval"):
        typer.echo("  the manifest changes nothing the catalog holds")


def request_review_cmd(app_id: AppIdArg, url: UrlOption = DEFAULT_URL, as_json: JsonOption = False) -> None:
    """Review an app now, without a push."""
    _, body = api_call(url, "POST", f"/api/v1/apps/{app_id}/reviews")
    if as_json:
        print_json(body)
        return
    typer.echo(f"{app_id}: review #{body['review_id']} queued; stage {body['app']['stage']}")


def list_cmd(
    stage: Annotated[Stage | None, typer.Option(help="only apps in this stage")] = None,
    owner: Annotated[str | None, typer.Option(help="only apps this email owns or co-owns")] = None,
    data_class: Annotated[DataClass | None, typer.Option(help="only apps of this data class")] = None,
    expiring_before: Annotated[
        str | None, typer.Option(help="only apps expiring before this ISO date or datetime")
    ] = None,
    limit: Annotated[int | None, typer.Option(min=1, help="show at most this many apps")] = None,
    page_size: Annotated[int, typer.Option(min=1, max=500, help="apps fetched per request (and per screen)")] = 50,
    show_all: Annotated[bool, typer.Option("--all", help="fetch every page without asking")] = False,
    url: UrlOption = DEFAULT_URL,
    as_json: JsonOption = False,
) -> None:
    """List the catalog, optionally filtered.

    In a terminal it shows a page at a time, like `git log`: Enter for the next page, q to stop.
    Piped, with `--json` or with `--all`, it follows every page (`--limit` caps the count).
    """
    params: dict[str, Any] = {
        k: v
        for k, v in {
            "stage": stage.value if stage else None,
            "owner": owner,
            "data_class": data_class.value if data_class else None,
            "expiring_before": expiring_before,
        }.items()
        if v is not None
    }
    interactive = not (as_json or show_all) and sys.stdin.isatty() and sys.stdout.isatty()
    items: list[dict[str, Any]] = []
    shown = 0
    cursor: str | None = None
    with Api(url) as api:
        while limit is None or len(items) < limit:
            size = min(page_size, limit - len(items)) if limit else page_size
            query = {**params, "limit": size, **({"cursor": cursor} if cursor else {})}
            _, page = api.call("GET", "/api/v1/apps", params=query)
            items.extend(page["items"])
            cursor = page.get("next_cursor")
            if interactive and page["items"]:
                _print_apps(page["items"])
                shown += len(page["items"])
                if cursor and (limit is None or shown < limit) and not _more(shown):
                    return
            if not cursor:
                break
    if not items and not as_json:
        typer.echo("no apps match")
        return
    if not interactive:
        _print_apps(items, as_json=as_json)
    if not as_json:
        typer.echo(f"{len(items)} app{'s' if len(items) != 1 else ''}")


def _print_apps(items: list[dict[str, Any]], *, as_json: bool = False) -> None:
    rows = [[a["id"], a["name"], a["stage"], a["data_class"], a["owner"], _when(a.get("expires_at"))] for a in items]
    print_rows(["ID", "NAME", "STAGE", "CLASS", "OWNER", "EXPIRES"], rows, as_json=as_json, data=items)


def _more(shown: int) -> bool:
    """Ask whether to show the next page; False on q, EOF or Ctrl-C."""
    typer.echo(f"-- {shown} shown; Enter for more, q to stop --", err=True, nl=False)
    try:
        answer = sys.stdin.readline()
    except KeyboardInterrupt:
        answer = ""
    typer.echo("", err=True)
    return answer != "" and answer.strip().lower() not in ("q", "quit")


def show_cmd(app_id: AppIdArg, url: UrlOption = DEFAULT_URL, as_json: JsonOption = False) -> None:
    """Show one app and its audit timeline."""
    _, app = api_call(url, "GET", f"/api/v1/apps/{app_id}")
    if as_json:
        print_json(app)
        return
    typer.echo(_app_lines(app))
    typer.echo("\ntimeline")
    rows = [[str(e["seq"]), _when(e["at"]), e["actor"], e["action"], e.get("reason") or ""] for e in app["timeline"]]
    typer.echo(render_table(["SEQ", "AT", "ACTOR", "ACTION", "REASON"], rows))


def retire_cmd(
    app_id: AppIdArg, reason: ReasonOption = "", url: UrlOption = DEFAULT_URL, as_json: JsonOption = False
) -> None:
    """Retire an app: it moves to sunsetting and its credentials are revoked."""
    _, body = api_call(url, "POST", f"/api/v1/apps/{app_id}/retire", json={"reason": reason})
    if as_json:
        print_json(body)
        return
    typer.echo(f"{app_id}: retirement requested; stage {body['app']['stage']} (event {body['event_id']})")


def extend_cmd(
    app_id: AppIdArg,
    days: Annotated[int | None, typer.Option(min=1, help="how many days (default: the policy's maximum)")] = None,
    reason: ReasonOption = "",
    url: UrlOption = DEFAULT_URL,
    as_json: JsonOption = False,
) -> None:
    """Ask for an extension of an app's expiry (opens an approval request)."""
    _, body = api_call(url, "POST", f"/api/v1/apps/{app_id}/extension", json={"days": days, "reason": reason})
    if as_json:
        print_json(body)
        return
    if body.get("duplicate"):
        typer.echo(f"{app_id}: extension request #{body['approval_id']} is already waiting for a decision")
    else:
        typer.echo(f"{app_id}: extension request #{body['approval_id']} opened (event {body['event_id']})")


def transfer_cmd(
    app_id: AppIdArg,
    owner: Annotated[str, typer.Option(help="email of the new owner")],
    reason: ReasonOption = "",
    url: UrlOption = DEFAULT_URL,
    as_json: JsonOption = False,
) -> None:
    """Give an app a new owner (an orphaned app returns to its previous stage)."""
    _, body = api_call(url, "POST", f"/api/v1/apps/{app_id}/owner", json={"owner": owner, "reason": reason})
    if as_json:
        print_json(body)
        return
    typer.echo(f"{app_id}: owner is now {body['app']['owner']}; stage {body['app']['stage']}")


def register(app: typer.Typer) -> None:
    """Attach the API client commands to the root CLI."""
    app.command("register")(register_cmd)
    app.command("list")(list_cmd)
    app.command("show")(show_cmd)
    app.command("retire")(retire_cmd)
    app.command("extend")(extend_cmd)
    app.command("transfer")(transfer_cmd)
    app.command("update-manifest")(update_manifest_cmd)
    app.command("request-review")(request_review_cmd)
