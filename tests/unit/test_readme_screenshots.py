"""The README shows every page the browser tests photograph, and every image it shows is in the checkout
(issue 15 item 4: "Screenshots of each page go to docs/screenshots/ and the README shows them")."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit
ROOT = Path(__file__).resolve().parents[2]


def shown() -> set[str]:
    return set(re.findall(r"\]\((docs/screenshots/[^)]+\.png)\)", (ROOT / "README.md").read_text(encoding="utf-8")))


def taken() -> set[str]:
    """The names the browser tests give their screenshots (``web.shot("…")`` or ``shot="…"``)."""
    names: set[str] = set()
    for test in (ROOT / "tests" / "integration").glob("test_*.py"):
        names |= set(re.findall(r"""shot(?:\(|=)\s*["']([0-9]{2}-[a-z0-9-]+)["']""", test.read_text(encoding="utf-8")))
    return {f"docs/screenshots/{name}.png" for name in names}


def test_every_image_the_readme_shows_is_committed() -> None:
    images = shown()
    assert len(images) >= 17
    assert [i for i in sorted(images) if not (ROOT / i).is_file() or (ROOT / i).stat().st_size < 1000] == []


def test_every_page_the_browser_tests_photograph_is_in_the_readme_and_on_disk() -> None:
    pages = taken()
    assert len(pages) >= 17
    assert sorted(pages - shown()) == []
    assert [p for p in sorted(pages) if not (ROOT / p).is_file()] == []
