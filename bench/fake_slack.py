"""A local Slack Web API for tests and benchmarks: a threaded HTTP server that speaks the methods we call.

It answers like Slack does (`{"ok": true, ...}` / `{"ok": false, "error": ...}`, HTTP 429 with
`Retry-After`), keeps channel histories with message metadata (returned only with
`include_all_metadata`), and records every request so tests can assert on what was sent. Faults are
queued per method with `fail(...)`: an error code, an HTTP status, a 429, or a delay — optionally
*after* the effect happened, which is how Slack fails when a post went through but its answer was
lost.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from bench.local_http import QuietHandler, base_url, serve, shut

TEAM = "T0TEST0001"
BOT_USER = "U0BOT00001"
BOT_ID = "B0BOT00001"


@dataclass
class Fault:
    """One planned misbehaviour of a method."""

    status: int = 200
    error: str | None = None
    retry_after: int | None = None
    delay: float = 0.0
    after_effect: bool = False  # do the work, then fail (the answer is lost, the effect is not)


@dataclass
class Recorded:
    """A request as the server saw it (without the token)."""

    method: str
    params: dict[str, Any]
    at: float
    status: int = 200


@dataclass
class FakeSlack:
    """The server's state; start() returns the base URL to use as SLACK_API_URL."""

    token: str
    channels: dict[str, dict[str, Any]] = field(default_factory=dict)  # id → {name, member}
    users: dict[str, str] = field(default_factory=dict)  # email → user id
    history: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # channel id → messages (oldest first)
    ephemerals: list[dict[str, Any]] = field(default_factory=list)
    views: list[dict[str, Any]] = field(default_factory=list)
    requests: list[Recorded] = field(default_factory=list)
    faults: dict[str, list[Fault]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    _server: ThreadingHTTPServer | None = None
    _last_ts: float = 0.0

    # ------------------------------------------------------------ set-up

    def add_channel(self, name: str, channel_id: str, *, member: bool = True) -> None:
        """A channel the bot can see (and is a member of, unless member=False)."""
        self.channels[channel_id] = {"name": name.lstrip("#"), "member": member}
        self.history.setdefault(channel_id, [])

    def add_user(self, email: str, user_id: str) -> None:
        """A workspace member findable by email."""
        self.users[email.lower()] = user_id

    def fail(self, method: str, times: int = 1, **fault: Any) -> None:
        """Make the next `times` calls of `method` misbehave (see Fault)."""
        with self.lock:
            self.faults.setdefault(method, []).extend(Fault(**fault) for _ in range(times))

    def start(self) -> str:
        """Serve on a free local port in a daemon thread; returns the API base URL."""
        fake = self

        class Handler(QuietHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
                fake._handle(self)

            def do_POST(self) -> None:  # noqa: N802
                fake._handle(self)

        self._server = serve(Handler)
        return f"{base_url(self._server)}/api/"

    def stop(self) -> None:
        """Shut the server down."""
        shut(self._server)

    # ------------------------------------------------------------ assertions

    def calls(self, method: str) -> list[dict[str, Any]]:
        """The parameters of every call of `method`, in order."""
        with self.lock:
            return [r.params for r in self.requests if r.method == method]

    def messages(self, channel_id: str) -> list[dict[str, Any]]:
        """Top-level messages of a channel, oldest first."""
        with self.lock:
            return [m for m in self.history.get(channel_id, []) if "thread_ts" not in m or m["thread_ts"] == m["ts"]]

    def replies(self, channel_id: str, thread_ts: str) -> list[dict[str, Any]]:
        """Replies in a thread, oldest first (the parent excluded)."""
        with self.lock:
            return [
                m for m in self.history.get(channel_id, []) if m.get("thread_ts") == thread_ts and m["ts"] != thread_ts
            ]

    def dm_channel_of(self, user_id: str) -> str:
        """The IM channel id conversations.open gives for a user."""
        return "D" + user_id[1:]

    # ------------------------------------------------------------ HTTP

    def _handle(self, req: QuietHandler) -> None:
        url = urlsplit(req.path)
        method = url.path.rsplit("/", 1)[-1]
        length = int(req.headers.get("Content-Length") or 0)
        raw = req.rfile.read(length) if length else b""
        params = _params(raw, req.headers.get("Content-Type", ""), url.query)
        record = Recorded(method, params, time.time())
        with self.lock:
            self.requests.append(record)
            queue = self.faults.get(method) or []
            fault = queue.pop(0) if queue else None
        if req.headers.get("Authorization") != f"Bearer {self.token}":
            return _reply(req, {"ok": False, "error": "invalid_auth"})
        if fault and fault.retry_after is not None:
            record.status = 429
            return _reply(req, {"ok": False, "error": "ratelimited"}, 429, {"Retry-After": str(fault.retry_after)})
        if fault and not fault.after_effect:
            time.sleep(fault.delay)
            if fault.status != 200 or fault.error:
                record.status = fault.status
                return _reply(req, {"ok": False, "error": fault.error or "internal_error"}, fault.status)
        body = self._dispatch(method, params)
        if fault and fault.after_effect:
            time.sleep(fault.delay)
            if fault.status != 200:
                record.status = fault.status
                return _reply(req, {"ok": False, "error": "internal_error"}, fault.status)
        _reply(req, body)

    def _dispatch(self, method: str, p: dict[str, Any]) -> dict[str, Any]:
        handler = getattr(self, "_m_" + method.replace(".", "_"), None)
        if handler is None:
            return {"ok": False, "error": "unknown_method"}
        with self.lock:
            return handler(p)  # type: ignore[no-any-return]

    def _channel(self, ref: str) -> str | None:
        if ref.startswith("D"):
            self.history.setdefault(ref, [])
            return ref
        if ref in self.channels:
            return ref
        name = ref.lstrip("#")
        return next((cid for cid, c in self.channels.items() if c["name"] == name), None)

    def _next_ts(self) -> str:
        self._last_ts = max(time.time(), self._last_ts + 0.000001)
        return f"{self._last_ts:.6f}"

    # ------------------------------------------------------------ methods

    def _m_chat_postMessage(self, p: dict[str, Any]) -> dict[str, Any]:
        cid = self._channel(str(p.get("channel", "")))
        if cid is None:
            return {"ok": False, "error": "channel_not_found"}
        if cid in self.channels and not self.channels[cid]["member"]:
            return {"ok": False, "error": "not_in_channel"}
        ts = self._next_ts()
        message: dict[str, Any] = {
            "type": "message", "subtype": "bot_message", "text": p.get("text") or "", "ts": ts, "user": BOT_USER,
            "bot_id": BOT_ID, "app_id": "A0TEST0001", "team": TEAM, "blocks": _json(p.get("blocks")) or [],
        }  # fmt: skip
        if p.get("metadata"):
            message["metadata"] = _json(p["metadata"])
        if p.get("thread_ts"):
            message["thread_ts"] = p["thread_ts"]
            parent = next((m for m in self.history[cid] if m["ts"] == p["thread_ts"]), None)
            if parent is None:
                return {"ok": False, "error": "thread_not_found"}
            parent["thread_ts"] = parent["ts"]
            parent["reply_count"] = parent.get("reply_count", 0) + 1
        self.history[cid].append(message)
        return {"ok": True, "channel": cid, "ts": ts, "message": {k: v for k, v in message.items() if k != "metadata"}}

    def _m_chat_update(self, p: dict[str, Any]) -> dict[str, Any]:
        cid = self._channel(str(p.get("channel", "")))
        found = next((m for m in self.history.get(cid or "", []) if m["ts"] == p.get("ts")), None)
        if found is None:
            return {"ok": False, "error": "message_not_found"}
        found.update(text=p.get("text") or "", blocks=_json(p.get("blocks")) or [], edited={"user": BOT_USER})
        return {"ok": True, "channel": cid, "ts": found["ts"], "text": found["text"], "message": dict(found)}

    def _m_chat_postEphemeral(self, p: dict[str, Any]) -> dict[str, Any]:
        if self._channel(str(p.get("channel", ""))) is None:
            return {"ok": False, "error": "channel_not_found"}
        self.ephemerals.append({"channel": p.get("channel"), "user": p.get("user"), "text": p.get("text")})
        return {"ok": True, "message_ts": self._next_ts()}

    def _m_views_open(self, p: dict[str, Any]) -> dict[str, Any]:
        if "expired" in str(p.get("trigger_id", "")):
            return {"ok": False, "error": "expired_trigger_id"}
        view = _json(p.get("view")) or {}
        self.views.append({"trigger_id": p.get("trigger_id"), "view": view})
        return {"ok": True, "view": {"id": f"V{len(self.views):09d}", "team_id": TEAM, "state": {"values": {}}, **view}}

    def _m_users_lookupByEmail(self, p: dict[str, Any]) -> dict[str, Any]:
        email = str(p.get("email", "")).lower()
        if email not in self.users:
            return {"ok": False, "error": "users_not_found"}
        uid = self.users[email]
        return {"ok": True, "user": {"id": uid, "team_id": TEAM, "name": email.split("@")[0], "deleted": False,
                                     "is_bot": False, "profile": {"email": email}}}  # fmt: skip

    def _m_conversations_open(self, p: dict[str, Any]) -> dict[str, Any]:
        user = str(p.get("users", "")).split(",")[0]
        if user not in self.users.values():
            return {"ok": False, "error": "user_not_found"}
        cid = self.dm_channel_of(user)
        self.history.setdefault(cid, [])
        return {"ok": True, "channel": {"id": cid}}

    def _page(self, items: list[dict[str, Any]], p: dict[str, Any], key: str) -> dict[str, Any]:
        meta = str(p.get("include_all_metadata", "")).lower() in ("1", "true")
        start = int(p.get("cursor") or 0)
        limit = int(p.get("limit") or 100)
        chunk = [
            dict(m) if meta else {k: v for k, v in m.items() if k != "metadata"} for m in items[start : start + limit]
        ]
        more = start + limit < len(items)
        return {"ok": True, key: chunk, "has_more": more,
                "response_metadata": {"next_cursor": str(start + limit) if more else ""}}  # fmt: skip

    def _m_conversations_history(self, p: dict[str, Any]) -> dict[str, Any]:
        cid = self._channel(str(p.get("channel", "")))
        if cid is None:
            return {"ok": False, "error": "channel_not_found"}
        oldest = float(p.get("oldest") or 0)
        top = [m for m in self.history[cid] if float(m["ts"]) > oldest and m.get("thread_ts", m["ts"]) == m["ts"]]
        return self._page(list(reversed(top)), p, "messages")  # newest first, as Slack does

    def _m_conversations_replies(self, p: dict[str, Any]) -> dict[str, Any]:
        cid = self._channel(str(p.get("channel", "")))
        if cid is None:
            return {"ok": False, "error": "channel_not_found"}
        thread = [m for m in self.history[cid] if m["ts"] == p.get("ts") or m.get("thread_ts") == p.get("ts")]
        if not thread:
            return {"ok": False, "error": "thread_not_found"}
        return self._page(thread, p, "messages")

    def _m_conversations_list(self, p: dict[str, Any]) -> dict[str, Any]:
        items = [
            {"id": cid, "name": c["name"], "is_channel": True, "is_member": c["member"]}
            for cid, c in self.channels.items()
        ]
        return self._page(items, p, "channels")


def _json(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _params(raw: bytes, content_type: str, query: str) -> dict[str, Any]:
    params: dict[str, Any] = {k: v[0] for k, v in parse_qs(query).items()}
    if raw and "json" in content_type:
        params.update(json.loads(raw))
    elif raw:
        params.update({k: v[0] for k, v in parse_qs(raw.decode()).items()})
    return params


def _reply(req: QuietHandler, body: dict[str, Any], status: int = 200, headers: dict[str, str] | None = None) -> None:
    req.reply(status, json.dumps(body).encode(), "application/json; charset=utf-8", headers)
