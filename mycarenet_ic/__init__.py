"""A local MyCareNet in a box: signed SOAP services and eHealth stubs."""

from __future__ import annotations

import importlib.util
import sys
from importlib.machinery import ModuleSpec
from pathlib import Path
from typing import Any

__version__ = "0.1.0"

_HERE = Path(__file__).resolve().parent
_CHECKOUT_STUBS = _HERE.parent / "stubs"


class _CheckoutStubs:
    """``mycarenet_ic.stubs`` of a source checkout used as it is: the repository's top-level ``stubs/``.

    An install (editable or not) maps that name itself (setup.py). A checkout whose root is merely on
    ``sys.path`` (tests run against an install made elsewhere, as tox does) has no such mapping; this
    finder, consulted last and for that one name only, gives it. Nothing else of the repository's top
    level becomes part of the package.
    """

    name = f"{__name__}.stubs"

    @classmethod
    def find_spec(cls, fullname: str, path: Any = None, target: Any = None) -> ModuleSpec | None:
        if fullname != cls.name:
            return None
        return importlib.util.spec_from_file_location(fullname, _CHECKOUT_STUBS / "__init__.py",
                                                      submodule_search_locations=[str(_CHECKOUT_STUBS)])


# Only in a checkout: an installed copy has mycarenet_ic/stubs, and no setup.py beside the package.
_IN_CHECKOUT = not (_HERE / "stubs").is_dir() and (_HERE.parent / "setup.py").is_file()
if _IN_CHECKOUT and (_CHECKOUT_STUBS / "__init__.py").is_file() and _CheckoutStubs not in sys.meta_path:
    sys.meta_path.append(_CheckoutStubs)
