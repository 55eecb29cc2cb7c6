"""The auth domain's enumerations, importable without the database layer (the CLI builds its options from them).

`orchestrator.auth.models` re-exports them beside the tables that use them.
"""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    """What an API token may do."""

    maker = "maker"
    approver = "approver"
    admin = "admin"
    # The identity provider's provisioning client: the SCIM API (/scim/v2) and nothing else.
    scim = "scim"
