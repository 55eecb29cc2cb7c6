"""The audit actions: the one vocabulary of what an audit entry can say happened.

The values are stored in the hash-chained `audit_entry` table and exported to auditors, so they are
a public interface: add a member to record something new, never rename one (old entries keep the
old name and their hashes cover it). `audit.record` refuses an action that is not a member.
"""

from __future__ import annotations

from enum import StrEnum


class AuditAction(StrEnum):
    """Every action the orchestrator writes to the audit trail."""

    # catalog
    app_registered = "app.registered"
    app_owner_transferred = "app.owner_transferred"
    app_co_owner_removed = "app.co_owner_removed"
    app_expiry_notice_sent = "app.expiry_notice_sent"
    app_expiry_extended = "app.expiry_extended"
    app_inactive = "app.inactive"
    app_repo_moved = "app.repo_moved"
    app_manifest_updated = "app.manifest_updated"
    person_left = "person.left"
    demo_loaded = "demo.loaded"
    # lifecycle moves: "lifecycle." + the catalog's lifecycle Action
    lifecycle_submit_for_review = "lifecycle.submit_for_review"
    lifecycle_approve = "lifecycle.approve"
    lifecycle_reject = "lifecycle.reject"
    lifecycle_escalate = "lifecycle.escalate"
    lifecycle_mark_expiring = "lifecycle.mark_expiring"
    lifecycle_extend = "lifecycle.extend"
    lifecycle_expire = "lifecycle.expire"
    lifecycle_retire = "lifecycle.retire"
    lifecycle_complete_sunset = "lifecycle.complete_sunset"
    lifecycle_orphan = "lifecycle.orphan"
    lifecycle_reassign = "lifecycle.reassign"
    lifecycle_suspend = "lifecycle.suspend"
    lifecycle_purge = "lifecycle.purge"
    # approvals
    approval_requested = "approval.requested"
    approval_refused = "approval.refused"
    approval_decided = "approval.decided"
    approval_cancelled = "approval.cancelled"
    approval_reminded = "approval.reminded"
    approval_escalated = "approval.escalated"
    approval_message_posted = "approval.message_posted"
    approval_review_updated = "approval.review_updated"
    approval_reassigned = "approval.reassigned"
    extension_refused = "extension.refused"
    # reviews
    review_queued = "review.queued"
    review_requested = "review.requested"
    review_completed = "review.completed"
    review_failed = "review.failed"
    review_findings_allowed = "review.findings_allowed"
    review_handover = "review.handover"
    # credentials and tokens
    credential_issued = "credential.issued"
    credential_registered = "credential.registered"
    credential_claimed = "credential.claimed"
    credential_scopes_changed = "credential.scopes_changed"
    credential_expired = "credential.expired"
    credential_revoked = "credential.revoked"
    credential_zombie = "credential.zombie"
    credential_key_created = "credential.key_created"
    credential_keys_rotated = "credential.keys_rotated"
    token_created = "token.created"
    token_revoked = "token.revoked"
    credential_key_activated = "credential.key_activated"
    # timers
    deadline_fired_by_hand = "deadline.fired_by_hand"
    # sunset: "sunset." + each completed SunsetStep, and the run's own events
    sunset_started = "sunset.started"
    sunset_freeze = "sunset.freeze"
    sunset_revoke = "sunset.revoke"
    sunset_archive = "sunset.archive"
    sunset_retire = "sunset.retire"
    sunset_blocked = "sunset.blocked"
    sunset_it_alerted = "sunset.it_alerted"
    notification_logged = "notification.logged"
    # archives
    archive_created = "archive.created"
    archive_purged = "archive.purged"
    archive_purge_skipped = "archive.purge_skipped"
    archive_hold_placed = "archive.hold_placed"
    archive_hold_lifted = "archive.hold_lifted"
    # the event pipeline
    event_retried = "event.retried"
    # the identity provider (orchestrator.identity)
    idp_user_provisioned = "idp.user_provisioned"
    idp_user_updated = "idp.user_updated"
    idp_user_deactivated = "idp.user_deactivated"
    idp_user_reactivated = "idp.user_reactivated"
    idp_user_deleted = "idp.user_deleted"
    idp_reconciled = "idp.reconciled"
    idp_reconcile_refused = "idp.reconcile_refused"
    owner_handover_asked = "owner.handover_asked"
    # the LLM connector (a refusal by policy; never the prompt)
    llm_blocked = "llm.blocked"


def audit_action(value: str) -> AuditAction:
    """`value` as an AuditAction; ValueError naming it when it is not one."""
    try:
        return AuditAction(value)
    except ValueError:
        raise ValueError(f"unknown audit action {value!r}: add it to AuditAction") from None
