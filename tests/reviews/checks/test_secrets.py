"""Secret scanner units: formats, assignments, placeholders, allow-listing, fingerprints and previews.

Token-shaped values are assembled at run time from parts; no credential-shaped literal lives in the repo.
"""

from __future__ import annotations

import random
import string

import pytest

from orchestrator.reviews.checks.findings import fingerprint, redact
from orchestrator.reviews.checks.secrets import scan_text, secret_findings

_RNG = random.Random(42)
ALNUM = string.ascii_letters + string.digits


def rand(n: int, alphabet: str = ALNUM) -> str:
    """A random string of `n` characters (deterministic across runs)."""
    return "".join(_RNG.choice(alphabet) for _ in range(n))


def tokens() -> dict[str, str]:
    """One value per format family, built from parts."""
    return {
        "aws-access-key-id": "AK" + "IA" + rand(16, string.ascii_uppercase + "234567"),
        "github-token": "gh" + "p_" + rand(36),
        "github-fine-grained-pat": "github" + "_pat_" + rand(22) + "_" + rand(59),
        "gitlab-token": "gl" + "pat-" + rand(20),
        "slack-token": "xo" + "xb-" + rand(12, string.digits) + "-" + rand(12, string.digits) + "-" + rand(24),
        "stripe-key": "sk" + "_live_" + rand(24),
        "openai-api-key": "sk-" + "proj-" + rand(20) + "T3Blbk" + "FJ" + rand(20),
        "anthropic-api-key": "sk-" + "ant-api03-" + rand(93, ALNUM + "-_"),
        "gcp-api-key": "AI" + "za" + rand(35),
        "jwt": "ey" + "JhbGciOiJIUzI1NiJ9." + "ey" + "JzdWIiOiIxMjM0NTY3ODkwIn0." + rand(43),
    }


@pytest.mark.parametrize("rule", sorted(tokens()))
def test_format_rules_find_built_tokens(rule: str) -> None:
    """Each high-signal format is found, with the rule that names it."""
    value = tokens()[rule]
    hits = scan_text(f'config = {{"value": "{value}"}}\n', "settings.json")
    assert [h.rule for h in hits] == [rule], "expected exactly one hit for the planted value"


def test_private_key_block_is_found_and_reported_on_its_first_line() -> None:
    """A PEM private key is critical and reported at its BEGIN line."""
    body = "\n".join(rand(64, ALNUM + "+/") for _ in range(4))
    text = "x = 1\n-----BEGIN " + "RSA PRIVATE KEY-----\n" + body + "\n-----END RSA PRIVATE KEY-----\n"
    hits = scan_text(text, "key.pem")
    assert len(hits) == 1 and hits[0].rule == "private-key" and hits[0].line == 2 and hits[0].severity == "critical"


@pytest.mark.parametrize(
    "line",
    [
        'password = "' + "hunter" + '2-rocks"',
        "db_pass: '" + rand(12) + "'",
        "DATABASE_URL=postgres://app:" + rand(12) + "@db.internal:5432/app",
        "client_secret = " + rand(30),
    ],
    ids=["password", "db_pass", "connection-string", "client-secret"],
)
def test_generic_credential_assignments_are_found(line: str) -> None:
    """Passwords, connection strings and secret assignments in config files are found."""
    assert scan_text(line + "\n", "app.env")


@pytest.mark.parametrize(
    "line",
    [
        "password = os.environ['DB_PASSWORD']",
        'password = "${DB_PASSWORD}"',
        "api_key: <your api key>",
        'token = "xxxxxxxxxxxxxxxxxxxxxxxx"',
        "password_label = 'Password'",
        "key_id = 'a1b2c3d4e5f6a7b8c9d0'",
        "aws_access_key: AK" + "IAIOSFODNN7EXAMPLE",
        "for key, value in data.items():",
    ],
)
def test_references_and_placeholders_are_not_secrets(line: str) -> None:
    """Variables, templates, stand-ins and descriptive names raise nothing."""
    assert not scan_text(line + "\n", "settings.py" if "os.environ" in line or "for " in line else "app.yaml")


def test_unquoted_values_in_code_are_expressions() -> None:
    """In program code `password = get_password()`-style right-hand sides are not literals."""
    assert not scan_text("password = load_password\ntoken = make_token(user)\n", "app.py")
    assert scan_text("password = open_sesame99\n", "app.ini")


def test_finding_never_contains_the_secret() -> None:
    """Preview and fingerprint do not reveal the value; the fingerprint is the salted HMAC."""
    value = tokens()["github-token"]
    (finding,) = secret_findings(f"TOKEN = '{value}'\n", "app.py")
    assert value not in finding.preview and value not in finding.fingerprint and value not in finding.message
    assert finding.fingerprint == fingerprint(value)
    assert finding.preview == redact(value) and finding.preview.endswith("(40 chars)")


def test_fingerprint_depends_on_salt(monkeypatch: pytest.MonkeyPatch) -> None:
    """FINDING_SALT changes every fingerprint, so fingerprints from another deployment do not match."""
    before = fingerprint("value")
    monkeypatch.setenv("FINDING_SALT", "another-salt")
    assert fingerprint("value") != before


def test_inline_allow_comment_marks_the_finding_allowed() -> None:
    """`orchestrator: allow-secret <reason>` keeps the finding, marked allowed with the reason."""
    value = tokens()["stripe-key"]
    (finding,) = secret_findings(f'KEY = "{value}"  # orchestrator: allow-secret revoked test key\n', "app.py")
    assert finding.allowed and finding.allow_reason == "revoked test key"


def test_policy_fingerprint_marks_the_finding_allowed() -> None:
    """A fingerprint listed in the policy allow-lists that secret (and only it)."""
    keep, other = tokens()["github-token"], tokens()["gitlab-token"]
    text = f'A = "{keep}"\nB = "{other}"\n'
    findings = secret_findings(text, "app.py", allowed_fingerprints=[fingerprint(keep)])
    assert [(f.line, f.allowed) for f in findings] == [(1, True), (2, False)]


def test_line_numbers_are_exact_in_long_files() -> None:
    """A secret deep in a file is reported on its own line."""
    value = tokens()["aws-access-key-id"]
    text = "".join(f"line_{i} = {i}\n" for i in range(5000)) + f"key = '{value}'\n" + "tail = 1\n"
    (hit,) = scan_text(text, "big.py")
    assert hit.line == 5001
