"""Token verification through the API (US2-1, US2-2, US2-3, FR-002, FR-003, SC-001, SC-005).

Every token here is real: HS256 with ``BETTER_AUTH_SECRET``, or signed with a real EdDSA, ES256,
ES512, PS256 or RS256 key published by the local JWKS server. Each rejection is checked for its
exact status, ``detail`` and ``WWW-Authenticate`` challenge, and for not echoing the token.

``pg_client`` is one app for the whole session, so it caches the JWKS. Tests that look up a kid
it may not know, or count the JWKS server's hits, use a fresh app from ``app_factory`` (an empty
cache). Key rotation, JWKS outages and the key rules are tests/test_jwks.py's.
"""

import base64
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx2
import pytest
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from fastapi import APIRouter, Depends, FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, select

from auth import AuthenticatedRoute, CurrentUser, path_user_is_caller
from core.errors import install_error_handlers
from core.fairness import FairShare
from core.middleware import MAX_BODY_BYTES
from core.rate_limit import WriteRateLimit
from core.tokens import TokenVerifier
from models import tasks
from tests.conftest import make_settings
from tests.keys import (
    ALICE,
    ASYMMETRIC,
    BOB,
    SECRET,
    JwksServer,
    SigningKey,
    bearer,
    generate_key,
    mint,
)

TASKS = "/api/tasks"
INVALID_TOKEN = 'Bearer error="invalid_token"'
NO_CREDENTIALS = "Bearer"  # RFC 6750 §3: no error code when no credentials were sent
KEYS_UNAVAILABLE = "Authentication keys are temporarily unavailable, retry shortly"
LEEWAY = 30
CUSTOM_ISSUER = "https://issuer.example"
CUSTOM_AUDIENCE = "tasks-api"


# ---- helpers ------------------------------------------------------------------------------------


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def segment(value: dict[str, Any]) -> str:
    return b64url(json.dumps(value, separators=(",", ":")).encode())


def claims_for(sub: str = ALICE, **extra: Any) -> dict[str, Any]:
    now = int(time.time())
    return {"sub": sub, "iat": now, "exp": now + 900, **extra}


def jwks_token(
    key: SigningKey,
    origin: str,
    *,
    kid: str | None = None,
    issuer: str | None = None,
    audience: str | None = None,
    headers: dict[str, Any] | None = None,
) -> str:
    """A token as Better Auth's jwt() plugin signs it: kid, and the origin as iss and aud."""
    return mint(
        ALICE,
        alg=key.alg,
        key=key.private,
        kid=kid or key.kid,
        issuer=issuer or origin,
        audience=audience or origin,
        headers=headers,
    )


def probe(client: TestClient, token: str) -> httpx2.Response:
    return client.get(TASKS, headers=bearer(token))


def assert_accepted(client: TestClient, token: str) -> None:
    response = probe(client, token)
    assert response.status_code == 200, response.text


def assert_401(
    response: httpx2.Response,
    detail: str,
    *,
    token: str | None = None,
    challenge: str = INVALID_TOKEN,
) -> None:
    assert response.status_code == 401
    assert response.json() == {"detail": detail}
    assert response.headers["www-authenticate"] == challenge
    if token:  # SC-005: say what is wrong, never echo the credential back
        assert token not in response.text


def assert_rejected(client: TestClient, token: str, detail: str) -> None:
    assert_401(probe(client, token), detail, token=token)


def create_task(client: TestClient, token: str) -> dict[str, Any]:
    response = client.post(TASKS, json={"title": "x"}, headers=bearer(token))
    assert response.status_code == 201, response.text
    task: dict[str, Any] = response.json()
    return task


# ---- fixtures -----------------------------------------------------------------------------------


@pytest.fixture
def origin(jwks_server: JwksServer) -> str:
    """Better Auth's origin: the issuer and audience pg_client pins by default."""
    return jwks_server.base_url


@pytest.fixture
def jwks(jwks_server: JwksServer) -> Iterator[JwksServer]:
    """The shared JWKS server for a test that changes it; its keys and health are restored."""
    keys, fail = list(jwks_server.keys), jwks_server.fail
    yield jwks_server
    jwks_server.keys, jwks_server.fail, jwks_server.delay = keys, fail, 0.0


@pytest.fixture
def fresh_client(app_factory: Callable[..., TestClient]) -> TestClient:
    """Both modes on, default settings, and an empty JWKS cache."""
    return app_factory()


# ---- accepted tokens (US2-1, FR-002, SC-001) ----------------------------------------------------


def test_valid_hs256_token_is_accepted_us2_1_fr002_sc001(pg_client: TestClient) -> None:
    token = mint(ALICE)
    assert_accepted(pg_client, token)
    assert create_task(pg_client, token)["user_id"] == ALICE


@pytest.mark.parametrize("alg", ASYMMETRIC)
def test_valid_jwks_token_is_accepted_for_each_algorithm_us2_1_sc001(
    pg_client: TestClient, signing_keys: dict[str, SigningKey], origin: str, alg: str
) -> None:
    token = jwks_token(signing_keys[alg], origin)
    assert_accepted(pg_client, token)
    assert create_task(pg_client, token)["user_id"] == ALICE


# ---- the Authorization header (US2-3, US2-2) ----------------------------------------------------


def test_missing_authorization_header_is_401_us2_3(pg_client: TestClient) -> None:
    assert_401(
        pg_client.get(TASKS),
        "Not authenticated: send Authorization: Bearer <token>",
        challenge=NO_CREDENTIALS,
    )


def test_non_bearer_scheme_is_401_us2_3(pg_client: TestClient) -> None:
    response = pg_client.get(TASKS, headers={"Authorization": "Basic xyz"})
    assert_401(
        response, "Authorization header must use the Bearer scheme", challenge=NO_CREDENTIALS
    )


def test_empty_bearer_token_is_401_us2_3(pg_client: TestClient) -> None:
    response = pg_client.get(TASKS, headers={"Authorization": "Bearer "})
    assert_401(response, "Bearer token is empty")


def test_garbage_token_is_401_us2_2(pg_client: TestClient) -> None:
    assert_rejected(pg_client, "abc", "Malformed token")


@pytest.mark.parametrize("depth", [1000, 3000])
def test_deeply_nested_token_header_is_401_not_500_us2_2(pg_client: TestClient, depth: int) -> None:
    header = b64url(b"[" * depth + b"]" * depth)
    assert_rejected(pg_client, f"{header}.e30.x", "Malformed token")


def test_token_over_8192_bytes_is_401_us2_2(pg_client: TestClient) -> None:
    token = mint(ALICE, claims={"padding": "x" * 8192})  # validly signed, only too large
    assert len(token) > 8192
    assert_rejected(pg_client, token, "Token is too large")


# ---- lifetime: exp, leeway, nbf (US2-2) ---------------------------------------------------------


def test_expired_token_is_401_us2_2(pg_client: TestClient) -> None:
    assert_rejected(pg_client, mint(ALICE, expires_in=-(LEEWAY + 30)), "Token has expired")


def test_token_expired_within_leeway_is_accepted_us2_1(pg_client: TestClient) -> None:
    assert_accepted(pg_client, mint(ALICE, expires_in=-10))


def test_token_without_exp_is_401_us2_2(pg_client: TestClient) -> None:
    assert_rejected(pg_client, mint(ALICE, expires_in=None), "Token has no 'exp' claim")


def test_token_not_yet_valid_is_401_us2_2(pg_client: TestClient) -> None:
    token = mint(ALICE, claims={"nbf": int(time.time()) + LEEWAY + 90})
    assert_rejected(pg_client, token, "Token is not yet valid")


# ---- signatures (US2-2, FR-002) -----------------------------------------------------------------


def test_hs256_token_signed_with_another_secret_is_401_us2_2_fr002(
    pg_client: TestClient,
) -> None:
    token = mint(ALICE, key="another-secret-0123456789abcdef-0123456789")
    assert_rejected(pg_client, token, "Token signature is invalid")


def test_jwks_token_signed_with_another_key_under_a_known_kid_is_401_us2_2(
    pg_client: TestClient, signing_keys: dict[str, SigningKey], origin: str
) -> None:
    impostor = generate_key("EdDSA")
    token = jwks_token(impostor, origin, kid=signing_keys["EdDSA"].kid)
    assert_rejected(pg_client, token, "Token signature is invalid")


# ---- algorithms (US2-2, FR-002) -----------------------------------------------------------------


def test_unsigned_alg_none_token_is_401_us2_2(pg_client: TestClient) -> None:
    token = f"{segment({'alg': 'none', 'typ': 'JWT'})}.{segment(claims_for())}."
    assert_rejected(pg_client, token, "Token algorithm is not accepted")


@pytest.mark.parametrize("alg", ["HS384", "HS512"])
def test_hmac_algorithm_other_than_hs256_is_401_fr002(pg_client: TestClient, alg: str) -> None:
    token = mint(ALICE, alg=alg, key=SECRET * 2)  # long enough for HS512, so PyJWT signs it
    assert_rejected(pg_client, token, "Token algorithm is not accepted")


def test_hs256_token_without_configured_secret_is_401_fr002(
    app_factory: Callable[..., TestClient],
) -> None:
    client = app_factory(better_auth_secret=None)
    assert_rejected(client, mint(ALICE), "Token algorithm is not accepted")


def test_jwks_token_without_configured_jwks_is_401_us2_2(
    app_factory: Callable[..., TestClient], signing_keys: dict[str, SigningKey], origin: str
) -> None:
    client = app_factory(better_auth_url=None)
    token = jwks_token(signing_keys["EdDSA"], origin)
    assert_rejected(client, token, "Token algorithm is not accepted")


def test_hmac_token_keyed_with_the_rsa_public_key_is_401_us2_2(
    pg_client: TestClient, signing_keys: dict[str, SigningKey], origin: str
) -> None:
    # The classic key confusion: HMAC keyed with the server's *public* key, which anyone has.
    rsa = signing_keys["RS256"]
    pem = rsa.private.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    header = {"alg": "HS256", "typ": "JWT", "kid": rsa.kid}
    signing_input = f"{segment(header)}.{segment(claims_for(iss=origin, aud=origin))}"
    signature = hmac.new(pem, signing_input.encode(), hashlib.sha256).digest()
    token = f"{signing_input}.{b64url(signature)}"
    assert_rejected(pg_client, token, "Token signature is invalid")


# ---- header parameters that name their own key (US2-2) ------------------------------------------

ATTACKER_JWK = generate_key("EdDSA").public_jwk()
KEY_NAMING_HEADERS: dict[str, dict[str, Any]] = {
    "jku": {"jku": "https://attacker.example/jwks.json"},
    "x5u": {"x5u": "https://attacker.example/cert.pem"},
    "jwk": {"jwk": ATTACKER_JWK},
    "x5c": {"x5c": [b64url(b"not-really-a-certificate")]},
    "crit": {"crit": ["exp"], "exp": 1363284000},  # the example of RFC 7515 §4.1.11
}


@pytest.mark.parametrize("param", list(KEY_NAMING_HEADERS))
def test_key_naming_header_parameter_is_401_us2_2(
    pg_client: TestClient, signing_keys: dict[str, SigningKey], origin: str, param: str
) -> None:
    # Signed by the attacker's key, under the kid of a real one.
    token = jwks_token(
        generate_key("EdDSA"),
        origin,
        kid=signing_keys["EdDSA"].kid,
        headers=KEY_NAMING_HEADERS[param],
    )
    assert_rejected(pg_client, token, f"Token header parameter '{param}' is not accepted")


def test_jku_header_is_never_fetched_us2_2(
    fresh_client: TestClient, jwks: JwksServer, origin: str
) -> None:
    # A fresh app has no key cached, so any key lookup at all would hit the JWKS server.
    hits = jwks.hits
    token = jwks_token(generate_key("EdDSA"), origin, headers={"jku": f"{origin}/api/auth/jwks"})
    assert_rejected(fresh_client, token, "Token header parameter 'jku' is not accepted")
    assert jwks.hits == hits


# ---- JWKS mode: pinned issuer and audience, kid (US2-2) -----------------------------------------


def test_wrong_issuer_is_401_us2_2(
    pg_client: TestClient, signing_keys: dict[str, SigningKey], origin: str
) -> None:
    token = jwks_token(signing_keys["EdDSA"], origin, issuer="https://evil.example")
    assert_rejected(pg_client, token, "Token issuer is not accepted")


def test_wrong_audience_is_401_us2_2(
    pg_client: TestClient, signing_keys: dict[str, SigningKey], origin: str
) -> None:
    token = jwks_token(signing_keys["EdDSA"], origin, audience="https://evil.example")
    assert_rejected(pg_client, token, "Token audience is not accepted")


def test_missing_issuer_is_401_us2_2(
    pg_client: TestClient, signing_keys: dict[str, SigningKey], origin: str
) -> None:
    key = signing_keys["EdDSA"]
    token = mint(ALICE, alg=key.alg, key=key.private, kid=key.kid, audience=origin)
    assert_rejected(pg_client, token, "Token has no 'iss' claim")


def test_token_without_kid_is_401_us2_2(
    pg_client: TestClient, signing_keys: dict[str, SigningKey], origin: str
) -> None:
    key = signing_keys["EdDSA"]
    token = mint(ALICE, alg=key.alg, key=key.private, issuer=origin, audience=origin)
    assert_rejected(pg_client, token, "Token header has no key id (kid)")


def test_unknown_kid_is_401_us2_2(
    fresh_client: TestClient, signing_keys: dict[str, SigningKey], origin: str
) -> None:
    # A fresh app: its first fetch began after the token arrived, so it decides at once (on a
    # warm cache the token would wait for the next fetch the spacing allows: test_jwks.py).
    token = jwks_token(signing_keys["EdDSA"], origin, kid=uuid.uuid4().hex)
    assert_rejected(fresh_client, token, "Token signing key is unknown")


@pytest.mark.parametrize(
    ("alg", "kid_of"),
    [("ES256", "EdDSA"), ("ES256", "ES512"), ("RS256", "PS256")],
)
def test_algorithm_not_matching_its_signing_key_is_401_us2_2(
    pg_client: TestClient,
    signing_keys: dict[str, SigningKey],
    origin: str,
    alg: str,
    kid_of: str,
) -> None:
    token = jwks_token(signing_keys[alg], origin, kid=signing_keys[kid_of].kid)
    assert_rejected(pg_client, token, "Token algorithm does not match its signing key")


# ---- JWT_ISSUER / JWT_AUDIENCE (US2-1, US2-2, FR-002) -------------------------------------------


@pytest.fixture
def custom_client(app_factory: Callable[..., TestClient]) -> TestClient:
    return app_factory(jwt_issuer=CUSTOM_ISSUER, jwt_audience=CUSTOM_AUDIENCE)


def test_custom_issuer_and_audience_are_accepted_us2_1(
    custom_client: TestClient, signing_keys: dict[str, SigningKey]
) -> None:
    key = signing_keys["EdDSA"]
    assert_accepted(
        custom_client,
        jwks_token(key, CUSTOM_ISSUER, issuer=CUSTOM_ISSUER, audience=CUSTOM_AUDIENCE),
    )
    assert_accepted(custom_client, mint(ALICE, issuer=CUSTOM_ISSUER, audience=CUSTOM_AUDIENCE))


def test_default_origin_is_401_when_issuer_is_overridden_us2_2(
    custom_client: TestClient, signing_keys: dict[str, SigningKey], origin: str
) -> None:
    token = jwks_token(signing_keys["EdDSA"], origin)
    assert_rejected(custom_client, token, "Token issuer is not accepted")


def test_custom_issuer_and_audience_bind_hs256_tokens_us2_2_fr002(
    custom_client: TestClient,
) -> None:
    assert_rejected(
        custom_client, mint(ALICE, audience=CUSTOM_AUDIENCE), "Token has no 'iss' claim"
    )
    assert_rejected(
        custom_client,
        mint(ALICE, issuer=CUSTOM_ISSUER, audience="someone-else"),
        "Token audience is not accepted",
    )


# ---- subject: sub, or the session cookie cache's session.userId (US2-1, US2-2) ------------------


def session_claims(session_user: str, user: str) -> dict[str, Any]:
    """Better Auth's cookie cache (strategy "jwt"): no sub, the user id twice."""
    return {
        "session": {"id": "sess1", "userId": session_user, "token": "opaque", "expiresAt": "x"},
        "user": {"id": user, "email": "alice@example.com", "name": "Alice"},
    }


def test_session_cookie_cache_jwt_is_accepted_us2_1_fr002(pg_client: TestClient) -> None:
    token = mint(None, expires_in=300, claims=session_claims(ALICE, ALICE))
    assert create_task(pg_client, token)["user_id"] == ALICE


def test_session_cookie_cache_jwt_naming_two_users_is_401_us2_2(pg_client: TestClient) -> None:
    token = mint(None, expires_in=300, claims=session_claims(ALICE, BOB))
    assert_rejected(pg_client, token, "Token names two different users")


@pytest.mark.parametrize(
    "claims",
    [{}, {"user": {"id": ALICE, "email": "alice@example.com"}}],
    ids=["nothing", "user-without-session"],
)
def test_token_without_sub_or_session_is_401_us2_2(
    pg_client: TestClient, claims: dict[str, Any]
) -> None:
    # Identity is sub or session.userId; user.id alone is only a cross-check of session.userId.
    token = mint(None, claims=claims)
    assert_rejected(pg_client, token, "Token has no valid subject (sub)")


@pytest.mark.parametrize(
    "sub",
    [12345, "", "alice\x00", "a" * 300, "u\r\nX-Injected: y", "a\x7f", "alice\u200b", " alice"],
    ids=["number", "empty", "nul", "300-chars", "crlf", "del", "zero-width", "padded"],
)
def test_invalid_subject_is_401_us2_2(pg_client: TestClient, sub: object) -> None:
    token = mint(None, claims={"sub": sub})
    assert_rejected(pg_client, token, "Token has no valid subject (sub)")


# ---- feedback and identity (SC-005, FR-003) -----------------------------------------------------


@pytest.mark.parametrize(
    ("token", "detail"),
    [
        (mint(ALICE, expires_in=-3600), "Token has expired"),
        (
            mint(ALICE, key="another-secret-0123456789abcdef-0123456789"),
            "Token signature is invalid",
        ),
        (mint(ALICE, claims={"padding": "x" * 8192}), "Token is too large"),
        ("not.a.jwt", "Malformed token"),
    ],
    ids=["expired", "bad-signature", "too-large", "malformed"],
)
def test_rejection_never_echoes_the_token_sc005(
    pg_client: TestClient, token: str, detail: str
) -> None:
    response = probe(pg_client, token)
    assert_401(response, detail, token=token)
    assert all(token not in value for value in response.headers.values())


def test_user_id_in_body_or_query_never_sets_identity_fr003(pg_client: TestClient) -> None:
    alice = mint(ALICE)
    response = pg_client.post(
        TASKS,
        params={"user_id": BOB},
        json={"title": "x", "user_id": BOB},
        headers=bearer(alice),
    )
    assert response.status_code == 201
    assert response.json()["user_id"] == ALICE
    listed = pg_client.get(TASKS, params={"user_id": BOB}, headers=bearer(alice))
    assert [task["user_id"] for task in listed.json()] == [ALICE]
    assert pg_client.get(TASKS, headers=bearer(mint(BOB))).json() == []


# ---- every task route, writes included (US2-2, US2-3) -------------------------------------------

ROUTES = [
    ("GET", ""),
    ("POST", ""),
    ("GET", "/{id}"),
    ("PUT", "/{id}"),
    ("PATCH", "/{id}"),
    ("PATCH", "/{id}/complete"),
    ("DELETE", "/{id}"),
]


@pytest.mark.parametrize(("method", "suffix"), ROUTES, ids=[f"{m}{s}" for m, s in ROUTES])
@pytest.mark.parametrize("prefix", [TASKS, f"/api/{ALICE}/tasks"], ids=["plain", "alias"])
@pytest.mark.parametrize(
    ("token", "detail"),
    [
        (None, "Not authenticated: send Authorization: Bearer <token>"),
        (mint(ALICE, key="another-secret-0123456789abcdef-0123"), "Token signature is invalid"),
        (mint(ALICE, expires_in=-3600), "Token has expired"),
        (
            f"{segment({'alg': 'none'})}.{segment(claims_for())}.",
            "Token algorithm is not accepted",
        ),
    ],
    ids=["missing", "bad-signature", "expired", "alg-none"],
)
def test_every_route_refuses_a_missing_or_invalid_token_and_changes_nothing_us2_2_us2_3(
    pg_client: TestClient,
    method: str,
    suffix: str,
    prefix: str,
    token: str | None,
    detail: str,
) -> None:
    task = create_task(pg_client, mint(ALICE))
    before = pg_client.get(TASKS, headers=bearer(mint(ALICE))).json()
    response = pg_client.request(
        method,
        prefix + suffix.format(id=task["id"]),
        json={"title": "taken over", "completed": True} if method in ("POST", "PUT") else None,
        headers=bearer(token) if token else {},
    )
    assert_401(response, detail, token=token, challenge=INVALID_TOKEN if token else NO_CREDENTIALS)
    assert pg_client.get(TASKS, headers=bearer(mint(ALICE))).json() == before


def test_two_authorization_headers_are_400_whichever_comes_first_us2_2(
    pg_client: TestClient,
) -> None:
    # A proxy and this service might each read a different one.
    good, bad = f"Bearer {mint(BOB)}", "Bearer garbage"
    for pair in ([good, bad], [bad, good]):
        response = pg_client.post(
            TASKS, json={"title": "x"}, headers=[("Authorization", value) for value in pair]
        )
        assert response.status_code == 400
        assert response.json() == {"detail": "Send exactly one Authorization header"}
        assert response.headers["www-authenticate"] == 'Bearer error="invalid_request"'
    assert pg_client.get(TASKS, headers=bearer(mint(BOB))).json() == []


@pytest.mark.parametrize("claim", ["exp", "iat", "nbf"])
def test_date_claim_that_is_a_numeric_string_is_401_us2_2(
    pg_client: TestClient, claim: str
) -> None:
    # PyJWT alone reads "exp": "<digits>" as a number; RFC 7519 says NumericDate.
    now = int(time.time())
    token = mint(ALICE, claims={claim: str(now + 900 if claim == "exp" else now - 60)})
    assert_rejected(pg_client, token, f"Token claim '{claim}' is not a number")


# ---- the alias: the path user is checked before the body is read (FR-003, FR-008, SC-003) -------


class StreamedBody:
    """A chunked request body that notes whether the app asked for any of it."""

    def __init__(self, data: bytes) -> None:
        self.data, self.read = data, False

    def __iter__(self) -> Iterator[bytes]:
        self.read = True
        for start in range(0, len(self.data), 64 * 1024):
            yield self.data[start : start + 64 * 1024]


def oversized() -> bytes:
    """Valid JSON one byte over the body limit: only its size is wrong."""
    head, tail = b'{"title": "big", "description": "', b'"}'
    return head + b"d" * (MAX_BODY_BYTES + 1 - len(head) - len(tail)) + tail


BODIES: dict[str, Callable[[], bytes | StreamedBody]] = {
    "valid": lambda: b'{"title": "taken over", "completed": true}',
    "malformed": lambda: b'{"title": ',
    "not-an-object": lambda: b'["taken over"]',
    "too-large": oversized,  # sent with its Content-Length
    "too-large-streamed": lambda: StreamedBody(oversized()),  # chunked, no Content-Length
}
BODY_ROUTES = [("POST", ""), ("PUT", "/{id}"), ("PATCH", "/{id}"), ("PATCH", "/{id}/complete")]
PATH_MISMATCH = "The user id in the path does not match the token"


@pytest.fixture
def table(pg_url: str) -> Iterator[Callable[[], list[tuple[Any, ...]]]]:
    """Every row of the tasks table, for asserting that a refused request changed nothing."""
    engine = create_engine(pg_url)

    def rows() -> list[tuple[Any, ...]]:
        with engine.connect() as conn:
            return [tuple(r) for r in conn.execute(select(tasks).order_by(tasks.c.id))]

    yield rows
    engine.dispose()


@pytest.mark.parametrize("body", list(BODIES))
@pytest.mark.parametrize(("method", "suffix"), BODY_ROUTES, ids=[f"{m}{s}" for m, s in BODY_ROUTES])
@pytest.mark.parametrize(
    ("token", "status", "detail"),
    [
        (mint(ALICE), 403, PATH_MISMATCH),
        (None, 401, "Not authenticated: send Authorization: Bearer <token>"),
        (
            mint(ALICE, key="another-secret-0123456789abcdef-0123"),
            401,
            "Token signature is invalid",
        ),
    ],
    ids=["valid-token", "no-token", "bad-signature"],
)
def test_alias_answers_for_the_caller_and_path_user_before_reading_the_body_fr003_fr008(
    pg_client: TestClient,
    table: Callable[[], list[tuple[Any, ...]]],
    method: str,
    suffix: str,
    body: str,
    token: str | None,
    status: int,
    detail: str,
) -> None:
    # Alice's token on Bob's path, Bob's task: 403 whatever the body (valid, malformed, not an
    # object, too large); without a valid token, 401. Never the body's 400 or 413, and the
    # body is not even read.
    task = create_task(pg_client, mint(BOB))
    before = table()
    content = BODIES[body]()
    headers = {"Content-Type": "application/json", **(bearer(token) if token else {})}
    response = pg_client.request(
        method,
        f"/api/{BOB}/tasks{suffix.format(id=task['id'])}",
        content=content,
        headers=headers,
    )
    assert response.status_code == status, response.text
    assert response.json() == {"detail": detail}
    if status == 401:
        assert response.headers["www-authenticate"] == (INVALID_TOKEN if token else NO_CREDENTIALS)
    if isinstance(content, StreamedBody):
        assert not content.read
    assert table() == before


@pytest.mark.parametrize(
    ("body", "status"),
    [("valid", 201), ("malformed", 400), ("not-an-object", 400), ("too-large", 413)],
)
def test_alias_with_the_callers_own_id_reads_the_body_as_usual_fr008(
    pg_client: TestClient, body: str, status: int
) -> None:
    # The 403 above is the path's doing: on the caller's own path the body decides.
    response = pg_client.post(
        f"/api/{ALICE}/tasks",
        content=BODIES[body](),
        headers={"Content-Type": "application/json", **bearer(mint(ALICE))},
    )
    assert response.status_code == status, response.text


def test_alias_mounted_by_include_router_checks_the_path_user_before_the_body_fr003(
    pg_url: str,
) -> None:
    # The task routes will be one router mounted twice from main.py, the alias with
    # include_router(..., dependencies=[Depends(path_user_is_caller)]); FastAPI then builds the
    # route's handler for each inclusion. The path user is still checked before the body.
    router = APIRouter(route_class=AuthenticatedRoute)

    @router.post("")
    async def echo(caller: CurrentUser, body: dict[str, int]) -> dict[str, str]:
        return {"caller": caller.id}

    app = FastAPI()
    app.include_router(router, prefix="/api/tasks")
    app.include_router(
        router, prefix="/api/{user_id}/tasks", dependencies=[Depends(path_user_is_caller)]
    )
    app.state.verifier = TokenVerifier(make_settings(pg_url), None)
    app.state.fair_share = FairShare(concurrency=4, queue=32, wait_seconds=5)
    app.state.write_rate = WriteRateLimit(writes=100, seconds=1)
    install_error_handlers(app)
    client = TestClient(app)
    alice = {"Content-Type": "application/json", **bearer(mint(ALICE))}
    for path in (f"/api/{BOB}/tasks", f"/api/{BOB}%20/tasks"):
        response = client.post(path, content=b'{"n": ', headers=alice)
        assert response.status_code == 403, response.text
        assert response.json() == {"detail": PATH_MISMATCH}
    assert client.post(f"/api/{ALICE}/tasks", content=b'{"n": ', headers=alice).status_code == 400
    mine = client.post(f"/api/{ALICE}/tasks", json={"n": 1}, headers=alice)
    assert mine.json() == {"caller": ALICE}
    assert client.post("/api/tasks", json={"n": 1}, headers=alice).json() == {"caller": ALICE}
    anonymous = client.post(f"/api/{BOB}/tasks", content=b'{"n": ', headers={})
    assert anonymous.status_code == 401
