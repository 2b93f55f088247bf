"""User settings: ``settings.toml`` in :func:`forensic_face.paths.config_dir`, its ``[engine]`` table holding
the :class:`~forensic_face.engine.config.EngineConfig` fields the user chose, and ``examiner``, the name of who
works on this computer (the actor of the audit entries they write). The CLI and the window read and
write it through these functions only, so they agree."""

from __future__ import annotations

import logging
import tomllib
from pathlib import Path
from typing import Any

import tomli_w

from forensic_face.engine import ConfigError, EngineConfig
from forensic_face.paths import CONFIG_DIR_ENV, atomic_write, config_dir

log = logging.getLogger(__name__)

SETTINGS_FILE = "settings.toml"


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
    if not path.exists():
        return {}
    if not path.is_file():
        raise ConfigError(f"{path}: is not a file (a folder or a device); remove it, or set "
                          f"{CONFIG_DIR_ENV} to another folder")
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot be read as TOML (UTF-8 text) ({exc}); fix or delete the file") from None


def load_settings(path: Path | None = None) -> EngineConfig:
    """The saved engine settings, or the defaults when none are saved. Each setting is checked against its
    field in :class:`EngineConfig` (type, bounds, choices); a bad one is a ConfigError naming the file, the
    setting, its value and what is allowed. Unknown settings are logged and skipped (a newer version's)."""
    path = path or settings_path()
    table = _read_toml(path)
    if "engine" not in table:
        return EngineConfig()
    try:
        return EngineConfig.from_dict(table["engine"], ignore_unknown=True)
    except ConfigError as exc:
        raise ConfigError(f"{path}: [engine] {exc}; fix or delete the setting") from None


def _update_toml(path: Path, key: str, value: Any) -> Path:
    """Set one top-level key of settings.toml, keeping everything else (other tables other tools keep there)."""
    data = _read_toml(path) if path.is_file() else {}
    data[key] = value
    with atomic_write(path) as tmp, open(tmp, "wb") as fh:
        tomli_w.dump(data, fh)
    return path


def save_settings(config: EngineConfig, path: Path | None = None) -> Path:
    """Write ``[engine]`` into settings.toml, keeping any other tables other tools keep there."""
    return _update_toml(path or settings_path(), "engine", _toml_safe(config.to_dict()))


def load_examiner(path: Path | None = None) -> str:
    """The examiner's name saved in settings.toml (``examiner = "..."``), or "" when none is saved."""
    path = path or settings_path()
    name = _read_toml(path).get("examiner", "")
    if not isinstance(name, str):
        raise ConfigError(f"{path}: examiner must be a name in quotes (text), got {name!r}; fix or delete the setting")
    return name.strip()


def save_examiner(name: str, path: Path | None = None) -> Path:
    """Save the examiner's name (the actor of the audit entries written on this computer)."""
    if not name.strip():
        raise ConfigError("the examiner's name is empty; give the name the audit trail should record")
    return _update_toml(path or settings_path(), "examiner", name.strip())
