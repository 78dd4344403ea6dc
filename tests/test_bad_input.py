"""Bad input on the task endpoints: always a 400 (or 413) with a helpful detail, never a 500.

Every rejection here asserts the exact status, the exact human-readable ``detail`` (SC-006), the
``errors`` list of ``{loc, msg, type}`` where the error is a validation error (FR-008), that the
detail does not echo the offending input, and that the tasks table is unchanged. Title length is
counted in Unicode characters after trimming surrounding whitespace (US3-1, US3-2, FR-009).
Runs on PostgreSQL and SQLite (the ``client`` fixture is parametrized).
"""

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from httpx2 import Response

from tests.keys import ALICE, BOB, bearer, mint

Headers = dict[str, str]
Rows = Callable[[], list[tuple[Any, ...]]]
ErrorSpec = list[tuple[list[str | int], str]]  # (loc, type) of each expected error item

MAX_BODY = 1024 * 1024
MAX_ID = 2**63 - 1
PUBLIC_FIELDS = {"id", "user_id", "title", "description", "completed", "created_at", "updated_at"}

TITLE_LENGTH = "title: must be 1 to 200 characters after trimming surrounding whitespace"
TITLE_NOT_STRING = "title: Input should be a valid string"
TITLE_NULL = "title: cannot be null; omit it to leave it unchanged"
TITLE_UNSTORABLE = "title: must not contain NUL characters or unpaired surrogates"
DESCRIPTION_LENGTH = "description: must be at most 10000 characters"
DESCRIPTION_UNSTORABLE = "description: must not contain NUL characters or unpaired surrogates"
COMPLETED_NOT_BOOL = "completed: Input should be a valid boolean"
COMPLETED_NULL = "completed: cannot be null; omit it to leave it unchanged"
NOT_JSON = "request body is not valid JSON"
NOT_OBJECT = "request body must be a JSON object"
NOT_JSON_CONTENT_TYPE = "request body must be JSON, sent with Content-Type: application/json"
BODY_REQUIRED = "request body is required"
TOO_LARGE = f"Request body is larger than {MAX_BODY} bytes"

# The writes that take a task body, as (method, path after /api/tasks) for the ``write`` fixture;
# {id} stands for the ``task`` fixture's id. BODY_WRITES adds PATCH .../complete (it reads one).
POST = ("POST", "")
PUT = ("PUT", "/{id}")
PATCH = ("PATCH", "/{id}")
COMPLETE = ("PATCH", "/{id}/complete")


def write_id(route: tuple[str, str]) -> str:
    method, suffix = route
    return method + suffix.removeprefix("/{id}").replace("/", "-")


WRITES = pytest.mark.parametrize("write", [POST, PUT, PATCH], ids=write_id, indirect=True)
BODY_WRITES = pytest.mark.parametrize(
    "write", [POST, PUT, PATCH, COMPLETE], ids=write_id, indirect=True
)
UPDATES = pytest.mark.parametrize("write", [PUT, PATCH], ids=write_id, indirect=True)

# The routes a task id appears in, for the id tests.
ID_ROUTES = [
    ("GET", ""),
    ("PUT", ""),
    ("PATCH", ""),
    ("DELETE", ""),
    ("PATCH", "/complete"),
]


def create(client: TestClient, headers: Headers, title: str, **fields: Any) -> dict[str, Any]:
    response = client.post("/api/tasks", json={"title": title, **fields}, headers=headers)
    assert response.status_code == 201, response.text
    task: dict[str, Any] = response.json()
    return task


def json_headers(headers: Headers) -> Headers:
    return {**headers, "Content-Type": "application/json"}


@dataclass(frozen=True)
class Write:
    """One write on behalf of alice: POST /api/tasks, or PUT/PATCH (or PATCH .../complete) on the
    ``task`` fixture."""

    client: TestClient
    headers: Headers
    method: str
    url: str

    @property
    def ok(self) -> int:
        """The status of a successful write: 201 for a create, 200 for an update."""
        return 201 if self.method == "POST" else 200

    def json(self, body: dict[str, Any]) -> Response:
        """Sends ``body`` as JSON; a POST gets a valid title first (one in ``body`` wins)."""
        if self.method == "POST":
            body = {"title": "t", **body}
        return self.client.request(self.method, self.url, json=body, headers=self.headers)

    def raw(self, content: bytes | Iterator[bytes] | None, *, json_type: bool = True) -> Response:
        """Sends ``content`` as it is, labelled application/json unless ``json_type`` is false."""
        headers = json_headers(self.headers) if json_type else self.headers
        return self.client.request(self.method, self.url, content=content, headers=headers)


def assert_error(
    response: Response,
    status: int,
    detail: str,
    errors: ErrorSpec | None = None,
    *,
    not_echoing: str | None = None,
) -> None:
    """The exact status and detail; ``errors`` items are ``{loc, msg, type}`` when given."""
    assert response.status_code < 500, f"bad input must never be a 5xx: {response.text}"
    assert response.status_code == status, response.text
    body = response.json()
    assert body["detail"] == detail
    if errors is not None:
        items = body["errors"]
        assert isinstance(items, list)
        for item in items:
            assert set(item) == {"loc", "msg", "type"}
            assert isinstance(item["loc"], list)
            assert all(isinstance(part, str | int) for part in item["loc"])
            assert isinstance(item["msg"], str)
            assert item["msg"]
            assert isinstance(item["type"], str)
        assert [(item["loc"], item["type"]) for item in items] == errors
    if not_echoing is not None:
        assert not_echoing not in response.text


@pytest.fixture
def task(client: TestClient, alice: Headers) -> dict[str, Any]:
    """One existing task, so that 'nothing changed' has something to change."""
    return create(client, alice, "Existing task", description="kept as is")


@pytest.fixture
def write(
    request: pytest.FixtureRequest, client: TestClient, alice: Headers, task: dict[str, Any]
) -> Write:
    """The write named by the (method, suffix) route that the test passes in (``indirect``)."""
    method, suffix = request.param
    return Write(client, alice, method, "/api/tasks" + suffix.format(id=task["id"]))


@pytest.fixture
def unchanged(db_rows: Rows, task: dict[str, Any]) -> Iterator[None]:
    """Asserts, after the test body, that the tasks table is exactly as before it."""
    before = db_rows()
    yield
    assert db_rows() == before, "a rejected request changed the database"


# ---- title length (US3-1, US3-2, FR-009) --------------------------------------------------------

LONG_CHARACTERS = pytest.mark.parametrize(
    "char",
    ["x", "é", "界", "😀"],
    ids=["ascii", "latin", "cjk", "emoji"],
)


@LONG_CHARACTERS
@WRITES
def test_title_of_200_characters_is_accepted_on_every_write_us3_1_fr009(
    write: Write, char: str
) -> None:
    response = write.json({"title": char * 200})
    assert response.status_code == write.ok, response.text
    assert response.json()["title"] == char * 200
    fetched = write.client.get(f"/api/tasks/{response.json()['id']}", headers=write.headers)
    assert fetched.json()["title"] == char * 200


def test_surrounding_whitespace_is_trimmed_before_counting_us3_1_fr009(
    client: TestClient, alice: Headers, task: dict[str, Any]
) -> None:
    title = "界" * 200
    created = create(client, alice, f"  \t{title}\n ")
    assert created["title"] == title
    updated = client.patch(
        f"/api/tasks/{task['id']}", json={"title": f"\u3000 {title} \r\n"}, headers=alice
    )
    assert updated.status_code == 200, updated.text
    assert updated.json()["title"] == title


@WRITES
@pytest.mark.parametrize(
    "title",
    ["", " ", "  ", "   \t\n  ", "\u3000"],
    ids=["empty", "space", "two-spaces", "mixed-whitespace", "ideographic-space"],
)
def test_empty_or_whitespace_only_title_is_400_on_every_write_us3_2_fr009(
    write: Write, unchanged: None, title: str
) -> None:
    response = write.json({"title": title})
    assert_error(response, 400, TITLE_LENGTH, [(["body", "title"], "title_length")])


@WRITES
@pytest.mark.parametrize(
    "char", ["x", "Z", "é", "界", "😀"], ids=["ascii", "ascii-upper", "latin", "cjk", "emoji"]
)
def test_title_over_200_chars_is_400_on_every_write_us3_2_fr009(
    write: Write, unchanged: None, char: str
) -> None:
    title = char * 201
    response = write.json({"title": title})
    assert_error(
        response, 400, TITLE_LENGTH, [(["body", "title"], "title_length")], not_echoing=title
    )


@WRITES
@pytest.mark.parametrize(
    "title", ["\u200b", "\u200b\u200d\u2060", " \ufeff "], ids=["zwsp", "zero-widths", "bom"]
)
def test_title_with_no_visible_character_is_400_on_every_write_us3_2_fr009(
    write: Write, unchanged: None, title: str
) -> None:
    response = write.json({"title": title})
    assert_error(
        response,
        400,
        "title: must contain a visible character",
        [(["body", "title"], "title_invisible")],
    )


# ---- types and nulls (FR-008, SC-006) -----------------------------------------------------------

NOT_STRINGS = pytest.mark.parametrize(
    "value", [42, 4.5, True, ["a"], {"text": "a"}], ids=["int", "float", "bool", "list", "object"]
)


@NOT_STRINGS
@WRITES
def test_title_not_a_string_is_400_on_every_write_fr008(
    write: Write, unchanged: None, value: object
) -> None:
    response = write.json({"title": value})
    assert_error(response, 400, TITLE_NOT_STRING, [(["body", "title"], "string_type")])


def test_missing_title_on_create_is_400_fr008(
    client: TestClient, alice: Headers, unchanged: None
) -> None:
    response = client.post("/api/tasks", json={"description": "no title"}, headers=alice)
    assert_error(response, 400, "title: Field required", [(["body", "title"], "missing")])


# A create needs a title, so a null one is the wrong type there; an update says to omit it.
NULLS = [
    (POST, "title", TITLE_NOT_STRING, "string_type"),
    (PUT, "title", TITLE_NULL, "null_not_allowed"),
    (PATCH, "title", TITLE_NULL, "null_not_allowed"),
    (PUT, "completed", COMPLETED_NULL, "null_not_allowed"),
    (PATCH, "completed", COMPLETED_NULL, "null_not_allowed"),
]


@pytest.mark.parametrize(
    ("write", "field", "detail", "kind"),
    NULLS,
    ids=[f"{write_id(route)}-{field}" for route, field, _, _ in NULLS],
    indirect=["write"],
)
def test_null_title_or_completed_is_400_fr008_fr009(
    write: Write, unchanged: None, field: str, detail: str, kind: str
) -> None:
    response = write.json({field: None})
    assert_error(response, 400, detail, [(["body", field], kind)])


NOT_BOOLEANS = pytest.mark.parametrize(
    "value",
    ["yes", 1, 0, "true", "false", [True]],
    ids=["yes", "1", "0", "str-true", "str-false", "list"],
)


@NOT_BOOLEANS
@WRITES
def test_completed_not_strict_bool_is_400_on_every_write_fr008(
    write: Write, unchanged: None, value: object
) -> None:
    response = write.json({"completed": value})
    assert_error(response, 400, COMPLETED_NOT_BOOL, [(["body", "completed"], "bool_type")])


# PATCH .../complete reads exactly one body shape; anything else names it (issue 11: a typo or
# a null must never toggle a task the other way).
COMPLETION_BODY = (
    "request body: send no body or {} to toggle, "
    'or {"completed": true} or {"completed": false} to set'
)


@pytest.mark.parametrize(
    "body",
    [
        {"completed": None},
        {"complete": True},
        {"done": True},
        {"completed": "yes"},
        {"completed": 1},
        {"completed": "true"},
        {"completed": [True]},
        {"completed": True, "title": "also this"},
    ],
    ids=["null", "complete", "done", "yes", "one", "str-true", "list", "extra-field"],
)
@pytest.mark.parametrize("write", [COMPLETE], ids=write_id, indirect=True)
def test_complete_refuses_every_body_but_completed_true_or_false_fr006_fr008(
    write: Write, unchanged: None, body: dict[str, Any]
) -> None:
    response = write.json(body)
    assert_error(response, 400, COMPLETION_BODY, [(["body"], "completion_body")])


@pytest.mark.parametrize("content", [b"null", b" null "], ids=["null", "spaced-null"])
@pytest.mark.parametrize("write", [COMPLETE], ids=write_id, indirect=True)
def test_complete_refuses_a_null_body_fr006_fr008(
    write: Write, unchanged: None, content: bytes
) -> None:
    # JSON null is a body, and not one of the two shapes: not a silent toggle.
    response = write.raw(content)
    assert_error(response, 400, COMPLETION_BODY, [(["body"], "completion_body")])


# ---- description ---------------------------------------------------------------------------------


def test_description_of_10000_chars_is_accepted_fr008(
    client: TestClient, alice: Headers, task: dict[str, Any]
) -> None:
    assert create(client, alice, "t", description="界" * 10_000)["description"] == "界" * 10_000
    response = client.patch(
        f"/api/tasks/{task['id']}", json={"description": "d" * 10_000}, headers=alice
    )
    assert response.status_code == 200, response.text
    assert response.json()["description"] == "d" * 10_000


@WRITES
def test_description_over_10000_chars_is_400_on_every_write_fr008(
    write: Write, unchanged: None
) -> None:
    response = write.json({"description": "D" * 10_001})
    assert_error(
        response,
        400,
        DESCRIPTION_LENGTH,
        [(["body", "description"], "description_length")],
        not_echoing="D" * 100,
    )


# ---- characters no database can store: NUL and lone surrogates -----------------------------------

UNSTORABLE_FIELDS = pytest.mark.parametrize(
    ("field", "detail"),
    [("title", TITLE_UNSTORABLE), ("description", DESCRIPTION_UNSTORABLE)],
    ids=["title", "description"],
)


@UNSTORABLE_FIELDS
@WRITES
@pytest.mark.parametrize(
    "text", ["a\u0000b", "x\u0000y", "\u0000"], ids=["inside", "inside-xy", "alone"]
)
def test_nul_byte_is_400_on_every_write_fr008(
    write: Write, unchanged: None, field: str, detail: str, text: str
) -> None:
    response = write.json({field: text})
    assert_error(response, 400, detail, [(["body", field], "unstorable_character")])


@UNSTORABLE_FIELDS
@WRITES
@pytest.mark.parametrize(
    "escaped", [r"\ud800", r"x\udfffy", r"\ude00\ud83d"], ids=["high", "low", "reversed-pair"]
)
def test_lone_surrogate_is_400_on_every_write_fr008(
    write: Write, unchanged: None, field: str, detail: str, escaped: str
) -> None:
    # Raw JSON text: json= in the client could not even encode a lone surrogate.
    title = '"title": "t", ' if write.method == "POST" else ""
    raw = f'{{{title}"{field}": "{escaped}"}}'
    response = write.raw(raw.encode())
    assert_error(response, 400, detail, [(["body", field], "unstorable_character")])


def test_escaped_surrogate_pair_is_one_valid_character_us3_1(
    client: TestClient, alice: Headers
) -> None:
    raw = b'{"title": "\\ud83d\\ude00", "description": "\\ud83d\\ude00"}'
    response = client.post("/api/tasks", content=raw, headers=json_headers(alice))
    assert response.status_code == 201, response.text
    assert response.json()["title"] == "😀"
    assert response.json()["description"] == "😀"


# ---- malformed, non-object and missing bodies ----------------------------------------------------

MALFORMED = pytest.mark.parametrize(
    "raw",
    [b'{"title": ', b"{bad", b"{'title': 'x'}", b'{"title": "x",}', b"\xff\xfe", b"tru"],
    ids=[
        "truncated",
        "bare-word",
        "single-quotes",
        "trailing-comma",
        "not-utf8",
        "partial-literal",
    ],
)


@MALFORMED
@BODY_WRITES
def test_malformed_json_is_400_on_every_write_fr008_sc006(
    write: Write, unchanged: None, raw: bytes
) -> None:
    response = write.raw(raw)
    assert_error(response, 400, NOT_JSON)
    [item] = response.json()["errors"]
    assert item["loc"][0] == "body"
    assert item["type"] == "json_invalid"


@pytest.mark.parametrize(
    "content_type", ["text/plain;charset=UTF-8", "application/x-www-form-urlencoded", None]
)
def test_json_sent_without_a_json_content_type_is_400_that_says_so_fr008_sc006(
    client: TestClient, alice: Headers, unchanged: None, content_type: str | None
) -> None:
    # fetch(url, {method: "POST", body: JSON.stringify(task)}) sends text/plain by default;
    # some HTTP clients send no Content-Type at all.
    headers = {**alice, "Content-Type": content_type} if content_type else alice
    response = client.post("/api/tasks", content=b'{"title": "x"}', headers=headers)
    assert_error(response, 400, NOT_JSON_CONTENT_TYPE, [(["body"], "model_attributes_type")])


UNDECODABLE = pytest.mark.parametrize(
    "raw",
    [
        '{"title": "caf\u00e9"}'.encode("latin-1"),  # not UTF-8
        b"[" * 100_000,  # nested deeper than any decoder recurses
        b'{"title": "x", "n": ' + b"9" * 5000 + b"}",  # an integer too long to convert
    ],
    ids=["latin-1", "deep-nesting", "huge-integer"],
)


@UNDECODABLE
@BODY_WRITES
def test_undecodable_body_is_400_like_malformed_json_fr008_sc006(
    write: Write, unchanged: None, raw: bytes
) -> None:
    response = write.raw(raw)
    assert_error(response, 400, NOT_JSON, [(["body"], "json_invalid")])


UNAUTHENTICATED = pytest.mark.parametrize(
    ("headers", "detail", "challenge"),
    [
        ({}, "Not authenticated: send Authorization: Bearer <token>", "Bearer"),
        (bearer("not.a.token"), "Malformed token", 'Bearer error="invalid_token"'),
    ],
    ids=["no-token", "bad-token"],
)


@UNAUTHENTICATED
@pytest.mark.parametrize(
    "raw",
    [b'{"title": ', '{"title": "caf\u00e9"}'.encode("latin-1"), b"[]", b'{"title": ""}'],
    ids=["malformed", "undecodable", "non-object", "invalid-title"],
)
@pytest.mark.parametrize("path", ["/api/tasks", f"/api/{ALICE}/tasks"], ids=["plain", "alias"])
def test_token_is_checked_before_the_body_us2_3_us2_2(
    client: TestClient,
    task: dict[str, Any],
    unchanged: None,
    headers: Headers,
    detail: str,
    challenge: str,
    raw: bytes,
    path: str,
) -> None:
    # FastAPI parses a body before any dependency runs: without care a caller with no valid
    # token would get a 400 that describes our input rules instead of a 401.
    response = client.post(path, content=raw, headers=json_headers(headers))
    assert_error(response, 401, detail)
    assert response.headers["www-authenticate"] == challenge


# JSON that is not an object, on every write; but a bare null to .../complete means no body
# there (a toggle), so that route is not sent one.
NON_OBJECTS = [b"[]", b'"str"', b"42", b"null", b"true", b'[{"title": "x"}]']
NON_OBJECT_WRITES = [
    pytest.param(route, raw, id=f"{write_id(route)}-{raw.decode()}")
    for route in [POST, PUT, PATCH, COMPLETE]
    for raw in NON_OBJECTS
    if not (route == COMPLETE and raw == b"null")
]


@pytest.mark.parametrize(("write", "raw"), NON_OBJECT_WRITES, indirect=["write"])
def test_non_object_body_is_400_on_every_write_fr008(
    write: Write, unchanged: None, raw: bytes
) -> None:
    response = write.raw(raw)
    assert_error(response, 400, NOT_OBJECT, [(["body"], "model_attributes_type")])


@WRITES
@pytest.mark.parametrize("with_content_type", [False, True], ids=["no-type", "json-type"])
def test_missing_body_is_400_on_every_write_fr008(
    write: Write, unchanged: None, with_content_type: bool
) -> None:
    response = write.raw(None, json_type=with_content_type)
    assert_error(response, 400, BODY_REQUIRED, [(["body"], "missing")])


# ---- body size: 1 MiB ----------------------------------------------------------------------------


def oversized_body() -> bytes:
    """Valid JSON, one byte over the limit: only its size is wrong."""
    head = b'{"title": "big", "description": "'
    tail = b'"}'
    return head + b"d" * (MAX_BODY + 1 - len(head) - len(tail)) + tail


def in_chunks(data: bytes, size: int = 64 * 1024) -> Iterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


def test_body_of_exactly_1_mib_is_not_too_large_fr008(client: TestClient, alice: Headers) -> None:
    body = b'{"title": "padded"}'
    body += b" " * (MAX_BODY - len(body))
    assert len(body) == MAX_BODY
    response = client.post("/api/tasks", content=body, headers=json_headers(alice))
    assert response.status_code == 201, response.text


@BODY_WRITES
def test_body_over_1_mib_with_content_length_is_413_fr008(write: Write, unchanged: None) -> None:
    body = oversized_body()
    assert len(body) == MAX_BODY + 1
    response = write.raw(body)
    assert response.request.headers["content-length"] == str(MAX_BODY + 1)
    assert_error(response, 413, TOO_LARGE)


@BODY_WRITES
def test_body_over_1_mib_streamed_without_content_length_is_413_fr008(
    write: Write, unchanged: None
) -> None:
    response = write.raw(in_chunks(oversized_body()))
    assert "content-length" not in response.request.headers
    assert_error(response, 413, TOO_LARGE)


# ---- task ids outside 1 .. 2**63-1 ---------------------------------------------------------------

BAD_IDS = [
    (
        str(MAX_ID + 1),
        f"task_id: Input should be less than or equal to {MAX_ID}",
        "less_than_equal",
    ),
    (str(2**64), f"task_id: Input should be less than or equal to {MAX_ID}", "less_than_equal"),
    ("0", "task_id: Input should be greater than or equal to 1", "greater_than_equal"),
    ("-1", "task_id: Input should be greater than or equal to 1", "greater_than_equal"),
    (
        "abc",
        "task_id: Input should be a valid integer, unable to parse string as an integer",
        "int_parsing",
    ),
    (
        "1.5",
        "task_id: Input should be a valid integer, unable to parse string as an integer",
        "int_parsing",
    ),
]


@pytest.mark.parametrize(("task_id", "detail", "kind"), BAD_IDS, ids=[b[0] for b in BAD_IDS])
@pytest.mark.parametrize(("method", "suffix"), ID_ROUTES, ids=[f"{m}{s}" for m, s in ID_ROUTES])
def test_task_id_outside_64_bit_range_is_400_fr008(
    client: TestClient,
    alice: Headers,
    unchanged: None,
    method: str,
    suffix: str,
    task_id: str,
    detail: str,
    kind: str,
) -> None:
    body = {"title": "x"} if method == "PUT" or (method == "PATCH" and not suffix) else None
    response = client.request(method, f"/api/tasks/{task_id}{suffix}", json=body, headers=alice)
    assert_error(response, 400, detail, [(["path", "task_id"], kind)])


@pytest.mark.parametrize(("method", "suffix"), ID_ROUTES, ids=[f"{m}{s}" for m, s in ID_ROUTES])
def test_largest_64_bit_task_id_is_a_plain_404_fr008(
    client: TestClient, alice: Headers, unchanged: None, method: str, suffix: str
) -> None:
    body = {"title": "x"} if method == "PUT" or (method == "PATCH" and not suffix) else None
    response = client.request(method, f"/api/tasks/{MAX_ID}{suffix}", json=body, headers=alice)
    assert_error(response, 404, "Task not found")


# ---- unknown and server-owned fields in a body ---------------------------------------------------

FRONTEND_EXTRAS = {"priority": "high", "due_date": "2030-01-01", "tags": ["a"], "user": {"x": 1}}
SERVER_OWNED = {
    "id": 987_654_321,
    "user_id": BOB,
    "created_at": "2000-01-01T00:00:00Z",
    "updated_at": "2000-01-01T00:00:00Z",
}


@pytest.mark.parametrize(
    ("write", "title"),
    [(POST, "With extras"), (PUT, "Renamed"), (PATCH, "Renamed")],
    ids=["POST", "PUT", "PATCH"],
    indirect=["write"],
)
def test_unknown_fields_are_ignored_on_every_write(write: Write, title: str) -> None:
    response = write.json({"title": title, **FRONTEND_EXTRAS})
    assert response.status_code == write.ok, response.text
    assert set(response.json()) == PUBLIC_FIELDS
    assert response.json()["title"] == title
    fetched = write.client.get(f"/api/tasks/{response.json()['id']}", headers=write.headers)
    assert set(fetched.json()) == PUBLIC_FIELDS


def test_id_user_and_timestamps_in_create_body_change_nothing_fr003(
    client: TestClient, alice: Headers, db_rows: Rows
) -> None:
    started = datetime.now(UTC)
    task = create(client, alice, "Mine", **SERVER_OWNED)
    assert task["id"] != SERVER_OWNED["id"]
    assert task["user_id"] == ALICE
    for stamp in ("created_at", "updated_at"):
        assert datetime.fromisoformat(task[stamp]) >= started - timedelta(seconds=5)
    assert [row[0] for row in db_rows()] == [task["id"]]
    assert client.get("/api/tasks", headers=bearer(mint(BOB))).json() == []


@UPDATES
def test_id_user_and_timestamps_alone_in_update_body_change_nothing_fr003(
    write: Write, task: dict[str, Any], unchanged: None
) -> None:
    response = write.json(SERVER_OWNED)
    assert response.status_code == 200, response.text
    assert response.json() == task


@UPDATES
def test_id_user_and_timestamps_in_update_body_are_ignored_fr003(
    write: Write, task: dict[str, Any], db_rows: Rows
) -> None:
    response = write.json({"title": "Renamed", **SERVER_OWNED})
    assert response.status_code == 200, response.text
    updated = response.json()
    assert updated["title"] == "Renamed"
    for field in ("id", "user_id", "created_at", "description", "completed"):
        assert updated[field] == task[field]
    assert datetime.fromisoformat(updated["updated_at"]) > datetime.fromisoformat(
        task["updated_at"]
    )
    assert [row[0] for row in db_rows()] == [task["id"]]
    gone = write.client.get(f"/api/tasks/{SERVER_OWNED['id']}", headers=write.headers)
    assert gone.status_code == 404


# ---- never a 500 ---------------------------------------------------------------------------------

ODD_VALUES: list[object] = [None, 0, -1, 2**64, 1e308, "", "\u0000", [], {}, True, "x" * 20_000]


@pytest.mark.parametrize("field", ["title", "description", "completed"])
def test_odd_values_in_any_field_are_never_a_500_fr008(
    client: TestClient, alice: Headers, task: dict[str, Any], field: str
) -> None:
    routes = [
        ("POST", "/api/tasks"),
        ("PUT", f"/api/tasks/{task['id']}"),
        ("PATCH", f"/api/tasks/{task['id']}"),
        ("PATCH", f"/api/tasks/{task['id']}/complete"),
    ]
    for value in ODD_VALUES:
        for method, url in routes:
            body = {"title": "ok", field: value} if method == "POST" else {field: value}
            response = client.request(method, url, json=body, headers=alice)
            assert response.status_code in (200, 201, 400), (method, url, value, response.text)
            detail = response.json().get("detail") if response.status_code == 400 else "ok"
            assert isinstance(detail, str)
            assert detail
            assert "Traceback" not in response.text
