"""How values are written into a case and read back: images as PNG, arrays as NPY, a search's probe hypotheses as
an NPZ of PNGs, provenance as JSON-safe values, file paths as absolute paths, and TEXT that survives damage.

The same value always gives the same bytes, so a stored image is kept once (:mod:`forensic_face.store.blobs`).
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from forensic_face.engine import ProbeHypothesis


def encode_png(pixels: np.ndarray) -> bytes:
    arr = np.ascontiguousarray(pixels)
    if arr.dtype != np.uint8:
        arr = np.clip(arr.astype(np.float32) * (255.0 if arr.max() <= 1.0 else 1.0) + 0.5, 0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(arr).save(buffer, format="PNG")
    return buffer.getvalue()


def decode_png(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as image:
        return np.asarray(image.convert("RGB")).copy()


def encode_npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.asarray(array), allow_pickle=False)
    return buffer.getvalue()


def decode_npy(data: bytes) -> np.ndarray:
    return np.load(io.BytesIO(data), allow_pickle=False)


def encode_hypotheses(hyps: dict[int, tuple[ProbeHypothesis, ...]]) -> bytes:
    """A search's probe hypotheses: each image as a PNG (``png_<scale>_<index>``, lossless, less than half the
    size of the deflated arrays older cases hold as ``images_<scale>``) and the blur sigmas of each scale, in an
    uncompressed NPZ. The same hypotheses give the same bytes, so a probe searched again stores them once."""
    arrays: dict[str, np.ndarray] = {}
    for scale, items in hyps.items():
        if not items:
            continue
        for index, hyp in enumerate(items):
            png = encode_png(np.asarray(hyp.image, dtype=np.uint8))
            arrays[f"png_{scale}_{index:03d}"] = np.frombuffer(png, dtype=np.uint8)
        arrays[f"sigmas_{scale}"] = np.asarray([h.sigma for h in items], dtype=np.float64)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def decode_hypotheses(data: bytes) -> dict[int, tuple[ProbeHypothesis, ...]]:
    """:func:`encode_hypotheses`'s record, or the stacked arrays of a search recorded before schema 4."""
    out: dict[int, tuple[ProbeHypothesis, ...]] = {}
    with np.load(io.BytesIO(data), allow_pickle=False) as npz:
        for key in npz.files:
            if not key.startswith("sigmas_"):
                continue
            scale = int(key.split("_", 1)[1])
            sigmas = npz[key]
            if f"images_{scale}" in npz.files:
                images = list(npz[f"images_{scale}"])
            else:
                images = [decode_png(npz[f"png_{scale}_{index:03d}"].tobytes()) for index in range(len(sigmas))]
            out[scale] = tuple(ProbeHypothesis(scale, float(s), img) for s, img in zip(sigmas, images))
    return dict(sorted(out.items()))


def decode_labels(data: bytes) -> tuple[str, ...]:
    """A similarity matrix's column labels (JSON list of gallery degradation paths)."""
    return tuple(str(label) for label in json.loads(data))


def jsonable(value: Any) -> Any:
    """Make provenance-like values JSON-safe (paths, numpy scalars, tuples)."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value


def absolute_path(path: str | Path) -> str:
    """How a file path is recorded: absolute, so the case reads the same from any working folder."""
    return str(Path(path).resolve())


def decode_text(data: bytes) -> str:
    """TEXT read from a case. Bytes that are not UTF-8 (a damaged or edited file) read as U+FFFD instead of
    stopping every read with a decoder traceback; the row then no longer matches its hash, so verify names it."""
    return data.decode("utf-8", errors="replace")

