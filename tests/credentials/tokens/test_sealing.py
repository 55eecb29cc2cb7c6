"""Sealing secrets at rest (AES-256-GCM): round trip, fresh nonces, tamper detection, purpose binding, key checks."""

from __future__ import annotations

import base64
from collections.abc import Iterator

import pytest

from orchestrator.config import get_settings
from orchestrator.credentials.tokens.sealing import seal, unseal
from orchestrator.errors import ConfigError

KEY_A = "a-test-master-key-" + "0123456789abcdef"
KEY_B = "b-test-master-key-" + "0123456789abcdef"


def _use_key(monkeypatch: pytest.MonkeyPatch, key: str) -> None:
    monkeypatch.setenv("CREDENTIAL_KEY", key)
    get_settings.cache_clear()


@pytest.fixture(autouse=True)
def key_a(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every test starts under KEY_A; later tests read their own settings again."""
    _use_key(monkeypatch, KEY_A)
    yield
    get_settings.cache_clear()


@pytest.mark.parametrize("plaintext", [b"", b"x", b"a private key\n" * 100, bytes(range(256))])
def test_round_trip(plaintext: bytes) -> None:
    """What is sealed unseals to the same bytes, under the same key and purpose."""
    sealed = seal(plaintext, purpose="signing-key:k1")
    assert sealed.startswith("v1:")
    assert unseal(sealed, purpose="signing-key:k1") == plaintext


def test_sealed_text_hides_the_plaintext_and_never_repeats() -> None:
    """A fresh nonce each time: sealing twice gives different text, neither containing the secret."""
    first, second = seal(b"the secret", purpose="p"), seal(b"the secret", purpose="p")
    assert first != second
    for sealed in (first, second):
        assert b"the secret" not in base64.urlsafe_b64decode(sealed[3:])


@pytest.mark.parametrize("position", [0, 11, 12, 20, -1])
def test_any_flipped_byte_is_detected(position: int) -> None:
    """Changing one byte of the nonce, the ciphertext or the tag makes unsealing fail, never return garbage."""
    sealed = seal(b"the secret", purpose="p")
    raw = bytearray(base64.urlsafe_b64decode(sealed[3:]))
    raw[position] ^= 0x01
    tampered = "v1:" + base64.urlsafe_b64encode(bytes(raw)).decode()
    with pytest.raises(ConfigError):
        unseal(tampered, purpose="p")


def test_purpose_is_bound() -> None:
    """A value sealed for one purpose cannot be unsealed as another (no swapping rows)."""
    sealed = seal(b"the secret", purpose="signing-key:k1")
    with pytest.raises(ConfigError):
        unseal(sealed, purpose="signing-key:k2")


def test_wrong_key_is_refused_with_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """Under another CREDENTIAL_KEY unsealing fails and says so; the right key still works afterwards."""
    sealed = seal(b"the secret", purpose="p")
    _use_key(monkeypatch, KEY_B)
    with pytest.raises(ConfigError, match="CREDENTIAL_KEY differs"):
        unseal(sealed, purpose="p")
    _use_key(monkeypatch, KEY_A)
    assert unseal(sealed, purpose="p") == b"the secret"


def test_unknown_format_is_refused() -> None:
    """A value without the version prefix is not guessed at."""
    sealed = seal(b"the secret", purpose="p")
    with pytest.raises(ConfigError, match="unknown format"):
        unseal(sealed[3:], purpose="p")


def test_short_master_key_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """A CREDENTIAL_KEY under 16 characters is a configuration error, not a weak key."""
    _use_key(monkeypatch, "too-short")
    with pytest.raises(ConfigError, match="at least 16"):
        seal(b"x", purpose="p")
