"""Users never see or touch each other's tasks (US1-2, US1-3, FR-003, FR-007, SC-003)."""

from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient

from tests.keys import ALICE, BOB, bearer, mint

Rows = Callable[[], list[tuple[Any, ...]]]


@pytest.fixture
def bob() -> dict[str, str]:
    return bearer(mint(BOB))


def test_list_shows_only_the_callers_tasks_us1_2_sc003(
    client: TestClient, alice: dict[str, str], bob: dict[str, str]
) -> None:
    client.post("/api/tasks", json={"title": "alice's"}, headers=alice)
    client.post("/api/tasks", json={"title": "bob's"}, headers=bob)
    mine = client.get("/api/tasks", headers=alice)
    assert [t["title"] for t in mine.json()] == ["alice's"]
    assert mine.headers["x-total-count"] == "1"
    assert [t["title"] for t in client.get("/api/tasks", headers=bob).json()] == ["bob's"]


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
def test_other_users_task_is_404_like_a_missing_one_us1_3_fr007(
    client: TestClient,
    alice: dict[str, str],
    bob: dict[str, str],
    db_rows: Rows,
    method: str,
    suffix: str,
    body: dict[str, Any] | None,
) -> None:
    task_id = client.post("/api/tasks", json={"title": "private"}, headers=alice).json()["id"]
    before = db_rows()
    foreign = client.request(method, f"/api/tasks/{task_id}{suffix}", json=body, headers=bob)
    missing = client.request(method, f"/api/tasks/{task_id + 1000}{suffix}", json=body, headers=bob)
    assert foreign.status_code == missing.status_code == 404
    assert foreign.json() == missing.json() == {"detail": "Task not found"}
    assert db_rows() == before


def test_path_user_that_is_not_the_token_subject_is_403_fr003(
    client: TestClient, alice: dict[str, str], bob: dict[str, str], db_rows: Rows
) -> None:
    task_id = client.post("/api/tasks", json={"title": "private"}, headers=alice).json()["id"]
    before = db_rows()
    for method, path, body in (
        ("GET", f"/api/{ALICE}/tasks", None),
        ("POST", f"/api/{ALICE}/tasks", {"title": "planted"}),
        ("GET", f"/api/{ALICE}/tasks/{task_id}", None),
        ("DELETE", f"/api/{ALICE}/tasks/{task_id}", None),
    ):
        response = client.request(method, path, json=body, headers=bob)
        assert response.status_code == 403, (method, path)
        assert response.json() == {"detail": "The user id in the path does not match the token"}
    assert db_rows() == before


def test_alias_with_a_non_ascii_user_id_gives_encoded_location_and_link_fr013(
    client: TestClient,
) -> None:
    user = "ユーザー-ü"
    headers = bearer(mint(user))
    base = f"/api/{user}/tasks"
    created = [client.post(base, json={"title": f"t{i}"}, headers=headers) for i in range(2)]
    assert [r.status_code for r in created] == [201, 201]
    assert created[0].headers["location"] == f"/api/{quote(user)}/tasks/{created[0].json()['id']}"
    page = client.get(base, params={"limit": 1}, headers=headers)
    assert page.status_code == 200
    assert page.headers["link"].startswith(f"</api/{quote(user)}/tasks?limit=1&cursor=")
    follow = page.headers["link"][1 : page.headers["link"].index(">")]
    assert [t["title"] for t in client.get(follow, headers=headers).json()] == ["t0"]


def test_identity_in_body_or_query_never_sets_the_owner_fr003(
    client: TestClient, alice: dict[str, str], bob: dict[str, str]
) -> None:
    created = client.post(
        f"/api/tasks?user_id={BOB}", json={"title": "mine", "user_id": BOB}, headers=alice
    ).json()
    assert created["user_id"] == ALICE
    moved = client.put(f"/api/tasks/{created['id']}", json={"user_id": BOB}, headers=alice)
    assert moved.json()["user_id"] == ALICE
    assert client.get("/api/tasks", headers=bob).json() == []
    assert client.get(f"/api/tasks?user_id={BOB}", headers=alice).json()[0]["user_id"] == ALICE
