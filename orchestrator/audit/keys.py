"""The Ed25519 key that signs audit checkpoints: AUDIT_CHECKPOINT_KEY, or a key file made on first use.

The key never lives in the database: a checkpoint exists to catch someone who can rewrite the
database, so they must not be able to re-sign one too. It comes from the AUDIT_CHECKPOINT_KEY
setting (base64 of the 32-byte seed, or a PKCS#8 PEM), else from `var/audit-checkpoint.key`, a
PEM file (mode 0600) the first checkpoint writer creates. The file is not sealed: sealing helps a
secret stored next to the data it guards, and the only seal at hand (CREDENTIAL_KEY) would sit on
the same host and make the audit layer depend on credentials. Every process that writes or
verifies checkpoints must see the same key: set AUDIT_CHECKPOINT_KEY in production.

A key is named by its `key_id`, the first 16 hex digits of SHA-256 over the raw public key, so an
auditor who holds the public key (`orchestrator audit public-key`) can check both offline.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from orchestrator.config import DEFAULT_VAR_DIR, Settings, get_settings
from orchestrator.errors import ConfigError

KEY_FILE = DEFAULT_VAR_DIR / "audit-checkpoint.key"


@dataclass(frozen=True)
class CheckpointKey:
    """A checkpoint key as a process uses it: the public half always, the private half to sign."""

    key_id: str
    public_key: Ed25519PublicKey
    private_key: Ed25519PrivateKey | None
    source: str

    def public_pem(self) -> str:
        """The public key as a SubjectPublicKeyInfo PEM (what an auditor keeps)."""
        raw = self.public_key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        return raw.decode("ascii")


def key_id_of(public_key: Ed25519PublicKey) -> str:
    """The first 16 hex digits of SHA-256 over the raw 32-byte public key."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def _b64(text: str) -> bytes | None:
    compact = "".join(text.split())
    try:
        return base64.urlsafe_b64decode(compact.replace("+", "-").replace("/", "_") + "=" * (-len(compact) % 4))
    except (binascii.Error, ValueError):
        return None


def parse_private_key(text: str, *, source: str) -> Ed25519PrivateKey:
    """An Ed25519 private key from a PKCS#8 PEM or base64 of its 32-byte seed; ConfigError naming `source`."""
    text = text.strip()
    if text.startswith("-----BEGIN"):
        try:
            loaded = serialization.load_pem_private_key(text.encode("ascii"), password=None)
        except (ValueError, TypeError):
            raise ConfigError(f"{source}: not a readable unencrypted PEM private key") from None
        if not isinstance(loaded, Ed25519PrivateKey):
            raise ConfigError(f"{source}: the PEM key is not an Ed25519 key")
        return loaded
    seed = _b64(text)
    if seed is None or len(seed) != 32:
        raise ConfigError(f"{source}: expected base64 of a 32-byte Ed25519 seed, or a PEM private key")
    return Ed25519PrivateKey.from_private_bytes(seed)


def parse_public_key(text: str, *, source: str) -> Ed25519PublicKey:
    """An Ed25519 public key from a PEM or base64 of its raw 32 bytes; ConfigError naming `source`."""
    text = text.strip()
    if text.startswith("-----BEGIN"):
        try:
            loaded = serialization.load_pem_public_key(text.encode("ascii"))
        except (ValueError, TypeError):
            raise ConfigError(f"{source}: not a readable PEM public key") from None
        if not isinstance(loaded, Ed25519PublicKey):
            raise ConfigError(f"{source}: the PEM key is not an Ed25519 key")
        return loaded
    raw = _b64(text)
    if raw is None or len(raw) != 32:
        raise ConfigError(f"{source}: expected a PEM public key or base64 of a raw 32-byte Ed25519 key")
    return Ed25519PublicKey.from_public_bytes(raw)


def _private(private_key: Ed25519PrivateKey, source: str) -> CheckpointKey:
    public = private_key.public_key()
    return CheckpointKey(key_id_of(public), public, private_key, source)


def _create_key_file(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pem = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    # Written whole under a temporary name, then linked into place: link fails when the file exists,
    # so of two processes starting together one key wins and no reader ever sees half a file.
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".audit-key-")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(pem)
        os.chmod(tmp, 0o600)
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass
    finally:
        os.unlink(tmp)


def checkpoint_key(*, create: bool, settings: Settings | None = None) -> CheckpointKey | None:
    """The configured key: AUDIT_CHECKPOINT_KEY, else the key file (made now when `create`), else None.

    Verifiers pass `create=False`: a key made on the spot could only disown every earlier checkpoint.
    """
    configured = (settings or get_settings()).audit_checkpoint_key
    if configured is not None:
        return _private(parse_private_key(configured.get_secret_value(), source="AUDIT_CHECKPOINT_KEY"), "setting")
    path = KEY_FILE
    if not path.exists():
        if not create:
            return None
        _create_key_file(path)
    try:
        text = path.read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read the audit checkpoint key {path}: {exc}") from None
    return _private(parse_private_key(text, source=str(path)), str(path))


def public_key_from_file(path: Path) -> CheckpointKey:
    """A verification-only key from a file holding the public key (PEM or base64)."""
    try:
        text = path.read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read the public key {path}: {exc}") from None
    public = parse_public_key(text, source=str(path))
    return CheckpointKey(key_id_of(public), public, None, str(path))
