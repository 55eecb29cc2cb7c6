"""Structured logging: JSON lines through structlog, with request/event/app ids bound per context.

`bind(app_id=..., event_id=...)` adds keys to every later line of the current request or task.
Within an HTTP request it also records them in the request's context dict, so the access line the
middleware writes at the end carries them even when they were bound in a worker thread (FastAPI
runs sync handlers in a thread with a copy of the context; bindings made there do not flow back).

Cost (issue 19): a line through structlog's stdlib bridge (a LogRecord, a caller-frame walk, the
ProcessorFormatter's copy of the record) cost ~35 µs, the per-request access line a fifth of the
API's event-loop time per webhook. When the root logger's only handler is the one configured here,
the last processor renders the JSON line itself and writes it to that handler's stream (same keys,
same order, same encoder); any other set-up (pytest's caplog, a handler added by a host
application, the console renderer) takes the stdlib route as before.
"""

from __future__ import annotations

import json as _json
import logging
import sys
import time
from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import structlog

_configured = False
# The handler configure_logging installed when it renders JSON (None: console output).
_direct: logging.StreamHandler[Any] | None = None
_request_ctx: ContextVar[dict[str, Any] | None] = ContextVar("orchestrator_request_ctx", default=None)

# Values under these keys never reach a log line in clear, whoever logs them.
_SECRET_KEYS = frozenset({"authorization", "token", "password", "secret", "api_key", "bearer", "cookie"})
_SECRET_SUFFIXES = ("_token", "_secret", "_password", "_api_key")
REDACTED = "[redacted]"
# key → is it secret-looking; keys come from code (`bind`, log calls), so the set stays small, but
# it is bounded anyway in case a caller logs a mapping with arbitrary keys.
_secret_key: dict[str, bool] = {}
_SECRET_KEY_CACHE_MAX = 4096


def _is_secret_key(key: str) -> bool:
    lowered = key.lower()
    secret = lowered in _SECRET_KEYS or lowered.endswith(_SECRET_SUFFIXES)
    if len(_secret_key) < _SECRET_KEY_CACHE_MAX:
        _secret_key[key] = secret
    return secret


def redact_secrets(_logger: Any, _method: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """A processor replacing the value of secret-looking keys with a placeholder."""
    secret = [key for key in event_dict if _secret_key.get(key) or (key not in _secret_key and _is_secret_key(key))]
    for key in secret:
        event_dict[key] = REDACTED
    return event_dict


# (second, "YYYY-MM-DDTHH:MM:SS") of the last stamp: the date part is formatted once a second.
_stamp_second: tuple[int, str] = (-1, "")


def add_timestamp(_logger: Any, _method: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """`timestamp`, exactly as structlog's `TimeStamper(fmt="iso", utc=True)` writes it, ~3× cheaper.

    `datetime.now(timezone.utc).isoformat()` with "+00:00" as "Z": microseconds (floored), left
    out when they are 0 — `isoformat`'s own rule, kept so every line parses the same way.
    """
    global _stamp_second
    seconds, nanos = divmod(time.time_ns(), 1_000_000_000)
    cached_second, prefix = _stamp_second
    if seconds != cached_second:
        prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
        _stamp_second = (seconds, prefix)
    micros = nanos // 1000
    event_dict["timestamp"] = f"{prefix}.{micros:06d}Z" if micros else f"{prefix}Z"
    return event_dict


def _json_fallback(obj: Any) -> Any:
    """What structlog's JSONRenderer writes for a value json cannot: its `__structlog__()`, else repr."""
    try:
        return obj.__structlog__()
    except AttributeError:
        return repr(obj)


# The line's encoder: `json.dumps(obj, default=_json_fallback)`'s output, from one C encoder made once
# (json.dumps builds a JSONEncoder and a C encoder per call: a third of the cost of encoding a line).
# Without its circular-reference check: a self-containing value raises RecursionError, not ValueError.
_make_c_encoder = getattr(_json.encoder, "c_make_encoder", None)
_c_encoder = (
    None
    if _make_c_encoder is None
    else _make_c_encoder(
        None, _json_fallback, _json.encoder.encode_basestring_ascii, None, ": ", ", ", False, False, True
    )
)
_py_encoder = _json.JSONEncoder(default=_json_fallback)


def _encode(obj: Any) -> str:
    if _c_encoder is not None and isinstance(obj, dict):
        return "".join(_c_encoder(obj, 0))
    return _py_encoder.encode(obj)


def _write_or_wrap(logger: Any, method_name: str, event_dict: MutableMapping[str, Any]) -> Any:
    """The last processor: write the JSON line straight to our handler, else hand it to stdlib logging.

    Straight only when stdlib logging would give the record to our handler alone, unfiltered:
    every logger from this one up to the root without handlers or filters (the root with just
    ours). What is written is what `ProcessorFormatter` + `JSONRenderer` would have written.
    """
    handler = _direct
    if handler is not None and _only_our_handler(logger, handler):
        try:
            line = _encode(event_dict) + "\n"
        except Exception:
            # A value that cannot be encoded: stdlib logging reports it its own way (Handler.handleError)
            # and never raises into the caller, so the line goes that route.
            return structlog.stdlib.ProcessorFormatter.wrap_for_formatter(logger, method_name, event_dict)
        try:
            with handler.lock:  # type: ignore[union-attr]  # a Handler's lock exists once it is built
                handler.stream.write(line)
                handler.stream.flush()
        except Exception:
            # A closed or broken stream: reported as StreamHandler.emit would, never raised, and not
            # written a second time down the other route (the write may have gone through).
            handler.handleError(logging.makeLogRecord({"msg": line}))
        raise structlog.DropEvent
    return structlog.stdlib.ProcessorFormatter.wrap_for_formatter(logger, method_name, event_dict)


def _only_our_handler(logger: Any, handler: logging.Handler) -> bool:
    current = logger
    while isinstance(current, logging.Logger):
        if current.filters or current.disabled:
            return False
        if current.handlers:
            return (
                current is logging.root
                and current.handlers == [handler]
                and not handler.filters
                and handler.level == logging.NOTSET
            )
        if not current.propagate:
            return False
        current = current.parent
    return False


def configure_logging(level: str = "INFO", *, json: bool = True) -> None:
    """Route structlog and the standard library through one JSON (or console) renderer."""
    global _configured, _direct
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        add_timestamp,
        redact_secrets,
        structlog.processors.format_exc_info,
    ]
    renderer: Any = (
        structlog.processors.JSONRenderer(serializer=lambda obj, **_kw: _encode(obj))
        if json
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        # filter_by_level first: a line below the level is dropped before the other processors run
        # (the per-request "request" line cost ~10 % of a hot endpoint's CPU at LOG_LEVEL=WARNING).
        processors=[structlog.stdlib.filter_by_level, *shared, _write_or_wrap],
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
    _direct = handler if json else None
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
