"""The FastAPI application: routers, error handlers, middleware."""

from __future__ import annotations

import importlib
import pkgutil

from fastapi import APIRouter, FastAPI

from orchestrator import __version__, http
from orchestrator.config import get_settings
from orchestrator.http.errors import install_error_handlers
from orchestrator.http.middleware import install_middleware
from orchestrator.logs import configure_logging
from orchestrator.catalog.policy import get_policy


def create_app() -> FastAPI:
    """Build the API; the policy is validated here so a bad file stops start-up."""
    settings = get_settings()
    configure_logging(settings.log_level, json=settings.log_json)
    get_policy()
    app = FastAPI(title="Micro-app lifecycle orchestrator", version=__version__, docs_url="/docs")
    install_error_handlers(app)
    install_middleware(app)
    for router in discover_routers():
        app.include_router(router)
    return app


def discover_routers() -> list[APIRouter]:
    """Every `router` defined by a module of `orchestrator.http`, in module-name order.

    A feature adds its routes by adding a module; nothing else needs to change.
    """
    routers = []
    for info in sorted(pkgutil.iter_modules(http.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"orchestrator.http.{info.name}")
        router = getattr(module, "router", None)
        if isinstance(router, APIRouter):
            routers.append(router)
    return routers
