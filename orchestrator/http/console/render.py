"""Rendering: the Jinja2 environment over the packaged templates, and the page response."""

from __future__ import annotations

from datetime import datetime
from functools import lru_cache
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup, escape
from starlette.requests import Request
from starlette.responses import HTMLResponse

from orchestrator import __version__
from orchestrator.clock import as_utc
from orchestrator.http.console import session as sessions
from orchestrator.http.console.session import ConsoleSession


def when(value: datetime | str | None, empty: str = "—") -> Markup:
    """A <time> element: UTC in the page, turned into the viewer's time zone by console.js; UTC on hover."""
    if value is None or value == "":
        return Markup(escape(empty))
    moment = as_utc(datetime.fromisoformat(value) if isinstance(value, str) else value)
    iso = moment.isoformat()
    shown = moment.strftime("%Y-%m-%d %H:%M UTC")
    return Markup('<time datetime="{0}" title="{1}">{1}</time>').format(iso, shown)


@lru_cache(maxsize=1)
def environment() -> Environment:
    """The template environment (autoescaped HTML)."""
    env = Environment(
        loader=PackageLoader("orchestrator.http.console", "templates"),
        autoescape=select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["when"] = when
    env.globals["version"] = __version__
    return env


def page(
    request: Request, cs: ConsoleSession, template: str, *, status_code: int = 200, **context: Any
) -> HTMLResponse:
    """Render `template` with the session's CSRF token and messages, and renew the session cookie."""
    html = environment().get_template(template).render(request=request, csrf=cs.csrf, flash=cs.take_flash(), **context)
    response = HTMLResponse(html, status_code=status_code)
    response.headers["Cache-Control"] = "no-store"
    # No framing by other sites (clickjacking of the approve and retire buttons).
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Content-Security-Policy"] = "frame-ancestors 'none'"
    return sessions.save(response, cs)
