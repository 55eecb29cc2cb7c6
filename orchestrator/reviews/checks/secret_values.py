"""Tests on a candidate secret value: entropy, placeholders, templates, code references.

Shared by the format rules and the keyword-assignment detector. Each function answers one question so
a rule can pick the ones that fit its format (a Square test key legitimately contains `ABCDEFGHIJK`).
"""

from __future__ import annotations

import math
import re
from collections import Counter

_REPEAT_RE = re.compile(r"(.)\1{7,}")
_SEQUENCES = ("abcdefghij", "bcdefghijk", "klmnopqrst", "qrstuvwxyz", "0123456789", "1234567890", "qwertyuiop")
_STRONG_PARTS = ("xxxx", "****", "example", "####")
_PLACEHOLDER_PARTS = (
    "placeholder",
    "redacted",
    "changeme",
    "change_me",
    "change-me",
    "dummy",
    "insert",
    "replace",
    "your_",
    "your-",
    "yourpass",
    "yourtoken",
    "yourkey",
    "fake",
    "sample",
    "<token>",
    "here",
    "todo",
)
_PLACEHOLDER_WORDS = frozenset(
    {
        "password",
        "passwd",
        "pass",
        "pwd",
        "secret",
        "token",
        "apikey",
        "api_key",
        "key",
        "test",
        "none",
        "null",
        "nil",
        "true",
        "false",
        "undefined",
        "not-set",
        "notset",
        "unset",
        "empty",
        "default",
        "string",
        "required",
        "optional",
        "hidden",
        "masked",
    }
)
# A whole value that is a reference to something else rather than a literal.
_TEMPLATE_RES = (
    re.compile(r"^\$\{[^}]*\}$"),  # ${VAR}
    re.compile(r"^\$\(.*\)$"),  # $(command)
    re.compile(r"^\$[A-Za-z_]\w*$"),  # $VAR
    re.compile(r"^\$\d$"),  # $1
    re.compile(r"^\{\{.*\}\}$"),  # {{ jinja }}
    re.compile(r"^\{[\w.\s-]*\}$"),  # {name}
    re.compile(r"^<%.*%>$"),  # <%= erb %>
    re.compile(r"^<[^<>]*>$"),  # <your token>
    re.compile(r"^#\{.*\}$"),  # #{ruby}
    re.compile(r"^%\(?\w*\)?[sd]$"),  # %s, %(name)s
    re.compile(r"^@\w+@$"),  # @TOKEN@
    re.compile(r"^\[[^\]]*\]$"),  # [PASSWORD]
    re.compile(r"^__\w+__$"),  # __TOKEN__
    re.compile(r"^`[^`]*\s[^`]*`$"),  # `shell command with args`
)
_HOSTISH_RE = re.compile(r"^[\w-]+(?:\.[\w-]+)*\.(?:com|org|net|io|dev|local|internal|pem|p12|key|crt|json|ya?ml|txt)$")
# Segments are words with at most trailing digits: `env.DB_PASSWORD2` is a reference, `s.ZC9Ecf4M` is not.
_DOTTED_REF_RE = re.compile(r"^[A-Za-z_$][A-Za-z_$]*\d*(?:(?:\.|->|::?)[A-Za-z_$][A-Za-z_$]*\d*)+(?:\(.*)?$")
_CONSTANT_RE = re.compile(r"^[A-Z][A-Z_]*$")
_SELECTOR_RE = re.compile(r"^[#.][a-z][a-z-]*$")


def shannon_entropy(value: str) -> float:
    """Bits of Shannon entropy per character of `value`."""
    if not value:
        return 0.0
    counts = Counter(value)
    n = len(value)
    return -sum(c / n * math.log2(c / n) for c in counts.values())


def has_repeat(value: str) -> bool:
    """True when one character repeats 8 or more times in a row (`xxxxxxxx`, `00000000`)."""
    return _REPEAT_RE.search(value) is not None


def has_sequence(value: str) -> bool:
    """True when the value contains a run like `abcdefghij` or `0123456789`."""
    low = value.lower()
    return any(seq in low for seq in _SEQUENCES)


def is_placeholder(value: str, *, sequences: bool = True, words: bool = True) -> bool:
    """True for documentation stand-ins: repeated characters, EXAMPLE, xxxx, `your_token` and similar.

    Format rules pass `words=False`: a real token may contain `fake` or `here` by chance, while a
    value assigned to `password` that says `your_password_here` is a stand-in.
    """
    if has_repeat(value) or (sequences and has_sequence(value)):
        return True
    low = value.lower()
    if any(part in low for part in _STRONG_PARTS):
        return True
    if not words:
        return False
    if low.strip("'\"` ") in _PLACEHOLDER_WORDS:
        return True
    return any(part in low for part in _PLACEHOLDER_PARTS)


def is_template(value: str) -> bool:
    """True when the whole value refers to a variable, a command or a template slot."""
    stripped = value.strip()
    if "%s" in stripped or "%d" in stripped:
        return True
    return any(r.match(stripped) for r in _TEMPLATE_RES)


def looks_like_code_reference(value: str) -> bool:
    """True for an unquoted value that is code, not a literal: `env.PASSWORD`, `getpass()`, `NULL`."""
    if _DOTTED_REF_RE.match(value) or _CONSTANT_RE.match(value):
        return True
    if value.endswith(("(", ")")) or value.startswith(("(", "[", "{", "&", "*", "!")):
        return True
    return value.lower() in {"none", "null", "nil", "true", "false", "undefined", "nullptr"}


def looks_like_selector(value: str) -> bool:
    """True for a CSS/DOM selector such as `#add-password` (a UI string, not a credential)."""
    return _SELECTOR_RE.match(value) is not None


def looks_like_host_or_file(value: str) -> bool:
    """True for host names and file names (`db.example.com`, `cert.pem`), which are not credentials."""
    return _HOSTISH_RE.match(value) is not None or value.startswith(("/", "./", "~/", "http://", "https://"))


def char_classes(value: str) -> int:
    """How many of lower case, upper case, digits and other characters the value mixes."""
    return sum(
        (
            any(c.islower() for c in value),
            any(c.isupper() for c in value),
            any(c.isdigit() for c in value),
            any(not c.isalnum() for c in value),
        )
    )


def mixed_alnum(value: str) -> bool:
    """True when a value holds a digit and a letter, or both letter cases: random, not a word."""
    has_digit = any(c.isdigit() for c in value)
    has_lower = any(c.islower() for c in value)
    has_upper = any(c.isupper() for c in value)
    return (has_digit and (has_lower or has_upper)) or (has_lower and has_upper)
