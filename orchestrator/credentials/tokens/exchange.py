"""OAuth 2.0 Token Exchange (RFC 8693): a maker's identity in, a short-lived app-scoped token out.

The issued token is a JWT signed by the token service with `aud` = the app, `scope` = requested ∩
the app's approved scopes ∩ the data class's allowed scopes (∩ the service credential's own scopes
when that is the subject), and a lifetime of the data class's `token_ttl_minutes`. Only the app's
owners, co-owners or its service identity may exchange for it (anyone else is answered exactly as
for an app that does not exist), and only while the app is running: in `production`, or in
`in_review`/`expiring` when it was approved before (a periodic re-review or an expiry notice must
not stop a live app). Errors are `OAuthError`s carrying the RFC 6749 error code.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlmodel import Session

from orchestrator.catalog.lifecycle import Stage
from orchestrator.catalog.models import MicroApp, Person
from orchestrator.catalog.policy import Policy
from orchestrator.credentials import service
from orchestrator.credentials.tokens.builtin import ACCESS_TOKEN_TYPE, BUILTIN
from orchestrator.credentials.tokens.subjects import SUBJECT_TYPES, BadSubject, Subject, verify_subject
from orchestrator.credentials.usage import touch_in_session

GRANT_TYPE = "urn:ietf:params:oauth:grant-type:token-exchange"
ISSUABLE_TYPES = frozenset({ACCESS_TOKEN_TYPE, "urn:ietf:params:oauth:token-type:jwt"})
_RESOURCE_RE = re.compile(r"(?:^urn:microapp:|/apps/)([a-z0-9][a-z0-9-]{0,63})/?$")


class OAuthError(Exception):
    """An RFC 6749 error: `error` code, human description and HTTP status."""

    def __init__(self, error: str, description: str, status: int = 400) -> None:
        super().__init__(description)
        self.error = error
        self.description = description
        self.status = status

    def body(self) -> dict[str, str]:
        """The JSON error response."""
        return {"error": self.error, "error_description": self.description}


@dataclass(frozen=True)
class ExchangeRequest:
    """The form parameters of a token-exchange request (lists where RFC 8693 allows repeats)."""

    grant_type: str | None
    subject_token: str | None
    subject_token_type: str | None
    resource: list[str] = field(default_factory=list)
    audience: list[str] = field(default_factory=list)
    scope: str | None = None
    requested_token_type: str | None = None

    @classmethod
    def from_form(cls, form: dict[str, list[str]]) -> ExchangeRequest:
        """Build from parsed `application/x-www-form-urlencoded` data; repeated single values are refused."""
        for single in ("grant_type", "subject_token", "subject_token_type", "scope", "requested_token_type"):
            if len(form.get(single, [])) > 1:
                raise OAuthError("invalid_request", f"{single} may appear only once")

        def one(name: str) -> str | None:
            return form.get(name, [None])[0]

        return cls(
            grant_type=one("grant_type"),
            subject_token=one("subject_token"),
            subject_token_type=one("subject_token_type"),
            resource=form.get("resource", []),
            audience=form.get("audience", []),
            scope=one("scope"),
            requested_token_type=one("requested_token_type"),
        )


def _target_app_id(req: ExchangeRequest) -> str:
    names = set(req.audience)
    for resource in req.resource:
        match = _RESOURCE_RE.search(resource)
        if match is None:
            raise OAuthError("invalid_target", f"resource {resource!r} does not name a micro-app")
        names.add(match.group(1))
    if not names:
        raise OAuthError("invalid_request", "name the micro-app in `audience` (its id) or `resource`")
    if len(names) > 1:
        raise OAuthError("invalid_target", "a token is issued for one micro-app at a time")
    return names.pop()


def _validate(req: ExchangeRequest) -> None:
    if req.grant_type != GRANT_TYPE:
        if not req.grant_type:
            raise OAuthError("invalid_request", "grant_type is required")
        raise OAuthError("unsupported_grant_type", f"only {GRANT_TYPE} is supported")
    if not req.subject_token:
        raise OAuthError("invalid_request", "subject_token is required")
    if not req.subject_token_type:
        raise OAuthError("invalid_request", "subject_token_type is required")
    if req.subject_token_type not in SUBJECT_TYPES:
        raise OAuthError("invalid_request", f"unsupported subject_token_type {req.subject_token_type!r}")
    if req.requested_token_type and req.requested_token_type not in ISSUABLE_TYPES:
        raise OAuthError("invalid_request", f"cannot issue a token of type {req.requested_token_type!r}")


def is_running(app: MicroApp) -> bool:
    """Whether `app` may be given tokens: in production, or re-reviewed/expiring after an approval."""
    if app.stage is Stage.production:
        return True
    return app.stage in (Stage.in_review, Stage.expiring) and app.approved_at is not None


def may_act_for(subject: Subject, app: MicroApp) -> bool:
    """Owners, co-owners and the app's own service identity may exchange for `app`."""
    if subject.kind == "service":
        return subject.name == app.id
    return subject.name in {owner.lower() for owner in app.owners}


def effective_scopes(
    app: MicroApp, requested: str | None, policy: Policy, *, held: tuple[str, ...] | None = None
) -> list[str]:
    """requested ∩ approved ∩ allowed by the data class (∩ `held`, the subject's own scopes, when it has
    some), in the request's order (all when unrequested)."""
    approved = set(app.requested_scopes)
    allowed = set(policy.for_class(app.data_class).allowed_scopes)
    if held is not None:
        allowed &= set(held)
    wanted = requested.split() if requested else list(app.requested_scopes)
    return list(dict.fromkeys(s for s in wanted if s in approved and s in allowed))


def exchange(session: Session, req: ExchangeRequest, *, policy: Policy) -> dict[str, Any]:
    """Run one exchange in the caller's write transaction; the token response, or OAuthError."""
    _validate(req)
    app_id = _target_app_id(req)
    assert req.subject_token and req.subject_token_type
    try:
        subject = verify_subject(session, req.subject_token, req.subject_token_type)
    except BadSubject as exc:
        raise OAuthError("invalid_grant", str(exc)) from None
    if subject.kind == "person":
        person = session.get(Person, subject.name)
        # Someone who has left gets no new tokens, whatever their identity provider still says.
        if person is not None and not person.active:
            raise OAuthError("invalid_grant", f"{subject.name} is no longer active")
    app = session.get(MicroApp, app_id)
    if app is None or not may_act_for(subject, app):
        # Someone who may not act for an app learns nothing about it, not even that it exists or
        # its stage: exactly the answer for an id nobody has.
        raise OAuthError("invalid_target", f"no micro-app {app_id!r}")
    if not is_running(app):
        raise OAuthError("invalid_target", f"micro-app {app_id!r} is {app.stage.value}: no tokens are issued for it")
    scopes = effective_scopes(app, req.scope, policy, held=subject.scopes)
    if not scopes:
        raise OAuthError("invalid_scope", "none of the requested scopes is approved for this app and its data class")
    ttl = timedelta(minutes=policy.for_class(app.data_class).token_ttl_minutes)
    credential, issued = service.issue_credential(
        session, app, provider_name=BUILTIN, subject=subject.sub, scopes=scopes, ttl=ttl
    )
    credential.details = {**credential.details, "via": subject.via}
    session.add(credential)
    touch_in_session(session, app)
    return {
        "access_token": issued.secret,
        "issued_token_type": ACCESS_TOKEN_TYPE,
        "token_type": "Bearer",
        "expires_in": int(ttl.total_seconds()),
        "scope": " ".join(scopes),
    }
