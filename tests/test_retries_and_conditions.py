"""Safe retries, no lost updates, fair limits (issue 12), on PostgreSQL and on SQLite.

- ``Idempotency-Key``: a repeat with the same key and request is answered from the first, with
  ``Idempotent-Replayed: true``, and writes nothing again; another request with the key is 422;
  a repeat while the first is in flight is 409; keys of different users never meet.
- ``ETag`` / ``If-None-Match`` / ``If-Match`` (RFC 9110 §13): 304 for an unchanged read, 412
  for a write at a version the task is no longer at, checked in the write's own statement.
- ``MAX_TASKS_PER_USER`` (409) and ``WRITE_RATE_LIMIT`` (429).
"""

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, func, select, text, update
from sqlmodel import col

from models import IdempotencyKey, tasks
from tests.keys import ALICE, BOB, bearer, mint
from tests.pgproxy import PgProxy

Headers = dict[str, str]
Rows = Callable[[], list[tuple[Any, ...]]]

KEY_REUSED = (
    "This Idempotency-Key came with another request (method, path or body); "
    "use a new key for a new request"
)
BAD_KEY = "Idempotency-Key must be 1 to 255 visible ASCII characters"
MAYBE_STORED = (
    "Database connection lost while saving: the change may or may not have been stored; "
    "read it back before retrying"
)


def keyed(headers: Headers, key: str) -> Headers:
    return {**headers, "Idempotency-Key": key}


def empty(url: str) -> str:
    """The database of ``url`` with no tasks and no keys (for apps built with app_factory)."""
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(tasks.delete())
        conn.execute(IdempotencyKey.__table__.delete())
    engine.dispose()
    return url


def count_tasks(url: str) -> int:
    engine = create_engine(url)
    with engine.connect() as conn:
        n = conn.execute(select(func.count()).select_from(tasks)).scalar_one()
    engine.dispose()
    return int(n)


# ---- Idempotency-Key ---------------------------------------------------------------------------


def test_a_create_repeated_with_its_key_is_answered_from_the_first_and_stored_once_us1_1(
    client: TestClient, alice: Headers, backend_url: str
) -> None:
    first = client.post("/api/tasks", json={"title": "once"}, headers=keyed(alice, "k-1"))
    again = client.post("/api/tasks", json={"title": "once"}, headers=keyed(alice, "k-1"))
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first.headers
    assert again.headers["location"] == first.headers["location"]
    assert again.headers["etag"] == first.headers["etag"]
    assert count_tasks(backend_url) == 1


def test_every_write_replays_its_first_answer_and_does_nothing_again_fr006(
    client: TestClient, alice: Headers
) -> None:
    task = client.post("/api/tasks", json={"title": "t"}, headers=alice).json()
    url = f"/api/tasks/{task['id']}"
    toggled = client.patch(f"{url}/complete", headers=keyed(alice, "toggle-1"))
    replayed = client.patch(f"{url}/complete", headers=keyed(alice, "toggle-1"))
    assert toggled.json()["completed"] is True
    assert replayed.json() == toggled.json()  # not toggled back
    assert replayed.headers["idempotent-replayed"] == "true"
    assert client.get(url, headers=alice).json()["completed"] is True
    renamed = client.put(url, json={"title": "u"}, headers=keyed(alice, "put-1"))
    assert client.put(url, json={"title": "u"}, headers=keyed(alice, "put-1")).json() == (
        renamed.json()
    )
    deleted = client.delete(url, headers=keyed(alice, "del-1"))
    again = client.delete(url, headers=keyed(alice, "del-1"))
    assert deleted.status_code == again.status_code == 200  # the first answer, not a 404
    assert again.json() == deleted.json()
    missing = client.delete(url, headers=keyed(alice, "del-2"))
    assert missing.status_code == 404
    replayed_missing = client.delete(url, headers=keyed(alice, "del-2"))
    assert replayed_missing.status_code == 404
    assert replayed_missing.json() == {"detail": "Task not found"}
    assert replayed_missing.headers["idempotent-replayed"] == "true"


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/api/tasks", {"title": "something else"}),  # another body
        ("PUT", "/api/tasks/{id}", {"title": "first"}),  # another method and path
    ],
    ids=["body", "method-path"],
)
def test_a_key_that_came_with_another_request_is_422_and_changes_nothing_fr008(
    client: TestClient,
    alice: Headers,
    db_rows: Rows,
    method: str,
    path: str,
    body: dict[str, Any],
) -> None:
    first = client.post("/api/tasks", json={"title": "first"}, headers=keyed(alice, "k-2"))
    before = db_rows()
    response = client.request(
        method, path.format(id=first.json()["id"]), json=body, headers=keyed(alice, "k-2")
    )
    assert response.status_code == 422
    assert response.json() == {"detail": KEY_REUSED}
    assert db_rows() == before


def test_the_same_body_spelled_differently_is_the_same_request_fr006(
    client: TestClient, alice: Headers, backend_url: str
) -> None:
    headers = {**keyed(alice, "k-3"), "Content-Type": "application/json"}
    first = client.post("/api/tasks", content=b'{"title":"x","completed":false}', headers=headers)
    again = client.post(
        "/api/tasks", content=b'{ "completed": false,  "title": "x" }', headers=headers
    )
    assert again.status_code == 201
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json() == first.json()
    assert count_tasks(backend_url) == 1


def test_keys_of_different_users_never_meet_us1_2(
    client: TestClient, alice: Headers, backend_url: str
) -> None:
    bob = bearer(mint(BOB))
    mine = client.post("/api/tasks", json={"title": "same"}, headers=keyed(alice, "shared"))
    theirs = client.post("/api/tasks", json={"title": "same"}, headers=keyed(bob, "shared"))
    assert mine.status_code == theirs.status_code == 201
    assert "idempotent-replayed" not in theirs.headers
    assert theirs.json()["user_id"] == BOB
    assert count_tasks(backend_url) == 2


@pytest.mark.parametrize(
    "key", ["", " ", "a b", "é", "k" * 256, "tab\there"], ids=lambda k: repr(k)[:12]
)
def test_a_key_that_is_not_1_to_255_visible_ascii_is_400_fr008(
    client: TestClient, alice: Headers, db_rows: Rows, key: str
) -> None:
    before = db_rows()
    # Raw bytes on the wire (UTF-8 for "é"), as a client that does not check would send them.
    headers = [(k.encode(), v.encode()) for k, v in alice.items()]
    headers.append((b"Idempotency-Key", key.encode()))
    response = client.post("/api/tasks", json={"title": "t"}, headers=headers)
    assert response.status_code == 400
    assert response.json() == {"detail": BAD_KEY}
    assert db_rows() == before


def test_an_expired_key_is_a_new_key_and_expired_keys_are_purged_on_writes_fr006(
    client: TestClient, alice: Headers, backend_url: str
) -> None:
    client.post("/api/tasks", json={"title": "old"}, headers=keyed(alice, "old-key"))
    bob = bearer(mint(BOB))
    client.post("/api/tasks", json={"title": "bob's"}, headers=keyed(bob, "bob-key"))
    engine = create_engine(backend_url)
    with engine.begin() as conn:  # both keys are 25 hours old now
        conn.execute(
            update(IdempotencyKey).values(created_at=datetime.now(UTC) - timedelta(hours=25))
        )
    engine.dispose()
    again = client.post("/api/tasks", json={"title": "old"}, headers=keyed(alice, "old-key"))
    assert again.status_code == 201
    assert "idempotent-replayed" not in again.headers  # processed anew
    assert count_tasks(backend_url) == 3
    engine = create_engine(backend_url)
    with engine.connect() as conn:
        keys = conn.execute(select(col(IdempotencyKey.user_id), col(IdempotencyKey.key))).all()
    engine.dispose()
    assert [tuple(k) for k in keys] == [(ALICE, "old-key")]  # Bob's expired key went too


def test_a_repeat_while_the_first_is_in_flight_is_409_then_replays_fr008(
    app_factory: Callable[..., TestClient], pg_url: str, alice: Headers
) -> None:
    # PostgreSQL: the first toggle waits on a row lock another connection holds; its repeat
    # waits for the key a while (2 s), then answers 409; once the first is done, a repeat
    # gets its answer.
    client = app_factory()
    task = client.post("/api/tasks", json={"title": "held"}, headers=alice).json()
    url = f"/api/tasks/{task['id']}/complete"
    engine = create_engine(pg_url)
    answers: dict[str, Any] = {}
    with engine.connect() as blocker:
        blocker.execute(text("SELECT 1 FROM tasks WHERE id = :id FOR UPDATE"), {"id": task["id"]})
        first = threading.Thread(
            target=lambda: answers.update(first=client.patch(url, headers=keyed(alice, "f")))
        )
        first.start()
        time.sleep(0.5)
        repeat = client.patch(url, headers=keyed(alice, "f"))
        blocker.rollback()
    first.join(30)
    engine.dispose()
    assert repeat.status_code == 409
    assert repeat.json() == {
        "detail": "The request with this Idempotency-Key is still being processed; retry shortly"
    }
    assert repeat.headers["retry-after"] == "1"
    assert answers["first"].status_code == 200
    later = client.patch(url, headers=keyed(alice, "f"))
    assert later.headers["idempotent-replayed"] == "true"
    assert later.json() == answers["first"].json()
    assert client.get(f"/api/tasks/{task['id']}", headers=alice).json()["completed"] is True


def test_a_create_whose_answer_was_lost_is_retried_with_its_key_and_exists_once_fr008(
    app_factory: Callable[..., TestClient], pg_url: str, alice: Headers
) -> None:
    # What the key is for: the server committed, the answer never came ("may or may not"); the
    # client retries with the same key and gets the task, which exists exactly once.
    proxy = PgProxy(pg_url)
    try:
        client = app_factory(proxy.url)
        proxy.arm("INSERT INTO tasks", "drop_answer")
        lost = client.post("/api/tasks", json={"title": "paid"}, headers=keyed(alice, "pay-1"))
        assert proxy.fired.is_set()
        assert lost.status_code == 503
        assert lost.json() == {"detail": MAYBE_STORED}
        retried = client.post("/api/tasks", json={"title": "paid"}, headers=keyed(alice, "pay-1"))
        assert retried.status_code == 201
        assert retried.headers["idempotent-replayed"] == "true"
        assert retried.json()["title"] == "paid"
        assert count_tasks(pg_url) == 1
    finally:
        proxy.close()


def test_a_keyed_write_is_still_one_round_trip_sc002(
    app_factory: Callable[..., TestClient], pg_url: str, alice: Headers
) -> None:
    # The key is claimed, the write done and the answer stored in one message, one answer.
    proxy = PgProxy(pg_url)
    try:
        client = app_factory(proxy.url)
        task = client.post("/api/tasks", json={"title": "t"}, headers=alice).json()
        toggle = f"/api/tasks/{task['id']}/complete"
        requests: list[tuple[str, str, dict[str, Any] | None, str]] = [
            ("POST", "/api/tasks", {"title": "k"}, "r1"),
            ("PATCH", toggle, None, "r2"),
            ("PATCH", toggle, None, "r2"),  # the replay too
        ]
        for method, url, body, key in requests:
            sent = len(proxy.queries)
            response = client.request(method, url, json=body, headers=keyed(alice, key))
            assert response.status_code < 300
            assert len(proxy.queries) - sent == 1
    finally:
        proxy.close()


# ---- ETag, If-None-Match, If-Match --------------------------------------------------------------


def test_an_unchanged_task_or_list_is_304_and_a_change_gives_a_new_etag_fr011(
    client: TestClient, alice: Headers
) -> None:
    task = client.post("/api/tasks", json={"title": "t"}, headers=alice)
    url = f"/api/tasks/{task.json()['id']}"
    read = client.get(url, headers=alice)
    assert read.headers["etag"] == task.headers["etag"]
    unchanged = client.get(url, headers={**alice, "If-None-Match": read.headers["etag"]})
    assert unchanged.status_code == 304
    assert unchanged.content == b""
    assert unchanged.headers["etag"] == read.headers["etag"]
    listed = client.get("/api/tasks", headers=alice)
    list_tag = listed.headers["etag"]
    assert client.get("/api/tasks", headers={**alice, "If-None-Match": list_tag}).status_code == 304
    changed = client.patch(url, json={"title": "t2"}, headers=alice)
    assert changed.headers["etag"] != read.headers["etag"]
    fresh = client.get(url, headers={**alice, "If-None-Match": read.headers["etag"]})
    assert fresh.status_code == 200
    assert fresh.json()["title"] == "t2"
    relisted = client.get("/api/tasks", headers={**alice, "If-None-Match": list_tag})
    assert relisted.status_code == 200
    assert relisted.headers["etag"] != list_tag
    # A write that changes nothing keeps the version, and so the ETag.
    same = client.patch(url, json={"title": "t2"}, headers=alice)
    assert same.headers["etag"] == changed.headers["etag"]


@pytest.mark.parametrize(
    ("method", "suffix", "body"),
    [
        ("PUT", "", {"title": "mine"}),
        ("PATCH", "", {"title": "mine"}),
        ("PATCH", "/complete", None),
        ("DELETE", "", None),
    ],
    ids=["put", "patch", "complete", "delete"],
)
def test_a_write_at_a_stale_etag_is_412_with_the_current_one_and_changes_nothing_fr011(
    client: TestClient,
    alice: Headers,
    db_rows: Rows,
    method: str,
    suffix: str,
    body: dict[str, Any] | None,
) -> None:
    task = client.post("/api/tasks", json={"title": "t"}, headers=alice)
    url = f"/api/tasks/{task.json()['id']}"
    stale = task.headers["etag"]
    current = client.patch(url, json={"title": "someone else's edit"}, headers=alice)
    before = db_rows()
    refused = client.request(method, url + suffix, json=body, headers={**alice, "If-Match": stale})
    assert refused.status_code == 412
    assert refused.headers["etag"] == current.headers["etag"]
    assert refused.json() == {
        "detail": (
            f"The task changed since you read it (its ETag is now {current.headers['etag']}): "
            "read it again, then retry"
        )
    }
    assert db_rows() == before
    accepted = client.request(
        method, url + suffix, json=body, headers={**alice, "If-Match": current.headers["etag"]}
    )
    assert accepted.status_code == 200


def test_if_match_on_a_missing_task_is_404_and_a_list_of_tags_is_400_fr008(
    client: TestClient, alice: Headers, db_rows: Rows
) -> None:
    assert (
        client.put(
            "/api/tasks/999999", json={"title": "x"}, headers={**alice, "If-Match": '"1"'}
        ).status_code
        == 404
    )
    task = client.post("/api/tasks", json={"title": "t"}, headers=alice).json()
    before = db_rows()
    listed = client.put(
        f"/api/tasks/{task['id']}", json={"title": "x"}, headers={**alice, "If-Match": '"1", "2"'}
    )
    assert listed.status_code == 400
    assert listed.json() == {"detail": 'If-Match takes one entity-tag (e.g. "3") or *'}
    assert db_rows() == before
    anything = client.put(
        f"/api/tasks/{task['id']}", json={"title": "x"}, headers={**alice, "If-Match": "*"}
    )
    assert anything.status_code == 200


def test_two_tabs_editing_one_task_lose_no_update_fr011(client: TestClient, alice: Headers) -> None:
    # Both read the same version and write with If-Match at once: exactly one wins, the other
    # learns (412) instead of silently overwriting it.
    task = client.post("/api/tasks", json={"title": "t"}, headers=alice)
    url, tag = f"/api/tasks/{task.json()['id']}", task.headers["etag"]

    def edit(title: str) -> int:
        headers = {**alice, "If-Match": tag}
        return client.put(url, json={"title": title}, headers=headers).status_code

    with ThreadPoolExecutor(2) as pool:
        statuses = sorted(pool.map(edit, ["tab one", "tab two"]))
    assert statuses == [200, 412]


# ---- limits -------------------------------------------------------------------------------------


def test_creating_past_the_per_user_cap_is_409_and_stores_nothing_fr008(
    app_factory: Callable[..., TestClient], backend_url: str, alice: Headers
) -> None:
    client = app_factory(empty(backend_url), max_tasks_per_user=3)
    made = [client.post("/api/tasks", json={"title": f"t{n}"}, headers=alice) for n in range(3)]
    assert [r.status_code for r in made] == [201, 201, 201]
    refused = client.post("/api/tasks", json={"title": "one too many"}, headers=alice)
    assert refused.status_code == 409
    assert refused.json() == {
        "detail": "You have 3 tasks, the most one user may keep: delete some to add more"
    }
    assert count_tasks(backend_url) == 3
    bob = bearer(mint(BOB))
    assert client.post("/api/tasks", json={"title": "bob"}, headers=bob).status_code == 201
    client.delete(f"/api/tasks/{made[0].json()['id']}", headers=alice)
    assert client.post("/api/tasks", json={"title": "again"}, headers=alice).status_code == 201


def test_concurrent_creates_never_pass_the_cap_fr008(
    app_factory: Callable[..., TestClient], pg_url: str, alice: Headers
) -> None:
    client = app_factory(max_tasks_per_user=5, per_user_concurrency=8)
    with ThreadPoolExecutor(8) as pool:
        statuses = list(
            pool.map(
                lambda n: (
                    client.post(
                        "/api/tasks", json={"title": f"t{n}"}, headers=keyed(alice, f"c{n}")
                    ).status_code
                ),
                range(12),
            )
        )
    assert statuses.count(201) == 5
    assert statuses.count(409) == 7
    assert count_tasks(pg_url) == 5


def test_writes_past_the_rate_limit_are_429_reads_and_other_users_are_not_fr008(
    app_factory: Callable[..., TestClient], backend_url: str, alice: Headers
) -> None:
    client = app_factory(empty(backend_url), write_rate_limit="3/60")
    made = [client.post("/api/tasks", json={"title": f"t{n}"}, headers=alice) for n in range(3)]
    assert [r.status_code for r in made] == [201, 201, 201]
    refused = client.post("/api/tasks", json={"title": "fourth"}, headers=alice)
    assert refused.status_code == 429
    assert refused.json() == {"detail": "Too many writes: at most 3 in 60 seconds; retry in 20 s"}
    assert refused.headers["retry-after"] == "20"
    assert count_tasks(backend_url) == 3
    assert client.get("/api/tasks", headers=alice).status_code == 200  # reads are not limited
    bob = bearer(mint(BOB))
    assert client.post("/api/tasks", json={"title": "bob"}, headers=bob).status_code == 201
