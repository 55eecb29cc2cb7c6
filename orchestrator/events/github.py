"""GitHub webhook deliveries → events, and the handler of the `github.repository` event.

`map_delivery` runs in the webhook request: it classifies a verified delivery with at most a couple
of indexed reads and returns the event to store, or why it is ignored. Work that needs the network
(reading `microapp.yaml`) or changes the catalog happens in the worker, in `handle_repository`.

| delivery                                   | event stored                                     |
|--------------------------------------------|--------------------------------------------------|
| push to the default branch of a catalogued repo | `app.updated`                               |
| repository created                         | `github.repository` → `app.created` if it holds a microapp.yaml |
| repository archived / deleted (catalogued) | `github.repository` → app retired, `app.retire_requested` |
| repository renamed / transferred (catalogued) | `github.repository` → repo URL updated, audited |
| organization member_removed (known login)  | `owner.left`                                     |
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

from sqlalchemy import bindparam, func
from sqlmodel import Session, col, select

from orchestrator.audit import service as audit
from orchestrator.audit.actions import AuditAction
from orchestrator.catalog import lifecycle
from orchestrator.catalog import service as catalog
from orchestrator.catalog.lifecycle import Action, Stage
from orchestrator.catalog.manifest import load_manifest_text
from orchestrator.catalog.models import MicroApp, Person
from orchestrator.catalog.policy import get_policy
from orchestrator.clock import utcnow
from orchestrator.errors import Conflict, ValidationFailed
from orchestrator.events.models import Event
from orchestrator.events.outbox import emit
from orchestrator.events.registry import prepared
from orchestrator.events.types import EventType

REPOSITORY_EVENT = EventType.github_repository
MANIFEST_PATH = "microapp.yaml"
_URL_KEYS = ("html_url", "clone_url", "git_url", "ssh_url", "svn_url")


@dataclass(frozen=True)
class Mapped:
    """The event a delivery becomes."""

    type: EventType
    app_id: str | None
    payload: dict[str, Any]


def _variants(urls: set[str]) -> set[str]:
    out: set[str] = set()
    for url in urls:
        base = url.strip().rstrip("/").removesuffix(".git").lower()
        out |= {base, base + ".git", base + "/"}
    return out


def repo_urls(repo: dict[str, Any]) -> set[str]:
    """Every spelling of a repository's URL we may have catalogued (lower case)."""
    return _variants({str(repo[k]) for k in _URL_KEYS if repo.get(k)})


def _moved_from_urls(body: dict[str, Any]) -> set[str]:
    repo = body.get("repository") or {}
    changes = body.get("changes") or {}
    full_name = str(repo.get("full_name") or "")
    owner, _, name = full_name.partition("/")
    if body.get("action") == "renamed":
        name = ((changes.get("repository") or {}).get("name") or {}).get("from") or name
    elif body.get("action") == "transferred":
        previous = (changes.get("owner") or {}).get("from") or {}
        owner = (previous.get("user") or previous.get("organization") or {}).get("login") or owner
    old_name = f"{owner}/{name}"
    urls = {str(repo[k]).replace(full_name, old_name) for k in _URL_KEYS if repo.get(k) and full_name}
    return _variants(urls)


class RepoApp(NamedTuple):
    """What a delivery's mapping needs of the app that owns a repository."""

    id: str
    stage: Stage
    default_branch: str | None


_APP_COLUMNS = (col(MicroApp.id), col(MicroApp.stage), col(MicroApp.default_branch), func.lower(col(MicroApp.repo_url)))
_FIND_APPS = (
    select(*_APP_COLUMNS)
    .where(func.lower(col(MicroApp.repo_url)).in_(bindparam("urls", expanding=True)))
    .order_by(col(MicroApp.id))
)
# PostgreSQL: one array parameter (binary: psycopg's text format escapes each element with a regular
# expression), so the text never changes and psycopg prepares it once; the expanding IN above has a
# text per number of URLs. Same columns, read by position.
_PG_FIND_APPS = (
    f"SELECT id, stage, default_branch, lower(repo_url) FROM {MicroApp.__tablename__}"
    " WHERE lower(repo_url) = ANY(%(urls)b::varchar[]) ORDER BY id"
)


def find_apps(session: Session, urls: set[str]) -> dict[str, RepoApp]:
    """The catalogued apps whose repo URL is one of `urls` (lower case), by URL: one indexed read for many deliveries.

    Where two apps share a URL, the first by id in the database's own order (its collation, as the
    single-app read's `ORDER BY id LIMIT 1` had it); the result keeps that order, which `_first` reads.
    """
    if not urls:
        return {}
    connection = session.connection()
    if connection.dialect.name == "postgresql":
        rows = connection.exec_driver_sql(_PG_FIND_APPS, {"urls": sorted(urls)})
    else:
        rows = connection.execute(_FIND_APPS, {"urls": sorted(urls)})
    found: dict[str, RepoApp] = {}
    for app_id, stage, branch, url in rows:
        found.setdefault(url, RepoApp(app_id, Stage(stage), branch))
    return found


def find_app(session: Session, urls: set[str]) -> RepoApp | None:
    """The catalogued app whose repo URL is one of `urls` (compared case-insensitively, indexed)."""
    return _first(find_apps(session, urls), urls)


def _first(found: dict[str, RepoApp], urls: set[str]) -> RepoApp | None:
    # `found` is in the database's id order: the first wanted URL in it holds the first app.
    return next((app for url, app in found.items() if url in urls), None)


AppFinder = Callable[[set[str]], RepoApp | None]


def batch_finder(session: Session, bodies: list[tuple[str, Any]]) -> AppFinder:
    """A finder for `map_delivery` that looked up, in one read, the apps of every push in `bodies`.

    `bodies` are (event name, parsed body) pairs; a body whose repository cannot be read is left out
    (its own mapping fails as it would alone). URLs outside the pushes are looked up one by one.
    """
    urls: set[str] = set()
    for event_name, body in bodies:
        if event_name != "push":
            continue
        try:
            if not body.get("deleted"):
                these = repo_urls(body.get("repository") or {})
                # A URL the driver cannot bind (a lone surrogate is valid JSON) would fail the shared
                # read, and with it the whole batch: left out, it fails its own delivery's mapping (400).
                for url in these:
                    url.encode("utf-8")
                urls |= these
        except (AttributeError, TypeError, KeyError, ValueError):
            continue
    found = find_apps(session, urls)

    def find(wanted: set[str]) -> RepoApp | None:
        if wanted <= urls:
            return _first(found, wanted)
        return find_app(session, wanted)

    return find


def _sender(body: dict[str, Any]) -> str:
    return f"github:{(body.get('sender') or {}).get('login') or 'unknown'}"


def map_delivery(
    session: Session, event_name: str, body: dict[str, Any], *, find: AppFinder | None = None
) -> Mapped | str:
    """The event to store for a delivery, or the reason it is ignored.

    `find` looks a push's app up (default: `find_app`; `batch_finder` shares one read between deliveries).
    """
    action = body.get("action")
    repo = body.get("repository") or {}
    if event_name == "push":
        return _map_push(body, find or (lambda urls: find_app(session, urls)))
    if event_name == "repository" and action == "created":
        payload = {k: repo.get(k) for k in ("full_name", "html_url", "default_branch")}
        return Mapped(REPOSITORY_EVENT, None, {"action": action, **payload, "actor": _sender(body)})
    if event_name == "repository" and action in ("archived", "deleted", "renamed", "transferred"):
        moved = action in ("renamed", "transferred")
        app = find_app(session, repo_urls(repo) | (_moved_from_urls(body) if moved else set()))
        if app is None:
            return "repository not catalogued"
        payload = {"action": action, "full_name": repo.get("full_name"), "html_url": repo.get("html_url")}
        if moved:
            payload["default_branch"] = repo.get("default_branch")
        return Mapped(REPOSITORY_EVENT, app.id, {**payload, "actor": _sender(body)})
    if event_name == "organization" and action == "member_removed":
        login = str(((body.get("membership") or {}).get("user") or {}).get("login") or "")
        person = session.exec(
            select(Person).where(func.lower(col(Person.github_login)) == login.lower()).order_by(col(Person.email))
        ).first()
        if not login or person is None:
            return "not a known person"
        org = (body.get("organization") or {}).get("login") or "the organization"
        reason = f"removed from GitHub organization {org}"
        return Mapped(
            EventType.owner_left,
            None,
            {
                "email": person.email,
                "github_login": login,
                "source": "github",
                "actor": _sender(body),
                "reason": reason,
            },
        )
    return f"{event_name}{'.' + action if action else ''} is not used"


def _map_push(body: dict[str, Any], find: AppFinder) -> Mapped | str:
    if body.get("deleted"):
        return "branch or tag deleted"
    repo = body.get("repository") or {}
    app = find(repo_urls(repo))
    if app is None:
        return "repository not catalogued"
    branch = app.default_branch or repo.get("default_branch") or repo.get("master_branch")
    if body.get("ref") != f"refs/heads/{branch}":
        return "not the default branch"
    if app.stage is Stage.retired:
        return "app retired"
    payload = {
        "ref": body.get("ref"),
        "before": body.get("before"),
        "after": body.get("after"),
        "repository": repo.get("full_name"),
        "pusher": (body.get("pusher") or {}).get("name"),
        "actor": _sender(body),
    }
    return Mapped(EventType.app_updated, app.id, payload)


# ----------------------------------------------------------------------------- handler


def fetch_manifest(event: Event) -> dict[str, Any]:
    """Prepare step of `github.repository`: read microapp.yaml of a new repository."""
    if event.payload.get("action") != "created" or not event.payload.get("full_name"):
        return {}
    from orchestrator.integrations.github import GitHubClient

    with GitHubClient.from_settings() as client:
        content = client.get_file(event.payload["full_name"], MANIFEST_PATH, ref=event.payload.get("default_branch"))
    return {"manifest": content.decode("utf-8", errors="replace") if content is not None else None}


def handle_repository(session: Session, event: Event) -> None:
    """Apply a repository lifecycle change from GitHub to the catalog."""
    action = event.payload.get("action")
    if action == "created":
        _register_from_repo(session, event)
        return
    app = session.get(MicroApp, event.app_id) if event.app_id else None
    if app is None:
        event.last_error = "the app is no longer catalogued"
    elif action in ("archived", "deleted"):
        _retire(session, event, app)
    elif action in ("renamed", "transferred"):
        _move(session, event, app)


def _register_from_repo(session: Session, event: Event) -> None:
    text = prepared(session).get("manifest")
    if text is None:
        event.last_error = f"no {MANIFEST_PATH} in the repository; nothing catalogued"
        return
    try:
        manifest = load_manifest_text(text)
        actor = str(event.payload.get("actor") or "github")
        app, _ = catalog.register_app(
            session, manifest, actor=actor, policy=get_policy(), source="github", dedup_key=f"{event.dedup_key}:created"
        )
    except (ValidationFailed, Conflict) as exc:
        # The maker's mistake, not ours: recorded on the event, visible in GET /api/v1/events.
        event.last_error = f"not catalogued: {exc.message}"
        return
    app.repo_url = event.payload.get("html_url") or app.repo_url
    app.default_branch = event.payload.get("default_branch") or app.default_branch
    session.add(app)
    event.app_id = app.id


def _retire(session: Session, event: Event, app: MicroApp) -> None:
    if app.stage not in lifecycle.RETIRABLE_STAGES:
        event.last_error = f"app already {app.stage.value}"
        return
    verb = "archived" if event.payload.get("action") == "archived" else "deleted"
    reason = f"repository {event.payload.get('full_name')} {verb} on GitHub"
    actor = str(event.payload.get("actor") or "github")
    catalog.apply_action(session, app, Action.retire, actor=actor, reason=reason, policy=get_policy())
    emit(
        session,
        type=EventType.app_retire_requested,
        source="github",
        app_id=app.id,
        payload={"actor": actor, "reason": reason},
        dedup_key=f"{event.dedup_key}:retire",
    )


def _move(session: Session, event: Event, app: MicroApp) -> None:
    new_url = event.payload.get("html_url")
    if not new_url or app.repo_url == new_url:
        return
    old_url = app.repo_url
    app.repo_url = new_url
    app.default_branch = event.payload.get("default_branch") or app.default_branch
    app.version += 1
    app.updated_at = utcnow()
    session.add(app)
    audit.record(
        session,
        actor=str(event.payload.get("actor") or "github"),
        action=AuditAction.app_repo_moved,
        app_id=app.id,
        reason=f"repository {event.payload.get('action')} on GitHub",
        data={"from": old_url, "to": new_url},
    )
