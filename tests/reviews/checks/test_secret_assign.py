"""The assignment finder of the secrets check: which `name = value` pairs count as credentials, and which do not."""

from __future__ import annotations

import pytest

from orchestrator.reviews.checks.secret_assign import classify_name, find_assignments

# A random-looking token, built at run time so no token-shaped literal sits in the source.
TOKEN = "Zq8x" + "R2mK7vLp4Nw9Tb3"
HEX_KEY = "a1b2c3d4e5f6" + "0718293a4b5c6d7e8f90"


@pytest.mark.parametrize(
    ("name", "family"),
    [
        ("password", "password"),
        ("db_password", "password"),
        ("DB_PASSWD", "password"),
        ("clientSecret", "secret"),
        ("secretKey", "secret"),
        ("api_key", "token"),
        ("apiKey", "token"),
        ("AccessToken", "token"),
        ("key", "key"),
        ("sortKey", "key"),
        # Names that describe a credential instead of holding one.
        ("passwordLabel", None),
        ("password_file", None),
        ("token_url", None),
        ("keyId", None),
        ("username", None),
    ],
)
def test_classify_name(name: str, family: str | None) -> None:
    """The words of an identifier decide its family; a describing word (label, url, id, file) rules it out."""
    assert classify_name(name) == family


@pytest.mark.parametrize(
    ("line", "code_file", "rule", "name", "value", "severity"),
    [
        ('password = "hunter2-Correct"', False, "generic-password", "password", "hunter2-Correct", "high"),
        ('DB_PASSWORD="s3cr3t-Pa55"', False, "generic-password", "DB_PASSWORD", "s3cr3t-Pa55", "high"),
        ('"password": "hunter2-Correct"', False, "generic-password", "password", "hunter2-Correct", "high"),
        ('settings.password = "hunter2-Correct"', True, "generic-password", "password", "hunter2-Correct", "high"),
        (f'api_key = "{TOKEN}"', True, "generic-token", "api_key", TOKEN, "high"),
        (f'const token = "{TOKEN}";', True, "generic-token", "token", TOKEN, "high"),
        (f"token: {TOKEN}", False, "generic-token", "token", TOKEN, "high"),
        (f"curl --api-key {TOKEN} https://example.com", False, "generic-token", "api-key", TOKEN, "high"),
        (f'<add key="ApiKey" value="{TOKEN}" />', False, "generic-token", "ApiKey", TOKEN, "high"),
        (f'key = "{HEX_KEY}"', True, "generic-key", "key", HEX_KEY, "high"),
        # Comparisons with a password are reported, one notch lower.
        ('if pwd == "hunter2-Correct":', True, "generic-password", "pwd", "hunter2-Correct", "medium"),
        ('"hunter2-Correct" == user.password', True, "generic-password", "user.password", "hunter2-Correct", "medium"),
    ],
)
def test_assignments_found(line: str, code_file: bool, rule: str, name: str, value: str, severity: str) -> None:
    """A literal credential assigned to a credential name is one finding naming both."""
    (found,) = find_assignments(line, code_file=code_file)
    assert (found.rule, found.name, found.value, found.severity) == (rule, name, value, severity)


@pytest.mark.parametrize(
    ("line", "code_file"),
    [
        ('password = "${DB_PASSWORD}"', False),  # a template, filled in elsewhere
        ('password = "changeme"', False),  # a stand-in
        ('password = "Enter your password"', True),  # a UI sentence
        ('PASSWORD = "PASSWORD"', True),  # an enum or a label
        ('password = os.environ["DB_PASSWORD"]', True),  # read at run time
        ("token = get_token()", True),  # a call
        (f"token = {TOKEN}", True),  # unquoted in code: an expression, not a literal
        ('api_key = "short"', True),  # too short to be a token
        (f'key = "{TOKEN}"', True),  # a bare `key` needs an unmistakably random value
        ('password_label = "Your password"', True),  # the name describes a credential
        ('creds.url = "https://example.com"', True),  # `creds` is a namespace here
    ],
)
def test_not_assignments(line: str, code_file: bool) -> None:
    """References, stand-ins, labels and weak values are not reported."""
    assert find_assignments(line, code_file=code_file) == []


def test_several_on_one_line() -> None:
    """Each credential on a line is its own finding, in order."""
    found = find_assignments(f'user=admin password="hunter2-Correct" api_key="{TOKEN}"', code_file=False)
    assert [(a.name, a.value) for a in found] == [("password", "hunter2-Correct"), ("api_key", TOKEN)]
