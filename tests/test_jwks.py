"""Better Auth's keys (core/jwks.py): rotation never signs a user out, outages answer 503, and
only keys that pass the key rules verify anything (US2-1, US2-2, FR-002).

Every key is real and served over HTTP on 127.0.0.1: the suite's JWKS server (tests/keys.py), or
a scripted one that answers what a test needs (a broken document, a slow answer) and notes when
it was asked. Tests that change the JWKS, make it fail or count its fetches use a fresh app (an
empty key cache) and the ``jwks`` fixture, which restores the shared server afterwards. Fetches
are spaced (10 s after a success): tests that only need that time to have passed move
core/jwks.py's clock (``clock``); tests where a request really waits for the spacing shorten it
to ``SPACING``. Rejected writes assert that the tasks table did not change.
"""

import asyncio
import gzip
import itertools
import json
import logging
import math
import socket
import threading
import time
import uuid
import warnings
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx2
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi.testclient import TestClient
from jwt.algorithms import get_default_algorithms
from sqlalchemy import create_engine, select

from core import jwks as jwks_module
from core.errors import RETRY_AFTER_SECONDS
from core.jwks import JwksCache, UnknownKey
from models import tasks
from tests.conftest import LiveServer
from tests.keys import ALICE, JwksServer, SigningKey, bearer, generate_key, mint
from tests.test_auth import (
    KEYS_UNAVAILABLE,
    TASKS,
    assert_401,
    assert_accepted,
    assert_rejected,
    jwks_token,
    probe,
)

Write = Callable[..., httpx2.Response]  # write(token, client=pg_client)
Answer = tuple[int, dict[str, str], bytes]  # status, headers, body of a scripted JWKS response
JSON = {"Content-Type": "application/json"}
SPACING = 1.0  # seconds between two fetches, where a test shortens the spacing
RETRY = float(RETRY_AFTER_SECONDS)
UNKNOWN_KEY = "Token signing key is unknown"
NOT_FITTING = "Token algorithm does not match its signing key"


# ---- helpers ------------------------------------------------------------------------------------


class Clock:
    """Stands in for the ``time`` module inside core/jwks.py only, so a test can let time pass."""

    def __init__(self) -> None:
        self.offset = 0.0

    def monotonic(self) -> float:
        return time.monotonic() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds


def dumps(value: Any) -> bytes:
    return json.dumps(value).encode()


def document(*keys: SigningKey) -> Answer:
    return 200, JSON, dumps({"keys": [key.public_jwk() for key in keys]})


def eddsa(key: SigningKey, origin: str) -> str:
    """A token as Better Auth signs it: its kid, and the origin as iss and aud."""
    return mint(ALICE, alg=key.alg, key=key.private, kid=key.kid, issuer=origin, audience=origin)


def assert_keys_unavailable(response: httpx2.Response, token: str) -> None:
    assert response.status_code == 503
    assert response.json() == {"detail": KEYS_UNAVAILABLE}
    assert response.headers["retry-after"] == RETRY_AFTER_SECONDS
    assert "www-authenticate" not in response.headers  # not the caller's fault: no challenge
    assert token not in response.text


class ScriptedJwks(ThreadingHTTPServer):
    """A Better Auth on 127.0.0.1 that answers every GET with ``answer`` (as it was when the
    request came in, sent ``delay`` seconds later), noting when each request came in."""

    def __init__(self, answer: Answer, delay: float = 0.0) -> None:
        self.answer, self.delay = answer, delay
        self.asked_at: list[float] = []
        super().__init__(("127.0.0.1", 0), ScriptedHandler)
        self.base_url = f"http://127.0.0.1:{self.server_address[1]}"
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def hits(self) -> int:
        return len(self.asked_at)

    def __exit__(self, *args: Any) -> None:
        self.shutdown()
        super().__exit__(*args)


class ScriptedHandler(BaseHTTPRequestHandler):
    server: ScriptedJwks

    def do_GET(self) -> None:
        self.server.asked_at.append(time.monotonic())
        status, headers, body = self.server.answer
        time.sleep(self.server.delay)
        self.send_response(status)
        for name, value in {**headers, "Content-Length": str(len(body))}.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@dataclass
class PublishedKey(SigningKey):
    """A key whose JWKS entry the test bends: ``extra`` members are merged into it."""

    extra: dict[str, Any] = field(default_factory=dict)

    def public_jwk(self) -> dict[str, Any]:
        return {**super().public_jwk(), **self.extra}


def published(alg: str, extra: dict[str, Any] | None = None) -> PublishedKey:
    key = generate_key(alg)
    return PublishedKey(key.alg, key.kid, key.private, extra or {})


def private_members(key: SigningKey) -> dict[str, Any]:
    jwk = json.loads(get_default_algorithms()[key.alg].to_jwk(key.private))
    return {name: jwk[name] for name in ("d", "p", "q", "dp", "dq", "qi") if name in jwk}


class Records(logging.Handler):
    """What core/jwks.py logged: (message, error) of each record."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[tuple[str, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append((record.getMessage(), str(getattr(record, "error", ""))))


# ---- fixtures -----------------------------------------------------------------------------------


@pytest.fixture
def origin(jwks_server: JwksServer) -> str:
    """Better Auth's origin: the issuer and audience the apps pin by default."""
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


@pytest.fixture
def spaced_client(
    app_factory: Callable[..., TestClient], monkeypatch: pytest.MonkeyPatch
) -> TestClient:
    """As ``fresh_client``, with fetches spaced by ``SPACING`` instead of 10 s."""
    monkeypatch.setattr(jwks_module, "REFETCH_SPACING_SECONDS", SPACING)
    return app_factory()


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(jwks_module, "time", fake)
    return fake


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


@pytest.fixture
def jwks_log() -> Iterator[list[tuple[str, str]]]:
    records = Records()
    logger = logging.getLogger("taskapi.auth")
    logger.addHandler(records)
    yield records.lines
    logger.removeHandler(records)


# ---- key rotation: never a sign-out (US2-1, US2-2) ----------------------------------------------


def test_every_key_of_a_rotated_jwks_is_accepted_us2_1(
    fresh_client: TestClient, jwks: JwksServer, origin: str
) -> None:
    old, new = generate_key("EdDSA"), generate_key("EdDSA")
    jwks.keys = [old, new]
    assert_accepted(fresh_client, jwks_token(old, origin))
    assert_accepted(fresh_client, jwks_token(new, origin))


def test_new_key_is_fetched_on_unknown_kid_us2_1(
    fresh_client: TestClient, jwks: JwksServer, origin: str, clock: Clock
) -> None:
    old, new = generate_key("EdDSA"), generate_key("EdDSA")
    jwks.keys = [old]
    hits = jwks.hits
    assert_accepted(fresh_client, jwks_token(old, origin))
    assert jwks.hits == hits + 1

    jwks.keys = [old, new]  # Better Auth rotates later on
    clock.advance(11)
    assert_accepted(fresh_client, jwks_token(new, origin))
    assert jwks.hits == hits + 2


def test_new_kid_right_after_a_fetch_waits_for_the_next_one_and_is_accepted_us2_1(
    spaced_client: TestClient, jwks: JwksServer, origin: str, write: Write
) -> None:
    # Better Auth starts signing with a new key just after we fetched its JWKS. The token waits
    # for the next fetch the spacing allows and is accepted: a 401 here signs the user out.
    old, new = generate_key("EdDSA"), generate_key("EdDSA")
    jwks.keys = [old]
    first = time.monotonic()
    assert_accepted(spaced_client, jwks_token(old, origin))
    hits = jwks.hits
    jwks.keys = [old, new]
    sent = time.monotonic()
    created = spaced_client.post(
        TASKS, json={"title": "x"}, headers=bearer(jwks_token(new, origin))
    )
    assert created.status_code == 201, created.text
    assert created.json()["user_id"] == ALICE
    assert jwks.hits == hits + 1
    done = time.monotonic()
    assert done - first >= SPACING  # the spacing held
    assert done - sent < SPACING + 1.0  # and bounded the wait


def test_kid_still_unknown_after_a_fresh_fetch_is_401_us2_2(
    spaced_client: TestClient, jwks: JwksServer, origin: str, write: Write
) -> None:
    key = generate_key("EdDSA")
    jwks.keys = [key]
    assert_accepted(spaced_client, jwks_token(key, origin))
    hits = jwks.hits
    token = jwks_token(key, origin, kid="never-published")
    assert_401(write(token, spaced_client), UNKNOWN_KEY, token=token)
    assert jwks.hits == hits + 1  # looked up in a JWKS fetched after it arrived, then refused


def test_new_kid_whose_awaited_fetch_fails_is_503_not_401_us2_1(
    spaced_client: TestClient, jwks: JwksServer, origin: str, write: Write
) -> None:
    old, new = generate_key("EdDSA"), generate_key("EdDSA")
    jwks.keys = [old]
    assert_accepted(spaced_client, jwks_token(old, origin))
    hits = jwks.hits
    jwks.keys, jwks.fail = [old, new], True
    token = jwks_token(new, origin)
    assert_keys_unavailable(write(token, spaced_client), token)  # retry later, still signed in
    assert jwks.hits == hits + 1
    jwks.fail = False
    time.sleep(RETRY)  # what Retry-After says
    assert_accepted(spaced_client, token)


def test_a_thousand_requests_with_random_kids_cost_at_most_one_fetch_per_spacing_us2_2(
    app_factory: Callable[..., TestClient],
    eddsa_key: SigningKey,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Forged kids arriving over 2.5 spacings. Each waits (at most the spacing, plus the fetch)
    # for a fetch that began after it arrived, and is then refused: 401, never 503. Better Auth
    # is asked at most once per spacing, however many kids there are.
    monkeypatch.setattr(jwks_module, "REFETCH_SPACING_SECONDS", SPACING)
    spread, count = 2.5 * SPACING, 1000
    with ScriptedJwks(document(eddsa_key)) as scripted:
        client = app_factory(better_auth_url=scripted.base_url, better_auth_secret=None)
        assert_accepted(client, eddsa(eddsa_key, scripted.base_url))  # the keys, just fetched
        forged = [
            jwks_token(eddsa_key, scripted.base_url, kid=uuid.uuid4().hex) for _ in range(count)
        ]

        async def flood() -> list[tuple[int, Any, float]]:
            transport = httpx2.ASGITransport(app=client.app)
            async with httpx2.AsyncClient(transport=transport, base_url="http://api") as http:

                async def call(n: int, token: str) -> tuple[int, Any, float]:
                    await asyncio.sleep(n * spread / count)
                    sent = time.monotonic()
                    response = await http.get(TASKS, headers=bearer(token))
                    return response.status_code, response.json(), time.monotonic() - sent

                return await asyncio.gather(*(call(n, t) for n, t in enumerate(forged)))

        assert client.portal is not None
        answers = client.portal.call(flood)
        asked_at = list(scripted.asked_at)
    assert {(status, body["detail"]) for status, body, _ in answers} == {(401, UNKNOWN_KEY)}
    # At most the spacing and a fetch, plus the time to serve 1,000 requests on a shared CPU.
    assert max(took for _, _, took in answers) < SPACING + 5.0
    # The fetch before the flood, then one per spacing while forged kids keep arriving.
    assert 3 <= len(asked_at) <= 2 + math.ceil(spread / SPACING)
    assert min(later - earlier for earlier, later in itertools.pairwise(asked_at)) >= SPACING


def test_token_arriving_during_a_fetch_that_predates_its_key_waits_for_the_next_us2_1() -> None:
    # A fetch under way when Better Auth publishes a new key answers without it; a token signed
    # with that key arrived after the fetch began, so that answer cannot refuse it.
    old, new = generate_key("EdDSA"), generate_key("EdDSA")
    with ScriptedJwks(document(old)) as scripted:

        async def scenario() -> tuple[float, bool]:
            async with httpx2.AsyncClient() as http:
                cache = JwksCache(
                    scripted.base_url, http, retry_interval=RETRY, min_refetch_interval=SPACING
                )
                await cache.key(old.kid, "EdDSA")
                await asyncio.sleep(SPACING)  # the next fetch is allowed
                scripted.delay = 0.5
                forged = asyncio.create_task(cache.key("forged", "EdDSA"))  # starts fetch 2
                await asyncio.sleep(0.2)
                scripted.answer, scripted.delay = document(old, new), 0.0  # rotated meanwhile
                started = time.monotonic()
                await cache.key(new.kid, "EdDSA")  # fetch 3, once the spacing allows
                waited = time.monotonic() - started
                try:
                    await forged
                except UnknownKey:
                    return waited, True
                return waited, False

        waited, forged_refused = asyncio.run(scenario())
        assert scripted.hits == 3
    assert forged_refused  # its fetch began after it arrived: that answer stands
    assert waited < SPACING + 1.0


# ---- JWKS unavailable (US2-2, FR-002) -----------------------------------------------------------


def test_unreachable_jwks_without_cached_key_is_503_us2_2(
    fresh_client: TestClient, jwks: JwksServer, signing_keys: dict[str, SigningKey], origin: str
) -> None:
    jwks.fail = True
    token = jwks_token(signing_keys["EdDSA"], origin)
    response = probe(fresh_client, token)
    assert response.status_code == 503
    assert response.json() == {"detail": KEYS_UNAVAILABLE}
    assert response.headers["retry-after"] == RETRY_AFTER_SECONDS
    assert token not in response.text


def test_hs256_tokens_work_while_jwks_is_unreachable_fr002(
    fresh_client: TestClient, jwks: JwksServer
) -> None:
    jwks.fail = True
    assert_accepted(fresh_client, mint(ALICE))


def test_cached_key_survives_a_jwks_outage_us2_1(
    fresh_client: TestClient,
    jwks: JwksServer,
    signing_keys: dict[str, SigningKey],
    origin: str,
    clock: Clock,
) -> None:
    token = jwks_token(signing_keys["EdDSA"], origin)
    assert_accepted(fresh_client, token)  # the keys are now cached
    jwks.fail = True
    assert_accepted(fresh_client, token)
    clock.advance(2 * 3600)  # past the cache's TTL: the refresh fails, the old keys stay
    assert_accepted(fresh_client, token)
    # A kid that no cached key fits, while the server is down: 503, not 401.
    response = probe(fresh_client, jwks_token(signing_keys["EdDSA"], origin, kid="rotated"))
    assert response.status_code == 503
    assert response.json() == {"detail": KEYS_UNAVAILABLE}


def test_stale_keys_are_refreshed_without_making_requests_wait_us2_1(
    fresh_client: TestClient,
    jwks: JwksServer,
    signing_keys: dict[str, SigningKey],
    origin: str,
    clock: Clock,
) -> None:
    token = jwks_token(signing_keys["EdDSA"], origin)
    assert_accepted(fresh_client, token)
    hits = jwks.hits
    jwks.delay = 4.0  # Better Auth hangs; the app's fetch would wait for it
    try:
        clock.advance(2 * 3600)  # the cached keys are past their TTL
        started = time.monotonic()
        assert_accepted(fresh_client, token)
        # Served from the cache while the refresh runs in the background (well under the 4 s a
        # waiting request would take).
        assert time.monotonic() - started < 2.0
    finally:
        jwks.delay = 0.0
    deadline = time.monotonic() + 10
    while jwks.hits == hits and time.monotonic() < deadline:
        time.sleep(0.05)
    assert jwks.hits == hits + 1  # the refresh did happen, once


def test_jwks_that_trickles_its_answer_is_cut_off_with_a_503_us2_2(
    fresh_client: TestClient,
    jwks: JwksServer,
    signing_keys: dict[str, SigningKey],
    origin: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The per-read timeout alone lets a server that sends a byte now and then hold every
    # request for as long as it likes; the whole fetch has a deadline.
    monkeypatch.setattr(jwks_module, "JWKS_FETCH_SECONDS", 1.0)
    jwks.delay = 3.0
    started = time.monotonic()
    response = probe(fresh_client, jwks_token(signing_keys["EdDSA"], origin))
    assert response.status_code == 503
    assert response.json() == {"detail": KEYS_UNAVAILABLE}
    assert time.monotonic() - started < 2.5


def test_keys_are_fetched_again_once_retry_after_has_passed_us2_1(
    fresh_client: TestClient,
    jwks: JwksServer,
    signing_keys: dict[str, SigningKey],
    origin: str,
    clock: Clock,
) -> None:
    token = jwks_token(signing_keys["EdDSA"], origin)
    jwks.fail = True
    assert probe(fresh_client, token).status_code == 503
    jwks.fail = False  # Better Auth is back
    assert probe(fresh_client, token).status_code == 503  # within Retry-After: no new fetch
    clock.advance(RETRY)
    assert_accepted(fresh_client, token)  # not the 10 s refetch limit of a healthy cache


def test_requests_queued_behind_a_hanging_fetch_share_its_result_us2_2(
    fresh_client: TestClient,
    jwks: JwksServer,
    signing_keys: dict[str, SigningKey],
    origin: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Better Auth accepts the connection and never answers. A request that arrives while the
    # first fetch hangs waits for that fetch, and must not start a second one after it (the
    # deadline is longer than Retry-After, as in production: 5 s and 2 s).
    monkeypatch.setattr(jwks_module, "JWKS_FETCH_SECONDS", 2.5)
    jwks.delay = 6.0
    token = jwks_token(signing_keys["EdDSA"], origin)
    hits = jwks.hits
    started = time.monotonic()

    def late_probe(delay: float) -> tuple[int, float]:
        time.sleep(delay)
        response = probe(fresh_client, token)
        return response.status_code, time.monotonic() - started

    with ThreadPoolExecutor(3) as pool:
        answers = list(pool.map(late_probe, [0.0, 0.5, 1.0]))
    assert [status for status, _ in answers] == [503, 503, 503]
    assert max(elapsed for _, elapsed in answers) < 4.0  # one deadline (2.5 s), not two
    assert jwks.hits == hits + 1


# ---- unusable answers on a cold cache: 503, not 401 (FR-002) ------------------------------------

BAD_ANSWERS: dict[str, Callable[[dict[str, Any], str], Answer]] = {
    "not-json": lambda jwk, _: (200, JSON, b"<!doctype html><title>Sign in</title>"),
    "keys-not-a-list": lambda jwk, _: (200, JSON, dumps({"keys": {"k": jwk}})),
    "redirect": lambda jwk, elsewhere: (302, {"Location": elsewhere}, b""),
    "over-256-kib": lambda jwk, _: (200, JSON, dumps({"keys": [jwk], "_": "x" * 2**18})),
}


@pytest.mark.parametrize("answer", list(BAD_ANSWERS))
def test_unusable_jwks_answer_on_a_cold_cache_is_503_fr002(
    app_factory: Callable[..., TestClient],
    jwks_server: JwksServer,
    write: Write,
    eddsa_key: SigningKey,
    answer: str,
) -> None:
    # Every answer holds the right key somehow (the redirect leads to a good JWKS): none is used.
    elsewhere, hits_elsewhere = f"{jwks_server.base_url}/api/auth/jwks", jwks_server.hits
    with ScriptedJwks(BAD_ANSWERS[answer](eddsa_key.public_jwk(), elsewhere)) as scripted:
        token = eddsa(eddsa_key, scripted.base_url)
        assert_keys_unavailable(write(token, app_factory(better_auth_url=scripted.base_url)), token)
        assert scripted.hits == 1
    assert jwks_server.hits == hits_elsewhere  # the redirect was not followed


def test_jwks_compressed_against_our_wishes_is_still_read_us2_1(
    app_factory: Callable[..., TestClient], eddsa_key: SigningKey
) -> None:
    # We ask for identity encoding; a proxy may gzip anyway. The key is in there: use it.
    body = gzip.compress(dumps({"keys": [eddsa_key.public_jwk()]}))
    with ScriptedJwks((200, {**JSON, "Content-Encoding": "gzip"}, body)) as scripted:
        client = app_factory(better_auth_url=scripted.base_url)
        token = eddsa(eddsa_key, scripted.base_url)
        response = client.get(TASKS, headers=bearer(token))
    assert response.status_code == 200, response.text


def test_jwks_that_inflates_past_256_kib_is_503_fr002(
    app_factory: Callable[..., TestClient], write: Write, eddsa_key: SigningKey
) -> None:
    # 4 KiB on the wire, 4 MiB decompressed: the cap counts what we would hold in memory.
    padded = {"keys": [eddsa_key.public_jwk()], "_": " " * 2**22}
    body = gzip.compress(dumps(padded))
    assert len(body) < 2**13
    with ScriptedJwks((200, {**JSON, "Content-Encoding": "gzip"}, body)) as scripted:
        token = eddsa(eddsa_key, scripted.base_url)
        assert_keys_unavailable(write(token, app_factory(better_auth_url=scripted.base_url)), token)


def test_refused_jwks_connection_on_a_cold_cache_is_503_fr002(
    app_factory: Callable[..., TestClient], write: Write, eddsa_key: SigningKey
) -> None:
    with socket.socket() as probe:  # a port that was free a moment ago: nothing listens there
        probe.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{probe.getsockname()[1]}"
    token = eddsa(eddsa_key, closed)
    assert_keys_unavailable(write(token, app_factory(better_auth_url=closed)), token)


# ---- the key rules: what a JWKS may hold (US2-2) ------------------------------------------------


@pytest.mark.parametrize("alg", ["RS256", "PS256", "EdDSA", "ES256"])
def test_key_published_with_its_private_half_is_never_used_us2_2(
    fresh_client: TestClient, jwks: JwksServer, origin: str, alg: str
) -> None:
    # A JWKS that leaks its private key is misconfigured: anyone could sign with that key.
    key = published(alg)
    key.extra = private_members(key)
    assert key.extra
    jwks.keys = [key]
    assert_rejected(fresh_client, jwks_token(key, origin), "Token signing key is unknown")


@pytest.mark.parametrize(
    "extra",
    [{"crv": ["Ed25519"]}, {"crv": "X25519"}, {"use": "enc"}, {"alg": "ES256"}, {"kty": "EC"}],
    ids=["crv-list", "crv-other", "use-enc", "alg-other", "kty-other"],
)
def test_key_whose_entry_does_not_fit_the_token_is_401_us2_2(
    fresh_client: TestClient, jwks: JwksServer, origin: str, extra: dict[str, Any]
) -> None:
    key = published("EdDSA", extra)
    jwks.keys = [key]
    assert_rejected(
        fresh_client, jwks_token(key, origin), "Token algorithm does not match its signing key"
    )


@pytest.mark.parametrize(
    "key_ops",
    [["encrypt"], ["sign"], ["verify "], [], "verify", None],
    ids=["encrypt", "sign", "padded", "empty", "not-a-list", "null"],
)
def test_key_whose_key_ops_do_not_allow_verify_is_401_us2_2(
    fresh_client: TestClient, jwks: JwksServer, origin: str, write: Write, key_ops: object
) -> None:
    # RFC 7517 §4.3: key_ops lists what a key is for, as use does; a key not for "verify"
    # verifies nothing.
    key = published("EdDSA", {"key_ops": key_ops})
    jwks.keys = [key]
    token = jwks_token(key, origin)
    assert_401(write(token, fresh_client), NOT_FITTING, token=token)


@pytest.mark.parametrize("key_ops", [["verify"], ["sign", "verify"]], ids=["verify", "both"])
def test_key_whose_key_ops_allow_verify_is_used_us2_1(
    fresh_client: TestClient, jwks: JwksServer, origin: str, key_ops: list[str]
) -> None:
    key = published("EdDSA", {"key_ops": key_ops})
    jwks.keys = [key]
    assert_accepted(fresh_client, jwks_token(key, origin))


@pytest.mark.parametrize("bits", [1024, 2047])
@pytest.mark.parametrize("alg", ["RS256", "PS256"])
def test_rsa_key_under_2048_bits_is_never_used_and_logged_once_us2_2(
    fresh_client: TestClient,
    jwks: JwksServer,
    origin: str,
    write: Write,
    jwks_log: list[tuple[str, str]],
    clock: Clock,
    alg: str,
    bits: int,
) -> None:
    weak = SigningKey(alg, uuid.uuid4().hex, rsa.generate_private_key(65537, bits))
    jwks.keys = [weak]
    with warnings.catch_warnings():  # PyJWT signs with it all the same; it only warns
        warnings.simplefilter("ignore", jwt.InsecureKeyLengthWarning)
        token = jwks_token(weak, origin)
    hits = jwks.hits
    for _ in range(2):
        assert_401(write(token, fresh_client), UNKNOWN_KEY, token=token)
        clock.advance(11)  # a fetch would be allowed: a refused key is no reason for one
    assert jwks.hits == hits + 1
    unpublished = jwks_token(generate_key("EdDSA"), origin)
    assert_401(write(unpublished, fresh_client), UNKNOWN_KEY, token=unpublished)
    assert jwks.hits == hits + 2  # the same document again: the weak key is not logged again
    assert jwks_log == [(f"JWKS key ignored: its RSA modulus is {bits} bits, under 2048", "")]


def test_rsa_key_of_2048_bits_is_used_us2_1(
    fresh_client: TestClient, jwks: JwksServer, origin: str
) -> None:
    key = SigningKey("RS256", uuid.uuid4().hex, rsa.generate_private_key(65537, 2048))
    jwks.keys = [key]
    assert_accepted(fresh_client, jwks_token(key, origin))


DUPLICATES: dict[str, Callable[[SigningKey], list[dict[str, Any]]]] = {
    "two-keys": lambda key: [
        key.public_jwk(),
        {**generate_key("EdDSA").public_jwk(), "kid": key.kid},
    ],
    "same-key-twice": lambda key: [key.public_jwk(), key.public_jwk()],
}


@pytest.mark.parametrize("entries", list(DUPLICATES))
def test_jwks_naming_one_kid_twice_is_refused_and_logged_once_us2_2(
    app_factory: Callable[..., TestClient],
    eddsa_key: SigningKey,
    write: Write,
    jwks_log: list[tuple[str, str]],
    clock: Clock,
    entries: str,
) -> None:
    # Which of two keys a token means cannot be known: the whole document is refused, as an
    # unusable answer is (503, retried after Retry-After), and said once in the log.
    body = dumps({"keys": DUPLICATES[entries](eddsa_key)})
    with ScriptedJwks((200, JSON, body)) as scripted:
        client = app_factory(better_auth_url=scripted.base_url)
        token = eddsa(eddsa_key, scripted.base_url)
        for _ in range(3):
            assert_keys_unavailable(write(token, client), token)
            clock.advance(RETRY)  # the next request fetches the same document again
        assert scripted.hits == 3
    error = f"DuplicateKid: JWKS names a kid more than once: {eddsa_key.kid}"
    assert jwks_log == [("JWKS fetch failed", error)]


def test_jwks_naming_one_kid_twice_leaves_the_cached_keys_in_use_us2_1(
    app_factory: Callable[..., TestClient], eddsa_key: SigningKey, write: Write, clock: Clock
) -> None:
    # A refused document is a failed fetch: the keys fetched before it keep verifying.
    with ScriptedJwks(document(eddsa_key)) as scripted:
        client = app_factory(better_auth_url=scripted.base_url)
        token = eddsa(eddsa_key, scripted.base_url)
        assert_accepted(client, token)
        other = generate_key("EdDSA")
        twice = [other.public_jwk(), {**generate_key("EdDSA").public_jwk(), "kid": other.kid}]
        scripted.answer = (200, JSON, dumps({"keys": [eddsa_key.public_jwk(), *twice]}))
        clock.advance(2 * 3600)  # past the TTL: refreshed in the background, and refused
        assert_accepted(client, token)
        newcomer = eddsa(other, scripted.base_url)
        clock.advance(RETRY)
        assert_keys_unavailable(write(newcomer, client), newcomer)
        assert_accepted(client, token)


# ---- concurrency on a cold cache (FR-002) -------------------------------------------------------


@pytest.mark.slow
def test_concurrent_requests_on_a_cold_cache_share_one_jwks_fetch_fr002(
    pg_url: str, eddsa_key: SigningKey
) -> None:
    jwks = JwksServer([eddsa_key], delay=1.0).start()  # slow: all 20 arrive during the fetch
    env = {"ENVIRONMENT": "production", "DATABASE_URL": pg_url, "BETTER_AUTH_URL": jwks.base_url}
    server = LiveServer({**env, "LOG_LEVEL": "WARNING"})
    token, requests = eddsa(eddsa_key, jwks.base_url), 20
    start = threading.Barrier(requests)

    def call(_: int) -> tuple[int, float]:
        start.wait()
        began = time.monotonic()
        response = httpx2.get(f"{server.url}{TASKS}", headers=bearer(token), timeout=30)
        return response.status_code, time.monotonic() - began

    try:
        server.wait_ready()
        with ThreadPoolExecutor(requests) as pool:
            results = list(pool.map(call, range(requests)))
    finally:
        server.stop()
        jwks.stop()
    assert [status for status, _ in results] == [200] * requests
    assert min(took for _, took in results) > 0.5  # each one waited on the single fetch
    assert jwks.hits == 1
