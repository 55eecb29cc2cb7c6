"""The `llm` section of policy.yaml: validated at start-up, a bad value names its field."""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml

from orchestrator.catalog.policy import DEFAULT_POLICY_PATH, parse_policy
from orchestrator.errors import ConfigError


def _raw() -> dict[str, Any]:
    raw: dict[str, Any] = yaml.safe_load(DEFAULT_POLICY_PATH.read_text(encoding="utf-8"))
    return raw


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"redaction": "scramble"}, "data_classes.internal.llm.redaction"),
        ({"detectors": ["email", "dna"]}, "data_classes.internal.llm.detectors.1"),
        ({"requests_per_minute": 0}, "data_classes.internal.llm.requests_per_minute"),
        ({"models": {"openai": []}}, "data_classes.internal.llm.models"),
        ({"models": {"gemini": ["x"]}}, "data_classes.internal.llm.models.gemini"),
        ({"max_tokens": 5}, "data_classes.internal.llm.max_tokens"),
        ({"daily_budget_usd": 0}, "data_classes.internal.llm.daily_budget_usd"),
        ({"daily_budget_usd": 5, "models": {"openai": ["gpt-unpriced"]}}, "data_classes.internal.llm.daily_budget_usd"),
    ],
)
def test_a_bad_llm_value_is_a_start_up_error_naming_the_field(change: dict[str, Any], field: str) -> None:
    raw = _raw()
    raw["data_classes"]["internal"]["llm"].update(change)
    with pytest.raises(ConfigError, match=re.escape(field)):
        parse_policy(raw)


def test_regulated_data_fails_closed() -> None:
    raw = _raw()
    raw["data_classes"]["regulated"]["llm"] = {"enabled": True, "redaction": "mask", "models": {"openai": ["x"]}}
    with pytest.raises(ConfigError, match="regulated.llm.redaction must be `block`"):
        parse_policy(raw)
    raw["data_classes"]["regulated"]["llm"]["redaction"] = "block"
    assert parse_policy(raw).for_class("regulated").llm.redaction == "block"


def test_the_shipped_policy_allows_llm_below_regulated() -> None:
    policy = parse_policy(_raw())
    assert policy.for_class("internal").llm.enabled
    assert "llm:invoke" in policy.for_class("internal").allowed_scopes
    assert not policy.for_class("regulated").llm.enabled


def test_a_daily_budget_counts_at_the_policys_prices() -> None:
    raw = _raw()
    raw["llm_prices"]["gpt-4o-mini"] = {"input": 0.5, "output": 2}
    policy = parse_policy(raw)
    # 1,000 prompt tokens at $0.50 and 100 completion tokens at $2 per million: 500 + 200 millionths.
    assert policy.llm_cost_micros("gpt-4o-mini", 1000, 100) == 700
    assert policy.llm_cost_micros("not-priced", 1000, 100) == 0
    raw["llm_prices"]["gpt-4o-mini"] = {"input": -1}
    with pytest.raises(ConfigError, match=re.escape("llm_prices.gpt-4o-mini.input")):
        parse_policy(raw)
