"""Sealing secrets at rest: AES-256-GCM under a key from CREDENTIAL_KEY (or var/credential.key).

Used for the private halves of signing keys and for the few provider secrets that are needed to
revoke a credential (a Slack token revokes itself). Every process that shares the database must
share the key: set CREDENTIAL_KEY in production; the generated file only suits one host.
"""

from __future__ import annotations

import base64
import os
import secrets
import threading
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from orchestrator.config import get_settings
from orchestrator.errors import ConfigError

_PREFIX = "v1:"
_cache: dict[str, bytes] = {}
_lock = threading.Lock()


def _read_or_create_key_file(path: Path) -> str:
    if path.exists():
        return path.read_text(encoding="ascii").strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    value = secrets.token_urlsafe(32)
    # O_EXCL: when two processes start together, one creates the file and the other reads it.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text(encoding="ascii").strip()
    with os.fdopen(fd, "w", encoding="ascii") as handle:
        handle.write(value + "\n")
    return value


def _master_secret() -> str:
    configured = get_settings().credential_key
    if configured is not None:
        value = configured.get_secret_value()
        if len(value) < 16:
            raise ConfigError("CREDENTIAL_KEY: must be at least 16 characters (32 random bytes recommended)")
        return value
    return _read_or_create_key_file(get_settings().credential_key_file)


def _key() -> bytes:
    master = _master_secret()
    with _lock:
        derived = _cache.get(master)
        if derived is None:
            derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"orchestrator-credentials").derive(
                master.encode("utf-8")
            )
            _cache.clear()
            _cache[master] = derived
        return derived


def seal(plaintext: bytes, *, purpose: str) -> str:
    """Encrypt `plaintext`; `purpose` is bound as associated data so a sealed value cannot be swapped."""
    nonce = os.urandom(12)
    sealed = AESGCM(_key()).encrypt(nonce, plaintext, purpose.encode("utf-8"))
    return _PREFIX + base64.urlsafe_b64encode(nonce + sealed).decode("ascii")


def unseal(value: str, *, purpose: str) -> bytes:
    """Decrypt a value made by `seal`; ConfigError when the key is not the one it was sealed with."""
    if not value.startswith(_PREFIX):
        raise ConfigError("sealed value in an unknown format")
    raw = base64.urlsafe_b64decode(value[len(_PREFIX) :])
    try:
        return AESGCM(_key()).decrypt(raw[:12], raw[12:], purpose.encode("utf-8"))
    except InvalidTag:
        raise ConfigError(
            "cannot unseal a stored secret: CREDENTIAL_KEY differs from the key it was sealed with"
        ) from None
