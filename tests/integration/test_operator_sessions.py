"""The inspector's operator sessions live in ``operator-sessions.sqlite3`` of the data directory: a session
opened by one process (one of ``serve``'s workers) is known to another, ended by either, bounded in idle time,
age and number, and the file holds only hashes of the cookie ids."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from mycarenet_ic.web.inspector_pages import OperatorSessions

pytestmark = pytest.mark.integration

LOOK_UP = ("import sys; from pathlib import Path\n"
           "from mycarenet_ic.web.inspector_pages import OperatorSessions\n"
           "sessions = OperatorSessions(Path(sys.argv[1]))\n"
           "if sys.argv[2] == 'end':\n    sessions.end(sys.argv[3])\n"
           "print('known' if sessions.get(sys.argv[3]) else 'unknown')\n")


def _in_another_process(data: Path, what: str, session_id: str) -> str:
    return subprocess.run([sys.executable, "-c", LOOK_UP, str(data), what, session_id], capture_output=True,
                          text=True, check=True, timeout=60, cwd=Path(__file__).parents[2]).stdout.strip()


def test_a_session_opened_by_one_process_is_known_to_another_and_ended_by_it(tmp_path: Path) -> None:
    sessions = OperatorSessions(tmp_path)
    session = sessions.new()
    assert _in_another_process(tmp_path, "get", session.id) == "known"
    assert _in_another_process(tmp_path, "get", "not-" + session.id) == "unknown"
    assert _in_another_process(tmp_path, "end", session.id) == "unknown"
    assert sessions.get(session.id) is None  # ended there: ended here
    path = tmp_path / OperatorSessions.FILE
    assert path.stat().st_mode & 0o777 == 0o600
    other = sessions.new()
    with sqlite3.connect(path) as db:
        stored = [row[0] for row in db.execute("SELECT id_hash FROM operator_session")]
    assert stored and other.id not in stored and all(len(h) == 64 for h in stored)  # hashes, never the id


def test_idle_and_age_and_count_end_sessions(tmp_path: Path) -> None:
    now = [1_000_000.0]
    sessions = OperatorSessions(tmp_path, idle_seconds=60, max_seconds=300, max_sessions=3, clock=lambda: now[0])
    idle = sessions.new()
    now[0] += 61
    assert sessions.get(idle.id) is None  # idle too long
    kept = sessions.new()
    for _ in range(5):
        now[0] += 50
        assert sessions.get(kept.id) is not None  # each request moves its idle time on ...
    now[0] += 51
    assert sessions.get(kept.id) is None  # ... but not its age (300 s at most)
    first, *others = [sessions.new() for _ in range(4)]
    assert sessions.get(first.id) is None  # the oldest went when a fourth was opened
    assert all(sessions.get(s.id) is not None for s in others)
