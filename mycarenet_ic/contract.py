"""Where the checked-in contract (wsdl/, xsd/) lives, and loading its schemas once."""

from __future__ import annotations

import functools
import os
from pathlib import Path

from lxml import etree

_PACKAGE = Path(__file__).resolve().parent
# Installed, wsdl/ and xsd/ are package data beside this module; in a checkout they are at the repository's top.
ROOT = Path(os.environ.get("MYCARENET_CONTRACT_DIR",
                           _PACKAGE if (_PACKAGE / "wsdl").is_dir() else _PACKAGE.parent))
WSDL_DIR = ROOT / "wsdl"
XSD_DIR = ROOT / "xsd"


def _local_parser() -> etree.XMLParser:
    # Trusted files of our own, but still: no network, no entities.
    return etree.XMLParser(no_network=True, resolve_entities=False, load_dtd=False)


@functools.cache
def schema(name: str) -> etree.XMLSchema:
    """A compiled XML Schema for ``xsd/<name>`` (imports resolved from xsd/)."""
    return etree.XMLSchema(etree.parse(str(XSD_DIR / name), parser=_local_parser()))


def wsdl_path(name: str) -> Path:
    return WSDL_DIR / name
