"""What every ``mycarenet-ic`` command shares before and around its own work: the global options (accepted
before the subcommand as after it), one-line argument errors, logging, the data directory checked and named,
``DATABASE_URL`` checked, and the one-line messages for a sandbox that cannot start.

Every failure a person can fix is one ``error: …`` line that says what is wrong and what to do, exit 2.
"""

from __future__ import annotations

import argparse
import datetime as dt
import errno
import logging
import os
import sys
from pathlib import Path
from typing import Any, NoReturn

from mycarenet_ic.datadir import DataDirError, check_data_dir, default_data_dir
from mycarenet_ic.textsafe import printable

# Commands that read what a sandbox or `prepare` made: on a data directory that is not there they stop (they
# used to make a new one, a new CA included, and answer from it). Every other command makes what it needs.
READERS = frozenset({"audit", "export", "purge", "statistics", "scenario", "mutations", "inspect", "premium",
                     "sts"})
# Commands that say which data directory they use themselves (the sandbox: on standard output).
_NAMES_ITS_DIRECTORY = frozenset({"sandbox"})
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
_REQUIRED = "the following arguments are required: "


class CliError(Exception):
    """A command stops: one line (``error: …``) that says what to do, exit 2."""


class Parser(argparse.ArgumentParser):
    """argparse, with its errors as one line naming what is missing readably (its subparsers are of this
    class too: argparse makes them of the parent's)."""

    def error(self, message: str) -> NoReturn:
        if message.startswith(_REQUIRED):
            message = "missing " + ", ".join(self._readable(name) for name in message[len(_REQUIRED):].split(", "))
        self.exit(2, f"error: {printable(f'{self.prog}: {message}')} (see {printable(self.prog)} --help)\n")

    def _readable(self, name: str) -> str:
        for action in self._actions:
            if isinstance(action, argparse._SubParsersAction) and name in (action.dest, action.metavar):
                return "a command: " + " or ".join(action.choices)
            if not action.option_strings and name == action.dest:
                return f"the {name.replace('_', ' ')} argument"
        return name


def add_global_options(parser: argparse.ArgumentParser, common: argparse.ArgumentParser) -> None:
    """``--data-dir``, ``--verbose`` and ``--log-level`` on the top level and on every subcommand made with
    ``common``: given before the subcommand or after it. Only the top level has defaults (a subcommand's
    would overwrite what was given before it); ``--version`` is the top level's."""
    from mycarenet_ic import __version__

    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    where = (f"certificates, database, scenario state (default: $MYCARENET_DATA_DIR, else {default_data_dir()},"
             " wherever the command is run)")
    parser.add_argument("--data-dir", default=None, help=where)
    common.add_argument("--data-dir", default=argparse.SUPPRESS, help=where)
    parser.add_argument("-v", "--verbose", action="count", default=0, help="say more (-vv: debug)")
    common.add_argument("--verbose", action="count", default=argparse.SUPPRESS, help="say more (twice: debug)")
    for target, default in ((parser, None), (common, argparse.SUPPRESS)):
        target.add_argument("--log-level", type=str.upper, choices=LOG_LEVELS, default=default,
                            help="log from this level on (default: WARNING; --verbose: INFO)")


def iso_date(raw: str) -> str:
    """An argparse type: a date YYYY-MM-DD, checked here (an error line naming the option) and given on as
    the text, as the commands read it."""
    try:
        dt.date.fromisoformat(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD, e.g. 2026-01-31): {raw!r}") from None
    return raw


def start_command(args: argparse.Namespace) -> None:
    """Before the command runs: logging as asked; the data directory named on stderr (on a terminal, or
    when it is the per-user default nobody named) and checked; ``DATABASE_URL`` checked. Raises
    :class:`CliError`."""
    verbose = getattr(args, "verbose", 0) or 0
    level = getattr(args, "log_level", None) or ("WARNING", "INFO", "DEBUG")[min(verbose, 2)]
    logging.basicConfig(level=getattr(logging, level), format=LOG_FORMAT)
    from mycarenet_ic.config import Settings

    try:
        settings = Settings.from_env(data_dir=getattr(args, "data_dir", None))
    except ValueError as exc:  # a variable of the environment that cannot be read
        raise CliError(f"{exc}: correct or unset that environment variable") from None
    data_dir = Path(os.path.abspath(settings.data_dir))
    named = getattr(args, "data_dir", None) is not None or bool(os.environ.get("MYCARENET_DATA_DIR"))
    if args.command not in _NAMES_ITS_DIRECTORY and (_on_terminal(sys.stderr) or not named):
        print(printable(f"data directory: {data_dir}" + ("" if named else " (the default; --data-dir or "
                                                          "MYCARENET_DATA_DIR name another)")), file=sys.stderr)
    try:
        check_data_dir(data_dir, create=args.command not in READERS)
    except DataDirError as exc:
        raise CliError(str(exc)) from None
    if settings.database_url:
        problem = database_problem(settings.database_url)
        if problem:
            raise CliError(problem)


def _on_terminal(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def database_problem(url: str) -> str | None:
    """Why ``DATABASE_URL`` cannot be used (never repeating it: it may hold a password), or None."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    if url.startswith("postgresql://"):  # as make_engine reads it: psycopg 3
        url = "postgresql+psycopg://" + url[len("postgresql://"):]
    unset = "or unset it (SQLite in the data directory)"
    try:
        parsed = make_url(url)
        dialect = parsed.get_dialect()
    except ArgumentError:  # NoSuchModuleError too: a database SQLAlchemy does not know
        return f"DATABASE_URL is not a database URL this tool can use: write postgresql://USER@HOST:PORT/DB, {unset}"
    try:
        dialect.import_dbapi()
    except ImportError as exc:
        backend = parsed.get_backend_name()
        fix = ("pip install 'mycarenet-ic[postgres]' (bash scripts/sandbox does it when DATABASE_URL names "
               "PostgreSQL)" if backend == "postgresql" else "install that driver")
        return f"DATABASE_URL names {backend}, whose driver is not installed ({exc}): {fix}, {unset}"
    return None


def start_failure(exc: BaseException, host: str, port: int) -> tuple[str, int]:
    """The one line (and exit code) for a sandbox that did not start on ``host``:``port``."""
    if isinstance(exc, DataDirError | CliError):
        return str(exc), 2
    if isinstance(exc, ImportError):
        return f"the sandbox did not start: {exc}: pip install -e . (bash scripts/sandbox keeps .venv in step)", 2
    if isinstance(exc, OSError) and exc.errno == errno.EADDRINUSE:
        return (f"port {port} on {host} is already in use (another sandbox or program): give another --port, "
                "or --port 0 for a free one"), 2
    if isinstance(exc, OSError) and exc.errno == errno.EACCES and 0 < port < 1024:
        return f"this user may not listen on port {port} (below 1024): give --port 1024 or above", 2
    if isinstance(exc, OSError) and exc.errno == errno.EADDRNOTAVAIL:
        return f"{host} is not an address of this machine: give --host 127.0.0.1 (the default)", 2
    return f"the sandbox did not start: {exc}", 1


def service_url(given: str | None, data_dir: Path, service: str) -> str:
    """``--url`` as given (an http(s) address), else the running sandbox's address of ``service``."""
    from urllib.parse import urlsplit

    from mycarenet_ic.sandbox import read_running

    if given:
        parts = urlsplit(given)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise CliError(f"--url {given!r} is not an http(s) address: give the service's, e.g. "
                           f"https://127.0.0.1:PORT/{service} (the sandbox prints it as READY {service})")
        return given
    try:
        urls = read_running(data_dir)
    except FileNotFoundError as exc:
        raise CliError(f"{exc}: start the sandbox, or give --url") from None
    if service not in urls:
        raise CliError(f"the sandbox on {data_dir} runs no {service}: give --url")
    return urls[service]
