"""User settings: ``settings.toml`` in :func:`forensic_face.paths.config_dir`, its ``[engine]`` table holding
the :class:`~forensic_face.engine.config.EngineConfig` fields the user chose. The CLI and the window read and
write it through these functions only, so they agree."""

from __future__ import annotations

import dataclasses
import logging
import tomllib
from pathlib import Path
from typing import Any

import tomli_w

from forensic_face.engine.config import EngineConfig
from forensic_face.engine.errors import ConfigError
from forensic_face.paths import config_dir

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
    if not path.is_file():
        return {}
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: cannot be read ({exc}); fix or delete the file") from None


def load_settings(path: Path | None = None) -> EngineConfig:
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


def save_settings(config: EngineConfig, path: Path | None = None) -> Path:
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
