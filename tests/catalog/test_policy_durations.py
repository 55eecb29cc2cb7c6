"""Policy durations: whole days as before, or ISO 8601 durations (PT10M, P30D) for a quick try of expiry."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
import yaml
from sqlmodel import select

from orchestrator.catalog.policy import DEFAULT_POLICY_PATH, Policy, parse_policy
from orchestrator.errors import ConfigError


def _with(**internal: Any) -> Policy:
    raw = yaml.safe_load(DEFAULT_POLICY_PATH.read_text(encoding="utf-8"))
    raw["data_classes"]["internal"].update(internal)
    return parse_policy(raw)


def test_iso_durations_are_accepted_beside_whole_days() -> None:
    """PT10M is ten minutes, P30D thirty days, P1DT12H a day and a half; 30 stays 30 days."""
    rules = _with(
        sandbox_ttl_days="PT10M", review_cadence_days="P30D", max_extension_days=30, inactivity_days="P1DT12H"
    ).for_class("internal")
    assert timedelta(days=rules.sandbox_ttl_days) == timedelta(minutes=10)
    assert timedelta(days=rules.review_cadence_days) == timedelta(days=30)
    assert timedelta(days=rules.max_extension_days) == timedelta(days=30)
    assert timedelta(days=rules.inactivity_days) == timedelta(hours=36)
    notices = _with(expiry_notice_days=["PT5M", 1]).for_class("internal").expiry_notice_days
    assert [timedelta(days=d) for d in notices] == [timedelta(days=1), timedelta(minutes=5)]


def test_effective_policy_round_trips_whole_days_as_numbers() -> None:
    """`policy check` shows whole days as numbers and shorter durations in ISO 8601; both read back the same."""
    policy = _with(sandbox_ttl_days="PT10M", review_cadence_days="P30D")
    dumped = policy.model_dump(mode="json")["data_classes"]["internal"]
    assert dumped["review_cadence_days"] == 30 and dumped["sandbox_ttl_days"] == "PT600S"
    again = parse_policy(yaml.safe_load(yaml.safe_dump(policy.model_dump(mode="json")))).for_class("internal")
    assert round(again.sandbox_ttl_days * 86400) == 600 and again.review_cadence_days == 30


@pytest.mark.parametrize("bad", ["P1M", "P1Y", "PT", "10 minutes", "P-1D", "PT0S"])
def test_bad_durations_name_the_field(bad: str) -> None:
    """Years and months (of varying length), empty, negative or zero durations are refused with the field named."""
    with pytest.raises(ConfigError) as refused:
        _with(sandbox_ttl_days=bad)
    assert "sandbox_ttl_days" in refused.value.message


def test_a_ten_minute_sandbox_expires_ten_minutes_after_registration(sqlite_url: str) -> None:
    """Registering under a PT10M sandbox TTL sets the expiry ten minutes out (and plans the deadline then)."""
    from orchestrator.catalog.manifest import Manifest
    from orchestrator.catalog.service import register_app
    from orchestrator.clock import utcnow
    from orchestrator.db import session_scope
    from orchestrator.timers.models import Deadline, DeadlineKind

    policy = _with(sandbox_ttl_days="PT10M", expiry_notice_days=["PT5M"])
    manifest = Manifest.model_validate(
        {
            "name": "Quick Try",
            "owner": "maria.garcia@example.com",
            "team": "Finance",
            "data_class": "internal",
            "description": "tries expiry in one sitting",
            "repo": "https://github.com/example-corp/quick-try",
        }
    )
    now = utcnow()
    with session_scope() as session:
        app, _ = register_app(session, manifest, actor="maria.garcia@example.com", policy=policy, source="cli", now=now)
        assert app.expires_at is not None
        assert abs((app.expires_at.replace(tzinfo=now.tzinfo) - now) - timedelta(minutes=10)) < timedelta(seconds=1)
        app_id = app.id
    with session_scope() as session:
        kinds = {d.kind for d in session.exec(select(Deadline).where(Deadline.app_id == app_id))}
    assert DeadlineKind.expiry in kinds
