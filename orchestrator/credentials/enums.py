"""The credential ledger's enumerations, importable without the database layer (the CLI builds its options from them).

`orchestrator.credentials.models` re-exports them beside the tables that use them.
"""

from __future__ import annotations

from enum import StrEnum


class CredentialStatus(StrEnum):
    """Live until it expires or is revoked; a zombie could not be revoked after every attempt."""

    live = "live"
    expired = "expired"
    revoked = "revoked"
    zombie = "zombie"
