"""Group commit of audit rows and replay-cache digests: appends that arrive while a transaction is written
go in the next one together, every caller returns only once its row is committed, the chain stays one
line, a row the database refuses fails its own caller only, and a digest is new exactly once."""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable, Sequence

import pytest
from sqlalchemy import select, text

from mycarenet_ic.app import Platform
from mycarenet_ic.persistence.audit import AuditEntry, verify_chain
from mycarenet_ic.persistence.group_commit import GroupCommit
from mycarenet_ic.persistence.replay import SqlReplayCache
from mycarenet_ic.persistence.tables import audit_log

pytestmark = pytest.mark.unit


def _until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.001)  # polling a condition, not a fixed wait


def _in_threads(work: Callable[[int], int], n: int) -> tuple[dict[int, int], dict[int, BaseException]]:
    done: dict[int, int] = {}
    failed: dict[int, BaseException] = {}

    def run(i: int) -> None:
        try:
            done[i] = work(i)
        except Exception as exc:  # noqa: BLE001 - collected for the assertions
            failed[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return done, failed


def test_rows_that_wait_go_in_one_transaction() -> None:
    groups: list[list[str]] = []
    first_in = threading.Event()
    release = threading.Event()

    def commit(entries: Sequence[AuditEntry]) -> list[int]:
        groups.append([e.operation for e in entries])
        if len(groups) == 1:
            first_in.set()
            release.wait(10)
        start = sum(len(g) for g in groups[:-1])
        return list(range(start + 1, start + 1 + len(entries)))

    group = GroupCommit(commit)
    leader = threading.Thread(target=group.submit, args=(AuditEntry("t", "first"),))
    leader.start()
    first_in.wait(10)
    results: dict[int, int] = {}
    others = [threading.Thread(target=lambda i=i: results.__setitem__(i, group.submit(AuditEntry("t", f"op{i}"))))
              for i in range(8)]
    for t in others:
        t.start()
    _until(lambda: len(group._waiting) == 8)
    assert not results  # nobody returns before its row is committed
    release.set()
    leader.join(10)
    for t in others:
        t.join(10)
    assert [len(g) for g in groups] == [1, 8]
    assert sorted(results.values()) == list(range(2, 10))


def test_concurrent_appends_keep_one_chain(platform: Platform) -> None:
    done, failed = _in_threads(lambda i: platform.audit.append(AuditEntry("test", f"op{i}", caller="doctor:1")), 24)
    assert not failed
    assert sorted(done.values()) == list(range(1, 25))
    report = verify_chain(platform.engine)
    assert report.ok and report.rows == 24
    with platform.engine.connect() as conn:
        by_seq: dict[int, str] = {seq: op for seq, op in conn.execute(select(audit_log.c.seq, audit_log.c.operation))}
    assert {by_seq[seq] for seq in done.values()} == {f"op{i}" for i in range(24)}


def test_a_refused_row_fails_only_its_caller(platform: Platform) -> None:
    if platform.engine.dialect.name != "sqlite":
        pytest.skip("the refusal is a SQLite trigger")
    with platform.engine.begin() as conn:
        conn.execute(text("CREATE TRIGGER refuse_bad BEFORE INSERT ON audit_log WHEN NEW.operation = 'bad' "
                          "BEGIN SELECT RAISE(ABORT, 'refused'); END"))
    # Hold the write lock so that the appenders pile up behind the first and commit as one group.
    holding = platform.engine.begin()
    conn = holding.__enter__()
    try:
        names = ["good0", "good1", "bad", "good2", "good3"]
        results: dict[int, int] = {}
        errors: dict[int, BaseException] = {}

        def run(i: int) -> None:
            try:
                results[i] = platform.audit.append(AuditEntry("test", names[i]))
            except Exception as exc:  # noqa: BLE001 - collected for the assertions
                errors[i] = exc

        group = platform.audit._group
        threads = [threading.Thread(target=run, args=(i,)) for i in range(len(names))]
        threads[0].start()  # the leader: its group (itself) taken, waiting for the write lock
        _until(lambda: group._leading and not group._waiting)
        for t in threads[1:]:
            t.start()
        _until(lambda: len(group._waiting) == len(names) - 1)
    finally:
        holding.__exit__(None, None, None)
    for t in threads:
        t.join(30)
    assert list(errors) == [2]
    assert "refused" in str(errors[2])
    report = verify_chain(platform.engine)
    assert report.ok and report.rows == 4
    with platform.engine.connect() as read:
        stored = set(read.execute(select(audit_log.c.operation)).scalars())
    assert stored == {"good0", "good1", "good2", "good3"}
    del conn


def test_replay_cache_tells_new_from_seen_under_concurrency(platform: Platform) -> None:
    cache = SqlReplayCache(platform.engine, purge_every=7)
    expires = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=5)
    assert cache.check_and_store("expired", dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1))
    # 12 digests, each sent by 3 threads at once: exactly one of the three is new.
    done, failed = _in_threads(lambda i: int(cache.check_and_store(f"d{i % 12}", expires)), 36)
    assert not failed
    for digest in range(12):
        assert sum(done[i] for i in range(36) if i % 12 == digest) == 1
    assert not cache.check_and_store("d0", expires)
    assert cache.check_and_store("fresh", expires)
    assert cache.check_and_store("expired", expires)  # purged on the way (every 7 digests): new again
