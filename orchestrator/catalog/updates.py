"""A new manifest reaching the catalog: the narrowing part at once, the rest when it is approved.

- `apply_at_once` runs when a new manifest is seen (a finished review read it, or an owner sent it
  through the API): removed scopes, connectors and endpoints, less LLM use and the descriptive fields
  become the catalog's now, the live service credential loses the removed scopes, and the owner is
  told what changed and what waits for an approval (a change that only widens is told on approval).
- `adopt_approved` runs when the app is approved on the strength of a review (automatically or by an
  approver): the reviewed manifest becomes the catalog's whole, and the owner is told. The approval
  flow then calls `credentials.handover.on_app_approved`, which issues the service credential or
  brings the held one to the new scopes.

Both write in the caller's transaction; the owner's message leaves after commit.
"""

from __future__ import annotations

from typing import Any

from sqlmodel import Session

from orchestrator.catalog import changes
from orchestrator.catalog import service as catalog
from orchestrator.catalog.manifest import Manifest
from orchestrator.catalog.models import MicroApp
from orchestrator.catalog.policy import Policy
from orchestrator.credentials import flows as credentials
from orchestrator.errors import ValidationFailed
from orchestrator.notifications.delivery import app_url
from orchestrator.notifications.service import notify


def _same_repo(a: str | None, b: str | None) -> bool:
    def norm(url: str | None) -> str:
        return (url or "").strip().lower().rstrip("/").removesuffix(".git")

    return norm(a) == norm(b)


def check_update(app: MicroApp, manifest: Manifest) -> None:
    """Refuse (ValidationFailed, naming each field) a manifest update that would change what a manifest cannot.

    The id, the owner and co-owners, and the repository stay as catalogued: ownership changes through a
    transfer, and a manifest names the app it belongs to.
    """
    errors = []
    if manifest.id is not None and manifest.id != app.id:
        errors.append({"field": "id", "reason": f"must be {app.id!r} (or absent): a manifest cannot rename an app"})
    if str(manifest.owner).lower() != app.owner_email.lower():
        errors.append(
            {"field": "owner", "reason": f"must stay {app.owner_email}: ownership changes through a transfer"}
        )
    if {str(c).lower() for c in manifest.co_owners} != {c.lower() for c in app.co_owners}:
        errors.append({"field": "co_owners", "reason": "must stay as catalogued: ownership changes through a transfer"})
    if manifest.repo is not None and not _same_repo(manifest.repo, app.repo_url):
        errors.append({"field": "repo", "reason": "must stay as catalogued (or be absent)"})
    if errors:
        summary = "; ".join(f"{e['field']}: {e['reason']}" for e in errors)
        raise ValidationFailed(f"invalid manifest update: {summary}", detail=errors)


def apply_at_once(
    session: Session, app: MicroApp, proposed: dict[str, Any], *, actor: str, policy: Policy, source: str
) -> changes.ManifestChange:
    """Apply the part of `proposed` that needs no approval and tell the owner; the whole change against the catalog."""
    change = changes.diff(catalog.manifest_of(app), proposed)
    if not change.narrowed:
        return change  # a pure widening is told when it is approved (`adopt_approved`)
    catalog.adopt_manifest(
        session,
        app,
        changes.narrowed(catalog.manifest_of(app), proposed),
        actor=actor,
        reason=f"{source}: the narrowing part applies at once",
        policy=policy,
        data={"source": source},
    )
    credentials.sync_service_credential(session, app, actor=actor, policy=policy, widen=False)
    lines = [f"Manifest of {app.name} changed ({source}).", "Applied now: " + "; ".join(change.narrowing_lines()) + "."]
    if change.widened:
        lines.append("Waiting for an approval: " + "; ".join(change.widening_lines()) + ".")
    lines.append(app_url(app.id))
    notify(
        session,
        to=app.owner_email,
        text="\n".join(lines),
        key=f"manifest:{app.id}:{app.version}:seen",
        app_id=app.id,
    )
    return change


def adopt_approved(
    session: Session, app: MicroApp, reviewed: dict[str, Any], *, actor: str, policy: Policy, review_id: int | None
) -> changes.ManifestChange:
    """Make the approved review's manifest the catalog's and tell the owner what changed; the change."""
    change = catalog.adopt_manifest(
        session,
        app,
        reviewed,
        actor=actor,
        reason=f"the manifest of review #{review_id} is approved",
        policy=policy,
        data={"review_id": review_id},
    )
    if change.changed:
        described = "; ".join(change.widening_lines() + change.narrowing_lines())
        notify(
            session,
            to=app.owner_email,
            text=f"The approved manifest of {app.name} is now in the catalog: {described}. {app_url(app.id)}",
            key=f"manifest:{app.id}:{app.version}:approved",
            app_id=app.id,
        )
    return change
