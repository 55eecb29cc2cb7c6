"""Generic credential assignments: `password = "..."`, `api_key: ...`, `"token" => '...'`.

The name on the left decides how suspicious the value must be. Passwords are chosen by people, so any
literal that is not a stand-in counts; tokens and keys must look random (entropy, mixed characters).
Names that describe a credential rather than hold one (`password_label`, `token_url`, `key_id`) are
ignored, and so are values that refer to something else (`${VAR}`, `env.PASSWORD`, `getpass()`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from orchestrator.reviews.checks.findings import Severity
from orchestrator.reviews.checks.secret_values import (
    is_placeholder,
    is_template,
    looks_like_code_reference,
    looks_like_host_or_file,
    looks_like_selector,
    mixed_alnum,
    shannon_entropy,
)

# Where assignments can be: a keyword, at most a short name tail, then an operator; or a literal compared
# with a password variable; or a command-line flag. Runs over the lower-cased text of a whole file, fast
# because it is one pattern; only the lines it hits go to `find_assignments`.
_SHAPE_TAIL = (
    r"|[\"'][^\"'\n]{4,}[\"']\s*[!=]==?\s*[\w.$]*(?:pass|pwd|secret)"
    r"|-[\w-]*(?:pass|pwd|secret|token|key|cred|auth)[\w-]*[ \t]+\S"
)
SHAPE_RE = re.compile(r"(?:pass|pwd|secret|token|key|cred|auth)[\w.\-]{0,40}[\"'`\]]?\s*[:=!,?|]" + _SHAPE_TAIL)
# In program code an unquoted value is an expression, never a literal: the value must open a string.
SHAPE_CODE_RE = re.compile(
    r"(?:pass|pwd|secret|token|key|cred|auth)[\w.\-]{0,40}[\"'`\]]?\s*(?:[:=!,?|]{1,3}|=>)\s*[rbuf]{0,2}[\"'`\\]"
    r"|[;?&](?:pass|pwd)\w*\s*=" + _SHAPE_TAIL
)
# Every alternative of both shapes holds one of these words: a text without any of them (most prose)
# cannot match, which a few substring tests tell far sooner than running either pattern over it.
SHAPE_WORDS = ("pass", "pwd", "secret", "token", "key", "cred", "auth")
_KEYWORD_RE = re.compile(r"(?i)passw(?:or)?d|passphrase|pwd|pass|secret|token|key|credential|creds|auth")
_WORD_RE = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+")
_IDENT_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.$@")
_QUOTES = "\"'`"
_OPS = ("===", "!==", "==", "!=", ":=", "=>", "?=", "||=", "::", "=", ":", ",")
_COMPARISONS = frozenset({"===", "!==", "==", "!="})
_UNQUOTED_END = frozenset(" \t,;&\"'`")
_REVERSED_RE = re.compile(r"[\"'](?P<v>[^\"'\n]{4,})[\"']\s*(?:===?|!==?)\s*(?P<k>[A-Za-z_$][\w.$]*)")
_XML_ADD_RE = re.compile(r"key\s*=\s*\"(?P<k>[^\"]+)\"\s+value\s*=\s*\"(?P<v>[^\"]*)\"")
_HEX_RE = re.compile(r"^[a-fA-F0-9]{32,}$")
_KEYISH_RE = re.compile(r"^[A-Za-z0-9+/=_\-]+$")

_PASSWORD_WORDS = frozenset(
    """
    password passwd pwd pass passphrase passcode pword dbpass dbpassword userpassword adminpassword rootpassword
    passw
    """.split()
)
_SECRET_WORDS = frozenset(
    """
    secret secrets clientsecret appsecret apisecret jwtsecret secretkey secretaccesskey consumersecret
    sessionsecret webhooksecret signingsecret
    """.split()
)
_TOKEN_WORDS = frozenset(
    """
    token tokens apikey apikeys apitoken accesstoken authtoken refreshtoken bearertoken bottoken usertoken
    sessiontoken credential credentials creds auth accesskey privatekey authkey masterkey licensekey encryptionkey
    signingkey bearer
    """.split()
)
_KEY_QUALIFIERS = frozenset(
    """
    api access secret private auth client app application master encryption encrypt signing sign license consumer
    account service admin session storage subscription shared preshared webhook hmac crypto aes jwt bearer
    developer dev write read ingest insert query server deploy live prod production rest secure security root user
    login personal integration partner merchant
    """.split()
)
# Words that make the name describe a credential instead of holding one.
_NEGATORS = frozenset(
    """
    id ids name names label labels file filename files path paths dir url uri urls endpoint host size length len
    type types field fields var variable variables env selector count header headers prefix suffix format version
    policy source hint placeholder regex pattern input form box button validator validation hash hashed salt
    digest expiry expires expiration expire expired ttl timeout ref reference provider mode method question reset
    forgot confirm confirmation min max strength rule rules manager param params arg args enabled required public
    pub kind index idx error errors message msg title description desc help class style icon dialog modal page
    screen view component handler callback fn func schema spec template tmpl location lifetime usage limit
    encoding algorithm alg scheme visible visibility show toggle is has should can valid check verify status state
    event events prompt mask masked request generator storage_class pair ring chain word not no non mgr arn
    example sample test last used
    """.split()
)
# Negators that describe the value wherever they stand: `hashed_password`, `example_password`.
_ALWAYS_NEGATORS = frozenset(
    """
    hash hashed salt digest example sample test placeholder hint regex pattern label field input form type reset
    forgot confirm confirmation min max strength rule rules policy validator validation not no non is has should
    can valid check verify mask masked prompt show toggle visible visibility error errors message msg
    """.split()
)
_UI_WORDS = frozenset(
    """
    enter must please your the invalid required characters confirm incorrect wrong least match not new forgot
    reset should a an is be applicable n/a none for to of
    """.split()
)
_CONSTANT_VALUE_RE = re.compile(r"^[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+$")
_CREDENTIAL_WORDS = frozenset(
    """
    password passwd pass secret token key apikey auth credential
    """.split()
)

CODE_EXTENSIONS = frozenset(
    """
    .py .js .jsx .ts .tsx .mjs .cjs .java .kt .kts .scala .go .rb .php .cs .c .h .cc .cpp .hpp .rs .swift .m .dart
    .lua .pl .groovy .vue .svelte
    """.split()
)


@dataclass(frozen=True)
class Assignment:
    """A credential-looking literal and the name it is assigned to."""

    rule: str
    name: str
    value: str
    severity: Severity


def classify_name(name: str) -> str | None:
    """password | secret | token | key | None, from the words of an identifier."""
    words = [w.lower() for w in _WORD_RE.findall(name)]
    if not words:
        return None
    # The last credential word is the head of the name: a negator after it describes the credential
    # (`password_label`, `token_url`), one before it only qualifies where it is used (`EMAIL_HOST_PASSWORD`).
    heads = [i for i, w in enumerate(words) if w in _PASSWORD_WORDS]
    cut = heads[-1] if heads else -1
    if any(w in _NEGATORS and (i > cut or w in _ALWAYS_NEGATORS) for i, w in enumerate(words)):
        return None
    found: set[str] = set()
    for i, word in enumerate(words):
        if word in _PASSWORD_WORDS:
            found.add("password")
        elif word in _SECRET_WORDS:
            found.add("secret")
        elif word in _TOKEN_WORDS:
            found.add("token")
        elif word in ("key", "keys"):
            found.add("token" if any(w in _KEY_QUALIFIERS for w in words[:i]) else "key")
    for family in ("password", "secret", "token", "key"):
        if family in found:
            return family
    return None


def _looks_like_sentence(value: str) -> bool:
    words = value.lower().split()
    return len(words) >= 2 and any(w.strip(".,:!?") in _UI_WORDS for w in words)


def _describes_credential(value: str) -> bool:
    # `role-secret-key`, `db_password_file`: several words, one of them naming a credential.
    words = [w.lower() for w in _WORD_RE.findall(value)]
    return len(words) >= 2 and any(w in _CREDENTIAL_WORDS for w in words) and not any(c.isdigit() for c in value)


def value_acceptable(family: str, value: str, *, quoted: bool) -> bool:
    """Whether a literal assigned to a name of this family is plausibly a real credential."""
    value = value.strip()
    if not value or is_template(value) or looks_like_selector(value):
        return False
    if value[0] in "${[+.,|" or value.endswith("+"):
        return False
    if not quoted and looks_like_code_reference(value):
        return False
    if is_placeholder(value, words=True) or _CONSTANT_VALUE_RE.match(value) or _describes_credential(value):
        return False
    if family in ("password", "secret"):
        return len(value) >= (4 if family == "password" else 5) and not _looks_like_sentence(value)
    if looks_like_host_or_file(value):
        return False
    if family == "token":
        if len(value) < 10 or shannon_entropy(value) < 3.0 or any(c.isspace() for c in value):
            return False
        if value.isalpha():
            # All letters: a random token of this length switches case often; `AccessToken` does not.
            return len(value) >= 16 and shannon_entropy(value) >= 4.0
        symbols = any(not c.isalnum() and c not in "-_." for c in value)
        return mixed_alnum(value) or (symbols and shannon_entropy(value) >= 3.5)
    # A bare `key` is also a dictionary key, a sort key, a cache key: demand an unmistakably random value.
    if _HEX_RE.match(value):
        return True
    return (
        len(value) >= 20
        and _KEYISH_RE.match(value) is not None
        and shannon_entropy(value) >= 4.0
        and sum(c.isdigit() for c in value) >= 3
        and any(c.isalpha() for c in value)
    )


def _read_value(line: str, k: int) -> tuple[str, bool, int] | None:
    """The literal starting at `k`: (text, quoted, end index), or None when it does not end on this line."""
    n = len(line)
    if k < n - 1 and line[k] in "rbufRBUF" and line[k + 1] in _QUOTES:
        if line[k] in "fF" and "{" in line[k:]:
            return None
        k += 1
    if line.startswith(('\\"', "\\'"), k):
        delim = line[k : k + 2]
        end = line.find(delim, k + 2)
        return (line[k + 2 : end], True, end + 2) if end != -1 else None
    if k < n and line[k] in _QUOTES:
        quote = line[k]
        j = k + 1
        while j < n and line[j] != quote:
            j += 2 if line[j] == "\\" else 1
        if j >= n:
            return None
        value = line[k + 1 : j]
        if quote == "`" and any(c.isspace() for c in value):
            return None  # shell command substitution, not a literal
        if len(value) >= 2 and value[0] == value[-1] and value[0] in _QUOTES:
            value = value[1:-1]
        return value, True, j + 1
    j = k
    while j < n and line[j] not in _UNQUOTED_END:
        j += 1
    value = line[k:j]
    # A closing bracket with no opening one belongs to the surrounding code: `f(token=abc)`.
    while (
        value and value[-1] in ")]}" and value.count(value[-1]) > value.count({")": "(", "]": "[", "}": "{"}[value[-1]])
    ):
        value = value[:-1]
    return value, False, j


def _operator(line: str, b: int, key_quoted: bool) -> tuple[str, int] | None:
    j = b
    n = len(line)
    while j < n and (line[j] == "]" or (key_quoted and line[j] in _QUOTES)):
        j += 1
    while j < n and line[j] in " \t":
        j += 1
    for op in _OPS:
        if line.startswith(op, j):
            if op == ":" and line.startswith("//", j + 1):
                return None
            if op == "," and not key_quoted:
                return None
            return op, j + len(op)
    return None


def _severity(family: str, op: str) -> Severity:
    return Severity.medium if op in _COMPARISONS else Severity.high


def find_assignments(line: str, *, code_file: bool) -> list[Assignment]:
    """Credential assignments on one line of text."""
    found: list[Assignment] = []
    done_until = -1
    n = len(line)
    for m in _KEYWORD_RE.finditer(line):
        if m.start() < done_until:
            continue
        a, b = m.start(), m.end()
        while a > 0 and line[a - 1] in _IDENT_CHARS:
            a -= 1
        while b < n and line[b] in _IDENT_CHARS:
            b += 1
        done_until = b
        ident = line[a:b]
        last_dot = max(ident.rfind("."), ident.rfind("$"))
        if a + last_dot + 1 > m.start():
            done_until = -1
            continue  # the keyword is a namespace (`creds.url`); a later keyword may be the name
        name = ident[last_dot + 1 :].lstrip("@-")
        family = classify_name(name)
        if family is None:
            continue
        key_quoted = a > 0 and line[a - 1] in _QUOTES
        parsed = _operator(line, b, key_quoted)
        if parsed is None:
            # Command-line flags take their value after a space: `--api-key abc`, `-Password x`.
            if ident.startswith("-") and b < n and line[b] == " ":
                parsed = ("", b + 1)
            else:
                continue
        op, k = parsed
        if op in _COMPARISONS and family not in ("password", "secret"):
            continue
        if name.lower() in line[k : k + len(name) + 2].lower():
            continue  # `PASSWORD = "PASSWORD"`: an enum or a label, not a value
        while k < n and line[k] in " \t":
            k += 1
        read = _read_value(line, k)
        if read is None:
            continue
        value, quoted, end = read
        if op == "," and not (
            quoted and len(value) >= 8 and mixed_alnum(value) and " " not in value and any(c.isdigit() for c in value)
        ):
            continue  # `f("HTTPPasswordMgr", "urllib2")` lists arguments; only a token-like value counts
        if not quoted:
            literal_context = a > 0 and line[a - 1] in ";?&"
            if end < n and line[end] == "(":
                continue
            if code_file and not literal_context and op != "":
                continue
        if value_acceptable(family, value, quoted=quoted):
            found.append(Assignment(f"generic-{family}", name, value, _severity(family, op)))
    for m in _REVERSED_RE.finditer(line):
        family = classify_name(m.group("k").split(".")[-1])
        if family in ("password", "secret") and value_acceptable(family, m.group("v"), quoted=True):
            found.append(Assignment(f"generic-{family}", m.group("k"), m.group("v"), Severity.medium))
    if "value" in line:
        for m in _XML_ADD_RE.finditer(line):
            family = classify_name(m.group("k"))
            if family and value_acceptable(family, m.group("v"), quoted=True):
                found.append(Assignment(f"generic-{family}", m.group("k"), m.group("v"), Severity.high))
    return found
