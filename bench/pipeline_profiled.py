"""The API app for `python -m bench.pipeline --profile DIR`: the webhook ingest under cProfile.

Three profiles, each in thread CPU time (a thread waiting for a lock or the network costs nothing),
from the first delivery of the burst (`X-GitHub-Delivery: burst.…`) until shutdown: the event loop
(uvicorn, the middleware, the handler), the group-commit writer (`github-ingest`: the statements and
the commit) and the outbox publisher (the broker). They go to DIR/loop.prof, DIR/writer.prof and
DIR/publisher.prof, and the number of deliveries profiled to DIR/requests.
"""

from __future__ import annotations

import cProfile
import functools
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from orchestrator.events.group_commit import GroupCommitter
from orchestrator.events.publisher import BackgroundPublisher
from orchestrator.http.app import create_app as _create_app

_profiles: dict[str, cProfile.Profile] = {}
_state = {"on": False, "requests": 0}


def _profile(name: str) -> cProfile.Profile:
    if name not in _profiles:
        _profiles[name] = cProfile.Profile(time.thread_time)
    return _profiles[name]


def _profiled(name: str, method: Callable[..., Any]) -> Callable[..., Any]:
    """`method`, profiled into the profile `name` once the burst has begun (one thread per name)."""

    @functools.wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if not _state["on"]:
            return method(*args, **kwargs)
        profile = _profile(name)
        profile.enable()
        try:
            return method(*args, **kwargs)
        finally:
            profile.disable()

    return wrapper


def create_app() -> ASGIApp:
    """The API with its ingest profiled (a uvicorn factory)."""
    GroupCommitter._run_batch = _profiled("writer", GroupCommitter._run_batch)  # type: ignore[method-assign]
    BackgroundPublisher._publish = _profiled("publisher", BackgroundPublisher._publish)  # type: ignore[method-assign]
    BackgroundPublisher._mark = _profiled("publisher", BackgroundPublisher._mark)  # type: ignore[method-assign]
    app = _create_app()
    out = Path(os.environ["PIPELINE_BENCH_PROFILE"])

    async def profiled(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == "/webhooks/github":
            if not _state["on"]:
                delivery = dict(scope["headers"]).get(b"x-github-delivery", b"")
                if delivery.startswith(b"burst."):
                    _state["on"] = True
                    _profile("loop").enable()  # this thread is the event loop's
            if _state["on"]:
                _state["requests"] += 1
        elif scope["type"] == "lifespan":

            async def shutdown_aware() -> Message:
                message = await receive()
                if message["type"] == "lifespan.shutdown" and _state["on"]:
                    _profile("loop").disable()
                    out.mkdir(parents=True, exist_ok=True)
                    for name, profile in _profiles.items():
                        profile.dump_stats(out / f"{name}.prof")
                    (out / "requests").write_text(str(_state["requests"]))
                return message

            await app(scope, shutdown_aware, send)
            return
        await app(scope, receive, send)

    return profiled
