"""On-disk cache of gallery hypothesis templates.

Gallery templates depend on the probe size (resolution matching), the scale, the recognizer weights and the
degradation settings, so each entry is keyed by all of them. Entries are safetensors files whose metadata
repeats the full key and a SHA-256 of the tensor bytes: an entry that fails to parse, belongs to another key,
or whose bytes do not hash as recorded is deleted and recomputed, never trusted.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from forensic_face.paths import atomic_write

log = logging.getLogger(__name__)

CACHE_FORMAT = "1"


def cache_key(**parts: Any) -> str:
    """A stable key from named parts (JSON, sorted keys)."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def _tensor_digest(tensor: torch.Tensor) -> str:
    return hashlib.sha256(tensor.detach().cpu().contiguous().numpy().tobytes()).hexdigest()


class TemplateCache:
    """A folder of ``<key>.safetensors`` files. ``root=None`` disables caching."""

    def __init__(self, root: Path | None) -> None:
        self.root = root
        self.hits = 0
        self.misses = 0
        if root is not None:
            root.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        if self.root is None:
            raise RuntimeError("template cache is disabled")
        return self.root / key[:2] / f"{key}.safetensors"

    def load(self, key: str) -> torch.Tensor | None:
        """The cached templates for ``key``, or None on a miss or an untrustworthy entry (which is removed)."""
        if self.root is None:
            return None
        path = self._path(key)
        if not path.is_file():
            self.misses += 1
            return None
        try:
            from safetensors import safe_open

            with safe_open(str(path), framework="pt") as fh:
                meta = fh.metadata() or {}
            tensor = load_file(str(path))["templates"]
            valid = (
                meta.get("format") == CACHE_FORMAT
                and meta.get("key") == key
                and meta.get("sha256") == _tensor_digest(tensor)
                and bool(torch.isfinite(tensor).all())
            )
        except (SafetensorError, OSError, KeyError, ValueError, RuntimeError) as exc:
            log.warning("template cache entry %s is unreadable (%s); recomputing", path, exc)
            valid, tensor = False, None
        if not valid:
            log.warning("template cache entry %s failed verification; recomputing", path)
            path.unlink(missing_ok=True)
            self.misses += 1
            return None
        self.hits += 1
        return tensor

    def store(self, key: str, templates: torch.Tensor) -> None:
        if self.root is None:
            return
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tensor = templates.detach().to("cpu", torch.float32).contiguous()
        meta = {"format": CACHE_FORMAT, "key": key, "sha256": _tensor_digest(tensor)}
        # Not flushed to disk: a damaged entry fails its SHA-256 when loaded and is computed again.
        with atomic_write(path, durable=False) as tmp:
            save_file({"templates": tensor}, str(tmp), metadata=meta)

    def describe(self) -> str:
        if self.root is None:
            return "template cache off"
        count = sum(1 for _ in self.root.rglob("*.safetensors"))
        return f"template cache: {count} entries in {self.root}"
