"""``mycarenet-ic serve``: gunicorn workers on PostgreSQL or on the data directory's SQLite, every service on
one port, ``/healthz`` and ``/readyz``, exactly one worker following the National Register's mutation feed (and
another one taking over when it dies). Real processes, a real PostgreSQL server, ephemeral ports, polling
instead of sleeps."""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import os
import re
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import date as dt_date
from pathlib import Path
from typing import Any

import pytest
import requests
from sqlalchemy import text

from mycarenet_ic.feedlock import FeedLock
from mycarenet_ic.persistence.db import make_engine
from tests import support
from tests.integration.conftest import sandbox_command, sandbox_env
from tests.integration.test_sandbox_process import _poll, _read_lines

pytestmark = pytest.mark.integration

DEADLINE = 120.0  # the first start creates a PKI and the schema; the test machine may be busy
FOLLOWER = re.compile(r"mutation feed: followed by this process \(pid (\d+)\)")


@pytest.fixture
def pg_url() -> Iterator[str]:
    yield from support.postgres_database()


def _children(pid: int) -> set[int]:
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rpartition(")")[2].split()[1]) == pid:
                found.add(int(entry.name))
    return found


def _ended(proc: subprocess.Popen[bytes]) -> None:
    """Whatever the test's outcome: the server killed if still running, its output closed."""
    if proc.poll() is None:
        proc.kill()
        proc.wait()
    assert proc.stdout is not None
    proc.stdout.close()


def _advisory_locks(engine: Any) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted "
            "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())")).scalar_one())


@pytest.mark.parametrize(("database_url", "said"), [
    ("sqlite://", "in-memory"), ("sqlite:///:memory:", "in-memory"),
    ("sqlite:///file:x?mode=memory&uri=true", "in-memory"), ("not a url", "not a database URL")])
def test_serve_on_a_database_its_workers_cannot_share_says_so_in_one_line(tmp_path: Path, database_url: str,
                                                                           said: str) -> None:
    env = sandbox_env() | {"DATABASE_URL": database_url}
    done = subprocess.run([*sandbox_command(), "serve", "--data-dir", str(tmp_path / "d"), "--port", "0"],
                          capture_output=True, text=True, env=env, timeout=120, check=False)
    lines = [line for line in done.stderr.splitlines() if line.startswith("error")]
    assert done.returncode == 2 and len(lines) == 1, done.stderr
    assert said in lines[0] and "postgresql://" in lines[0] and "Traceback" not in done.stderr
    assert "READY" not in done.stdout


def test_one_worker_follows_the_feed_and_another_takes_over_when_it_dies(tmp_path: Path, pg_url: str) -> None:
    env = sandbox_env() | {"DATABASE_URL": pg_url, "MYCARENET_MUTATION_SYNC_SECONDS": "0.2"}
    err = tmp_path / "stderr.txt"
    with err.open("wb") as stderr:
        proc = subprocess.Popen([*sandbox_command(), "serve", "--data-dir", str(tmp_path / "d"), "--port", "0",
                                 "--plain-http", "--workers", "2", "--threads", "8"],
                                stdout=subprocess.PIPE, stderr=stderr, env=env)
    lines = _read_lines(proc)
    engine = make_engine(pg_url)
    try:
        deadline = time.monotonic() + DEADLINE

        def urls() -> dict[str, str] | None:
            assert proc.poll() is None, err.read_text()
            found = dict(line.split()[1:3] for line in lines if line.startswith("READY "))
            return found if "readyz" in found else None

        ready = _poll("READY lines", urls, deadline)
        assert len({url.split("/")[2] for url in ready.values()}) == 1  # one port
        answer = _poll("ready", lambda: (r := requests.get(ready["readyz"], timeout=10)).status_code == 200 and r,
                       deadline)
        assert answer.json() == {"status": "ready", "checks": {"database": "ok", "migrations": "ok", "stubs": "ok"}}
        assert requests.get(ready["healthz"], timeout=10).json() == {"status": "ok"}
        wsdl = requests.get(ready["memberdata"] + "?wsdl", timeout=10).text
        assert f'location="{ready["memberdata"]}"' in wsdl
        assert requests.get(ready["web"] + "signin", timeout=10).status_code == 200

        workers = _poll("two workers", lambda: len(w := _children(proc.pid)) == 2 and w, deadline)
        first = int(_poll("a follower", lambda: FOLLOWER.search(err.read_text()), deadline).group(1))
        assert first in workers
        # Exactly one holds the lock; the other tries every round (0.2 s) and does not get it.
        assert _poll("the lock", lambda: _advisory_locks(engine), deadline) == 1
        assert FOLLOWER.findall(err.read_text()) == [str(first)]

        os.kill(first, signal.SIGKILL)  # the follower dies: its database session, and the lock, go with it
        second = int(_poll("another follower", lambda: (f := FOLLOWER.findall(err.read_text()))[1:] and f[1],
                           deadline))
        assert second != first and second in _children(proc.pid)
        assert _advisory_locks(engine) == 1
        assert requests.get(ready["readyz"], timeout=10).status_code == 200

        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0, err.read_text()
        assert "Traceback" not in err.read_text()
        _poll("the lock released", lambda: _advisory_locks(engine) == 0, time.monotonic() + 30)
    finally:
        _ended(proc)
        engine.dispose()


@pytest.fixture(params=["sqlite", "postgres"])
def shared_database(request: pytest.FixtureRequest) -> Iterator[dict[str, str]]:
    """What the environment of ``serve`` says of its database: nothing (the data directory's SQLite file, its
    workers' writers queued on the file's lock) or a fresh PostgreSQL database's URL."""
    if request.param == "sqlite":
        yield {}
    else:
        for url in support.postgres_database():
            yield {"DATABASE_URL": url}


@pytest.fixture(params=["sqlite", "postgres"])
def feed_engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    if request.param == "sqlite":
        engine = make_engine(f"sqlite:///{tmp_path / 'feed.db'}")
        yield engine
    else:
        for url in support.postgres_database():
            engine = make_engine(url)
            yield engine
    engine.dispose()


def test_the_feed_lock_has_one_holder_at_a_time(feed_engine: Any, tmp_path: Path) -> None:
    # Another pool: another session, as another process has.
    other = make_engine(feed_engine.url.render_as_string(hide_password=False))
    try:
        a, b = FeedLock(feed_engine, tmp_path), FeedLock(other, tmp_path)
        assert a.hold() and a.hold()  # taken, then still ours
        assert not b.hold() and not b.held
        a.release()
        assert b.hold() and not a.hold()
        b.release()
        assert a.hold()
        a.release()
    finally:
        other.dispose()


def test_readyz_names_what_is_not_ready_while_healthz_stays_ok(tmp_path: Path) -> None:
    """Served over a real socket: a stub nobody answers at, then a database nobody answers at."""
    from mycarenet_ic.app import Platform
    from mycarenet_ic.config import Settings
    from mycarenet_ic.mounts import Mounts
    from mycarenet_ic.server import ServedApp, free_port
    from mycarenet_ic.wsgi import Health

    platform = Platform.prepared(Settings(data_dir=tmp_path / "d"))
    nobody = free_port()
    stubs = {"cobrha": f"http://127.0.0.1:{nobody}/cobrha"}
    served = ServedApp("health", Mounts({"healthz": Health(platform, stubs, ready=False),
                                         "readyz": Health(platform, stubs, ready=True)})).start()
    try:
        answer = requests.get(served.url + "readyz", timeout=30)
        assert answer.status_code == 503 and answer.json() == {
            "status": "not ready", "checks": {"database": "ok", "migrations": "ok", "stubs": "unreachable: cobrha"}}
        working = platform.engine
        platform.engine = make_engine(f"postgresql://nobody@127.0.0.1:{nobody}/gone")
        try:
            answer = requests.get(served.url + "readyz", timeout=60)
            assert answer.status_code == 503
            assert answer.json()["checks"] | {"stubs": "-"} == {"database": "unreachable", "migrations": "not at head",
                                                                "stubs": "-"}
            assert "nobody" not in answer.text  # no URL, no driver message
            alive = requests.get(served.url + "healthz", timeout=30)
            assert alive.status_code == 200 and alive.json() == {"status": "ok"}
        finally:
            platform.engine.dispose()
            platform.engine = working
    finally:
        served.stop()
        platform.close()


@contextlib.contextmanager
def _two_workers(tmp_path: Path, env: dict[str, str]) -> Iterator[tuple[dict[str, str], Path]]:
    """``serve --sandbox`` with two workers on ``env``, ready: its URLs and data directory; stopped with SIGTERM
    at the end, which must end it cleanly (exit 0, no traceback)."""
    data = tmp_path / "d"
    err = tmp_path / "stderr.txt"
    with err.open("wb") as stderr:
        proc = subprocess.Popen([*sandbox_command(), "serve", "--data-dir", str(data), "--port", "0", "--plain-http",
                                 "--sandbox", "--workers", "2", "--threads", "4"],
                                stdout=subprocess.PIPE, stderr=stderr, env=env)
    lines = _read_lines(proc)
    try:
        deadline = time.monotonic() + DEADLINE
        ready = _poll("READY lines", lambda: (proc.poll() is None or pytest.fail(err.read_text())) and (
            (found := dict(line.split()[1:3] for line in lines if line.startswith("READY "))).get("readyz")
            and found), deadline)
        _poll("two workers", lambda: len(_children(proc.pid)) == 2, deadline)
        _poll("ready", lambda: requests.get(ready["readyz"], timeout=10).status_code == 200, deadline)
        yield ready, data
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0, err.read_text()
        assert "Traceback" not in err.read_text()
    finally:
        _ended(proc)


def _stored_inclusions(shared_database: dict[str, str], data: Path) -> int:
    from mycarenet_ic.persistence.tables import ic_inclusion

    engine = make_engine(shared_database.get("DATABASE_URL") or f"sqlite:///{data / 'mycarenet.sqlite3'}")
    try:
        with engine.connect() as conn:
            return int(conn.execute(text(f"SELECT count(*) FROM {ic_inclusion.name}")).scalar_one())
    finally:
        engine.dispose()


def test_scenario_changes_through_one_worker_are_seen_by_every_worker(tmp_path: Path,
                                                                     shared_database: dict[str, str]) -> None:
    """``serve --sandbox`` with two workers: persons added through the admin API, each on a connection of its
    own and several at once, are all in the scenario every later connection reads, whichever worker it meets
    (before: only the worker that took the change knew them; the National Register said "unknown patient")."""
    from concurrent.futures import ThreadPoolExecutor

    from mycarenet_ic.domain.identifiers import make_niss

    env = sandbox_env() | shared_database | {"MYCARENET_FOLLOW_FEED": "0"}
    with _two_workers(tmp_path, env) as (ready, data):
        admin = ready["scenario-admin"].rstrip("/") + "/scenario"
        auth = {"Authorization": "Bearer " + (data / "secrets" / "admin.token").read_text().strip()}
        ssins = [make_niss(dt_date(1941, 3, 3), 601 + n) for n in range(12)]
        demo = requests.get(admin, headers=auth, timeout=60).json()["inclusions"]
        assert len(demo) > 0 and _stored_inclusions(shared_database, data) == len(demo)  # seeded, as the sandbox

        def add(ssin: str) -> int:
            return requests.post(admin + "/changes", headers=auth, timeout=60, json={
                "action": "add-person", "ssin": ssin, "last_name": "Worker", "first_names": ["W"],
                "birth_date": None, "sex": "unknown"}).status_code

        with ThreadPoolExecutor(6) as pool:  # a new connection each: both workers take some, some at once
            assert list(pool.map(add, ssins)) == [200] * len(ssins)
        for _ in range(16):  # each read a new connection too
            known = {p["ssin"] for p in requests.get(admin, headers=auth, timeout=60).json()["persons"]}
            assert set(ssins) <= known


def _blobs(answer: bytes) -> bytes:
    """Every base64 text of a SOAP answer, decoded (the MemberData answer's SAML response is one)."""
    from lxml import etree

    found = []
    for el in etree.fromstring(answer).iter():
        text_ = (el.text or "").strip()
        if isinstance(el.tag, str) and len(text_) > 200:
            with contextlib.suppress(ValueError):
                found.append(base64.b64decode(text_, validate=True))
    return b"\n".join(found)


def _memberdata_caller(ready: dict[str, str], data: Path) -> Callable[[], requests.Response]:
    """A signed MemberData consultation of the demo GP, each call on a new connection (either worker may take
    it)."""
    from benchmarks._common import GP_NIHII, GP_SSIN, memberdata_body
    from benchmarks.service_load import signed
    from mycarenet_ic.domain.qualities import Quality
    from mycarenet_ic.security.pki import Pki
    from mycarenet_ic.security.wssec import Signer

    signer = Signer(Pki(data).issue_holder(Quality.DOCTOR, GP_SSIN, GP_NIHII))
    return lambda: requests.post(ready["memberdata"], data=signed(signer, memberdata_body()), timeout=60,
                                 headers={"Content-Type": "text/xml; charset=utf-8", "Connection": "close"})


def test_an_injected_fault_counts_its_requests_across_the_workers(tmp_path: Path,
                                                                 shared_database: dict[str, str]) -> None:
    """``serve --sandbox``: a fault rule added through the admin API (whichever worker takes it) applies on
    every worker, and a rule for 5 requests fails exactly 5 of them in all, then is used up (before: the rule
    was saved but ``serve`` injected nothing)."""
    with _two_workers(tmp_path, sandbox_env() | shared_database) as (ready, data):
        faults = ready["scenario-admin"].rstrip("/") + "/scenario/faults"
        auth = {"Authorization": "Bearer " + (data / "secrets" / "admin.token").read_text().strip()}
        added = requests.post(faults, headers=auth, timeout=60, json={
            "id": "five", "effect": "system-error", "service": "memberdata", "times": 5})
        assert added.status_code == 201, added.text
        consult = _memberdata_caller(ready, data)
        statuses = [consult().status_code for _ in range(14)]
        assert sorted(statuses) == [200] * 9 + [500] * 5, statuses
        assert statuses[:5] == [500] * 5  # the first five, whichever worker took each
        assert requests.get(faults, headers=auth, timeout=60).json()["faults"] == []  # used up, on every worker


def test_serve_sandbox_is_its_data_directorys_running_sandbox(tmp_path: Path) -> None:
    """``serve --sandbox`` holds the data directory as the sandbox does: its addresses in ``sandbox.json`` for the
    command line, a second sandbox on the directory refused in one line, the file gone when it stops."""
    from mycarenet_ic.sandbox import read_running

    with _two_workers(tmp_path, sandbox_env()) as (ready, data):
        assert read_running(data)["memberdata"] == ready["memberdata"]
        env = sandbox_env() | {"MYCARENET_DATA_DIR": str(data)}
        listed = subprocess.run([*sandbox_command(), "scenario", "faults"], capture_output=True, text=True,
                                env=env, timeout=120, check=False)
        assert listed.returncode == 0, listed.stderr  # found through sandbox.json, answered by a worker
        second = subprocess.run([*sandbox_command(), "sandbox", "--data-dir", str(data), "--port", "0"],
                                capture_output=True, text=True, env=env, timeout=120, check=False)
        errors = [line for line in second.stderr.splitlines() if line.startswith("error")]
        assert second.returncode == 2 and len(errors) == 1 and "already running" in errors[0], second.stderr
        assert read_running(data)["memberdata"] == ready["memberdata"]  # the refused one changed nothing
        refused = requests.post(ready["memberdata"], data=b"<not-soap/>", timeout=60,
                                headers={"Content-Type": "text/xml; charset=utf-8"})
        assert refused.status_code == 500  # a fault names its audit row, as the sandbox's
        assert re.match(r"audit-row=\d+; ", refused.headers.get("X-Sandbox-Reason", "")), refused.headers
    assert not (data / "sandbox.json").exists()


def test_a_death_is_seen_by_every_worker_once_the_feed_names_it(tmp_path: Path,
                                                                shared_database: dict[str, str]) -> None:
    """``serve --sandbox`` with two workers: only one follows the mutation feed, but both keep National
    Register persons in a cache (60 s here). After a death, every MemberData answer says it within a few
    feed rounds, whichever worker answers (before: the worker that did not follow the feed answered from
    its cached, living person until the cache expired)."""
    from benchmarks._common import PATIENT

    env = sandbox_env() | shared_database | {"MYCARENET_MUTATION_SYNC_SECONDS": "0.5",
                           "MYCARENET_NR_CACHE_SECONDS": "60"}
    with _two_workers(tmp_path, env) as (ready, data):
        consultation = _memberdata_caller(ready, data)

        def consult() -> bytes:
            answer = consultation()
            assert answer.status_code == 200, answer.text[:500]
            return _blobs(answer.content)

        death = (dt_date.today() - dt.timedelta(days=10)).isoformat()
        for _ in range(24):  # both workers now hold the living person in their cache
            assert death.encode() not in consult()
        admin = ready["scenario-admin"].rstrip("/") + "/scenario/changes"
        auth = {"Authorization": "Bearer " + (data / "secrets" / "admin.token").read_text().strip()}
        said = requests.post(admin, headers=auth, timeout=60, json={"action": "death", "ssin": PATIENT, "date": death})
        assert said.status_code == 200, said.text
        # A few feed rounds (0.5 s each), far less than the cache's 60 s: then every answer says the death.
        _poll("the death in every answer", lambda: all(death.encode() in consult() for _ in range(16)),
              time.monotonic() + 20)
        assert all(death.encode() in consult() for _ in range(16))


def _accepted(port: int) -> dict[str, int]:
    """{socket inode: the client's port} of every established connection made to ``port``."""
    return {fields[9]: int(fields[2].rsplit(":", 1)[1], 16) for fields in support.established_to(port)}


def _holders(port: int, peers: set[int]) -> dict[int, int]:
    """{client's port: pid of the process holding the server side} of the connections from local port
    ``port`` to one of the ports ``peers``, over every process: which worker took each client."""
    mine = {inode: remote for inode, remote in _accepted(port).items() if remote in peers}
    found: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            for fd in (entry / "fd").iterdir():
                link = os.readlink(fd)
                if link.startswith("socket:[") and link[8:-1] in mine:
                    found[mine[link[8:-1]]] = int(entry.name)
    return found


def _held_connections(port: int, peers: set[int]) -> dict[int, int]:
    """{pid: how many of the clients' connections it holds}."""
    return dict(Counter(_holders(port, peers).values()))


def test_kept_alive_connections_are_shared_evenly_between_the_workers(tmp_path: Path) -> None:
    """Clients that connect one after the other and keep their connections: each worker holds about half of
    them (before: whichever worker woke first took them, 11 of 16 for a whole benchmark run, and its
    clients waited twice as long as the other's)."""
    import http.client
    import urllib.parse

    with _two_workers(tmp_path, sandbox_env()) as (ready, _data):
        port = urllib.parse.urlsplit(ready["readyz"]).port
        assert port is not None
        # The start's own connections (readiness polls) gone first: each worker then holds only these clients'.
        _poll("no connection left", lambda: not _accepted(port), time.monotonic() + DEADLINE)
        clients = []
        try:
            for _ in range(12):
                client = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
                client.request("GET", "/healthz")
                answer = client.getresponse()
                answer.read()
                assert answer.status == 200 and not answer.will_close
                clients.append(client)
            held = _held_connections(port, {client.sock.getsockname()[1] for client in clients})
            assert sum(held.values()) == 12 and len(held) == 2, held
            assert max(held.values()) - min(held.values()) <= 2, held  # a worker one over the other may take one
        finally:
            for client in clients:
                client.close()


def test_a_worker_far_ahead_sends_a_client_to_the_other(tmp_path: Path) -> None:
    """The connections split evenly, then most of one worker's clients leave: the other worker, far ahead,
    answers one client at a time with ``Connection: close``, and the client connects again, to the worker
    that lost its clients, until they are about even (before: the split stayed as the leaving made it)."""
    import http.client
    import urllib.parse

    from mycarenet_ic import balance

    with _two_workers(tmp_path, sandbox_env()) as (ready, _data):
        port = urllib.parse.urlsplit(ready["readyz"]).port
        assert port is not None
        _poll("no connection left", lambda: not _accepted(port), time.monotonic() + DEADLINE)
        clients = [http.client.HTTPConnection("127.0.0.1", port, timeout=60) for _ in range(12)]
        try:
            def ask(client: http.client.HTTPConnection) -> None:
                client.request("GET", "/healthz")  # reconnects by itself after a Connection: close
                answer = client.getresponse()
                answer.read()
                assert answer.status == 200

            for client in clients:
                ask(client)
            by_port = {client.sock.getsockname()[1]: client for client in clients}
            holders = _holders(port, set(by_port))
            first, second = sorted(set(holders.values()))
            leaving = [c for p, c in by_port.items() if holders[p] == first][1:]  # all of first's clients but one
            for client in leaving:
                client.close()
            staying = [c for c in clients if c not in leaving]

            def even() -> bool:
                for client in staying:
                    ask(client)
                held = _held_connections(port, {c.sock.getsockname()[1] for c in staying if c.sock is not None})
                return sum(held.values()) == len(staying) and len(held) == 2 and \
                    max(held.values()) - min(held.values()) <= balance.SHED_AFTER

            assert not even() or len(leaving) <= balance.SHED_AFTER  # uneven to begin with
            _poll("an even split again", even, time.monotonic() + 30)
        finally:
            for client in clients:
                client.close()
