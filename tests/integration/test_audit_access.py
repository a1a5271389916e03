"""Access to the audit (issue 19, item 12): ``audit show`` needs the operator's credentials (the data
directory's owner-only admin token, or that token given) and is itself audited; a wrong token is one
error line, shows nothing and leaves the audit as it was."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from mycarenet_ic.app import Platform
from mycarenet_ic.config import Settings
from mycarenet_ic.persistence.audit import AuditEntry, verify_chain
from mycarenet_ic.stubs.admin import admin_token

pytestmark = pytest.mark.integration


def _show(data_dir: Path, *extra: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if k not in ("MYCARENET_ADMIN_TOKEN", "DATABASE_URL")}
    return subprocess.run([sys.executable, "-m", "mycarenet_ic.cli", "audit", "show", "--data-dir", str(data_dir),
                           *extra], capture_output=True, text=True, timeout=120, env={**full, **(env or {})})


@pytest.fixture()
def data_dir(tmp_path: Path) -> Path:
    platform = Platform.prepared(Settings(data_dir=tmp_path / "data"))
    try:
        platform.audit.append(AuditEntry("integrated-care", "ConsultInclusions", caller="doctor:11200035003"))
    finally:
        platform.close()
    return tmp_path / "data"


def _rows(data_dir: Path) -> list[dict[str, object]]:
    platform = Platform(Settings(data_dir=data_dir))
    try:
        return platform.audit.rows()
    finally:
        platform.close()


def test_reading_the_audit_is_itself_audited(data_dir: Path) -> None:
    first = _show(data_dir)
    assert first.returncode == 0, first.stderr
    assert "ConsultInclusions" in first.stdout and "AuditShow" not in first.stdout
    rows = _rows(data_dir)
    assert [r["operation"] for r in rows] == ["ConsultInclusions", "AuditShow"]
    assert str(rows[-1]["caller"]).startswith("operator:") and "rows=1" in str(rows[-1]["detail"])
    assert "AuditShow" in _show(data_dir).stdout  # the next reader sees who read before
    platform = Platform(Settings(data_dir=data_dir))
    try:
        assert verify_chain(platform.engine).ok
    finally:
        platform.close()


@pytest.mark.parametrize("how", ["--token", "env"])
def test_a_wrong_token_shows_nothing_and_changes_nothing(data_dir: Path, how: str) -> None:
    before = _rows(data_dir)
    if how == "--token":
        refused = _show(data_dir, "--token", "not-the-token")
    else:
        refused = _show(data_dir, env={"MYCARENET_ADMIN_TOKEN": "not-the-token"})
    assert refused.returncode != 0 and refused.stdout == ""
    assert refused.stderr.startswith("error: ") and refused.stderr.count("\n") == 1
    assert "Traceback" not in refused.stderr
    assert _rows(data_dir) == before


def test_the_right_token_given_is_accepted(data_dir: Path) -> None:
    shown = _show(data_dir, env={"MYCARENET_ADMIN_TOKEN": admin_token(data_dir)})
    assert shown.returncode == 0 and "ConsultInclusions" in shown.stdout
