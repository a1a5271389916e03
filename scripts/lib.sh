# Shared by scripts/test and scripts/sandbox: find Python 3.11, keep .venv in step with setup.cfg,
# and start a private PostgreSQL server for the tests. Sourced, not run.

_as_root() { [ "$(id -u)" = 0 ]; }

find_python() {
  for candidate in "${PYTHON:-}" python3.11 python3; do
    [ -n "$candidate" ] || continue
    if command -v "$candidate" >/dev/null 2>&1 &&
       "$candidate" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' 2>/dev/null; then
      PY=$candidate
      return 0
    fi
  done
  if _as_root && command -v apt-get >/dev/null 2>&1; then
    echo "== installing Python 3.11 from Debian" >&2
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3.11 python3.11-venv >/dev/null
    PY=python3.11
    return 0
  fi
  echo "error: Python 3.11 is required (spyne 2.14 does not import on 3.12+)" >&2
  return 1
}

# ensure_venv EXTRAS: .venv with the project installed (editable) with those extras.
ensure_venv() {
  local extras=$1
  find_python
  if [ ! -x .venv/bin/python ]; then
    echo "== creating .venv with $PY" >&2
    if ! "$PY" -m venv .venv 2>/dev/null; then
      rm -rf .venv
      if _as_root && command -v apt-get >/dev/null 2>&1; then
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv python3.11-venv >/dev/null || true
      fi
      "$PY" -m venv .venv
    fi
  fi
  local stamp=".venv/.installed-${extras:-base}"
  local want
  want=$(cat setup.cfg setup.py pyproject.toml | sha256sum | cut -c1-16)
  if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    echo "== installing the project into .venv (${extras:-base})" >&2
    .venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip >/dev/null
    local target="."
    [ -z "$extras" ] || target=".[$extras]"
    if ! .venv/bin/python -m pip install -q --disable-pip-version-check -e "$target" >.venv/pip.log 2>&1; then
      cat .venv/pip.log >&2
      return 1
    fi
    echo "$want" > "$stamp"
  fi
}

_free_port() {
  .venv/bin/python -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# ensure_chromium: Debian's headless browser and its driver for the web application's browser tests
# (tests/integration/test_web.py), installed when missing and running as root. Without them the tests are
# skipped locally and fail in CI (CI=true).
ensure_chromium() {
  if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then return 0; fi
  if _as_root && command -v apt-get >/dev/null 2>&1; then
    echo "== installing chromium and chromium-driver from Debian" >&2
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null
  else
    echo "warning: no chromium/chromedriver here and not root: the browser tests will be skipped" >&2
  fi
}

# ensure_postgres: start a throw-away PostgreSQL server on 127.0.0.1 (Debian's postgresql package,
# installed when missing and running as root) and export MYCARENET_TEST_POSTGRES_URL.
ensure_postgres() {
  if [ -n "${MYCARENET_TEST_POSTGRES_URL:-}" ]; then return 0; fi
  local bindir
  bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
  if [ -z "$bindir" ]; then
    if _as_root && command -v apt-get >/dev/null 2>&1; then
      echo "== installing PostgreSQL from Debian" >&2
      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
      bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
    fi
  fi
  if [ -z "$bindir" ]; then
    echo "warning: no PostgreSQL server here and not root: the PostgreSQL tests will be skipped" >&2
    return 0
  fi
  PG_TMP=$(mktemp -d /tmp/mycarenet-pg.XXXXXX)
  local run=()
  if _as_root; then
    id postgres >/dev/null 2>&1 || useradd --system --home-dir /var/lib/postgresql postgres
    chown postgres "$PG_TMP"
    run=(runuser -u postgres --)
  fi
  local port
  port=$(_free_port)
  "${run[@]}" "$bindir/initdb" -D "$PG_TMP/data" -A trust -U postgres --no-sync >"$PG_TMP/initdb.log" 2>&1 ||
    { cat "$PG_TMP/initdb.log" >&2; return 1; }
  "${run[@]}" "$bindir/pg_ctl" -D "$PG_TMP/data" -l "$PG_TMP/server.log" -w -t 60 \
    -o "-p $port -k $PG_TMP -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200" start >/dev/null ||
    { cat "$PG_TMP/server.log" >&2; return 1; }
  PG_STOP=("${run[@]}" "$bindir/pg_ctl" -D "$PG_TMP/data" -m fast -w stop)
  trap 'stop_postgres' EXIT
  export MYCARENET_TEST_POSTGRES_URL="postgresql://postgres@127.0.0.1:$port/postgres"
  echo "== PostgreSQL $("$bindir/postgres" --version | awk '{print $3}') on 127.0.0.1:$port" >&2
}

stop_postgres() {
  if [ -n "${PG_TMP:-}" ]; then
    "${PG_STOP[@]}" >/dev/null 2>&1 || true
    rm -rf "$PG_TMP"
  fi
}
