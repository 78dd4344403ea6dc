"""One round trip per request: what each endpoint puts on the wire to PostgreSQL.

Counted by a proxy that reads the protocol (tests/pgproxy.py), so the machine's speed cannot
move the figure: at steady state every endpoint sends exactly one message to the database and
waits for its one answer (no ping before it, no BEGIN or COMMIT of its own, the statement
timeout inside the same message), and opens no connection. ``make bench`` measures the same
through a 10 ms delaying proxy (docs/performance.md).
"""

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.keys import ALICE
from tests.pgproxy import PgProxy


@pytest.fixture
def proxy(pg_url: str) -> Iterator[PgProxy]:
    proxy = PgProxy(pg_url)
    yield proxy
    proxy.close()


def _sent(proxy: PgProxy, request: Callable[[], Any]) -> tuple[Any, list[str], int]:
    queries, connections = len(proxy.queries), proxy.connections
    response = request()
    return response, proxy.queries[queries:], proxy.connections - connections


def test_every_endpoint_is_one_round_trip_at_steady_state_sc002(
    app_factory: Callable[..., TestClient], proxy: PgProxy, alice: dict[str, str]
) -> None:
    client = app_factory(proxy.url, db_pool_size=2)
    first = client.post("/api/tasks", json={"title": "warm"}, headers=alice).json()
    client.get("/api/tasks", headers=alice)  # both pooled connections are open now
    task = f"/api/tasks/{first['id']}"
    requests: dict[str, Callable[[], Any]] = {
        "list": lambda: client.get("/api/tasks?limit=50", headers=alice),
        "list, alias": lambda: client.get(f"/api/{ALICE}/tasks", headers=alice),
        "create": lambda: client.post("/api/tasks", json={"title": "t"}, headers=alice),
        "get": lambda: client.get(task, headers=alice),
        "put": lambda: client.put(task, json={"title": "u"}, headers=alice),
        "patch": lambda: client.patch(task, json={"description": "d"}, headers=alice),
        "toggle": lambda: client.patch(f"{task}/complete", headers=alice),
        "set": lambda: client.patch(f"{task}/complete", json={"completed": True}, headers=alice),
        "readiness": lambda: client.get("/health/ready"),
        "delete": lambda: client.delete(task, headers=alice),
    }
    for name, request in requests.items():
        response, sent, opened = _sent(proxy, request)
        assert response.status_code < 300, (name, response.text)
        assert len(sent) == 1, (name, sent)
        assert opened == 0, name
        # The statement timeout rides in the statement's own message, never separately.
        assert sent[0].startswith("SET LOCAL statement_timeout = 10000; "), name


def test_a_page_past_the_end_costs_a_second_statement_for_its_total_sc002(
    app_factory: Callable[..., TestClient], proxy: PgProxy, alice: dict[str, str]
) -> None:
    # The one place a request may take two: an empty page still reports the total.
    client = app_factory(proxy.url)
    client.post("/api/tasks", json={"title": "only"}, headers=alice)
    response, sent, _ = _sent(proxy, lambda: client.get("/api/tasks?offset=5", headers=alice))
    assert response.headers["x-total-count"] == "1"
    assert response.json() == []
    assert len(sent) == 2
