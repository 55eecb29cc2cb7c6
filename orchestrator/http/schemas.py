"""Request and response bodies of the catalog API."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field, field_validator

from orchestrator.catalog.models import MicroApp
from orchestrator.documents import control_character


class InputBody(BaseModel):
    """Base of every JSON request body: no string field may hold a control character (tabs and line breaks aside).

    PostgreSQL refuses NUL in text and a stray escape garbles logs and Slack messages, so such a
    value is a 422 naming the field instead of a failure further on.
    """

    @field_validator("*")
    @classmethod
    def _no_control_characters(cls, value: Any) -> Any:
        if isinstance(value, str) and control_character(value, free_text=True):
            raise ValueError("must not contain control characters other than tabs and line breaks")
        return value


class AppRead(BaseModel):
    """An app as the API shows it."""

    id: str
    name: str
    description: str
    owner: str
    co_owners: list[str]
    team: str
    data_class: str
    stage: str
    previous_stage: str | None
    repo_url: str | None
    connectors: list[str]
    requested_scopes: list[str]
    external_endpoints: list[str]
    llm: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    approved_at: datetime | None
    expires_at: datetime | None
    next_review_at: datetime | None
    last_used_at: datetime | None
    legal_hold: bool
    version: int

    @classmethod
    def of(cls, app: MicroApp) -> AppRead:
        """Build from a table row."""
        return cls(
            id=app.id,
            name=app.name,
            description=app.description,
            owner=app.owner_email,
            co_owners=list(app.co_owners),
            team=app.team,
            data_class=str(app.data_class),
            stage=str(app.stage),
            previous_stage=str(app.previous_stage) if app.previous_stage else None,
            repo_url=app.repo_url,
            connectors=list(app.connectors),
            requested_scopes=list(app.requested_scopes),
            external_endpoints=list(app.external_endpoints),
            llm=dict(app.llm),
            created_at=app.created_at,
            updated_at=app.updated_at,
            approved_at=app.approved_at,
            expires_at=app.expires_at,
            next_review_at=app.next_review_at,
            last_used_at=app.last_used_at,
            legal_hold=app.legal_hold,
            version=app.version,
        )


class AuditRead(BaseModel):
    """One audit entry on an app's timeline."""

    seq: int
    at: datetime
    actor: str
    action: str
    reason: str
    data: dict[str, Any]


class AppDetail(AppRead):
    """An app with its audit timeline."""

    timeline: list[AuditRead]


class AppPage(BaseModel):
    """One page of the catalog."""

    items: list[AppRead]
    next_cursor: str | None


class Registered(BaseModel):
    """The answer to a registration: the app and the event it raised (the first one on a repeat)."""

    app: AppRead | None
    event_id: str
    duplicate: bool = Field(description="true when this Idempotency-Key was seen before")


class ReasonBody(InputBody):
    """An action that only needs a reason."""

    reason: str = Field(default="", max_length=2000)


class ExtensionBody(InputBody):
    """A request for more time."""

    days: int | None = Field(default=None, gt=0, description="defaults to the data class's maximum extension")
    reason: str = Field(default="", max_length=2000)


class OwnerBody(InputBody):
    """A transfer of ownership."""

    owner: str = Field(min_length=3, max_length=320, pattern=r"^[^@\s]+@[^@\s]+$")
    reason: str = Field(default="", max_length=2000)


class ActionResult(BaseModel):
    """The app after an action, and the event it raised if any."""

    app: AppRead
    event_id: str | None = None
    approval_id: int | None = None
    duplicate: bool = Field(default=False, description="true when an identical request was already open")


class ManifestUpdated(BaseModel):
    """A manifest update: the app as it is now, the review queued, and what applied or waits."""

    app: AppRead
    review_id: int
    applied: list[str] = Field(description="what applied at once (less reach, descriptive fields)")
    waiting_for_approval: list[str] = Field(description="what waits for the review and an approval (more reach)")
    change: dict[str, Any]


class ReviewRequested(BaseModel):
    """A review requested by hand: the app as it is now and the review queued (or joined)."""

    app: AppRead
    review_id: int


class ErrorBody(BaseModel):
    """Every error the API returns: a stable code and a detail (text, field list or object)."""

    error: str = Field(description="machine-readable code, e.g. not_found, validation_error, invalid_transition")
    detail: Any = Field(
        description='a message, a list of {"field", "in", "reason"}, or for invalid_transition '
        '{"message", "stage", "action", "allowed"}'
    )


# Documented on every catalog route so /docs shows the error shape.
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorBody, "description": text}
    for code, text in {
        400: "Malformed body",
        401: "No, unknown or revoked token",
        403: "The token's role or person may not do this",
        404: "No such app (or not visible to this token)",
        409: "Conflicts with the app's current stage",
        422: "A field is invalid",
    }.items()
}
