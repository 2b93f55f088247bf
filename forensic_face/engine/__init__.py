"""The Meet-in-the-middle engine: tensors in, tensors out. No Qt, SQLite or PDF code may be imported here.

The public API is what this package exports; everything outside the engine imports from here. The stages, in
the paper's order (``docs/architecture.md``):

======================  ==============================================================================
stage                   module
======================  ==============================================================================
images in (evidence)    :mod:`~forensic_face.engine.imaging` (read-only load, SHA-256)
detection, crop         :mod:`~forensic_face.engine.detect`, :mod:`~forensic_face.engine.mtcnn`
enrollment              :mod:`~forensic_face.engine.gallery`
probe hypotheses        :mod:`~forensic_face.engine.probe`, :mod:`~forensic_face.engine.upsamplers`
gallery degradations    :mod:`~forensic_face.engine.degradations` (Table 1, eq. 1)
resolution matching     :mod:`~forensic_face.engine.matching`
templates               :mod:`~forensic_face.engine.templates`, :mod:`~forensic_face.engine.recognizers`
similarity and fusion   :mod:`~forensic_face.engine.fusion` (eq. 3-5)
ranking, candidates     :mod:`~forensic_face.engine.ranking`
the pipeline            :mod:`~forensic_face.engine.search` (:class:`Engine`)
======================  ==============================================================================

Names load lazily (PEP 562): importing ``forensic_face.engine.errors`` for an exception type does not import
torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "Engine": "search",
    "EngineConfig": "config",
    "BUDGETS": "config",
    "resolve_device": "config",
    "Progress": "callbacks",
    "ShouldCancel": "callbacks",
    "LoadedImage": "imaging",
    "load_image": "imaging",
    "is_image_path": "imaging",
    "IMAGE_SUFFIXES": "imaging",
    "sha256_file": "imaging",
    "Candidate": "results",
    "FaceDetection": "results",
    "Gallery": "results",
    "GalleryEntry": "results",
    "GalleryHypothesis": "results",
    "ImageDetections": "results",
    "ProbeHypothesis": "results",
    "SearchResult": "results",
    "ForensicFaceError": "errors",
    "Cancelled": "errors",
    "ConfigError": "errors",
    "ImageLoadError": "errors",
    "NoFaceDetected": "errors",
    "OutOfMemory": "batching",
}

__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:
    from forensic_face.engine.batching import OutOfMemory
    from forensic_face.engine.callbacks import Progress, ShouldCancel
    from forensic_face.engine.config import BUDGETS, EngineConfig, resolve_device
    from forensic_face.engine.errors import (
        Cancelled,
        ConfigError,
        ForensicFaceError,
        ImageLoadError,
        NoFaceDetected,
    )
    from forensic_face.engine.imaging import (
        IMAGE_SUFFIXES,
        LoadedImage,
        is_image_path,
        load_image,
        sha256_file,
    )
    from forensic_face.engine.results import (
        Candidate,
        FaceDetection,
        Gallery,
        GalleryEntry,
        GalleryHypothesis,
        ImageDetections,
        ProbeHypothesis,
        SearchResult,
    )
    from forensic_face.engine.search import Engine


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
