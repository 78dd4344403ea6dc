"""Fair share: no signed-in user can starve the others (issue 15).

Every request of one user takes a turn: at most ``PER_USER_CONCURRENCY`` of them are served at
once per process. More wait in that user's own queue, first come first served, for at most
``PER_USER_WAIT_SECONDS``; a queue already ``PER_USER_QUEUE`` long, or a wait that runs out, is
a 429 with ``Retry-After``. Other users never wait behind them: each user's turns are counted
apart. A request holds at most one database connection, so a user also never holds more than
``PER_USER_CONCURRENCY`` of the pool's connections: with the defaults (4 of 10) six always
remain for everyone else.

A long page (more than ``LONG_PAGE_ROWS`` rows) is the dearest request there is: turning a
thousand rows into JSON holds the process's CPU, and PostgreSQL walks that many index entries.
Besides its turn it takes the user's one long-page turn (``long_pages``, a second gate with one
turn per user): a user's long pages are served one at a time, so the others' requests never
queue behind several of them (docs/performance.md, the noisy-neighbour figures).

Per process, like the pool: with N workers or replicas a user may have N times as many.
"""

import asyncio
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from starlette.exceptions import HTTPException

RETRY_AFTER_SECONDS = "1"
LONG_PAGE_ROWS = 100  # the default page; up to 1,000 may be asked for


class TooManyAtOnce(HTTPException):
    def __init__(self) -> None:
        super().__init__(
            429,
            "Too many requests from this user at once; retry shortly",
            headers={"Retry-After": RETRY_AFTER_SECONDS},
        )


@dataclass
class _User:
    serving: int = 0
    waiting: deque[asyncio.Future[None]] = field(default_factory=deque)


class FairShare:
    def __init__(self, concurrency: int, queue: int, wait_seconds: float) -> None:
        self.concurrency = concurrency
        self.queue = queue
        self.wait_seconds = wait_seconds
        self._users: dict[str, _User] = {}

    def serving(self, user: str) -> int:
        """Requests of ``user`` being served now (for tests and metrics)."""
        state = self._users.get(user)
        return state.serving if state else 0

    @asynccontextmanager
    async def turn(self, user: str) -> AsyncIterator[None]:
        """Wait for one of ``user``'s turns (or raise ``TooManyAtOnce``), hold it, give it on."""
        state = self._users.setdefault(user, _User())
        if state.serving < self.concurrency and not state.waiting:
            state.serving += 1
        else:
            await self._wait(user, state)  # the turn is handed over with serving unchanged
        try:
            yield
        finally:
            self._hand_on(user, state)

    async def _wait(self, user: str, state: _User) -> None:
        if len(state.waiting) >= self.queue:
            self._forget_if_idle(user, state)
            raise TooManyAtOnce()
        handed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        state.waiting.append(handed)
        try:
            async with asyncio.timeout(self.wait_seconds):
                await handed
        except TimeoutError:
            self._give_up(user, state, handed)
            raise TooManyAtOnce() from None
        except asyncio.CancelledError:  # the request went away while it waited
            self._give_up(user, state, handed)
            raise

    def _give_up(self, user: str, state: _User, handed: asyncio.Future[None]) -> None:
        if handed.done() and not handed.cancelled():
            self._hand_on(user, state)  # the turn came just as the wait ended: pass it along
        else:
            state.waiting.remove(handed)
            self._forget_if_idle(user, state)

    def _hand_on(self, user: str, state: _User) -> None:
        while state.waiting:
            waiter = state.waiting.popleft()
            if not waiter.done():
                waiter.set_result(None)  # the turn passes straight to the next in line
                return
        state.serving -= 1
        self._forget_if_idle(user, state)

    def _forget_if_idle(self, user: str, state: _User) -> None:
        # Bounded memory: a user with nothing served or waiting takes no space.
        if state.serving == 0 and not state.waiting:
            self._users.pop(user, None)
