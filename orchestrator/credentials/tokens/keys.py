"""Signing keys of the token service: Ed25519 (JWS `EdDSA`), identified by `kid`, rotatable.

Keys live in the `signing_key` table so every API process signs and verifies with the same set;
the private half is sealed with CREDENTIAL_KEY (see `sealing`). Rotation makes a new key active
and keeps the old one verifying (`previous`) until every token it signed has expired; a later
rotation retires it and drops its private half.

Each process keeps a `KeyRing` cache: verification never reads the database except when a token
names a `kid` the cache does not know (another process rotated), at most once every few seconds.
"""

from __future__ import annotations

import secrets
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from jwt.algorithms import OKPAlgorithm
from sqlmodel import Session, col, select

from orchestrator.audit import service as audit
from orchestrator.audit.actions import AuditAction
from orchestrator.catalog.policy import get_policy
from orchestrator.clock import utcnow
from orchestrator.credentials.models import KeyStatus, SigningKey
from orchestrator.credentials.tokens.sealing import seal, unseal
from orchestrator.db import session_scope

ALGORITHM = "EdDSA"
# Clock skew tolerated between processes when deciding that a previous key may stop verifying.
SKEW = timedelta(minutes=5)
REFRESH_SECONDS = 300.0
UNKNOWN_KID_RETRY_SECONDS = 5.0


def _purpose(kid: str) -> str:
    return f"signing-key:{kid}"


@dataclass(frozen=True)
class LoadedKey:
    """One key as the process uses it."""

    kid: str
    status: KeyStatus
    public_key: Ed25519PublicKey
    private_key: Ed25519PrivateKey | None
    created_at: datetime
    verify_until: datetime | None

    def verifies_at(self, now: datetime) -> bool:
        """Active keys always verify; previous keys until `verify_until`."""
        if self.status is KeyStatus.active:
            return True
        return self.status is KeyStatus.previous and (self.verify_until is None or now <= self.verify_until)

    def jwk(self) -> dict[str, Any]:
        """The public key as a JWK (RFC 8037 OKP)."""
        jwk: dict[str, Any] = OKPAlgorithm.to_jwk(self.public_key, as_dict=True)
        return {**jwk, "kid": self.kid, "alg": ALGORITHM, "use": "sig"}


def _load(row: SigningKey) -> LoadedKey:
    public = serialization.load_pem_public_key(row.public_pem.encode("ascii"))
    assert isinstance(public, Ed25519PublicKey)
    private = None
    if row.private_sealed and row.status is KeyStatus.active:
        loaded = serialization.load_pem_private_key(unseal(row.private_sealed, purpose=_purpose(row.kid)), None)
        assert isinstance(loaded, Ed25519PrivateKey)
        private = loaded
    return LoadedKey(row.kid, KeyStatus(row.status), public, private, row.created_at, row.verify_until)


class KeyRing:
    """The process's cache of signing and verification keys."""

    def __init__(self) -> None:
        self._keys: dict[str, LoadedKey] = {}
        self._loaded_at = 0.0
        self._lock = threading.Lock()
        self._refresh_lock = threading.Lock()

    def refresh(self, session: Session | None = None) -> None:
        """Reload every non-retired key from the database (the caller's session when given)."""
        if session is None:
            with session_scope(write=False) as own:
                self.refresh(own)
            return
        rows = session.exec(select(SigningKey).where(SigningKey.status != KeyStatus.retired)).all()
        keys = {row.kid: _load(row) for row in rows}
        with self._lock:
            self._keys = keys
            self._loaded_at = time.monotonic()

    @property
    def stale(self) -> bool:
        """True when the cache is older than REFRESH_SECONDS (never loaded counts as stale)."""
        return time.monotonic() - self._loaded_at > REFRESH_SECONDS

    def cached(self, kid: str) -> LoadedKey | None:
        """The key named `kid` from the cache only (the hot path: no I/O)."""
        return self._keys.get(kid)

    def verification_key(self, kid: str) -> LoadedKey | None:
        """The key named `kid`, reloading if this process has not seen it (at most every few seconds).

        Requests that miss while a reload runs wait for it instead of failing, so a rotation done
        by another process is picked up without refusing the first tokens of the new key.
        """
        key = self._keys.get(kid)
        if key is not None:
            return key
        with self._refresh_lock:
            key = self._keys.get(kid)
            recent = self._loaded_at and time.monotonic() - self._loaded_at < UNKNOWN_KID_RETRY_SECONDS
            if key is None and not recent:
                self.refresh()
                key = self._keys.get(kid)
        return key

    def signing_key(self) -> LoadedKey | None:
        """The newest active key holding its private half, if the cache has one."""
        active = [k for k in self._keys.values() if k.status is KeyStatus.active and k.private_key is not None]
        return max(active, key=lambda k: k.created_at) if active else None

    def published(self, now: datetime | None = None) -> list[LoadedKey]:
        """Keys that still verify, newest first (what the JWKS endpoint shows)."""
        now = now or utcnow()
        live = [k for k in self._keys.values() if k.verifies_at(now)]
        return sorted(live, key=lambda k: k.created_at, reverse=True)


_ring = KeyRing()


def get_keyring() -> KeyRing:
    """The process's key ring."""
    return _ring


def reset_keyring() -> None:
    """Forget every cached key (tests that switch databases)."""
    global _ring
    _ring = KeyRing()


def _new_row() -> SigningKey:
    private = Ed25519PrivateKey.generate()
    kid = utcnow().strftime("%Y%m%d") + "-" + secrets.token_hex(4)
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    public = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return SigningKey(
        kid=kid,
        algorithm=ALGORITHM,
        public_pem=public.decode("ascii"),
        private_sealed=seal(pem, purpose=_purpose(kid)),
        status=KeyStatus.active,
    )


def ensure_signing_key(session: Session) -> LoadedKey:
    """The key to sign with, creating the first one in the caller's transaction if there is none.

    One small query per call checks that the cached key is still the newest active one, so a
    rotation made by another process takes effect for signing at once.
    """
    ring = get_keyring()
    newest = session.exec(
        select(SigningKey.kid)
        .where(SigningKey.status == KeyStatus.active)
        .order_by(col(SigningKey.created_at).desc())
        .limit(1)
    ).first()
    key = ring.signing_key()
    if key is not None and key.kid == newest and not ring.stale:
        return key
    ring.refresh(session)
    key = ring.signing_key()
    if key is None:
        row = _new_row()
        session.add(row)
        session.flush()
        audit.record(session, actor="system", action=AuditAction.credential_key_created, data={"kid": row.kid})
        ring.refresh(session)
        key = ring.signing_key()
    assert key is not None
    return key


def max_token_lifetime() -> timedelta:
    """The longest lifetime any data class allows an exchanged token."""
    return timedelta(minutes=max(rules.token_ttl_minutes for rules in get_policy().data_classes.values()))


@dataclass(frozen=True)
class Rotation:
    """What a rotation did."""

    new_kid: str
    previous: dict[str, datetime]
    retired: list[str]


def rotate(session: Session, *, actor: str, now: datetime | None = None) -> Rotation:
    """Make a new active key; older active keys verify until their last token expires, then retire."""
    now = now or utcnow()
    retired = []
    for row in session.exec(select(SigningKey).where(SigningKey.status == KeyStatus.previous)).all():
        if row.verify_until is not None and row.verify_until < now:
            row.status, row.retired_at, row.private_sealed = KeyStatus.retired, now, None
            session.add(row)
            retired.append(row.kid)
    previous = {}
    verify_until = now + max_token_lifetime() + SKEW
    rows = session.exec(
        select(SigningKey).where(SigningKey.status == KeyStatus.active).order_by(col(SigningKey.created_at))
    ).all()
    for row in rows:
        # Nothing signs with a previous key again, so its private half can go now.
        row.status, row.verify_until, row.private_sealed = KeyStatus.previous, verify_until, None
        session.add(row)
        previous[row.kid] = verify_until
    new = _new_row()
    session.add(new)
    session.flush()
    audit.record(
        session,
        actor=actor,
        action=AuditAction.credential_keys_rotated,
        data={"new_kid": new.kid, "previous": list(previous), "retired": retired},
    )
    get_keyring().refresh(session)
    return Rotation(new_kid=new.kid, previous=previous, retired=retired)
