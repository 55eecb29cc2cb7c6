"""Signing keys of the token service: Ed25519 (JWS `EdDSA`), identified by `kid`, rotatable.

Keys live in the `signing_key` table so every API process signs and verifies with the same set;
the private half is sealed with CREDENTIAL_KEY (see `sealing`).

Rotation pre-publishes: the new key is `next` — published by every API process within
SIGNING_KEYS_REFRESH_SECONDS — and signs only from its `activates_at`, `publish_delay()` later, once
every verifier's cached JWKS (JWKS_MAX_AGE_SECONDS) has had time to include it. Until then the old
key keeps signing. The first process that signs after `activates_at` promotes the new key to
`active` and the old one to `previous` (dropping its private half); a previous key keeps verifying
until every token it signed has expired, and a later rotation retires it.

Each process keeps a `KeyRing` cache, reloaded every SIGNING_KEYS_REFRESH_SECONDS (by the JWKS
route, and in the background by introspection); verification otherwise reads the database only
when a token names a `kid` the cache does not know, at most once every few seconds.
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
from sqlmodel import Session, col, or_, select

from orchestrator.audit import service as audit
from orchestrator.audit.actions import AuditAction
from orchestrator.catalog.policy import get_policy
from orchestrator.clock import utcnow
from orchestrator.config import get_settings
from orchestrator.credentials.models import KeyStatus, SigningKey
from orchestrator.credentials.tokens.sealing import seal, unseal
from orchestrator.db import session_scope

ALGORITHM = "EdDSA"
# Clock skew tolerated between processes when deciding that a previous key may stop verifying.
SKEW = timedelta(minutes=5)
UNKNOWN_KID_RETRY_SECONDS = 5.0
_SIGNING = (KeyStatus.active, KeyStatus.next)


def refresh_seconds() -> float:
    """How often a process reloads its keys (so a rotation is published within that)."""
    return get_settings().signing_keys_refresh_seconds


def publish_delay() -> timedelta:
    """How long a new key is published before it signs: the longest JWKS cache time, plus two reload
    intervals (the publishing process's and a verifier's own unknown-`kid` retry)."""
    settings = get_settings()
    return timedelta(seconds=settings.jwks_max_age_seconds + 2 * settings.signing_keys_refresh_seconds)


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
    activates_at: datetime | None = None

    @property
    def signs_from(self) -> datetime:
        """When this key starts signing (a key made without pre-publication signs from its creation)."""
        return self.activates_at or self.created_at

    def verifies_at(self, now: datetime) -> bool:
        """Next, active and previous keys verify until `verify_until` (set once a newer key is coming)."""
        if self.status is KeyStatus.retired:
            return False
        return self.verify_until is None or now <= self.verify_until

    def signs_at(self, now: datetime) -> bool:
        """Whether this key may sign at `now`: it holds its private half and its time has come."""
        return self.status in _SIGNING and self.private_key is not None and self.signs_from <= now

    def jwk(self) -> dict[str, Any]:
        """The public key as a JWK (RFC 8037 OKP)."""
        jwk: dict[str, Any] = OKPAlgorithm.to_jwk(self.public_key, as_dict=True)
        return {**jwk, "kid": self.kid, "alg": ALGORITHM, "use": "sig"}


def _load(row: SigningKey) -> LoadedKey:
    public = serialization.load_pem_public_key(row.public_pem.encode("ascii"))
    assert isinstance(public, Ed25519PublicKey)
    private = None
    if row.private_sealed and row.status in _SIGNING:
        loaded = serialization.load_pem_private_key(unseal(row.private_sealed, purpose=_purpose(row.kid)), None)
        assert isinstance(loaded, Ed25519PrivateKey)
        private = loaded
    return LoadedKey(
        row.kid, KeyStatus(row.status), public, private, row.created_at, row.verify_until, row.activates_at
    )


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
        """True when the cache is older than `refresh_seconds()` (never loaded counts as stale)."""
        return time.monotonic() - self._loaded_at > refresh_seconds()

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

    def signing_key(self, now: datetime | None = None) -> LoadedKey | None:
        """The key that signs at `now`: of those whose time has come, the newest."""
        now = now or utcnow()
        ready = [k for k in self._keys.values() if k.signs_at(now)]
        return max(ready, key=lambda k: k.created_at) if ready else None

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


def _promote_due(session: Session, now: datetime) -> list[str]:
    """Make the `next` keys whose time has come active, and older active keys previous; the kids promoted.

    Rows are locked so two processes signing at that moment promote once (on PostgreSQL the second
    waits, then finds nothing left to do; SQLite write transactions are exclusive already).
    """
    due = session.exec(
        select(SigningKey)
        .where(SigningKey.status == KeyStatus.next, col(SigningKey.activates_at) <= now)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).all()
    if not due:
        return []
    for row in due:
        row.status = KeyStatus.active
        session.add(row)
    active = session.exec(
        select(SigningKey)
        .where(SigningKey.status == KeyStatus.active)
        .order_by(col(SigningKey.created_at).desc())
        .with_for_update()
        .execution_options(populate_existing=True)
    ).all()
    for row in active[1:]:
        # Nothing signs with it again (every process picks the newest due key), so its private half goes.
        row.status, row.private_sealed = KeyStatus.previous, None
        row.verify_until = row.verify_until or now + max_token_lifetime() + SKEW
        session.add(row)
    session.flush()
    promoted = [row.kid for row in due]
    audit.record(
        session,
        actor="system",
        action=AuditAction.credential_key_activated,
        data={"kids": promoted, "previous": [row.kid for row in active[1:]]},
    )
    return promoted


def ensure_signing_key(session: Session) -> LoadedKey:
    """The key to sign with, creating the first one in the caller's transaction if there is none.

    One small query per call checks that the cached key is still the newest one whose time has
    come, so a rotation made by another process takes effect for signing when it is due, and the
    first signer after that moment promotes the new key.
    """
    ring = get_keyring()
    now = utcnow()
    newest = session.exec(
        select(SigningKey.kid, SigningKey.status)
        .where(
            col(SigningKey.status).in_(_SIGNING),
            or_(col(SigningKey.activates_at).is_(None), col(SigningKey.activates_at) <= now),
        )
        .order_by(col(SigningKey.created_at).desc())
        .limit(1)
    ).first()
    key = ring.signing_key(now)
    if key is not None and newest is not None and (key.kid, newest[1]) == (newest[0], KeyStatus.active):
        if not ring.stale:
            return key
    if newest is not None and newest[1] is KeyStatus.next:
        _promote_due(session, now)
    ring.refresh(session)
    key = ring.signing_key(now)
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
    """What a rotation did: the new key and when it signs, the keys it supersedes (and until when they
    verify), and the keys it retired."""

    new_kid: str
    activates_at: datetime
    previous: dict[str, datetime]
    retired: list[str]


def rotate(session: Session, *, actor: str, now: datetime | None = None) -> Rotation:
    """Publish a new key that signs after `publish_delay()`; the keys it supersedes keep signing until
    then and verify until their last token has expired, after which a later rotation retires them."""
    now = now or utcnow()
    _promote_due(session, now)
    retired = []
    for row in session.exec(select(SigningKey).where(SigningKey.status == KeyStatus.previous)).all():
        if row.verify_until is not None and row.verify_until < now:
            row.status, row.retired_at, row.private_sealed = KeyStatus.retired, now, None
            session.add(row)
            retired.append(row.kid)
    activates_at = now + publish_delay()
    verify_until = activates_at + max_token_lifetime() + SKEW
    previous = {}
    rows = session.exec(
        select(SigningKey).where(col(SigningKey.status).in_(_SIGNING)).order_by(col(SigningKey.created_at))
    ).all()
    for row in rows:
        row.verify_until = verify_until
        session.add(row)
        previous[row.kid] = verify_until
    new = _new_row()
    new.status, new.activates_at = KeyStatus.next, activates_at
    session.add(new)
    session.flush()
    audit.record(
        session,
        actor=actor,
        action=AuditAction.credential_keys_rotated,
        data={
            "new_kid": new.kid,
            "activates_at": activates_at.isoformat(),
            "previous": list(previous),
            "retired": retired,
        },
    )
    get_keyring().refresh(session)
    return Rotation(new_kid=new.kid, activates_at=activates_at, previous=previous, retired=retired)
