"""The verified-token cache (core/tokens.py, TokenVerifier): speed that never changes an answer
(US2-1, US2-2, FR-003).

A token that verified once is not checked again while it is valid, and the cache never accepts
what a full verification would refuse: an expired token (exp and the clock leeway exactly as
PyJWT applies them), a token whose JWKS key was withdrawn or replaced, a token that never
verified. Signature checks are counted by wrapping PyJWT's real ``jwt.decode`` (it still runs;
the wrapper only counts calls), since the service itself exposes no such counter.
"""

import asyncio
import time
import uuid
from collections.abc import Callable
from typing import Any

import jwt
import pytest
from fastapi.testclient import TestClient

from core import jwks, tokens
from core.tokens import TokenVerifier
from tests.conftest import make_settings
from tests.keys import ALICE, BOB, JwksServer, SigningKey, bearer, generate_key, mint

TASKS = "/api/tasks"


@pytest.fixture
def signature_checks(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every call of PyJWT's ``decode`` (the signature and claims check), in order."""
    calls: list[str] = []
    real_decode = jwt.decode

    def counting_decode(token: str, *args: Any, **kwargs: Any) -> Any:
        calls.append(token)
        return real_decode(token, *args, **kwargs)

    monkeypatch.setattr(jwt, "decode", counting_decode)  # core/tokens.py calls jwt.decode
    return calls


def wait_until(moment: float) -> None:
    """Sleep until the wall clock (PyJWT's clock) has passed ``moment``."""
    while time.time() <= moment:
        time.sleep(max(0.01, moment - time.time() + 0.01))


class LaterClock:
    """Stands in for the ``time`` module inside core/jwks.py only: its monotonic clock, moved on."""

    def __init__(self, offset: float) -> None:
        self.offset = offset

    def monotonic(self) -> float:
        return time.monotonic() + self.offset


def verifier_of(client: TestClient) -> TokenVerifier:
    verifier: TokenVerifier = client.app.state.verifier  # type: ignore[attr-defined]
    return verifier


# ---- the token cache ----------------------------------------------------------------------------


def test_repeated_hs256_token_is_signature_checked_once_us2_1(
    app_factory: Callable[..., TestClient], signature_checks: list[str]
) -> None:
    client = app_factory()
    token = mint(ALICE)
    for _ in range(5):
        assert client.get(TASKS, headers=bearer(token)).status_code == 200
    assert signature_checks == [token]
    assert verifier_of(client).cached_tokens == 1


def test_repeated_jwks_token_is_signature_checked_once_us2_1(
    app_factory: Callable[..., TestClient],
    jwks_server: JwksServer,
    signing_keys: dict[str, SigningKey],
    signature_checks: list[str],
) -> None:
    client = app_factory()
    key, origin = signing_keys["EdDSA"], jwks_server.base_url
    token = mint(ALICE, alg="EdDSA", key=key.private, kid=key.kid, issuer=origin, audience=origin)
    for _ in range(5):
        assert client.get(TASKS, headers=bearer(token)).status_code == 200
    assert signature_checks == [token]


def test_each_token_is_cached_apart_and_identity_never_mixes_us2_1_fr003(
    app_factory: Callable[..., TestClient], signature_checks: list[str]
) -> None:
    client = app_factory()
    alice, bob = mint(ALICE), mint(BOB)
    created = client.post(TASKS, json={"title": "Alice's"}, headers=bearer(alice))
    assert created.status_code == 201
    for _ in range(3):
        assert client.get(TASKS, headers=bearer(bob)).json() == []
        assert [t["title"] for t in client.get(TASKS, headers=bearer(alice)).json()] == ["Alice's"]
    assert sorted(signature_checks) == sorted([alice, bob])


def test_cached_token_is_accepted_within_leeway_then_refused_as_expired_us2_2(
    app_factory: Callable[..., TestClient], signature_checks: list[str]
) -> None:
    leeway = 1
    client = app_factory(jwt_leeway_seconds=leeway)
    expires = int(time.time()) + 1
    token = mint(ALICE, expires_in=None, claims={"exp": expires})
    assert client.get(TASKS, headers=bearer(token)).status_code == 200

    wait_until(expires + 0.1)  # past exp, inside the leeway: still valid, still cached
    assert client.get(TASKS, headers=bearer(token)).status_code == 200
    assert signature_checks == [token]

    wait_until(expires + leeway)  # PyJWT refuses from exp + leeway on, and so does the cache
    response = client.get(TASKS, headers=bearer(token))
    assert response.status_code == 401
    assert response.json() == {"detail": "Token has expired"}
    assert response.headers["www-authenticate"] == 'Bearer error="invalid_token"'
    assert signature_checks == [token, token]  # verified again, and refused
    assert verifier_of(client).cached_tokens == 0  # and forgotten


def test_expired_cached_token_cannot_write_us2_2(
    app_factory: Callable[..., TestClient], backend_url: str
) -> None:
    client = app_factory(database_url=backend_url, jwt_leeway_seconds=0)
    writer = f"writer{uuid.uuid4().hex}"  # no other test's rows
    expires = int(time.time()) + 3  # room for the first write on a busy machine
    token = mint(writer, expires_in=None, claims={"exp": expires})
    created = client.post(TASKS, json={"title": "before"}, headers=bearer(token))
    assert created.status_code == 201
    wait_until(expires)
    response = client.post(TASKS, json={"title": "after"}, headers=bearer(token))
    assert response.status_code == 401
    assert response.json() == {"detail": "Token has expired"}
    fresh = client.get(TASKS, headers=bearer(mint(writer)))
    assert [t["title"] for t in fresh.json()] == ["before"]  # nothing written


def test_token_with_a_far_future_exp_is_accepted_and_cached_us2_1(
    app_factory: Callable[..., TestClient], signature_checks: list[str]
) -> None:
    # PyJWT accepts any integer exp (int() of a JSON integer has no upper bound); the cache's
    # expiry arithmetic must not turn such a validly signed token into a 500 (float overflow).
    client = app_factory()
    user = f"far{uuid.uuid4().hex}"  # no other test's rows
    token = mint(user, expires_in=None, claims={"exp": 10**400})
    for _ in range(2):
        response = client.get(TASKS, headers=bearer(token))
        assert response.status_code == 200
        assert response.json() == []
    assert signature_checks == [token]


def test_cached_token_is_checked_again_when_the_clock_went_back_us2_2(
    app_factory: Callable[..., TestClient],
    signature_checks: list[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # nbf and iat held when the token was verified; before that moment (a clock stepped back)
    # the cache knows nothing, and the full check decides again.
    client = app_factory()
    token = mint(ALICE)
    assert client.get(TASKS, headers=bearer(token)).status_code == 200
    real_now = tokens._now
    monkeypatch.setattr(tokens, "_now", lambda: real_now() - 3600)
    assert client.get(TASKS, headers=bearer(token)).status_code == 200
    assert signature_checks == [token, token]


def test_failed_verifications_are_never_cached_us2_2(
    app_factory: Callable[..., TestClient], signature_checks: list[str]
) -> None:
    client = app_factory()
    forged = mint(ALICE, key="another-secret-0123456789abcdef-0123456789")
    for _ in range(3):
        response = client.get(TASKS, headers=bearer(forged))
        assert response.status_code == 401
        assert response.json() == {"detail": "Token signature is invalid"}
    assert signature_checks == [forged] * 3
    assert verifier_of(client).cached_tokens == 0


def test_token_cache_is_bounded_least_recently_used_out_first_us2_1(
    pg_url: str, signature_checks: list[str]
) -> None:
    verifier = TokenVerifier(make_settings(pg_url), None, cache_size=2)
    first, second, third = (mint(f"user{n}{'x' * 27}") for n in range(3))

    def verify(token: str) -> str:
        return asyncio.run(verifier.verify(token))

    for token in (first, second, first, third):  # `second` is the least recently used
        verify(token)
    assert verifier.cached_tokens == 2
    assert signature_checks == [first, second, third]
    verify(first)
    verify(third)
    assert signature_checks == [first, second, third]  # both still cached
    assert verify(second) == f"user1{'x' * 27}"
    assert signature_checks == [first, second, third, second]  # evicted: checked again
    assert verifier.cached_tokens == 2


def test_cached_jwks_token_is_refused_once_its_key_is_withdrawn_us2_2(
    app_factory: Callable[..., TestClient],
    jwks_server: JwksServer,
    signing_keys: dict[str, SigningKey],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    client = app_factory()
    key, origin = signing_keys["EdDSA"], jwks_server.base_url
    token = mint(ALICE, alg="EdDSA", key=key.private, kid=key.kid, issuer=origin, audience=origin)
    assert client.get(TASKS, headers=bearer(token)).status_code == 200

    published = jwks_server.keys
    jwks_server.keys = [generate_key("EdDSA")]  # Better Auth withdrew the key
    try:
        # Past the JWKS cache's TTL (core/jwks.py's monotonic clock only): the next request starts a
        # background refresh, and once it has landed the withdrawn key is unknown.
        monkeypatch.setattr(jwks, "time", LaterClock(2 * 3600.0))
        deadline = time.monotonic() + 10
        while True:
            response = client.get(TASKS, headers=bearer(token))
            if response.status_code != 200 or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert response.status_code == 401
        assert response.json() == {"detail": "Token signing key is unknown"}
    finally:
        jwks_server.keys = published


def test_cached_jwks_token_is_refused_once_its_kid_names_another_key_us2_2(
    app_factory: Callable[..., TestClient],
    jwks_server: JwksServer,
    signing_keys: dict[str, SigningKey],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Better Auth republishes the kid with other key material: the cached verification was made
    # with the old key, so the token is checked again against the new one, and fails.
    client = app_factory()
    key, origin = signing_keys["EdDSA"], jwks_server.base_url
    token = mint(ALICE, alg="EdDSA", key=key.private, kid=key.kid, issuer=origin, audience=origin)
    assert client.get(TASKS, headers=bearer(token)).status_code == 200

    published = jwks_server.keys
    impostor = SigningKey("EdDSA", key.kid, generate_key("EdDSA").private)
    jwks_server.keys = [impostor]
    try:
        monkeypatch.setattr(jwks, "time", LaterClock(2 * 3600.0))
        deadline = time.monotonic() + 10
        while True:
            response = client.get(TASKS, headers=bearer(token))
            if response.status_code != 200 or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert response.status_code == 401
        assert response.json() == {"detail": "Token signature is invalid"}
        assert response.headers["www-authenticate"] == 'Bearer error="invalid_token"'
        assert verifier_of(client).cached_tokens == 0
        signed_anew = mint(
            ALICE, alg="EdDSA", key=impostor.private, kid=key.kid, issuer=origin, audience=origin
        )
        assert client.get(TASKS, headers=bearer(signed_anew)).status_code == 200
    finally:
        jwks_server.keys = published
