"""Fixtures: loopback-only sockets, database backends, PKI, a running sandbox."""

from __future__ import annotations

import atexit
import ipaddress
import os
import shutil
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from mycarenet_ic.app import Platform
from mycarenet_ic.config import Settings
from mycarenet_ic.domain.qualities import Quality
from mycarenet_ic.sandbox import Sandbox
from mycarenet_ic.security.pki import KeyPair
from mycarenet_ic.security.wssec import MemoryReplayCache, Signer, Verifier
from tests import support

BACKENDS = ["sqlite", "postgres"]

# No test uses the per-user data directory (mycarenet_ic.datadir.default_data_dir: a person's real sandbox):
# a command or Settings given none uses this run's own, removed at the end (subprocesses inherit both).
_OWN_DATA = Path(tempfile.mkdtemp(prefix="mycarenet-tests-"))
atexit.register(shutil.rmtree, _OWN_DATA, ignore_errors=True)
os.environ["MYCARENET_DATA_DIR"] = str(_OWN_DATA / "data")
os.environ["XDG_DATA_HOME"] = str(_OWN_DATA / "xdg")
KINDS = ("unit", "contract", "integration")


@pytest.hookimpl(tryfirst=True)  # before ``-m`` deselects by the marks added here
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Every test says what kind it is (a ``pytestmark`` of its module, or its own mark): one without
    ``unit``, ``contract`` or ``integration`` fails the collection. A test that runs against PostgreSQL
    (the ``postgres`` backend of a parametrised fixture, or ``pg_url``) is marked ``postgres`` here."""
    unmarked = [item.nodeid for item in items if not any(item.get_closest_marker(kind) for kind in KINDS)]
    if unmarked:
        raise pytest.UsageError(f"tests without a unit/contract/integration marker: {', '.join(unmarked)}")
    for item in items:
        params = getattr(item, "callspec", None)
        if "pg_url" in getattr(item, "fixturenames", ()) or (
                params is not None and "postgres" in params.params.values()):
            item.add_marker(pytest.mark.postgres)


_real_connect = socket.socket.connect


def _loopback_only(self: socket.socket, address: object) -> object:
    if self.family in (socket.AF_INET, socket.AF_INET6):
        host = address[0] if isinstance(address, tuple) else str(address)
        try:
            ok = ipaddress.ip_address(host).is_loopback
        except ValueError:
            ok = host == "localhost"
        if not ok:
            raise OSError(f"tests may only connect to loopback, not {host}")
    return _real_connect(self, address)  # type: ignore[arg-type]


@pytest.fixture(autouse=True)
def _no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(socket.socket, "connect", _loopback_only)


@pytest.fixture(scope="session", autouse=True)
def _ca_bundle(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The CAs the tests' HTTPS clients trust: each sandbox started adds its own (support.trust)."""
    bundle = tmp_path_factory.getbasetemp() / "sandbox-ca-bundle.pem"
    bundle.write_bytes(b"")
    before = os.environ.get("REQUESTS_CA_BUNDLE")
    os.environ["REQUESTS_CA_BUNDLE"] = str(bundle)
    try:
        yield bundle
    finally:
        if before is None:
            os.environ.pop("REQUESTS_CA_BUNDLE", None)
        else:
            os.environ["REQUESTS_CA_BUNDLE"] = before


def _database(backend: str, tmp: Path) -> Iterator[str | None]:
    if backend == "sqlite":
        yield None  # the data directory's SQLite file
        return
    yield from support.postgres_database()


@pytest.fixture(params=BACKENDS)
def platform(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Platform]:
    """A fresh platform (PKI, migrated database, audit) on each backend."""
    for url in _database(request.param, tmp_path):
        plat = Platform.prepared(Settings(data_dir=tmp_path / "data", database_url=url))
        try:
            yield plat
        finally:
            plat.close()


@pytest.fixture(scope="module", params=BACKENDS)
def sandbox(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    """The stubs running over HTTP on 127.0.0.1, on each backend."""
    tmp = tmp_path_factory.mktemp("sandbox")
    for url in _database(request.param, tmp):
        # HTTPS as production, unless a module tests the HTTP layer itself (SANDBOX_TLS = False).
        with support.running_sandbox(tmp / "data", url, tls=getattr(request.module, "SANDBOX_TLS", True)) as box:
            yield box


def holder(box_or_platform: Sandbox | Platform, quality: Quality = Quality.DOCTOR,
           ssin: str | None = support.DOCTOR_SSIN, nihii: str | None = support.DOCTOR_NIHII) -> KeyPair:
    plat = box_or_platform.platform if isinstance(box_or_platform, Sandbox) else box_or_platform
    return plat.pki.issue_holder(quality, ssin, nihii)


@pytest.fixture(scope="module")
def doctor(sandbox: Sandbox) -> KeyPair:
    return holder(sandbox)


@pytest.fixture(scope="module")
def doctor_signer(sandbox: Sandbox, doctor: KeyPair) -> Signer:
    return Signer(doctor)


@pytest.fixture(scope="module")
def answer_verifier(sandbox: Sandbox) -> Verifier:
    return Verifier(sandbox.platform.trust, MemoryReplayCache())
