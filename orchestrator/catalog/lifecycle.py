"""The lifecycle state machine of a micro-app: stages, actions and their guards.

Pure rules, no I/O: callers load the facts (owners, live credentials, the stage an app came from),
ask `transition()` for the next stage and persist the result together with an audit entry.

    registered ──review──▶ in_review ──approve──▶ production ──(review due)──▶ in_review …
        │                     │  └─reject──▶ rejected ──review──▶ in_review
        │                     └─escalate──▶ engineering
        └─ sandbox TTL ─▶ expiring ──extend──▶ (previous stage)
                              └─ expire ─▶ sunsetting ─▶ retired (purge only)
    owner-left ─▶ orphaned ──reassign──▶ (previous stage)
                    └─ grace over ─▶ suspended ──retire──▶ sunsetting / ──reassign──▶ (previous stage)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from orchestrator.errors import InvalidTransition


class Stage(StrEnum):
    """Where an app is in its life."""

    registered = "registered"
    in_review = "in_review"
    production = "production"
    rejected = "rejected"
    engineering = "engineering"
    expiring = "expiring"
    sunsetting = "sunsetting"
    retired = "retired"
    orphaned = "orphaned"
    suspended = "suspended"


class Action(StrEnum):
    """Everything that can move an app from one stage to another."""

    submit_for_review = "submit_for_review"
    approve = "approve"
    reject = "reject"
    escalate = "escalate"
    mark_expiring = "mark_expiring"
    extend = "extend"
    expire = "expire"
    retire = "retire"
    complete_sunset = "complete_sunset"
    orphan = "orphan"
    reassign = "reassign"
    suspend = "suspend"
    purge = "purge"


# Stages in which an app is alive and may hold credentials.
ACTIVE_STAGES = frozenset({Stage.registered, Stage.in_review, Stage.production, Stage.rejected, Stage.engineering})
# Stages an app can be sent back to after an extension or a reassignment.
RETURNABLE_STAGES = ACTIVE_STAGES
# Stages from which the app can be retired on request.
RETIRABLE_STAGES = ACTIVE_STAGES | {Stage.expiring, Stage.orphaned, Stage.suspended}
# The actor name used when the policy, not a person, takes a decision.
POLICY_ACTOR = "policy"

_TARGETS: dict[Action, dict[Stage, Stage | None]] = {
    # None as the target means "the stage the app was in before" (kept in Facts.previous_stage).
    Action.submit_for_review: {
        Stage.registered: Stage.in_review,
        Stage.rejected: Stage.in_review,
        Stage.production: Stage.in_review,
        Stage.in_review: Stage.in_review,
        Stage.engineering: Stage.in_review,
    },
    Action.approve: {Stage.in_review: Stage.production},
    Action.reject: {Stage.in_review: Stage.rejected},
    Action.escalate: {Stage.in_review: Stage.engineering},
    Action.mark_expiring: dict.fromkeys(ACTIVE_STAGES, Stage.expiring),
    Action.extend: {Stage.expiring: None},
    Action.expire: {Stage.expiring: Stage.sunsetting, Stage.suspended: Stage.sunsetting},
    Action.retire: dict.fromkeys(RETIRABLE_STAGES, Stage.sunsetting),
    Action.complete_sunset: {Stage.sunsetting: Stage.retired},
    Action.orphan: dict.fromkeys(ACTIVE_STAGES | {Stage.expiring}, Stage.orphaned),
    Action.reassign: {Stage.orphaned: None, Stage.suspended: None},
    Action.suspend: {Stage.orphaned: Stage.suspended},
    Action.purge: {Stage.retired: Stage.retired},
}


@dataclass(frozen=True)
class Facts:
    """What the guards need to know about the app and the actor, loaded by the caller."""

    actor: str
    owners: frozenset[str] = field(default_factory=frozenset)
    active_owners: frozenset[str] = field(default_factory=frozenset)
    previous_stage: Stage | None = None
    live_credentials: int = 0
    new_owner: str | None = None
    new_owner_active: bool = False


@dataclass(frozen=True)
class Transition:
    """The result of a legal action: where the app goes and what it leaves behind."""

    action: Action
    from_stage: Stage
    to_stage: Stage

    @property
    def remembers_stage(self) -> bool:
        """True when the app leaves a stage it may later return to (expiring, orphaned)."""
        return self.to_stage in (Stage.expiring, Stage.orphaned) and self.from_stage in RETURNABLE_STAGES


def allowed_actions(stage: Stage) -> list[Action]:
    """The actions the state machine accepts from `stage`, guards aside."""
    return [action for action, sources in _TARGETS.items() if stage in sources]


def _refuse(stage: Stage, action: Action, reason: str) -> InvalidTransition:
    return InvalidTransition(
        f"cannot {action.value} an app in stage {stage.value}: {reason}",
        stage=stage.value,
        action=action.value,
        allowed=[a.value for a in allowed_actions(stage)],
    )


def transition(stage: Stage, action: Action, facts: Facts) -> Transition:
    """Return the transition for `action` from `stage`, or raise InvalidTransition naming why."""
    sources = _TARGETS[action]
    if stage not in sources:
        if stage is Stage.retired:
            raise _refuse(stage, action, "a retired app accepts nothing but the retention purge")
        if stage is Stage.orphaned and action is Action.approve:
            raise _refuse(stage, action, "an orphaned app cannot be promoted")
        raise _refuse(stage, action, "not allowed from this stage")
    target = sources[stage]
    if target is None:
        if facts.previous_stage is None or facts.previous_stage not in RETURNABLE_STAGES:
            raise _refuse(stage, action, "the stage to return to is unknown")
        target = facts.previous_stage
    _check_guards(stage, action, facts)
    return Transition(action=action, from_stage=stage, to_stage=target)


def _check_guards(stage: Stage, action: Action, facts: Facts) -> None:
    # Emails compare case-insensitively: "Maker@X" approving maker@x's app is still self-approval.
    if action is Action.approve and facts.actor.casefold() in {o.casefold() for o in facts.owners}:
        raise _refuse(stage, action, "an approver cannot approve their own app")
    if action is Action.orphan and facts.active_owners:
        raise _refuse(stage, action, "an active owner or co-owner remains")
    if action is Action.reassign and not (facts.new_owner and facts.new_owner_active):
        raise _refuse(stage, action, "the new owner must be an active person")
    if action is Action.complete_sunset and facts.live_credentials > 0:
        raise _refuse(stage, action, f"{facts.live_credentials} credential(s) are still live")
