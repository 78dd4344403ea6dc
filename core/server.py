"""The server's own defences: hostile connections cannot lock users out.

uvicorn's h11 protocol, its 16 KiB bound on a request head included, plus the deadlines and the
cap it lacks, so that whoever holds many sockets open does not hold the service:

- a connection that sends nothing is closed after the keep-alive timeout (uvicorn's
  ``--timeout-keep-alive``), as an idle one already is after a response;
- a request head must arrive whole within ``REQUEST_HEAD_TIMEOUT`` seconds of its first byte,
  else a 408 and a close;
- a request body must then average ``REQUEST_BODY_MIN_RATE`` bytes a second after the same
  grace, else a 408 (when no response has started) and a close; time we spend not reading (the
  application has not asked for more yet) is never counted against the client;
- one client address holds at most ``MAX_CONNECTIONS_PER_CLIENT`` connections per process; more
  are closed as soon as they are accepted. A trusted proxy (an address in ``FORWARDED_ALLOW_IPS``
  while proxy headers are on) is never capped: every client behind it shares its address.

Each kind of close is logged at most once a minute per client address, never per connection.
``scripts/serve`` runs uvicorn with ``--http core.server:GuardedH11Protocol``.
"""

import asyncio
import json
import logging
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import h11
from uvicorn.config import Config
from uvicorn.middleware.proxy_headers import _TrustedHosts  # how uvicorn reads the same list
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.server import ServerState

from core.config import get_settings

log = logging.getLogger("taskapi.connections")

LOG_EVERY_SECONDS = 60.0
LOGGED_CLIENTS = 4096  # addresses remembered for that; the oldest is forgotten first


def _timeout_response(detail: str) -> bytes:
    body = json.dumps({"detail": detail}).encode()
    head = (
        b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\n"
        b"connection: close\r\ncontent-length: %d\r\n\r\n" % len(body)
    )
    return head + body


@dataclass(frozen=True)
class Limits:
    head_timeout: float
    body_min_rate: int
    max_per_client: int


class ConnectionGuard:
    """One per server process: open connections per client address, and who was logged when."""

    def __init__(self, limits: Limits, trusted: _TrustedHosts | None) -> None:
        self.limits = limits
        self.trusted = trusted
        self.open: dict[str, int] = {}
        self.logged: OrderedDict[tuple[str, str], float] = OrderedDict()
        self.head_timeout_response = _timeout_response(
            f"Request head not received within {limits.head_timeout:g} s"
        )
        self.body_timeout_response = _timeout_response(
            f"Request body slower than {limits.body_min_rate} bytes/s"
        )

    def admit(self, host: str) -> bool | None:
        """True: counted against ``host`` (release it later); None: not counted; False: refused."""
        cap = self.limits.max_per_client
        if not cap or (self.trusted is not None and host in self.trusted):
            return None
        held = self.open.get(host, 0)
        if held >= cap:
            return False
        self.open[host] = held + 1
        return True

    def release(self, host: str) -> None:
        held = self.open[host] - 1
        if held:
            self.open[host] = held
        else:
            del self.open[host]

    def report(self, host: str, reason: str, message: str) -> None:
        """Log ``message`` unless ``host`` was logged for ``reason`` within the last minute."""
        now = time.monotonic()
        key = (host, reason)
        last = self.logged.get(key)
        if last is not None and now - last < LOG_EVERY_SECONDS:
            return
        self.logged[key] = now
        self.logged.move_to_end(key)
        if len(self.logged) > LOGGED_CLIENTS:
            self.logged.popitem(last=False)
        log.warning(
            message,
            extra={"client": host, "reason": reason, "quiet_seconds": LOG_EVERY_SECONDS},
        )


_guards: "weakref.WeakKeyDictionary[ServerState, ConnectionGuard]" = weakref.WeakKeyDictionary()


def guard_for(config: Config, server_state: ServerState) -> ConnectionGuard:
    guard = _guards.get(server_state)
    if guard is None:
        settings = get_settings()
        limits = Limits(
            head_timeout=settings.request_head_timeout,
            body_min_rate=settings.request_body_min_rate,
            max_per_client=settings.max_connections_per_client,
        )
        trusted = _TrustedHosts(config.forwarded_allow_ips) if config.proxy_headers else None
        guard = _guards[server_state] = ConnectionGuard(limits, trusted)
    return guard


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with deadlines for a silent connection, a request head and a
    request body, and a per-address cap (module docstring). Everything else is uvicorn's."""

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        # uvicorn's own state is built once the connection is admitted (connection_made): a
        # connection refused at the cap costs an attacker more than it costs us.
        self.uvicorn_args = (config, server_state, app_state, _loop)
        self.guard = guard_for(config, server_state)
        self.refused = False
        self.counted_host: str | None = None
        self.phase: Literal["head", "body"] | None = None
        self.deadline: asyncio.TimerHandle | None = None
        self.body_since = 0.0
        self.body_bytes = 0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        peer = transport.get_extra_info("peername")
        host = str(peer[0]) if isinstance(peer, tuple | list) else None  # None: a unix socket
        if host is not None:
            admitted = self.guard.admit(host)
            if admitted is False:
                self.refused = True
                transport.close()
                self.guard.report(
                    host,
                    "connection cap",
                    f"closing new connections from {host}: it already holds "
                    f"{self.guard.limits.max_per_client} (MAX_CONNECTIONS_PER_CLIENT)",
                )
                return
            if admitted:
                self.counted_host = host
        super().__init__(*self.uvicorn_args)
        super().connection_made(transport)
        # uvicorn arms this only after a response: a connection that never sends a byte
        # would otherwise stay open for ever. Its first byte cancels it (data_received).
        self.timeout_keep_alive_task = self.loop.call_later(
            self.timeout_keep_alive, self.timeout_keep_alive_handler
        )

    def connection_lost(self, exc: Exception | None) -> None:
        if self.refused:
            return
        self._disarm()
        if self.counted_host is not None:
            self.guard.release(self.counted_host)
            self.counted_host = None
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.transport.is_closing():
            self._disarm()
            return
        state = self.conn.their_state
        if state is h11.SEND_BODY:
            if self.phase == "body":
                self.body_bytes += len(data)
            elif self.guard.limits.body_min_rate:
                self._arm("body", self.guard.limits.head_timeout, self._check_body)
                self.body_since = self.loop.time()
                self.body_bytes = 0
            else:
                self._disarm()
        elif state is h11.IDLE and self.conn.trailing_data[0]:
            # Part of a head: the rest has until the deadline, counted from its first byte.
            if self.phase != "head":
                self._arm("head", self.guard.limits.head_timeout, self._head_too_slow)
        elif self.phase is not None:
            self._disarm()

    def _arm(self, phase: Literal["head", "body"], delay: float, then: Callable[[], None]) -> None:
        self._disarm()
        self.phase = phase
        self.deadline = self.loop.call_later(delay, then)

    def _disarm(self) -> None:
        if self.deadline is not None:
            self.deadline.cancel()
            self.deadline = None
        self.phase = None

    def _head_too_slow(self) -> None:
        self.deadline = None
        if self.transport.is_closing() or self.conn.their_state is not h11.IDLE:
            self.phase = None
            return
        self._close(
            self.guard.head_timeout_response,
            "slow request head",
            f"request head not complete within {self.guard.limits.head_timeout:g} s "
            "(REQUEST_HEAD_TIMEOUT)",
        )

    def _check_body(self) -> None:
        self.deadline = None
        if self.transport.is_closing() or self.conn.their_state is not h11.SEND_BODY:
            self.phase = None
            return
        limits = self.guard.limits
        now = self.loop.time()
        cycle = self.cycle
        if self.flow.read_paused or (cycle is not None and cycle.waiting_for_100_continue):
            # We are not reading (the application has not asked for more): not the client's
            # fault. Its allowance starts again from what it has sent.
            self.body_since = now - self.body_bytes / limits.body_min_rate
        due = self.body_since + limits.head_timeout + self.body_bytes / limits.body_min_rate
        if now < due:
            self.deadline = self.loop.call_later(due - now, self._check_body)
            return
        answer = b""
        if cycle is not None and not cycle.response_started:
            answer = self.guard.body_timeout_response
            # The application now sees a disconnect and its own answer goes nowhere.
            cycle.disconnected = True
            cycle.message_event.set()
        self._close(
            answer,
            "slow request body",
            f"request body slower than {limits.body_min_rate} bytes/s (REQUEST_BODY_MIN_RATE)",
        )

    def _close(self, answer: bytes, reason: str, why: str) -> None:
        self.phase = None
        if answer:
            self.transport.write(answer)
        self.transport.close()
        if self.client:
            host = self.client[0]
            self.guard.report(host, reason, f"closing connections from {host}: {why}")
