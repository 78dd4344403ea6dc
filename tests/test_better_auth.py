"""Against a real Better Auth (FR-013, SC-004, US2-1, US2-2): tokens a Next.js frontend gets.

Better Auth 1.7 runs in Node (tests/betterauth/server.mjs) with its in-memory database, the
email+password sign-in, and the ``jwt()`` and ``bearer()`` plugins. Users sign up through its HTTP
API; their tokens come the way a frontend gets them (``GET /api/auth/token``, the
``set-auth-jwt`` header of ``get-session``, a Next.js route signing with the shared secret, the
session cookie cache). The API under test is built with ``BETTER_AUTH_URL`` pointing at it.
"""

import re
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from fastapi.testclient import TestClient

from core.config import origin_of
from tests.betterauth_fixtures import BetterAuth, User, claims, header

ApiFactory = Callable[..., TestClient]
CUSTOM_ISSUER = "https://auth.example.test"  # tests/betterauth/server.mjs, instance "custom"
CUSTOM_AUDIENCE = "https://tasks-api.example.test"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def jwks_api(app_factory: ApiFactory, better_auth: BetterAuth) -> Callable[..., TestClient]:
    """The API in JWKS mode only (no shared secret), trusting one Better Auth instance."""

    def build(instance: str = "main", **overrides: Any) -> TestClient:
        overrides.setdefault("better_auth_secret", None)
        return app_factory(better_auth_url=better_auth.url(instance), **overrides)

    return build


@pytest.fixture
def secret_api(app_factory: ApiFactory, better_auth: BetterAuth) -> TestClient:
    """The API in shared-secret mode only, with the Better Auth server's BETTER_AUTH_SECRET."""
    return app_factory(better_auth_url=None, better_auth_secret=better_auth.secret)


def assert_401(response: Any, detail: str) -> None:
    assert response.status_code == 401, response.text
    assert response.json() == {"detail": detail}
    assert response.headers["www-authenticate"] == 'Bearer error="invalid_token"'


def create_and_list(api: TestClient, token: str, title: str) -> list[dict[str, Any]]:
    created = api.post("/api/tasks", json={"title": title}, headers=bearer(token))
    assert created.status_code == 201, created.text
    listed = api.get("/api/tasks", headers=bearer(token))
    assert listed.status_code == 200, listed.text
    tasks: list[dict[str, Any]] = listed.json()
    return tasks


# --- The frontend's two ways of getting the JWT, CRUD and isolation (US1, US2) -------------------


def test_token_endpoint_and_set_auth_jwt_header_both_work_us2_1_fr013(
    jwks_api: Callable[..., TestClient], better_auth: BetterAuth
) -> None:
    api = jwks_api()
    alice = better_auth.sign_up()
    from_endpoint = better_auth.token(alice)
    from_header = better_auth.header_jwt(alice)
    with_session_bearer = better_auth.token_with_session_bearer(alice)
    for token in (from_endpoint, from_header, with_session_bearer):
        assert claims(token)["sub"] == alice.id
        response = api.get("/api/tasks", headers=bearer(token))
        assert response.status_code == 200, response.text
        assert response.json() == []
    task = api.post("/api/tasks", json={"title": "from Better Auth"}, headers=bearer(from_header))
    assert task.status_code == 201
    assert task.json()["user_id"] == alice.id  # the identity is the Better Auth user id (FR-003)


def test_crud_with_a_better_auth_token_us1_1_us3_3(
    jwks_api: Callable[..., TestClient], better_auth: BetterAuth
) -> None:
    api = jwks_api()
    auth = bearer(better_auth.token(better_auth.sign_up()))
    created = api.post("/api/tasks", json={"title": "Buy milk", "description": "2 l"}, headers=auth)
    assert created.status_code == 201
    task = created.json()
    assert (task["title"], task["description"], task["completed"]) == ("Buy milk", "2 l", False)
    url = f"/api/tasks/{task['id']}"
    assert api.get(url, headers=auth).json() == task
    updated = api.put(url, json={"title": "Buy oat milk"}, headers=auth)
    assert updated.status_code == 200
    assert updated.json()["title"] == "Buy oat milk"
    toggled = api.patch(f"{url}/complete", headers=auth)
    assert toggled.status_code == 200
    assert toggled.json()["completed"] is True
    deleted = api.delete(url, headers=auth)
    assert deleted.status_code == 200
    assert deleted.json()["id"] == task["id"]
    gone = api.get(url, headers=auth)
    assert gone.status_code == 404
    assert gone.json() == {"detail": "Task not found"}


def test_each_user_lists_only_their_own_tasks_us1_2_sc003(
    jwks_api: Callable[..., TestClient], better_auth: BetterAuth
) -> None:
    api = jwks_api()
    alice, bob = better_auth.sign_up(), better_auth.sign_up()
    alice_token, bob_token = better_auth.token(alice), better_auth.token(bob)
    assert [t["title"] for t in create_and_list(api, alice_token, "alice's")] == ["alice's"]
    assert [t["title"] for t in create_and_list(api, bob_token, "bob's")] == ["bob's"]
    mine = api.get("/api/tasks", headers=bearer(alice_token))
    assert [t["title"] for t in mine.json()] == ["alice's"]
    assert mine.headers["x-total-count"] == "1"


@pytest.mark.parametrize(
    ("method", "suffix", "body"),
    [
        ("GET", "", None),
        ("PUT", "", {"title": "hijacked"}),
        ("PATCH", "", {"completed": True}),
        ("PATCH", "/complete", None),
        ("DELETE", "", None),
    ],
)
def test_other_users_task_is_404_with_better_auth_tokens_us1_3_fr007(
    jwks_api: Callable[..., TestClient],
    better_auth: BetterAuth,
    method: str,
    suffix: str,
    body: dict[str, Any] | None,
) -> None:
    api = jwks_api()
    alice = bearer(better_auth.token(better_auth.sign_up()))
    bob = bearer(better_auth.token(better_auth.sign_up()))
    task = api.post("/api/tasks", json={"title": "private"}, headers=alice).json()
    foreign = api.request(method, f"/api/tasks/{task['id']}{suffix}", json=body, headers=bob)
    assert foreign.status_code == 404
    assert foreign.json() == {"detail": "Task not found"}
    assert api.get(f"/api/tasks/{task['id']}", headers=alice).json() == task  # untouched


def test_better_auth_writes_its_base_url_origin_as_iss_and_aud(better_auth: BetterAuth) -> None:
    """What Better Auth 1.7 really writes, with ``baseURL: "http://127.0.0.1:PORT"``: ``iss`` and
    ``aud`` are exactly that origin, the form ``origin_of(BETTER_AUTH_URL)`` pins."""
    base = better_auth.url("main")
    token = better_auth.token(better_auth.sign_up())
    written = claims(token)
    assert written["iss"] == written["aud"] == base == origin_of(base + "/")
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+", base)
    assert written["exp"] - written["iat"] == 15 * 60  # the plugin's default lifetime
    assert header(token) == {"alg": "EdDSA", "kid": better_auth.jwks("main")[0]["kid"]}


def test_better_auth_url_with_a_trailing_slash_pins_the_same_origin_fr013(
    app_factory: ApiFactory, better_auth: BetterAuth
) -> None:
    """``BETTER_AUTH_URL=http://127.0.0.1:PORT/`` (as often pasted) trusts the same tokens."""
    api = app_factory(better_auth_url=better_auth.url("main") + "/", better_auth_secret=None)
    token = better_auth.token(better_auth.sign_up())
    assert api.get("/api/tasks", headers=bearer(token)).status_code == 200


# --- Every algorithm the jwt plugin offers, key rotation ----------------------------------------

ALGORITHMS = {
    "EdDSA": ("main", "OKP", "Ed25519"),
    "ES256": ("ES256", "EC", "P-256"),
    "ES512": ("ES512", "EC", "P-521"),
    "PS256": ("PS256", "RSA", None),
    "RS256": ("RS256", "RSA", None),
}


@pytest.mark.parametrize("alg", list(ALGORITHMS))
def test_every_jwt_plugin_algorithm_is_accepted_us2_1(
    jwks_api: Callable[..., TestClient], better_auth: BetterAuth, alg: str
) -> None:
    instance, kty, crv = ALGORITHMS[alg]
    user = better_auth.sign_up(instance)
    token = better_auth.token(user)
    (key,) = better_auth.jwks(instance)
    assert header(token) == {"alg": alg, "kid": key["kid"]}
    assert (key["alg"], key["kty"], key.get("crv")) == (alg, kty, crv)
    tasks = create_and_list(jwks_api(instance), token, f"signed with {alg}")
    assert [(t["title"], t["user_id"]) for t in tasks] == [(f"signed with {alg}", user.id)]


def test_rotated_keys_both_verify_tokens_with_either_kid_us2_1(
    jwks_api: Callable[..., TestClient], better_auth: BetterAuth
) -> None:
    """Better Auth's own rotation (``jwks.rotationInterval``, 1 s on this instance): a token
    signed before and one signed after it carry different kids, and both are accepted."""
    user = better_auth.sign_up("rotating")
    before = better_auth.token(user)
    time.sleep(1.2)  # the signing key expires; the next token is signed with a new one
    after = better_auth.token(user)
    kids = {header(before)["kid"], header(after)["kid"]}
    assert len(kids) == 2
    assert kids <= {key["kid"] for key in better_auth.jwks("rotating")}  # both published
    api = jwks_api("rotating")
    assert [t["title"] for t in create_and_list(api, before, "old key")] == ["old key"]
    both = create_and_list(api, after, "new key")
    assert sorted(t["title"] for t in both) == ["new key", "old key"]


def test_key_rotation_while_users_keep_calling_signs_nobody_out_us2_1_sc001(
    jwks_api: Callable[..., TestClient], better_auth: BetterAuth
) -> None:
    """Better Auth rotates its signing key every second (instance "rotating") while four users
    keep calling the API, each with a fresh token from ``GET /api/auth/token`` for every call, as
    a frontend that refreshes its token does. Most of those kids did not exist when the API last
    fetched the JWKS, and the next fetch is not allowed until the spacing (10 s) has passed:
    each such token waits for it, and every answer is a 2xx (a 401 would sign the user out)."""
    api = jwks_api("rotating")
    users = [better_auth.sign_up("rotating") for _ in range(4)]
    calling_until = time.monotonic() + 12.0  # past one spacing, so some calls wait twice

    def keep_calling(user: User) -> list[tuple[int, str, float]]:
        answers: list[tuple[int, str, float]] = []
        while time.monotonic() < calling_until:
            token = better_auth.token(user)
            sent = time.monotonic()
            if len(answers) % 2:
                response = api.get("/api/tasks", headers=bearer(token))
            else:
                response = api.post("/api/tasks", json={"title": "x"}, headers=bearer(token))
            answers.append((response.status_code, header(token)["kid"], time.monotonic() - sent))
        return answers

    with ThreadPoolExecutor(len(users)) as pool:
        answers = [answer for mine in pool.map(keep_calling, users) for answer in mine]
    assert [status for status, _, _ in answers if not 200 <= status < 300] == []
    assert len({kid for _, kid, _ in answers}) >= 3  # the key really rotated, more than once
    assert max(took for _, _, took in answers) < 10.0 + 3.0  # at most the spacing, and a fetch


# --- Issuer, audience, another Better Auth, expiry ------------------------------------------------


def test_custom_issuer_and_audience_are_accepted_when_configured_us2_1(
    jwks_api: Callable[..., TestClient], better_auth: BetterAuth
) -> None:
    token = better_auth.token(better_auth.sign_up("custom"))
    assert (claims(token)["iss"], claims(token)["aud"]) == (CUSTOM_ISSUER, CUSTOM_AUDIENCE)
    api = jwks_api("custom", jwt_issuer=CUSTOM_ISSUER, jwt_audience=CUSTOM_AUDIENCE)
    assert create_and_list(api, token, "custom iss/aud")[0]["title"] == "custom iss/aud"


def test_custom_issuer_is_refused_without_jwt_issuer_us2_2(
    jwks_api: Callable[..., TestClient], better_auth: BetterAuth
) -> None:
    """The API pins the issuer to BETTER_AUTH_URL's origin unless JWT_ISSUER says otherwise."""
    token = better_auth.token(better_auth.sign_up("custom"))
    api = jwks_api("custom", jwt_audience=CUSTOM_AUDIENCE)
    assert_401(api.get("/api/tasks", headers=bearer(token)), "Token issuer is not accepted")


def test_token_for_another_audience_is_401_us2_2(
    jwks_api: Callable[..., TestClient], better_auth: BetterAuth
) -> None:
    """A real token from the right issuer, minted for another API: refused by its ``aud``."""
    token = better_auth.token(better_auth.sign_up("custom"))
    api = jwks_api("custom", jwt_issuer=CUSTOM_ISSUER, jwt_audience="https://other.example.test")
    assert_401(api.get("/api/tasks", headers=bearer(token)), "Token audience is not accepted")


def test_token_from_another_better_auth_is_401_us2_2(
    jwks_api: Callable[..., TestClient], better_auth: BetterAuth
) -> None:
    api = jwks_api("main")
    # Another deployment with its own keys: its kid is not in this one's JWKS.
    elsewhere = better_auth.token(better_auth.sign_up("ES256"))
    assert_401(api.get("/api/tasks", headers=bearer(elsewhere)), "Token signing key is unknown")
    # "twin" shares main's database and secret, so its tokens are signed with main's very key;
    # only its issuer (its own origin) tells them apart.
    twin_token = better_auth.token(better_auth.sign_up("twin"))
    assert header(twin_token)["kid"] in {key["kid"] for key in better_auth.jwks("main")}
    assert claims(twin_token)["iss"] == better_auth.url("twin")
    assert_401(api.get("/api/tasks", headers=bearer(twin_token)), "Token issuer is not accepted")
    # The same token is good where it belongs.
    assert jwks_api("twin").get("/api/tasks", headers=bearer(twin_token)).status_code == 200


def test_expired_better_auth_token_is_401_us2_2(
    jwks_api: Callable[..., TestClient], better_auth: BetterAuth
) -> None:
    """Instance "short" signs 3-second tokens; with no leeway the API refuses them once expired."""
    api = jwks_api("short", jwt_leeway_seconds=0)
    token = better_auth.token(better_auth.sign_up("short"))
    assert claims(token)["exp"] - claims(token)["iat"] == 3
    assert api.get("/api/tasks", headers=bearer(token)).status_code == 200
    time.sleep(max(0.0, claims(token)["exp"] - time.time()) + 0.2)
    assert_401(api.get("/api/tasks", headers=bearer(token)), "Token has expired")


# --- Shared-secret mode: the session cookie cache and a Next.js route (FR-002) ------------------


def test_session_cookie_cache_jwt_is_accepted_with_the_shared_secret_fr002(
    secret_api: TestClient, app_factory: ApiFactory, better_auth: BetterAuth
) -> None:
    """``session.cookieCache`` with strategy "jwt": HS256 with BETTER_AUTH_SECRET, no ``sub``,
    the user id in ``session.userId``; read server-side from the HttpOnly cookie."""
    user: User = better_auth.sign_up("cookie")
    signed_in = better_auth.sign_in("cookie", user.email)
    response = signed_in.get("/api/session-token")
    assert response.status_code == 200, response.text
    token = response.json()["token"]
    assert header(token) == {"alg": "HS256"}
    written = claims(token)
    assert not {"sub", "iss", "aud"} & written.keys()
    assert written["session"]["userId"] == written["user"]["id"] == user.id
    tasks = create_and_list(secret_api, token, "from the cookie cache")
    assert [(t["title"], t["user_id"]) for t in tasks] == [("from the cookie cache", user.id)]
    # Signed with Better Auth's secret, not any secret: another one refuses it.
    other = app_factory(better_auth_url=None, better_auth_secret="another-secret-" + "x7" * 16)
    assert_401(other.get("/api/tasks", headers=bearer(token)), "Token signature is invalid")


def test_nextjs_route_hs256_token_is_accepted_fr002(
    secret_api: TestClient, better_auth: BetterAuth
) -> None:
    """The README's Next.js route (jose SignJWT with BETTER_AUTH_SECRET, subject = the session's
    user id), served by the test server at /api/token next to Better Auth."""
    user = better_auth.sign_up("main")
    response = user.get("/api/token")
    assert response.status_code == 200, response.text
    token = response.json()["token"]
    assert header(token) == {"alg": "HS256"}
    assert claims(token)["sub"] == user.id
    tasks = create_and_list(secret_api, token, "from the Next.js route")
    assert [(t["title"], t["user_id"]) for t in tasks] == [("from the Next.js route", user.id)]
    # Without a session the route mints nothing.
    anonymous = User("", "", better_auth.url("main"), "", "")
    assert anonymous.get("/api/token").status_code == 401
