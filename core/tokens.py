"""Bearer tokens -> the verified subject (user id): the token rules, and the verified-token cache.

Two modes (SPEC.md), either or both:
- JWKS: Better Auth's ``jwt()`` plugin signs with an asymmetric key published at
  ``{BETTER_AUTH_URL}/api/auth/jwks`` (core/jwks.py). Issuer and audience are pinned here, never
  read from the token (without a base URL, Better Auth derives them from the request's Host).
- Shared secret: HS256 with ``BETTER_AUTH_SECRET`` (tokens minted by a Next.js route, or Better
  Auth's session cookie cache with strategy "jwt", whose user id is ``session.userId``).

The token's ``alg`` only chooses between these paths; each path has its own key and its own
allow-list, so an HMAC token is never checked against public key material and ``none`` matches
nothing. Identity comes from the verified token alone (FR-003).

Answers with the subject, or raises InvalidToken (its detail says what is wrong, never echoing
the token) or core.jwks.KeysUnavailable. Nothing here knows about HTTP.
"""

import base64
import binascii
import hashlib
import json
from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeGuard

import jwt

from core.config import Settings
from core.jwks import ASYMMETRIC_ALGORITHMS, JwksCache, KeyMismatch, UnknownKey

USER_ID_MAX = 255  # the longest user id this service stores (models.py sizes its column by it)
MAX_TOKEN_BYTES = 8192
MAX_HEADER_CHARS = 2048  # Better Auth's header is {"alg","kid"}: well under 200 characters
# Header parameters that would let a token name its own key. Never fetched, never trusted.
FORBIDDEN_HEADER_PARAMS = ("jku", "x5u", "jwk", "x5c", "crit")
# Verified tokens remembered per process (see TokenVerifier). Keyed by a SHA-256 digest, so an
# entry is about 300 bytes whatever the token's size: 4096 entries stay near 1 MB.
VERIFIED_TOKENS_MAX = 4096


class InvalidToken(Exception):
    """The token is refused; ``detail`` says why, in words a developer can act on."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


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

    subject: str
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
    or withdrawn key is looked up exactly as on a first verification and answers the same way).
    Failures are never cached: each failing request pays the full check. Bounded (least
    recently used out first), keyed by the token's SHA-256 digest, per verifier (so per
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

    async def verify(self, token: str) -> str:
        """The token's subject (the user id), or InvalidToken / KeysUnavailable."""
        if len(token) > MAX_TOKEN_BYTES:
            raise InvalidToken("Token is too large")
        digest = hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()
        known = self._verified.get(digest)
        if known is not None:
            if await self._still_valid(known):
                # Another request may have dropped the entry while this one awaited the JWKS.
                if digest in self._verified:
                    self._verified.move_to_end(digest)
                return known.subject
            self._verified.pop(digest, None)
        verified = await self._verify(token)
        self._verified[digest] = verified
        if len(self._verified) > self._cache_size:
            self._verified.popitem(last=False)
        return verified.subject

    async def _still_valid(self, known: _Verified) -> bool:
        now = _now()
        if not known.verified_at <= now < known.refused_from:
            return False  # expired (the full check says so, in its own words), or clock went back
        if known.key is None:
            return True
        # Refused exactly as a first verification would be if the key is gone.
        return await self._jwks_key(known.kid, known.alg) is known.key

    async def _verify(self, token: str) -> _Verified:
        header = _unverified_header(token)
        for param in FORBIDDEN_HEADER_PARAMS:
            if param in header:
                raise InvalidToken(f"Token header parameter '{param}' is not accepted")
        alg = header.get("alg")
        if alg == "HS256" and self._secret is not None:
            claims = self._decode(token, self._secret, alg, self._hs_issuer, self._hs_audience)
            subject = _subject(claims, allow_session_cache=True)
            return _Verified(subject, _now(), self._refused_from(claims))
        if isinstance(alg, str) and alg in ASYMMETRIC_ALGORITHMS and self._jwks is not None:
            kid = header.get("kid")
            if not isinstance(kid, str) or not kid:
                raise InvalidToken("Token header has no key id (kid)")
            key = await self._jwks_key(kid, alg)
            claims = self._decode(token, key, alg, self._jwks_issuer, self._jwks_audience)
            subject = _subject(claims, allow_session_cache=False)
            return _Verified(subject, _now(), self._refused_from(claims), key, kid, alg)
        raise InvalidToken("Token algorithm is not accepted")

    async def _jwks_key(self, kid: str, alg: str) -> jwt.PyJWK:
        assert self._jwks is not None
        try:
            return await self._jwks.key(kid, alg)  # KeysUnavailable passes through
        except UnknownKey:
            raise InvalidToken("Token signing key is unknown") from None
        except KeyMismatch:
            raise InvalidToken("Token algorithm does not match its signing key") from None

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
            raise InvalidToken(f"Token has no '{exc.claim}' claim") from None
        except jwt.PyJWTError as exc:
            for kind, detail in _DECODE_ERRORS:
                if isinstance(exc, kind):
                    raise InvalidToken(detail) from None
            raise InvalidToken("Invalid token") from None
        # PyJWT takes "exp": "1767225600" (a string) as a number; RFC 7519 says NumericDate.
        for claim in ("exp", "iat", "nbf"):
            value = claims.get(claim, 0)
            if not isinstance(value, int | float) or isinstance(value, bool):
                raise InvalidToken(f"Token claim '{claim}' is not a number")
        return claims


def _unverified_header(token: str) -> dict[str, Any]:
    """The JOSE header, read without PyJWT's own checks so that ours run first, on every token."""
    segment = token.split(".", 1)[0]
    if len(segment) > MAX_HEADER_CHARS:
        raise InvalidToken("Malformed token")
    try:
        header = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    except (ValueError, binascii.Error, RecursionError):
        raise InvalidToken("Malformed token") from None
    if not isinstance(header, dict):
        raise InvalidToken("Malformed token")
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
        raise InvalidToken("Token names two different users")
    if not is_valid_user_id(subject):
        raise InvalidToken("Token has no valid subject (sub)")
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
