"""The console session: a signed cookie holding the API token id, sign-in and last-seen times, a CSRF token.

The cookie is signed (itsdangerous, HMAC-SHA256) with CONSOLE_SECRET, or a random key generated once in
DATA_DIR/console.key; it is HttpOnly, SameSite=Lax, and Secure when PUBLIC_URL is https. A session ends
after CONSOLE_IDLE_MINUTES without a request and CONSOLE_SESSION_HOURS after sign-in, whatever its
activity; the times come from `orchestrator.clock`, so tests move them. The token itself is looked up
again on every request, so revoking it (or the person leaving) ends the session at once.
"""

from __future__ import annotations

import hmac
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from itsdangerous import BadSignature, URLSafeSerializer
from starlette.requests import Request
from starlette.responses import Response

from orchestrator import clock
from orchestrator.config import get_settings
from orchestrator.errors import ConfigError

COOKIE = "console_session"
R = TypeVar("R", bound=Response)
KEY_FILE = "console.key"


@dataclass
class ConsoleSession:
    """What the cookie carries; `ended` says why a signed-in session just ended (not stored)."""

    csrf: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    token_id: int | None = None
    signed_in_at: float | None = None
    seen_at: float | None = None
    flash: list[list[str]] = field(default_factory=list)
    oidc: dict[str, str] = field(default_factory=dict)
    ended: str | None = None

    def as_data(self) -> dict[str, Any]:
        """The stored form."""
        data: dict[str, Any] = {"c": self.csrf}
        if self.token_id is not None:
            data.update(t=self.token_id, i=self.signed_in_at, s=self.seen_at)
        if self.flash:
            data["f"] = self.flash[-5:]
        if self.oidc:
            data["o"] = self.oidc
        return data

    def sign_in(self, token_id: int) -> None:
        """Start a session for `token_id`, with a fresh CSRF token."""
        now = clock.utcnow().timestamp()
        self.token_id, self.signed_in_at, self.seen_at = token_id, now, now
        self.csrf = secrets.token_urlsafe(24)
        self.oidc = {}

    def sign_out(self) -> None:
        """Forget the token; a new CSRF token."""
        self.token_id = self.signed_in_at = self.seen_at = None
        self.csrf = secrets.token_urlsafe(24)

    def say(self, kind: str, text: str) -> None:
        """A message for the next page shown (kind: ok, error, info)."""
        self.flash.append([kind, text[:500]])

    def take_flash(self) -> list[list[str]]:
        """The messages to show now (shown once)."""
        shown, self.flash = self.flash, []
        return shown


def _read_or_create_key(path: Path) -> str:
    if path.exists():
        return path.read_text(encoding="ascii").strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    value = secrets.token_urlsafe(32)
    try:  # O_EXCL: of two processes starting together, one writes and the other reads
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text(encoding="ascii").strip()
    with os.fdopen(fd, "w", encoding="ascii") as handle:
        handle.write(value + "\n")
    return value


def secret() -> str:
    """CONSOLE_SECRET, else the generated key in DATA_DIR/console.key."""
    settings = get_settings()
    if settings.console_secret is not None:
        value = settings.console_secret.get_secret_value()
        if len(value) < 16:
            raise ConfigError("CONSOLE_SECRET: must be at least 16 characters (32 random bytes recommended)")
        return value
    assert settings.data_dir is not None
    return _read_or_create_key(settings.data_dir / KEY_FILE)


def _serializer() -> URLSafeSerializer:
    return URLSafeSerializer(secret(), salt="orchestrator-console-session")


def load(request: Request) -> ConsoleSession:
    """The session of the request: a new anonymous one when the cookie is missing, forged or timed out."""
    raw = request.cookies.get(COOKIE)
    if not raw:
        return ConsoleSession()
    try:
        data = _serializer().loads(raw)
        session = ConsoleSession(
            csrf=str(data["c"]),
            token_id=int(data["t"]) if data.get("t") is not None else None,
            signed_in_at=float(data["i"]) if data.get("i") is not None else None,
            seen_at=float(data["s"]) if data.get("s") is not None else None,
            flash=[[str(k), str(t)] for k, t in data.get("f", [])],
            oidc={str(k): str(v) for k, v in data.get("o", {}).items()},
        )
    except (BadSignature, KeyError, TypeError, ValueError):
        return ConsoleSession()
    if session.token_id is not None:
        settings = get_settings()
        now = clock.utcnow().timestamp()
        if now - (session.signed_in_at or 0) > settings.console_session_hours * 3600:
            session.sign_out()
            session.ended = f"Your session ended {settings.console_session_hours:g} hours after sign-in."
        elif now - (session.seen_at or 0) > settings.console_idle_minutes * 60:
            session.sign_out()
            session.ended = f"Your session ended after {settings.console_idle_minutes:g} minutes without activity."
        else:
            session.seen_at = now
    return session


def save(response: R, session: ConsoleSession) -> R:
    """Write the session cookie on `response` (every answer renews it, sliding the idle timeout)."""
    settings = get_settings()
    response.set_cookie(
        COOKIE,
        _serializer().dumps(session.as_data()),
        max_age=int(settings.console_session_hours * 3600),
        path="/",
        httponly=True,
        samesite="lax",
        secure=settings.public_url.startswith("https://"),
    )
    return response


def csrf_ok(session: ConsoleSession, sent: str | None) -> bool:
    """True when the form (or the X-CSRF-Token header) carries this session's CSRF token."""
    return bool(sent) and hmac.compare_digest(session.csrf.encode(), (sent or "").encode())
