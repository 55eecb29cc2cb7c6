"""The API app for `python -m bench.llm --profile PATH`: profiled (cProfile, CPU time) from its first
connector request until shutdown, so start-up is left out; the stats and the number of connector
requests go to $LLM_BENCH_PROFILE and $LLM_BENCH_PROFILE.requests.
"""

from __future__ import annotations

import cProfile
import os
import time
from pathlib import Path

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from orchestrator.http.app import create_app as _create_app


def create_app() -> ASGIApp:
    """The API wrapped in the profiler (a uvicorn factory)."""
    app = _create_app()
    profiler = cProfile.Profile(time.process_time)  # CPU time: a descheduled process costs nothing
    state = {"on": False, "requests": 0}
    out = Path(os.environ["LLM_BENCH_PROFILE"])

    async def profiled(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and str(scope["path"]).startswith("/llm/"):
            state["requests"] += 1
            if not state["on"]:
                state["on"] = True
                profiler.enable()
        elif scope["type"] == "lifespan":

            async def shutdown_aware() -> Message:
                message = await receive()
                if message["type"] == "lifespan.shutdown" and state["on"]:
                    profiler.disable()
                    profiler.dump_stats(out)
                    out.with_suffix(out.suffix + ".requests").write_text(str(state["requests"]))
                return message

            await app(scope, shutdown_aware, send)
            return
        await app(scope, receive, send)

    return profiled
