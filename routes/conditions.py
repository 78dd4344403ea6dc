"""What a request's headers ask of a task and what the answer carries (issue 12).

- ``ETag``: every task answer carries its version as a strong entity-tag (``"7"``); a list
  carries one derived from its tasks' versions, its total and its next page.
- ``If-None-Match`` on a GET: 304, no body, when nothing changed (RFC 9110 §13.1.2).
- ``If-Match`` on PUT, PATCH, /complete and DELETE: the write happens only at that version
  (checked in the same statement as the write); else 412 with the current ``ETag``. ``*``
  matches any existing task. One entity-tag or ``*``: a list is a 400.
- ``Idempotency-Key`` (IETF httpapi draft) on every write: 1 to 255 visible ASCII characters;
  the request's fingerprint (method, path, body) goes with it to the store (task_store), which
  answers a repeat from what it stored, with ``Idempotent-Replayed: true``.
"""

import hashlib
import re
from dataclasses import dataclass

import orjson
from fastapi import Request
from starlette.exceptions import HTTPException
from starlette.responses import Response

from task_store import Idempotency, Written

IDEMPOTENCY_KEY = re.compile(r"[\x21-\x7e]{1,255}")
BAD_KEY = "Idempotency-Key must be 1 to 255 visible ASCII characters"
KEY_REUSED = (
    "This Idempotency-Key came with another request (method, path or body); "
    "use a new key for a new request"
)
KEY_IN_FLIGHT = "The request with this Idempotency-Key is still being processed; retry shortly"
ONE_ETAG = 'If-Match takes one entity-tag (e.g. "3") or *'
CHANGED = "The task changed since you read it (its ETag is now {etag}): read it again, then retry"
AT_CAP = "You have {cap} tasks, the most one user may keep: delete some to add more"
REPLAYED = {"Idempotent-Replayed": "true"}


def etag(version: int) -> str:
    return f'"{version}"'


@dataclass(frozen=True, slots=True)
class Preconditions:
    key: Idempotency | None = None
    expected: int | None = None  # If-Match's version; None: no If-Match, or *


NONE = Preconditions()
NEVER = -1  # an If-Match that names no version of ours: matches nothing


async def preconditions(request: Request) -> Preconditions:
    """What a write's headers ask for (most writes carry neither: answered at once)."""
    headers = request.headers
    key_values = headers.getlist("idempotency-key")
    match = headers.get("if-match")
    if not key_values and match is None:
        return NONE
    expected = None if match is None else _expected_version(match)
    key = None
    if key_values:
        if len(key_values) > 1 or not IDEMPOTENCY_KEY.fullmatch(key_values[0]):
            raise HTTPException(400, BAD_KEY)
        key = Idempotency(key_values[0], await _fingerprint(request))
    return Preconditions(key, expected)


def _expected_version(header: str) -> int | None:
    value = header.strip()
    if value == "*":
        return None  # any current version: the write's own 404 covers a missing task
    if "," in value:
        raise HTTPException(400, ONE_ETAG)
    if len(value) >= 2 and value[0] == value[-1] == '"' and value[1:-1].isdigit():
        return int(value[1:-1])
    return NEVER  # weak, or not one of ours: a strong comparison never matches it


async def _fingerprint(request: Request) -> str:
    """The request a key came with: method, the task's path (the alias's included as the
    plain one) and the body (as JSON, so spacing and key order do not count)."""
    route = request.scope["route"]
    params = {k: v for k, v in request.path_params.items() if k != "user_id"}
    path = "/api/tasks" + route.path.format(**params)
    body = await request.body()
    try:
        canonical = orjson.dumps(orjson.loads(body), option=orjson.OPT_SORT_KEYS) if body else b""
    except orjson.JSONDecodeError:
        canonical = body
    request_line = f"{request.method} {path}\n".encode()
    return hashlib.sha256(request_line + canonical).hexdigest()


def not_modified(request: Request, tag: str) -> Response | None:
    """304 when If-None-Match names ``tag`` (or is ``*``); None otherwise."""
    header = request.headers.get("if-none-match")
    if header is None:
        return None
    tags = {part.strip().removeprefix("W/") for part in header.split(",")}
    if "*" in tags or tag in tags:  # weak comparison, as RFC 9110 asks for If-None-Match
        return Response(status_code=304, headers={"ETag": tag})
    return None


def refusal(written: Written, cap: int) -> HTTPException:
    """The HTTP answer to a write that wrote nothing (404, 409, 412)."""
    headers = dict(REPLAYED) if written.replayed else {}
    if written.status == 412:
        assert written.version is not None
        headers["ETag"] = etag(written.version)
        return HTTPException(412, CHANGED.format(etag=etag(written.version)), headers)
    if written.status == 409:
        return HTTPException(409, AT_CAP.format(cap=cap), headers or None)
    return HTTPException(404, "Task not found", headers or None)
