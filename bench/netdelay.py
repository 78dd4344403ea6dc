"""A database 10 ms away, on loopback: a delaying TCP proxy that counts round trips.

Placed between a server and PostgreSQL, it holds every chunk of bytes for half the round-trip
time in each direction (so a request and its answer take one RTT, as across a network), keeps
their order, and counts round trips: a client write after the server last spoke (the first
write of a connection included). Counting needs no clock, so the machine's load cannot move it.

    proxy = DelayProxy(("127.0.0.1", 5432), rtt_ms=10).start()
    url = proxy.database_url("postgresql://postgres@127.0.0.1:5432/db")
    ... proxy.round_trips ...
    proxy.stop()
"""

import asyncio
import contextlib
import socket
import threading
from typing import Any

from sqlalchemy.engine import make_url


class DelayProxy:
    def __init__(self, upstream: tuple[str, int] | str, rtt_ms: float) -> None:
        self.upstream = upstream  # (host, port), or a Unix socket path
        self.delay = rtt_ms / 2000
        self.round_trips = 0
        self.connections = 0
        self.port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.Server | None = None
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @classmethod
    def in_front_of(cls, database_url: str, rtt_ms: float) -> "DelayProxy":
        url = make_url(database_url)
        socket_dir = url.query.get("host")
        if isinstance(socket_dir, str) and socket_dir.startswith("/"):
            return cls(f"{socket_dir}/.s.PGSQL.{url.port or 5432}", rtt_ms)
        return cls((url.host or "127.0.0.1", url.port or 5432), rtt_ms)

    def database_url(self, database_url: str) -> str:
        """The same database, reached through this proxy (plain TCP, no TLS)."""
        return (
            make_url(database_url)
            .difference_update_query(["host"])
            .update_query_dict({"sslmode": "disable"})
            .set(host="127.0.0.1", port=self.port)
            .render_as_string(hide_password=False)
        )

    def start(self) -> "DelayProxy":
        self._thread.start()
        if not self._started.wait(10):
            raise TimeoutError("proxy did not start")
        return self

    def stop(self) -> None:
        loop = self._loop
        if loop is not None and self._server is not None:
            loop.call_soon_threadsafe(self._server.close)
            loop.call_soon_threadsafe(loop.stop)
        self._thread.join(10)

    def _run(self) -> None:
        loop = self._loop = asyncio.new_event_loop()
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        self.port = listener.getsockname()[1]
        self._server = loop.run_until_complete(
            asyncio.start_server(self._handle, sock=listener, backlog=256)
        )
        self._started.set()
        loop.run_forever()
        with contextlib.suppress(Exception):
            loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()

    async def _handle(
        self, client_in: asyncio.StreamReader, client_out: asyncio.StreamWriter
    ) -> None:
        try:
            if isinstance(self.upstream, str):
                server_in, server_out = await asyncio.open_unix_connection(self.upstream)
            else:
                server_in, server_out = await asyncio.open_connection(*self.upstream)
        except OSError:
            client_out.close()
            return
        self.connections += 1
        # Both ends of a PostgreSQL connection turn Nagle's algorithm off, and so must the
        # proxy: asyncio does it only for sockets made with proto=IPPROTO_TCP, which the
        # listener's accepted sockets are not. Without it a result over 8 KiB (PostgreSQL's
        # send buffer) left in two writes and the second waited for the client's delayed ACK:
        # 40 ms added to every 50-task list, by the proxy, not by the network it stands for.
        for stream in (client_out, server_out):
            sock = stream.get_extra_info("socket")
            if sock is not None and sock.family != socket.AF_UNIX:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        server_spoke_last = [True]  # the client's first write is a round trip too

        def client_wrote() -> None:
            if server_spoke_last[0]:
                self.round_trips += 1
                server_spoke_last[0] = False

        def server_wrote() -> None:
            server_spoke_last[0] = True

        await asyncio.gather(
            self._pipe(client_in, server_out, client_wrote),
            self._pipe(server_in, client_out, server_wrote),
            return_exceptions=True,
        )

    async def _pipe(
        self, source: asyncio.StreamReader, sink: asyncio.StreamWriter, on_data: Any
    ) -> None:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

        async def deliver() -> None:
            while True:
                due, data = await queue.get()
                wait = due - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                if not data:
                    break
                sink.write(data)
                await sink.drain()
            sink.close()

        delivering = loop.create_task(deliver())
        try:
            while data := await source.read(65536):
                on_data()
                queue.put_nowait((loop.time() + self.delay, data))
        except OSError:
            pass
        finally:
            queue.put_nowait((loop.time() + self.delay, b""))  # the close travels late too
            with contextlib.suppress(OSError):
                await delivering
