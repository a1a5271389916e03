"""The data directory (one per user, checked, locked) and the command line's shared checks (mycarenet_ic.datadir,
mycarenet_ic.cli_support)."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from mycarenet_ic.cli_support import Parser, database_problem, iso_date
from mycarenet_ic.config import ENVIRONMENT, Settings
from mycarenet_ic.datadir import (
    DataDirError,
    SandboxLock,
    SandboxRunning,
    check_data_dir,
    default_data_dir,
    sandbox_is_running,
)

pytestmark = pytest.mark.unit


def test_the_default_is_the_user_s_data_directory_not_the_working_directory(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for variable, _ in ENVIRONMENT.values():
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    monkeypatch.chdir(tmp_path)
    assert default_data_dir() == tmp_path / "xdg" / "mycarenet-ic"
    assert Settings().data_dir == Settings.from_env().data_dir == tmp_path / "xdg" / "mycarenet-ic"
    monkeypatch.setenv("MYCARENET_DATA_DIR", str(tmp_path / "mine"))
    assert Settings.from_env().data_dir == tmp_path / "mine"


def test_check_data_dir(tmp_path: Path) -> None:
    check_data_dir(tmp_path, create=False)
    check_data_dir(tmp_path / "new" / "deeper", create=True)
    assert not (tmp_path / "new").exists()  # checked, not made
    with pytest.raises(DataDirError, match="no data directory at"):
        check_data_dir(tmp_path / "new", create=False)
    (tmp_path / "file").write_text("x")
    with pytest.raises(DataDirError, match="is a file, not a directory"):
        check_data_dir(tmp_path / "file", create=True)
    with pytest.raises(DataDirError, match="is a file;"):
        check_data_dir(tmp_path / "file" / "data", create=True)


def test_one_lock_per_data_directory(tmp_path: Path) -> None:
    first = SandboxLock(tmp_path).acquire()
    assert sandbox_is_running(tmp_path)
    with pytest.raises(SandboxRunning, match=r"already running on .* \(process \d+;"):
        SandboxLock(tmp_path).acquire()
    first.release()
    assert not sandbox_is_running(tmp_path) and not first.held
    SandboxLock(tmp_path).acquire().release()  # free again
    assert not sandbox_is_running(tmp_path / "none")


def test_dates_and_database_urls() -> None:
    assert iso_date("2026-01-31") == "2026-01-31"
    with pytest.raises(argparse.ArgumentTypeError, match="not a date"):
        iso_date("31/01/2026")
    assert database_problem("postgresql://me@127.0.0.1/db") is None  # psycopg 3, as make_engine reads it
    assert database_problem("sqlite:////tmp/x.sqlite3") is None
    problem = database_problem("mysql://me:pw@127.0.0.1/db")
    assert problem is not None and "mysql" in problem and "pw" not in problem


def test_a_missing_subcommand_is_named_by_its_choices(capsys: pytest.CaptureFixture[str]) -> None:
    parser = Parser(prog="tool")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("one").add_argument("thing_id", type=int)
    sub.add_parser("two")
    for args, said in (([], "error: tool: missing a command: one or two (see tool --help)\n"),
                       (["one"], "error: tool one: missing the thing id argument (see tool one --help)\n")):
        with pytest.raises(SystemExit) as stopped:
            parser.parse_args(args)
        assert stopped.value.code == 2 and capsys.readouterr().err == said
