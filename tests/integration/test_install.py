"""A non-editable install: built as a wheel from the checkout's sources, with the venv's own setuptools and
no index, installed into a directory of its own. It holds one top-level package (``mycarenet_ic``, its
stubs and contract inside), and the sandbox runs from it alone, started in an unrelated directory."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from lxml import etree

from mycarenet_ic.sandbox import read_running
from tests.integration.conftest import sandbox_env
from tests.integration.test_sandbox_process import SERVICES, START_DEADLINE, _read_lines, _ready, stops_cleanly

pytestmark = pytest.mark.integration

CHECKOUT = Path(__file__).resolve().parents[2]
SOURCES = ("setup.py", "setup.cfg", "pyproject.toml", "README.md", "mycarenet_ic", "stubs", "wsdl", "xsd")
WSDL = "{http://schemas.xmlsoap.org/wsdl/}"
SOAP_ADDRESS = "{http://schemas.xmlsoap.org/wsdl/soap/}address"
PIP_TIMEOUT = 180


def _pip(*args: str) -> None:
    done = subprocess.run([sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input", "-q", *args],
                          capture_output=True, text=True, timeout=PIP_TIMEOUT)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The project installed from a wheel into a directory of its own (its dependencies: the venv's)."""
    tmp = tmp_path_factory.mktemp("install")
    # A copy of the sources: the build's own files (build/, egg-info) stay out of the checkout.
    src = tmp / "src"
    src.mkdir()
    skip = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    for name in SOURCES:
        path = CHECKOUT / name
        if path.is_dir():
            shutil.copytree(path, src / name, ignore=skip)
        else:
            shutil.copy2(path, src / name)
    _pip("wheel", "--no-deps", "--no-build-isolation", "--no-index", "-w", str(tmp / "wheel"), str(src))
    (wheel,) = (tmp / "wheel").glob("mycarenet_ic-*.whl")
    site = tmp / "site"
    _pip("install", "--no-deps", "--no-index", "--target", str(site), str(wheel))
    return site


def _child_env(site: Path) -> dict[str, str]:
    """Only the install ahead of the venv's site-packages: no checkout, no working directory on sys.path."""
    env = {k: v for k, v in sandbox_env().items() if k not in ("PYTHONPATH", "MYCARENET_CONTRACT_DIR")}
    return env | {"PYTHONPATH": str(site), "PYTHONSAFEPATH": "1"}


def test_the_install_has_one_top_level_package_with_its_stubs_and_contract(installed: Path) -> None:
    top = {p.name for p in installed.iterdir() if not p.name.endswith(".dist-info") and p.name != "bin"}
    assert top == {"mycarenet_ic"}  # no stubs, tests or benchmarks beside it
    package = installed / "mycarenet_ic"
    for folder, pattern in (("wsdl", "*.wsdl"), ("xsd", "*.xsd"), ("stubs/scenarios", "*.json")):
        shipped = sorted(p.name for p in (package / folder).glob(pattern))
        source = "stubs/scenarios" if folder.startswith("stubs") else folder
        assert shipped and shipped == sorted(p.name for p in (CHECKOUT / source).glob(pattern)), folder
    assert (package / "stubs" / "cobrha.py").is_file()


def test_the_installed_copy_imports_from_itself_alone(installed: Path, tmp_path: Path) -> None:
    probe = ("import json, sys, mycarenet_ic, mycarenet_ic.stubs.scenario as s, mycarenet_ic.contract as c\n"
             "try:\n    import stubs\n    top = stubs.__file__\nexcept ImportError:\n    top = None\n"
             "print(json.dumps({'package': mycarenet_ic.__file__, 'stubs': s.__file__, 'wsdl': str(c.WSDL_DIR),"
             " 'xsd': str(c.XSD_DIR), 'top_level_stubs': top, 'path': sys.path}))")
    done = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, env=_child_env(installed),
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)
    package = installed / "mycarenet_ic"
    assert Path(seen["package"]) == package / "__init__.py"
    assert Path(seen["stubs"]) == package / "stubs" / "scenario.py"
    assert (Path(seen["wsdl"]), Path(seen["xsd"])) == (package / "wsdl", package / "xsd")
    assert seen["top_level_stubs"] is None
    assert str(CHECKOUT) not in seen["path"] and "" not in seen["path"]


def test_the_sandbox_runs_from_the_installed_copy_in_another_directory(installed: Path, spawn,
                                                                       tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    proc, data, err = spawn(command=[sys.executable, "-m", "mycarenet_ic.cli"], env=_child_env(installed),
                            cwd=elsewhere)
    urls = _ready(proc, err, _read_lines(proc), time.monotonic() + START_DEADLINE)
    assert set(urls) == SERVICES and urls == read_running(data)
    # The WSDL it serves is the installed copy's, with the address it is served at.
    ca = data / "pki" / "ca.cert.pem"
    answer = requests.get(urls["integrated-care"] + "?wsdl", verify=str(ca), timeout=10)
    assert answer.status_code == 200
    served = etree.fromstring(answer.content)
    shipped = etree.parse(str(installed / "mycarenet_ic" / "wsdl" / "mycarenet-integratedcare-v1.wsdl")).getroot()
    assert served.tag == f"{WSDL}definitions"
    assert served.get("targetNamespace") == shipped.get("targetNamespace")
    assert [a.get("location") for a in served.iter(SOAP_ADDRESS)] == [urls["integrated-care"]]
    assert os.listdir(elsewhere) == []  # nothing written where it was started
    stops_cleanly(proc, err, urls, data)
