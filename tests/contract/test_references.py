"""No schema names a file that does not exist; no setup file points at a document the repository does not hold
(issue 18 item 4): every ``xs:import``/``xs:include`` ``schemaLocation`` and ``wsdl:import`` ``location`` of the
repository's WSDL and XSD files (``wsdl/``, ``xsd/``, ``tests/fidelity/xsd/``) is a file beside it; what
``setup.cfg`` and ``setup.py`` name (the long description, the package directories, every package-data pattern)
and ``tox.ini`` runs is there; every local file the README links, shows or names by its repository path exists."""

from __future__ import annotations

import configparser
import re
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from lxml import etree

pytestmark = pytest.mark.contract

ROOT = Path(__file__).resolve().parents[2]
XS = "http://www.w3.org/2001/XMLSchema"
WSDL = "http://schemas.xmlsoap.org/wsdl/"
CONTRACT_DIRS = (ROOT / "wsdl", ROOT / "xsd", ROOT / "tests" / "fidelity" / "xsd")
CONTRACT_FILES = sorted(p for d in CONTRACT_DIRS for p in (*d.glob("*.xsd"), *d.glob("*.wsdl")))
# Where setup.py installs what is not under mycarenet_ic/ (its package_dir).
PACKAGE_DIRS = {"mycarenet_ic.stubs": "stubs", "mycarenet_ic.wsdl": "wsdl", "mycarenet_ic.xsd": "xsd"}
# The README's paths in backquotes that are the repository's (the others are the data directory's or a user's).
SUBCOMMANDS = {"check"}  # ruff's
REPO_TOPS = ("mycarenet_ic/", "tests/", "benchmarks/", "scripts/", "wsdl/", "xsd/", "stubs/", "docs/")


def references(path: Path) -> list[tuple[str, str]]:
    """(what, location) of every schema or WSDL a contract file names."""
    tree = etree.parse(str(path), parser=etree.XMLParser(no_network=True, resolve_entities=False))
    found = [(etree.QName(el).localname, el.get("schemaLocation") or "")
             for el in tree.iter(f"{{{XS}}}import", f"{{{XS}}}include", f"{{{XS}}}redefine")
             if el.get("schemaLocation") is not None]
    return found + [("wsdl:import", el.get("location") or "") for el in tree.iter(f"{{{WSDL}}}import")]


def test_the_contract_files_are_found() -> None:
    assert {p.parent for p in CONTRACT_FILES} == set(CONTRACT_DIRS)
    assert sum(len(references(p)) for p in CONTRACT_FILES) > 20  # the walk sees the imports


@pytest.mark.parametrize("path", CONTRACT_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_schema_location_is_a_file_of_the_repository(path: Path) -> None:
    for what, location in references(path):
        parts = urlsplit(location)
        assert not parts.scheme and not parts.netloc, f"{path.name}: {what} {location!r} is not a local file"
        target = (path.parent / parts.path).resolve()
        assert target.is_file(), f"{path.name}: {what} {location!r}: no {target.relative_to(ROOT)}"
        assert ROOT in target.parents, f"{path.name}: {what} {location!r} is outside the repository"
        etree.parse(str(target), parser=etree.XMLParser(no_network=True, resolve_entities=False))


def test_every_schema_compiles_from_the_repository_alone() -> None:
    for path in sorted(p for p in CONTRACT_FILES if p.suffix == ".xsd"):
        etree.XMLSchema(etree.parse(str(path), parser=etree.XMLParser(no_network=True, resolve_entities=False)))


def _setup_cfg() -> configparser.ConfigParser:
    cfg = configparser.ConfigParser(interpolation=None)
    cfg.read(ROOT / "setup.cfg")
    return cfg


def _package_dir(package: str) -> Path:
    return ROOT / PACKAGE_DIRS.get(package, package.replace(".", "/"))


def test_setup_cfg_names_files_the_repository_holds() -> None:
    cfg = _setup_cfg()
    for key in ("long_description", "license_files", "license_file"):
        value = cfg.get("metadata", key, fallback="")
        if value.startswith("file:"):
            for name in value[len("file:"):].split(","):
                assert (ROOT / name.strip()).is_file(), f"setup.cfg {key}: no {name.strip()}"
    for package, patterns in cfg.items("options.package_data"):
        base = _package_dir(package)
        assert base.is_dir(), f"setup.cfg package_data {package}: no directory {base.relative_to(ROOT)}"
        for pattern in (p.strip() for p in patterns.split(",") if p.strip()):
            assert list(base.glob(pattern)), f"setup.cfg package_data {package}: {pattern} matches nothing"
    module = cfg.get("options.entry_points", "console_scripts").split("=")[1].split(":")[0].strip()
    assert (ROOT / (module.replace(".", "/") + ".py")).is_file(), module


def test_setup_py_package_dirs_exist() -> None:
    text = (ROOT / "setup.py").read_text()
    named = dict(re.findall(r'"(mycarenet_ic\.[a-z_]+)": "([a-z_]+)"', text))
    assert named and all(PACKAGE_DIRS[package] == folder for package, folder in named.items()), named
    for folder in set(named.values()) | {"stubs"}:
        assert (ROOT / folder).is_dir(), folder


def test_tox_runs_what_is_there() -> None:
    tox = configparser.ConfigParser(interpolation=None)
    tox.read(ROOT / "tox.ini")
    assert tox.get("testenv", "extras").strip() in _setup_cfg().options("options.extras_require")
    for command in filter(None, (c.split() for c in tox.get("testenv", "commands").split("\n"))):
        for word in command[1:]:
            if not word.startswith(("-", "{")) and word not in SUBCOMMANDS:
                assert (ROOT / word).exists(), f"tox.ini runs {' '.join(command)!r}: no {word}"


def _readme_paths() -> set[str]:
    text = (ROOT / "README.md").read_text()
    links = {m for m in re.findall(r"\]\(([^)\s]+)\)", text) if not urlsplit(m).scheme and not m.startswith("#")}
    quoted = {m.rstrip(".,:;") for m in re.findall(r"`([^`\s]+)`", text)
              if m.startswith(REPO_TOPS) and "…" not in m and "*" not in m and "<" not in m and "{" not in m}
    return {link.split("#")[0] for link in links} | {q.split(":")[0] for q in quoted}


def test_the_readme_names_only_files_the_repository_holds() -> None:
    paths = _readme_paths()
    assert any(p.startswith("docs/screenshots/") for p in paths) and any(p.startswith("tests/") for p in paths)
    missing = sorted(p for p in paths if not (ROOT / p).exists())
    assert not missing, f"README.md names files the repository does not hold: {missing}"
