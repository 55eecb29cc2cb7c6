"""`orchestrator submit [PATH]`: register the app in PATH (or send its new manifest) and report its review.

Reads PATH/microapp.yaml, checks it locally (a bad field is named before anything is sent), then
registers the app through the API with the maker's token (ORCHESTRATOR_TOKEN), or, when the app is
already in the catalog, sends the manifest as an update. It then waits up to `--wait` seconds for the
review the orchestrator runs and prints its verdict and where to follow the approval (the app's page
in the web console). Exit codes as the other API commands: 0 done, 1 the API refused or the review
failed, 2 a local problem (no or invalid manifest), 3 the API is unreachable.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

import typer

from orchestrator.cli.remote import DEFAULT_URL, EXIT_API_ERROR, EXIT_LOCAL_ERROR, Api, UrlOption

_NEXT = {
    "pass": "approved automatically: the app is in production",
    "needs_approval": "an approver has been asked; you are told when they decide",
    "escalate": "engineering reviews it; you are told when they decide",
    "fail": "fix the findings (`orchestrator review .` shows them with fixes), commit, and submit again",
}


def _fail(message: str, code: int) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def _latest_review(api: Api, app_id: str, after: int) -> dict[str, Any] | None:
    status, body = api.status_of("GET", f"/api/v1/apps/{app_id}/reviews?limit=1")
    if status != 200 or not body:
        return None
    newest: dict[str, Any] = body[0]
    return newest if int(newest["id"]) > after else None


def submit(
    path: Annotated[Path, typer.Argument(help="the app's folder (with microapp.yaml)")] = Path("."),
    url: UrlOption = DEFAULT_URL,
    wait: Annotated[float, typer.Option(min=0, help="seconds to wait for the review's verdict (0: do not wait)")] = 60,
) -> None:
    """Register the app in PATH, or update its manifest, and print the review's verdict and the approval link."""
    from orchestrator.catalog.manifest import load_manifest_text
    from orchestrator.errors import ValidationFailed

    file = path / "microapp.yaml"
    if not file.is_file():
        _fail(f"no microapp.yaml in {path} (`orchestrator new` writes one)", EXIT_LOCAL_ERROR)
    content = file.read_bytes()
    try:
        manifest = load_manifest_text(content.decode("utf-8"))
    except (ValidationFailed, UnicodeDecodeError) as exc:
        _fail(getattr(exc, "message", str(exc)), EXIT_LOCAL_ERROR)
        return
    app_id = manifest.slug
    headers = {"Content-Type": "application/yaml"}
    with Api(url) as api:
        status, _ = api.status_of("GET", f"/api/v1/apps/{app_id}")
        previous = _latest_review(api, app_id, 0) if status == 200 else None
        after = int(previous["id"]) if previous else 0
        if status == 404:
            _, body = api.call("POST", "/api/v1/apps", content=content, headers=headers)
            typer.echo(f"registered {app_id}: stage {body['app']['stage']}")
        else:
            _, body = api.call("PUT", f"/api/v1/apps/{app_id}/manifest", content=content, headers=headers)
            typer.echo(f"sent the manifest of {app_id}: review #{body['review_id']} queued")
            after = int(body["review_id"]) - 1
        link = f"{api.url}/console/apps/{app_id}"
        give_up = time.monotonic() + wait
        review = _latest_review(api, app_id, after)
        while (review is None or review["status"] in ("queued", "running")) and time.monotonic() < give_up:
            time.sleep(min(1.0, max(0.0, give_up - time.monotonic())))
            review = _latest_review(api, app_id, after)
    if review is None or review["status"] in ("queued", "running"):
        state = review["status"] if review else "not started"
        typer.echo(f"review: {state} (not finished after {wait:g} s); follow it at {link}")
        return
    if review["status"] == "failed":
        typer.echo(f"review #{review['id']} could not run: {review.get('error') or 'unknown error'}; see {link}")
        raise typer.Exit(EXIT_API_ERROR)
    verdict = str(review["verdict"])
    findings = (review.get("stats") or {}).get("findings", 0)
    typer.echo(f"review #{review['id']}: {verdict} ({findings} findings) - {_NEXT.get(verdict, '')}")
    typer.echo(f"approval and findings: {link}")
    if verdict == "fail":
        raise typer.Exit(EXIT_API_ERROR)


def register(app: typer.Typer) -> None:
    """Attach `orchestrator submit` to the main CLI (`orchestrator.cli.build()` calls this)."""
    app.command("submit")(submit)
