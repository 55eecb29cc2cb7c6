"""The console's pages: sign-in, catalog, app, approval inbox, expiring, orphans, audit.

Every read and every action calls the JSON API's own handler functions (`orchestrator.http.apps`,
`.approvals`, `.reviews`) with the signed-in API token, plus the same authorization helpers
(`require_role`, `approvals.service.refusal`): the console's rules are the API's. A domain error is
shown as a message on the page it came from; nothing is changed by a refused or stale form.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlencode

from fastapi import APIRouter, FastAPI, Request
from pydantic import ValidationError
from sqlmodel import col, select
from starlette.concurrency import run_in_threadpool
from starlette.responses import RedirectResponse, Response

from orchestrator import clock
from orchestrator.approvals.messages import SEVERITY_ORDER, redact
from orchestrator.approvals.models import ApprovalRequest, ApprovalStatus
from orchestrator.approvals.service import Decision, refusal
from orchestrator.audit import service as audit
from orchestrator.audit.models import AuditEntry
from orchestrator.auth.models import ApiToken, Role
from orchestrator.auth.service import authenticate, authenticate_id, require_role
from orchestrator.catalog import handover, lifecycle
from orchestrator.catalog import service as catalog
from orchestrator.catalog.lifecycle import Stage
from orchestrator.catalog.models import DataClass, MicroApp, Person
from orchestrator.catalog.policy import get_policy
from orchestrator.credentials.service import list_credentials
from orchestrator.db import session_scope
from orchestrator.errors import Conflict, Forbidden, NotFound, OrchestratorError, Unauthorized, ValidationFailed
from orchestrator.http import approvals as approvals_api
from orchestrator.http import apps as apps_api
from orchestrator.http import reviews as reviews_api
from orchestrator.http.console import oidc
from orchestrator.http.console import session as sessions
from orchestrator.http.console.render import page
from orchestrator.http.console.session import ConsoleSession
from orchestrator.http.schemas import AppRead, ExtensionBody, OwnerBody, ReasonBody
from orchestrator.logs import get_logger
from orchestrator.reviews.models import Review
from orchestrator.reviews.store import NOT_REVIEWED
from orchestrator.timers.service import pending_for

router = APIRouter(include_in_schema=False)
log = get_logger(__name__)
PREFIX = "/console"
PAGE_SIZE = 50
SORT_LABELS = {
    "id": "Id",
    "name": "Name (A–Z)",
    "stage": "Stage (lifecycle order)",
    "expires": "Expiry (soonest first)",
    "last_used": "Last used (most recent first)",
}
SORT_KEYS: dict[str, str] = {key: key for key in SORT_LABELS}


def _needs_role(token: ApiToken, role: str, what: str) -> str:
    """A refusal a person can act on: what the page needs, what they have, whom to ask."""
    return (
        f"{what}; you are signed in as a {Role(token.role).value}. "
        f"If you need it, ask an orchestrator admin for a token with the {role} role."
    )


def _listing(
    db: Any, token: ApiToken, *, cursor: str | None = None, limit: int = PAGE_SIZE, sort: str = "id", **filters: Any
) -> tuple[list[AppRead], str | None]:
    """One page of apps as GET /api/v1/apps lists them for `token` (same filter, same service), and the next cursor."""
    apps, next_cursor = catalog.list_apps(
        db, apps_api.app_filter(token, **filters), cursor=cursor, limit=limit, sort=sort
    )
    return [AppRead.of(a) for a in apps], next_cursor


class SignInRequired(Exception):
    """No live session: the handler sends the browser to the sign-in page (nothing else happens)."""

    def __init__(self, cs: ConsoleSession, message: str, next_path: str = PREFIX + "/") -> None:
        super().__init__(message)
        self.cs, self.message, self.next_path = cs, message, next_path


class CsrfRefused(Exception):
    """A state-changing form without this session's CSRF token."""

    def __init__(self, cs: ConsoleSession) -> None:
        super().__init__("CSRF token missing or wrong")
        self.cs = cs


def install(app: FastAPI) -> None:
    """Register the console's exception handlers (sign-in redirects, CSRF refusals) on `app`."""

    async def _sign_in(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, SignInRequired)
        exc.cs.say("info", exc.message)
        target = f"{PREFIX}/login?" + urlencode({"next": exc.next_path})
        if request.headers.get("hx-request") == "true":
            # An htmx request follows a 303 inside fetch and would swap the sign-in page into a fragment:
            # tell htmx to load the sign-in page as a whole instead.
            return sessions.save(Response(status_code=200, headers={"HX-Redirect": target}), exc.cs)
        return sessions.save(RedirectResponse(target, status_code=303), exc.cs)

    async def _csrf(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, CsrfRefused)
        message = "This form was not sent by this console session (its security token is missing or out of date)."
        return page(request, exc.cs, "refused.html", status_code=403, title="Form refused", message=message)

    app.add_exception_handler(SignInRequired, _sign_in)
    app.add_exception_handler(CsrfRefused, _csrf)


# ---------------------------------------------------------------- helpers


def _viewer(request: Request, cs: ConsoleSession) -> ApiToken:
    """The signed-in API token, looked up again (a revoked token or a leaver ends the session)."""
    next_path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    if request.method != "GET":
        next_path = PREFIX + "/"
    if cs.token_id is None:
        raise SignInRequired(cs, cs.ended or "Sign in to continue.", next_path)
    try:
        with session_scope(write=False) as db:
            return authenticate_id(db, cs.token_id)
    except Unauthorized:
        cs.sign_out()
        raise SignInRequired(cs, "Your sign-in is no longer valid (token revoked or person left).", next_path) from None


async def _form(request: Request, cs: ConsoleSession) -> dict[str, str]:
    """The urlencoded form of a POST, after its CSRF token is checked (CsrfRefused otherwise).

    A session that just timed out is sent to sign in again first: its form is stale, not forged.
    """
    if cs.ended:
        raise SignInRequired(cs, cs.ended + " Nothing was changed: sign in and try again.")
    body = (await request.body())[:100_000].decode("utf-8", errors="replace")
    form = {key: values[0] for key, values in parse_qs(body, keep_blank_values=True).items()}
    if not sessions.csrf_ok(cs, form.get("csrf") or request.headers.get("x-csrf-token")):
        raise CsrfRefused(cs)
    return form


def _back(target: str, cs: ConsoleSession) -> Response:
    """303 to a console path (anything else goes to the catalog: no open redirect)."""
    if not target.startswith(PREFIX + "/") or target.startswith("//") or "\\" in target:
        target = PREFIX + "/"
    return sessions.save(RedirectResponse(target, status_code=303), cs)


def _nav(token: ApiToken) -> dict[str, Any]:
    role = Role(token.role)
    return {
        "who": token.person_email or f"token {token.name}",
        "role": role.value,
        "is_approver": role in (Role.approver, Role.admin),
        "is_admin": role is Role.admin,
    }


def _choice(value: str | None, allowed: type[Stage] | type[DataClass]) -> Any:
    if not value:
        return None
    try:
        return allowed(value)
    except ValueError:
        return None


def _latest_verdicts(db: Any, app_ids: list[str]) -> dict[str, str]:
    if not app_ids:
        return {}
    rows = db.exec(
        select(Review.app_id, Review.verdict)
        .where(col(Review.app_id).in_(app_ids), col(Review.verdict).is_not(None))
        .order_by(col(Review.id).desc())
    ).all()
    verdicts: dict[str, str] = {}
    for app_id, verdict in rows:
        verdicts.setdefault(app_id, str(verdict))
    return verdicts


def _session(request: Request) -> ConsoleSession:
    return sessions.load(request)


# ---------------------------------------------------------------- sign-in


@router.get("/")
def root() -> RedirectResponse:
    """The console is the home page."""
    return RedirectResponse(PREFIX + "/", status_code=307)


@router.get(PREFIX)
def console_root() -> RedirectResponse:
    """/console → /console/."""
    return RedirectResponse(PREFIX + "/", status_code=307)


@router.get(PREFIX + "/login")
def login_page(request: Request, next: str = PREFIX + "/") -> Response:
    """The sign-in form: an API token (as the demo prints), or the configured identity provider."""
    cs = _session(request)
    if cs.ended:
        cs.say("info", cs.ended)
    return page(request, cs, "login.html", title="Sign in", next=next, oidc=oidc.configured(), error=None)


@router.post(PREFIX + "/login")
async def login(request: Request) -> Response:
    """Check the API token and start a session (the token itself is not kept, only its id)."""
    cs = _session(request)
    form = await _form(request, cs)
    bearer = form.get("token", "").strip()

    def _check() -> int:
        with session_scope(write=False) as db:
            row = authenticate(db, bearer)
            assert row.id is not None
            return row.id

    try:
        token_id = await run_in_threadpool(_check)
    except Unauthorized as exc:
        error = "Enter the API token to sign in." if not bearer else f"Sign-in refused: {exc.message}."
        return page(
            request,
            cs,
            "login.html",
            status_code=401,
            title="Sign in",
            next=form.get("next"),
            oidc=oidc.configured(),
            error=error,
        )
    cs.sign_in(token_id)
    log.info("console sign-in", token_id=token_id)
    return _back(form.get("next") or PREFIX + "/", cs)


@router.get(PREFIX + "/oidc/login")
def oidc_login(request: Request, next: str = PREFIX + "/") -> Response:
    """Send the browser to the identity provider (authorization code flow with PKCE)."""
    cs = _session(request)
    if not oidc.configured():
        return page(
            request,
            cs,
            "refused.html",
            status_code=404,
            title="Sign in",
            message="No identity provider is configured: sign in with an API token.",
        )
    try:
        started = oidc.start(next if next.startswith(PREFIX + "/") else PREFIX + "/")
    except Unauthorized as exc:
        cs.say("error", f"Sign-in failed: {exc.message}.")
        return sessions.save(RedirectResponse(PREFIX + "/login", status_code=303), cs)
    cs.oidc = started.state
    return sessions.save(RedirectResponse(started.url, status_code=303), cs)


@router.get(PREFIX + "/oidc/callback")
def oidc_callback(
    request: Request, code: str = "", state: str = "", error: str = "", error_description: str = ""
) -> Response:
    """The identity provider's answer: check it and start a session for the person's token."""
    cs = _session(request)
    remembered, cs.oidc = cs.oidc, {}
    if error or not code:
        cs.say("error", f"Sign-in failed: {(error_description or error or 'no authorization code')[:200]}.")
        return sessions.save(RedirectResponse(PREFIX + "/login", status_code=303), cs)
    try:
        token_id = oidc.finish(remembered, code=code[:2000], state=state[:200])
    except oidc.NoRole as exc:
        # Who they are is settled; what is missing is a role, and only an admin can give one: say so.
        return page(request, cs, "no_role.html", status_code=403, title="No role yet", email=exc.email)
    except Unauthorized as exc:
        cs.say("error", f"Sign-in failed: {exc.message}.")
        return sessions.save(RedirectResponse(PREFIX + "/login", status_code=303), cs)
    cs.sign_in(token_id)
    log.info("console sign-in", token_id=token_id, via="oidc")
    return _back(remembered.get("next") or PREFIX + "/", cs)


@router.post(PREFIX + "/logout")
async def logout(request: Request) -> Response:
    """End the session."""
    cs = _session(request)
    await _form(request, cs)
    cs.sign_out()
    cs.say("ok", "You are signed out.")
    return sessions.save(RedirectResponse(PREFIX + "/login", status_code=303), cs)


# ---------------------------------------------------------------- catalog


@router.get(PREFIX + "/")
def catalog_page(
    request: Request,
    stage: str | None = None,
    data_class: str | None = None,
    owner: str | None = None,
    q: str | None = None,
    expiring_before: str | None = None,
    cursor: str | None = None,
    sort: str = "id",
) -> Response:
    """The catalog: filters, sort, counts per stage, one page of apps."""
    cs = _session(request)
    token = _viewer(request, cs)
    filters: dict[str, Any] = {
        "stage": _choice(stage, Stage),
        "data_class": _choice(data_class, DataClass),
        "owner": (owner or "").strip()[:320] or None,
        "q": (q or "").strip()[:200] or None,
    }
    before = None
    if expiring_before:
        try:
            before = clock.as_utc(datetime.fromisoformat(expiring_before))
        except ValueError:
            cs.say("error", f"“{expiring_before[:40]}” is not a date (use YYYY-MM-DD); the filter was left out.")
    try:
        with session_scope(write=False) as db:
            items, next_cursor = _listing(
                db,
                token,
                stage=filters["stage"],
                owner=filters["owner"],
                data_class=filters["data_class"],
                expiring_before=before,
                text=filters["q"],
                cursor=cursor or None,
                sort=SORT_KEYS.get(sort, "id"),
            )
            counts = catalog.count_by_stage(
                db,
                apps_api.app_filter(
                    token,
                    owner=filters["owner"],
                    data_class=filters["data_class"],
                    expiring_before=before,
                    text=filters["q"],
                ),
            )
            verdicts = _latest_verdicts(db, [a.id for a in items])
    except ValidationFailed:
        cs.say("error", "That page link is out of date; showing the first page.")
        return _back(PREFIX + "/", cs)
    query = {k: v for k, v in (request.query_params.items()) if k != "cursor" and v}
    next_url = f"{PREFIX}/?" + urlencode({**query, "cursor": next_cursor}) if next_cursor else None
    return page(
        request,
        cs,
        "catalog.html",
        title="Catalog",
        nav=_nav(token),
        apps=items,
        counts=counts,
        total=sum(counts.values()),
        verdicts=verdicts,
        stages=list(Stage),
        data_classes=list(DataClass),
        sorts=SORT_LABELS,
        sort=SORT_KEYS.get(sort, "id"),
        filters={
            **filters,
            "stage": stage or "",
            "data_class": data_class or "",
            "expiring_before": expiring_before or "",
        },
        next_url=next_url,
        first_url=f"{PREFIX}/?" + urlencode(query) if cursor else None,
    )


# ---------------------------------------------------------------- one app


def _app_actions(app: MicroApp) -> dict[str, bool]:
    return {
        "extend": app.stage in lifecycle.ACTIVE_STAGES | {Stage.expiring} and app.expires_at is not None,
        "retire": app.stage in lifecycle.RETIRABLE_STAGES,
        "transfer": app.stage not in NOT_REVIEWED,
        "review": app.stage not in NOT_REVIEWED,
    }


@router.get(PREFIX + "/apps/{app_id}")
def app_page(request: Request, app_id: str) -> Response:
    """One app: manifest, owners, stage and its actions, reviews, credentials, deadlines, approvals, timeline."""
    cs = _session(request)
    token = _viewer(request, cs)
    try:
        with session_scope(write=False) as db:
            detail = apps_api.show_app(app_id, db, token)  # 404 for an app this token may not see
            app = db.get(MicroApp, app_id)
            assert app is not None
            review_rows = reviews_api.list_reviews(app_id, db, token, 5)
            latest = reviews_api.show_review(review_rows[0].id, db, token) if review_rows else None
            credentials = list_credentials(db, app_id=app_id, limit=50)
            deadlines = pending_for(db, app_id)
            approvals = db.exec(
                select(ApprovalRequest).where(ApprovalRequest.app_id == app_id).order_by(col(ApprovalRequest.id).desc())
            ).all()
            people = {p.email: p for p in db.exec(select(Person).where(col(Person.email).in_(list(app.owners)))).all()}
            actions = _app_actions(app)
    except NotFound:
        return page(
            request,
            cs,
            "refused.html",
            status_code=404,
            title="No such app",
            nav=_nav(token),
            message=f"There is no app “{app_id[:64]}”, or it is not one you may see.",
        )
    findings = []
    if latest is not None:
        rank = {s: i for i, s in enumerate(SEVERITY_ORDER)}
        findings = sorted(latest.findings, key=lambda f: rank.get(f.severity.lower(), 99))
    return page(
        request,
        cs,
        "app.html",
        title=detail.name,
        nav=_nav(token),
        app=detail,
        reviews=review_rows,
        latest=latest,
        findings=findings,
        redact=redact,
        credentials=credentials,
        deadlines=deadlines,
        approvals=approvals,
        people=people,
        actions=actions,
        timeline=list(reversed(detail.timeline)),
    )


_ACTIONS: dict[str, Callable[[str, ApiToken, dict[str, str]], str]] = {}


def _action(name: str) -> Callable[[Callable[[str, ApiToken, dict[str, str]], str]], Any]:
    def _register(fn: Callable[[str, ApiToken, dict[str, str]], str]) -> Any:
        _ACTIONS[name] = fn
        return fn

    return _register


@_action("extend")
def _extend(app_id: str, token: ApiToken, form: dict[str, str]) -> str:
    days = int(form["days"]) if form.get("days", "").strip() else None
    body = ExtensionBody(days=days, reason=form.get("reason", ""))
    apps_api.request_extension(app_id, token, get_policy(), body)
    return "Extension requested: the approvers are asked (a request already open is kept)."


@_action("retire")
def _retire(app_id: str, token: ApiToken, form: dict[str, str]) -> str:
    apps_api.retire_app(app_id, token, get_policy(), ReasonBody(reason=form.get("reason", "")))
    return "Retirement started: the app is sunsetting."


@_action("transfer")
def _transfer(app_id: str, token: ApiToken, form: dict[str, str]) -> str:
    body = OwnerBody(owner=form.get("owner", "").strip(), reason=form.get("reason", ""))
    result = apps_api.transfer_owner(app_id, body, token, get_policy())
    return f"Owner is now {result.app.owner}."


@_action("review")
def _review(app_id: str, token: ApiToken, form: dict[str, str]) -> str:
    result = reviews_api.request_review(app_id, token, get_policy())
    return f"Review #{result.review_id} queued."


def _explain(exc: ValidationError) -> str:
    parts = [f"{'.'.join(map(str, e['loc'])) or 'form'}: {e['msg']}" for e in exc.errors()]
    return "Not done — " + "; ".join(parts)


@router.post(PREFIX + "/apps/{app_id}/{action}")
async def app_action(request: Request, app_id: str, action: str) -> Response:
    """Extend, retire, transfer or request a review, through the API's own handlers."""
    cs = _session(request)
    form = await _form(request, cs)
    token = await run_in_threadpool(_viewer, request, cs)
    back = form.get("back") or f"{PREFIX}/apps/{app_id}"
    run = _ACTIONS.get(action)
    if run is None:
        return page(
            request,
            cs,
            "refused.html",
            status_code=404,
            title="Unknown action",
            nav=_nav(token),
            message=f"There is no action “{action[:40]}”.",
        )
    try:
        cs.say("ok", await run_in_threadpool(run, app_id, token, form))
    except ValidationError as exc:
        cs.say("error", _explain(exc))
    except ValueError:
        cs.say("error", "Not done — days: enter a whole number of days.")
    except NotFound:
        return page(
            request,
            cs,
            "refused.html",
            status_code=404,
            title="No such app",
            nav=_nav(token),
            message=f"There is no app “{app_id[:64]}”, or it is not one you may see. Nothing was changed.",
        )
    except OrchestratorError as exc:
        cs.say("error", f"Not done — {exc.message}")
    return _back(back, cs)


# ---------------------------------------------------------------- approval inbox


def _inbox(token: ApiToken) -> list[dict[str, Any]]:
    policy = get_policy()
    with session_scope(write=False) as db:
        listed = approvals_api.list_approvals(db, token, ApprovalStatus.pending, None, 500)
        items = []
        for item in listed.items:
            approval, app = db.get(ApprovalRequest, item.id), db.get(MicroApp, item.app_id)
            if approval is None or app is None:
                continue
            # The same rule as a Slack click or the API: only requests this person may decide.
            if refusal(policy, app, approval, token.person_email) is not None:
                continue
            review = item.review or {}
            tally: dict[str, int] = {}
            for finding in review.get("findings") or []:
                severity = str(finding.get("severity", "info")).lower()
                tally[severity] = tally.get(severity, 0) + 1
            items.append({"approval": item, "app": app, "verdict": review.get("verdict"), "tally": tally})
    return items


@router.get(PREFIX + "/inbox")
def inbox_page(request: Request) -> Response:
    """Pending requests the signed-in person may decide, oldest first."""
    cs = _session(request)
    token = _viewer(request, cs)
    try:
        require_role(token, Role.approver)
    except Forbidden:
        return page(
            request,
            cs,
            "refused.html",
            status_code=403,
            title="Approval inbox",
            nav=_nav(token),
            message=_needs_role(token, "approver", "The approval inbox is for approvers"),
        )
    return page(request, cs, "inbox.html", title="Approval inbox", nav=_nav(token), items=_inbox(token), errors={})


@router.post(PREFIX + "/inbox/{approval_id}")
async def decide(request: Request, approval_id: int) -> Response:
    """Approve or reject through the API's decision handler (the same compare-and-set as Slack)."""
    cs = _session(request)
    form = await _form(request, cs)
    token = await run_in_threadpool(_viewer, request, cs)
    try:
        require_role(token, Role.approver)
        body = approvals_api.DecisionBody(decision=Decision(form.get("decision", "")), reason=form.get("reason", ""))
    except Forbidden as exc:
        return page(
            request, cs, "refused.html", status_code=403, title="Approval inbox", nav=_nav(token), message=exc.message
        )
    except (ValueError, ValidationError):
        cs.say("error", "Choose approve or reject (a reason is at most 2000 characters).")
        return _back(PREFIX + "/inbox", cs)
    try:
        result = await run_in_threadpool(approvals_api.post_decision, approval_id, body, token, get_policy())
    except ValidationFailed:
        errors = {approval_id: "A reason is required to reject: the owner reads it."}
        items = await run_in_threadpool(_inbox, token)
        return page(
            request,
            cs,
            "inbox.html",
            status_code=422,
            title="Approval inbox",
            nav=_nav(token),
            items=items,
            errors=errors,
            reasons={approval_id: form.get("reason", "")},
        )
    except Conflict as exc:
        cs.say("error", f"Request #{approval_id} was {exc.message}: your decision was not recorded.")
    except (Forbidden, NotFound) as exc:
        cs.say("error", f"Not recorded — {exc.message}.")
    else:
        cs.say("ok", f"Request #{approval_id} for {result.app_name or result.app_id}: {result.status}.")
    return _back(PREFIX + "/inbox", cs)


# ---------------------------------------------------------------- expiring, orphans


@router.get(PREFIX + "/expiring")
def expiring_page(request: Request, days: int = 30) -> Response:
    """Apps expiring in the next `days` days, soonest first, each with a one-click extension request."""
    cs = _session(request)
    token = _viewer(request, cs)
    days = max(1, min(days, 3650))
    now = clock.utcnow()
    with session_scope(write=False) as db:
        items, _ = _listing(db, token, expiring_before=now + timedelta(days=days), limit=500, sort="expires")
    rows = sorted(
        (a for a in items if a.stage not in (Stage.sunsetting.value, Stage.retired.value)),
        key=lambda a: a.expires_at or now,
    )
    return page(request, cs, "expiring.html", title="Expiring", nav=_nav(token), apps=rows, days=days)


TAKEOVER_DAYS = 30


@router.get(PREFIX + "/orphans")
def orphans_page(request: Request) -> Response:
    """Orphaned and suspended apps by former owner and manager: hand-over step and deadline, a transfer form."""
    cs = _session(request)
    token = _viewer(request, cs)
    with session_scope(write=False) as db:
        rows = [
            *_listing(db, token, stage=Stage.orphaned, limit=500)[0],
            *_listing(db, token, stage=Stage.suspended, limit=500)[0],
        ]
        owners = {a.owner for a in rows}
        people = {p.email: p for p in db.exec(select(Person).where(col(Person.email).in_(list(owners)))).all()}
        models = db.exec(select(MicroApp).where(col(MicroApp.id).in_([a.id for a in rows]))).all()
        chain = handover.positions(db, models)
        since = clock.utcnow() - timedelta(days=TAKEOVER_DAYS)
        takeovers = handover.co_owner_takeovers(db, since)
        taken = {a.id: a for a in db.exec(select(MicroApp).where(col(MicroApp.id).in_([t.app_id for t in takeovers])))}
        viewer = (token.person_email or "") if Role(token.role) is Role.maker else None
        takeovers = [t for t in takeovers if t.app_id in taken and (viewer is None or viewer in taken[t.app_id].owners)]
        names = {app_id: app.name for app_id, app in taken.items()}
    groups: dict[tuple[str, str], list[Any]] = {}
    for app in rows:
        manager = people[app.owner].manager_email if app.owner in people else None
        groups.setdefault((app.owner, manager or "—"), []).append(app)
    return page(
        request,
        cs,
        "orphans.html",
        title="Orphans",
        nav=_nav(token),
        groups=sorted(groups.items()),
        chain=chain,
        takeovers=takeovers,
        names=names,
        takeover_days=TAKEOVER_DAYS,
    )


# ---------------------------------------------------------------- audit


AUDIT_LIMIT = 200


def _audit_rows(db: Any, app_id: str | None, actor: str | None, action: str | None, limit: int) -> list[AuditEntry]:
    query = select(AuditEntry)
    if app_id:
        query = query.where(AuditEntry.app_id == app_id)
    if actor:
        query = query.where(AuditEntry.actor == actor.lower())
    if action:
        query = query.where(AuditEntry.action == action)
    return list(db.exec(query.order_by(col(AuditEntry.seq).desc()).limit(limit)).all())


@router.get(PREFIX + "/audit")
def audit_page(
    request: Request,
    app_id: str | None = None,
    actor: str | None = None,
    action: str | None = None,
    verify: str | None = None,
) -> Response:
    """The audit trail (admins): filters, the newest entries, chain verification on request, exports."""
    cs = _session(request)
    token = _viewer(request, cs)
    try:
        require_role(token, Role.admin)
    except Forbidden:
        return page(
            request,
            cs,
            "refused.html",
            status_code=403,
            title="Audit",
            nav=_nav(token),
            message=_needs_role(token, "admin", "The audit trail is for admins"),
        )
    filters = {"app_id": (app_id or "")[:64], "actor": (actor or "")[:320], "action": (action or "")[:64]}
    with session_scope(write=False) as db:
        rows = _audit_rows(db, filters["app_id"], filters["actor"], filters["action"], AUDIT_LIMIT)
        checked = audit.verify(db) if verify else None
    query = urlencode({k: v for k, v in filters.items() if v})
    return page(
        request,
        cs,
        "audit.html",
        title="Audit",
        nav=_nav(token),
        rows=rows,
        filters=filters,
        checked=checked,
        query=query,
        limit=AUDIT_LIMIT,
    )


@router.get(PREFIX + "/audit/export.{fmt}")
def audit_export(
    request: Request, fmt: str, app_id: str | None = None, actor: str | None = None, action: str | None = None
) -> Response:
    """The filtered audit trail as JSON lines or CSV, oldest first (admins)."""
    cs = _session(request)
    token = _viewer(request, cs)
    require_role(token, Role.admin)
    if fmt not in ("jsonl", "csv"):
        raise NotFound(f"no export format {fmt[:10]!r} (jsonl or csv)")
    with session_scope(write=False) as db:
        rows = list(reversed(_audit_rows(db, app_id, actor, action, 100_000)))
    lines = audit.export_jsonl(rows) if fmt == "jsonl" else audit.export_csv(rows)
    media = "application/x-ndjson" if fmt == "jsonl" else "text/csv"
    headers = {"Content-Disposition": f'attachment; filename="audit.{fmt}"'}
    return Response("".join(lines), media_type=media, headers=headers)


# ---------------------------------------------------------------- operations


def _gauges() -> dict[str, list[tuple[dict[str, str], float]]]:
    """The scheduler-leader and queue-depth gauges of /metrics, read through its collector."""
    from orchestrator.http.health import HealthCollector

    wanted = {"orchestrator_scheduler_leader", "orchestrator_celery_queue_depth"}
    found: dict[str, list[tuple[dict[str, str], float]]] = {name: [] for name in wanted}
    for metric in HealthCollector().collect():
        if metric.name in wanted:
            found[metric.name] = [(dict(s.labels), float(s.value)) for s in metric.samples]
    return found


@router.get(PREFIX + "/operations")
def operations_page(request: Request) -> Response:
    """Admins: parked and failed events (with retry), blocked or stuck sunsets, the scheduler leader, queues."""
    from orchestrator.config import get_settings
    from orchestrator.events.enums import EventStatus
    from orchestrator.http import events as events_api
    from orchestrator.http.health import current_snapshot
    from orchestrator.sunset.models import SunsetRun, SunsetStatus

    cs = _session(request)
    token = _viewer(request, cs)
    try:
        require_role(token, Role.admin)
    except Forbidden:
        return page(
            request,
            cs,
            "refused.html",
            status_code=403,
            title="Operations",
            nav=_nav(token),
            message=_needs_role(token, "admin", "Operations are for admins"),
        )
    with session_scope(write=False) as db:
        stuck = [
            *events_api.events(db, EventStatus.parked, None, None, None, 100).items,
            *events_api.events(db, EventStatus.failed, None, None, None, 100).items,
        ]
        sunsets = db.exec(
            select(SunsetRun)
            .where(col(SunsetRun.status) != SunsetStatus.done)
            .order_by(col(SunsetRun.updated_at))
            .limit(100)
        ).all()
    snapshot = current_snapshot(get_settings())
    gauges = _gauges()
    return page(
        request,
        cs,
        "operations.html",
        title="Operations",
        nav=_nav(token),
        events=stuck,
        sunsets=sunsets,
        operations=snapshot["operations"],
        violations={k: v for k, v in snapshot["violations"].items() if v},
        snapshot_at=snapshot["at"],
        leader=[labels.get("replica", "?") for labels, value in gauges["orchestrator_scheduler_leader"] if value],
        queues=[(labels.get("queue", "?"), int(value)) for labels, value in gauges["orchestrator_celery_queue_depth"]],
        redis=bool(get_settings().effective_redis_url),
    )


@router.post(PREFIX + "/operations/events/{event_id}/retry")
async def retry_event(request: Request, event_id: str) -> Response:
    """Re-drive a parked or failed event through the API's retry handler (admins)."""
    from orchestrator.http import events as events_api

    cs = _session(request)
    await _form(request, cs)
    token = await run_in_threadpool(_viewer, request, cs)
    try:
        require_role(token, Role.admin)
        await run_in_threadpool(events_api.retry, event_id[:100], token)
    except OrchestratorError as exc:
        cs.say("error", f"Not retried — {exc.message}")
    else:
        cs.say("ok", f"Event {event_id[:100]} queued again with a fresh attempt budget.")
    return _back(PREFIX + "/operations", cs)
