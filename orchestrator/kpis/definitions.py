"""The programme's KPIs as data: id, title, unit, what the figure rests on, and whether it can be computed.

Pure (no database): the API, the CLI, the console and `docs/kpis.md` name a KPI by its `id`, which is
stable. Each definition's full text (what counts, from which records, window, ties, missing data) is
the section of `docs/kpis.md` with the same id.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Status(StrEnum):
    """Whether the orchestrator holds the records a KPI needs."""

    ok = "ok"
    unavailable = "unavailable"


class Kind(StrEnum):
    """Windowed KPIs count what happened in [from, to); snapshot KPIs describe the catalog now."""

    windowed = "windowed"
    snapshot = "snapshot"


@dataclass(frozen=True)
class Definition:
    """One KPI: its stable id, what its headline value is, and what it is computed from."""

    id: str
    title: str
    unit: str
    kind: Kind
    headline: str
    sources: tuple[str, ...]
    unavailable_reason: str | None = None

    @property
    def status(self) -> Status:
        """`unavailable` when the records it needs are not kept yet."""
        return Status.unavailable if self.unavailable_reason else Status.ok

    @property
    def doc(self) -> str:
        """Where its written definition is."""
        return f"docs/kpis.md#{self.id.replace('_', '-')}"


_W, _S = Kind.windowed, Kind.snapshot

DEFINITIONS: tuple[Definition, ...] = (
    Definition(
        "time_to_production", "Time to value: registration to production", "seconds", _W, "median",
        ("microapp.created_at", "audit_entry lifecycle.approve"),
    ),
    Definition(
        "time_to_approval_request", "Automated part of time to value: registration to approval request", "seconds",
        _W, "median", ("microapp.created_at", "approval_request (promotion)"),
    ),
    Definition(
        "time_to_approve", "Time to approve: request to decision", "seconds", _W, "median",
        ("approval_request",),
    ),
    Definition(
        "scoped_token_share", "Apps in production using only short-lived scoped tokens", "ratio", _S, "share",
        ("microapp", "credential", "review_finding (secrets)"),
    ),
    Definition(
        "llm_connector_share", "Apps whose LLM traffic goes through an approved connector", "ratio", _S, "share",
        ("microapp (production, llm)", "llm_usage", "review_finding (egress, LLM bypass rules)"),
    ),
    Definition(
        "exposure_findings", "Incidents: secret, PII and LLM-egress findings in apps that were in production",
        "count", _W, "count", ("review_finding", "audit_entry lifecycle.approve"),
    ),
    Definition(
        "llm_blocks_redactions", "Blocks and redactions by the LLM connector", "count", _W, "count",
        ("llm_usage (outcome, status, redactions)",),
    ),
    Definition(
        "finding_revocations", "Credential revocations forced by a finding", "count", _W, "count",
        ("audit_entry credential.revoked (data.finding_id)", "review_finding"),
    ),
    Definition(
        "time_to_remediate", "Mean time to remediate: vulnerability and secret findings", "seconds", _W, "median",
        ("review_finding (dependencies, secrets)",),
    ),
    Definition(
        "open_finding_age", "Age of the vulnerability and secret findings still open", "seconds", _S, "median",
        ("review_finding (dependencies, secrets)",),
    ),
    Definition(
        "onboarded_share", "Registered apps that reached production", "ratio", _W, "share",
        ("microapp.created_at", "audit_entry lifecycle.approve"),
    ),
    Definition(
        "escalated_share", "Registered apps escalated to engineering", "ratio", _W, "share",
        ("microapp.created_at", "audit_entry lifecycle.escalate"),
    ),
    Definition(
        "orphan_rate", "Orphaned apps among the live catalog, and their age", "ratio", _S, "share",
        ("microapp.stage", "audit_entry lifecycle.orphan"),
    ),
    Definition("expiring_14d", "Apps expiring in the next 14 days", "count", _S, "count", ("microapp.expires_at",)),
    Definition("expiring_30d", "Apps expiring in the next 30 days", "count", _S, "count", ("microapp.expires_at",)),
    Definition(
        "extensions", "Extensions granted vs refused", "ratio", _W, "granted share",
        ("approval_request (extension)",),
    ),
    Definition(
        "retirements", "Apps retired by sunset vs on request", "count", _W, "count",
        ("audit_entry lifecycle.expire", "audit_entry lifecycle.retire"),
    ),
    Definition("inactive_apps", "Apps found inactive", "count", _W, "count", ("audit_entry app.inactive",)),
)  # fmt: skip

BY_ID: dict[str, Definition] = {d.id: d for d in DEFINITIONS}
# The KPIs a time series makes sense for.
SERIES_IDS: tuple[str, ...] = tuple(d.id for d in DEFINITIONS if d.kind is Kind.windowed and d.status is Status.ok)
# The snapshot KPIs whose values the scheduler keeps (kpi_snapshot), charted from those rows.
HISTORY_IDS: tuple[str, ...] = tuple(d.id for d in DEFINITIONS if d.kind is Kind.snapshot and d.status is Status.ok)


def get(kpi_id: str) -> Definition:
    """The definition with that id; KeyError naming the known ids when there is none."""
    try:
        return BY_ID[kpi_id]
    except KeyError:
        raise KeyError(f"unknown KPI {kpi_id!r}; known: {', '.join(BY_ID)}") from None
