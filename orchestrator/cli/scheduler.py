"""CLI: `orchestrator scheduler`, `sunset APP [--dry-run]`, `archive verify|hold APP`, `deadlines [list] APP`,
`deadlines fire ID`."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from orchestrator.cli import cli_actor, fail, load_policy_or_exit
from orchestrator.cli.output import JsonLinesFlag, print_rows
from orchestrator.errors import OrchestratorError

archive_app = typer.Typer(help="Verify archives of retired apps and place legal holds.", no_args_is_help=True)


class _ListByDefault(TyperGroup):
    """`deadlines APP` keeps meaning `deadlines list APP` beside the `fire` sub-command."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        if args and not args[0].startswith("-") and args[0] not in self.commands:
            args = ["list", *args]
        return super().parse_args(ctx, args)


deadlines_app = typer.Typer(cls=_ListByDefault, help="An app's pending deadlines; fire one now.", no_args_is_help=True)


@contextmanager
def _errors() -> Iterator[None]:
    # Our own errors (unknown app, refused transition, unreachable archive) are one line, no traceback.
    try:
        yield
    except OrchestratorError as exc:
        fail(exc.message)


def scheduler() -> None:
    """Run the scheduler: deadlines → timers → Celery tasks (one active replica behind a Redis lock)."""
    from orchestrator.cli.run import SCHEDULER_MAIN, process_entry

    load_policy_or_exit()
    process_entry(SCHEDULER_MAIN).run()


def sunset(
    app_id: Annotated[str, typer.Argument(help="the app to retire")],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="show what would happen; change nothing")] = False,
    reason: Annotated[str, typer.Option(help="why (recorded in the audit trail)")] = "retired by hand",
    inline: Annotated[bool, typer.Option("--inline", help="run the steps here instead of on a worker")] = False,
) -> None:
    """Start (or resume) the sunset of an app: freeze → revoke → archive → retired."""
    load_policy_or_exit()
    with _errors():
        _sunset(app_id, dry_run=dry_run, reason=reason, inline=inline)


def _sunset(app_id: str, *, dry_run: bool, reason: str, inline: bool) -> None:
    from orchestrator.catalog import service as catalog
    from orchestrator.catalog.lifecycle import RETIRABLE_STAGES, Action, Stage
    from orchestrator.catalog.policy import get_policy
    from orchestrator.cli import session_scope
    from orchestrator.config import get_settings
    from orchestrator.sunset import flows as sunset_job
    from orchestrator.sunset.preview import preview

    policy, settings = get_policy(), get_settings()
    if dry_run:
        with session_scope(write=False) as session:
            typer.echo(json.dumps(preview(session, catalog.get_app(session, app_id), policy, settings), indent=2))
        return
    actor = cli_actor()
    with session_scope() as session:
        app = catalog.get_app(session, app_id)
        if app.stage in RETIRABLE_STAGES:
            catalog.apply_action(session, app, Action.retire, actor=actor, reason=reason, policy=policy)
        elif app.stage is not Stage.sunsetting:
            fail(f"app {app_id} is {app.stage.value}; only a live, expiring, orphaned or suspended app can be retired")
        run, new = sunset_job.start_sunset(
            session, app, trigger="manual", actor=actor, reason=reason, enqueue=not inline
        )
    if not inline:
        typer.echo(f"sunset of {app_id} {'started' if new else 'resumed'} (run {run.id}); a worker carries it out")
        return
    try:
        run = sunset_job.advance(app_id, policy=policy, settings=settings)
    except sunset_job.RetryLater as exc:
        fail(f"sunset of {app_id} paused: {exc}; run it again later (or let a worker retry)")
    typer.echo(f"sunset of {app_id}: {run.status.value} at step {run.step.value}")
    if run.status.value == "blocked":
        fail(f"blocked: {run.last_error}")


@archive_app.command("verify")
def archive_verify(app_id: Annotated[str, typer.Argument(help="the app whose archives to check")]) -> None:
    """Recompute every digest of the app's archives; exit 1 on any mismatch."""
    from orchestrator.cli import session_scope
    from orchestrator.integrations.archive import store_from_settings
    from orchestrator.sunset import archive

    with _errors(), session_scope(write=False) as session:
        store = store_from_settings()
        rows = archive.stored_archives(session, app_id)
        if not rows:
            fail(f"no stored archive for app {app_id}")
        reports = [archive.verify(session, row, store) for row in rows]
    for report in reports:
        state = "ok" if report.ok else "MISMATCH"
        typer.echo(f"archive {report.archive_id} {report.uri}: {state} ({report.checked_members} members checked)")
        for problem in report.problems:
            typer.echo(f"  - {problem}", err=True)
    if not all(r.ok for r in reports):
        raise typer.Exit(1)


@archive_app.command("hold")
def archive_hold(
    app_id: Annotated[str, typer.Argument(help="the app to hold (or release)")],
    reason: Annotated[str, typer.Option(help="why (recorded in the audit trail)")] = "legal hold",
    release: Annotated[bool, typer.Option("--release", help="lift the hold; overdue purges are re-armed")] = False,
) -> None:
    """Place a legal hold on an app's archives (the retention purge skips them), or lift it."""
    from orchestrator.catalog import service as catalog
    from orchestrator.cli import session_scope
    from orchestrator.sunset import retention

    with _errors(), session_scope() as session:
        app = catalog.get_app(session, app_id)
        changed = retention.set_hold(session, app, on=not release, actor=cli_actor(), reason=reason)
    state = "lifted" if release else "placed"
    typer.echo(f"legal hold {state} on {app_id}" + ("" if changed else " (no change)"))


def deadlines_list(
    app_id: Annotated[str, typer.Argument(help="the app whose pending deadlines to list")],
    as_json: JsonLinesFlag = False,
) -> None:
    """List an app's pending deadlines, soonest first."""
    from orchestrator.cli import session_scope
    from orchestrator.timers import service as deadlines

    with session_scope(write=False) as session:
        rows = [
            [row.id, row.kind, row.due_at.isoformat(), row.ref or ""] for row in deadlines.pending_for(session, app_id)
        ]
    if not rows and not as_json:
        typer.echo(f"no pending deadlines for {app_id}", err=True)
        return
    print_rows(["ID", "KIND", "DUE AT", "REF"], rows, as_json=as_json, lines=True)


def deadlines_fire(
    deadline_id: Annotated[int, typer.Argument(help="the pending deadline (an ID from `deadlines APP`)")],
    reason: Annotated[str, typer.Option(help="why (recorded in the audit trail)")] = "fired by hand",
) -> None:
    """Fire a pending deadline now (admin, audited): its event goes out as if its time had come."""
    from orchestrator.audit import service as audit
    from orchestrator.audit.actions import AuditAction
    from orchestrator.cli import session_scope
    from orchestrator.timers import service as deadlines
    from orchestrator.timers.models import Deadline

    load_policy_or_exit()
    with session_scope() as session:
        row = session.get(Deadline, deadline_id)
        if row is None:
            fail(f"no deadline {deadline_id}")
        data: dict[str, Any] = {"deadline_id": deadline_id, "kind": str(row.kind), "due_at": row.due_at.isoformat()}
        fired = deadlines.fire(session, [deadline_id])
        if not fired:
            fail(f"deadline {deadline_id} is {row.status.value}, not pending; nothing fired")
        audit.record(
            session,
            actor=cli_actor(),
            action=AuditAction.deadline_fired_by_hand,
            app_id=row.app_id,
            reason=reason,
            data=data,
        )
    typer.echo(f"fired deadline {deadline_id} ({data['kind']}) of {row.app_id}")


def register(app: typer.Typer) -> None:
    """Attach the scheduler, sunset, archive and deadlines commands."""
    app.command("scheduler")(scheduler)
    app.command("sunset")(sunset)
    deadlines_app.command("list")(deadlines_list)
    deadlines_app.command("fire")(deadlines_fire)
    app.add_typer(deadlines_app, name="deadlines")
    app.add_typer(archive_app, name="archive")
