"""The introspection fast path (`verify`) against PyJWT's `jwt.decode` on the same tokens: the same verdicts.

`verify` is a narrow JWS check for the service's own EdDSA tokens; PyJWT is the general-purpose
reference. Each token is judged by both; they must agree. Audience is the one deliberate difference:
`verify` leaves it to the caller (the introspection answer carries `aud`), so it is compared against
PyJWT told to expect the token's own audience, and the wrong audience is shown to reach the caller.
"""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from orchestrator.credentials.models import KeyStatus
from orchestrator.credentials.tokens.builtin import token_issuer
from orchestrator.credentials.tokens.introspection import verify
from orchestrator.credentials.tokens.keys import ALGORITHM, LoadedKey

AUDIENCE = "expense-helper"
REQUIRED = ["exp", "iat", "jti", "sub", "aud"]


@pytest.fixture
def key() -> LoadedKey:
    """A fresh active signing key, as the keyring would hold it."""
    private = Ed25519PrivateKey.generate()
    return LoadedKey("k-test", KeyStatus.active, private.public_key(), private, datetime.now(UTC), None)


def _claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    claims = {
        "iss": token_issuer(),
        "sub": "service:expense-helper",
        "aud": AUDIENCE,
        "scope": "sheets:read",
        "iat": now,
        "exp": now + 300,
        "jti": uuid.uuid4().hex,
    }
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


def _sign(claims: dict[str, Any], private: Any, kid: str = "k-test", alg: str = ALGORITHM) -> str:
    return jwt.encode(claims, private, algorithm=alg, headers={"kid": kid})


def _pyjwt_accepts(token: str, key: LoadedKey, audience: str | None) -> bool:
    try:
        jwt.decode(
            token,
            key.public_key,
            algorithms=[ALGORITHM],
            audience=audience,
            issuer=token_issuer(),
            options={"require": REQUIRED},
        )
    except jwt.InvalidTokenError:
        return False
    return True


def _tamper_payload(token: str) -> str:
    header, _, signature = token.split(".")
    forged = jwt.utils.base64url_encode(jwt.utils.force_bytes('{"sub":"service:other","scope":"admin"}'))
    return f"{header}.{forged.decode()}.{signature}"


def _tamper_signature(token: str) -> str:
    head, _, signature = token.rpartition(".")
    flipped = ("A" if signature[0] != "A" else "B") + signature[1:]
    return f"{head}.{flipped}"


CASES: dict[str, Any] = {
    "valid": lambda key: _sign(_claims(), key.private_key),
    "expired": lambda key: _sign(_claims(iat=int(time.time()) - 600, exp=int(time.time()) - 60), key.private_key),
    "wrong key": lambda key: _sign(_claims(), Ed25519PrivateKey.generate()),
    "tampered payload": lambda key: _tamper_payload(_sign(_claims(), key.private_key)),
    "tampered signature": lambda key: _tamper_signature(_sign(_claims(), key.private_key)),
    "wrong issuer": lambda key: _sign(_claims(iss="https://someone-else.example"), key.private_key),
    "no jti": lambda key: _sign(_claims(jti=None), key.private_key),
    "no exp": lambda key: _sign(_claims(exp=None), key.private_key),
    "alg none": lambda key: jwt.encode(_claims(), "", algorithm="none", headers={"kid": "k-test"}),
    "HS256": lambda key: _sign(_claims(), "k" * 32, alg="HS256"),
    "not a JWT": lambda key: "not.a.jwt",
}
EXPECTED = {"valid": True}


@pytest.mark.parametrize("case", list(CASES))
def test_same_verdict_as_pyjwt(case: str, key: LoadedKey) -> None:
    """Accepted by one exactly when accepted by the other; and only the valid token is accepted."""
    token = CASES[case](key)
    fast = verify(token, key) is not None
    reference = _pyjwt_accepts(token, key, audience=AUDIENCE)
    assert fast == reference == EXPECTED.get(case, False)


def test_valid_token_gives_the_same_claims(key: LoadedKey) -> None:
    """On a good token the fast path returns exactly the claims PyJWT decodes."""
    token = _sign(_claims(), key.private_key)
    decoded = jwt.decode(token, key.public_key, algorithms=[ALGORITHM], audience=AUDIENCE, issuer=token_issuer())
    assert verify(token, key) == decoded


def test_wrong_audience_reaches_the_caller(key: LoadedKey) -> None:
    """The fast path does not judge `aud`: it returns it, and PyJWT expecting our audience refuses the token.

    Both agree on everything else: PyJWT told to expect the token's own audience accepts it too.
    """
    token = _sign(_claims(aud="other-app"), key.private_key)
    claims = verify(token, key)
    assert claims is not None and claims["aud"] == "other-app"
    assert not _pyjwt_accepts(token, key, audience=AUDIENCE)
    assert _pyjwt_accepts(token, key, audience="other-app")
