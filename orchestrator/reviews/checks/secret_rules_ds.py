# ruff: noqa: E501 (the expressions are kept verbatim, one string each)
"""The regular expressions of six detect-secrets plugins, copied so that the review does not import detect-secrets.

Importing detect-secrets loads its whole scanner, `requests` and `urllib3` with it (about a tenth of a
second, on every run of the pre-commit hook), for six lists of expressions. They are copied here from
detect-secrets 1.5.0 (https://github.com/Yelp/detect-secrets, Copyright (c) 2018 Yelp, Inc., Apache
License 2.0), from each plugin's `denylist`; secret_rules.py compiles them. tests/reviews/checks/
test_secret_rules_ds.py compares them with the installed detect-secrets (the full install has it), so
an upgrade that changes one shows up there.
"""

from __future__ import annotations

# plugin class name -> its denylist: (pattern, case-insensitive)
DENYLISTS: dict[str, tuple[tuple[str, bool], ...]] = {
    "IbmCloudIamDetector": (
        (
            "(?:(?<=\\W)|(?<=^))(?:\\[|)(?:\"|\\'|)(?:ibm(?:_|-|)cloud(?:_|-|)iam|cloud(?:_|-|)iam|ibm(?:_|-|)cloud|ibm(?:_|-|)iam|ibm|iam|cloud|)(?:_|-|)(?:api|)(?:_|-|)(?:key|pwd|password|pass|token)(?:\"|\\'|)(?:\\]|)(?: *)(?:=|:|:=|=>| +|::)(?: *)(?:\"|\\'|)([a-zA-Z0-9_\\-]{44}(?![a-zA-Z0-9_\\-]))(?:\"|\\'|)",
            True,
        ),
    ),
    "IbmCosHmacDetector": (
        (
            "(?:(?<=\\W)|(?<=^))(?:\\[|)(?:\"|\\'|)(?:(?:ibm)?[-_]?cos[-_]?(?:hmac)?|)(?:_|-|)(?:secret[-_]?(?:access)?[-_]?key)(?:\"|\\'|)(?:\\]|)(?: *)(?:=|:|:=|=>| +|::)(?: *)(?:\"|\\'|)([a-f0-9]{48}(?![a-f0-9]))(?:\"|\\'|)",
            True,
        ),
    ),
    "SoftlayerDetector": (
        (
            "(?:(?<=\\W)|(?<=^))(?:\\[|)(?:\"|\\'|)(?:softlayer|sl)(?:_|-|)(?:api|)(?:_|-|)(?:key|pwd|password|pass|token)(?:\"|\\'|)(?:\\]|)(?: *)(?:=|:|:=|=>| +|::)(?: *)(?:\"|\\'|)([a-z0-9]{64})(?:\"|\\'|)",
            True,
        ),
        ("(?:http|https)://api.softlayer.com/soap/(?:v3|v3.1)/([a-z0-9]{64})", True),
    ),
    "CloudantDetector": (
        (
            "(?:(?<=\\W)|(?<=^))(?:\\[|)(?:\"|\\'|)(?:cloudant|cl|clou)(?:_|-|)(?:api|)(?:key|pwd|pw|password|pass|token)(?:\"|\\'|)(?:\\]|)(?: *)(?:=|:|:=|=>| +|::)(?: *)(?:\"|\\'|)([0-9a-f]{64})(?:\"|\\'|)",
            True,
        ),
        (
            "(?:(?<=\\W)|(?<=^))(?:\\[|)(?:\"|\\'|)(?:cloudant|cl|clou)(?:_|-|)(?:api|)(?:key|pwd|pw|password|pass|token)(?:\"|\\'|)(?:\\]|)(?: *)(?:=|:|:=|=>| +|::)(?: *)(?:\"|\\'|)([a-z]{24})(?:\"|\\'|)",
            True,
        ),
        ("(?:https?\\:\\/\\/)[\\w\\-]+\\:([0-9a-f]{64})\\@[\\w\\-]+\\.cloudant\\.com", True),
        ("(?:https?\\:\\/\\/)[\\w\\-]+\\:([a-z]{24})\\@[\\w\\-]+\\.cloudant\\.com", True),
    ),
    "NpmDetector": (("\\/\\/.+\\/:_authToken=\\s*((npm_.+)|([A-Fa-f0-9-]{36})).*", False),),
    "DiscordBotTokenDetector": (("[MNO][a-zA-Z\\d_-]{23,25}\\.[a-zA-Z\\d_-]{6}\\.[a-zA-Z\\d_-]{27}", False),),
}
