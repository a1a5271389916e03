"""Fixtures of the integration tests that start ``mycarenet-ic sandbox`` as a process of its own."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest


def sandbox_command() -> list[str]:
    """The ``mycarenet-ic`` of the Python running the tests."""
    script = Path(sys.executable).with_name("mycarenet-ic")
    return [str(script)] if script.exists() else [sys.executable, "-m", "mycarenet_ic.cli"]


def sandbox_env() -> dict[str, str]:
    """The tests' environment without their database: the sandbox process uses its data directory's."""
    # Both token kinds, as the in-process sandboxes of the tests (support.running_sandbox).
    return {k: v for k, v in os.environ.items() if k != "DATABASE_URL"} | {"MYCARENET_TOKENS": "x509,saml-hok"}


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator[Callable[..., tuple[subprocess.Popen[bytes], Path, Path]]]:
    """``spawn(*args, command=…, env=…, cwd=…)`` starts ``<command> sandbox --data-dir <tmp>/data <args>``
    (``--port 0`` unless ``args`` name a port: never the fixed default; stdout a pipe, stderr a file) and
    gives ``(process, data directory, stderr file)``; whatever still runs at the end of the test is killed."""
    procs: list[subprocess.Popen[bytes]] = []

    def start(*extra: str, command: list[str] | None = None, env: dict[str, str] | None = None,
              cwd: Path | None = None) -> tuple[subprocess.Popen[bytes], Path, Path]:
        data, err = tmp_path / "data", tmp_path / f"stderr-{len(procs)}.txt"
        if "--port" not in extra:
            extra = ("--port", "0", *extra)
        with err.open("wb") as stderr:
            proc = subprocess.Popen([*(command or sandbox_command()), "sandbox", "--data-dir", str(data), *extra],
                                    stdout=subprocess.PIPE, stderr=stderr, env=sandbox_env() if env is None else env,
                                    cwd=cwd)
        procs.append(proc)
        return proc, data, err

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
