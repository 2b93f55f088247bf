"""Named model weights with SHA-256 verification.

Every model file the engine loads goes through :func:`verified_path`, so a result can record exactly which
weights produced it and a swapped or damaged file is refused instead of silently used.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from forensic_face.engine.errors import WeightsIntegrityError

log = logging.getLogger(__name__)

RESOURCES_WEIGHTS_DIR = Path(__file__).resolve().parents[2] / "resources" / "weights"
MANIFEST_PATH = RESOURCES_WEIGHTS_DIR / "manifest.json"


def sha256_of(path: str | Path, chunk_bytes: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(chunk_bytes), b""):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True)
class WeightsEntry:
    """One shipped model file: where it is, what its bytes hash to, and how it was made."""

    name: str
    path: Path
    sha256: str
    description: str = ""


def verify_file(path: str | Path, expected_sha256: str, what: str = "model file") -> str:
    """Check that ``path`` exists and hashes to ``expected_sha256``; return the hash."""
    path = Path(path)
    if not path.is_file():
        raise WeightsIntegrityError(f"{what} {path} is missing; reinstall forensic_face or restore the file")
    actual = sha256_of(path)
    if actual != expected_sha256:
        raise WeightsIntegrityError(
            f"{what} {path} has SHA-256 {actual}, expected {expected_sha256}: the file is damaged or was "
            "replaced; reinstall forensic_face or restore the original file"
        )
    return actual


@lru_cache(maxsize=1)
def _manifest() -> dict[str, dict[str, object]]:
    if not MANIFEST_PATH.is_file():
        return {}
    try:
        with open(MANIFEST_PATH, encoding="utf-8") as fh:
            data = json.load(fh)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise WeightsIntegrityError(f"the weights manifest {MANIFEST_PATH} cannot be read ({exc}); reinstall "
                                    "forensic_face or restore the file") from None
    weights = data.get("weights") if isinstance(data, dict) else None
    if not isinstance(weights, dict) or not all(isinstance(e, dict) and isinstance(e.get("file"), str)
                                                and isinstance(e.get("sha256"), str) for e in weights.values()):
        raise WeightsIntegrityError(f"the weights manifest {MANIFEST_PATH} is damaged (expected {{\"weights\": "
                                    "{name: {\"file\", \"sha256\"}}}); reinstall forensic_face or restore the file")
    return dict(weights)


def shipped_weights(name: str) -> WeightsEntry:
    """Look up a model shipped in ``resources/weights`` by name (see manifest.json)."""
    manifest = _manifest()
    if name not in manifest:
        raise WeightsIntegrityError(
            f"no shipped weights named {name!r} in {MANIFEST_PATH}; known: {sorted(manifest) or 'none'}"
        )
    entry = manifest[name]
    return WeightsEntry(
        name=name,
        path=RESOURCES_WEIGHTS_DIR / str(entry["file"]),
        sha256=str(entry["sha256"]),
        description=str(entry.get("description", "")),
    )


def verified_path(name: str) -> tuple[Path, str]:
    """Path and verified SHA-256 of a shipped model."""
    entry = shipped_weights(name)
    return entry.path, verify_file(entry.path, entry.sha256, what=f"weights {name!r}")
