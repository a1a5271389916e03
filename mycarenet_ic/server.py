"""Serving WSGI apps on 127.0.0.1 with cheroot, one port each, with readiness polling."""

from __future__ import annotations

import socket
import threading
import time
import urllib.error
import urllib.request
from typing import Any

from cheroot import wsgi


class ServedApp:
    """A WSGI app on its own threaded HTTP server; ``port=0`` picks a free port."""

    def __init__(self, name: str, app: Any, host: str = "127.0.0.1", port: int = 0, threads: int = 16,
                 path: str = "/") -> None:
        self.name = name
        self.path = path
        # A real listen backlog: cheroot's default of 5 refuses connections under a burst of clients.
        self.server = wsgi.Server((host, port), app, numthreads=threads, server_name=name,
                                  shutdown_timeout=5, request_queue_size=256)
        self.server.prepare()  # binds now, so the real port is known before serving
        self._thread = threading.Thread(target=self.server.serve, name=f"http-{name}", daemon=True)

    @property
    def port(self) -> int:
        return int(self.server.bind_addr[1])

    @property
    def url(self) -> str:
        host = self.server.bind_addr[0]
        return f"http://{host}:{self.port}{self.path}"

    def start(self) -> ServedApp:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.stop()
        self._thread.join(timeout=10)


def free_port(host: str = "127.0.0.1") -> int:
    """A port free on ``host`` now (for servers that cannot bind port 0 themselves, such as gunicorn)."""
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def wait_ready(url: str, timeout: float = 30.0) -> None:
    """Poll ``url`` until it answers 200, backing off a little between tries."""
    deadline = time.monotonic() + timeout
    delay = 0.01
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:  # noqa: S310 - our own loopback URL
                if resp.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError) as exc:
            last = exc
        time.sleep(delay)  # polling back-off, not a fixed wait for readiness
        delay = min(delay * 2, 0.2)
    raise TimeoutError(f"{url} did not become ready: {last}")
