"""The exception tree of the orchestrator; the edges (HTTP, CLI, Celery) translate it.

OrchestratorError
├── NotFound                     → 404
├── Conflict                     → 409
│   └── InvalidTransition        state machine refused the action
├── Forbidden                    → 403 (authenticated, not allowed)
├── Unauthorized                 → 401 (no or bad credentials)
│   └── SignatureInvalid         → 401, inbound webhook signature missing, wrong or stale
├── PayloadTooLarge              → 413, a request body over its endpoint's cap
├── MalformedPayload             → 400, a request body (or webhook delivery) that does not parse
├── ValidationFailed             → 422, a named field is wrong
├── ConfigError                  start-up refuses to run (bad policy, bad provider config)
└── IntegrationError             an adapter call failed
    └── TransientIntegrationError   the only errors tasks retry
"""

from __future__ import annotations

from typing import Any


class OrchestratorError(Exception):
    """Base of every error the orchestrator raises on purpose."""

    code = "error"
    status_code = 500

    def __init__(self, message: str, *, detail: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.detail: Any = detail if detail is not None else message


class NotFound(OrchestratorError):
    """The thing asked for does not exist (or the caller may not know it does)."""

    code = "not_found"
    status_code = 404


class Conflict(OrchestratorError):
    """The request clashes with the current state."""

    code = "conflict"
    status_code = 409


class InvalidTransition(Conflict):
    """The lifecycle state machine refused an action from the current stage."""

    code = "invalid_transition"

    def __init__(self, message: str, *, stage: str, action: str, allowed: list[str]) -> None:
        super().__init__(message, detail={"message": message, "stage": stage, "action": action, "allowed": allowed})
        self.stage = stage
        self.action = action
        self.allowed = allowed


class Forbidden(OrchestratorError):
    """Authenticated, but not allowed to do this."""

    code = "forbidden"
    status_code = 403


class Unauthorized(OrchestratorError):
    """No credentials, or credentials we do not accept."""

    code = "unauthorized"
    status_code = 401


class SignatureInvalid(Unauthorized):
    """An inbound webhook's signature is missing, wrong or stale."""

    code = "invalid_signature"


class PayloadTooLarge(OrchestratorError):
    """A request body is (or says it is) larger than its endpoint accepts; reading stopped at the cap."""

    code = "too_large"
    status_code = 413


class MalformedPayload(OrchestratorError):
    """A request body, or a webhook delivery's required parts, cannot be parsed; `detail` names the field."""

    code = "malformed_body"
    status_code = 400


class ValidationFailed(OrchestratorError):
    """Input failed validation; `detail` names the field(s) and the reason."""

    code = "validation_error"
    status_code = 422


class ConfigError(OrchestratorError):
    """Configuration (policy file, provider settings) is unusable; services refuse to start."""

    code = "config_error"


class IntegrationError(OrchestratorError):
    """A call to an external system failed for good."""

    code = "integration_error"
    status_code = 502


class TransientIntegrationError(IntegrationError):
    """A call to an external system failed in a way worth retrying."""

    code = "integration_unavailable"
    status_code = 503
