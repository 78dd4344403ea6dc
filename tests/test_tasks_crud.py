"""CRUD through the API, on PostgreSQL and on SQLite (US1-1, US3-1, US3-3, FR-005/006/010/011)."""

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from fastapi.testclient import TestClient

from tests.conftest import insert_rows
from tests.keys import ALICE

FIELDS = {"id", "user_id", "title", "description", "completed", "created_at", "updated_at"}


def parse_time(value: str) -> datetime:
    moment = datetime.fromisoformat(value)
    offset = moment.utcoffset()
    assert offset is not None
    assert offset.total_seconds() == 0
    return moment


def test_create_task_is_201_with_location_and_defaults_us1_1_fr010(
    client: TestClient, alice: dict[str, str]
) -> None:
    before = datetime.now(UTC)
    response = client.post(
        "/api/tasks", json={"title": "  Buy milk  ", "description": "2 litres"}, headers=alice
    )
    assert response.status_code == 201
    task = response.json()
    assert set(task) == FIELDS
    assert task["title"] == "Buy milk"  # surrounding whitespace trimmed
    assert task["description"] == "2 litres"
    assert task["completed"] is False
    assert task["user_id"] == ALICE
    assert response.headers["location"] == f"/api/tasks/{task['id']}"
    created = parse_time(task["created_at"])
    assert before <= created <= datetime.now(UTC)
    assert task["updated_at"] == task["created_at"]
    assert client.get(response.headers["location"], headers=alice).json() == task


def test_create_may_set_completed_and_omit_description_fr010(
    client: TestClient, alice: dict[str, str]
) -> None:
    task = client.post("/api/tasks", json={"title": "done", "completed": True}, headers=alice)
    assert task.status_code == 201
    assert task.json()["completed"] is True
    assert task.json()["description"] is None


def test_title_of_1_and_200_characters_is_accepted_us3_1_fr009(
    client: TestClient, alice: dict[str, str]
) -> None:
    for title in ("a", "é" * 200):
        response = client.post("/api/tasks", json={"title": title}, headers=alice)
        assert response.status_code == 201
        assert response.json()["title"] == title


def test_list_returns_own_tasks_newest_first_as_bare_array_us1_2(
    client: TestClient, alice: dict[str, str]
) -> None:
    ids = [
        client.post("/api/tasks", json={"title": f"t{i}"}, headers=alice).json()["id"]
        for i in range(3)
    ]
    response = client.get("/api/tasks", headers=alice)
    assert response.status_code == 200
    assert [t["id"] for t in response.json()] == ids[::-1]
    assert response.headers["x-total-count"] == "3"
    assert "link" not in response.headers


def test_put_and_patch_update_only_given_fields_and_bump_updated_at_fr011(
    client: TestClient, alice: dict[str, str]
) -> None:
    task = client.post("/api/tasks", json={"title": "a", "description": "d"}, headers=alice).json()
    put = client.put(f"/api/tasks/{task['id']}", json={"title": "b"}, headers=alice)
    assert put.status_code == 200
    assert put.json()["title"] == "b"
    assert put.json()["description"] == "d"
    assert put.json()["created_at"] == task["created_at"]
    assert parse_time(put.json()["updated_at"]) > parse_time(task["updated_at"])
    patch = client.patch(
        f"/api/tasks/{task['id']}", json={"description": None, "completed": True}, headers=alice
    )
    assert patch.status_code == 200
    assert patch.json()["title"] == "b"
    assert patch.json()["description"] is None  # null clears it
    assert patch.json()["completed"] is True
    assert parse_time(patch.json()["updated_at"]) > parse_time(put.json()["updated_at"])


def test_update_that_changes_nothing_keeps_updated_at_sc007(
    client: TestClient, alice: dict[str, str]
) -> None:
    task = client.post("/api/tasks", json={"title": "same"}, headers=alice).json()
    for body in ({}, {"title": "same"}, {"priority": "high"}):
        again = client.patch(f"/api/tasks/{task['id']}", json=body, headers=alice)
        assert again.status_code == 200
        assert again.json() == task


def test_complete_without_body_toggles_fr006(client: TestClient, alice: dict[str, str]) -> None:
    task = client.post("/api/tasks", json={"title": "t"}, headers=alice).json()
    first = client.patch(f"/api/tasks/{task['id']}/complete", headers=alice)
    assert first.status_code == 200
    assert first.json()["completed"] is True
    assert parse_time(first.json()["updated_at"]) > parse_time(task["updated_at"])
    second = client.patch(f"/api/tasks/{task['id']}/complete", json={}, headers=alice)
    assert second.json()["completed"] is False


def test_complete_with_body_sets_idempotently_fr006(
    client: TestClient, alice: dict[str, str]
) -> None:
    task = client.post("/api/tasks", json={"title": "t"}, headers=alice).json()
    url = f"/api/tasks/{task['id']}/complete"
    first = client.patch(url, json={"completed": True}, headers=alice)
    second = client.patch(url, json={"completed": True}, headers=alice)
    assert first.status_code == second.status_code == 200
    assert first.json()["completed"] is True
    assert second.json() == first.json()  # same state, same updated_at
    assert client.patch(url, json={"completed": False}, headers=alice).json()["completed"] is False


def test_delete_returns_the_task_then_404_fr006(client: TestClient, alice: dict[str, str]) -> None:
    task = client.post("/api/tasks", json={"title": "gone"}, headers=alice).json()
    deleted = client.delete(f"/api/tasks/{task['id']}", headers=alice)
    assert deleted.status_code == 200
    assert deleted.json() == task
    again = client.delete(f"/api/tasks/{task['id']}", headers=alice)
    assert again.status_code == 404
    assert again.json() == {"detail": "Task not found"}
    assert client.get(f"/api/tasks/{task['id']}", headers=alice).status_code == 404


def test_missing_task_is_404_on_every_operation_us3_3(
    client: TestClient, alice: dict[str, str], db_rows: Callable[[], list[tuple[Any, ...]]]
) -> None:
    client.post("/api/tasks", json={"title": "unrelated"}, headers=alice)
    before = db_rows()
    for method, path, body in (
        ("GET", "/api/tasks/999999", None),
        ("PUT", "/api/tasks/999999", {"title": "x"}),
        ("PATCH", "/api/tasks/999999", {"title": "x"}),
        ("PATCH", "/api/tasks/999999/complete", None),
        ("DELETE", "/api/tasks/999999", None),
    ):
        response = client.request(method, path, json=body, headers=alice)
        assert response.status_code == 404, (method, path)
        assert response.json() == {"detail": "Task not found"}
    assert db_rows() == before


def test_ids_beyond_32_bits_are_stored_and_served_fr005(
    client: TestClient, alice: dict[str, str], backend_url: str
) -> None:
    big = 2**62 + 7
    insert_rows(backend_url, {"id": big, "user_id": ALICE, "title": "far away"})
    response = client.get(f"/api/tasks/{big}", headers=alice)
    assert response.status_code == 200, response.text
    assert response.json()["id"] == big


def test_ids_are_never_reused_after_delete_fr005(client: TestClient, alice: dict[str, str]) -> None:
    first = client.post("/api/tasks", json={"title": "a"}, headers=alice).json()["id"]
    client.delete(f"/api/tasks/{first}", headers=alice)
    second = client.post("/api/tasks", json={"title": "b"}, headers=alice).json()["id"]
    assert second > first


def test_every_route_answers_under_the_user_path_alias_fr013(
    client: TestClient, alice: dict[str, str]
) -> None:
    base = f"/api/{ALICE}/tasks"
    created = client.post(base, json={"title": "alias"}, headers=alice)
    assert created.status_code == 201
    task_id = created.json()["id"]
    assert created.headers["location"] == f"{base}/{task_id}"
    assert [t["id"] for t in client.get(base, headers=alice).json()] == [task_id]
    assert client.get(f"{base}/{task_id}", headers=alice).json()["title"] == "alias"
    renamed = client.put(f"{base}/{task_id}", json={"title": "b"}, headers=alice)
    assert renamed.json()["title"] == "b"
    assert client.patch(f"{base}/{task_id}", json={"title": "c"}, headers=alice).status_code == 200
    assert client.patch(f"{base}/{task_id}/complete", headers=alice).json()["completed"] is True
    assert client.delete(f"{base}/{task_id}", headers=alice).status_code == 200
