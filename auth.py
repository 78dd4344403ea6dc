"""Better Auth token verification -> the caller's identity (the ``CurrentUser`` dependency).

Two modes (SPEC.md), either or both:
- JWKS: Better Auth's ``jwt()`` plugin signs with an asymmetric key published at
  ``{BETTER_AUTH_URL}/api/auth/jwks``. Issuer and audience are pinned here, never read from the
  token (without a base URL, Better Auth derives them from the request's Host header).
- Shared secret: HS256 with ``BETTER_AUTH_SECRET`` (tokens minted by a Next.js route, or Better
  Auth's session cookie cache with strategy "jwt", whose user id is ``session.userId``).

The token's ``alg`` only chooses between these paths; each path has its own key and its own
allow-list, so an HMAC token is never checked against public key material and ``none`` matches
nothing. Identity comes from the verified token alone (FR-003).
"""

import asyncio
import base64
import binascii
import contextlib
import hashlib
import json
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, TypeGuard

import httpx2 as httpx
import jwt
from fastapi import Depends, Path, Request, Response, Security
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from fastapi.security import HTTPBearer
from starlette.exceptions import HTTPException

from core.config import Settings
from core.errors import RETRY_AFTER_SECONDS, ServiceUnavailable
from models import USER_ID_MAX

log = logging.getLogger("taskapi.auth")

MAX_TOKEN_BYTES = 8192
MAX_HEADER_CHARS = 2048  # Better Auth's header is {"alg","kid"}: well under 200 characters
JWKS_MAX_BYTES = 256 * 1024
JWKS_FETCH_SECONDS = 5.0  # the whole fetch, however slowly the server trickles its answer
# Members only a private (or symmetric) JWK has. A JWKS that publishes one is misconfigured;
# such a key is never used.
PRIVATE_JWK_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})
# alg -> (JWK kty, allowed curves). The allow-list of SPEC.md; anything else is refused.
ASYMMETRIC_ALGORITHMS: dict[str, tuple[str, frozenset[str] | None]] = {
    "EdDSA": ("OKP", frozenset({"Ed25519"})),
    "ES256": ("EC", frozenset({"P-256"})),
    "ES512": ("EC", frozenset({"P-521"})),
    "PS256": ("RSA", None),
    "RS256": ("RSA", None),
}
# Header parameters that would let a token name its own key. Never fetched, never trusted.
FORBIDDEN_HEADER_PARAMS = ("jku", "x5u", "jwk", "x5c", "crit")
# Verified tokens remembered per process (see TokenVerifier). Keyed by a SHA-256 digest, so an
# entry is about 300 bytes whatever the token's size: 4096 entries stay near 1 MB.
VERIFIED_TOKENS_MAX = 4096

bearer_scheme = HTTPBearer(
    auto_error=False,
    bearerFormat="JWT",
    description="A Better Auth JWT (from /api/auth/token, or signed with BETTER_AUTH_SECRET).",
)


@dataclass(frozen=True, slots=True)
class Caller:
    id: str


def unauthorized(detail: str, *, error: bool = True) -> HTTPException:
    # RFC 6750 §3: no error code when the request carried no credentials at all.
    challenge = 'Bearer error="invalid_token"' if error else "Bearer"
    return HTTPException(401, detail, headers={"WWW-Authenticate": challenge})


class KeysUnavailable(ServiceUnavailable):
    def __init__(self) -> None:
        super().__init__("Authentication keys are temporarily unavailable, retry shortly")


class JwksCache:
    """Better Auth's public keys, fetched without blocking the event loop.

    Keys are cached for ``ttl`` seconds and kept past that if a refresh fails. An unknown ``kid``
    (key rotation) triggers a refetch. Fetches are spaced, counted from the end of the last one:
    ``min_refetch_interval`` after a success, so a flood of forged kids cannot turn into a flood
    of requests to Better Auth; ``retry_interval`` (the 503's Retry-After) after a failure, so
    the service recovers as soon as Better Auth does. Requests that queued behind a fetch take
    its result instead of starting another: none waits longer than one fetch's deadline.
    """

    def __init__(
        self,
        url: str,
        client: httpx.AsyncClient,
        *,
        ttl: float = 3600.0,
        min_refetch_interval: float = 10.0,
        retry_interval: float = float(RETRY_AFTER_SECONDS),
    ) -> None:
        self.url = url
        self._client = client
        self._ttl = ttl
        self._min_interval = min_refetch_interval
        self._retry_interval = retry_interval
        self._keys: dict[str, dict[str, Any]] = {}
        self._parsed: dict[tuple[str, str], jwt.PyJWK] = {}
        self._fetched_at: float | None = None  # last successful fetch, for the TTL
        self._checked_at = float("-inf")  # end of the last fetch, successful or not
        self._next_fetch_at = float("-inf")
        self._last_fetch_failed = False
        self._lock = asyncio.Lock()
        self._background: asyncio.Task[None] | None = None

    async def key(self, kid: str, alg: str) -> jwt.PyJWK:
        now = time.monotonic()
        if kid not in self._keys:
            await self._refresh(now)  # rotation, or the first request: this one has to wait
        elif self._fetched_at is None or now - self._fetched_at > self._ttl:
            self._refresh_in_background(now)  # serve the cached key; never wait on Better Auth
        jwk = self._keys.get(kid)
        if jwk is None:
            if self._last_fetch_failed:
                raise KeysUnavailable()
            raise unauthorized("Token signing key is unknown")
        return self._parsed_key(kid, jwk, alg)

    async def aclose(self) -> None:
        """Stop a background refresh still running (at shutdown)."""
        if self._background is not None and not self._background.done():
            self._background.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._background

    def _refresh_in_background(self, requested_at: float) -> None:
        if self._background is None or self._background.done():
            self._background = asyncio.create_task(self._refresh(requested_at))

    async def _refresh(self, requested_at: float) -> None:
        async with self._lock:
            if self._checked_at >= requested_at or time.monotonic() < self._next_fetch_at:
                return  # a fetch ended after this request came in, or it is too soon for one
            try:
                async with asyncio.timeout(JWKS_FETCH_SECONDS):
                    keys = await self._fetch()
            except (httpx.HTTPError, ValueError, RecursionError, TimeoutError) as exc:
                self._last_fetch_failed = True
                # The type and a short message: never a whole (possibly huge) response body.
                error = f"{type(exc).__name__}: {str(exc)[:200]}"
                log.warning("JWKS fetch failed", extra={"jwks_url": self.url, "error": error})
                pause = self._retry_interval
            else:
                # Parsed keys whose JWK is unchanged are kept (the same objects): tokens verified
                # with them stay verified (TokenVerifier's cache compares keys by identity).
                self._parsed = {
                    kid_alg: parsed
                    for kid_alg, parsed in self._parsed.items()
                    if kid_alg[0] in keys and keys[kid_alg[0]] == self._keys.get(kid_alg[0])
                }
                self._keys = keys
                self._fetched_at = time.monotonic()
                self._last_fetch_failed = False
                pause = self._min_interval
            self._checked_at = time.monotonic()
            self._next_fetch_at = self._checked_at + pause

    async def _fetch(self) -> dict[str, dict[str, Any]]:
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
        document = json.loads(body)
        if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
            raise ValueError("not a JWKS document")
        keys: dict[str, dict[str, Any]] = {}
        for jwk in document["keys"]:
            if not isinstance(jwk, dict) or not isinstance(jwk.get("kid"), str):
                continue
            if PRIVATE_JWK_MEMBERS & jwk.keys():
                log.warning("JWKS key has private members; ignored", extra={"kid": jwk["kid"]})
                continue
            keys[jwk["kid"]] = jwk
        return keys

    def _parsed_key(self, kid: str, jwk: dict[str, Any], alg: str) -> jwt.PyJWK:
        kty, curves = ASYMMETRIC_ALGORITHMS[alg]
        crv = jwk.get("crv")
        fits = (
            jwk.get("kty") == kty
            and (curves is None or (isinstance(crv, str) and crv in curves))
            and jwk.get("alg", alg) == alg
            and jwk.get("use", "sig") == "sig"
        )
        if not fits:
            raise unauthorized("Token algorithm does not match its signing key")
        parsed = self._parsed.get((kid, alg))
        if parsed is None:
            try:
                parsed = jwt.PyJWK(jwk, algorithm=alg)
            except (jwt.PyJWTError, ValueError, TypeError, KeyError):  # malformed members
                log.warning("unusable key in JWKS", extra={"kid": kid})
                raise unauthorized("Token signing key is unknown") from None
            self._parsed[(kid, alg)] = parsed
        return parsed


_DECODE_ERRORS: tuple[tuple[type[jwt.PyJWTError], str], ...] = (
    (jwt.ExpiredSignatureError, "Token has expired"),
    (jwt.ImmatureSignatureError, "Token is not yet valid"),
    (jwt.InvalidIssuerError, "Token issuer is not accepted"),
    (jwt.InvalidAudienceError, "Token audience is not accepted"),
    (jwt.InvalidSignatureError, "Token signature is invalid"),
    (jwt.InvalidIssuedAtError, "Token issued-at (iat) is invalid"),
    (jwt.exceptions.InvalidSubjectError, "Token has no valid subject (sub)"),
    (jwt.DecodeError, "Malformed token"),
)


def _now() -> float:
    """Wall-clock seconds, read exactly as PyJWT reads them for ``exp``, ``nbf`` and ``iat``."""
    return datetime.now(tz=UTC).timestamp()


@dataclass(frozen=True, slots=True)
class _Verified:
    """What a successful verification established, and for how long it holds."""

    caller: Caller
    # Read after PyJWT's checks passed: nbf and iat held at this moment, so they hold later.
    verified_at: float
    # PyJWT refuses a token once ``exp <= now - leeway``: from ``int(exp) + leeway`` on. Kept
    # an int (compared exactly with the float clock): exp may exceed any float.
    refused_from: int
    # The JWKS key that checked the signature, with the kid and alg that chose it; None for
    # the shared secret (fixed for the verifier's lifetime).
    key: jwt.PyJWK | None = None
    kid: str = ""
    alg: str = ""


class TokenVerifier:
    """Verifies bearer tokens; remembers the ones that passed, so a token costs one signature
    check for as long as it is valid, not one per request.

    The cache only ever shortens the work, never the checks: an entry is used only while the
    token would still pass every time-based check PyJWT made (``exp`` with the same leeway; a
    clock that went back re-verifies, since ``nbf`` and ``iat`` held at ``verified_at``), and,
    for a JWKS token, only while the JWKS still serves the very key that verified it (a rotated
    or withdrawn key is looked up exactly as on a first verification and answers the same
    401/503). Failures are never cached: each failing request pays the full check. Bounded
    (least recently used out first), keyed by the token's SHA-256 digest, per verifier (so per
    configuration and per process).
    """

    def __init__(
        self,
        settings: Settings,
        jwks: JwksCache | None,
        *,
        cache_size: int = VERIFIED_TOKENS_MAX,
    ) -> None:
        self._secret = settings.secret_bytes
        self._jwks = jwks
        self._jwks_issuer = settings.jwks_issuer
        self._jwks_audience = settings.jwks_audience
        # JWT_ISSUER / JWT_AUDIENCE, when set, bind HS256 tokens too.
        self._hs_issuer = settings.jwt_issuer
        self._hs_audience = settings.jwt_audience
        self._leeway = settings.jwt_leeway_seconds
        self._cache_size = cache_size
        self._verified: OrderedDict[bytes, _Verified] = OrderedDict()

    @property
    def cached_tokens(self) -> int:
        return len(self._verified)

    async def verify(self, token: str) -> Caller:
        if len(token) > MAX_TOKEN_BYTES:
            raise unauthorized("Token is too large")
        digest = hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()
        known = self._verified.get(digest)
        if known is not None:
            if await self._still_valid(known):
                # Another request may have dropped the entry while this one awaited the JWKS.
                if digest in self._verified:
                    self._verified.move_to_end(digest)
                return known.caller
            self._verified.pop(digest, None)
        verified = await self._verify(token)
        self._verified[digest] = verified
        if len(self._verified) > self._cache_size:
            self._verified.popitem(last=False)
        return verified.caller

    async def _still_valid(self, known: _Verified) -> bool:
        now = _now()
        if not known.verified_at <= now < known.refused_from:
            return False  # expired (the full check says so, in its own words), or clock went back
        if known.key is None:
            return True
        assert self._jwks is not None
        # Raises the same 401/503 as a first verification if the key is gone.
        return await self._jwks.key(known.kid, known.alg) is known.key

    async def _verify(self, token: str) -> _Verified:
        header = _unverified_header(token)
        for param in FORBIDDEN_HEADER_PARAMS:
            if param in header:
                raise unauthorized(f"Token header parameter '{param}' is not accepted")
        alg = header.get("alg")
        if alg == "HS256" and self._secret is not None:
            claims = self._decode(token, self._secret, alg, self._hs_issuer, self._hs_audience)
            caller = Caller(_subject(claims, allow_session_cache=True))
            return _Verified(caller, _now(), self._refused_from(claims))
        if isinstance(alg, str) and alg in ASYMMETRIC_ALGORITHMS and self._jwks is not None:
            kid = header.get("kid")
            if not isinstance(kid, str) or not kid:
                raise unauthorized("Token header has no key id (kid)")
            key = await self._jwks.key(kid, alg)
            claims = self._decode(token, key, alg, self._jwks_issuer, self._jwks_audience)
            caller = Caller(_subject(claims, allow_session_cache=False))
            return _Verified(caller, _now(), self._refused_from(claims), key, kid, alg)
        raise unauthorized("Token algorithm is not accepted")

    def _refused_from(self, claims: dict[str, Any]) -> int:
        # exp is present and a number (_decode checked); PyJWT compares int(exp). No float():
        # a validly signed exp of 10**400 would overflow it (a 500 where PyJWT said yes).
        return int(claims["exp"]) + self._leeway

    def _decode(
        self, token: str, key: Any, alg: str, issuer: str | None, audience: str | None
    ) -> dict[str, Any]:
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=[alg],
                issuer=issuer,
                audience=audience,
                leeway=self._leeway,
                options={"require": ["exp"], "verify_aud": audience is not None},
            )
        except jwt.MissingRequiredClaimError as exc:
            raise unauthorized(f"Token has no '{exc.claim}' claim") from None
        except jwt.PyJWTError as exc:
            for kind, detail in _DECODE_ERRORS:
                if isinstance(exc, kind):
                    raise unauthorized(detail) from None
            raise unauthorized("Invalid token") from None
        # PyJWT takes "exp": "1767225600" (a string) as a number; RFC 7519 says NumericDate.
        for claim in ("exp", "iat", "nbf"):
            value = claims.get(claim, 0)
            if not isinstance(value, int | float) or isinstance(value, bool):
                raise unauthorized(f"Token claim '{claim}' is not a number")
        return claims


def _unverified_header(token: str) -> dict[str, Any]:
    """The JOSE header, read without PyJWT's own checks so that ours run first, on every token."""
    segment = token.split(".", 1)[0]
    if len(segment) > MAX_HEADER_CHARS:
        raise unauthorized("Malformed token")
    try:
        header = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    except (ValueError, binascii.Error, RecursionError):
        raise unauthorized("Malformed token") from None
    if not isinstance(header, dict):
        raise unauthorized("Malformed token")
    return header


def _subject(claims: dict[str, Any], *, allow_session_cache: bool) -> str:
    session, user = claims.get("session"), claims.get("user")
    named = [
        claims.get("sub"),
        session.get("userId") if isinstance(session, dict) else None,
        user.get("id") if isinstance(user, dict) else None,
    ]
    subject = named[0]
    if subject is None and allow_session_cache:
        # Better Auth's cookie-cache JWT has no sub: {session: {userId}, user: {id}}.
        subject = named[1]
    if subject is not None and any(other not in (None, subject) for other in named):
        raise unauthorized("Token names two different users")
    if not is_valid_user_id(subject):
        raise unauthorized("Token has no valid subject (sub)")
    return subject


def is_valid_user_id(value: object) -> TypeGuard[str]:
    """A user id this service stores: a string of 1 to 255 printable characters, no padding.

    Printable excludes control (NUL included), format (zero-width), surrogate and separator
    characters: an id that looks like another one in a log or a path is refused.
    """
    return (
        isinstance(value, str)
        and 0 < len(value) <= USER_ID_MAX
        and value == value.strip()
        and value.isprintable()
    )


async def current_user(
    request: Request,
    # Declared for the OpenAPI security scheme; the header is parsed below for precise errors.
    _scheme: Annotated[object, Security(bearer_scheme)] = None,
) -> Caller:
    headers = request.headers.getlist("authorization")
    if not headers:
        raise unauthorized("Not authenticated: send Authorization: Bearer <token>", error=False)
    if len(headers) > 1:
        # A proxy and this service could each read a different one (RFC 6750 §3.1).
        raise HTTPException(
            400,
            "Send exactly one Authorization header",
            headers={"WWW-Authenticate": 'Bearer error="invalid_request"'},
        )
    header = headers[0]
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer":
        raise unauthorized("Authorization header must use the Bearer scheme", error=False)
    token = token.strip()
    if not token:
        raise unauthorized("Bearer token is empty")
    verifier: TokenVerifier = request.app.state.verifier
    return await verifier.verify(token)


CurrentUser = Annotated[Caller, Depends(current_user)]


class AuthenticatedRoute(APIRoute):
    """A route whose authentication answers before its input validation.

    FastAPI parses a JSON body before it runs any dependency, so a request with no valid token
    and a malformed body would get a 400 (and learn about our input rules) instead of a 401.
    When the input is refused, the token is checked first: a bad one turns the answer into 401.
    """

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handle = super().get_route_handler()

        async def handler(request: Request) -> Response:
            try:
                return await handle(request)
            except (RequestValidationError, HTTPException) as refused:
                if isinstance(refused, HTTPException) and refused.status_code != 400:
                    raise
                await current_user(request)  # raises the 401 (or 503) if the token fails
                raise

        return handler


async def path_user_is_caller(
    user_id: Annotated[str, Path(description="Must equal the token's subject")],
    caller: CurrentUser,
) -> None:
    """The ``/api/{user_id}/tasks`` alias: the path may only repeat the token's identity."""
    if user_id != caller.id:
        raise HTTPException(403, "The user id in the path does not match the token")
