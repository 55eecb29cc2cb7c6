"""Reversible redaction: the review's detectors, stable placeholders, restoration across any split."""

from __future__ import annotations

import json
import secrets
import string

import pytest

from orchestrator.llm.redaction import StreamRestorer, Vault, detect, mask_json, scan_json
from orchestrator.reviews.checks.pii import scan_pii
from orchestrator.reviews.checks.secrets import scan_text

ALL = ["email", "phone", "card", "iban", "national_id", "secret"]


def _github_token() -> str:
    return "ghp_" + "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(36))


def test_the_same_values_the_review_finds_are_masked() -> None:
    token = _github_token()
    text = f"mail ann.lee@{'contoso'}.io, ssn 123-45-6789, card 4539 1488 0343 6467, key {token}"
    found = detect(text, ALL)
    assert sorted(d.detector for d in found) == ["card", "email", "national_id", "secret"]
    # One definition of each detector: exactly the review's hits.
    assert {d.value for d in found} == {h.value for h in scan_pii(text)} | {h.value for h in scan_text(text)}
    vault = Vault()
    masked = vault.mask(text, found)
    assert masked == "mail <EMAIL_1>, ssn <NATIONAL_ID_1>, card <CARD_1>, key <SECRET_1>"
    assert vault.restore(masked) == text


def test_only_enabled_detectors_apply_and_repeats_share_a_placeholder() -> None:
    email = "bo@" + "fabrikam.org"
    body = {
        "model": "gpt-4o-mini",
        "messages": [
            {"role": "user", "content": f"{email} wrote to {email}"},
            {"role": "user", "content": [{"type": "text", "text": f"again {email}, card 4539 1488 0343 6467"}]},
        ],
    }
    vault = Vault()
    masked = mask_json(body, vault, ["email"])
    assert masked["messages"][0]["content"] == "<EMAIL_1> wrote to <EMAIL_1>"
    assert masked["messages"][1]["content"][0]["text"] == "again <EMAIL_1>, card 4539 1488 0343 6467"
    assert dict(vault.replaced) == {"email": 3}
    assert masked["model"] == "gpt-4o-mini"
    assert [d.detector for d in scan_json(body, ["card"])] == ["card"]


@pytest.mark.parametrize("size", [1, 2, 3, 5, 7, 11])
def test_stream_restores_placeholders_split_anywhere(size: int) -> None:
    vault = Vault()
    original = f"to ann@{'contoso'}.io and <b>bold</b> a < b, then ann@{'contoso'}.io <"
    masked = vault.mask(original, detect(original, ALL))
    assert "<EMAIL_1>" in masked
    restorer = StreamRestorer(vault)
    pieces = [restorer.feed(masked[i : i + size]) for i in range(0, len(masked), size)]
    assert "".join(pieces) + restorer.flush() == original
    assert not any("<EMAIL" in p for p in pieces)


@pytest.mark.parametrize("size", [1, 2, 3, 5, 8])
def test_values_restored_into_json_text_stay_json(size: int) -> None:
    """In tool-call arguments (JSON text, streamed in pieces) a value with a quote, a backslash or a
    non-ASCII letter goes back JSON-escaped, so the app parses exactly the value."""
    vault = Vault()
    value = 'pa"ss\\wörd ' + secrets.token_hex(4)
    token = vault.placeholder("secret", value)
    document = '{"note": "use ' + token + " twice: " + token + '"}'
    restorer = StreamRestorer(vault, json_text=True)
    streamed = "".join(restorer.feed(document[i : i + size]) for i in range(0, len(document), size)) + restorer.flush()
    assert json.loads(streamed) == {"note": f"use {value} twice: {value}"}
    assert vault.restore_json({"arguments": document}) == {"arguments": streamed}
    assert vault.restore_json({"content": token}) == {"content": value}  # plain text: the value as it is


def test_numeric_runs_are_found_as_their_regex_finds_them() -> None:
    """The PII scan's fast numeric-run search matches `\\+?\\(?\\d[\\d ().-]{8,24}\\d` exactly (spans, order)."""
    import random
    import re

    from orchestrator.reviews.checks.pii import _numeric_spans

    pattern = re.compile(r"\+?\(?\d[\d ().-]{8,24}\d")
    rng = random.Random(15)
    texts = ["+(415) 555-0100", "+1 415 555 0100", "(415) 555 0100 +44 20 7946 0958", "x" + "1" * 60, "12345678 (9012"]
    texts += ["".join(rng.choice("0123456789 ().-+(a\n") for _ in range(rng.randint(0, 50))) for _ in range(5000)]
    for text in texts:
        assert list(_numeric_spans(text)) == [m.span() for m in pattern.finditer(text)], repr(text)
