"""How a trained network is shipped: its file copied into resources/weights under its manifest name, checked by
loading it as the engine will, and recorded in manifest.json with its SHA-256 and the command that trained it.
``ship_sr`` and ``ship_recognizer`` say what their networks' entries hold; the rule is written here once."""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Callable, Collection, Mapping
from pathlib import Path
from typing import Any

from forensic_face.engine import sha256_of
from forensic_face.paths import atomic_write

log = logging.getLogger(__name__)

#: ``describe(target, previous)``: loads the copied file ``target`` strictly (raising for a file the engine cannot
#: load) and returns the manifest entry's fields; ``previous`` is the entry it replaces, if any.
Describe = Callable[[Path, Mapping[str, Any] | None], dict[str, Any]]


def training_command(command: str, config: Mapping[str, Any], defaults: Mapping[str, Any],
                     not_in_command: Collection[str]) -> str:
    """``command`` followed by a ``--flag value`` for each setting of ``config`` that differs from ``defaults``
    (a list as comma-separated values), leaving out ``not_in_command`` (settings that do not change what is
    trained): the command line that reproduces a training run."""
    parts = [command]
    for key, value in config.items():
        if key in not_in_command or defaults.get(key) == value:
            continue
        shown = ",".join(value) if isinstance(value, list) else value
        parts.append(f"--{key.replace('_', '-')} {shown}")
    return " ".join(parts)


def ship_weights(source: Path, name: str, weights_dir: Path, manifest_path: Path, describe: Describe) -> Path:
    """Copy ``source`` to ``weights_dir/<name>.safetensors``, check it and record it as manifest entry ``name``:
    the fields ``describe`` returns plus ``file`` and ``sha256``. Entries of other networks are kept. Returns the
    shipped file."""
    weights_dir.mkdir(parents=True, exist_ok=True)
    target = weights_dir / f"{name}.safetensors"
    shutil.copyfile(source, target)
    manifest = json.loads(manifest_path.read_text()) if manifest_path.is_file() else {"weights": {}}
    entries = manifest.setdefault("weights", {})
    entries[name] = {**describe(target, entries.get(name)), "file": target.name, "sha256": sha256_of(target)}
    with atomic_write(manifest_path) as tmp:
        tmp.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    log.info("shipped %s as %s", source, target)
    return target
