"""The one place configuration is read: defaults, then environment, then explicit overrides."""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from mycarenet_ic.datadir import default_data_dir

# Keys, secrets and the database are the owner's only (files 0600, directories 0700), whatever the umask,
# and files an older version left wider are tightened when they are next opened.
OWNER_FILE = 0o600
OWNER_DIR = 0o700


def tighten(path: Path) -> None:
    """Take every permission away from group and others on ``path`` (if it is there; links left alone)."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISLNK(mode) and stat.S_IMODE(mode) & 0o077:
        os.chmod(path, stat.S_IMODE(mode) & ~0o077)


def owner_only_dir(path: Path) -> Path:
    """``path`` as a directory only its owner may enter (0700), made if need be, with its files 0600."""
    path.mkdir(mode=OWNER_DIR, parents=True, exist_ok=True)
    os.chmod(path, OWNER_DIR)
    for entry in path.iterdir():
        if entry.is_file() and not entry.is_symlink():
            tighten(entry)
    return path


def write_owner_only(path: Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` as a 0600 file: a new file, renamed over the old one when complete.

    The bytes are never in a file anyone else could open, not even for a moment: the temporary file is
    made 0600 and replaces ``path`` (and whatever wider mode it had) only once written.
    """
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, OWNER_FILE)
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return path


def secret_file(path: Path, make: Callable[[], bytes]) -> bytes:
    """A secret kept in ``path`` (0600, in a 0700 directory), made once by ``make`` and read ever after.

    Processes starting at the same time agree on one secret: the first to link its file wins, the others
    read that one.
    """
    owner_only_dir(path.parent)
    if not path.exists():
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            os.fchmod(fd, OWNER_FILE)
            with os.fdopen(fd, "wb") as out:
                out.write(make())
            try:
                os.link(tmp, path)
            except FileExistsError:  # someone else's secret got there first: keep it
                pass
            except OSError:  # no hard links on this file system: rename, as before
                os.replace(tmp, path)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
    return path.read_bytes()


@dataclass(frozen=True)
class Settings:
    # One per user wherever a command is run (datadir.default_data_dir); MYCARENET_DATA_DIR or --data-dir
    # name another.
    data_dir: Path = field(default_factory=default_data_dir)
    # None: a SQLite file in the data directory.
    database_url: str | None = None
    host: str = "127.0.0.1"
    max_body_bytes: int = 1_048_576
    clock_skew_seconds: int = 60
    max_timestamp_ttl_seconds: int = 300
    signature_ttl_seconds: int = 60
    upstream_timeout_seconds: float = 5.0
    # eHealth error "Environment" value.
    environment: str = "Simulation"
    server_threads: int = 16
    # Business requests (Integrated Care, MemberData, Tarification) handled at once by one process; more
    # wait their turn (0: no bound). Their work is CPU under one GIL: past a few at once, threads only
    # contend for it (MemberData, 1 gunicorn worker, 16 clients, PostgreSQL, 3 alternating pairs:
    # unbounded 53-56 req/s, bounded at 3: 63-73 req/s; 2 workers, 2 pairs: 71/96 vs 102/108).
    max_inflight: int = 3
    # Every sandbox port speaks HTTPS with a certificate from the sandbox CA, as production does; plain HTTP
    # (MYCARENET_TLS=0, `sandbox --plain-http`) is for local debugging only.
    tls: bool = True
    # The WS-Security tokens the business services accept: "saml-hok" (an eHealth STS holder-of-key
    # assertion: production's, the default), "x509" (a bare certificate, the sandbox's simple mode, asked for
    # explicitly: `sandbox --tokens x509,saml-hok`), or both. The STS takes an identity certificate, the other
    # stubs either kind.
    accepted_tokens: str = "saml-hok"
    # How often the National Register's mutation feed is read (also once at start).
    mutation_sync_seconds: float = 60.0
    # How long CoBrHa answers (providers, VISA, organisations) are reused; 0 asks every time.
    cobrha_cache_seconds: float = 300.0
    # How long National Register persons are reused (forgotten at once when a mutation names them).
    nr_cache_seconds: float = 60.0
    # STS tokens: the validity given when the request names none, and the most it may ask for (public
    # clients ask for 24 hours).
    sts_token_seconds: int = 3600
    sts_max_token_seconds: int = 86_400
    # The inspector (a sandbox tool: it keeps every exchange's raw request and answer, NISS in clear, in the
    # owner-only inspector.sqlite3 of the data directory): on in the sandbox, off in the WSGI entry unless
    # MYCARENET_INSPECTOR=1; at most this many exchanges, none older than this.
    inspector: bool = True
    inspector_max_exchanges: int = 5000
    inspector_max_age_seconds: int = 86_400

    @classmethod
    def from_env(cls, **overrides: object) -> Settings:
        """The defaults above, then the environment (``ENVIRONMENT``; an empty variable counts as unset),
        then ``overrides`` that are not None."""
        values: dict[str, object] = {}
        for name, (variable, parse) in ENVIRONMENT.items():
            raw = os.environ.get(variable)
            if raw:
                values[name] = parse(raw)
        values.update((k, v) for k, v in overrides.items() if v is not None)
        if "data_dir" in values:
            values["data_dir"] = Path(str(values["data_dir"]))
        return cls(**values)  # type: ignore[arg-type]

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'mycarenet.sqlite3').resolve()}"


TOKEN_KINDS = ("x509", "saml-hok")


def token_kinds(raw: str) -> tuple[str, ...]:
    """The token kinds a comma-separated setting names; an unknown one is an error, none is an error."""
    kinds = tuple(dict.fromkeys(k.strip().lower() for k in raw.split(",") if k.strip()))
    unknown = [k for k in kinds if k not in TOKEN_KINDS]
    if unknown or not kinds:
        raise ValueError(f"token kinds are {' and/or '.join(TOKEN_KINDS)}, comma-separated (got {raw!r})")
    return kinds


def _flag(raw: str) -> bool:
    return raw.strip().lower() not in ("0", "false", "no", "off")


# The environment variable each setting may come from, and how its text is read; the others are set in code.
ENVIRONMENT: dict[str, tuple[str, Callable[[str], object]]] = {
    "data_dir": ("MYCARENET_DATA_DIR", Path),
    "database_url": ("DATABASE_URL", str),
    "max_body_bytes": ("MYCARENET_MAX_BODY_BYTES", int),
    "upstream_timeout_seconds": ("MYCARENET_UPSTREAM_TIMEOUT", float),
    "server_threads": ("MYCARENET_SERVER_THREADS", int),
    "max_inflight": ("MYCARENET_MAX_INFLIGHT", int),
    "tls": ("MYCARENET_TLS", _flag),
    "accepted_tokens": ("MYCARENET_TOKENS", lambda raw: ",".join(token_kinds(raw))),
    "mutation_sync_seconds": ("MYCARENET_MUTATION_SYNC_SECONDS", float),
    "cobrha_cache_seconds": ("MYCARENET_COBRHA_CACHE_SECONDS", float),
    "nr_cache_seconds": ("MYCARENET_NR_CACHE_SECONDS", float),
    "inspector": ("MYCARENET_INSPECTOR", _flag),
    "inspector_max_exchanges": ("MYCARENET_INSPECTOR_MAX_EXCHANGES", int),
    "inspector_max_age_seconds": ("MYCARENET_INSPECTOR_MAX_AGE_SECONDS", int),
}
