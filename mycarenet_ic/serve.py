"""``mycarenet-ic serve``: the production-style deployment — gunicorn workers on :mod:`mycarenet_ic.wsgi`,
against the database of ``DATABASE_URL`` (PostgreSQL; or, unset, the data directory's SQLite file, whose
writers queue on a lock between processes: :class:`~mycarenet_ic.persistence.db.WriterFileLock`), every
service on one port, one path each.

The parent prepares what the workers open (PKI, schema at head) once, binds the port itself (so
``--port 0`` works and the addresses are known before a worker starts) and hands it to gunicorn as
``fd://``. Each worker builds the application; exactly one of them follows the mutation feed
(:mod:`mycarenet_ic.feedlock`). gunicorn stops on SIGTERM/SIGINT, letting requests finish
(``--graceful-timeout``).
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
from typing import Any

from mycarenet_ic.datadir import forget_running, write_running
from mycarenet_ic.mounts import DEFAULT_PORT


def one_send_response() -> type:
    """gunicorn's response writer, but an answer whose body is one bytes string of its Content-Length goes out
    in **one** ``sendall`` with its head (gunicorn sends the head, then the body: two TCP segments and, over
    TLS, two records for every SOAP answer; py-spy: ~8 % of a worker's time in those sends). Anything else
    (chunked, streamed, no body, a body in pieces) is gunicorn's own path, byte for byte."""
    from gunicorn.http.wsgi import Response

    class OneSendResponse(Response):
        def write(self, arg: Any) -> None:
            me: Any = self  # gunicorn's attributes are not annotated
            if (me.headers_sent or me.chunked or getattr(me, "_omits_body", False)
                    or not isinstance(arg, bytes) or me.response_length != len(arg)):
                super().write(arg)
                return
            head = me.default_headers()
            head.extend(f"{k}: {v}\r\n" for k, v in me.headers)
            me.sock.sendall(("".join(head) + "\r\n").encode("latin-1") + arg)
            me.headers_sent = True
            me.sent += len(arg)

    return OneSendResponse


def _seed_demo(settings: Any) -> None:
    """The scenario's demo inclusions, as the sandbox writes them (once, into an empty store), before any
    worker starts: by the parent, on a platform of its own closed again before gunicorn forks."""
    import dataclasses

    from mycarenet_ic.app import Platform
    from mycarenet_ic.sandbox import seed_demo_inclusions
    from mycarenet_ic.stubs.scenario import Scenario

    platform = Platform(dataclasses.replace(settings, inspector=False))  # no recorder thread in the parent
    try:
        seed_demo_inclusions(platform, Scenario.for_data_dir(settings.data_dir).extra.get("inclusions", []))
    finally:
        platform.close()


def _shared(url: str) -> bool:
    """``url`` names a database several processes can share: PostgreSQL, or SQLite in a file."""
    from sqlalchemy.engine import make_url

    if url.startswith("postgresql"):
        return True
    database = make_url(url).database or ""  # a URL it reads: the settings refused any other
    return url.startswith("sqlite") and database not in ("", ":memory:") and "mode=memory" not in url


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("serve", parents=[common],
                       help="serve every service with gunicorn workers (production style: one port; PostgreSQL or "
                            "the data directory's SQLite)")
    p.add_argument("--host", help="the address to listen on (default: 127.0.0.1)")
    p.add_argument("--port", type=int, default=DEFAULT_PORT,
                   help=f"the one port of every service, each at its own path (default: {DEFAULT_PORT}; "
                        "0 picks a free port)")
    p.add_argument("--workers", type=int, default=2, help="gunicorn worker processes (default: 2)")
    p.add_argument("--threads", type=int, default=24,
                   help="threads per worker (default: 24; more than the requests a worker serves at once: the "
                        "business services call the stubs through this same server)")
    p.add_argument("--graceful-timeout", type=int, default=20,
                   help="how long requests in flight may take after SIGTERM (default: 20 s)")
    p.add_argument("--plain-http", action="store_true", help="plain HTTP instead of HTTPS (local debugging only)")
    p.add_argument("--sandbox", action="store_true",
                   help="also serve the scenario admin API at /scenario-admin/ (a sandbox tool)")
    p.set_defaults(func=cmd_serve)


def cmd_serve(args: argparse.Namespace) -> int:
    from mycarenet_ic.cli import _error, _settings
    from mycarenet_ic.cli_support import CliError, start_failure
    from mycarenet_ic.datadir import DataDirError

    if args.workers < 1 or args.threads < 1 or args.graceful_timeout < 0:
        raise CliError("--workers and --threads must be at least 1, --graceful-timeout 0 or more")
    settings = _settings(args)
    if not _shared(settings.effective_database_url):
        raise CliError("serve's workers share one database (an in-memory SQLite one is each process's own): "
                       "leave DATABASE_URL unset (the data directory's SQLite file) or set it to "
                       "postgresql://USER@HOST:PORT/DB or sqlite:///PATH")
    lock = None
    try:
        if args.sandbox:  # one sandbox per data directory, as `mycarenet-ic sandbox` (refused before the port)
            from mycarenet_ic.config import owner_only_dir
            from mycarenet_ic.datadir import SandboxLock

            lock = SandboxLock(owner_only_dir(settings.data_dir)).acquire()
        listener = socket.create_server((settings.host, args.port), backlog=2048)
    except (OSError, DataDirError) as exc:  # one line, not a traceback
        if lock is not None:
            lock.release()
        message, code = start_failure(exc, settings.host, args.port)
        print(_error(message), file=sys.stderr)
        return code
    parent = os.getpid()
    try:
        return _run(args, settings, listener, lock is not None)
    finally:
        # The running addresses go with the sandbox that wrote them: the parent's, not a forked worker's exit
        # (gunicorn's workers leave through this same frame).
        if lock is not None and os.getpid() == parent:
            forget_running(settings.data_dir)
            lock.release()


def _run(args: argparse.Namespace, settings: Any, listener: socket.socket, announce: bool) -> int:
    from gunicorn.app.base import BaseApplication

    from mycarenet_ic import balance
    from mycarenet_ic.app import STUBS, prepare
    from mycarenet_ic.security.pki import Pki
    from mycarenet_ic.textsafe import printable

    prepare(settings)  # once, here: the workers only open
    if args.sandbox:
        _seed_demo(settings)
    listener.set_inheritable(True)
    port = listener.getsockname()[1]
    scheme = "https" if settings.tls else "http"
    public = f"{scheme}://{settings.host}:{port}"
    os.environ.update({"MYCARENET_DATA_DIR": str(settings.data_dir), "MYCARENET_PUBLIC_URL": public,
                       "MYCARENET_SANDBOX_MODE": "1" if args.sandbox else "0",
                       "MYCARENET_TLS": "1" if settings.tls else "0"})
    if settings.database_url:
        os.environ["DATABASE_URL"] = settings.database_url
    names = [*STUBS, "integrated-care", "memberdata", "tarification", "mediprima"]
    urls = {name: f"{public}/{name}" for name in names}
    urls["web"] = f"{public}/web/"
    if args.sandbox:
        urls["scenario-admin"] = f"{public}/scenario-admin/"
    options: dict[str, Any] = {
        "bind": [f"fd://{listener.fileno()}"], "workers": args.workers,
        "worker_class": "mycarenet_ic.balance.BalancedThreadWorker",  # gthread, its connections shared evenly
        "threads": args.threads, "graceful_timeout": args.graceful_timeout, "timeout": 120,
        "accesslog": None, "errorlog": "-", "loglevel": "warning", "proc_name": "mycarenet-ic",
    }
    if settings.tls:
        cert, key = Pki(settings.data_dir).tls_server(settings.host)
        options.update(certfile=str(cert), keyfile=str(key))

    def when_ready(_server: Any) -> None:
        if announce:  # where the command line's scenario, fault and inspect commands find this sandbox
            write_running(settings.data_dir, urls)
        for name, url in urls.items():
            print(printable(f"READY {name} {url}"), flush=True)
        print(printable(f"READY healthz {public}/healthz"), flush=True)
        print(printable(f"READY readyz {public}/readyz"), flush=True)

    class Gunicorn(BaseApplication):
        def load_config(self) -> None:
            for key, value in {**options, "when_ready": when_ready}.items():
                self.cfg.set(key, value)

        def load(self) -> Any:
            import gunicorn.http.wsgi

            from mycarenet_ic.lifecycle import settle_heap
            from mycarenet_ic.wsgi import create_app

            # In this worker: gunicorn's workers build each response from this module's name (wsgi.create).
            gunicorn.http.wsgi.Response = one_send_response()
            app = create_app()
            settle_heap()  # this worker's start-up heap out of its full collections (lifecycle.py)
            return app

    print(printable(f"database: {settings.effective_database_url.split('@')[-1]}"), flush=True)
    balance.prepare(args.workers)  # before gunicorn forks: the workers' shared board
    Gunicorn().run()
    return 0
