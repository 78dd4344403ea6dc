"""Who is calling: the request's Better Auth token -> the caller (the ``CurrentUser`` dependency).

Handlers declare ``caller: CurrentUser`` and get the token's subject, the only identity this API
knows (FR-003). The ``/api/{user_id}/tasks`` alias adds ``path_user_is_caller``, and routes built
with ``AuthenticatedRoute`` answer all of this before they read a body.

The token rules and the verified-token cache are in core/tokens.py, Better Auth's keys in
core/jwks.py; they answer with a subject or their own exceptions, which this module turns into
a ``Caller``, a 401 or a 503.
"""

from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Path, Request, Response
from fastapi.routing import APIRoute
from fastapi.security import HTTPBearer
from starlette.exceptions import HTTPException

from core.errors import ServiceUnavailable
from core.jwks import KeysUnavailable
from core.tokens import InvalidToken, TokenVerifier

# The scheme as the OpenAPI document describes it (core/openapi.py marks every /api/ route);
# the header itself is parsed below, for precise errors.
bearer_scheme = HTTPBearer(
    auto_error=False,
    bearerFormat="JWT",
    description="A Better Auth JWT (from /api/auth/token, or signed with BETTER_AUTH_SECRET).",
)


READS = frozenset({"GET", "HEAD", "OPTIONS"})
CALLER = "taskapi.caller"  # where a request keeps its verified caller (AuthenticatedRoute)


@dataclass(frozen=True, slots=True)
class Caller:
    """The verified caller: ``id`` is the token's subject (a Better Auth user id)."""

    id: str


async def current_user(request: Request) -> Caller:
    """The caller named by the bearer token: 401 when there is none or it fails verification,
    503 when the keys to verify it cannot be fetched (never a 401 for a key that rotated)."""
    state = request.scope.setdefault("state", {})  # the request's own state, as a plain dict
    known = state.get(CALLER)
    if known is not None:
        return known  # type: ignore[no-any-return]  # verified earlier in this request
    verifier: TokenVerifier = request.app.state.verifier
    try:
        subject = await verifier.verify(_bearer_token(request))
    except InvalidToken as refused:
        raise unauthorized(refused.detail) from None
    except KeysUnavailable:
        raise ServiceUnavailable(
            "Authentication keys are temporarily unavailable, retry shortly"
        ) from None
    state[CALLER] = caller = Caller(subject)
    return caller


CurrentUser = Annotated[Caller, Depends(current_user)]


async def path_user_is_caller(
    user_id: Annotated[str, Path(description="Must equal the token's subject")],
    caller: CurrentUser,
) -> None:
    """The ``/api/{user_id}/tasks`` alias: the path may only repeat the token's identity."""
    if user_id != caller.id:
        raise HTTPException(403, "The user id in the path does not match the token")


class AuthenticatedRoute(APIRoute):
    """A route that knows its caller before it reads its input.

    FastAPI reads and validates a JSON body before it runs any dependency: a request with no
    valid token and a malformed body would get a 400 (and learn about our input rules) instead
    of a 401, and on the alias another user's path would get a 400 or 413 instead of a 403.
    This route checks the token first, then, where its path has a ``{user_id}`` (the alias,
    however it is mounted), ``path_user_is_caller``; then, for a write, the caller's write
    rate (core/rate_limit.py); then it waits for one of the caller's turns (fair share,
    core/fairness.py); only then is the body read. The dependencies find
    the caller already verified.
    """

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handle = super().get_route_handler()

        async def handler(request: Request) -> Response:
            caller = await current_user(request)  # 401 or 503
            path_user = request.path_params.get("user_id")
            if path_user is not None:
                await path_user_is_caller(path_user, caller)  # 403
            if request.method not in READS:
                request.app.state.write_rate.take(caller.id)  # 429 past WRITE_RATE_LIMIT
            # Then the caller's turn (core/fairness.py, 429 past the user's queue): reading the
            # body, the handler and its database work all count against the caller's share.
            async with request.app.state.fair_share.turn(caller.id):
                return await handle(request)

        return handler


def unauthorized(detail: str, *, error: bool = True) -> HTTPException:
    # RFC 6750 §3: no error code when the request carried no credentials at all.
    challenge = 'Bearer error="invalid_token"' if error else "Bearer"
    return HTTPException(401, detail, headers={"WWW-Authenticate": challenge})


def _bearer_token(request: Request) -> str:
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
    scheme, _, token = headers[0].partition(" ")
    if scheme.lower() != "bearer":
        raise unauthorized("Authorization header must use the Bearer scheme", error=False)
    token = token.strip()
    if not token:
        raise unauthorized("Bearer token is empty")
    return token
