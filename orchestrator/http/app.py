"""The FastAPI application: routers, error handlers, middleware."""

from __future__ import annotations

from fastapi import FastAPI

from orchestrator import __version__
from orchestrator.config import get_settings
from orchestrator.http import apps, health
from orchestrator.http.errors import install_error_handlers
from orchestrator.http.middleware import install_middleware
from orchestrator.logs import configure_logging
from orchestrator.policy import get_policy


def create_app() -> FastAPI:
    """Build the API; the policy is validated here so a bad file stops start-up."""
    settings = get_settings()
    configure_logging(settings.log_level, json=settings.log_json)
    get_policy()
    app = FastAPI(title="Micro-app lifecycle orchestrator", version=__version__, docs_url="/docs")
    install_error_handlers(app)
    install_middleware(app)
    app.include_router(health.router)
    app.include_router(apps.router)
    return app
