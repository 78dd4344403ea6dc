"""Hostile and well-behaved clients for tests/test_hostile_connections.py.

The attacker holds raw sockets from one source address: "trickle" connections send an
unfinished request head one byte at a time, "silent" ones connect and say nothing. It notes when
the server closes each one (EOF or reset, and whether a 408 came first). One process holds at
most a few thousand sockets (the file-descriptor limit is per process), so a large attack is
spread over several processes, each one ``python -m tests.hostile`` printing its tally as JSON.
"""

import argparse
import contextlib
import errno
import json
import math
import resource
import select
import socket
import struct
import subprocess
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2

ROOT = Path(__file__).resolve().parent.parent
# Sockets per attacking process: each raises its soft file-descriptor limit to the hard one.
PER_PROCESS = min(5000, resource.getrlimit(resource.RLIMIT_NOFILE)[1] - 100)
# Source ports, each process its own slice. Chosen here, not by the kernel: past about half of
# its ephemeral range, the kernel's search for a free port makes every connect() take
# milliseconds, and the attacker would measure itself instead of the server.
PORTS = range(10_000, 65_536)
# A head that never ends: a header line that goes on for ever, one byte at a time.
HEAD = b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 65536
KINDS = ("trickle", "silent")


@dataclass
class Conn:
    kind: str
    sock: socket.socket
    opened: float
    connected: float | None = None
    sent: int = 0
    answered_408: bool = False
    reset: bool = False
    done: bool = False


@dataclass
class Tally:
    opened: int = 0
    connect_failed: int = 0
    closed_by_server: int = 0
    answered_408: int = 0
    reset: int = 0  # of those closed by the server: with a reset, not a close
    still_open: int = 0
    never_connected: int = 0
    delays: list[float] = field(default_factory=list)  # connected -> closed by the server
    reset_delays: list[float] = field(default_factory=list)  # connected -> reset


class Attacker:
    """One process's share of the attack: its sockets on one epoll, tallied by kind."""

    WATCH = select.EPOLLIN | select.EPOLLRDHUP
    CLOSED = select.EPOLLIN | select.EPOLLRDHUP | select.EPOLLHUP | select.EPOLLERR

    def __init__(self, target: tuple[str, int], source: str, ports: range, reopen: bool) -> None:
        self.target, self.source, self.reopen = target, source, reopen
        self.poller = select.epoll()
        self.conns: dict[int, Conn] = {}
        self.tallies = {kind: Tally() for kind in KINDS}
        self.tricklers: deque[Conn] = deque()
        self.comebacks: list[str] = []  # reopened after each poll: no event finds a reused fd
        self.free_ports = deque(ports)

    def open(self, kind: str) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        # A keep-alive probe (no payload: still silent) finds out whether the server holds the
        # connection at all: one its kernel never queued for it answers with a reset.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, 10)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, 5)
        while True:
            port = self.free_ports.popleft()
            self.free_ports.append(port)
            with contextlib.suppress(OSError):  # in use: still closing from an earlier one
                sock.bind((self.source, port))
                break
        self.tallies[kind].opened += 1
        if sock.connect_ex(self.target) not in (0, errno.EINPROGRESS):
            self.tallies[kind].connect_failed += 1
            sock.close()
            return
        self.conns[sock.fileno()] = Conn(kind, sock, time.monotonic())
        self.poller.register(sock.fileno(), select.EPOLLOUT | self.WATCH)

    def finish(self, conn: Conn, by_server: bool) -> None:
        fd = conn.sock.fileno()
        del self.conns[fd]
        self.poller.unregister(fd)
        conn.done = True
        tally = self.tallies[conn.kind]
        if conn.connected is None:
            tally.connect_failed += by_server
            tally.never_connected += not by_server
        elif by_server:
            tally.closed_by_server += 1
            tally.answered_408 += conn.answered_408
            tally.reset += conn.reset
            delays = tally.reset_delays if conn.reset else tally.delays
            delays.append(round(time.monotonic() - conn.connected, 3))
        else:
            tally.still_open += 1
        conn.sock.close()
        if by_server and self.reopen:
            self.comebacks.append(conn.kind)  # an attacker comes straight back

    def send_next_byte(self, conn: Conn) -> None:
        try:
            conn.sock.send(HEAD[conn.sent : conn.sent + 1])
            conn.sent += 1
        except BlockingIOError:
            pass
        except OSError:
            self.finish(conn, by_server=True)

    def on_event(self, conn: Conn, events: int) -> None:
        if conn.connected is None and events & select.EPOLLOUT:
            if conn.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR):
                self.finish(conn, by_server=True)
                return
            conn.connected = time.monotonic()
            self.poller.modify(conn.sock.fileno(), self.WATCH)
            if conn.kind == "trickle":
                self.send_next_byte(conn)
                if not conn.done:
                    self.tricklers.append(conn)
        elif events & self.CLOSED:
            try:
                data = conn.sock.recv(4096)
            except BlockingIOError:
                return
            except OSError:
                data, conn.reset = b"", True
            if data:
                conn.answered_408 = conn.answered_408 or data.startswith(b"HTTP/1.1 408")
            else:
                self.finish(conn, by_server=True)

    def run(self, counts: dict[str, int], seconds: float, interval: float) -> dict[str, Tally]:
        deadline = time.monotonic() + seconds
        for index in range(max(counts.values())):  # interleaved: both kinds reach the server
            for kind in KINDS:
                if index < counts[kind]:
                    self.open(kind)
        sends_due, last = 0.0, time.monotonic()
        while (now := time.monotonic()) < deadline and self.conns:
            for fd, events in self.poller.poll(0.05):
                if conn := self.conns.get(fd):
                    self.on_event(conn, events)
            while self.comebacks:
                self.open(self.comebacks.pop())
            # Each trickling connection sends its next byte every `interval` seconds.
            sends_due += len(self.tricklers) * (now - last) / interval
            last = now
            while sends_due >= 1 and self.tricklers:
                sends_due -= 1
                conn = self.tricklers.popleft()
                if not conn.done:
                    self.send_next_byte(conn)
                    if not conn.done:
                        self.tricklers.append(conn)
        for conn in list(self.conns.values()):
            # A reset, not a close: no TIME_WAIT left behind on this side for the next run.
            conn.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.finish(conn, by_server=False)
        self.poller.close()
        return self.tallies


@dataclass
class AttackResult:
    tallies: dict[str, Tally]

    @property
    def opened(self) -> int:
        return sum(t.opened for t in self.tallies.values())

    @property
    def closed_by_server(self) -> int:
        return sum(t.closed_by_server for t in self.tallies.values())

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for kind, tally in self.tallies.items():
            out[kind] = {k: v for k, v in vars(tally).items() if "delays" not in k}
            out[kind] |= _spread(tally.delays) | {
                f"reset_{k}": v for k, v in _spread(tally.reset_delays).items()
            }
        return out


def _spread(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    values = sorted(values)
    return {
        "p50": values[len(values) // 2],
        "p99": values[min(len(values) - 1, math.ceil(len(values) * 0.99) - 1)],
        "max": values[-1],
    }


class Attack:
    """``counts`` hostile connections from ``source`` for ``seconds``, over enough processes."""

    def __init__(
        self,
        port: int,
        counts: dict[str, int],
        seconds: float,
        source: str = "127.0.0.2",
        interval: float = 2.0,
        reopen: bool = False,
    ) -> None:
        total = sum(counts.values())
        processes = max(1, math.ceil(total / PER_PROCESS))
        self.processes = []
        for index in range(processes):
            share = {k: n // processes + (index < n % processes) for k, n in counts.items()}
            command = [sys.executable, "-m", "tests.hostile", "--port", str(port)]
            command += ["--source", source, "--seconds", str(seconds), "--interval", str(interval)]
            command += ["--trickle", str(share["trickle"]), "--silent", str(share["silent"])]
            command += ["--reopen"] if reopen else []
            command += ["--ports", f"{index}/{processes}"]
            self.processes.append(
                subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, text=True)
            )

    def result(self, timeout: float) -> AttackResult:
        tallies = {kind: Tally() for kind in KINDS}
        for process in self.processes:
            out, _ = process.communicate(timeout=timeout)
            assert process.returncode == 0, out
            for kind, values in json.loads(out).items():
                tally = tallies[kind]
                for key, value in values.items():
                    setattr(tally, key, getattr(tally, key) + value)
        return AttackResult(tallies)

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.kill()
                process.wait()


class GoodClient(threading.Thread):
    """A well-behaved user: ``GET /health`` and the task list every half second until stopped,
    on one kept-alive connection (as browsers and HTTP client libraries do) or on a new
    connection for every call; notes every failure and latency."""

    def __init__(
        self, url: str, headers: dict[str, str], keep_alive: bool = True, every: float = 0.5
    ) -> None:
        name = "user, one kept-alive connection" if keep_alive else "user, new connections"
        super().__init__(name=name, daemon=True)
        self.url, self.headers, self.every = url, headers, every
        self.keep_alive = keep_alive
        self.latencies: list[float] = []
        self.failures: list[str] = []
        self.stopped = threading.Event()

    def run(self) -> None:
        limits = httpx2.Limits(max_keepalive_connections=1 if self.keep_alive else 0)
        with httpx2.Client(base_url=self.url, headers=self.headers, limits=limits) as http:
            self._calls(http)

    def _calls(self, http: httpx2.Client) -> None:
        while not self.stopped.is_set():
            began = time.monotonic()
            for path in ("/health", "/api/tasks"):
                started = time.monotonic()
                try:
                    response = http.get(path, timeout=10)
                    if response.status_code != 200:
                        self.failures.append(f"{path}: {response.status_code}")
                except httpx2.HTTPError as exc:
                    self.failures.append(f"{path}: {exc!r}")
                self.latencies.append(time.monotonic() - started)
            self.stopped.wait(max(0.0, self.every - (time.monotonic() - began)))

    def stop(self) -> None:
        self.stopped.set()
        self.join(30)

    def summary(self) -> dict[str, Any]:
        return {"calls": len(self.latencies), "failures": len(self.failures)} | _spread(
            [round(latency, 3) for latency in self.latencies]
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--source", default="127.0.0.2")
    parser.add_argument("--trickle", type=int, default=0)
    parser.add_argument("--silent", type=int, default=0)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--interval", type=float, default=2.0)
    parser.add_argument("--reopen", action="store_true", help="replace each connection closed")
    parser.add_argument("--ports", default="0/1", help="which slice of the source ports: i/n")
    args = parser.parse_args()
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    index, of = args.ports.split("/")
    attacker = Attacker(
        (args.host, args.port), args.source, PORTS[int(index) :: int(of)], args.reopen
    )
    tallies = attacker.run(
        {"trickle": args.trickle, "silent": args.silent}, args.seconds, args.interval
    )
    print(json.dumps({kind: vars(tally) for kind, tally in tallies.items()}))


if __name__ == "__main__":
    main()
