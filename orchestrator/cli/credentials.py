"""`orchestrator credentials …`: list the ledger, revoke one credential, rotate the signing keys."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated

import typer

from orchestrator.cli import cli_actor, fail
from orchestrator.cli.output import JsonLinesFlag, print_rows
from orchestrator.credentials.enums import CredentialStatus
from orchestrator.errors import OrchestratorError

if TYPE_CHECKING:
    from orchestrator.credentials.models import Credential

credentials_app = typer.Typer(help="The credential ledger and the token service's keys.", no_args_is_help=True)


def _row(c: Credential, now: datetime) -> dict[str, object]:
    # A token past its expiry stays `live` in the ledger (nothing needs doing); show what it is.
    expired = c.status is CredentialStatus.live and c.expires_at is not None and c.expires_at <= now
    return {
        "id": c.id,
        "app_id": c.app_id,
        "provider": c.provider,
        "status": CredentialStatus.expired.value if expired else c.status.value,
        "subject": c.subject,
        "scopes": c.scopes,
        "issued_at": c.issued_at.isoformat(timespec="seconds"),
        "expires_at": c.expires_at.isoformat(timespec="seconds") if c.expires_at else None,
        "revoked_at": c.revoked_at.isoformat(timespec="seconds") if c.revoked_at else None,
        "revoke_attempts": c.revoke_attempts,
        "last_error": c.last_error,
    }


@credentials_app.command("list")
def list_cmd(
    app_id: Annotated[str | None, typer.Option("--app", help="only this app's credentials")] = None,
    status: Annotated[CredentialStatus | None, typer.Option(help="only credentials in this status")] = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000)] = 200,
    as_json: JsonLinesFlag = False,
) -> None:
    """List ledger entries, newest first (never secrets)."""
    from orchestrator.cli import session_scope
    from orchestrator.clock import utcnow
    from orchestrator.credentials.service import list_credentials

    with session_scope(write=False) as session:
        now = utcnow()
        rows = [_row(c, now) for c in list_credentials(session, app_id=app_id, status=status, limit=limit)]
    if not rows and not as_json:
        typer.echo("no credentials")
        return
    table = [
        [
            r["id"], r["app_id"], r["provider"], r["status"], str(r["expires_at"] or "-")[:19],
            f"{r['subject']} [{' '.join(r['scopes'])}]",  # type: ignore[arg-type]
        ]
        for r in rows
    ]  # fmt: skip
    print_rows(
        ["ID", "APP", "PROVIDER", "STATUS", "EXPIRES", "SUBJECT / SCOPES"],
        table,
        as_json=as_json,
        data=rows,
        lines=True,
    )


@credentials_app.command("revoke")
def revoke_cmd(
    credential_id: Annotated[int, typer.Argument(help="ledger id (see `credentials list`)")],
    force: Annotated[bool, typer.Option("--force", help="record as revoked without calling the provider")] = False,
    reason: Annotated[str | None, typer.Option(help="why; required with --force")] = None,
    finding: Annotated[
        int | None,
        typer.Option("--finding", help="id of the review finding of the same app that forces it (a leaked secret…)"),
    ] = None,
) -> None:
    """Revoke one credential through its provider (or, with --force, record a revocation done by hand).

    With --finding the revocation is recorded as forced by that finding (KPI finding_revocations).
    """
    from orchestrator.cli import session_scope
    from orchestrator.credentials import service

    if force and not reason:
        fail("--force needs --reason saying how it was revoked", 2)
    try:
        with session_scope() as session:
            if force:
                credential = service.force_revoked(
                    session, credential_id, actor=cli_actor(), reason=reason or "", finding_id=finding
                )
            else:
                credential = service.revoke_credential(
                    session,
                    credential_id,
                    actor=cli_actor(),
                    reason=reason or "revoked from the CLI",
                    finding_id=finding,
                )
            status, note = credential.status.value, credential.note
    except OrchestratorError as exc:
        fail(exc.message)
        return
    typer.echo(f"credential {credential_id}: {status}" + (f" ({note})" if note else ""))


@credentials_app.command("rotate-keys")
def rotate_keys_cmd() -> None:
    """Publish a new signing key now; it signs once every JWKS cache has it, and the old key verifies on."""
    from orchestrator.cli import session_scope
    from orchestrator.credentials.tokens.keys import rotate

    try:
        with session_scope() as session:
            rotation = rotate(session, actor=cli_actor())
    except OrchestratorError as exc:
        fail(exc.message)
        return
    signs_from = rotation.activates_at.isoformat(timespec="seconds")
    typer.echo(f"new signing key: {rotation.new_kid} (published now, signs from {signs_from})")
    for kid, until in rotation.previous.items():
        typer.echo(f"previous key {kid} signs until then and verifies until {until.isoformat(timespec='seconds')}")
    for kid in rotation.retired:
        typer.echo(f"retired key {kid}")


@credentials_app.command("claim")
def claim_cmd(
    app_id: Annotated[str, typer.Argument(help="the approved app")],
    url: Annotated[str, typer.Option(envvar="ORCHESTRATOR_URL", help="API base URL (PUBLIC_URL when unset)")] = "",
) -> None:
    """Claim the app's new service credential once (owner token in ORCHESTRATOR_TOKEN); prints the secret alone."""
    from orchestrator.cli.remote import api_call

    _, body = api_call(url, "POST", f"/api/v1/apps/{app_id}/service-credential")
    typer.echo(body["secret"])


def register(app: typer.Typer) -> None:
    """Attach the `credentials` group to the main CLI."""
    app.add_typer(credentials_app, name="credentials")
