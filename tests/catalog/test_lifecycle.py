"""The lifecycle state machine: every stage × action pair, and every guard.

The expected table below is written out by hand from the design's lifecycle diagram, not derived from
the module under test, so a change to the machine has to be a deliberate change to this table too.
"""

from __future__ import annotations

import itertools

import pytest

from orchestrator.catalog.lifecycle import Action, Facts, Stage, allowed_actions, transition
from orchestrator.errors import Conflict, InvalidTransition

S, A = Stage, Action
PREVIOUS = "(previous stage)"
ACTIVE = (S.registered, S.in_review, S.production, S.rejected, S.engineering)

# (stage, action) → target stage; PREVIOUS means "back to the stage remembered in Facts.previous_stage".
EXPECTED: dict[tuple[Stage, Action], Stage | str] = {
    (S.registered, A.submit_for_review): S.in_review,
    (S.rejected, A.submit_for_review): S.in_review,
    (S.production, A.submit_for_review): S.in_review,
    (S.in_review, A.submit_for_review): S.in_review,
    (S.engineering, A.submit_for_review): S.in_review,
    (S.in_review, A.approve): S.production,
    (S.in_review, A.reject): S.rejected,
    (S.in_review, A.escalate): S.engineering,
    **{(stage, A.mark_expiring): S.expiring for stage in ACTIVE},
    (S.expiring, A.extend): PREVIOUS,
    (S.expiring, A.expire): S.sunsetting,
    (S.suspended, A.expire): S.sunsetting,
    **{(stage, A.retire): S.sunsetting for stage in (*ACTIVE, S.expiring, S.orphaned, S.suspended)},
    (S.sunsetting, A.complete_sunset): S.retired,
    **{(stage, A.orphan): S.orphaned for stage in (*ACTIVE, S.expiring)},
    (S.orphaned, A.reassign): PREVIOUS,
    (S.suspended, A.reassign): PREVIOUS,
    (S.orphaned, A.suspend): S.suspended,
    (S.retired, A.purge): S.retired,
}

OWNER = "maker@example.com"
CO_OWNER = "buddy@example.com"
APPROVER = "approver@example.com"


def permissive(**overrides: object) -> Facts:
    """Facts under which every guard passes: a third-party approver, no active owner, a known previous stage."""
    base: dict[str, object] = {
        "actor": APPROVER,
        "owners": frozenset({OWNER, CO_OWNER}),
        "active_owners": frozenset(),
        "previous_stage": S.production,
        "live_credentials": 0,
        "new_owner": "new@example.com",
        "new_owner_active": True,
    }
    base.update(overrides)
    return Facts(**base)  # type: ignore[arg-type]


def allowed_from(stage: Stage) -> set[str]:
    """What the hand-written table allows from `stage`."""
    return {action.value for (source, action) in EXPECTED if source is stage}


ALL_PAIRS = list(itertools.product(Stage, Action))
LEGAL = [pair for pair in ALL_PAIRS if pair in EXPECTED]
ILLEGAL = [pair for pair in ALL_PAIRS if pair not in EXPECTED]


def test_matrix_is_complete() -> None:
    """The legal and illegal lists together cover every stage × action pair exactly once."""
    assert len(LEGAL) + len(ILLEGAL) == len(Stage) * len(Action)
    assert len(LEGAL) == len(EXPECTED)


@pytest.mark.parametrize(("stage", "action"), LEGAL, ids=[f"{s.value}-{a.value}" for s, a in LEGAL])
def test_allowed_transition(stage: Stage, action: Action) -> None:
    """Every legal pair moves the app to the stage the design names."""
    move = transition(stage, action, permissive())
    expected = EXPECTED[(stage, action)]
    assert move.from_stage is stage
    assert move.action is action
    assert move.to_stage is (S.production if expected == PREVIOUS else expected)


@pytest.mark.parametrize(("stage", "action"), ILLEGAL, ids=[f"{s.value}-{a.value}" for s, a in ILLEGAL])
def test_illegal_transition(stage: Stage, action: Action) -> None:
    """Every other pair raises InvalidTransition carrying the stage and the actions allowed from it."""
    with pytest.raises(InvalidTransition) as caught:
        transition(stage, action, permissive())
    err = caught.value
    assert err.stage == stage.value
    assert err.action == action.value
    assert set(err.allowed) == allowed_from(stage)
    assert err.detail == {"message": err.message, "stage": stage.value, "action": action.value, "allowed": err.allowed}


@pytest.mark.parametrize("stage", list(Stage))
def test_allowed_actions_match_design(stage: Stage) -> None:
    """allowed_actions() lists exactly what the design allows from each stage."""
    assert {a.value for a in allowed_actions(stage)} == allowed_from(stage)


def test_invalid_transition_is_a_409_conflict() -> None:
    """The typed error is a Conflict, so the HTTP edge renders it as 409."""
    with pytest.raises(Conflict) as caught:
        transition(S.registered, A.approve, permissive())
    assert caught.value.status_code == 409
    assert caught.value.code == "invalid_transition"


# ---------------------------------------------------------------- guards


@pytest.mark.parametrize("actor", [OWNER, CO_OWNER, OWNER.upper(), "Buddy@Example.COM"])
def test_approver_cannot_approve_own_app(actor: str) -> None:
    """Neither the owner nor a co-owner (in any letter case) can approve the app."""
    with pytest.raises(InvalidTransition, match="cannot approve their own app") as caught:
        transition(S.in_review, A.approve, permissive(actor=actor))
    assert caught.value.stage == "in_review"
    assert "approve" in caught.value.allowed


def test_owner_may_do_everything_else_in_review() -> None:
    """The self-approval guard is about approving only: an owner may still reject or escalate."""
    assert transition(S.in_review, A.reject, permissive(actor=OWNER)).to_stage is S.rejected
    assert transition(S.in_review, A.escalate, permissive(actor=OWNER)).to_stage is S.engineering


@pytest.mark.parametrize("action", [a for a in Action if a is not A.purge])
def test_retired_accepts_nothing_but_purge(action: Action) -> None:
    """A retired app refuses every action except the retention purge, and says so."""
    with pytest.raises(InvalidTransition, match="nothing but the retention purge") as caught:
        transition(S.retired, action, permissive())
    assert caught.value.allowed == ["purge"]


def test_retired_purge_stays_retired() -> None:
    """The retention purge is accepted on a retired app and leaves it retired."""
    assert transition(S.retired, A.purge, permissive()).to_stage is S.retired


def test_orphaned_cannot_be_promoted() -> None:
    """An orphaned app cannot be approved into production, with the reason spelled out."""
    with pytest.raises(InvalidTransition, match="orphaned app cannot be promoted") as caught:
        transition(S.orphaned, A.approve, permissive())
    assert "approve" not in caught.value.allowed
    assert set(caught.value.allowed) == {"reassign", "suspend", "retire"}


@pytest.mark.parametrize("remaining", [{OWNER}, {CO_OWNER}, {OWNER, CO_OWNER}])
def test_orphan_refused_while_an_owner_is_active(remaining: set[str]) -> None:
    """An app is not orphaned while its owner or any co-owner is still active."""
    with pytest.raises(InvalidTransition, match="active owner or co-owner remains"):
        transition(S.production, A.orphan, permissive(active_owners=frozenset(remaining)))


def test_orphan_when_no_active_owner_remains() -> None:
    """With neither owner nor co-owner active, the app becomes orphaned and remembers its stage."""
    move = transition(S.production, A.orphan, permissive(active_owners=frozenset()))
    assert move.to_stage is S.orphaned
    assert move.remembers_stage


@pytest.mark.parametrize(
    ("new_owner", "active"), [(None, True), ("", True), ("new@example.com", False)], ids=["none", "empty", "inactive"]
)
@pytest.mark.parametrize("stage", [S.orphaned, S.suspended])
def test_reassign_needs_an_active_new_owner(stage: Stage, new_owner: str | None, active: bool) -> None:
    """Reassignment is refused without a new owner or when the new owner is not active."""
    with pytest.raises(InvalidTransition, match="new owner must be an active person"):
        transition(stage, A.reassign, permissive(new_owner=new_owner, new_owner_active=active))


@pytest.mark.parametrize("live", [1, 3])
def test_complete_sunset_refused_with_live_credentials(live: int) -> None:
    """An app never reaches retired while a credential is still live."""
    with pytest.raises(InvalidTransition, match=f"{live} credential"):
        transition(S.sunsetting, A.complete_sunset, permissive(live_credentials=live))
    assert transition(S.sunsetting, A.complete_sunset, permissive(live_credentials=0)).to_stage is S.retired


@pytest.mark.parametrize("previous", ACTIVE)
@pytest.mark.parametrize(
    ("stage", "action"), [(S.expiring, A.extend), (S.orphaned, A.reassign), (S.suspended, A.reassign)]
)
def test_extend_and_reassign_return_to_previous_stage(stage: Stage, action: Action, previous: Stage) -> None:
    """Extension and reassignment send the app back to the stage it came from."""
    move = transition(stage, action, permissive(previous_stage=previous))
    assert move.to_stage is previous
    assert not move.remembers_stage


@pytest.mark.parametrize("previous", [None, S.expiring, S.orphaned, S.suspended, S.sunsetting, S.retired])
@pytest.mark.parametrize(("stage", "action"), [(S.expiring, A.extend), (S.orphaned, A.reassign)])
def test_return_refused_without_a_returnable_previous_stage(
    stage: Stage, action: Action, previous: Stage | None
) -> None:
    """With no remembered stage (or one that is not a live stage) there is nowhere to return to."""
    with pytest.raises(InvalidTransition, match="stage to return to is unknown"):
        transition(stage, action, permissive(previous_stage=previous))


@pytest.mark.parametrize(
    ("stage", "action", "remembers"),
    [
        (S.production, A.mark_expiring, True),
        (S.registered, A.orphan, True),
        (S.expiring, A.orphan, False),  # keeps the stage remembered before expiring
        (S.orphaned, A.suspend, False),
        (S.in_review, A.approve, False),
    ],
)
def test_remembers_stage(stage: Stage, action: Action, remembers: bool) -> None:
    """Only leaving a live stage for expiring or orphaned records a stage to come back to."""
    assert transition(stage, action, permissive()).remembers_stage is remembers
