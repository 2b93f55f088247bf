"""User settings: a TOML file in the config dir that holds the engine defaults the user chose."""

from __future__ import annotations

import logging
import tomllib
from pathlib import Path

import tomli_w

from forensic_face.engine.config import EngineConfig
from forensic_face.engine.errors import ConfigError
from forensic_face.paths import config_dir

log = logging.getLogger(__name__)


def settings_path() -> Path:
    return config_dir() / "settings.toml"


def _strip_none(data: dict) -> dict:
    return {k: (_strip_none(v) if isinstance(v, dict) else v) for k, v in data.items() if v is not None}


def load_settings(path: Path | None = None) -> EngineConfig:
    """The user's saved engine settings, or the defaults when there is no settings file."""
    path = path or settings_path()
    if not path.is_file():
        return EngineConfig()
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
        return EngineConfig.from_dict(data.get("engine", {}))
    except (tomllib.TOMLDecodeError, TypeError) as exc:
        raise ConfigError(f"settings file {path} is invalid ({exc}); fix or delete it to use the defaults") from None


def save_settings(config: EngineConfig, path: Path | None = None) -> Path:
    path = path or settings_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".toml.tmp")
    with open(tmp, "wb") as fh:
        tomli_w.dump({"engine": _strip_none(config.to_dict())}, fh)
    tmp.replace(path)
    return path
