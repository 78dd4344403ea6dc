"""Fair share per user (issue 15): one user's flood queues behind itself, never before others.

The gate itself (core/fairness.py) with real asyncio tasks, then through the app: a user with
requests held in flight gets 429 past its queue while another user is served at once.
"""

import asyncio
import threading
from collections.abc import Callable

import anyio
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from core.fairness import LONG_PAGE_ROWS, FairShare, TooManyAtOnce
from tests.keys import ALICE, BOB, bearer, mint


def test_at_most_n_of_one_user_are_served_at_once_the_rest_wait_in_order() -> None:
    async def scenario() -> list[str]:
        gate = FairShare(concurrency=2, queue=10, wait_seconds=5)
        release = asyncio.Event()
        order: list[str] = []

        async def request(name: str) -> None:
            async with gate.turn(ALICE):
                order.append(f"start {name}")
                await release.wait()
                order.append(f"end {name}")

        tasks = [asyncio.create_task(request(str(n))) for n in range(4)]
        await asyncio.sleep(0.05)
        assert gate.serving(ALICE) == 2
        assert order == ["start 0", "start 1"]  # 2 and 3 wait
        release.set()
        await asyncio.gather(*tasks)
        assert gate.serving(ALICE) == 0
        return order

    order = anyio.run(scenario)
    starts = [line for line in order if line.startswith("start")]
    assert starts == ["start 0", "start 1", "start 2", "start 3"]  # first come, first served


def test_a_full_queue_or_a_long_wait_is_429_and_other_users_never_wait() -> None:
    async def scenario() -> None:
        gate = FairShare(concurrency=1, queue=1, wait_seconds=0.2)
        hold = asyncio.Event()

        async def holder() -> None:
            async with gate.turn(ALICE):
                await hold.wait()

        held = asyncio.create_task(holder())
        await asyncio.sleep(0.01)
        waiting = asyncio.create_task(gate.turn(ALICE).__aenter__())
        await asyncio.sleep(0.01)
        with pytest.raises(TooManyAtOnce):  # the queue (1) is full: at once
            async with gate.turn(ALICE):
                pass
        async with gate.turn(BOB):  # another user: served at once, whatever Alice does
            assert gate.serving(BOB) == 1
        with pytest.raises(TooManyAtOnce):  # the one that waited ran out of time
            await waiting
        hold.set()
        await held
        assert gate.serving(ALICE) == 0
        assert gate._users == {}  # nobody served or waiting: nothing remembered

    anyio.run(scenario)


def test_a_waiting_request_that_goes_away_gives_up_its_place() -> None:
    async def scenario() -> None:
        gate = FairShare(concurrency=1, queue=5, wait_seconds=5)
        hold = asyncio.Event()

        async def holder() -> None:
            async with gate.turn(ALICE):
                await hold.wait()

        held = asyncio.create_task(holder())
        await asyncio.sleep(0.01)
        gone = asyncio.create_task(gate.turn(ALICE).__aenter__())
        await asyncio.sleep(0.01)
        gone.cancel()
        with pytest.raises(asyncio.CancelledError):
            await gone
        hold.set()
        await held
        assert gate.serving(ALICE) == 0
        assert gate._users == {}

    anyio.run(scenario)


def test_a_user_over_its_share_gets_429_while_others_are_served_fr008(
    app_factory: Callable[..., TestClient],
) -> None:
    # Alice holds her only turn (a request in flight); her next request finds the queue full:
    # 429 with Retry-After. Bob, at the same moment, is served.
    client = app_factory(per_user_concurrency=1, per_user_queue=0)
    assert isinstance(client.app, FastAPI)
    assert client.portal is not None
    gate: FairShare = client.app.state.fair_share
    held, release = threading.Event(), threading.Event()

    async def alice_in_flight() -> None:
        async with gate.turn(ALICE):
            held.set()
            await anyio.to_thread.run_sync(release.wait, 10)

    running = client.portal.start_task_soon(alice_in_flight)
    try:
        assert held.wait(5)
        refused = client.get("/api/tasks", headers=bearer(mint(ALICE)))
        served = client.get("/api/tasks", headers=bearer(mint(BOB)))
    finally:
        release.set()
        running.result(10)
    assert refused.status_code == 429
    assert refused.json() == {"detail": "Too many requests from this user at once; retry shortly"}
    assert refused.headers["retry-after"] == "1"
    assert served.status_code == 200
    assert client.get("/api/tasks", headers=bearer(mint(ALICE))).status_code == 200  # and back


def test_a_users_long_pages_are_served_one_at_a_time_others_are_not_held_fr008(
    app_factory: Callable[..., TestClient],
) -> None:
    # Alice has a long page in flight (her one long-page turn is held). Another long page of
    # hers waits for it (here: a queue of 0, so 429 at once); her short pages, and Bob's long
    # page, are served meanwhile.
    client = app_factory(per_user_concurrency=4, per_user_queue=0)
    assert isinstance(client.app, FastAPI)
    assert client.portal is not None
    gate: FairShare = client.app.state.long_pages
    held, release = threading.Event(), threading.Event()

    async def alice_long_page_in_flight() -> None:
        async with gate.turn(ALICE):
            held.set()
            await anyio.to_thread.run_sync(release.wait, 10)

    alice, bob = bearer(mint(ALICE)), bearer(mint(BOB))
    running = client.portal.start_task_soon(alice_long_page_in_flight)
    try:
        assert held.wait(5)
        refused = client.get(f"/api/tasks?limit={LONG_PAGE_ROWS + 1}", headers=alice)
        short = client.get(f"/api/tasks?limit={LONG_PAGE_ROWS}", headers=alice)
        others = client.get("/api/tasks?limit=1000", headers=bob)
    finally:
        release.set()
        running.result(10)
    assert refused.status_code == 429
    assert refused.json() == {"detail": "Too many requests from this user at once; retry shortly"}
    assert refused.headers["retry-after"] == "1"
    assert short.status_code == 200
    assert others.status_code == 200
    assert client.get("/api/tasks?limit=1000", headers=alice).status_code == 200  # and back
    assert gate._users == {}
