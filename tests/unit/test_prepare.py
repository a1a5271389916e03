"""Building the platform creates nothing: ``prepare`` (``mycarenet-ic prepare``) makes the data directory,
its PKI, keys and schema; ``Platform`` opens them, or says what is missing and how to make it."""

from __future__ import annotations

from pathlib import Path

import pytest

from mycarenet_ic.app import NotPrepared, Platform, prepare
from mycarenet_ic.cli import main
from mycarenet_ic.config import Settings

pytestmark = pytest.mark.unit


def test_opening_a_data_directory_that_was_never_prepared_creates_nothing(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with pytest.raises(NotPrepared, match=r"no sandbox CA .*mycarenet-ic prepare --data-dir"):
        Platform(Settings(data_dir=data))
    assert not data.exists()


def test_a_database_without_the_schema_is_not_migrated_on_open(tmp_path: Path) -> None:
    data = tmp_path / "data"
    prepare(Settings(data_dir=data))
    other = Settings(data_dir=data, database_url=f"sqlite:///{tmp_path / 'other.sqlite3'}")
    with pytest.raises(NotPrepared, match=r"database schema is at nothing"):
        Platform(other)
    Platform.prepared(other).close()  # prepare migrates it; then it opens


def test_the_command_prepares_once_and_keeps_what_is_there(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "data"
    assert main(["prepare", "--data-dir", str(data)]) == 0
    assert f"prepared {data}" in capsys.readouterr().out
    ca = (data / "pki" / "ca.cert.pem").read_bytes()
    keys = {p.name: p.read_bytes() for p in (data / "secrets").iterdir()}
    assert main(["prepare", "--data-dir", str(data)]) == 0
    assert (data / "pki" / "ca.cert.pem").read_bytes() == ca
    assert {p.name: p.read_bytes() for p in (data / "secrets").iterdir()} == keys
    platform = Platform(Settings(data_dir=data))
    try:
        assert platform.pki.ca().cert_pem == ca
    finally:
        platform.close()
