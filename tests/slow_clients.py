"""Slow HTTP clients on loopback: requests that trickle in a byte at a time.

Half of the connections send a request line and then one more header byte
per tick, never ending their headers; the other half send complete headers
of a module upload (multipart, a declared length of 1 MiB) and then one body
byte per tick. A server that gives each such connection a thread of its own
runs out of threads; one that reads requests whole before handing them on
keeps answering everybody else.

Used by the slow-client test (tests/hubsite/test_webserver.py) and by
benchmarks/slow_clients.py. Loopback only, and bounded: at most
``MAX_CONNECTIONS`` connections and ``max_seconds`` of trickling.
"""

from __future__ import annotations

import socket
import threading
import time

MAX_CONNECTIONS = 512
BOUNDARY = "trickled-upload"
DECLARED_BODY_BYTES = 1024 * 1024


def header_trickle_opening() -> bytes:
    return b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Trickle: "


def body_trickle_opening(token: str) -> bytes:
    head = (
        "POST /api/v1/modules/ HTTP/1.1\r\n"
        "Host: 127.0.0.1\r\n"
        f"Authorization: Token {token}\r\n"
        f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\n"
        f"Content-Length: {DECLARED_BODY_BYTES}\r\n"
        "\r\n"
        f"--{BOUNDARY}\r\n"
        'Content-Disposition: form-data; name="files"; filename="adapter_model.safetensors"\r\n'
        "Content-Type: application/octet-stream\r\n"
        "\r\n"
    )
    return head.encode()


class SlowClients:
    """``count`` trickling connections to 127.0.0.1:``port`` while the block runs.

    ``token`` authenticates the trickled uploads, so that the hub's upload
    view (not an early 401) is what waits for their bodies.
    """

    def __init__(
        self,
        port: int,
        count: int,
        *,
        token: str,
        interval: float = 1.0,
        max_seconds: float = 120.0,
    ):
        if not 0 < count <= MAX_CONNECTIONS:
            raise ValueError(f"count must be between 1 and {MAX_CONNECTIONS}")
        self.port, self.count, self.token = port, count, token
        self.interval, self.max_seconds = interval, max_seconds
        self.sockets: list[socket.socket] = []
        self.ticks = 0
        self.dropped = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._trickle, daemon=True)

    def __enter__(self) -> SlowClients:
        try:
            for index in range(self.count):
                sock = socket.create_connection(("127.0.0.1", self.port), timeout=5)
                self.sockets.append(sock)
                if index % 2 == 0:
                    sock.sendall(header_trickle_opening())
                else:
                    sock.sendall(body_trickle_opening(self.token))
        except BaseException:
            self._close()
            raise
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        self._thread.join(timeout=self.interval + 10)
        self._close()

    def wait_for_ticks(self, ticks: int) -> None:
        """Block until every connection has trickled ``ticks`` more bytes."""
        target = self.ticks + ticks
        while self.ticks < target and self._thread.is_alive():
            time.sleep(self.interval / 10)

    def _trickle(self) -> None:
        deadline = time.monotonic() + self.max_seconds
        while not self._stop.wait(self.interval) and time.monotonic() < deadline:
            dropped = 0
            for sock in self.sockets:
                try:
                    sock.send(b"a")
                except OSError:
                    dropped += 1
            self.dropped = dropped
            self.ticks += 1

    def _close(self) -> None:
        for sock in self.sockets:
            sock.close()
        self.sockets.clear()
