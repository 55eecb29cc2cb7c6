"""PII literals in code, fixtures and sample data: emails, phone numbers, cards, US SSNs, IBANs, and
national identifiers with check digits (Brazil's CPF, India's Aadhaar, Spain's DNI/NIE, Italy's codice
fiscale, France's NIR, Germany's tax id; validated by python-stdnum).

Numbers are validated before they count (Luhn and the networks' issuer ranges for cards, ISO 13616
mod-97 for IBANs, SSA rules for SSNs, libphonenumber's per-country rules for international and European,
Indian and Brazilian national phone formats) so that ids and timestamps do not drown the report.
Previews are redacted like secrets.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import phonenumbers
from stdnum.br import cpf as br_cpf
from stdnum.de import idnr as de_idnr
from stdnum.es import dni as es_dni
from stdnum.es import nie as es_nie
from stdnum.fr import nir as fr_nir
from stdnum.in_ import aadhaar as in_aadhaar
from stdnum.it import codicefiscale as it_cf

from orchestrator.reviews.checks.findings import Finding, Severity, fingerprint, redact

CHECK = "pii"
_NEWLINE_RE = re.compile("\n")
_EMAIL_AT_RE = re.compile(r"@(?P<domain>[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,24})\b")
_LOCAL_PART_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._%+-")
# Numeric runs are `\+?\(?\d[\d ().-]{8,24}\d`, found as `_numeric_spans` does: the optional `+` and
# `(` in front keep the regex engine from skipping ahead to digits, which made it ~5× slower.
_NUMERIC_RUN_RE = re.compile(r"\d[\d ().-]{8,24}\d")
_IBAN_HINT_RE = re.compile(r"\b[A-Z]{2}\d{2}[ A-Z0-9]{11}")
_CARD_RE = re.compile(r"(?<![\d-])(?:\d[ -]?){12,18}\d(?![\d-])")
_SSN_RE = re.compile(r"(?<![\d-])(\d{3})-(\d{2})-(\d{4})(?![\d-])")
_IBAN_RE = re.compile(r"\b([A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?)\b")
_PHONE_RE = re.compile(
    r"(?<![\w+])(?:\+\d{1,3}[ .-]?)?\(?\d{3}\)?[ .-]\d{3}[ .-]\d{4}(?!\d)|(?<![\w+])\+\d{10,14}(?!\d)"
)
# Addresses nobody receives mail at, used throughout documentation and tests.
_SAFE_EMAIL_DOMAINS = (
    "example.com",
    "example.org",
    "example.net",
    "example.edu",
    "test",
    "localhost",
    "invalid",
    "users.noreply.github.com",
    "noreply.github.com",
)
_IBAN_LENGTHS = {
    "DE": 22,
    "FR": 27,
    "GB": 22,
    "ES": 24,
    "IT": 27,
    "NL": 18,
    "BE": 16,
    "CH": 21,
    "AT": 20,
    "PL": 28,
    "PT": 25,
    "IE": 22,
    "SE": 24,
    "DK": 18,
    "FI": 18,
    "NO": 15,
    "LU": 20,
    "CZ": 24,
}


@dataclass(frozen=True)
class PiiHit:
    """A PII literal found in text (in memory only)."""

    kind: str
    line: int
    value: str


def luhn_ok(digits: str) -> bool:
    """Whether a digit string passes the Luhn checksum used by payment cards."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 1:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def iban_ok(iban: str) -> bool:
    """Whether an IBAN has its country's length and a valid ISO 13616 mod-97 check."""
    iban = iban.replace(" ", "").upper()
    expected = _IBAN_LENGTHS.get(iban[:2])
    if expected is not None and len(iban) != expected:
        return False
    if not 15 <= len(iban) <= 34:
        return False
    rearranged = iban[4:] + iban[:4]
    return int("".join(str(int(c, 36)) for c in rearranged)) % 97 == 1


def ssn_ok(area: str, group: str, serial: str) -> bool:
    """Whether an SSN is one the SSA could have issued (no 000/666/9xx area, no zero group or serial)."""
    return area not in ("000", "666") and not area.startswith("9") and group != "00" and serial != "0000"


def card_network(digits: str) -> str | None:
    """The card network a number belongs to by its issuer prefix (IIN) and length, or None."""
    n = len(digits)
    if n < 12 or not digits.isdigit():
        return None
    p2, p3, p4, p6 = int(digits[:2]), int(digits[:3]), int(digits[:4]), int(digits[:6])
    rules = (
        ("visa", digits[0] == "4", (13, 16, 19)),
        ("mastercard", 51 <= p2 <= 55 or 2221 <= p4 <= 2720, (16,)),
        ("amex", p2 in (34, 37), (15,)),
        ("discover", p4 == 6011 or 644 <= p3 <= 649 or p2 == 65 or 622126 <= p6 <= 622925, range(16, 20)),
        ("jcb", 3528 <= p4 <= 3589, range(16, 20)),
        ("diners", 300 <= p3 <= 305 or p2 in (36, 38, 39), range(14, 20)),
        ("unionpay", p2 == 62, range(16, 20)),
        ("maestro", p2 in (50, 56, 57, 58, 63, 67), range(12, 20)),
    )
    return next((name for name, prefix, lengths in rules if prefix and n in lengths), None)


def _card_ok(raw: str) -> bool:
    digits = re.sub(r"\D", "", raw)
    if not 13 <= len(digits) <= 19 or len(set(digits)) < 4:
        return False
    # Current issuer ranges (Mastercard's 2-series included); random ids rarely fit one and pass Luhn.
    return card_network(digits) is not None and luhn_ok(digits)


# National formats checked when a number has no country code (issue 17: UK, Germany, France, Spain,
# Italy, India, Brazil; North American numbers have their own pattern above).
PHONE_REGIONS = ("GB", "DE", "FR", "ES", "IT", "IN", "BR")
_DATE_RE = re.compile(r"(?:19|20)\d\d[-/.](?:0[1-9]|1[0-2])[-/.](?:0[1-9]|[12]\d|3[01])")
_PHONE_SEPARATED_RE = re.compile(r"\d[ ().\-/]+\d")


def international_phone(chunk: str) -> str | None:
    """A phone number in `chunk` in E.164 / international form, or in a national format of PHONE_REGIONS,
    validated by libphonenumber (number length and ranges per country); None when there is none."""
    text = chunk.strip()
    digits = re.sub(r"\D", "", text)
    if not 8 <= len(digits) <= 15 or len(set(digits)) < 4:
        return None
    if "." in text and any(len(g) < 2 for g in re.findall(r"\d+", text)):
        return None  # a version or build number (`1.22.333.4444`)
    if _DATE_RE.search(text):
        return None  # a date and maybe a time (`2024-01-15 10:30`)
    if text.startswith(("+", "00")):
        try:
            number = phonenumbers.parse("+" + text[2:] if text.startswith("00") else text, None)
        except phonenumbers.NumberParseException:
            return None
        return text if phonenumbers.is_valid_number(number) else None
    if not _PHONE_SEPARATED_RE.search(text):
        return None  # a bare run of digits is an id far more often than a national number
    for region in PHONE_REGIONS:
        for match in phonenumbers.PhoneNumberMatcher(text, region, leniency=phonenumbers.Leniency.VALID):
            if len(re.sub(r"\D", "", match.raw_string)) >= len(digits) - 1:
                return match.raw_string
    return None


def _numeric_spans(text: str) -> Iterator[tuple[int, int]]:
    r"""The (start, end) of every match of `\+?\(?\d[\d ().-]{8,24}\d` in `text`, in order.

    Found from the first digit on: the same pattern without its optional `+(` finds the same runs, and
    a match starts at most two characters before its first digit (`+(`, `+` or `(`), never inside the
    previous match (`+` cannot be part of a run).
    """
    end = 0
    for m in _NUMERIC_RUN_RE.finditer(text):
        start = m.start()
        if start - 2 >= end and text[start - 2 : start] == "+(":
            start -= 2
        elif start - 1 >= end and text[start - 1] in "+(":
            start -= 1
        end = m.end()
        yield start, end


def _line_of(text: str, pos: int, cache: list[int]) -> int:
    # Newline offsets are computed once per file, on the first hit.
    if not cache:
        cache.extend(m.start() for m in _NEWLINE_RE.finditer(text))
        cache.append(len(text))
    return bisect.bisect_left(cache, pos) + 1


def scan_pii(text: str) -> Iterator[PiiHit]:
    """Every validated PII literal in `text`."""
    newlines: list[int] = []
    if "@" in text:
        # Anchored on `@` (rare) rather than on the local part (any letter): far faster on code.
        for m in _EMAIL_AT_RE.finditer(text):
            start = m.start()
            while start > 0 and text[start - 1] in _LOCAL_PART_CHARS and m.start() - start < 64:
                start -= 1
            if start == m.start() or (start > 0 and text[start - 1] in "+-."):
                continue
            domain = m.group("domain").lower()
            if any(domain == d or domain.endswith("." + d) for d in _SAFE_EMAIL_DOMAINS):
                continue
            yield PiiHit("email", _line_of(text, start, newlines), text[start : m.end()])
    # Identifiers whose form has letters, only in files that name them.
    lower: str | None = None
    for kind, id_pattern, id_valid, labels in _TEXT_IDS:
        lower = lower if lower is not None else text.lower()
        if any(label in lower for label in labels):
            for m in id_pattern.finditer(text):
                if id_valid(m.group(0)):
                    yield PiiHit(kind, _line_of(text, m.start(), newlines), m.group(0))
    # Numbers: find digit runs long enough to matter once, then classify each run (a national identifier
    # first, so that its digits are not reported again as a phone number).
    for offset, end in _numeric_spans(text):
        chunk = text[offset:end]
        national = _chunk_national_id(chunk, text, offset + len(chunk) - len(chunk.lstrip()))
        if national:
            yield PiiHit(national[0], _line_of(text, offset, newlines), national[1])
            continue
        for pattern, kind, valid in _NUMBER_KINDS:
            number = pattern.search(chunk)
            if number and valid(number):
                yield PiiHit(kind, _line_of(text, offset + number.start(), newlines), number.group(0))
                break
        else:
            if offset and (text[offset - 1].isalnum() or text[offset - 1] in "-_/#:"):
                continue  # part of an identifier (`ORD-2024-000123`), a path or a time
            phone = international_phone(chunk)
            if phone:
                yield PiiHit("phone-number", _line_of(text, offset + max(chunk.find(phone), 0), newlines), phone)
    if _IBAN_HINT_RE.search(text):
        for m in _IBAN_RE.finditer(text):
            if iban_ok(m.group(1)):
                yield PiiHit("iban", _line_of(text, m.start(), newlines), m.group(1))


# National identifiers with a check digit. Digit-only forms are recognised among the numeric runs the
# number scan finds anyway (Aadhaar's 4-4-4 digits and a German tax id's 11 also need their name within 40
# characters before); forms with letters are searched only in files that name them. Both keep the scan cheap.
_ChunkId = tuple[str, re.Pattern[str], Callable[[str], bool], tuple[str, ...]]
_CHUNK_IDS: tuple[_ChunkId, ...] = (
    ("br-cpf", re.compile(r"\d{3}\.\d{3}\.\d{3}-\d{2}"), br_cpf.is_valid, ()),
    ("fr-nir", re.compile(r"[12] ?\d{2} ?\d{2} ?\d{2} ?\d{3} ?\d{3} ?\d{2}"), fr_nir.is_valid, ()),
    ("in-aadhaar", re.compile(r"[2-9]\d{3} ?\d{4} ?\d{4}"), in_aadhaar.is_valid, ("aadhaar", "aadhar", "uid")),
    (
        "de-steuer-id",
        re.compile(r"\d{2} ?\d{3} ?\d{3} ?\d{3}"),
        de_idnr.is_valid,
        ("steuer", "idnr", "identifikationsnummer", "tax id", "tax_id", "taxid", "tax-id"),
    ),
)
_TEXT_IDS: tuple[_ChunkId, ...] = (
    (
        "it-codice-fiscale",
        re.compile(r"\b[A-Z]{6}\d{2}[A-EHLMPR-T]\d{2}[A-Z]\d{3}[A-Z]\b"),
        it_cf.is_valid,
        ("fiscal", "codice"),
    ),
    ("es-dni", re.compile(r"(?<![\w-])\d{8}-?[A-HJ-NP-TV-Z](?![\w-])"), es_dni.is_valid, ("dni", "nif")),
    ("es-nie", re.compile(r"(?<![\w-])[XYZ]-?\d{7}-?[A-HJ-NP-TV-Z](?![\w-])"), es_nie.is_valid, ("nie", "nif")),
)
NATIONAL_ID_KINDS = tuple(kind for kind, *_ in _CHUNK_IDS + _TEXT_IDS)


def _chunk_national_id(chunk: str, text: str, offset: int) -> tuple[str, str] | None:
    value = chunk.strip()
    for kind, pattern, valid, labels in _CHUNK_IDS:
        if not pattern.fullmatch(value):
            continue
        if labels:
            before = text[max(0, offset - 40) : offset].lower()
            if not any(label in before for label in labels):
                continue
        if valid(value):
            return kind, value
    return None


_NUMBER_KINDS: tuple[tuple[re.Pattern[str], str, Callable[[re.Match[str]], bool]], ...] = (
    (_SSN_RE, "us-ssn", lambda m: ssn_ok(*m.groups())),
    (_CARD_RE, "payment-card", lambda m: _card_ok(m.group(0))),
    (_PHONE_RE, "phone-number", lambda m: len(set(re.sub(r"\D", "", m.group(0)))) >= 4),
)

_SEVERITY = {
    "email": Severity.low,
    "phone-number": Severity.low,
    "us-ssn": Severity.medium,
    "payment-card": Severity.medium,
    "iban": Severity.medium,
    **dict.fromkeys(NATIONAL_ID_KINDS, Severity.medium),
}


def pii_findings(text: str, path: str) -> list[Finding]:
    """Findings for the PII literals of one file (one per value and line)."""
    findings = []
    seen: set[tuple[str, int]] = set()
    for hit in scan_pii(text):
        if (hit.value, hit.line) in seen:
            continue
        seen.add((hit.value, hit.line))
        findings.append(
            Finding(
                check=CHECK,
                rule=f"pii-{hit.kind}",
                file=path,
                line=hit.line,
                severity=_SEVERITY[hit.kind],
                fingerprint=fingerprint(hit.value),
                preview=redact(hit.value, max_head=1),  # personal data: reveal even less
                message=f"{hit.kind.replace('-', ' ')} literal in the repository",
                extra={"kind": hit.kind},
            )
        )
    return findings
