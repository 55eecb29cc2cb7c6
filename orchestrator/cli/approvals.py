"""`orchestrator approvals list | approve ID | reject ID --reason … | request-changes ID --reason …`.

Decisions without Slack, through the running API and under the same rules as a Slack click: the
token (ORCHESTRATOR_TOKEN) must be an approver's, and its person must not own the app or have
asked for the decision. `--url` / ORCHESTRATOR_URL and the exit codes are those of the other remote
commands (`orchestrator.cli.remote`).
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

# The remote commands' client and output helpers, so every remote command behaves the same.
from orchestrator.cli.output import print_json, print_rows
from orchestrator.cli.remote import DEFAULT_URL, JsonOption, UrlOption, _when, api_call

approvals_app = typer.Typer(help="List and decide approval requests (the fallback to Slack).", no_args_is_help=True)
IdArg = Annotated[int, typer.Argument(help="the approval request id")]
ReasonRequired = Annotated[str, typer.Option("--reason", help="why; the owner sees it and it is audited")]


@approvals_app.command("list")
def list_cmd(
    status: Annotated[
        str, typer.Option(help="pending, approved, rejected, changes_requested or cancelled")
    ] = "pending",
    app_id: Annotated[str | None, typer.Option("--app", help="only requests for this app")] = None,
    url: UrlOption = DEFAULT_URL,
    as_json: JsonOption = False,
) -> None:
    """List approval requests (pending by default)."""
    params: dict[str, Any] = {"status": status}
    if app_id:
        params["app_id"] = app_id
    _, body = api_call(url, "GET", "/api/v1/approvals", params=params)
    items = body.get("items", [])
    if not items and not as_json:
        typer.echo(f"no {status} approval requests")
        return
    rows = [
        [
            str(a["id"]), a["app_id"], a.get("data_class") or "-", a["kind"], a["status"], a["requested_by"],
            _when(a.get("created_at")), a.get("decided_by") or "-",
        ]
        for a in items
    ]  # fmt: skip
    columns = ["ID", "APP", "CLASS", "KIND", "STATUS", "REQUESTED BY", "OPENED", "DECIDED BY"]
    print_rows(columns, rows, as_json=as_json, data=body)


def _decide(approval_id: int, decision: str, reason: str, url: str, as_json: bool) -> None:
    _, body = api_call(
        url, "POST", f"/api/v1/approvals/{approval_id}/decision", json={"decision": decision, "reason": reason}
    )
    if as_json:
        print_json(body)
        return
    typer.echo(f"request #{body['id']} for {body['app_id']}: {body['status']} by {body['decided_by']}")


@approvals_app.command("approve")
def approve_cmd(
    approval_id: IdArg,
    reason: Annotated[str, typer.Option("--reason", help="optional note, audited")] = "",
    url: UrlOption = DEFAULT_URL,
    as_json: JsonOption = False,
) -> None:
    """Approve a pending request."""
    _decide(approval_id, "approve", reason, url, as_json)


@approvals_app.command("reject")
def reject_cmd(
    approval_id: IdArg, reason: ReasonRequired, url: UrlOption = DEFAULT_URL, as_json: JsonOption = False
) -> None:
    """Reject a pending request (a reason is required)."""
    _decide(approval_id, "reject", reason, url, as_json)


@approvals_app.command("request-changes")
def request_changes_cmd(
    approval_id: IdArg, reason: ReasonRequired, url: UrlOption = DEFAULT_URL, as_json: JsonOption = False
) -> None:
    """Send a pending request back to the owner with the changes needed (a reason is required)."""
    _decide(approval_id, "request_changes", reason, url, as_json)


def register(app: typer.Typer) -> None:
    """Attach the `approvals` group to the CLI."""
    app.add_typer(approvals_app, name="approvals")
