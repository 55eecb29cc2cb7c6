"""The FastAPI application: routers, error handlers, middleware."""

from __future__ import annotations

from fastapi import APIRouter, FastAPI

from orchestrator import __version__, wiring
from orchestrator.catalog.policy import get_policy
from orchestrator.config import get_settings
from orchestrator.http.errors import install_error_handlers
from orchestrator.http.middleware import install_middleware
from orchestrator.logs import configure_logging


def create_app() -> FastAPI:
    """Build the API; the policy is validated here so a bad file stops start-up."""
    settings = get_settings()
    configure_logging(settings.log_level, json=settings.log_json)
    get_policy()
    wiring.install()
    # /docs and /redoc are served by orchestrator.http.console.assets with locally shipped assets.
    app = FastAPI(title="Micro-app lifecycle orchestrator", version=__version__, docs_url=None, redoc_url=None)
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
