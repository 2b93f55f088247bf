"""Persistent settings.

Engine settings live in ``settings.toml`` in :func:`forensic_face.paths.config_dir` under ``[engine]`` (the
fields of :class:`~forensic_face.engine.config.EngineConfig`, so the CLI and the window agree); window state,
recent galleries and recent cases live in a QSettings INI file beside it.
"""

from __future__ import annotations

import dataclasses
import logging
import tomllib
from pathlib import Path
from typing import Any

import tomli_w
from PySide6.QtCore import QSettings

from forensic_face.engine.config import EngineConfig
from forensic_face.engine.errors import ConfigError
from forensic_face.paths import config_dir

log = logging.getLogger(__name__)

SETTINGS_FILE = "settings.toml"
STATE_FILE = "gui-state.ini"
MAX_RECENT = 8


def settings_path() -> Path:
    return config_dir() / SETTINGS_FILE


def _toml_safe(data: dict[str, Any]) -> dict[str, Any]:
    """TOML has no null: drop None values (they mean "default")."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        if value is None:
            continue
        out[key] = _toml_safe(value) if isinstance(value, dict) else (list(value) if isinstance(value, tuple) else value)
    return out


def _read_toml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: cannot be read ({exc}); fix or delete the file") from None


def load_engine_config(path: Path | None = None) -> EngineConfig:
    """The saved engine settings, or the defaults when none are saved. Raises ConfigError for bad values."""
    data = _read_toml(path or settings_path()).get("engine", {})
    if not data:
        return EngineConfig()
    known = {f.name for f in dataclasses.fields(EngineConfig)}
    unknown = sorted(set(data) - known)
    if unknown:
        log.warning("ignoring unknown engine settings %s in %s", unknown, path or settings_path())
    values = {k: v for k, v in data.items() if k in known}
    return EngineConfig.from_dict(values)


def save_engine_config(config: EngineConfig, path: Path | None = None) -> Path:
    """Write ``[engine]`` into settings.toml, keeping any other tables other tools keep there."""
    path = path or settings_path()
    data = _read_toml(path) if path.is_file() else {}
    data["engine"] = _toml_safe(config.to_dict())
    tmp = path.with_suffix(".toml.tmp")
    with open(tmp, "wb") as fh:
        tomli_w.dump(data, fh)
    tmp.replace(path)
    return path


def parse_scales(text: str) -> tuple[int, ...]:
    """``"2, 4 8"`` -> ``(2, 4, 8)``; raises ConfigError with a readable message."""
    parts = [p for p in text.replace(",", " ").split() if p]
    try:
        scales = tuple(int(p) for p in parts)
    except ValueError:
        raise ConfigError(f"scales must be whole numbers such as '2, 4, 8', got {text!r}") from None
    if not scales or any(s < 1 or s > 16 for s in scales):
        raise ConfigError(f"scales must be between 1 and 16, got {text!r}")
    return tuple(sorted(set(scales)))


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
