"""`orchestrator events failed|show|retry` and `orchestrator relay`, working on the database directly.

They read DATABASE_URL (and BROKER_URL for publishing) like the services do and need no running API.
Exit codes: 0 success, 1 the request was refused (no such event, not retryable), 2 the command
could not run (database unreachable or not migrated).
"""

from __future__ import annotations

import json
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any

import typer

from orchestrator.cli import cli_actor, fail
from orchestrator.cli.output import JsonLinesFlag, print_rows
from orchestrator.errors import OrchestratorError
from orchestrator.events.enums import EventStatus

events_app = typer.Typer(help="Inspect and re-drive lifecycle events.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    """Attach the `events` group and the `relay` command to the root CLI."""
    app.add_typer(events_app, name="events")
    app.command("relay")(relay)


@contextmanager
def _guarded() -> Iterator[None]:
    from sqlalchemy.exc import SQLAlchemyError

    try:
        yield
    except OrchestratorError as exc:
        fail(exc.message, 1)
    except SQLAlchemyError as exc:
        first = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        fail(f"cannot use the database ({first}); is DATABASE_URL right and `orchestrator migrate` done?", 2)


def _cells(event: dict[str, Any]) -> list[object]:
    error = (event["last_error"] or "").replace("\n", " ")
    return [
        event["id"], event["status"], event["type"], event["app_id"] or "-", event["attempts"],
        str(event["received_at"])[:19], error[:120],
    ]  # fmt: skip


@events_app.command("failed")
def events_failed(
    status: Annotated[EventStatus, typer.Option(help="which status to list")] = EventStatus.failed,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 50,
    as_json: JsonLinesFlag = False,
) -> None:
    """List failed events (or another status with --status parked), newest first."""
    from orchestrator.cli import session_scope
    from orchestrator.events.service import describe_event, list_events

    with _guarded(), session_scope(write=False) as session:
        rows = [describe_event(e) for e in list_events(session, status=status, limit=limit)[0]]
    if not rows and not as_json:
        typer.echo(f"no {status.value} events", err=True)
        return
    columns = ["ID", "STATUS", "TYPE", "APP", "ATTEMPTS", "RECEIVED", "ERROR"]
    print_rows(columns, [_cells(row) for row in rows], as_json=as_json, data=rows, lines=True)


@events_app.command("show")
def events_show(event_id: Annotated[str, typer.Argument(help="the event id")]) -> None:
    """Print one event as JSON."""
    from orchestrator.cli import session_scope
    from orchestrator.events.service import describe_event, get_event

    with _guarded(), session_scope(write=False) as session:
        row = describe_event(get_event(session, event_id))
    typer.echo(json.dumps(row, indent=2, default=str))


@events_app.command("retry")
def events_retry(event_id: Annotated[str, typer.Argument(help="the event id")]) -> None:
    """Send a failed, parked or stuck event round again (fresh attempts), and publish it now."""
    from orchestrator.cli import session_scope
    from orchestrator.events.publisher import publish_now
    from orchestrator.events.service import retry_event

    with _guarded(), session_scope() as session:
        previous = retry_event(session, event_id, actor=cli_actor())
    try:
        publish_now([event_id])
        typer.echo(f"event {event_id} ({previous.type}) re-driven and published")
    except Exception as exc:  # the relay publishes pending events once the broker is back
        typer.echo(
            f"event {event_id} re-driven; the broker is unreachable ({exc}); the relay will publish it", err=True
        )


def relay(
    once: Annotated[bool, typer.Option("--once", help="one pass (and one GitHub redelivery check), then exit")] = False,
) -> None:
    """Run the outbox relay (and the GitHub redelivery job) in the foreground.

    The scheduler already runs it as a job; this is for deployments that want it apart.
    """
    from orchestrator.config import get_settings
    from orchestrator.events.relay import Relay, republish_due

    settings = get_settings()
    if once:
        from orchestrator.events.redelivery import redeliver_failed

        with _guarded():
            typer.echo(f"published {republish_due(settings)} event(s)")
            report = redeliver_failed(settings)
        if not report.skipped:
            typer.echo(f"GitHub: {report.checked} deliveries checked, {len(report.redelivered)} redelivery request(s)")
        return
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    Relay(settings, stop).run()
