"""Edge cases of token verification that test_auth.py leaves open (US2-2, FR-002, SC-005).

Same rules as test_auth.py: real keys, real signatures (``forge`` signs any header PyJWT would
refuse to write), no mocks. Rejections are sent as writes (POST /api/tasks) and assert the exact
status, ``detail`` and challenge, and that the tasks table did not change. What the key server
may answer (outages, broken documents, the key rules) is tests/test_jwks.py's.
"""

import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx2
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, select

from models import tasks
from tests.keys import ALICE, BOB, SECRET, JwksServer, SigningKey, bearer, mint
from tests.test_auth import (
    LEEWAY,
    TASKS,
    assert_401,
    b64url,
    claims_for,
    segment,
    session_claims,
)

Write = Callable[..., httpx2.Response]  # write(token, client=pg_client)
MISSING = object()  # a header parameter left out entirely
P384_KEY = ec.generate_private_key(ec.SECP384R1())  # for ES384, which is not on the allow-list


def forge(
    header: dict[str, Any], claims: dict[str, Any], alg: str = "HS256", key: Any = SECRET
) -> str:
    """A compact JWS with exactly this header, really signed with ``alg`` (or unsigned: none)."""
    signing_input = f"{segment(header)}.{segment(claims)}"
    if alg == "none":
        return f"{signing_input}."
    algorithm = jwt.get_algorithm_by_name(alg)
    signature = algorithm.sign(signing_input.encode(), algorithm.prepare_key(key))
    return f"{signing_input}.{b64url(signature)}"


def eddsa(key: SigningKey, origin: str, sub: str | None = ALICE, **kwargs: Any) -> str:
    """An EdDSA token as Better Auth signs it; kwargs override mint's (audience=None drops aud)."""
    options: dict[str, Any] = {"alg": key.alg, "key": key.private, "kid": key.kid}
    return mint(sub, **{**options, "issuer": origin, "audience": origin, **kwargs})


@pytest.fixture
def origin(jwks_server: JwksServer) -> str:
    return jwks_server.base_url


@pytest.fixture
def eddsa_key(signing_keys: dict[str, SigningKey]) -> SigningKey:
    return signing_keys["EdDSA"]


@pytest.fixture
def write(pg_client: TestClient, pg_url: str) -> Iterator[Write]:
    """POST a task with ``token`` (to pg_client unless another app is given), assert that the
    tasks table did not change, and return the response."""
    engine = create_engine(pg_url)

    def rows() -> list[tuple[Any, ...]]:
        with engine.connect() as conn:
            return [tuple(r) for r in conn.execute(select(tasks).order_by(tasks.c.id))]

    def post(token: str, client: TestClient = pg_client) -> httpx2.Response:
        before = rows()
        response = client.post(TASKS, json={"title": "must not be stored"}, headers=bearer(token))
        assert rows() == before, "a rejected request changed the database"
        return response

    yield post
    engine.dispose()


# ---- algorithms outside the allow-list (US2-2, FR-002) ------------------------------------------


@pytest.mark.parametrize(
    ("alg", "kid_of"), [("RS512", "RS256"), ("PS512", "PS256"), ("ES384", None)]
)
def test_asymmetric_algorithm_outside_allow_list_is_401_us2_2_fr002(
    write: Write, signing_keys: dict[str, SigningKey], origin: str, alg: str, kid_of: str | None
) -> None:
    # RS512 and PS512 are signed by a published key, under its kid: only the alg is wrong.
    key = signing_keys[kid_of] if kid_of else SigningKey(alg, "p384", P384_KEY)
    token = mint(ALICE, alg=alg, key=key.private, kid=key.kid, issuer=origin, audience=origin)
    assert_401(write(token), "Token algorithm is not accepted", token=token)


@pytest.mark.parametrize(
    "alg",
    ["hs256", "EDDSA", "None", "NONE", 256, None, MISSING],
    ids=["hs256", "EDDSA", "None", "NONE", "number", "null", "missing"],
)
def test_alg_must_be_an_allow_listed_string_matched_case_sensitively_us2_2_fr002(
    write: Write, eddsa_key: SigningKey, origin: str, alg: object
) -> None:
    header: dict[str, Any] = {"typ": "JWT", "kid": eddsa_key.kid}
    if alg is not MISSING:
        header["alg"] = alg
    # Really signed the way the alg claims (EdDSA with the published key), or unsigned for none.
    signed_with = {"EDDSA": "EdDSA", "None": "none", "NONE": "none"}.get(str(alg), "HS256")
    key = eddsa_key.private if signed_with == "EdDSA" else SECRET
    token = forge(header, claims_for(iss=origin, aud=origin), signed_with, key)
    assert_401(write(token), "Token algorithm is not accepted", token=token)


# ---- JWKS mode: required claims and lifetime (US2-2, FR-002) ------------------------------------


@pytest.mark.parametrize(
    ("overrides", "detail"),
    [
        ({"expires_in": None}, "Token has no 'exp' claim"),
        ({"audience": None}, "Token has no 'aud' claim"),
        ({"claims": {"iat": "yesterday"}}, "Token issued-at (iat) is invalid"),
        ({"claims": {"iat": [1]}}, "Token issued-at (iat) is invalid"),
    ],
    ids=["no-exp", "no-aud", "iat-not-a-number", "iat-a-list"],
)
def test_jwks_token_missing_or_malforming_a_claim_is_401_us2_2(
    write: Write, eddsa_key: SigningKey, origin: str, overrides: dict[str, Any], detail: str
) -> None:
    token = eddsa(eddsa_key, origin, **overrides)
    assert_401(write(token), detail, token=token)


@pytest.mark.parametrize("claim", ["iat", "nbf"])
def test_jwks_token_issued_or_valid_only_in_the_future_is_401_us2_2(
    write: Write, eddsa_key: SigningKey, origin: str, claim: str
) -> None:
    token = eddsa(eddsa_key, origin, claims={claim: int(time.time()) + LEEWAY + 90})
    assert_401(write(token), "Token is not yet valid", token=token)


def test_audience_list_holding_the_pinned_audience_is_accepted_us2_1(
    pg_client: TestClient, eddsa_key: SigningKey, origin: str
) -> None:
    token = eddsa(eddsa_key, origin, audience=[origin, "https://other.example"])
    assert pg_client.get(TASKS, headers=bearer(token)).status_code == 200


# ---- kid (US2-2) --------------------------------------------------------------------------------


NO_KID = "Token header has no key id (kid)"


@pytest.mark.parametrize(
    ("kid", "detail", "fetches"),
    [
        (42, NO_KID, 0),
        ("", NO_KID, 0),
        (None, NO_KID, 0),
        (["k"], NO_KID, 0),
        ("not-in-the-jwks", "Token signing key is unknown", 1),
    ],
    ids=["number", "empty", "null", "list", "unknown"],
)
def test_bad_or_unknown_kid_on_a_cold_cache_is_401_not_503_us2_2(
    app_factory: Callable[..., TestClient],
    jwks_server: JwksServer,
    write: Write,
    eddsa_key: SigningKey,
    kid: object,
    detail: str,
    fetches: int,
) -> None:
    # A bad kid is refused before any key lookup; an unknown one after the JWKS answered without
    # it. Either way the token is at fault (401), not the key server (503).
    client, hits = app_factory(), jwks_server.hits  # a fresh app: the JWKS cache is cold
    claims = claims_for(iss=jwks_server.base_url, aud=jwks_server.base_url)
    token = forge({"alg": "EdDSA", "kid": kid}, claims, "EdDSA", eddsa_key.private)
    assert_401(write(token, client), detail, token=token)
    assert jwks_server.hits == hits + fetches


# ---- token shape (US2-2, SC-005) ----------------------------------------------------------------

SHAPES: dict[str, tuple[Callable[[], str], str]] = {
    "header-over-2048-chars": (
        lambda: forge({"alg": "HS256", "pad": "x" * 1600}, claims_for()),
        "Malformed token",
    ),
    "five-segments": (lambda: f"{mint(ALICE)}.{b64url(b'iv')}.{b64url(b'tag')}", "Malformed token"),
    "two-segments": (lambda: mint(ALICE).rsplit(".", 1)[0], "Malformed token"),
    "trailing-text": (lambda: f"{mint(ALICE)} extra", "Malformed token"),
    "b64-false": (lambda: forge({"alg": "HS256", "b64": False}, claims_for()), "Malformed token"),
    # RFC 7797 requires b64 to be listed in crit (PyJWT writes it so): crit is refused first.
    "b64-false-with-crit": (
        lambda: mint(ALICE, headers={"b64": False}),
        "Token header parameter 'crit' is not accepted",
    ),
    # Better Auth's cookie cache with strategy "jwe": five segments, encrypted, not signed.
    "jwe-cookie-cache": (
        lambda: f"{segment({'alg': 'dir', 'enc': 'A256CBC-HS512'})}..aXY.Y2lwaGVy.dGFn",
        "Token algorithm is not accepted",
    ),
}


@pytest.mark.parametrize("shape", list(SHAPES))
def test_token_that_is_not_a_compact_jws_is_401_us2_2(write: Write, shape: str) -> None:
    build, detail = SHAPES[shape]
    token = build()
    assert_401(write(token), detail, token=token)


def test_jose_header_of_exactly_2048_chars_is_accepted_us2_1(pg_client: TestClient) -> None:
    token = forge({"alg": "HS256", "pad": "x" * 1512}, claims_for())  # 1536 bytes of JSON
    assert len(token.split(".")[0]) == 2048
    assert pg_client.get(TASKS, headers=bearer(token)).status_code == 200


# ---- subject (US2-1, US2-2, FR-003) -------------------------------------------------------------


def test_jwks_token_shaped_like_the_session_cookie_cache_is_401_us2_2(
    write: Write, eddsa_key: SigningKey, origin: str
) -> None:
    # session.userId stands in for sub only in HS256 tokens; a JWKS token must carry sub.
    token = eddsa(eddsa_key, origin, sub=None, claims=session_claims(ALICE, ALICE))
    assert_401(write(token), "Token has no valid subject (sub)", token=token)


@pytest.mark.parametrize(
    ("session_user", "user"),
    [(BOB, BOB), (BOB, ALICE), (ALICE, BOB)],
    ids=["both", "session", "user"],
)
def test_sub_and_session_naming_different_users_is_401_fr003(
    write: Write, session_user: str, user: str
) -> None:
    # Which of two identities is meant cannot be guessed: neither is used.
    token = mint(ALICE, claims=session_claims(session_user, user))
    assert_401(write(token), "Token names two different users", token=token)


def test_sub_with_a_session_naming_the_same_user_is_accepted_us2_1(pg_client: TestClient) -> None:
    token = mint(ALICE, claims=session_claims(ALICE, ALICE))
    created = pg_client.post(TASKS, json={"title": "x"}, headers=bearer(token))
    assert created.status_code == 201
    assert created.json()["user_id"] == ALICE


@pytest.mark.parametrize(
    "session",
    [{"userId": 42}, {"userId": None}, {"userId": [ALICE]}, ALICE],
    ids=["number", "null", "list", "session-not-an-object"],
)
def test_session_user_id_that_is_not_a_string_is_401_us2_2(write: Write, session: object) -> None:
    token = mint(None, expires_in=300, claims={"session": session})
    assert_401(write(token), "Token has no valid subject (sub)", token=token)


# ---- the Authorization scheme (US2-1, RFC 7235 §2.1) --------------------------------------------


@pytest.mark.parametrize("scheme", ["bearer", "BEARER", "bEaReR"])
def test_bearer_scheme_is_case_insensitive_us2_1(pg_client: TestClient, scheme: str) -> None:
    response = pg_client.get(TASKS, headers={"Authorization": f"{scheme} {mint(ALICE)}"})
    assert response.status_code == 200
