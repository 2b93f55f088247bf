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

#: The public surface, by the stage module that defines each name. Outer layers (gui, cli, store, report,
#: calibration, eval, training, large_gallery) import these from ``forensic_face.engine`` and nothing from
#: the stage modules (``tests/test_architecture.py`` checks it); recognizer and upsampler backends are
#: reached through their packages, ``forensic_face.engine.recognizers`` and ``.upsamplers``.
_PUBLIC_BY_MODULE: dict[str, tuple[str, ...]] = {
    "errors": ("Cancelled", "CaseStoreError", "ConfigError", "ForensicFaceError", "GalleryError",
        "ImageLoadError", "ModelFileError", "NoFaceDetected", "OutputPathError", "SealError", "ShapeError"),
    "config": ("BUDGETS", "USER_SETTINGS", "DetectorConfig", "EngineConfig", "UserSetting", "parse_scales",
        "resolve_device", "user_setting"),
    "callbacks": ("CancelCallback", "Progress", "ProgressCallback", "ShouldCancel", "check_cancel"),
    "imaging": ("DEFAULT_MAX_PIXELS", "IMAGE_SUFFIXES", "LoadedImage", "is_image_path", "load_image",
        "sha256_file"),
    "results": ("Candidate", "FaceCrop", "FaceDetection", "Gallery", "GalleryEntry", "GalleryHypothesis",
        "GalleryProblem", "ImageDetections", "ProbeHypothesis", "SearchResult"),
    "detect": ("MtcnnDetector", "crop_face", "crop_square", "manual_face"),
    "gallery": ("assemble_gallery", "enroll_items", "list_gallery_images", "require_faces"),
    "probe": ("blur_sigmas", "gaussian_blur_per_sample", "probe_hypotheses"),
    "matching": ("MAX_HYPOTHESIS_PX", "probe_plan"),
    "fusion": ("SCORE_SCALE", "FusionSpec", "canonical_fusions"),
    "align": ("DLIB_CHIP_PADDING", "DLIB_TEMPLATE_UNIT", "warp_to_template"),
    "cache": ("cache_key",),
    "batching": ("OutOfMemory",),
    "weights": ("MANIFEST_PATH", "RESOURCES_WEIGHTS_DIR", "load_safetensors_strict", "sha256_of",
        "shipped_weights", "verified_path"),
    "video": ("VIDEO_SUFFIXES", "Track", "TrackFace", "box_iou", "face_quality", "find_tracks", "frame_image",
        "frames_searched_text", "fuse_rankings", "fused_search_result", "is_video_path", "open_video",
        "search_track", "track_from_box", "video_no_calibration_reason"),
    "search": ("Engine",),
}
_EXPORTS = {name: module for module, names in _PUBLIC_BY_MODULE.items() for name in names}

__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:
    from forensic_face.engine.align import DLIB_CHIP_PADDING, DLIB_TEMPLATE_UNIT, warp_to_template
    from forensic_face.engine.batching import OutOfMemory
    from forensic_face.engine.cache import cache_key
    from forensic_face.engine.callbacks import (
        CancelCallback,
        Progress,
        ProgressCallback,
        ShouldCancel,
        check_cancel,
    )
    from forensic_face.engine.config import (
        BUDGETS,
        USER_SETTINGS,
        DetectorConfig,
        EngineConfig,
        UserSetting,
        parse_scales,
        resolve_device,
        user_setting,
    )
    from forensic_face.engine.detect import (
        MtcnnDetector,
        crop_face,
        crop_square,
        manual_face,
    )
    from forensic_face.engine.errors import (
        Cancelled,
        CaseStoreError,
        ConfigError,
        ForensicFaceError,
        GalleryError,
        ImageLoadError,
        ModelFileError,
        NoFaceDetected,
        OutputPathError,
        SealError,
        ShapeError,
    )
    from forensic_face.engine.fusion import SCORE_SCALE, FusionSpec, canonical_fusions
    from forensic_face.engine.gallery import (
        assemble_gallery,
        enroll_items,
        list_gallery_images,
        require_faces,
    )
    from forensic_face.engine.imaging import (
        DEFAULT_MAX_PIXELS,
        IMAGE_SUFFIXES,
        LoadedImage,
        is_image_path,
        load_image,
        sha256_file,
    )
    from forensic_face.engine.matching import MAX_HYPOTHESIS_PX, probe_plan
    from forensic_face.engine.probe import blur_sigmas, gaussian_blur_per_sample, probe_hypotheses
    from forensic_face.engine.results import (
        Candidate,
        FaceCrop,
        FaceDetection,
        Gallery,
        GalleryEntry,
        GalleryHypothesis,
        GalleryProblem,
        ImageDetections,
        ProbeHypothesis,
        SearchResult,
    )
    from forensic_face.engine.search import Engine
    from forensic_face.engine.video import (
        VIDEO_SUFFIXES,
        Track,
        TrackFace,
        box_iou,
        face_quality,
        find_tracks,
        frame_image,
        frames_searched_text,
        fuse_rankings,
        fused_search_result,
        is_video_path,
        open_video,
        search_track,
        track_from_box,
        video_no_calibration_reason,
    )
    from forensic_face.engine.weights import (
        MANIFEST_PATH,
        RESOURCES_WEIGHTS_DIR,
        load_safetensors_strict,
        sha256_of,
        shipped_weights,
        verified_path,
    )


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
