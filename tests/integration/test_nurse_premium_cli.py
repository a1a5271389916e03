"""``mycarenet-ic premium nurses``: seed 002's home-nurse premium per provider from the scenario's billed home
nursing (the report, its CSV, one provider), audited as ``platform:premium``; errors in one ``error: …`` line,
nothing audited. The real command, in its own process, on a prepared data directory (SQLite)."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mycarenet_ic.app import Platform
from mycarenet_ic.config import Settings
from mycarenet_ic.stubs.scenario import DEMO_FILE

pytestmark = pytest.mark.integration
DE_BACKER, FONTAINE, VOS, MATHIEU = "41211142404", "41214805404", "41231829404", "41251922404"


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data = tmp_path_factory.mktemp("premium") / "data"
    Platform.prepared(Settings(data_dir=data)).close()
    return data


def _run(data: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "MYCARENET_DATA_DIR")}
    return subprocess.run([sys.executable, "-m", "mycarenet_ic.cli", "premium", "nurses", "--data-dir", str(data),
                           *args], capture_output=True, text=True, env=env, timeout=120, check=False)


def _premium_rows(data: Path) -> list[dict[str, object]]:
    platform = Platform(Settings(data_dir=data))
    try:
        return [r for r in platform.audit.rows(limit=10_000) if r["operation"] == "NursePremium"]
    finally:
        platform.close()


def _one_error_line(done: subprocess.CompletedProcess[str], code: int) -> str:
    assert done.returncode == code, done
    assert "Traceback" not in done.stderr and done.stdout == ""
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    return lines[0]


def test_the_report_per_nurse_from_the_demo_billing_is_audited(data_dir: Path) -> None:
    before = len(_premium_rows(data_dir))
    done = _run(data_dir)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("Home-nurse premium 2020 (seed 002)") and "739 contacts = 1 FTE" in lines[0]
    assert "bank accounts registered by 2021-04-21" in lines[0]
    by_nurse = {line.split()[0]: line for line in lines[2:-1]}
    assert len(by_nurse) == 6
    assert by_nurse[DE_BACKER].split()[1:3] == ["9", "819"] and by_nurse[DE_BACKER].endswith(" 985.00")
    assert by_nurse[FONTAINE].split()[3:6] == ["0.5007", "0.2500", "0.2507"] and by_nurse[FONTAINE].endswith(
        " 246.92")
    assert by_nurse[MATHIEU].endswith("refused: not independent in the period (INASTI)")
    # 985.00 + 246.92 + 133.29
    assert lines[-1] == "6 provider(s), 3 paid, 1365.21 EUR gross"
    rows = _premium_rows(data_dir)
    assert len(rows) == before + 1
    assert rows[-1]["caller"] == "platform:premium" and rows[-1]["service"] == "premium"
    assert "premium 2020 provider=all: 6 provider(s), 3 paid, 1365.21 EUR gross" in str(rows[-1]["detail"])
    assert DE_BACKER in str(rows[-1]["detail"])  # §24: about which providers


def test_csv_of_one_nurse(data_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "premium.csv"
    done = _run(data_dir, "--nurse", FONTAINE, "--csv", str(out))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"1 provider(s) -> {out}"
    with out.open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert rows == [{"nihii": FONTAINE, "patients": "5", "patient_contacts": "370", "theoretical_fte": "0.5007",
                     "salaried_fte": "0.2500", "fte_due": "0.2507", "independent": "complementary",
                     "account_registered": "2021-04-21", "entitled": "yes", "reason": "", "gross_eur": "246.92"}]
    assert f"provider={FONTAINE}: 1 provider(s)" in str(_premium_rows(data_dir)[-1]["detail"])


def test_the_data_directorys_scenario_wins_over_the_demo(tmp_path: Path) -> None:
    data = tmp_path / "data"
    Platform.prepared(Settings(data_dir=data)).close()
    scenario = json.loads(DEMO_FILE.read_text(encoding="utf-8"))
    for provider in scenario["home_nursing"]["providers"]:
        if provider["nihii"] == VOS:
            provider["account_registered"] = None
    (data / "scenario.json").write_text(json.dumps(scenario), encoding="utf-8")
    done = _run(data, "--nurse", VOS)
    assert done.returncode == 0, done.stderr
    [line] = [line for line in done.stdout.splitlines() if line.startswith(VOS)]
    assert line.endswith("0.00  refused: no bank account registered in the INAMI web application")


@pytest.mark.parametrize("args,code,message", [
    (["--year", "2021"], 2, "error: no home-nurse premium for 2021: seed 002 sets one, for 2020"),
    (["--nurse", "4121114240"], 2, "error: --nurse: must have 11 digits"),
    (["--nurse", "41225988409"], 2, "error: no billed home nursing and no status for provider 41225988409"),
    (["--year", "twenty"], 2, None),  # argparse's own usage error
])
def test_bad_options_are_one_error_line_and_nothing_is_audited(data_dir: Path, args: list[str], code: int,
                                                               message: str | None) -> None:
    before = len(_premium_rows(data_dir))
    done = _run(data_dir, *args)
    if message is None:
        assert done.returncode == code and "Traceback" not in done.stderr and "invalid int value" in done.stderr
    else:
        assert _one_error_line(done, code) == message
    assert len(_premium_rows(data_dir)) == before


@pytest.mark.parametrize("change,message", [
    (lambda s: s.pop("home_nursing"), "holds no home-nursing data"),
    (lambda s: s["home_nursing"]["providers"][0].update(salaried_fte="2"), "salaried_fte must be a decimal text"),
    (lambda s: s["home_nursing"]["billed_services"][0].pop("days"), "incomplete home-nursing record: 'days'"),
])
def test_unusable_home_nursing_data_is_one_error_line(tmp_path: Path, change: object, message: str) -> None:
    data = tmp_path / "data"
    Platform.prepared(Settings(data_dir=data)).close()
    scenario = json.loads(DEMO_FILE.read_text(encoding="utf-8"))
    change(scenario)  # type: ignore[operator]
    (data / "scenario.json").write_text(json.dumps(scenario), encoding="utf-8")
    assert message in _one_error_line(_run(data), 1)
    assert _premium_rows(data) == []
