"""Several WSGI apps on one address, one path each: ``/memberdata``, ``/integrated-care``, …, ``/web``.

A request for ``/<name>/rest`` reaches the app mounted as ``name`` with ``SCRIPT_NAME`` ``/<name>`` and
``PATH_INFO`` ``/rest`` (PEP 3333), so an app that builds its links from ``SCRIPT_NAME`` (Flask does)
works under its prefix unchanged. Used by the sandbox's front (:class:`mycarenet_ic.server.ServedApp`,
one worker pool per mount) and by the gunicorn entry (:mod:`mycarenet_ic.wsgi`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

DEFAULT_PORT = 8443  # the sandbox's one port unless --port says otherwise (0: any free port)


def mount_of(path: str) -> str:
    """The first segment of a request path: ``/memberdata/x?y`` → ``memberdata``."""
    return path.partition("?")[0].lstrip("/").partition("/")[0]


class Mounts:
    """A WSGI app that hands each request to the app mounted at its first path segment; 404 else."""

    def __init__(self, apps: dict[str, Any]) -> None:
        for name in apps:
            if not name or "/" in name:
                raise ValueError(f"a mount is one path segment, not {name!r}")
        self.apps = dict(apps)
        # Served on while the port stops and drains: the mounts the others call (the sandbox's stubs), so
        # a request in flight still gets its upstream answers; the rest is refused from the stop on.
        self.draining: frozenset[str] = frozenset()

    def __contains__(self, name: object) -> bool:
        return name in self.apps

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        path = environ.get("PATH_INFO") or "/"
        name = mount_of(path)
        app = self.apps.get(name)
        if app is None:
            body = json.dumps({"error": "no service at this path",
                               "services": [f"/{n}" for n in self.apps]}).encode()
            start_response("404 Not Found", [("Content-Type", "application/json"),
                                             ("Content-Length", str(len(body)))])
            return [body]
        environ["SCRIPT_NAME"] = environ.get("SCRIPT_NAME", "").rstrip("/") + "/" + name
        environ["PATH_INFO"] = path.lstrip("/")[len(name):]
        return app(environ, start_response)
