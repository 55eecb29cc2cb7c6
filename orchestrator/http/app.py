"""The FastAPI application: routers, error handlers, middleware."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, FastAPI, Request, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import Receive, Scope, Send

from orchestrator import __version__, wiring
from orchestrator.catalog.policy import get_policy
from orchestrator.config import get_settings
from orchestrator.http.errors import install_error_handlers
from orchestrator.http.middleware import ObserveMiddleware, install_middleware
from orchestrator.logs import configure_logging


class _Route:
    """What the observing middleware reads of a route: its path template (the metrics' label)."""

    def __init__(self, path: str) -> None:
        self.path = path


class Api(FastAPI):
    """FastAPI with a fast lane: a few hot POST endpoints that need none of FastAPI's layers (no
    dependencies, no body model, their own errors) are called straight from the server, inside the
    observing middleware only (request id, metrics, log line, the last-resort 500)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.fast_lane: dict[str, Callable[[Request], Awaitable[Response]]] = {}

    def open_fast_lane(self, handlers: dict[str, Callable[[Request], Awaitable[Response]]]) -> None:
        """Serve POSTs to these exact paths straight from their handlers."""
        self.fast_lane = dict(handlers)
        self._lane_routes = {path: _Route(path) for path in handlers}
        self._observed = ObserveMiddleware(self._serve_lane)

    async def _serve_lane(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive, send)
        try:
            response = await self.fast_lane[scope["path"]](request)
        except Exception as exc:
            # The app's own handlers, as on the full path (a database outage is a 503, not a 500).
            handler = self._lane_handler(exc)
            if handler is None:
                raise  # ObserveMiddleware answers the 500 (logged, with the request id)
            answer = handler(request, exc)
            response = await answer if inspect.isawaitable(answer) else answer
        await response(scope, receive, send)

    def _lane_handler(self, exc: Exception) -> Callable[[Request, Exception], Any] | None:
        """The app's handler of `exc` as Starlette's ExceptionMiddleware finds it: an HTTPException's
        status first, then the exception's classes; never the catch-all (`Exception` or 500), which is
        the server error middleware's on the full path and ObserveMiddleware's here."""
        handlers = self.exception_handlers
        if isinstance(exc, StarletteHTTPException) and exc.status_code != 500:
            handler = handlers.get(exc.status_code)
            if handler is not None:
                return handler
        return next((handlers[c] for c in type(exc).__mro__ if c is not Exception and c in handlers), None)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The fast lane for its POSTs (not under a root path), the whole app for everything else."""
        if (
            scope["type"] == "http"
            and scope["method"] == "POST"
            and scope["path"] in self.fast_lane
            and not scope.get("root_path")
            and not self.root_path
        ):
            scope["app"] = self
            scope["route"] = self._lane_routes[scope["path"]]
            await self._observed(scope, receive, send)
            return
        await super().__call__(scope, receive, send)


def create_app() -> FastAPI:
    """Build the API; the policy is validated here so a bad file stops start-up."""
    settings = get_settings()
    configure_logging(settings.log_level, json=settings.log_json)
    get_policy()
    wiring.install()
    # /docs and /redoc are served by orchestrator.http.console.assets with locally shipped assets.
    app = Api(title="Micro-app lifecycle orchestrator", version=__version__, docs_url=None, redoc_url=None)
    install_error_handlers(app)
    from orchestrator.http.console.pages import install as install_console

    install_console(app)
    install_middleware(app)
    for router in routers():
        app.include_router(router)
    from orchestrator.http.health import register_collector

    register_collector()  # the invariant and operations gauges of /metrics
    from orchestrator.http.kpis import register_collector as register_kpi_collector

    register_kpi_collector()  # the KPI gauges of /metrics (docs/kpis.md)
    _hot_routes_first(app)
    from orchestrator.http import llm, oauth

    app.open_fast_lane({**llm.FAST_LANE, **oauth.FAST_LANE})
    return app


def routers() -> list[APIRouter]:
    """Every router of the API, in the order their routes are matched."""
    from orchestrator.http import (
        approvals,
        apps,
        events,
        github,
        health,
        kpis,
        llm,
        oauth,
        okta,
        reviews,
        scim,
        service_credentials,
        slack,
        slack_events,
        tokens,
        usage,
    )
    from orchestrator.http.console import assets as console_assets
    from orchestrator.http.console import kpis as console_kpis
    from orchestrator.http.console import pages as console_pages

    modules = (
        approvals,
        apps,
        events,
        github,
        health,
        llm,
        kpis,
        oauth,
        okta,
        reviews,
        scim,
        service_credentials,
        slack,
        slack_events,
        tokens,
        usage,
        console_assets,
        console_pages,
        console_kpis,
    )
    return [module.router for module in modules]


# Machine-to-machine paths called at a high rate (the gateway's introspection, GitHub's webhooks,
# micro-apps' LLM calls): their routers are matched before the others, whose one-by-one matching was
# a third of an introspection's CPU (bench/tokens.py) and of a webhook's event-loop CPU
# (bench/pipeline.py --profile). Every path of these routers is theirs alone (matching is on the
# whole path), so the order changes no match.
def _hot_routes_first(app: FastAPI) -> None:
    from orchestrator.http import github, llm, oauth

    # Introspection first: its router has three routes, the webhook's one, the connector's a dozen.
    hot = {id(oauth.router): 0, id(github.router): 1, id(llm.router): 2}
    routes = app.router.routes

    def rank(route: object) -> int:
        # FastAPI ≥ 0.16x keeps an included router as one entry; older versions copy its routes.
        router = getattr(route, "original_router", None)
        path = str(getattr(route, "path", ""))
        if id(router) in hot:
            return hot[id(router)]
        if path.startswith("/oauth/"):
            return 0
        return 1 if path.startswith("/webhooks/github") else 2 if path.startswith("/llm/") else 3

    routes.sort(key=rank)  # stable: the others keep their order
