"""Static assets shipped in the package, and the API docs (Swagger UI, ReDoc) served from them.

Nothing is loaded from a CDN: htmx, Swagger UI and ReDoc are vendored under static/vendor (see its
SOURCES.md), so the console and /docs work on a machine without internet.
"""

from __future__ import annotations

import mimetypes
from functools import lru_cache
from importlib import resources

from fastapi import APIRouter
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from starlette.responses import HTMLResponse, Response

from orchestrator.errors import NotFound

router = APIRouter(include_in_schema=False)
STATIC = "/console/static"
SWAGGER_JS = f"{STATIC}/vendor/swagger-ui/swagger-ui-bundle.js"
SWAGGER_CSS = f"{STATIC}/vendor/swagger-ui/swagger-ui.css"
SWAGGER_ICON = f"{STATIC}/vendor/swagger-ui/favicon-32x32.png"
REDOC_JS = f"{STATIC}/vendor/redoc/redoc.standalone.js"
TITLE = "Micro-app lifecycle orchestrator"


@lru_cache(maxsize=1)
def shipped() -> dict[str, str]:
    """Every file under static/, by its path relative to it (the only paths served)."""
    root = resources.files("orchestrator.http.console").joinpath("static")
    found: dict[str, str] = {}

    def walk(folder: resources.abc.Traversable, prefix: str) -> None:
        for entry in folder.iterdir():
            if entry.is_dir():
                walk(entry, f"{prefix}{entry.name}/")
            elif not entry.name.endswith(".map"):
                found[prefix + entry.name] = str(entry)

    walk(root, "")
    return found


@lru_cache(maxsize=64)
def _read(path: str) -> bytes:
    return resources.files("orchestrator.http.console").joinpath("static", *path.split("/")).read_bytes()


@router.get(STATIC + "/{path:path}")
def static_file(path: str) -> Response:
    """One packaged asset, cacheable for a day."""
    if path not in shipped():
        raise NotFound(f"no static file {path[:100]!r}")
    media = mimetypes.guess_type(path)[0] or "application/octet-stream"
    if media.startswith("text/") or media in ("application/javascript", "text/javascript"):
        media += "; charset=utf-8"
    return Response(_read(path), media_type=media, headers={"Cache-Control": "public, max-age=86400"})


@router.get("/docs")
def swagger_ui() -> HTMLResponse:
    """Swagger UI over /openapi.json, with its assets served locally."""
    return get_swagger_ui_html(
        openapi_url="/openapi.json",
        title=f"{TITLE} — Swagger UI",
        swagger_js_url=SWAGGER_JS,
        swagger_css_url=SWAGGER_CSS,
        swagger_favicon_url=SWAGGER_ICON,
        oauth2_redirect_url="/docs/oauth2-redirect",
    )


@router.get("/docs/oauth2-redirect")
def swagger_redirect() -> HTMLResponse:
    """Swagger UI's OAuth2 redirect page."""
    return get_swagger_ui_oauth2_redirect_html()


@router.get("/redoc")
def redoc() -> HTMLResponse:
    """ReDoc over /openapi.json, with its bundle served locally and no web fonts."""
    return get_redoc_html(
        openapi_url="/openapi.json",
        title=f"{TITLE} — ReDoc",
        redoc_js_url=REDOC_JS,
        redoc_favicon_url=SWAGGER_ICON,
        with_google_fonts=False,
    )
