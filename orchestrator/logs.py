"""Structured logging: JSON lines through structlog, with request/event/app ids bound per context.

`bind(app_id=..., event_id=...)` adds keys to every later line of the current request or task.
Within an HTTP request it also records them in the request's context dict, so the access line the
middleware writes at the end carries them even when they were bound in a worker thread (FastAPI
runs sync handlers in a thread with a copy of the context; bindings made there do not flow back).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import structlog

_configured = False
_request_ctx: ContextVar[dict[str, Any] | None] = ContextVar("orchestrator_request_ctx", default=None)

# Values under these keys never reach a log line in clear, whoever logs them.
_SECRET_KEYS = frozenset({"authorization", "token", "password", "secret", "api_key", "bearer", "cookie"})
_SECRET_SUFFIXES = ("_token", "_secret", "_password", "_api_key")
REDACTED = "[redacted]"


def redact_secrets(_logger: Any, _method: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """A processor replacing the value of secret-looking keys with a placeholder."""
    for key in list(event_dict):
        lowered = key.lower()
        if lowered in _SECRET_KEYS or lowered.endswith(_SECRET_SUFFIXES):
            event_dict[key] = REDACTED
    return event_dict


def configure_logging(level: str = "INFO", *, json: bool = True) -> None:
    """Route structlog and the standard library through one JSON (or console) renderer."""
    global _configured
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        redact_secrets,
        structlog.processors.format_exc_info,
    ]
    renderer: Any = structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer(colors=False)
    structlog.configure(
        # filter_by_level first: a line below the level is dropped before the other processors run
        # (the per-request "request" line cost ~10 % of a hot endpoint's CPU at LOG_LEVEL=WARNING).
        processors=[structlog.stdlib.filter_by_level, *shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # One line per outgoing HTTP call (httpx) or per Alembic plugin says nothing an operator needs.
    for noisy in ("uvicorn.access", "httpx", "httpcore", "alembic.runtime.plugins"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    _configured = True


def get_logger(name: str) -> Any:
    """A structlog logger; configures defaults on first use so scripts log JSON too."""
    if not _configured:
        configure_logging()
    return structlog.get_logger(name)


def bind(**values: Any) -> None:
    """Add `values` (app_id, event_id, actor, …) to every later log line of this request or task."""
    structlog.contextvars.bind_contextvars(**values)
    ctx = _request_ctx.get()
    if ctx is not None:
        ctx.update(values)


@contextmanager
def request_context(**values: Any) -> Iterator[dict[str, Any]]:
    """Scope one request: a fresh logging context seeded with `values`; yields the shared context dict.

    The dict is the same object in every copy of the context (threads, tasks), so keys bound
    anywhere during the request are visible to the caller when the block ends.
    """
    structlog.contextvars.clear_contextvars()
    ctx: dict[str, Any] = dict(values)
    reset = _request_ctx.set(ctx)
    structlog.contextvars.bind_contextvars(**values)
    try:
        yield ctx
    finally:
        _request_ctx.reset(reset)
        structlog.contextvars.clear_contextvars()
