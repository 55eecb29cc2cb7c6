"""Admin commands that work on the database directly: `audit verify|checkpoint|public-key|export`,
`token create|list|revoke`.

They read DATABASE_URL like the services do and need no running API. Exit codes: 0 success, 1 the
audit chain is broken (or no longer matches its signed checkpoint), 2 the command could not run (bad
option, database unreachable or not migrated, no checkpoint key).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TextIO

import typer

from orchestrator.auth.enums import Role
from orchestrator.cli import cli_actor, fail
from orchestrator.cli.output import JsonFlag

if TYPE_CHECKING:
    from orchestrator.audit.models import AuditEntry

audit_app = typer.Typer(help="Verify and export the hash-chained audit trail.", no_args_is_help=True)
token_app = typer.Typer(help="Manage API tokens.", no_args_is_help=True)

EXIT_BROKEN = 1
EXIT_UNUSABLE = 2


class ExportFormat(StrEnum):
    """Formats `audit export` writes."""

    jsonl = "jsonl"
    csv = "csv"


def register(app: typer.Typer) -> None:
    """Attach the `audit` and `token` groups to the root CLI."""
    app.add_typer(audit_app, name="audit")
    app.add_typer(token_app, name="token")


@contextmanager
def _database_errors() -> Iterator[None]:
    # A missing table or an unreachable server is an operator problem, not a crash: one line, no traceback.
    from sqlalchemy.exc import SQLAlchemyError

    try:
        yield
    except SQLAlchemyError as exc:
        orig = getattr(exc, "orig", None)
        first = str(orig if orig else exc).strip().splitlines()[0]
        fail(
            f"cannot use the database ({first}); is DATABASE_URL right and `orchestrator migrate` done?", EXIT_UNUSABLE
        )


def _entries(count: int) -> str:
    return f"{count} {'entry' if count == 1 else 'entries'}"


@audit_app.command("verify")
def audit_verify(
    public_key: Annotated[
        Path | None,
        typer.Option(
            "--public-key",
            help="check checkpoint signatures with this public key (PEM) instead of the configured key",
            dir_okay=False,
        ),
    ] = None,
) -> None:
    """Walk the audit chain and check it against its newest signed checkpoint; exit 0 if intact, 1 if not."""
    from orchestrator.audit import checkpoints
    from orchestrator.audit import service as audit
    from orchestrator.audit.keys import CheckpointKey, checkpoint_key, public_key_from_file
    from orchestrator.cli import session_scope
    from orchestrator.config import get_settings
    from orchestrator.errors import ConfigError
    from orchestrator.integrations.archive import ArchiveStore

    key: CheckpointKey | None
    try:
        key = public_key_from_file(public_key) if public_key else checkpoint_key(create=False)
    except ConfigError as exc:
        fail(exc.message, EXIT_UNUSABLE)
    store: ArchiveStore | None = None
    store_error = None
    try:
        store = checkpoints.store_for(get_settings())
    except ConfigError as exc:
        store_error = exc.message
    with _database_errors(), session_scope(write=False) as session:
        result = audit.verify(session)
        if not result.ok:
            fail(
                f"audit chain broken at entry seq={result.broken_seq} id={result.broken_id}: {result.reason} "
                f"({_entries(result.checked)} before it intact)",
                EXIT_BROKEN,
            )
        if key is None:
            sources = checkpoints.newest_checkpoints(session, store)
            if sources.found:
                fail(
                    "a checkpoint exists but no key to check its signature: set AUDIT_CHECKPOINT_KEY "
                    f"(or have {checkpoint_key_file()}), or pass --public-key",
                    EXIT_UNUSABLE,
                )
            anchored = None
            store_error = store_error or sources.store_error
        else:
            anchored = checkpoints.check(session, store, key)
            store_error = store_error or anchored.store_error
    if store_error:
        typer.echo(f"warning: cannot read checkpoints from the archive store ({store_error}); used the table", err=True)
    if anchored is not None and not anchored.ok:
        fail("audit chain does not match its checkpoint: " + "; ".join(anchored.problems), EXIT_BROKEN)
    typer.echo(f"audit chain intact: {_entries(result.checked)}")
    newest = anchored.checkpoint if anchored else None
    if newest is None:
        typer.echo("checkpoint: none yet, the tail is not anchored (`orchestrator audit checkpoint` writes one)")
        return
    typer.echo(f"checkpoint: {newest.checkpoint.describe()} (from the {newest.source}; signature good)")
    after = result.checked - newest.checkpoint.seq
    if after:
        typer.echo(f"{_entries(after)} after the checkpoint, not yet anchored")


def checkpoint_key_file() -> str:
    """Where the checkpoint key file is looked for (for messages)."""
    from orchestrator.audit.keys import KEY_FILE

    return str(KEY_FILE)


@audit_app.command("checkpoint")
def audit_checkpoint() -> None:
    """Sign a checkpoint of the chain's head now and put it in the archive store (the scheduler does so on a timer)."""
    from orchestrator.audit import checkpoints
    from orchestrator.config import get_settings
    from orchestrator.errors import OrchestratorError

    try:
        with _database_errors():
            written = checkpoints.checkpoint_now(get_settings(), actor=cli_actor(), force=True)
    except OrchestratorError as exc:
        fail(f"cannot write a checkpoint: {exc.message}", EXIT_UNUSABLE)
    except OSError as exc:  # a directory store that cannot be written (permissions, a full disk)
        fail(f"cannot write a checkpoint: {exc}", EXIT_UNUSABLE)
    if written.refused:
        fail(f"checkpoint refused: {written.refused}", EXIT_BROKEN)
    if written.checkpoint is None:
        typer.echo(f"no checkpoint written: {written.skipped}")
        return
    typer.echo(f"checkpoint written: {written.checkpoint.describe()}")
    typer.echo(f"stored at {written.location}")


@audit_app.command("public-key")
def audit_public_key() -> None:
    """Print the public key that checks checkpoint signatures (PEM on stdout, its key id on stderr)."""
    from orchestrator.audit.keys import checkpoint_key
    from orchestrator.errors import ConfigError

    try:
        key = checkpoint_key(create=False)
    except ConfigError as exc:
        fail(exc.message, EXIT_UNUSABLE)
    if key is None:
        fail(
            f"no checkpoint key yet: set AUDIT_CHECKPOINT_KEY, or write a checkpoint to create {checkpoint_key_file()}",
            EXIT_UNUSABLE,
        )
    typer.echo(key.public_pem(), nl=False)
    typer.echo(f"key id: {key.key_id}", err=True)


@audit_app.command("export")
def audit_export(
    fmt: Annotated[ExportFormat, typer.Option("--format", "-f", help="jsonl or csv")] = ExportFormat.jsonl,
    app_id: Annotated[str | None, typer.Option("--app", help="only the entries of this app id")] = None,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="write to this file instead of stdout", dir_okay=False)
    ] = None,
) -> None:
    """Stream the audit trail in chain order as JSON lines or CSV."""
    from orchestrator.audit import service as audit
    from orchestrator.cli import session_scope

    render = audit.export_jsonl if fmt is ExportFormat.jsonl else audit.export_csv
    target: TextIO
    try:
        target = output.open("w", encoding="utf-8", newline="") if output else sys.stdout
    except OSError as exc:
        fail(f"cannot write {output}: {exc.strerror}", EXIT_UNUSABLE)
        return
    count = 0
    try:
        with _database_errors(), session_scope(write=False) as session:

            def counted() -> Iterator[AuditEntry]:
                nonlocal count
                for entry in audit.entries(session, app_id=app_id):
                    count += 1
                    yield entry

            for chunk in render(counted()):
                target.write(chunk)
    finally:
        if output:
            target.close()
        else:
            target.flush()
    if output:
        typer.echo(f"wrote {_entries(count)} to {output}", err=True)


def _valid_email(email: str | None) -> str | None:
    if email is None:
        return None
    from pydantic import EmailStr, TypeAdapter, ValidationError

    try:
        return str(TypeAdapter(EmailStr).validate_python(email)).lower()
    except ValidationError:
        raise typer.BadParameter(f"{email!r} is not an email address", param_hint="--email") from None


@token_app.command("create")
def token_create(
    role: Annotated[
        Role,
        typer.Option(
            "--role", help="maker, approver, admin, or scim (the IdP's SCIM client only)", case_sensitive=False
        ),
    ],
    name: Annotated[str, typer.Option("--name", help="what the token is for, e.g. ci-bot")],
    email: Annotated[
        str | None, typer.Option("--email", help="the person who acts with it (makers see their own apps)")
    ] = None,
) -> None:
    """Create an API token and print it alone on stdout; it is shown this once and stored hashed."""
    from orchestrator.auth.service import create_token
    from orchestrator.cli import session_scope

    email = _valid_email(email)
    if not name.strip():
        raise typer.BadParameter("must not be empty", param_hint="--name")
    with _database_errors(), session_scope() as session:
        token = create_token(session, name=name.strip(), role=role, person_email=email, actor=cli_actor())
    typer.echo(token)


@token_app.command("list")
def token_list(
    include_revoked: Annotated[bool, typer.Option("--all", help="list revoked tokens too")] = False,
    as_json: JsonFlag = False,
) -> None:
    """List API tokens (never their values): id, name, role, person, created, revoked."""
    from orchestrator.auth.service import list_tokens
    from orchestrator.cli import session_scope
    from orchestrator.cli.output import print_rows

    with _database_errors(), session_scope(write=False) as session:
        rows = list_tokens(session, include_revoked=include_revoked)
    data = [
        {
            "id": row.id,
            "name": row.name,
            "role": Role(row.role).value,
            "person_email": row.person_email,
            "created_at": row.created_at.isoformat(timespec="seconds"),
            "last_used_at": row.last_used_at.isoformat(timespec="seconds") if row.last_used_at else None,
            "revoked_at": row.revoked_at.isoformat(timespec="seconds") if row.revoked_at else None,
        }
        for row in rows
    ]
    columns = ("ID", "Name", "Role", "Person", "Created", "Revoked")
    table = [(d["id"], d["name"], d["role"], d["person_email"], d["created_at"], d["revoked_at"]) for d in data]
    print_rows(columns, table, as_json=as_json, data=data)


@token_app.command("revoke")
def token_revoke(
    token_id: Annotated[int, typer.Argument(help="the token's id (see `token list`)", min=1, max=2**63 - 1)],
    reason: Annotated[str | None, typer.Option("--reason", help="why, for the audit trail")] = None,
) -> None:
    """Revoke an API token; every running API process refuses it within a second. Audited."""
    from orchestrator.auth.service import revoke_token
    from orchestrator.cli import session_scope
    from orchestrator.errors import NotFound

    try:
        with _database_errors(), session_scope() as session:
            row = revoke_token(session, token_id, actor=cli_actor(), reason=reason)
            name = row.name
    except NotFound as exc:
        fail(exc.message, EXIT_UNUSABLE)
        return
    typer.echo(f"token {token_id} ({name}) revoked")
