"""A per-user limit on writes (issue 12): a token bucket per user, in this process.

``WRITE_RATE_LIMIT=60/10`` lets a user make 60 writes (POST, PUT, PATCH, DELETE) in a burst and
then one every 10/60 s; a write past it is a 429 with ``Retry-After``, the seconds until the
next one is allowed. Reads are not limited here (a CDN or gateway is the place for that). Per
process, like the fair share: with N workers or replicas a user may write N times as much.
"""

import math
import time
from collections import OrderedDict

from starlette.exceptions import HTTPException

USERS_REMEMBERED = 100_000  # buckets kept; the least recently used user is forgotten first


class WriteRateLimit:
    def __init__(self, writes: int, seconds: float) -> None:
        self.writes = writes
        self.seconds = seconds
        self._per_second = writes / seconds
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # tokens, when

    def take(self, user: str) -> None:
        """One write for ``user``, or ``HTTPException(429)`` saying when to retry."""
        now = time.monotonic()
        tokens, then = self._buckets.pop(user, (float(self.writes), now))
        tokens = min(float(self.writes), tokens + (now - then) * self._per_second)
        if tokens < 1:
            self._buckets[user] = (tokens, now)
            wait = math.ceil((1 - tokens) / self._per_second)
            raise HTTPException(
                429,
                f"Too many writes: at most {self.writes} in {self.seconds:g} seconds; "
                f"retry in {wait} s",
                headers={"Retry-After": str(wait)},
            )
        self._buckets[user] = (tokens - 1, now)
        if len(self._buckets) > USERS_REMEMBERED:
            self._buckets.popitem(last=False)  # a forgotten user starts again with a full bucket
