"""Where forensic_face keeps things. Each location can be moved with an environment variable."""

from __future__ import annotations

import errno
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
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


def _location(env: str, default: str) -> Path:
    value = os.environ.get(env)
    return Path(value) if value else Path(default)


def _dir(env: str, default: str) -> Path:
    """The folder ``$env`` names (else ``default``), created when missing. A path that is a file, or a folder
    this user cannot write, is an OSError that names the variable (the CLI and the window show it)."""
    path = _location(env, default)
    if path.exists() and not path.is_dir():
        raise NotADirectoryError(errno.ENOTDIR, f"is not a folder; set {env} to a folder", str(path))
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise type(exc)(exc.errno, f"cannot be created ({exc.strerror}); set {env} to a writable folder",
                        str(path)) from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise PermissionError(errno.EACCES, f"is not writable; set {env} to a writable folder", str(path))
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


def keep_matplotlib_in_cache() -> None:
    """Point matplotlib's config and font cache (``MPLCONFIGDIR``) into our cache folder, unless the user set it:
    it otherwise writes ``~/.cache/matplotlib``, outside the folders forensic_face says it uses. Call before
    matplotlib is imported; matplotlib creates the folder when it first needs it."""
    os.environ.setdefault("MPLCONFIGDIR", str(_location(CACHE_DIR_ENV, platformdirs.user_cache_dir(APP_NAME))
                                              / "matplotlib"))


def datasets_dir() -> Path:
    """Research data (``lfw/``): ``$FORENSIC_FACE_DATA`` or ``../shared/data`` beside the project."""
    value = os.environ.get(DATASETS_ENV)
    return Path(value) if value else PROJECT_ROOT.parent / "shared" / "data"


def lfw_dir() -> Path:
    return datasets_dir() / "lfw"


@contextmanager
def atomic_write(target: str | Path, durable: bool = True) -> Iterator[Path]:
    """Yield a new temporary path beside ``target`` to write; when the block ends it is renamed onto ``target`` in
    one step (flushed to disk first when ``durable``), and if the block raises it is removed. A crash, a full disk
    or a killed process never leaves a half-written file under the real name, two writers never share a
    temporary name, and the file gets the ordinary mode (0666 minus the umask), not the 0600 of
    ``tempfile.mkstemp``. The temporary name ends like ``target`` (writers such as ``numpy.savez`` add their
    suffix otherwise). ``durable=False`` suits caches that check their entries when reading them."""
    target = Path(target)
    temp = target.parent / f".{target.name}.{secrets.token_hex(4)}.part{target.suffix}"
    os.close(os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    try:
        yield temp
        if durable:
            with open(temp, "rb+") as written:  # on disk before the rename makes it the target
                os.fsync(written.fileno())
        os.replace(temp, target)
    finally:
        temp.unlink(missing_ok=True)
