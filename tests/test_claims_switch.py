"""The documented order for moving an existing HS256 token route to JWT_ISSUER/JWT_AUDIENCE
(README "Which claims each setting requires", docs/better-auth.md) (FR-002, US2-1, US2-2).

Frontends already mint HS256 tokens with only ``sub`` and ``exp``. Step 1: the route adds
``iss`` and ``aud`` (the app's origin, what Better Auth's jwt() writes), which the API ignores
while JWT_ISSUER/JWT_AUDIENCE are unset. Step 2: once the old tokens have expired, the API sets
both; from then on a token without them is a 401, and JWKS tokens still pass.
"""

from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.keys import ALICE, JwksServer, SigningKey, bearer, mint

ApiFactory = Callable[..., TestClient]


@pytest.fixture
def origin(jwks_server: JwksServer) -> str:
    """The app's origin: its Better Auth's base URL, so the issuer and audience of its JWKS
    tokens, and what its HS256 route writes in step 1."""
    return jwks_server.base_url


def status_and_body(api: TestClient, token: str) -> tuple[int, Any]:
    response = api.get("/api/tasks", headers=bearer(token))
    return response.status_code, response.json()


def test_a_token_route_adds_iss_and_aud_first_and_both_tokens_pass_us2_1(
    app_factory: ApiFactory, origin: str
) -> None:
    api = app_factory()  # BETTER_AUTH_SECRET and BETTER_AUTH_URL; JWT_ISSUER/JWT_AUDIENCE unset
    old = mint(ALICE)
    new = mint(ALICE, issuer=origin, audience=origin)
    assert status_and_body(api, old) == (200, [])
    assert status_and_body(api, new) == (200, [])


def test_then_jwt_issuer_and_audience_refuse_tokens_without_them_us2_2(
    app_factory: ApiFactory, origin: str, signing_keys: dict[str, SigningKey]
) -> None:
    api = app_factory(jwt_issuer=origin, jwt_audience=origin)
    old = mint(ALICE)
    assert status_and_body(api, old) == (401, {"detail": "Token has no 'iss' claim"})
    new = mint(ALICE, issuer=origin, audience=origin)
    assert status_and_body(api, new) == (200, [])
    # The same setting fits the JWKS tokens: their iss and aud are that origin too.
    key = signing_keys["EdDSA"]
    jwks = mint(ALICE, alg=key.alg, key=key.private, kid=key.kid, issuer=origin, audience=origin)
    assert status_and_body(api, jwks) == (200, [])
