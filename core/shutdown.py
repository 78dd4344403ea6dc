"""Shutting down behind a load balancer: readiness drops first, then the server stops.

A load balancer learns that a replica is going away from its health check, some time after the
replica decided to go. If the replica stopped accepting at once, connections the balancer opens
in between would reach a closed listening socket: accepted by the kernel, then reset, with the
request already sent (the balancer cannot retry it: it may have been processed). So on SIGTERM
``/health/ready`` answers 503 at once while everything else is served as usual for
``SHUTDOWN_DELAY_SECONDS``; then the server's own graceful shutdown begins (stop accepting,
finish the requests in flight). Set the delay to the balancer's check interval times the
failures it needs, plus a margin; 0 (the default) stops at once. A second SIGTERM stops at once.
"""

import asyncio
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any


class Drain:
    """Whether this process is on its way out (readiness reads it)."""

    def __init__(self) -> None:
        self.draining = False


@contextmanager
def readiness_drops_first(drain: Drain, seconds: float) -> Iterator[None]:
    """For the application's lifetime (its lifespan), delay the server's SIGTERM handling.

    The server (uvicorn) has installed its SIGTERM handler before the application starts; this
    wraps it, and puts it back when the application stops. Only in the main thread, and only
    when there is a handler to wrap (a test client has none).
    """
    server_handler = signal.getsignal(signal.SIGTERM)
    if (
        seconds <= 0
        or threading.current_thread() is not threading.main_thread()
        or not callable(server_handler)
    ):
        yield
        return
    loop = asyncio.get_running_loop()

    def on_sigterm(sig: int, frame: FrameType | None) -> None:
        if drain.draining:
            server_handler(sig, frame)  # asked twice: stop now
            return
        drain.draining = True
        loop.call_soon_threadsafe(_later, loop, seconds, server_handler, sig)

    signal.signal(signal.SIGTERM, on_sigterm)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, server_handler)


def _later(loop: asyncio.AbstractEventLoop, seconds: float, handler: Any, sig: int) -> None:
    loop.call_later(seconds, handler, sig, None)
