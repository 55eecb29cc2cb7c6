"""A tiny scripted HTTP server for provider and identity-provider tests (real sockets, real HTTP)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import ThreadingHTTPServer
from typing import Any

from bench.local_http import QuietHandler, base_url, serve, shut


@dataclass
class Answer:
    """One scripted reply: status, JSON body, and an optional delay before answering."""

    status: int = 200
    body: Any = field(default_factory=dict)
    delay: float = 0.0


@dataclass
class Seen:
    """One request the server received."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes


class ScriptedServer:
    """Answers requests from a script (the last answer repeats) or from a handler; records them."""

    def __init__(self, answers: list[Answer] | None = None, handler: Callable[[Seen], Answer] | None = None) -> None:
        self.answers = list(answers or [Answer()])
        self.handler = handler
        self.seen: list[Seen] = []
        self._lock = threading.Lock()
        outer = self

        class _Handler(QuietHandler):
            def _serve(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                seen = Seen(self.command, self.path, {k.lower(): v for k, v in self.headers.items()},
                            self.rfile.read(length) if length else b"")  # fmt: skip
                answer = outer._next(seen)
                if answer.delay:
                    time.sleep(answer.delay)
                self.reply_json(answer.status, answer.body)

            do_GET = do_POST = _serve

        self._handler = _Handler
        self._server: ThreadingHTTPServer | None = None

    def _next(self, seen: Seen) -> Answer:
        with self._lock:
            self.seen.append(seen)
            if self.handler is not None:
                return self.handler(seen)
            return self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]

    @property
    def url(self) -> str:
        """Base URL, without a trailing slash."""
        assert self._server is not None
        return base_url(self._server)

    def __enter__(self) -> ScriptedServer:
        self._server = serve(self._handler)
        return self

    def __exit__(self, *exc: object) -> None:
        shut(self._server)
