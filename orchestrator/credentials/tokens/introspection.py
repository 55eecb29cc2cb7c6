"""Token introspection (RFC 7662) for the API gateway, built for throughput.

The hot path does no I/O: a token seen before is answered from a small cache of verified claims
(bounded, an entry never outliving its token's `exp`, its key re-checked on each hit); a new one
is checked with the process's cached public keys, expiry and issuer locally; revocation is a
lookup in the process's copy of the list that Redis pub/sub keeps current (`revocation_feed`),
or one Redis round trip while that copy may be stale (not synced yet, Redis unheard for longer
than the feed's staleness bound). The database is read
only when a token names a key this process has not loaded yet (rate-limited), when Redis is not
configured (the embedded default) or unreachable, and when Redis lost its copy of the list.
Anything that does not check out — garbage, a foreign or retired key, expired, revoked, unknown —
is simply `{"active": false}`.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import re
import threading
import time
from typing import Any

from cryptography.exceptions import InvalidSignature
from starlette.concurrency import run_in_threadpool

from orchestrator.clock import utcnow
from orchestrator.credentials.tokens.builtin import token_issuer
from orchestrator.credentials.tokens.keys import ALGORITHM, LoadedKey, get_keyring
from orchestrator.credentials.tokens.revocation import get_revocation_list, revoked_in_ledger
from orchestrator.credentials.tokens.revocation_feed import current_feed
from orchestrator.credentials.usage import schedule_use
from orchestrator.db import session_scope
from orchestrator.logs import get_logger

INACTIVE: dict[str, Any] = {"active": False}
_REQUIRED = ["exp", "iat", "jti", "sub", "aud"]
_CLAIMS = ("scope", "client_id", "sub", "aud", "iss", "exp", "iat", "nbf", "jti")
_SEGMENT = re.compile(r"[A-Za-z0-9_-]+")
LEEWAY = 30  # seconds of clock skew tolerated on `nbf`; never on `exp`
_refreshing = threading.Lock()
CLAIMS_CACHE_SIZE = 10_000
# token string → (its verified claims, the kid that signed it, its exp): a hit skips the base64,
# JSON and Ed25519 work (most of a call's CPU). Tokens are short-lived and an app reuses one for
# its lifetime, so a few thousand entries cover every app in use.
_verified: dict[str, tuple[dict[str, Any], str, float]] = {}
log = get_logger(__name__)


def _revoked_from_ledger(jti: str) -> bool:
    revocations = get_revocation_list()
    with session_scope(write=False) as session:
        if revocations.needs_reload():
            revocations.reload(session)
        return revoked_in_ledger(session, jti)


def _refresh_keys_in_background() -> None:
    if not _refreshing.acquire(blocking=False):
        return
    try:
        get_keyring().refresh()
    except Exception as exc:  # the cached keys stay in use; the next request tries again
        log.warning("could not refresh signing keys", error=str(exc))
    finally:
        _refreshing.release()


def _b64(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def _split(token: str) -> tuple[dict[str, Any], bytes, bytes, bytes] | None:
    """Header, signing input, payload bytes and signature of a compact JWS, or None if malformed."""
    parts = token.split(".")
    if len(parts) != 3 or not all(_SEGMENT.fullmatch(p) for p in parts):
        return None
    try:
        header = json.loads(_b64(parts[0]))
        payload, signature = _b64(parts[1]), _b64(parts[2])
    except (ValueError, binascii.Error):
        return None
    if not isinstance(header, dict):
        return None
    return header, f"{parts[0]}.{parts[1]}".encode("ascii"), payload, signature


def verify(token: str, key: LoadedKey, *, now: float | None = None) -> dict[str, Any] | None:
    """The claims of a token this service signed with `key`, or None (bad signature, expired, foreign).

    A narrow JWS check for our own tokens only (EdDSA, no `crit`), a few times faster than the
    general-purpose decoder on the hot path.
    """
    split = _split(token)
    if split is None:
        return None
    header, signing_input, payload, signature = split
    if header.get("alg") != ALGORITHM or header.get("kid") != key.kid or "crit" in header:
        return None
    try:
        key.public_key.verify(signature, signing_input)
        claims = json.loads(payload)
    except (InvalidSignature, ValueError):
        return None
    if not isinstance(claims, dict) or any(name not in claims for name in _REQUIRED):
        return None
    now = time.time() if now is None else now
    exp, nbf = claims["exp"], claims.get("nbf", 0)
    if not isinstance(exp, int | float) or not isinstance(nbf, int | float) or exp <= now or nbf > now + LEEWAY:
        return None
    if claims.get("iss") != token_issuer():
        return None
    return claims


def _cached_claims(token: str) -> dict[str, Any] | None:
    """The claims of a token verified before, if it has not expired and its key still verifies."""
    entry = _verified.get(token)
    if entry is None:
        return None
    claims, kid, exp = entry
    key = get_keyring().cached(kid)
    if exp <= time.time() or key is None or not key.verifies_at(utcnow()) or claims.get("iss") != token_issuer():
        _verified.pop(token, None)
        return None
    return claims


def _remember(token: str, claims: dict[str, Any], kid: str) -> None:
    if len(_verified) >= CLAIMS_CACHE_SIZE:
        now = time.time()
        for old in [t for t, (_, _, exp) in _verified.items() if exp <= now]:
            _verified.pop(old, None)
        while len(_verified) >= CLAIMS_CACHE_SIZE:  # still full: drop the oldest entries
            _verified.pop(next(iter(_verified)), None)
    _verified[token] = (claims, kid, float(claims["exp"]))


def forget_verified() -> None:
    """Empty the verified-claims cache (tests)."""
    _verified.clear()


async def _claims(token: str) -> dict[str, Any] | None:
    """The verified claims of `token`, or None (malformed, foreign or retired key, bad signature, expired)."""
    ring = get_keyring()
    cached = _cached_claims(token)
    if cached is not None:
        if ring.stale:  # a retired key must still reach this process while its tokens are cached
            asyncio.get_running_loop().run_in_executor(None, _refresh_keys_in_background)
        return cached
    split = _split(token)
    kid = split[0].get("kid") if split else None
    if not isinstance(kid, str):
        return None
    key = ring.cached(kid)
    if key is None:
        key = await run_in_threadpool(ring.verification_key, kid)
    elif ring.stale:
        asyncio.get_running_loop().run_in_executor(None, _refresh_keys_in_background)
    if key is None or not key.verifies_at(utcnow()):
        return None
    claims = verify(token, key)
    if claims is not None:
        _remember(token, claims, key.kid)
    return claims


async def introspect(token: str) -> dict[str, Any]:
    """The RFC 7662 answer for `token`: its claims with `active: true`, or `{"active": false}`."""
    claims = await _claims(token)
    if claims is None:
        return INACTIVE
    feed = current_feed()
    revoked = feed.revoked(claims["jti"]) if feed is not None else None
    if revoked is None:
        revoked = await get_revocation_list().check(claims["jti"])
    if revoked is None:
        revoked = await run_in_threadpool(_revoked_from_ledger, claims["jti"])
    if revoked:
        return INACTIVE
    if isinstance(claims["aud"], str):
        schedule_use(claims["aud"])
    answer = {name: claims[name] for name in _CLAIMS if name in claims}
    return {"active": True, **answer, "token_type": "Bearer"}
