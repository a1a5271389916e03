"""The data seed 002's premium crosses (the CIN's billed home nursing, INASTI's independent status, the
Maribel Social funds' salaried FTE, the INAMI web application's bank accounts): the ``home_nursing`` part of
the data directory's ``scenario.json``, or of a default scenario file (the demo) before the sandbox wrote one.
"""

from __future__ import annotations

import json
from pathlib import Path

from mycarenet_ic.domain.nurse_premium import HomeNursingActivity, activity_from_dict


class NoHomeNursingData(LookupError):
    """The scenario holds no ``home_nursing`` part."""


class ScenarioHomeNursing:
    def __init__(self, scenario_file: Path, default: Path | None = None) -> None:
        self.path = Path(scenario_file)
        self.default = default

    @property
    def source(self) -> Path:
        """The file read: the data directory's scenario, else the default one."""
        return self.path if self.path.exists() or self.default is None else self.default

    def activity(self) -> HomeNursingActivity:
        """The part, checked (ValueError says what is wrong with it; OSError when the file cannot be read)."""
        source = self.source
        data = json.loads(source.read_text(encoding="utf-8"))
        part = data.get("home_nursing") if isinstance(data, dict) else None
        if part is None:
            raise NoHomeNursingData(f"{source} holds no home-nursing data (its \"home_nursing\" part)")
        try:
            return activity_from_dict(part)
        except (KeyError, TypeError) as exc:
            raise ValueError(f"{source}: incomplete home-nursing record: {exc}") from None
