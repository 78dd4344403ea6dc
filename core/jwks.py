"""Better Auth's public keys (its JWKS): fetched without blocking, checked, cached, refetched.

The key rules (SPEC.md): a key verifies only tokens of an allow-listed algorithm, with the key
type and curve that algorithm needs, and only if its entry lets it verify signatures (``use``,
``key_ops``). A key published with private members, or an RSA key under 2048 bits, is never
used. A document that names one ``kid`` twice is refused whole: which of the two keys a token
means cannot be known.

Rotation never signs a user out: a ``kid`` this cache does not know is looked up in a JWKS
fetched after the token arrived. Fetches are spaced, so a flood of forged kids costs Better Auth
at most one fetch per spacing; a token that arrives before the next fetch is allowed waits for
it (at most the spacing) rather than being refused from a list older than itself.

Answers with keys or with this module's exceptions; turning them into HTTP is the caller's job.
"""

import asyncio
import contextlib
import json
import logging
import time
from collections import Counter
from typing import Any

import httpx2 as httpx
import jwt
from jwt.algorithms import RSAAlgorithm

log = logging.getLogger("taskapi.auth")

JWKS_MAX_BYTES = 256 * 1024
JWKS_FETCH_SECONDS = 5.0  # the whole fetch, however slowly the server trickles its answer
JWKS_TTL_SECONDS = 3600.0  # then refreshed in the background; requests never wait for it
# The least time between two fetches after a successful one, and so the longest a token with a
# new kid waits. Read when a cache is built (tests shorten it).
REFETCH_SPACING_SECONDS = 10.0
MIN_RSA_BITS = 2048  # NIST SP 800-57; Better Auth's default modulus
# Members only a private (or symmetric) JWK has. A JWKS that publishes one is misconfigured.
PRIVATE_JWK_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})
# alg -> (JWK kty, allowed curves). The allow-list of SPEC.md; anything else is refused.
ASYMMETRIC_ALGORITHMS: dict[str, tuple[str, frozenset[str] | None]] = {
    "EdDSA": ("OKP", frozenset({"Ed25519"})),
    "ES256": ("EC", frozenset({"P-256"})),
    "ES512": ("EC", frozenset({"P-521"})),
    "PS256": ("RSA", None),
    "RS256": ("RSA", None),
}


class UnknownKey(Exception):
    """No usable key has this kid, in a JWKS fetched after the token arrived."""


class KeyMismatch(Exception):
    """The key with this kid may not verify a token of this algorithm."""


class KeysUnavailable(Exception):
    """The JWKS could not be fetched, and no cached key has this kid."""


class DuplicateKid(ValueError):
    """The JWKS document names a kid more than once: refused whole."""

    def __init__(self, kids: list[str]) -> None:
        super().__init__(f"JWKS names a kid more than once: {', '.join(kids)[:200]}")
        self.kids = frozenset(kids)


class JwksCache:
    """Better Auth's public keys, cached for ``ttl`` seconds and kept past that if a refresh fails.

    Fetches are spaced, counted from the end of the last one: ``min_refetch_interval`` after a
    success, ``retry_interval`` after a failure (give it the 503's Retry-After: a client that
    retries then finds a fetch allowed, and the service recovers as soon as Better Auth does).
    A request that needs a fetch waits for the next allowed one after a success (rotation: at
    most the spacing), but not after a failure (it answers 503, retry later). Requests that
    queued behind a fetch take its result instead of starting another when that fetch began
    after they arrived.
    """

    def __init__(
        self,
        url: str,
        client: httpx.AsyncClient,
        *,
        retry_interval: float,
        ttl: float = JWKS_TTL_SECONDS,
        min_refetch_interval: float | None = None,
    ) -> None:
        self.url = url
        self._client = client
        self._ttl = ttl
        self._min_interval = (
            REFETCH_SPACING_SECONDS if min_refetch_interval is None else min_refetch_interval
        )
        self._retry_interval = retry_interval
        self._keys: dict[str, dict[str, Any]] = {}
        self._refused: frozenset[str] = frozenset()  # kids in the JWKS that are never used
        self._parsed: dict[tuple[str, str], jwt.PyJWK] = {}
        self._fetched_at: float | None = None  # last successful fetch, for the TTL
        self._began_at = float("-inf")  # start of the last fetch that ended, however it ended
        self._next_fetch_at = float("-inf")
        self._last_fetch_failed = False
        self._duplicates_logged: frozenset[str] = frozenset()
        self._lock = asyncio.Lock()
        self._background: asyncio.Task[None] | None = None

    async def key(self, kid: str, alg: str) -> jwt.PyJWK:
        """The key to verify a token of ``alg`` signed under ``kid``.

        Raises UnknownKey, KeyMismatch, or KeysUnavailable (the JWKS is unreachable or unusable
        and no cached key has this kid).
        """
        arrived = time.monotonic()
        if kid in self._keys:
            if self._fetched_at is None or arrived - self._fetched_at > self._ttl:
                self._refresh_in_background(arrived)  # serve the cached key; never wait
        elif kid not in self._refused:
            await self._fetch_since(arrived, kid)  # rotation, or the first request
        jwk = self._keys.get(kid)
        if jwk is None:
            if self._last_fetch_failed and kid not in self._refused:
                raise KeysUnavailable
            raise UnknownKey
        return self._parsed_key(kid, jwk, alg)

    async def aclose(self) -> None:
        """Stop a background refresh still running (at shutdown)."""
        if self._background is not None and not self._background.done():
            self._background.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._background

    async def _fetch_since(self, arrived: float, kid: str) -> None:
        """Return once ``kid`` is known or a fetch that began after ``arrived`` has ended.

        Never starts a fetch before the spacing allows: after a successful fetch it waits for
        the next one (at most the spacing); after a failed one it returns at once, and the
        request answers 503 with Retry-After.
        """
        while True:
            async with self._lock:
                if kid in self._keys or kid in self._refused or self._began_at >= arrived:
                    return
                wait = self._next_fetch_at - time.monotonic()
                if wait <= 0:
                    await self._fetch()
                    continue
                if self._last_fetch_failed:
                    return
            await asyncio.sleep(wait)

    def _refresh_in_background(self, requested_at: float) -> None:
        if self._background is None or self._background.done():
            self._background = asyncio.create_task(self._refresh(requested_at))

    async def _refresh(self, requested_at: float) -> None:
        async with self._lock:
            if self._began_at >= requested_at or time.monotonic() < self._next_fetch_at:
                return  # a fetch began after the keys went stale, or it is too soon for one
            await self._fetch()

    async def _fetch(self) -> None:
        """One fetch (the lock is held): the keys are replaced only by a usable document."""
        began = time.monotonic()
        try:
            async with asyncio.timeout(JWKS_FETCH_SECONDS):
                body = await self._download()
            keys, refused = self._read(body)
        except (httpx.HTTPError, ValueError, RecursionError, TimeoutError) as exc:
            self._last_fetch_failed = True
            self._log_failure(exc)
            pause = self._retry_interval
        else:
            # Parsed keys whose JWK is unchanged are kept (the same objects): tokens verified
            # with them stay verified (the token cache compares keys by identity).
            self._parsed = {
                kid_alg: parsed
                for kid_alg, parsed in self._parsed.items()
                if kid_alg[0] in keys and keys[kid_alg[0]] == self._keys.get(kid_alg[0])
            }
            self._keys, self._refused = keys, frozenset(refused)
            self._fetched_at = time.monotonic()
            self._last_fetch_failed = False
            self._duplicates_logged = frozenset()
            pause = self._min_interval
        self._began_at = began
        self._next_fetch_at = time.monotonic() + pause

    def _log_failure(self, exc: BaseException) -> None:
        if isinstance(exc, DuplicateKid):
            if exc.kids == self._duplicates_logged:
                return  # the same broken document again: said once is enough
            self._duplicates_logged = exc.kids
        # The type and a short message: never a whole (possibly huge) response body.
        error = f"{type(exc).__name__}: {str(exc)[:200]}"
        log.warning("JWKS fetch failed", extra={"jwks_url": self.url, "error": error})

    async def _download(self) -> bytes:
        request = self._client.build_request(
            "GET", self.url, headers={"Accept": "application/json", "Accept-Encoding": "identity"}
        )
        response = await self._client.send(request, stream=True)
        try:
            response.raise_for_status()
            body = bytearray()
            async for chunk in response.aiter_bytes():  # decoded, should it come compressed
                body += chunk
                if len(body) > JWKS_MAX_BYTES:
                    raise ValueError("JWKS document too large")
        finally:
            await response.aclose()
        return bytes(body)

    def _read(self, body: bytes) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
        """The usable keys by kid, and the kids refused with the reason (logged when new)."""
        document = json.loads(body)
        if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
            raise ValueError("not a JWKS document")
        entries = [
            jwk
            for jwk in document["keys"]
            if isinstance(jwk, dict) and isinstance(jwk.get("kid"), str)
        ]
        named = Counter(jwk["kid"] for jwk in entries)
        duplicates = sorted(kid for kid, count in named.items() if count > 1)
        if duplicates:
            raise DuplicateKid(duplicates)
        keys: dict[str, dict[str, Any]] = {}
        refused: dict[str, str] = {}
        for jwk in entries:
            reason = _refusal(jwk)
            if reason is None:
                keys[jwk["kid"]] = jwk
            else:
                refused[jwk["kid"]] = reason
                if jwk["kid"] not in self._refused:
                    log.warning("JWKS key ignored: %s", reason, extra={"kid": jwk["kid"]})
        return keys, refused

    def _parsed_key(self, kid: str, jwk: dict[str, Any], alg: str) -> jwt.PyJWK:
        kty, curves = ASYMMETRIC_ALGORITHMS[alg]
        crv, operations = jwk.get("crv"), jwk.get("key_ops", ["verify"])
        fits = (
            jwk.get("kty") == kty
            and (curves is None or (isinstance(crv, str) and crv in curves))
            and jwk.get("alg", alg) == alg
            and jwk.get("use", "sig") == "sig"
            and isinstance(operations, list)
            and "verify" in operations
        )
        if not fits:
            raise KeyMismatch
        parsed = self._parsed.get((kid, alg))
        if parsed is None:
            try:
                parsed = jwt.PyJWK(jwk, algorithm=alg)
            except (jwt.PyJWTError, ValueError, TypeError, KeyError):  # malformed members
                log.warning("unusable key in JWKS", extra={"kid": kid})
                raise UnknownKey from None
            self._parsed[(kid, alg)] = parsed
        return parsed


def _refusal(jwk: dict[str, Any]) -> str | None:
    """Why this published key may never be used, or None."""
    if PRIVATE_JWK_MEMBERS & jwk.keys():
        return "it has private members"
    if jwk.get("kty") == "RSA":
        try:
            bits = RSAAlgorithm.from_jwk(jwk).key_size
        except (jwt.PyJWTError, ValueError, TypeError, KeyError):
            return None  # malformed: refused when a token names it (unusable key)
        if bits < MIN_RSA_BITS:
            return f"its RSA modulus is {bits} bits, under {MIN_RSA_BITS}"
    return None
