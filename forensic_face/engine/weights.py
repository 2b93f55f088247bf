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
from typing import TYPE_CHECKING

from forensic_face.engine.errors import ModelFileError, WeightsIntegrityError

if TYPE_CHECKING:
    import torch.nn as nn

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


def load_safetensors_strict(model: nn.Module, path: str | Path, expected_sha256: str | None = None,
                            what: str = "model weights") -> str:
    """Load a safetensors file into ``model`` on the CPU with ``strict=True``; return the file's SHA-256.

    With ``expected_sha256`` the hash is checked first (:class:`WeightsIntegrityError` on a mismatch or a missing
    file). Tensors stored in a narrower float type (e.g. fp16) are upcast to the parameters' dtype by the copy.
    A file that is not safetensors or does not fit the architecture raises :class:`ModelFileError`.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    digest = verify_file(path, expected_sha256, what=what) if expected_sha256 else sha256_of(path)
    try:
        model.load_state_dict(load_file(str(path), device="cpu"), strict=True)
    except (OSError, ValueError, RuntimeError, SafetensorError) as exc:
        raise ModelFileError(f"{path}: not a {what} file ({exc})") from None
    return digest
