"""Where forensic_face keeps things. Each location can be moved with an environment variable."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

APP_NAME = "forensic_face"

CONFIG_DIR_ENV = "FORENSIC_FACE_CONFIG_DIR"
CACHE_DIR_ENV = "FORENSIC_FACE_CACHE_DIR"
DATA_DIR_ENV = "FORENSIC_FACE_DATA_DIR"
# The read-only research data (LFW) used by tests, benchmarks and training.
DATASETS_ENV = "FORENSIC_FACE_DATA"

PROJECT_ROOT = Path(__file__).resolve().parent.parent
RESOURCES_DIR = PROJECT_ROOT / "resources"


def _dir(env: str, default: str) -> Path:
    value = os.environ.get(env)
    path = Path(value) if value else Path(default)
    path.mkdir(parents=True, exist_ok=True)
    return path


def config_dir() -> Path:
    """User settings (settings.toml)."""
    return _dir(CONFIG_DIR_ENV, platformdirs.user_config_dir(APP_NAME))


def cache_dir() -> Path:
    """Derived data that can always be recomputed: converted weights, template caches."""
    return _dir(CACHE_DIR_ENV, platformdirs.user_cache_dir(APP_NAME))


def data_dir() -> Path:
    """Case files (evidence lists, audit logs, results)."""
    return _dir(DATA_DIR_ENV, platformdirs.user_data_dir(APP_NAME))


def datasets_dir() -> Path:
    """Research data (``lfw/``): ``$FORENSIC_FACE_DATA`` or ``../shared/data`` beside the project."""
    value = os.environ.get(DATASETS_ENV)
    return Path(value) if value else PROJECT_ROOT.parent / "shared" / "data"


def lfw_dir() -> Path:
    return datasets_dir() / "lfw"
