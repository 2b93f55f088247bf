"""Places that use a piece of the search must use the search's own (issues 17, 35): the shortlist's probe query,
the Ray enrollment's cache warming, the GUI's engine and its out-of-memory fallback."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from forensic_face.engine.batching import OutOfMemory
from forensic_face.engine.config import EngineConfig
from forensic_face.engine.matching import effective_scales, probe_size_bin, resolution_target
from forensic_face.engine.results import FaceDetection


def test_gui_worker_recognises_the_engines_out_of_memory() -> None:
    from forensic_face.gui.worker import is_out_of_memory

    assert is_out_of_memory(OutOfMemory("the GPU ran out of memory even one image at a time"))
    assert is_out_of_memory(RuntimeError("CUDA out of memory. Tried to allocate 2 GiB"))
    assert not is_out_of_memory(ValueError("out of memory"))


def test_gui_engine_shares_the_cli_template_cache() -> None:
    from forensic_face.engine import Engine
    from forensic_face.gui.worker import default_engine_factory

    gui_engine = default_engine_factory(EngineConfig(device="cpu"))
    assert gui_engine.cache.root == Engine(EngineConfig(device="cpu")).cache.root


def test_shortlist_query_is_the_searchs_own_probe_templates(tmp_path: Path) -> None:
    from forensic_face.engine import Engine
    from forensic_face.engine.detect import crop_face
    from forensic_face.engine.imaging import LoadedImage
    from forensic_face.large_gallery.shortlist import centre_normalise, probe_query

    engine = Engine(EngineConfig(device="cpu", upsampler="bicubic", num_blur_hypotheses=2, recognizer="dlib-resnet",
                                 flip_test=False), cache_dir=tmp_path)
    pixels = np.random.default_rng(0).integers(0, 255, (300, 300, 3), dtype=np.uint8)
    box = np.array([110.0, 110.0, 190.0, 190.0], np.float32)
    landmarks = np.array([[135, 140], [165, 140], [150, 155], [138, 172], [162, 172]], np.float32)
    face = FaceDetection(box=box, score=0.99, landmarks=landmarks)
    probe = LoadedImage(path=Path("probe.png"), pixels=pixels, sha256="0" * 64, size_bytes=0, format="PNG",
                        original_mode="RGB", exif_orientation=1)
    query = probe_query(engine, probe, face)
    crop = crop_face(pixels, face, engine.config.detector.crop_enlarge)
    crop_px = 104  # round(1.3 * 80): a large probe, magnified at 2x only, as the search plans it
    assert crop.size_px == crop_px
    assert effective_scales(probe_size_bin(crop_px, engine.config.size_bin_px), engine.config.scales) == (2,)
    hits = engine.cache.hits
    _, _, templates = engine.crop_probe_templates(crop, (2,), hypothesis_images=False)
    assert engine.cache.hits == hits + 1  # the query's templates were the search's, cached under its key
    expected = centre_normalise(templates[2].float().cpu().numpy()).mean(axis=0, keepdims=True)
    np.testing.assert_array_equal(query, expected)


def test_cache_warming_uses_the_targets_a_search_looks_up() -> None:
    from forensic_face.large_gallery import distributed

    calls: list[tuple[int, int | None]] = []

    from forensic_face.engine import Engine

    class RecordingEngine:
        config = EngineConfig(device="cpu")
        warm_gallery = Engine.warm_gallery  # the engine's own planning, over the recording gallery_templates

        def gallery_templates(self, entries: Any, target: int | None, progress: Any, cancel: Any) -> None:
            calls.append(target)
            progress(len(entries))

    import forensic_face.large_gallery.shortlist as shortlist

    original_enroll = distributed.enroll_items
    original_plain = shortlist.plain_templates
    try:
        distributed.enroll_items = lambda items, engine: (["entry"], [])  # type: ignore[assignment]
        shortlist.plain_templates = lambda engine, entries: np.zeros((1, 128), np.float32)  # type: ignore[assignment]
        distributed.enroll_with_engine(RecordingEngine(), [], warm_size_bins=(40, 100))
    finally:
        distributed.enroll_items = original_enroll
        shortlist.plain_templates = original_plain
    expected = [resolution_target(b, s) for b in (40, 100) for s in effective_scales(b, (2, 4, 8))]
    assert calls == list(dict.fromkeys(expected))  # each target once: scales that share one are warmed once
    assert len(calls) < len(expected) and all(t is not None and t <= 160 for t in calls)
