"""GET /api/tasks: filters, sorting, limit/offset, keyset cursors and paging headers.

SPEC "List query parameters": ``status=all|pending|completed`` (aliases ``status_filter`` and
``completed=true|false``), ``sort=created|updated|title`` with an optional ``-`` prefix or
``order=asc|desc`` (default newest first), ``limit`` (default 100, at most 1000), ``offset``, and
a keyset ``cursor``. The body is always a bare JSON array; ``X-Total-Count`` counts the whole
filtered set and ``Link: <...>; rel="next"`` leads to the next page. Unknown values of these
parameters are a 400; unknown parameters are ignored. Only the caller's tasks ever appear
(SC-003, US1-2), under ``/api/tasks`` and the ``/api/{user_id}/tasks`` alias alike.

Expected orders are computed here from the tasks' own fields (ties broken by id, in the sort's
direction), never taken from the API. Titles are lowercase ASCII words so that every database
collation agrees with Python's ordering. Tasks are created one after another, so ``created_at``
(microsecond UTC) follows creation order.
"""

import base64
import json
import re
import uuid
from datetime import datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from httpx2 import Response

import task_store
from db import PostgresDatabase
from tests.conftest import insert_rows
from tests.keys import ALICE, BOB, bearer, mint

Headers = dict[str, str]
Task = dict[str, Any]
Params = dict[str, str]

PUBLIC_FIELDS = {"id", "user_id", "title", "description", "completed", "created_at", "updated_at"}
NEXT = re.compile(r'<([^>]*)>;\s*rel="next"')

CONFLICTING_FILTERS = "query: status, status_filter and completed disagree"
CURSOR_INVALID = "query: cursor is not one this API issued"
CURSOR_MISMATCH = "query: cursor was issued for a different sort, order or status filter"
CURSOR_AND_OFFSET = "query: use either cursor or offset, not both"
DEEP_OFFSET = (
    "offset: must be at most 10000; for deeper pages follow the cursor in the Link header "
    '(rel="next"), which has no limit'
)
BAD_STATUS = "Input should be 'all', 'pending' or 'completed'"
BAD_SORT = "sort: Input should be 'created', 'updated', 'title', '-created', '-updated' or '-title'"


def label(value: object) -> str:
    """A readable test id for a dict of query parameters."""
    if isinstance(value, dict):
        return "&".join(f"{k}={v}" for k, v in value.items()) or "default"
    return str(value)


def create(client: TestClient, headers: Headers, title: str, **fields: Any) -> Task:
    response = client.post("/api/tasks", json={"title": title, **fields}, headers=headers)
    assert response.status_code == 201, response.text
    task: Task = response.json()
    return task


def update(client: TestClient, headers: Headers, task: Task, **fields: Any) -> Task:
    response = client.patch(f"/api/tasks/{task['id']}", json=fields, headers=headers)
    assert response.status_code == 200, response.text
    updated: Task = response.json()
    return updated


def get_list(
    client: TestClient, headers: Headers, url: str, params: Params | None = None
) -> Response:
    """A successful list response: 200, a bare JSON array of tasks, and an X-Total-Count."""
    response = client.get(url, params=params, headers=headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert isinstance(body, list), "the list body must be a bare JSON array"
    assert all(isinstance(task, dict) and set(task) == PUBLIC_FIELDS for task in body)
    assert response.headers["X-Total-Count"].isdigit()
    return response


def ids(response: Response) -> list[int]:
    return [task["id"] for task in response.json()]


def total(response: Response) -> int:
    return int(response.headers["X-Total-Count"])


def next_url(response: Response) -> str | None:
    link = response.headers.get("Link")
    if link is None:
        return None
    match = NEXT.search(link)
    assert match, f"Link header without rel=next: {link!r}"
    return match.group(1)


def cursor_of(url: str) -> str:
    [cursor] = parse_qs(urlsplit(url).query)["cursor"]
    return cursor


def assert_error(response: Response, detail: str, loc: list[str], kind: str) -> None:
    assert response.status_code < 500, response.text
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["detail"] == detail
    assert isinstance(body["errors"], list)
    assert [(e["loc"], e["type"]) for e in body["errors"]] == [(loc, kind)]
    assert all(set(e) == {"loc", "msg", "type"} and e["msg"] for e in body["errors"])


def expected_ids(tasks: list[Task], params: Params) -> list[int]:
    """What the SPEC says the full listing is, computed from the tasks' fields."""
    status = params.get("status") or params.get("status_filter") or "all"
    if "completed" in params:
        status = "completed" if params["completed"] == "true" else "pending"
    kept = [t for t in tasks if status == "all" or t["completed"] == (status == "completed")]
    sort = params.get("sort", "created")
    key = sort.lstrip("-")
    if sort.startswith("-"):
        descending = True
    elif "order" in params:
        descending = params["order"] == "desc"
    else:
        descending = key != "title"  # dates newest first, titles A to Z

    def sort_value(task: Task) -> tuple[Any, int]:
        value = task["title"] if key == "title" else datetime.fromisoformat(task[f"{key}_at"])
        return value, task["id"]

    return [t["id"] for t in sorted(kept, key=sort_value, reverse=descending)]


def walk(client: TestClient, headers: Headers, url: str, params: Params) -> list[list[int]]:
    """Follow rel="next" from the first page to the last; every page must agree on the total."""
    first = get_list(client, headers, url, params)
    pages, count, link = [ids(first)], total(first), next_url(first)
    while link is not None:
        assert link.startswith(f"{url}?"), link
        page = get_list(client, headers, link)
        assert total(page) == count, "X-Total-Count must count the whole set on every page"
        pages.append(ids(page))
        link = next_url(page)
        assert len(pages) <= 100, "paging does not terminate"
    return pages


@pytest.fixture(params=["canonical", "alias"])
def tasks_url(request: pytest.FixtureRequest) -> str:
    """The list path: /api/tasks, and the /api/{user_id}/tasks alias for the same caller."""
    return "/api/tasks" if request.param == "canonical" else f"/api/{ALICE}/tasks"


@pytest.fixture
def bob() -> Headers:
    return bearer(mint(BOB))


@pytest.fixture
def five(client: TestClient, alice: Headers) -> list[Task]:
    """Five tasks in creation order, two completed, with updated_at order differing from both
    creation and title order; as the API last returned each (never read back from the list)."""
    titles = ["delta", "alpha", "echo", "bravo", "charlie"]
    tasks = [create(client, alice, title) for title in titles]
    for index in (3, 0, 1):  # bravo, delta, alpha: most recently updated last
        tasks[index] = update(client, alice, tasks[index], completed=index != 1)
    return tasks


@pytest.fixture
def many(client: TestClient, alice: Headers, bob: Headers) -> list[Task]:
    """25 of Alice's tasks with repeated titles (to exercise the id tie-break), a third of them
    completed, some updated after creation; Bob's tasks interleaved, which must never show."""
    words = ["kiwi", "apple", "fig", "apple", "mango"]
    mine = []
    for number in range(25):
        mine.append(create(client, alice, words[number % 5], completed=number % 3 == 0))
        if number % 4 == 0:
            create(client, bob, words[number % 5])
    for index in (11, 5, 9, 7):
        mine[index] = update(client, alice, mine[index], description="touched")
    return mine


# ---- order and filters ---------------------------------------------------------------------------


def test_default_order_is_newest_first_us1_2(
    client: TestClient, alice: Headers, five: list[Task], tasks_url: str
) -> None:
    response = get_list(client, alice, tasks_url)
    assert ids(response) == [task["id"] for task in reversed(five)]
    assert total(response) == 5
    assert "Link" not in response.headers


SORTS: list[Params] = [
    {"sort": "created"},
    {"sort": "-created"},
    {"sort": "created", "order": "asc"},
    {"sort": "created", "order": "desc"},
    {"sort": "-created", "order": "desc"},
    {"sort": "updated"},
    {"sort": "-updated"},
    {"sort": "updated", "order": "asc"},
    {"sort": "title"},
    {"sort": "title", "order": "asc"},
    {"sort": "title", "order": "desc"},
    {"sort": "-title"},
    {"order": "asc"},
    {"order": "desc"},
]


@pytest.mark.parametrize("params", SORTS, ids=label)
def test_sort_and_order_us1_2(
    client: TestClient, alice: Headers, five: list[Task], params: Params
) -> None:
    response = get_list(client, alice, "/api/tasks", params)
    assert ids(response) == expected_ids(five, params)


def test_sort_orders_really_differ(five: list[Task]) -> None:
    """Guards the fixture: created, updated and title orders are three different orders."""
    orders = {tuple(expected_ids(five, {"sort": key})) for key in ("created", "updated", "title")}
    assert len(orders) == 3


FILTERS: list[tuple[Params, str]] = [
    ({}, "all"),
    ({"status": "all"}, "all"),
    ({"status": "pending"}, "pending"),
    ({"status": "completed"}, "completed"),
    ({"status_filter": "all"}, "all"),
    ({"status_filter": "pending"}, "pending"),
    ({"status_filter": "completed"}, "completed"),
    ({"completed": "true"}, "completed"),
    ({"completed": "false"}, "pending"),
    ({"status": "pending", "completed": "false"}, "pending"),
    ({"status": "completed", "status_filter": "completed"}, "completed"),
]


@pytest.mark.parametrize(("params", "status"), FILTERS, ids=label)
def test_status_filters_and_aliases_us1_2(
    client: TestClient,
    alice: Headers,
    five: list[Task],
    tasks_url: str,
    params: Params,
    status: str,
) -> None:
    response = get_list(client, alice, tasks_url, params)
    wanted = [
        t["id"]
        for t in reversed(five)
        if status == "all" or t["completed"] == (status == "completed")
    ]
    assert ids(response) == wanted
    assert total(response) == len(wanted)


@pytest.mark.parametrize(
    "params",
    [
        {"status": "pending", "completed": "true"},
        {"status": "completed", "status_filter": "pending"},
        {"status_filter": "pending", "completed": "true"},
        {"status": "all", "completed": "false"},
        {"status": "all", "status_filter": "completed"},
    ],
    ids=label,
)
def test_conflicting_filters_are_400_fr008_sc006(
    client: TestClient, alice: Headers, five: list[Task], params: Params
) -> None:
    response = client.get("/api/tasks", params=params, headers=alice)
    assert_error(response, CONFLICTING_FILTERS, ["query"], "conflicting_filters")


@pytest.mark.parametrize(
    ("name", "value", "detail", "kind"),
    [
        ("status", "done", f"status: {BAD_STATUS}", "literal_error"),
        ("status", "Completed", f"status: {BAD_STATUS}", "literal_error"),
        ("status", "", f"status: {BAD_STATUS}", "literal_error"),
        ("status_filter", "open", f"status_filter: {BAD_STATUS}", "literal_error"),
        ("completed", "maybe", "completed: must be true or false", "bool_parsing"),
        # pydantic alone would read these as booleans; the contract says true or false.
        ("completed", "yes", "completed: must be true or false", "bool_parsing"),
        ("completed", "1", "completed: must be true or false", "bool_parsing"),
        ("completed", "on", "completed: must be true or false", "bool_parsing"),
    ],
)
def test_unknown_status_value_is_400_fr008_sc006(
    client: TestClient, alice: Headers, name: str, value: str, detail: str, kind: str
) -> None:
    response = client.get("/api/tasks", params={name: value}, headers=alice)
    assert_error(response, detail, ["query", name], kind)


@pytest.mark.parametrize("name", ["status", "sort", "limit", "order"])
def test_repeated_list_parameter_is_400_not_last_one_wins_fr008_sc006(
    client: TestClient, alice: Headers, name: str
) -> None:
    values = {"status": "all", "sort": "title", "limit": "5", "order": "asc"}[name]
    response = client.get(f"/api/tasks?{name}={values}&{name}={values}", headers=alice)
    assert_error(response, f"{name}: given more than once", ["query", name], "duplicate")


@pytest.mark.parametrize("key", ["created", "updated", "title"])
def test_descending_sort_with_order_asc_is_400_fr008_sc006(
    client: TestClient, alice: Headers, key: str
) -> None:
    response = client.get("/api/tasks", params={"sort": f"-{key}", "order": "asc"}, headers=alice)
    assert_error(
        response, f"query: sort=-{key} is descending but order=asc", ["query"], "conflicting_sort"
    )


@pytest.mark.parametrize("value", ["due_date", "priority", "id", "Title", "+created", "--title"])
def test_unknown_sort_is_400_fr008_sc006(client: TestClient, alice: Headers, value: str) -> None:
    response = client.get("/api/tasks", params={"sort": value}, headers=alice)
    assert_error(response, BAD_SORT, ["query", "sort"], "literal_error")


@pytest.mark.parametrize("value", ["up", "ascending", "ASC", ""])
def test_unknown_order_is_400_fr008_sc006(client: TestClient, alice: Headers, value: str) -> None:
    response = client.get("/api/tasks", params={"order": value}, headers=alice)
    assert_error(
        response, "order: Input should be 'asc' or 'desc'", ["query", "order"], "literal_error"
    )


# ---- limit and offset ----------------------------------------------------------------------------


def test_limit_defaults_to_100_and_1000_is_allowed_us1_2(
    client: TestClient, alice: Headers
) -> None:
    created = [create(client, alice, f"task{n}")["id"] for n in range(101)]
    default = get_list(client, alice, "/api/tasks")
    assert ids(default) == created[::-1][:100]
    assert total(default) == 101
    assert next_url(default) is not None
    everything = get_list(client, alice, "/api/tasks", {"limit": "1000"})
    assert ids(everything) == created[::-1]
    assert total(everything) == 101
    assert "Link" not in everything.headers


@pytest.mark.parametrize(
    ("value", "detail", "kind"),
    [
        ("0", "limit: Input should be greater than or equal to 1", "greater_than_equal"),
        ("-1", "limit: Input should be greater than or equal to 1", "greater_than_equal"),
        ("1001", "limit: Input should be less than or equal to 1000", "less_than_equal"),
        (
            "99999999999999999999",
            "limit: Input should be less than or equal to 1000",
            "less_than_equal",
        ),
        (
            "ten",
            "limit: Input should be a valid integer, unable to parse string as an integer",
            "int_parsing",
        ),
    ],
)
def test_limit_out_of_range_is_400_fr008_sc006(
    client: TestClient, alice: Headers, value: str, detail: str, kind: str
) -> None:
    response = client.get("/api/tasks", params={"limit": value}, headers=alice)
    assert_error(response, detail, ["query", "limit"], kind)


@pytest.mark.parametrize(
    ("value", "detail", "kind"),
    [
        ("-1", "offset: Input should be greater than or equal to 0", "greater_than_equal"),
        # Deep pages go by the cursor (issue 15): every skipped row is read.
        ("10001", DEEP_OFFSET, "offset_too_deep"),
        (str(2**63), DEEP_OFFSET, "offset_too_deep"),
    ],
)
def test_offset_out_of_range_is_400_fr008(
    client: TestClient, alice: Headers, value: str, detail: str, kind: str
) -> None:
    response = client.get("/api/tasks", params={"offset": value}, headers=alice)
    assert_error(response, detail, ["query", "offset"], kind)


def test_offset_skips_rows_and_total_counts_the_whole_set(
    client: TestClient, alice: Headers, five: list[Task], tasks_url: str
) -> None:
    oldest_first = [task["id"] for task in five]
    params = {"sort": "created", "order": "asc", "limit": "2", "offset": "1"}
    page = get_list(client, alice, tasks_url, params)
    assert ids(page) == oldest_first[1:3]
    assert total(page) == 5
    assert next_url(page) is not None
    last = get_list(client, alice, tasks_url, {**params, "offset": "3"})
    assert ids(last) == oldest_first[3:]
    assert "Link" not in last.headers


@pytest.mark.parametrize(
    "params",
    [
        {"offset": "5"},
        {"offset": "1000"},
        {"offset": "10000"},
        {"status": "completed", "offset": "2"},
    ],
    ids=label,
)
def test_empty_page_past_the_end_still_reports_the_total(
    client: TestClient, alice: Headers, five: list[Task], tasks_url: str, params: Params
) -> None:
    response = get_list(client, alice, tasks_url, params)
    assert response.json() == []
    assert total(response) == (2 if "status" in params else 5)
    assert "Link" not in response.headers


def test_offset_page_link_continues_after_its_last_row(
    client: TestClient, alice: Headers, many: list[Task]
) -> None:
    order = expected_ids(many, {"sort": "title"})
    page = get_list(client, alice, "/api/tasks", {"sort": "title", "limit": "7", "offset": "3"})
    assert ids(page) == order[3:10]
    link = next_url(page)
    assert link is not None
    assert "offset" not in parse_qs(urlsplit(link).query)
    assert ids(get_list(client, alice, link)) == order[10:17]


# ---- keyset paging through Link: rel="next" ------------------------------------------------------

WALKS: list[Params] = [
    {},
    {"sort": "created", "order": "asc"},
    {"sort": "-updated"},
    {"sort": "updated", "order": "asc"},
    {"sort": "title"},
    {"sort": "-title"},
    {"sort": "title", "order": "desc"},
    {"sort": "title", "status": "pending"},
    {"status": "completed"},
    {"sort": "-title", "completed": "false"},
]


@pytest.mark.parametrize("params", WALKS, ids=label)
def test_following_next_links_walks_every_task_once_us1_2(
    client: TestClient, alice: Headers, many: list[Task], tasks_url: str, params: Params
) -> None:
    expected = expected_ids(many, params)
    pages = walk(client, alice, tasks_url, {**params, "limit": "7"})
    assert [task for page in pages for task in page] == expected, "duplicates, gaps or wrong order"
    assert all(len(page) == 7 for page in pages[:-1])
    assert 1 <= len(pages[-1]) <= 7
    assert len(pages) == -(-len(expected) // 7)


def test_no_next_link_when_the_last_page_is_exactly_full(
    client: TestClient, alice: Headers, many: list[Task]
) -> None:
    pages = walk(client, alice, "/api/tasks", {"sort": "title", "limit": "5"})
    assert [len(page) for page in pages] == [5] * 5
    assert [task for page in pages for task in page] == expected_ids(many, {"sort": "title"})


def test_next_link_is_absent_when_everything_fits(
    client: TestClient, alice: Headers, five: list[Task], tasks_url: str
) -> None:
    assert "Link" not in get_list(client, alice, tasks_url, {"limit": "5"}).headers
    link = next_url(get_list(client, alice, tasks_url, {"limit": "4"}))
    assert link is not None
    assert link.startswith(f"{tasks_url}?")


def test_next_link_keeps_unknown_params_and_filters(
    client: TestClient, alice: Headers, many: list[Task]
) -> None:
    params = {"sort": "title", "status": "pending", "limit": "7", "_": "123"}
    link = next_url(get_list(client, alice, "/api/tasks", params))
    assert link is not None
    query = parse_qs(urlsplit(link).query)
    assert {name: values for name, values in query.items() if name != "cursor"} == {
        name: [value] for name, value in params.items()
    }


# ---- cursor errors -------------------------------------------------------------------------------


def issued_cursor(client: TestClient, headers: Headers, params: Params) -> str:
    link = next_url(get_list(client, headers, "/api/tasks", {**params, "limit": "2"}))
    assert link is not None
    return cursor_of(link)


@pytest.mark.parametrize(
    ("issued_for", "used_with"),
    [
        ({"sort": "title"}, {"sort": "-title"}),
        ({"sort": "title"}, {"sort": "title", "order": "desc"}),
        ({"sort": "title"}, {"sort": "created"}),
        ({"sort": "title"}, {}),
        ({"sort": "title"}, {"sort": "title", "status": "pending"}),
        ({"sort": "title", "status": "pending"}, {"sort": "title", "completed": "true"}),
        ({"sort": "title", "status": "pending"}, {"sort": "title"}),
        ({}, {"sort": "title"}),
        ({}, {"sort": "created", "order": "asc"}),
    ],
    ids=label,
)
def test_cursor_from_a_different_sort_or_status_is_400_fr008(
    client: TestClient, alice: Headers, five: list[Task], issued_for: Params, used_with: Params
) -> None:
    cursor = issued_cursor(client, alice, issued_for)
    response = client.get("/api/tasks", params={**used_with, "cursor": cursor}, headers=alice)
    assert_error(response, CURSOR_MISMATCH, ["query"], "cursor_mismatch")


def forged(payload: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(payload).encode()).rstrip(b"=").decode()


GOOD_FIELDS = {"sort": "title", "desc": False, "status": "all", "value": "apple", "id": 1}
DATE_FIELDS = {"sort": "created", "desc": True, "status": "all", "id": 1}
GARBAGE_CURSORS = {
    "word": "garbage",
    "punctuation": "!!!",
    "not-json": forged("x")[:-2] + "@@",
    "base64-text": base64.urlsafe_b64encode(b"not json at all").decode(),
    "not-utf8": base64.urlsafe_b64encode(b"\xff\xfe\xfd").decode(),
    "json-list": forged([1, 2]),
    "json-null": forged(None),
    "missing-fields": forged({"sort": "title"}),
    "extra-field": forged({**GOOD_FIELDS, "user_id": BOB}),
    "zero-id": forged({**GOOD_FIELDS, "id": 0}),
    "huge-id": forged({**GOOD_FIELDS, "id": 2**63}),
    "unknown-sort": forged({**GOOD_FIELDS, "sort": "due_date"}),
    "date-sort-with-text": forged({**GOOD_FIELDS, "sort": "created", "desc": True, "value": "x"}),
    "nul-value": forged({**GOOD_FIELDS, "value": "a\u0000"}),
    "title-with-number": forged({**GOOD_FIELDS, "value": 5}),
}


@pytest.mark.parametrize("cursor", GARBAGE_CURSORS.values(), ids=GARBAGE_CURSORS.keys())
def test_garbage_cursor_is_400_fr008_sc006(client: TestClient, alice: Headers, cursor: str) -> None:
    response = client.get("/api/tasks", params={"sort": "title", "cursor": cursor}, headers=alice)
    assert_error(response, CURSOR_INVALID, ["query"], "cursor_invalid")


@pytest.mark.parametrize(
    "value",
    ["2024-01-01T00:00:00", "2024-01-01", "yesterday", 5, None],
    ids=["naive", "date-only", "word", "number", "null"],
)
def test_date_cursor_without_a_timezone_aware_timestamp_is_400_fr008(
    client: TestClient, alice: Headers, value: object
) -> None:
    cursor = forged({**DATE_FIELDS, "value": value})
    response = client.get("/api/tasks", params={"cursor": cursor}, headers=alice)
    assert_error(response, CURSOR_INVALID, ["query"], "cursor_invalid")


@pytest.mark.parametrize(
    "value",
    ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00"],
    ids=["before-year-1-in-utc", "after-year-9999-in-utc"],
)
def test_date_cursor_outside_the_representable_range_is_400_not_500_fr008(
    client: TestClient, alice: Headers, five: list[Task], value: str
) -> None:
    """Well-formed, timezone-aware, but not a UTC instant Python can represent."""
    cursor = forged({**DATE_FIELDS, "value": value})
    response = client.get("/api/tasks", params={"cursor": cursor}, headers=alice)
    assert_error(response, CURSOR_INVALID, ["query"], "cursor_invalid")


@pytest.mark.parametrize(
    ("value", "expected"),
    [("0001-01-01T00:00:00+00:00", 0), ("9999-12-31T23:59:59.999999+00:00", 5)],
    ids=["year-1", "year-9999"],
)
def test_date_cursor_at_the_edges_of_time_is_accepted(
    client: TestClient, alice: Headers, five: list[Task], value: str, expected: int
) -> None:
    cursor = forged({**DATE_FIELDS, "value": value})
    response = get_list(client, alice, "/api/tasks", {"cursor": cursor})
    assert len(response.json()) == expected
    assert total(response) == 5


def test_title_cursor_longer_than_any_title_is_accepted(
    client: TestClient, alice: Headers, five: list[Task]
) -> None:
    cursor = forged({**GOOD_FIELDS, "value": "z" * 600})
    response = get_list(client, alice, "/api/tasks", {"sort": "title", "cursor": cursor})
    assert response.json() == []


def test_truncated_real_cursor_is_400_fr008(
    client: TestClient, alice: Headers, five: list[Task]
) -> None:
    cursor = issued_cursor(client, alice, {"sort": "title"})
    response = client.get(
        "/api/tasks", params={"sort": "title", "cursor": cursor[: len(cursor) // 2]}, headers=alice
    )
    assert_error(response, CURSOR_INVALID, ["query"], "cursor_invalid")


def test_overlong_cursor_is_400_fr008(client: TestClient, alice: Headers) -> None:
    response = client.get("/api/tasks", params={"cursor": "a" * 1025}, headers=alice)
    assert_error(
        response,
        "cursor: String should have at most 1024 characters",
        ["query", "cursor"],
        "string_too_long",
    )


@pytest.mark.parametrize("offset", ["1", "7"])
def test_cursor_together_with_offset_is_400_fr008(
    client: TestClient, alice: Headers, five: list[Task], offset: str
) -> None:
    cursor = issued_cursor(client, alice, {"sort": "title"})
    params = {"sort": "title", "cursor": cursor, "offset": offset}
    response = client.get("/api/tasks", params=params, headers=alice)
    assert_error(response, CURSOR_AND_OFFSET, ["query"], "conflicting_paging")


# ---- body shape, unknown params, isolation -------------------------------------------------------


@pytest.mark.parametrize(
    "params",
    [{}, {"status": "completed"}, {"offset": "50"}, {"limit": "1"}, {"sort": "title"}],
    ids=["plain", "no-match", "past-end", "limit-1", "title"],
)
def test_body_is_always_a_bare_json_array(
    client: TestClient, alice: Headers, tasks_url: str, params: Params
) -> None:
    assert get_list(client, alice, tasks_url, params).json() == []
    create(client, alice, "only")
    response = client.get(tasks_url, params=params, headers=alice)
    assert response.headers["content-type"] == "application/json"
    assert isinstance(response.json(), list)


@pytest.mark.parametrize(
    "extra",
    [{"_": "123"}, {"foo": "bar"}, {"user_id": BOB}, {"status_": "nope"}, {"_": "1", "page": "2"}],
    ids=label,
)
def test_unknown_query_params_are_ignored(
    client: TestClient, alice: Headers, five: list[Task], tasks_url: str, extra: Params
) -> None:
    response = get_list(client, alice, tasks_url, extra)
    assert ids(response) == [task["id"] for task in reversed(five)]
    assert total(response) == 5


def test_other_users_tasks_never_appear_in_list_or_count_sc003_us1_2(
    client: TestClient, alice: Headers, bob: Headers, many: list[Task], tasks_url: str
) -> None:
    mine = {task["id"] for task in many}
    for params in ({}, {"status": "pending"}, {"status": "completed"}, {"sort": "title"}):
        response = get_list(client, alice, tasks_url, {**params, "limit": "1000"})
        assert ids(response) == expected_ids(many, params)
        assert {task["user_id"] for task in response.json()} == {ALICE}
        assert total(response) == len(expected_ids(many, params))
    pages = walk(client, alice, tasks_url, {"sort": "title", "limit": "4"})
    assert sorted(task for page in pages for task in page) == sorted(mine)
    bobs = get_list(client, bob, "/api/tasks", {"limit": "1000"})
    assert total(bobs) == 7
    assert not set(ids(bobs)) & mine
    assert {task["user_id"] for task in bobs.json()} == {BOB}


@pytest.mark.parametrize(
    "params",
    [{}, {"sort": "updated"}, {"order": "asc"}, {"completed": "false", "order": "asc"}],
    ids=label,
)
def test_rows_timestamped_by_the_database_page_like_any_other_us1_2(
    client: TestClient, alice: Headers, backend_url: str, params: Params
) -> None:
    # Rows another tool wrote get their timestamps from the column default. Those must compare
    # with the API's own timestamps (on SQLite a plain CURRENT_TIMESTAMP, "... 12:00:00", sorts
    # before "... 12:00:00.000000" and a cursor walk looped on its first page).
    insert_rows(backend_url, *({"user_id": ALICE, "title": f"by hand {n}"} for n in range(12)))
    for n in range(3):
        create(client, alice, f"by api {n}")
    everything = get_list(client, alice, "/api/tasks", {"limit": "1000"}).json()
    pages = walk(client, alice, "/api/tasks", {**params, "limit": "4"})
    assert [task for page in pages for task in page] == expected_ids(everything, params), pages


# ---- search (issue 13: frontends of this spec already send ?search=) ----------------------------

SEARCH_TOO_LONG = "search: must be at most 200 characters"


@pytest.fixture
def searchable(client: TestClient, alice: Headers, bob: Headers) -> list[Task]:
    tasks = [
        create(client, alice, "Buy milk", description="2 litres, semi-skimmed"),
        create(client, alice, "Walk the dog"),
        create(client, alice, "Call mom", description="about the MILK delivery"),
        create(client, alice, "Äpfel kaufen"),
        create(client, alice, "100% done", description="with_underscore"),
        create(client, alice, "100 done"),
    ]
    create(client, bob, "Bob's milk")  # never in Alice's results
    return tasks


@pytest.mark.parametrize(
    ("text", "titles"),
    [
        ("milk", ["Call mom", "Buy milk"]),  # title or description, newest first
        ("MILK", ["Call mom", "Buy milk"]),  # case-insensitive
        ("LITRES", ["Buy milk"]),  # description only
        ("äpfel", ["Äpfel kaufen"]),  # beyond ASCII
        ("%", ["100% done"]),  # LIKE's wildcards are taken literally
        ("_", ["100% done"]),
        ("dog walk", []),  # one substring, not words
        ("  milk  ", ["Call mom", "Buy milk"]),  # the box's surrounding spaces do not count
    ],
    ids=label,
)
def test_search_matches_title_or_description_case_insensitively_us1_2(
    client: TestClient, alice: Headers, searchable: list[Task], text: str, titles: list[str]
) -> None:
    response = get_list(client, alice, "/api/tasks", {"search": text})
    assert [task["title"] for task in response.json()] == titles
    assert total(response) == len(titles)


def test_empty_search_lists_everything_us1_2(
    client: TestClient, alice: Headers, searchable: list[Task]
) -> None:
    for text in ("", "   "):
        response = get_list(client, alice, "/api/tasks", {"search": text})
        assert total(response) == len(searchable)


def test_search_combines_with_filter_sort_and_cursor_us1_2(
    client: TestClient, alice: Headers, searchable: list[Task]
) -> None:
    update(client, alice, searchable[0], completed=True)  # "Buy milk"
    completed = get_list(client, alice, "/api/tasks", {"search": "milk", "status": "completed"})
    assert [task["title"] for task in completed.json()] == ["Buy milk"]
    assert total(completed) == 1
    # Paging through a search: each page keeps the search, the total is the search's.
    params = {"search": "done", "sort": "title", "limit": "1"}
    first = get_list(client, alice, "/api/tasks", params)
    assert [task["title"] for task in first.json()] == ["100 done"]
    assert total(first) == 2
    link = next_url(first)
    assert link is not None
    assert parse_qs(urlsplit(link).query)["search"] == ["done"]
    second = get_list(client, alice, link)
    assert [task["title"] for task in second.json()] == ["100% done"]
    assert total(second) == 2
    assert next_url(second) is None


@pytest.mark.parametrize(
    ("text", "detail", "kind"),
    [
        ("m" * 201, SEARCH_TOO_LONG, "search_length"),
        (
            "a\x00b",
            "search: must not contain NUL characters or unpaired surrogates",
            "unstorable_character",
        ),
    ],
    ids=["too-long", "nul"],
)
def test_bad_search_is_400_fr008(
    client: TestClient, alice: Headers, text: str, detail: str, kind: str
) -> None:
    response = client.get("/api/tasks", params={"search": text}, headers=alice)
    assert_error(response, detail, ["query", "search"], kind)


# ---- every list shape is an index walk (issue 15) -----------------------------------------------

SORT_INDEXES = {
    "created": "ix_tasks_user_created",
    "updated": "ix_tasks_user_updated",
    "title": "ix_tasks_user_title",
}


@pytest.mark.parametrize("sort", ["created", "updated", "title"])
def test_every_sort_is_an_index_walk_even_at_the_deepest_offset_at_the_cap_fr008(
    pg_url: str, sort: str
) -> None:
    # The service's own page statement, as sent (with its planner settings), for a user with
    # 10,000 tasks (the cap) among 20,000 rows of 200 others, written interleaved as a live
    # service writes them: page 1 and ?limit=1000&offset=9000 walk the sort's index, never read
    # and sort all of the user's rows (a deep page cost 3x as much that way).
    heavy = f"heavy{uuid.uuid4().hex}"
    engine = sa.create_engine(pg_url)
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO tasks (user_id, title, created_at, updated_at) "
                "SELECT CASE WHEN g % 3 = 0 THEN 'other' || (g % 200) ELSE :heavy END, "
                "'Task ' || md5(g::text), now() - g * interval '1 s', now() - g * interval '1 s' "
                "FROM generate_series(1, 15000) g"
            ),
            {"heavy": heavy},
        )
        conn.execute(
            sa.text(
                "INSERT INTO tasks (user_id, title) SELECT 'other' || (g % 200), 'x' || g "
                "FROM generate_series(1, 15000) g"
            )
        )
        conn.execute(sa.text("ANALYZE tasks"))
    try:
        statement = task_store._page("all", False, sort, sort != "title", False)
        for limit, offset in ((51, 0), (1001, 9000)):
            with engine.begin() as conn:
                conn.exec_driver_sql(statement.planner)
                plan = "\n".join(
                    row[0]
                    for row in conn.exec_driver_sql(
                        "EXPLAIN (COSTS OFF) " + statement.compiled(PostgresDatabase.dialect),
                        {"owner": heavy, "limit": limit, "offset": offset, "count_limit": 10_000},
                    )
                )
            page = plan.split("\n  ->  ", 1)[1]  # the page under Limit (the count is an InitPlan)
            assert page.startswith("Index Scan"), plan
            assert SORT_INDEXES[sort] in page.splitlines()[0], plan
            assert "Sort" not in page, plan
    finally:
        with engine.begin() as conn:
            conn.execute(
                sa.text("DELETE FROM tasks WHERE user_id = :heavy OR user_id LIKE 'other%'"),
                {"heavy": heavy},
            )
        engine.dispose()
