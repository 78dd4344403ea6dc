"""A TCP proxy in front of PostgreSQL that reads the protocol: real network faults, placed exactly.

It logs every Query message clients send (what the service really puts on the wire), and, once
armed for a statement, does one of three things to the first Query that contains it:
- ``"drop_answer"``: passes the statement to the server, then cuts the connection instead of
  passing the answer back (the server ran it and committed; the client never hears so);
- ``"swallow"``: never passes it on, and cuts the connection (the server never saw it);
- ``"fatal"``: never passes it on, answers with PostgreSQL's own FATAL 57P01 "terminating
  connection due to administrator command" and closes (what a server shutdown sends).
"""

import contextlib
import socket
import threading
from typing import Any, Literal

from sqlalchemy.engine import make_url

Fault = Literal["drop_answer", "swallow", "fatal"]


def _fatal_57p01() -> bytes:
    fields = b"".join(
        code + text + b"\0"
        for code, text in (
            (b"S", b"FATAL"),
            (b"V", b"FATAL"),
            (b"C", b"57P01"),
            (b"M", b"terminating connection due to administrator command"),
        )
    )
    body = fields + b"\0"
    return b"E" + (len(body) + 4).to_bytes(4, "big") + body


class PgProxy:
    def __init__(self, upstream_url: str) -> None:
        url = make_url(upstream_url)
        socket_dir = url.query.get("host")
        if isinstance(socket_dir, str) and socket_dir.startswith("/"):
            self.upstream: tuple[int, Any] = (
                socket.AF_UNIX,
                f"{socket_dir}/.s.PGSQL.{url.port or 5432}",
            )
        else:
            self.upstream = (socket.AF_INET, (url.host or "127.0.0.1", url.port or 5432))
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        port = self.listener.getsockname()[1]
        self.url = (
            url.difference_update_query(["host"])
            # Plain protocol, readable here; no TLS or GSSAPI negotiation before the startup.
            .update_query_dict({"sslmode": "disable", "gssencmode": "disable"})
            .set(host="127.0.0.1", port=port)
            .render_as_string(hide_password=False)
        )
        self.queries: list[str] = []  # every Query message's SQL, in order
        self.connections = 0
        self.fired = threading.Event()  # the armed fault happened
        self._armed: list[tuple[str, Fault]] = []
        self._lock = threading.Lock()
        self._closing = False
        threading.Thread(target=self._accept, daemon=True).start()

    def arm(self, statement: str, fault: Fault, times: int = 1) -> None:
        """Apply ``fault`` to the next ``times`` Queries whose SQL contains ``statement``."""
        self.fired.clear()
        with self._lock:
            self._armed.extend([(statement, fault)] * times)

    def close(self) -> None:
        self._closing = True
        self.listener.close()

    def _take(self, sql: str) -> Fault | None:
        with self._lock:
            for index, (statement, fault) in enumerate(self._armed):
                if statement in sql:
                    del self._armed[index]
                    return fault
        return None

    def _accept(self) -> None:
        while not self._closing:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            family, address = self.upstream
            server = socket.socket(family)
            server.connect(address)
            cut = threading.Event()
            for target, args in (
                (self._client_to_server, (client, server, cut)),
                (self._server_to_client, (server, client, cut)),
            ):
                threading.Thread(target=target, args=args, daemon=True).start()

    def _client_to_server(
        self, client: socket.socket, server: socket.socket, cut: threading.Event
    ) -> None:
        framer = _Framer()
        try:
            while data := client.recv(65536):
                for kind, message in framer.feed(data):
                    fault = None
                    if kind == b"Q":
                        sql = message[5:-1].decode("utf-8", "replace")
                        self.queries.append(sql)
                        fault = self._take(sql)
                    if fault == "drop_answer":
                        cut.set()  # from now on nothing goes back to the client
                    elif fault is not None:
                        self.fired.set()
                        if fault == "fatal":
                            with contextlib.suppress(OSError):
                                client.sendall(_fatal_57p01())
                        return  # never passed on; the finally below cuts both sides
                    server.sendall(message)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                client.shutdown(socket.SHUT_RDWR)
            client.close()
            server.close()

    def _server_to_client(
        self, server: socket.socket, client: socket.socket, cut: threading.Event
    ) -> None:
        try:
            while data := server.recv(65536):
                if cut.is_set():
                    self.fired.set()  # the server answered: it ran (and committed) the statement
                    break
                client.sendall(data)
        except OSError:
            pass
        finally:
            # The client may have hung up already: ENOTCONN is fine here.
            with contextlib.suppress(OSError):
                client.shutdown(socket.SHUT_RDWR)
            client.close()
            server.close()


class _Framer:
    """Splits the client's byte stream into protocol messages: (type byte, whole message)."""

    def __init__(self) -> None:
        self._buffer = b""
        self._started = False  # the startup packet has no type byte

    def feed(self, data: bytes) -> list[tuple[bytes, bytes]]:
        self._buffer += data
        messages: list[tuple[bytes, bytes]] = []
        while True:
            header = 4 if not self._started else 5
            if len(self._buffer) < header:
                return messages
            if self._started:
                size, kind = 1 + int.from_bytes(self._buffer[1:5], "big"), self._buffer[:1]
            else:
                size, kind = int.from_bytes(self._buffer[:4], "big"), b""
            if len(self._buffer) < size:
                return messages
            message, self._buffer = self._buffer[:size], self._buffer[size:]
            if not self._started:
                # SSLRequest/GSSENCRequest are answered before the real startup packet.
                self._started = message[4:8] not in (b"\x04\xd2\x16\x2f", b"\x04\xd2\x16\x30")
            messages.append((kind, message))
