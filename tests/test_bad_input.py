"""Bad input on the task endpoints: always a 400 (or 413) with a helpful detail, never a 500.

Every rejection here asserts the exact status, the exact human-readable ``detail`` (SC-006), the
``errors`` list of ``{loc, msg, type}`` where the error is a validation error (FR-008), that the
detail does not echo the offending input, and that the tasks table is unchanged. Title length is
counted in Unicode characters after trimming surrounding whitespace (US3-1, US3-2, FR-009).
Runs on PostgreSQL and SQLite (the ``client`` fixture is parametrized).
"""

from collections.abc import Callable, Iterator
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

# Methods that take a task body, and the routes a task id appears in.
UPDATES = ["PUT", "PATCH"]
BODY_UPDATES = pytest.mark.parametrize(
    ("method", "suffix"),
    [("PUT", ""), ("PATCH", ""), ("PATCH", "/complete")],
    ids=["PUT", "PATCH", "PATCH-complete"],
)
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
def test_title_of_200_characters_is_accepted_on_create_us3_1_fr009(
    client: TestClient, alice: Headers, char: str
) -> None:
    task = create(client, alice, char * 200)
    assert task["title"] == char * 200
    assert client.get(f"/api/tasks/{task['id']}", headers=alice).json()["title"] == char * 200


@LONG_CHARACTERS
@pytest.mark.parametrize("method", UPDATES)
def test_title_of_200_characters_is_accepted_on_update_us3_1_fr009(
    client: TestClient, alice: Headers, task: dict[str, Any], char: str, method: str
) -> None:
    response = client.request(
        method, f"/api/tasks/{task['id']}", json={"title": char * 200}, headers=alice
    )
    assert response.status_code == 200, response.text
    assert response.json()["title"] == char * 200


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


@pytest.mark.parametrize(
    "title",
    ["", " ", "   \t\n  ", "\u3000"],
    ids=["empty", "space", "mixed-whitespace", "ideographic-space"],
)
def test_empty_or_whitespace_only_title_is_400_us3_2_fr009(
    client: TestClient, alice: Headers, unchanged: None, title: str
) -> None:
    response = client.post("/api/tasks", json={"title": title}, headers=alice)
    assert_error(response, 400, TITLE_LENGTH, [(["body", "title"], "title_length")])


@LONG_CHARACTERS
def test_title_over_200_chars_is_400_us3_2_fr009(
    client: TestClient, alice: Headers, unchanged: None, char: str
) -> None:
    title = char * 201
    response = client.post("/api/tasks", json={"title": title}, headers=alice)
    assert_error(
        response, 400, TITLE_LENGTH, [(["body", "title"], "title_length")], not_echoing=title
    )


@pytest.mark.parametrize("method", UPDATES)
@pytest.mark.parametrize(
    "title", ["", "  ", "Z" * 201, "😀" * 201], ids=["empty", "blank", "201", "201-emoji"]
)
def test_bad_title_length_on_update_is_400_us3_2_fr009(
    client: TestClient,
    alice: Headers,
    task: dict[str, Any],
    unchanged: None,
    method: str,
    title: str,
) -> None:
    response = client.request(
        method, f"/api/tasks/{task['id']}", json={"title": title}, headers=alice
    )
    assert_error(response, 400, TITLE_LENGTH, [(["body", "title"], "title_length")])
    if title.strip():
        assert title not in response.text


# ---- types and nulls (FR-008, SC-006) -----------------------------------------------------------

NOT_STRINGS = pytest.mark.parametrize(
    "value", [42, 4.5, True, ["a"], {"text": "a"}], ids=["int", "float", "bool", "list", "object"]
)


@NOT_STRINGS
def test_title_not_a_string_is_400_on_create_fr008(
    client: TestClient, alice: Headers, unchanged: None, value: object
) -> None:
    response = client.post("/api/tasks", json={"title": value}, headers=alice)
    assert_error(response, 400, TITLE_NOT_STRING, [(["body", "title"], "string_type")])


@NOT_STRINGS
@pytest.mark.parametrize("method", UPDATES)
def test_title_not_a_string_is_400_on_update_fr008(
    client: TestClient,
    alice: Headers,
    task: dict[str, Any],
    unchanged: None,
    method: str,
    value: object,
) -> None:
    response = client.request(
        method, f"/api/tasks/{task['id']}", json={"title": value}, headers=alice
    )
    assert_error(response, 400, TITLE_NOT_STRING, [(["body", "title"], "string_type")])


def test_title_null_on_create_is_400_fr008_fr009(
    client: TestClient, alice: Headers, unchanged: None
) -> None:
    response = client.post("/api/tasks", json={"title": None}, headers=alice)
    assert_error(response, 400, TITLE_NOT_STRING, [(["body", "title"], "string_type")])


def test_missing_title_on_create_is_400_fr008(
    client: TestClient, alice: Headers, unchanged: None
) -> None:
    response = client.post("/api/tasks", json={"description": "no title"}, headers=alice)
    assert_error(response, 400, "title: Field required", [(["body", "title"], "missing")])


@pytest.mark.parametrize("method", UPDATES)
def test_title_null_on_update_is_400_fr008_fr009(
    client: TestClient, alice: Headers, task: dict[str, Any], unchanged: None, method: str
) -> None:
    response = client.request(
        method, f"/api/tasks/{task['id']}", json={"title": None}, headers=alice
    )
    assert_error(response, 400, TITLE_NULL, [(["body", "title"], "null_not_allowed")])


@pytest.mark.parametrize("method", UPDATES)
def test_completed_null_on_update_is_400_fr008(
    client: TestClient, alice: Headers, task: dict[str, Any], unchanged: None, method: str
) -> None:
    response = client.request(
        method, f"/api/tasks/{task['id']}", json={"completed": None}, headers=alice
    )
    assert_error(response, 400, COMPLETED_NULL, [(["body", "completed"], "null_not_allowed")])


NOT_BOOLEANS = pytest.mark.parametrize(
    "value",
    ["yes", 1, 0, "true", "false", [True]],
    ids=["yes", "1", "0", "str-true", "str-false", "list"],
)


@NOT_BOOLEANS
def test_completed_not_strict_bool_is_400_on_create_fr008(
    client: TestClient, alice: Headers, unchanged: None, value: object
) -> None:
    response = client.post("/api/tasks", json={"title": "t", "completed": value}, headers=alice)
    assert_error(response, 400, COMPLETED_NOT_BOOL, [(["body", "completed"], "bool_type")])


@NOT_BOOLEANS
@BODY_UPDATES
def test_completed_not_strict_bool_is_400_on_update_fr008(
    client: TestClient,
    alice: Headers,
    task: dict[str, Any],
    unchanged: None,
    method: str,
    suffix: str,
    value: object,
) -> None:
    response = client.request(
        method, f"/api/tasks/{task['id']}{suffix}", json={"completed": value}, headers=alice
    )
    assert_error(response, 400, COMPLETED_NOT_BOOL, [(["body", "completed"], "bool_type")])


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


def test_description_over_10000_chars_is_400_on_create_fr008(
    client: TestClient, alice: Headers, unchanged: None
) -> None:
    description = "D" * 10_001
    response = client.post(
        "/api/tasks", json={"title": "t", "description": description}, headers=alice
    )
    assert_error(
        response,
        400,
        DESCRIPTION_LENGTH,
        [(["body", "description"], "description_length")],
        not_echoing="D" * 100,
    )


@pytest.mark.parametrize("method", UPDATES)
def test_description_over_10000_chars_is_400_on_update_fr008(
    client: TestClient, alice: Headers, task: dict[str, Any], unchanged: None, method: str
) -> None:
    response = client.request(
        method, f"/api/tasks/{task['id']}", json={"description": "D" * 10_001}, headers=alice
    )
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
@pytest.mark.parametrize("text", ["a\u0000b", "\u0000"], ids=["inside", "alone"])
def test_nul_byte_is_400_on_create_fr008(
    client: TestClient, alice: Headers, unchanged: None, field: str, detail: str, text: str
) -> None:
    body = {"title": "t", field: text}
    response = client.post("/api/tasks", json=body, headers=alice)
    assert_error(response, 400, detail, [(["body", field], "unstorable_character")])


@UNSTORABLE_FIELDS
@pytest.mark.parametrize("method", UPDATES)
def test_nul_byte_is_400_on_update_fr008(
    client: TestClient,
    alice: Headers,
    task: dict[str, Any],
    unchanged: None,
    method: str,
    field: str,
    detail: str,
) -> None:
    response = client.request(
        method, f"/api/tasks/{task['id']}", json={field: "x\u0000y"}, headers=alice
    )
    assert_error(response, 400, detail, [(["body", field], "unstorable_character")])


@UNSTORABLE_FIELDS
@pytest.mark.parametrize(
    "escaped", [r"\ud800", r"x\udfffy", r"\ude00\ud83d"], ids=["high", "low", "reversed-pair"]
)
def test_lone_surrogate_is_400_on_create_fr008(
    client: TestClient, alice: Headers, unchanged: None, field: str, detail: str, escaped: str
) -> None:
    # Raw JSON text: json= in the client could not even encode a lone surrogate.
    raw = f'{{"title": "t", "{field}": "{escaped}"}}'
    response = client.post("/api/tasks", content=raw.encode(), headers=json_headers(alice))
    assert_error(response, 400, detail, [(["body", field], "unstorable_character")])


@UNSTORABLE_FIELDS
@pytest.mark.parametrize("method", UPDATES)
def test_lone_surrogate_is_400_on_update_fr008(
    client: TestClient,
    alice: Headers,
    task: dict[str, Any],
    unchanged: None,
    method: str,
    field: str,
    detail: str,
) -> None:
    raw = f'{{"{field}": "\\ud800"}}'
    response = client.request(
        method, f"/api/tasks/{task['id']}", content=raw.encode(), headers=json_headers(alice)
    )
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
def test_malformed_json_is_400_on_create_fr008_sc006(
    client: TestClient, alice: Headers, unchanged: None, raw: bytes
) -> None:
    response = client.post("/api/tasks", content=raw, headers=json_headers(alice))
    assert_error(response, 400, NOT_JSON)
    [item] = response.json()["errors"]
    assert item["loc"][0] == "body"
    assert item["type"] == "json_invalid"


@BODY_UPDATES
def test_malformed_json_is_400_on_update_fr008_sc006(
    client: TestClient,
    alice: Headers,
    task: dict[str, Any],
    unchanged: None,
    method: str,
    suffix: str,
) -> None:
    response = client.request(
        method, f"/api/tasks/{task['id']}{suffix}", content=b"{bad", headers=json_headers(alice)
    )
    assert_error(response, 400, NOT_JSON)


@pytest.mark.parametrize(
    "content_type", ["text/plain;charset=UTF-8", "application/x-www-form-urlencoded"]
)
def test_json_sent_without_a_json_content_type_is_400_that_says_so_fr008_sc006(
    client: TestClient, alice: Headers, unchanged: None, content_type: str
) -> None:
    # fetch(url, {method: "POST", body: JSON.stringify(task)}) sends text/plain by default.
    response = client.post(
        "/api/tasks", content=b'{"title": "x"}', headers={**alice, "Content-Type": content_type}
    )
    assert_error(response, 400, NOT_JSON_CONTENT_TYPE, [(["body"], "model_attributes_type")])


@pytest.mark.parametrize("raw", [b"[]", b'"str"', b"42", b"null", b"true", b'[{"title": "x"}]'])
def test_non_object_body_is_400_on_create_fr008(
    client: TestClient, alice: Headers, unchanged: None, raw: bytes
) -> None:
    response = client.post("/api/tasks", content=raw, headers=json_headers(alice))
    assert_error(response, 400, NOT_OBJECT, [(["body"], "model_attributes_type")])


@pytest.mark.parametrize("raw", [b"[]", b'"str"', b"42", b"null"])
@pytest.mark.parametrize("method", UPDATES)
def test_non_object_body_is_400_on_update_fr008(
    client: TestClient,
    alice: Headers,
    task: dict[str, Any],
    unchanged: None,
    method: str,
    raw: bytes,
) -> None:
    response = client.request(
        method, f"/api/tasks/{task['id']}", content=raw, headers=json_headers(alice)
    )
    assert_error(response, 400, NOT_OBJECT, [(["body"], "model_attributes_type")])


@pytest.mark.parametrize("raw", [b"[]", b'"str"', b"42"])
def test_non_object_body_is_400_on_complete_fr008(
    client: TestClient, alice: Headers, task: dict[str, Any], unchanged: None, raw: bytes
) -> None:
    response = client.patch(
        f"/api/tasks/{task['id']}/complete", content=raw, headers=json_headers(alice)
    )
    assert_error(response, 400, NOT_OBJECT, [(["body"], "model_attributes_type")])


@pytest.mark.parametrize("with_content_type", [False, True], ids=["no-type", "json-type"])
def test_missing_body_on_create_is_400_fr008(
    client: TestClient, alice: Headers, unchanged: None, with_content_type: bool
) -> None:
    headers = json_headers(alice) if with_content_type else alice
    response = client.post("/api/tasks", headers=headers)
    assert_error(response, 400, BODY_REQUIRED, [(["body"], "missing")])


@pytest.mark.parametrize("method", UPDATES)
def test_missing_body_on_update_is_400_fr008(
    client: TestClient, alice: Headers, task: dict[str, Any], unchanged: None, method: str
) -> None:
    response = client.request(method, f"/api/tasks/{task['id']}", headers=alice)
    assert_error(response, 400, BODY_REQUIRED, [(["body"], "missing")])


# ---- body size: 1 MiB ----------------------------------------------------------------------------

BODY_ROUTES = pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/api/tasks"),
        ("PUT", "/api/tasks/{id}"),
        ("PATCH", "/api/tasks/{id}"),
        ("PATCH", "/api/tasks/{id}/complete"),
    ],
    ids=["POST", "PUT", "PATCH", "PATCH-complete"],
)


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


@BODY_ROUTES
def test_body_over_1_mib_with_content_length_is_413_fr008(
    client: TestClient,
    alice: Headers,
    task: dict[str, Any],
    unchanged: None,
    method: str,
    path: str,
) -> None:
    body = oversized_body()
    assert len(body) == MAX_BODY + 1
    response = client.request(
        method, path.format(id=task["id"]), content=body, headers=json_headers(alice)
    )
    assert response.request.headers["content-length"] == str(MAX_BODY + 1)
    assert_error(response, 413, TOO_LARGE)


@BODY_ROUTES
def test_body_over_1_mib_streamed_without_content_length_is_413_fr008(
    client: TestClient,
    alice: Headers,
    task: dict[str, Any],
    unchanged: None,
    method: str,
    path: str,
) -> None:
    response = client.request(
        method,
        path.format(id=task["id"]),
        content=in_chunks(oversized_body()),
        headers=json_headers(alice),
    )
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


def test_unknown_fields_are_ignored_on_create(client: TestClient, alice: Headers) -> None:
    task = create(client, alice, "With extras", **FRONTEND_EXTRAS)
    assert set(task) == PUBLIC_FIELDS
    assert task["title"] == "With extras"
    fetched = client.get(f"/api/tasks/{task['id']}", headers=alice).json()
    assert set(fetched) == PUBLIC_FIELDS


@pytest.mark.parametrize("method", UPDATES)
def test_unknown_fields_are_ignored_on_update(
    client: TestClient, alice: Headers, task: dict[str, Any], method: str
) -> None:
    response = client.request(
        method,
        f"/api/tasks/{task['id']}",
        json={"title": "Renamed", **FRONTEND_EXTRAS},
        headers=alice,
    )
    assert response.status_code == 200, response.text
    assert set(response.json()) == PUBLIC_FIELDS
    assert response.json()["title"] == "Renamed"


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


@pytest.mark.parametrize("method", UPDATES)
def test_id_user_and_timestamps_alone_in_update_body_change_nothing_fr003(
    client: TestClient, alice: Headers, task: dict[str, Any], unchanged: None, method: str
) -> None:
    response = client.request(method, f"/api/tasks/{task['id']}", json=SERVER_OWNED, headers=alice)
    assert response.status_code == 200, response.text
    assert response.json() == task


@pytest.mark.parametrize("method", UPDATES)
def test_id_user_and_timestamps_in_update_body_are_ignored_fr003(
    client: TestClient, alice: Headers, task: dict[str, Any], db_rows: Rows, method: str
) -> None:
    response = client.request(
        method,
        f"/api/tasks/{task['id']}",
        json={"title": "Renamed", **SERVER_OWNED},
        headers=alice,
    )
    assert response.status_code == 200, response.text
    updated = response.json()
    assert updated["title"] == "Renamed"
    for field in ("id", "user_id", "created_at", "description", "completed"):
        assert updated[field] == task[field]
    assert datetime.fromisoformat(updated["updated_at"]) > datetime.fromisoformat(
        task["updated_at"]
    )
    assert [row[0] for row in db_rows()] == [task["id"]]
    assert client.get(f"/api/tasks/{SERVER_OWNED['id']}", headers=alice).status_code == 404


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
