"""Owner-only files: the SQLite database and its -wal and -shm files, ``secrets/`` and everything in it,
the sandbox PKI's private keys, and the keys ``mycarenet-ic certs issue`` writes are 0600 (directories
0700) whatever the umask, and files an older version left wider are tightened at start."""

from __future__ import annotations

import os
import sqlite3
import stat
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from mycarenet_ic.app import Platform
from mycarenet_ic.cli import main
from mycarenet_ic.config import Settings, secret_file
from mycarenet_ic.persistence.audit import AuditEntry
from mycarenet_ic.stubs.admin import admin_token
from tests import support

pytestmark = pytest.mark.integration


@pytest.fixture(params=[0o022, 0o000], ids=["umask-022", "umask-000"])
def umask(request: pytest.FixtureRequest) -> Iterator[int]:
    previous = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(previous)


def _mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def _private_files(data: Path) -> dict[str, int]:
    """Every file and directory that must be the owner's only, and its mode now."""
    db = data / "mycarenet.sqlite3"
    found = {str(p.relative_to(data)): _mode(p) for p in (db, Path(f"{db}-wal"), Path(f"{db}-shm"))}
    secrets = data / "secrets"
    found["secrets/"] = _mode(secrets)
    found.update({f"secrets/{p.name}": _mode(p) for p in secrets.iterdir()})
    pki = data / "pki"
    found["pki/"] = _mode(pki)
    found.update({f"pki/{p.name}": _mode(p) for p in pki.iterdir() if p.name.endswith((".key.pem", ".p12"))})
    return found


def _expected(found: dict[str, int]) -> dict[str, int]:
    return {name: 0o700 if name.endswith("/") else 0o600 for name in found}


def _write(platform: Platform) -> None:
    platform.audit.append(AuditEntry("test", "owner-only", caller="doctor:1", patient=support.PATIENT_LINKED))


def test_a_new_data_directory_is_owner_only_whatever_the_umask(tmp_path: Path, umask: int) -> None:
    data = tmp_path / "data"
    platform = Platform.prepared(Settings(data_dir=data))
    try:
        admin_token(data)  # the sandbox's third secret
        _write(platform)  # the -wal and -shm files exist while the engine is open
        assert Path(f"{data}/mycarenet.sqlite3-wal").exists() and Path(f"{data}/mycarenet.sqlite3-shm").exists()
        found = _private_files(data)
        assert {"secrets/pseudonym.key", "secrets/niss-seal.key", "secrets/admin.token", "pki/ca.key.pem",
                "pki/mycarenet.p12"} <= set(found)
        assert found == _expected(found)
    finally:
        platform.close()


def test_files_an_older_version_left_wider_are_tightened_at_start(tmp_path: Path, umask: int) -> None:
    data = tmp_path / "data"
    first = Platform.prepared(Settings(data_dir=data))
    admin_token(data)
    _write(first)
    first.close()
    db = data / "mycarenet.sqlite3"
    # Another process (an older version) still has the database open: its -wal and -shm are there.
    other = sqlite3.connect(db)
    try:
        other.execute("PRAGMA journal_mode=WAL")
        other.execute("CREATE TABLE IF NOT EXISTS scratch (x)")
        other.execute("INSERT INTO scratch VALUES (1)")
        other.commit()
        wide = [db, Path(f"{db}-wal"), Path(f"{db}-shm"), *(data / "secrets").iterdir(),
                *(p for p in (data / "pki").iterdir() if p.name.endswith((".key.pem", ".p12")))]
        for path in wide:
            path.chmod(0o644)
        (data / "secrets").chmod(0o755)
        (data / "pki").chmod(0o755)
        assert set(_private_files(data).values()) == {0o644, 0o755}

        platform = Platform(Settings(data_dir=data))
        try:
            admin_token(data)
            _write(platform)
            found = _private_files(data)
            assert found == _expected(found)
            assert len(platform.audit.rows()) == 2  # the same database, still working
        finally:
            platform.close()
    finally:
        other.close()


def test_certs_issue_writes_owner_only_keys_even_over_wider_files(tmp_path: Path, umask: int) -> None:
    data, out = tmp_path / "data", tmp_path / "new" / "out"
    args = ["certs", "issue", "--data-dir", str(data), "--ssin", support.DOCTOR_SSIN, "--nihii", support.DOCTOR_NIHII,
            "--quality", "doctor", "--out", str(out), "--name", "me"]
    assert main(args) == 0
    assert _mode(out) == 0o700
    assert _mode(out / "me.key.pem") == 0o600 and _mode(out / "me.p12") == 0o600
    first_key = (out / "me.key.pem").read_bytes()
    for name in ("me.key.pem", "me.p12"):
        (out / name).chmod(0o644)
    assert main(args) == 0  # a new key, written over the old files
    assert (out / "me.key.pem").read_bytes() != first_key
    assert _mode(out / "me.key.pem") == 0o600 and _mode(out / "me.p12") == 0o600
    assert [p.name for p in out.iterdir() if p.name.endswith(".tmp")] == []


def test_certs_issue_leaves_the_mode_of_an_existing_out_directory_alone(tmp_path: Path, umask: int) -> None:
    out = tmp_path / "mine"
    out.mkdir()
    out.chmod(0o755)
    assert main(["certs", "issue", "--data-dir", str(tmp_path / "data"), "--ssin", support.DOCTOR_SSIN,
                 "--quality", "doctor", "--out", str(out), "--name", "me"]) == 0
    assert _mode(out) == 0o755 and _mode(out / "me.key.pem") == 0o600


def test_callers_making_a_secret_at_once_agree_on_one(tmp_path: Path) -> None:
    path = tmp_path / "secrets" / "shared.key"
    start = threading.Barrier(8)
    seen: list[bytes] = []

    def make() -> None:
        start.wait(timeout=30)
        seen.append(secret_file(path, lambda: os.urandom(32)))

    threads = [threading.Thread(target=make) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert len(seen) == 8 and len(set(seen)) == 1 and path.read_bytes() == seen[0]
    assert _mode(path) == 0o600 and [p.name for p in path.parent.iterdir()] == ["shared.key"]
