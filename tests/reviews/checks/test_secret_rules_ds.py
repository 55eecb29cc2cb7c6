"""The copied detect-secrets expressions (secret_rules_ds.py) are those of the installed detect-secrets.

The full install has detect-secrets (the benchmarks compare with it); the light one does not, which is
why the review carries copies. A detect-secrets upgrade that changes a plugin's denylist fails here.
"""

from __future__ import annotations

import re

from detect_secrets.plugins.cloudant import CloudantDetector
from detect_secrets.plugins.discord import DiscordBotTokenDetector
from detect_secrets.plugins.ibm_cloud_iam import IbmCloudIamDetector
from detect_secrets.plugins.ibm_cos_hmac import IbmCosHmacDetector
from detect_secrets.plugins.npm import NpmDetector
from detect_secrets.plugins.softlayer import SoftlayerDetector

from orchestrator.reviews.checks.secret_rules import RULES
from orchestrator.reviews.checks.secret_rules_ds import DENYLISTS

PLUGINS = (
    CloudantDetector,
    DiscordBotTokenDetector,
    IbmCloudIamDetector,
    IbmCosHmacDetector,
    NpmDetector,
    SoftlayerDetector,
)


def test_the_copies_equal_the_plugins_denylists() -> None:
    assert set(DENYLISTS) == {plugin.__name__ for plugin in PLUGINS}
    for plugin in PLUGINS:
        theirs = [(p.pattern, bool(p.flags & re.IGNORECASE)) for p in plugin.denylist]
        assert list(DENYLISTS[plugin.__name__]) == theirs, plugin.__name__


def test_every_copied_expression_is_a_rule_compiled_like_the_plugin() -> None:
    ours: dict[str, list[re.Pattern[str]]] = {r.source: [] for r in RULES if r.source.startswith("detect-secrets:")}
    for rule in RULES:
        if rule.source in ours:
            ours[rule.source].append(rule.pattern)
    for plugin in PLUGINS:
        compiled = ours[f"detect-secrets:{plugin.__name__}"]
        assert [(p.pattern, p.flags) for p in compiled] == [(p.pattern, p.flags) for p in plugin.denylist]
