"""The JSON log line: written straight to the handler, it is the line the stdlib route writes."""

from __future__ import annotations

import io
import json
import logging
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import pytest
import structlog

from orchestrator import logs
from orchestrator.logs import bind, configure_logging, get_logger, request_context


class _Custom:
    def __repr__(self) -> str:
        return "<custom>"


@pytest.fixture
def stream(monkeypatch: pytest.MonkeyPatch) -> Iterator[io.StringIO]:
    """Logging configured onto a buffer, with pytest's handlers, levels and structlog restored after."""
    root = logging.getLogger()
    saved = (root.handlers[:], root.level, structlog.get_config(), logs._direct, logs._configured)
    buffer = io.StringIO()
    monkeypatch.setattr("sys.stderr", buffer)
    configure_logging("INFO")
    try:
        yield buffer
    finally:
        root.handlers[:], level, config, logs._direct, logs._configured = saved
        root.setLevel(level)
        structlog.configure(**config)


@contextmanager
def _alone() -> Iterator[logging.Handler]:
    """Our handler as the root's only one (pytest adds its own for each test phase), as in a real process."""
    root = logging.getLogger()
    saved = root.handlers[:]
    assert logs._direct is not None
    root.handlers[:] = [logs._direct]
    try:
        yield logs._direct
    finally:
        root.handlers[:] = saved


def _emit(name: str) -> None:
    log = get_logger(name)
    with request_context(request_id="req-1") as ctx:
        bind(app_id="an-app", actor="someone@example.com")
        structlog.contextvars.bind_contextvars(event_type="push")  # bound outside `bind`: merged too
        fields = {"method": "POST", "path": "/x/{app_id}", "status": 200, "ms": 1.5}
        log.info("request", **fields, api_token="tok-9f3a1c", obj=_Custom(), **ctx)
        try:
            raise ValueError("boom")
        except ValueError:
            log.error("failed", exc_info=True, password="p", n=None)
        log.debug("below the level")


def test_direct_line_is_the_stdlib_line(stream: io.StringIO, monkeypatch: pytest.MonkeyPatch) -> None:
    """Same keys in the same order, same values (secrets redacted), whichever route a line takes."""
    # A filter on a logger makes its lines go through stdlib logging and the ProcessorFormatter.
    monkeypatch.setattr(logging.getLogger("orchestrator.routed"), "filters", [lambda _record: True])
    with _alone() as handler:
        assert logs._only_our_handler(logging.getLogger("orchestrator.direct"), handler)
        assert not logs._only_our_handler(logging.getLogger("orchestrator.routed"), handler)
        _emit("orchestrator.direct")
        direct = stream.getvalue()
        stream.seek(0)
        stream.truncate()
        _emit("orchestrator.routed")
        routed = stream.getvalue()

    def parsed(text: str) -> list[dict[str, Any]]:
        return [json.loads(line) for line in text.splitlines()]

    direct_lines, routed_lines = parsed(direct), parsed(routed)
    assert len(direct_lines) == len(routed_lines) == 2
    for mine, theirs in zip(direct_lines, routed_lines, strict=True):
        assert list(mine) == list(theirs)
        for key in mine:
            if key not in ("timestamp", "logger", "exception"):
                assert mine[key] == theirs[key], key
    request = direct_lines[0]
    assert request["api_token"] == logs.REDACTED and "tok-9f3a1c" not in direct
    assert request["obj"] == "<custom>" and request["event_type"] == "push"
    assert request["logger"] == "orchestrator.direct" and request["level"] == "info"
    assert "ValueError: boom" in direct_lines[1]["exception"] and direct_lines[1]["password"] == logs.REDACTED


def test_timestamp_is_isoformat_utc(monkeypatch: pytest.MonkeyPatch) -> None:
    """The stamp is what `datetime.now(UTC).isoformat()` writes, with Z (no fraction on a whole second)."""
    before = datetime.now(UTC)
    stamp = logs.add_timestamp(None, "info", {})["timestamp"]
    after = datetime.now(UTC)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{6})?Z", stamp)
    assert before <= datetime.fromisoformat(stamp) <= after
    for nanos in (1_767_225_600_000_000_000, 1_767_225_600_000_999_999, 1_767_225_601_123_456_789):
        monkeypatch.setattr(time, "time_ns", lambda nanos=nanos: nanos)
        expected = datetime.fromtimestamp(nanos // 1000 / 1e6, UTC).isoformat().replace("+00:00", "Z")
        assert logs.add_timestamp(None, "info", {})["timestamp"] == expected


def test_caplog_still_sees_records(stream: io.StringIO, caplog: pytest.LogCaptureFixture) -> None:
    """Another handler on the root (pytest's) turns the direct route off: it gets the event dict."""
    with _alone():
        logging.getLogger().addHandler(caplog.handler)
        get_logger("orchestrator.seen").warning("seen", key="value")
    assert [r.msg["key"] for r in caplog.records if isinstance(r.msg, dict)] == ["value"]
    assert "seen" in stream.getvalue()


def test_encoder_writes_what_json_dumps_writes() -> None:
    """The reused C encoder: json.dumps's output with the same fallback (non-ASCII, floats, nesting)."""
    value = {"é": 'ünï ☃ \n"', "f": 0.1 + 0.2, "inf": float("inf"), "n": [1, None, True], "o": _Custom(), 3: {"k": ()}}
    assert logs._encode(value) == json.dumps(value, default=logs._json_fallback)


def test_a_closed_stream_never_raises_into_the_caller(stream: io.StringIO, monkeypatch: pytest.MonkeyPatch) -> None:
    """As with stdlib logging, a failed write is reported (handleError), not raised at the call."""
    reported: list[object] = []
    with _alone() as handler:
        monkeypatch.setattr(handler, "handleError", reported.append)
        stream.close()
        get_logger("orchestrator.closed").info("lost", key="value")
    assert len(reported) == 1


def test_a_failed_flush_is_reported_and_the_line_not_written_twice(
    stream: io.StringIO, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The write went through, the flush failed: one line, one report (not a second line by the stdlib)."""
    reported: list[object] = []
    with _alone() as handler:
        monkeypatch.setattr(handler, "handleError", reported.append)

        def broken_flush() -> None:
            raise BrokenPipeError("reader gone")

        monkeypatch.setattr(stream, "flush", broken_flush)
        get_logger("orchestrator.flush").info("once", key="value")
    assert len(reported) == 1
    assert [json.loads(line)["event"] for line in stream.getvalue().splitlines()] == ["once"]


def test_a_level_on_our_handler_is_honoured(stream: io.StringIO) -> None:
    """A handler set to WARNING under a root at INFO drops INFO lines, as the stdlib route does."""
    with _alone() as handler:
        handler.setLevel(logging.WARNING)
        try:
            get_logger("orchestrator.level").info("dropped")
            get_logger("orchestrator.level").warning("kept")
        finally:
            handler.setLevel(logging.NOTSET)
    assert [json.loads(line)["event"] for line in stream.getvalue().splitlines()] == ["kept"]
