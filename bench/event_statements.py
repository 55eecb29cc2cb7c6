"""SQL statements per event along the pipeline, counted in one process (no server, no Redis).

    python -m bench.event_statements [--events 500] [--batch 8] [--apps 50] [--database-url …]

Catalogues --apps apps in a throw-away SQLite file (or --database-url), then, for --events signed
GitHub `push` deliveries spread over them (after a warm-up round, so that every app has its queued
review and the figures are steady state):

1. ingest: the webhook's work item (`orchestrator.http.github._ingest`), --batch deliveries to a
   transaction as the group commit shares them under load;
2. publish: `publish_now` of --batch ids at a time on the embedded broker, plus the background
   publisher's look-up of what is still pending (`mark_still_pending`), run after the events were
   handled as in steady state;
3. handle: the batch task's loop (`workers.tasks.events._handle_batch`) on messages of --batch ids.

Each phase prints cursor executions per event (an executemany counts once; in brackets, each of its
rows counted), commits per event and milliseconds per event. A listener on the engine's
`before_cursor_execute` counts them, so the figures are the statements the database really receives.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from typing import Any


def main() -> None:
    """Count the statements of each phase and print them."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--events", type=int, default=500)
    parser.add_argument("--batch", type=int, default=8, help="deliveries per ingest transaction, ids per message")
    parser.add_argument("--apps", type=int, default=50)
    parser.add_argument("--database-url", default=None, help="default: a fresh SQLite file")
    args = parser.parse_args()
    tmp = tempfile.mkdtemp(prefix="bench-statements-")
    os.environ.update(
        DATABASE_URL=args.database_url or f"sqlite:///{tmp}/bench.db",
        BROKER_URL=f"sqla+sqlite:///{tmp}/broker.db",
        GITHUB_WEBHOOK_SECRET="s" * 32,
    )
    os.environ.pop("REDIS_URL", None)  # no leases: they are Redis writes, not statements

    from sqlalchemy import event as sa_event

    from bench.pipeline import _bodies, _seed
    from orchestrator import wiring
    from orchestrator.config import get_settings
    from orchestrator.db import get_engine, session_scope
    from orchestrator.events import outbox, publisher
    from orchestrator.http.github import _Delivery, _ingest
    from workers.tasks.events import _handle_batch

    urls = _seed(args.apps)
    wiring.install()
    outbox.remove_publisher(publisher.publish_after_commit)  # published by the phases below instead
    ids: list[str] = []
    outbox.add_publisher(ids.extend)
    settings = get_settings()

    def deliveries(prefix: str, count: int) -> list[_Delivery]:
        bodies = _bodies(urls, count, "s" * 32, prefix)
        return [_Delivery("push", headers["X-GitHub-Delivery"], json.loads(raw)) for raw, headers in bodies]

    def ingest(items: list[_Delivery]) -> None:
        for i in range(0, len(items), args.batch):
            with session_scope() as session:
                for item in items[i : i + args.batch]:
                    _ingest(session, item)

    def chunks() -> list[list[str]]:
        return [ids[i : i + args.batch] for i in range(0, len(ids), args.batch)]

    ingest(deliveries("warm", args.apps * 2))
    _handle_batch(list(ids), settings, {})
    ids.clear()

    counted: Counter[str] = Counter()

    def on_execute(conn: Any, cursor: Any, statement: str, params: Any, context: Any, executemany: bool) -> None:
        counted["statements"] += 1
        counted["rows"] += len(params) if executemany else 1

    def on_commit(conn: Any) -> None:
        counted["commits"] += 1

    engine = get_engine()
    sa_event.listen(engine, "before_cursor_execute", on_execute)
    sa_event.listen(engine, "commit", on_commit)
    items = deliveries("bench", args.events)
    sent_at: Any = None

    def publish() -> None:
        nonlocal sent_at
        from orchestrator.clock import utcnow

        sent_at = utcnow()
        for chunk in chunks():
            publisher.publish_now(chunk, mark=False)

    def handle() -> None:
        for chunk in chunks():
            _handle_batch(chunk, settings, {})

    def look_up() -> None:
        for i in range(0, len(ids), 500):  # the background publisher's read, about twice a second
            publisher.mark_still_pending(ids[i : i + 500], sent_at=sent_at)

    phases: list[tuple[str, Callable[[], None]]] = [
        (f"ingest ({args.batch} deliveries a transaction)", lambda: ingest(items)),
        (f"publish ({args.batch} ids a message)", publish),
        (f"handle (messages of {args.batch})", handle),
        ("publisher's look-up, after handling", look_up),
    ]
    print(f"{args.events} push deliveries over {args.apps} apps, {engine.dialect.name}")
    for name, run in phases:
        counted.clear()
        start = time.perf_counter()
        run()
        ms = (time.perf_counter() - start) * 1000 / args.events
        n = args.events
        print(
            f"{name}: {counted['statements'] / n:.3f} statements/event ({counted['rows'] / n:.3f} rows), "
            f"{counted['commits'] / n:.2f} commits/event, {ms:.2f} ms/event"
        )
    sys.stdout.flush()


if __name__ == "__main__":
    main()
