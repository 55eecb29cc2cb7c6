"""A local stand-in for the OpenAI and Anthropic APIs (real sockets, real HTTP, server-sent events).

It checks the provider key like the real APIs (401 in the provider's error shape otherwise), echoes
the last user message back ("You said: …") — or, when the request offers tools, calls the first
one with `{"text": <that message>}` as its arguments —, counts tokens roughly, streams in small pieces (so a
placeholder is split over chunks), records every request it received (to assert what reached the
provider), and answers scripted errors (status, provider error body, Retry-After) when told to.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import ThreadingHTTPServer
from typing import Any

from bench.local_http import QuietHandler, base_url, serve, shut


@dataclass
class Received:
    """One request the stand-in received."""

    path: str
    headers: dict[str, str]
    body: bytes
    client_port: int = 0  # which connection it came on


@dataclass
class Failure:
    """A scripted error answer."""

    status: int
    retry_after: str | None = None


@dataclass
class FakeLlm:
    """The stand-in's state: keys it accepts, what it received, scripted failures, stream pacing."""

    openai_key: str
    anthropic_key: str
    piece: int = 3  # characters per streamed text delta
    delay: float = 0.0  # seconds between streamed events
    received: list[Received] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    disconnected: threading.Event = field(default_factory=threading.Event)
    _server: ThreadingHTTPServer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        """Base URL without a trailing slash."""
        assert self._server is not None
        return base_url(self._server)

    def start(self) -> FakeLlm:
        """Start serving on a free loopback port."""
        self._server = serve(_handler(self))
        return self

    def stop(self) -> None:
        """Stop serving."""
        shut(self._server)

    def __enter__(self) -> FakeLlm:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def fail_next(self, status: int, retry_after: str | None = None) -> None:
        """Answer the next request with this error."""
        with self._lock:
            self.failures.append(Failure(status, retry_after))

    def seen_text(self) -> str:
        """Every byte the provider received (headers and bodies), as text."""
        with self._lock:
            parts = [json.dumps(r.headers) + r.body.decode("utf-8", "replace") for r in self.received]
        return "\n".join(parts)

    def _record(self, received: Received) -> Failure | None:
        with self._lock:
            self.received.append(received)
            return self.failures.pop(0) if self.failures else None


def _last_user_text(messages: list[Any]) -> str:
    for message in reversed(messages):
        if message.get("role") != "user":
            continue
        content = message.get("content")
        if isinstance(content, str):
            return content
        if isinstance(content, list):
            return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return ""


def _tool_name(request: dict[str, Any]) -> str | None:
    """The first tool offered (OpenAI `tools[].function.name` or Anthropic `tools[].name`), if any."""
    for tool in request.get("tools") or []:
        if isinstance(tool, dict):
            name = (tool.get("function") or {}).get("name") if "function" in tool else tool.get("name")
            if isinstance(name, str):
                return name
    return None


def _tokens(text: str) -> int:
    return max(1, len(text) // 4)


def _openai_error(status: int, message: str) -> dict[str, Any]:
    kinds = {401: "invalid_request_error", 429: "requests", 500: "server_error"}
    code = {401: "invalid_api_key", 429: "rate_limit_exceeded"}.get(status)
    return {
        "error": {"message": message, "type": kinds.get(status, "invalid_request_error"), "param": None, "code": code}
    }


def _anthropic_error(status: int, message: str) -> dict[str, Any]:
    kinds = {401: "authentication_error", 429: "rate_limit_error", 500: "api_error", 529: "overloaded_error"}
    return {"type": "error", "error": {"type": kinds.get(status, "invalid_request_error"), "message": message}}


def _tool_use_events(
    message: dict[str, Any], start_usage: Any, usage: Any, tool: str, arguments: str, piece: int
) -> list[tuple[str | None, Any]]:
    """An Anthropic stream that calls `tool`, its input JSON sent as `input_json_delta` pieces."""
    block = {"type": "tool_use", "id": "toolu_fake", "name": tool, "input": {}}
    events: list[tuple[str | None, Any]] = [
        ("message_start", {"type": "message_start", "message": {**message, "content": [], "usage": start_usage}}),
        ("content_block_start", {"type": "content_block_start", "index": 0, "content_block": block}),
    ]
    for i in range(0, len(arguments), piece):
        delta = {"type": "input_json_delta", "partial_json": arguments[i : i + piece]}
        events.append(("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": delta}))
    events.append(("content_block_stop", {"type": "content_block_stop", "index": 0}))
    stop = {"stop_reason": "tool_use", "stop_sequence": None}
    events.append(
        ("message_delta", {"type": "message_delta", "delta": stop, "usage": {"output_tokens": usage["output_tokens"]}})
    )
    events.append(("message_stop", {"type": "message_stop"}))
    return events


def _handler(fake: FakeLlm) -> type[QuietHandler]:
    class Handler(QuietHandler):
        protocol_version = "HTTP/1.1"
        # Headers and body go out in separate writes: without TCP_NODELAY, Nagle's algorithm and the
        # client's delayed ACK add ~40 ms to every keep-alive answer.
        disable_nagle_algorithm = True

        def _read(self) -> bytes:
            length = int(self.headers.get("content-length") or 0)
            return self.rfile.read(length) if length else b""

        def do_GET(self) -> None:  # noqa: N802 - the http.server hook name
            fake._record(
                Received(self.path, {k.lower(): v for k, v in self.headers.items()}, b"", self.client_address[1])
            )
            self.reply_json(200, {"object": "list", "data": [{"id": "gpt-4o-mini", "object": "model"}]})

        def do_POST(self) -> None:  # noqa: N802 - the http.server hook name
            raw = self._read()
            headers = {k.lower(): v for k, v in self.headers.items()}
            failure = fake._record(Received(self.path, headers, raw, self.client_address[1]))
            anthropic = self.path.startswith("/v1/messages")
            if anthropic and headers.get("x-api-key") != fake.anthropic_key:
                self.reply_json(401, _anthropic_error(401, "invalid x-api-key"))
                return
            if not anthropic and headers.get("authorization") != f"Bearer {fake.openai_key}":
                self.reply_json(401, _openai_error(401, "Incorrect API key provided"))
                return
            if failure is not None:
                body = (_anthropic_error if anthropic else _openai_error)(failure.status, "scripted failure")
                extra = {"retry-after": failure.retry_after} if failure.retry_after else {}
                self.reply_json(failure.status, body, extra)
                return
            request = json.loads(raw)
            if self.path == "/v1/chat/completions":
                self._chat(request)
            elif self.path == "/v1/embeddings":
                inputs = request["input"] if isinstance(request["input"], list) else [request["input"]]
                data = [{"object": "embedding", "index": i, "embedding": [0.1, 0.2, 0.3]} for i in range(len(inputs))]
                used = sum(_tokens(str(x)) for x in inputs)
                self.reply_json(
                    200,
                    {
                        "object": "list",
                        "data": data,
                        "model": request["model"],
                        "usage": {"prompt_tokens": used, "total_tokens": used},
                    },
                )
            elif self.path == "/v1/messages":
                self._messages(request)
            elif self.path == "/v1/messages/count_tokens":
                self.reply_json(200, {"input_tokens": _tokens(json.dumps(request["messages"]))})
            else:
                self.reply_json(404, _openai_error(404, f"unknown path {self.path}"))

        def _chat(self, request: dict[str, Any]) -> None:
            prompt = json.dumps(request["messages"])
            answer = "You said: " + _last_user_text(request["messages"])
            usage = {
                "prompt_tokens": _tokens(prompt),
                "completion_tokens": _tokens(answer),
                "total_tokens": _tokens(prompt) + _tokens(answer),
            }
            base = {"id": "chatcmpl-fake", "created": int(time.time()), "model": request["model"]}
            tool = _tool_name(request)
            if tool is not None:
                self._chat_tool(request, base, tool, usage)
                return
            if not request.get("stream"):
                choice = {
                    "index": 0,
                    "message": {"role": "assistant", "content": answer},
                    "finish_reason": "stop",
                    "logprobs": None,
                }
                self.reply_json(200, {**base, "object": "chat.completion", "choices": [choice], "usage": usage})
                return
            events = []
            chunk = {**base, "object": "chat.completion.chunk"}
            events.append({**chunk, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]})
            for i in range(0, len(answer), fake.piece):
                piece = answer[i : i + fake.piece]
                events.append({**chunk, "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}]})
            events.append({**chunk, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
            if (request.get("stream_options") or {}).get("include_usage"):
                events.append({**chunk, "choices": [], "usage": usage})
            self._sse([(None, e) for e in events] + [(None, "[DONE]")])

        def _chat_tool(self, request: dict[str, Any], base: dict[str, Any], tool: str, usage: Any) -> None:
            arguments = json.dumps({"text": _last_user_text(request["messages"])})
            call = {"id": "call_fake", "type": "function", "function": {"name": tool, "arguments": arguments}}
            if not request.get("stream"):
                message = {"role": "assistant", "content": None, "tool_calls": [call]}
                choice = {"index": 0, "message": message, "finish_reason": "tool_calls", "logprobs": None}
                self.reply_json(200, {**base, "object": "chat.completion", "choices": [choice], "usage": usage})
                return
            chunk = {**base, "object": "chat.completion.chunk"}
            first = {**call, "index": 0, "function": {"name": tool, "arguments": ""}}
            events = [{**chunk, "choices": [{"index": 0, "delta": {"role": "assistant", "tool_calls": [first]}}]}]
            for i in range(0, len(arguments), fake.piece):
                piece = {"index": 0, "function": {"arguments": arguments[i : i + fake.piece]}}
                events.append(
                    {**chunk, "choices": [{"index": 0, "delta": {"tool_calls": [piece]}, "finish_reason": None}]}
                )
            events.append({**chunk, "choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]})
            if (request.get("stream_options") or {}).get("include_usage"):
                events.append({**chunk, "choices": [], "usage": usage})
            self._sse([(None, e) for e in events] + [(None, "[DONE]")])

        def _messages(self, request: dict[str, Any]) -> None:
            answer = "You said: " + _last_user_text(request["messages"])
            usage = {"input_tokens": _tokens(json.dumps(request["messages"])), "output_tokens": _tokens(answer)}
            message = {
                "id": "msg_fake",
                "type": "message",
                "role": "assistant",
                "model": request["model"],
                "stop_reason": "end_turn",
                "stop_sequence": None,
            }
            tool = _tool_name(request)
            text = _last_user_text(request["messages"])
            if tool is not None:
                message["stop_reason"] = "tool_use"
            if not request.get("stream"):
                content: list[dict[str, Any]] = [{"type": "text", "text": answer}]
                if tool is not None:
                    content = [{"type": "tool_use", "id": "toolu_fake", "name": tool, "input": {"text": text}}]
                self.reply_json(200, {**message, "content": content, "usage": usage})
                return
            start_usage = {"input_tokens": usage["input_tokens"], "output_tokens": 1}
            if tool is not None:
                self._sse(_tool_use_events(message, start_usage, usage, tool, json.dumps({"text": text}), fake.piece))
                return
            events: list[tuple[str | None, Any]] = [
                (
                    "message_start",
                    {"type": "message_start", "message": {**message, "content": [], "usage": start_usage}},
                ),
                (
                    "content_block_start",
                    {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
                ),
            ]
            for i in range(0, len(answer), fake.piece):
                delta = {"type": "text_delta", "text": answer[i : i + fake.piece]}
                events.append(("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": delta}))
            events.append(("content_block_stop", {"type": "content_block_stop", "index": 0}))
            events.append(
                (
                    "message_delta",
                    {
                        "type": "message_delta",
                        "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                        "usage": {"output_tokens": usage["output_tokens"]},
                    },
                )
            )
            events.append(("message_stop", {"type": "message_stop"}))
            self._sse(events)

        def _sse(self, events: list[tuple[str | None, Any]]) -> None:
            try:
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Cache-Control", "no-cache")
                self.send_header("Connection", "close")
                self.end_headers()
                for name, data in events:
                    text = data if isinstance(data, str) else json.dumps(data)
                    frame = (f"event: {name}\n" if name else "") + f"data: {text}\n\n"
                    self.wfile.write(frame.encode())
                    self.wfile.flush()
                    if fake.delay:
                        time.sleep(fake.delay)
            except (BrokenPipeError, ConnectionResetError):
                fake.disconnected.set()
            self.close_connection = True

    return Handler


def main() -> None:
    """Serve the stand-in from its own process: `python -m bench.llm_upstream PORT` (keys from the environment)."""
    import os
    import sys

    fake = FakeLlm(openai_key=os.environ["LLM_OPENAI_API_KEY"], anthropic_key=os.environ["LLM_ANTHROPIC_API_KEY"])
    server = ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), _handler(fake))
    server.daemon_threads = True
    server.request_queue_size = 256
    server.serve_forever()


if __name__ == "__main__":
    main()
