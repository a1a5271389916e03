"""SQLite writers of several processes (``serve``'s workers on one data directory) queue on an exclusive
``flock`` of ``<database>.writers`` instead of meeting SQLite's sleeping busy handler: the lock is held for
exactly a write transaction (never for a read), seen from another process, and a forked child opens its own
descriptor (one inherited across ``fork`` would share the parent's lock, and exclude nothing)."""

from __future__ import annotations

import fcntl
import multiprocessing
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from sqlalchemy import text

from mycarenet_ic.persistence.db import WriterFileLock, make_engine, reading

pytestmark = pytest.mark.integration

TRY_LOCK = ("import fcntl, os, sys\n"
            "fd = os.open(sys.argv[1], os.O_RDWR)\n"
            "try:\n    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)\nexcept BlockingIOError:\n    print('busy')\n"
            "else:\n    print('free')\n")


def _from_another_process(lock_file: Path) -> str:
    return subprocess.run([sys.executable, "-c", TRY_LOCK, str(lock_file)], capture_output=True, text=True,
                          check=True, timeout=60).stdout.strip()


def test_a_write_transaction_holds_the_file_lock_and_a_read_does_not(tmp_path: Path) -> None:
    database = tmp_path / "db.sqlite3"
    engine = make_engine(f"sqlite:///{database}")
    try:
        with engine.begin() as conn:
            conn.execute(text("CREATE TABLE t (v INTEGER)"))
        lock_file = Path(f"{database}.writers")
        assert oct(lock_file.stat().st_mode & 0o777) == "0o600"
        assert _from_another_process(lock_file) == "free"
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO t VALUES (1)"))
            assert _from_another_process(lock_file) == "busy"
        assert _from_another_process(lock_file) == "free"  # released at commit
        with pytest.raises(RuntimeError), engine.begin() as conn:
            conn.execute(text("INSERT INTO t VALUES (2)"))
            raise RuntimeError("rolled back")
        assert _from_another_process(lock_file) == "free"  # released at rollback
        with reading(engine) as conn:
            assert conn.execute(text("SELECT count(*) FROM t")).scalar_one() == 1
            assert _from_another_process(lock_file) == "free"  # readers never take it
    finally:
        engine.dispose()


def test_an_invalidated_writer_lets_both_locks_go(tmp_path: Path) -> None:
    """SQLAlchemy does not roll back a connection it invalidates (a disconnect, ``invalidate()``, an interrupt in
    the middle of a statement): the writer's locks go with the connection all the same, so the next writer, in
    this process or another, is not left waiting for ever."""
    database = tmp_path / "db.sqlite3"
    engine = make_engine(f"sqlite:///{database}")
    lock_file = Path(f"{database}.writers")
    try:
        with engine.begin() as conn:
            conn.execute(text("CREATE TABLE t (v INTEGER)"))
        conn = engine.connect()
        conn.begin()
        conn.execute(text("INSERT INTO t VALUES (1)"))
        assert _from_another_process(lock_file) == "busy"
        conn.invalidate()
        conn.close()
        assert _from_another_process(lock_file) == "free"
        done: list[int] = []

        def write() -> None:
            with engine.begin() as other:
                other.execute(text("INSERT INTO t VALUES (2)"))
            done.append(1)

        writer = threading.Thread(target=write)
        writer.start()
        writer.join(60)
        assert done == [1]  # the in-process lock was let go too
        with reading(engine) as reader:
            assert reader.execute(text("SELECT v FROM t")).scalars().all() == [2]  # the invalidated one undone
    finally:
        engine.dispose()


def test_a_writer_waits_for_the_other_process_no_longer_than_its_bound(tmp_path: Path) -> None:
    lock = WriterFileLock(tmp_path / "db.sqlite3")
    other = WriterFileLock(tmp_path / "db.sqlite3")  # another descriptor: as another process
    assert lock.acquire()
    try:
        assert other.acquire(timeout=0.05) is False  # gave up: the writer then meets SQLite's own lock
    finally:
        lock.release()
    assert other.acquire(timeout=0.05) is True
    other.release()


def _child_tries(lock: WriterFileLock, answer: multiprocessing.connection.Connection) -> None:
    answer.send(lock.acquire(timeout=0))


def test_a_forked_child_does_not_share_its_parents_lock(tmp_path: Path) -> None:
    lock = WriterFileLock(tmp_path / "db.sqlite3")
    assert lock.acquire()
    try:
        context = multiprocessing.get_context("fork")
        mine, theirs = context.Pipe()
        child = context.Process(target=_child_tries, args=(lock, theirs))
        child.start()
        assert mine.recv() is False  # its own descriptor: the parent's lock excludes it
        child.join(60)
        assert child.exitcode == 0
    finally:
        lock.release()
    fd = os.open(lock.path, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # free again once released
    finally:
        os.close(fd)
