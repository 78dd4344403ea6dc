"""What the speed-ups (docs/performance.md) must never change (FR-007).

The responses: built straight from rows with orjson, they must be byte for byte what pydantic
writes for ``TaskPublic`` (the response model they used to go through). The token cache has its
own module, tests/test_token_cache.py.
"""

from datetime import UTC, datetime

from fastapi.testclient import TestClient
from pydantic import TypeAdapter

from schemas import TaskPublic
from tests.conftest import insert_rows
from tests.keys import ALICE

TASKS = "/api/tasks"
TASK_LIST = TypeAdapter(list[TaskPublic])
ONE_TASK = TypeAdapter(TaskPublic)


# ---- responses: byte for byte what pydantic writes -----------------------------------------------

TRICKY_TITLES = [
    "Buy milk",
    'Quotes " and \\ backslash',
    "Accents: déjà vu, ß, 東京, emoji 🎉",
    "Line\u2028separator and \u2029 paragraph",
    "Tab\tand control \x01\x1f and DEL \x7f",
    "<script>alert('x')</script> & more",
]


def test_list_body_is_exactly_what_pydantic_writes_fr007(
    client: TestClient, alice: dict[str, str], backend_url: str
) -> None:
    for title in TRICKY_TITLES:
        body = {"title": title, "description": f"{title}\nsecond line"}
        assert client.post(TASKS, json=body, headers=alice).status_code == 201
    # Timestamps with and without microseconds, as other tools may write them.
    insert_rows(
        backend_url,
        {"user_id": ALICE, "title": "whole second", "created_at": datetime(2026, 1, 1, tzinfo=UTC)},
        {
            "user_id": ALICE,
            "title": "tenths",
            "completed": True,
            "created_at": datetime(2026, 1, 2, 3, 4, 5, 600000, tzinfo=UTC),
            "updated_at": datetime(2026, 1, 2, 3, 4, 5, 600000, tzinfo=UTC),
        },
    )
    response = client.get(TASKS, headers=alice)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert len(response.json()) == len(TRICKY_TITLES) + 2
    assert response.content == TASK_LIST.dump_json(TASK_LIST.validate_json(response.content))
    assert b'"created_at":"2026-01-01T00:00:00Z"' in response.content
    assert b'"created_at":"2026-01-02T03:04:05.600000Z"' in response.content


def test_single_task_bodies_are_exactly_what_pydantic_writes_fr007(
    client: TestClient, alice: dict[str, str]
) -> None:
    created = client.post(TASKS, json={"title": TRICKY_TITLES[2]}, headers=alice)
    task_id = created.json()["id"]
    answers = [
        created,
        client.get(f"{TASKS}/{task_id}", headers=alice),
        client.put(f"{TASKS}/{task_id}", json={"description": "d\u00e9j\u00e0"}, headers=alice),
        client.patch(f"{TASKS}/{task_id}", json={"title": TRICKY_TITLES[1]}, headers=alice),
        client.patch(f"{TASKS}/{task_id}/complete", headers=alice),
        client.patch(f"{TASKS}/{task_id}/complete", json={"completed": False}, headers=alice),
        client.delete(f"{TASKS}/{task_id}", headers=alice),
    ]
    for response in answers:
        assert response.status_code in (200, 201), response.text
        assert response.headers["content-type"] == "application/json"
        assert response.content == ONE_TASK.dump_json(ONE_TASK.validate_json(response.content))
        assert response.json()["updated_at"].endswith("Z")


def test_openapi_still_documents_the_task_shapes(pg_client: TestClient) -> None:
    document = pg_client.get("/openapi.json").json()
    task = {"$ref": "#/components/schemas/TaskPublic"}
    listing = document["paths"]["/api/tasks"]["get"]["responses"]["200"]
    schema = listing["content"]["application/json"]["schema"]
    assert (schema["type"], schema["items"]) == ("array", task)
    created = document["paths"]["/api/tasks"]["post"]["responses"]["201"]
    assert created["content"]["application/json"]["schema"] == task
