"""The window's own state: geometry, recent galleries and recent cases, in a QSettings INI file beside
``settings.toml`` (engine settings are :mod:`forensic_face.settings`, shared with the CLI)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from PySide6.QtCore import QSettings

from forensic_face.paths import config_dir

log = logging.getLogger(__name__)

STATE_FILE = "gui-state.ini"
MAX_RECENT = 8


class WindowState:
    """Geometry, recent galleries and recent cases (QSettings INI file in the config folder)."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or (config_dir() / STATE_FILE)
        self.qsettings = QSettings(str(self.path), QSettings.Format.IniFormat)

    def _recent(self, key: str) -> list[str]:
        value = self.qsettings.value(key, [])
        if isinstance(value, str):
            value = [value] if value else []
        return [str(v) for v in (value or [])]

    def _push(self, key: str, item: str) -> list[str]:
        items = [item] + [i for i in self._recent(key) if i != item]
        items = items[:MAX_RECENT]
        self.qsettings.setValue(key, items)
        self.qsettings.sync()
        return items

    def recent_galleries(self) -> list[str]:
        return self._recent("recent/galleries")

    def add_recent_gallery(self, folder: str | Path) -> list[str]:
        return self._push("recent/galleries", str(folder))

    def recent_cases(self) -> list[str]:
        return self._recent("recent/cases")

    def add_recent_case(self, case: str | Path) -> list[str]:
        return self._push("recent/cases", str(case))

    def value(self, key: str, default: Any = None) -> Any:
        return self.qsettings.value(key, default)

    def set_value(self, key: str, value: Any) -> None:
        self.qsettings.setValue(key, value)
        self.qsettings.sync()
