"""Distributed enrollment on a local, one-CPU Ray instance equals in-process enrollment; an enrollment warms the
template cache with the engine's own planning (no Ray needed for that)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from forensic_face.engine.config import EngineConfig
from forensic_face.engine.matching import effective_scales, resolution_target


def test_ray_enrollment_equals_in_process(lfw_root: Path, lfw_test_people, lfw_image, tmp_path: Path) -> None:
    ray = pytest.importorskip("ray", reason="ray is not installed (pip install ray)")
    import torch

    from forensic_face.engine import Engine
    from forensic_face.engine.config import EngineConfig
    from forensic_face.engine.recognizers import template_family
    from forensic_face.large_gallery.distributed import (
        enroll_distributed,
        index_gallery_folder,
    )
    from forensic_face.large_gallery.shortlist import (
        GalleryIndex,
        centre_normalise,
        plain_templates,
    )

    torch.set_num_threads(1)
    people = [name for name, count in lfw_test_people if count >= 2][:3]
    folder = tmp_path / "gallery"
    for name in people:
        (folder / name).mkdir(parents=True)
        for n in (1, 2):
            (folder / name / f"{name}_{n:04d}.jpg").symlink_to(lfw_image(name, n))
    (folder / people[0] / "notes.txt").write_text("not an image")
    config = EngineConfig(device="cpu", budget="none", scales=(2,), num_blur_hypotheses=2)
    engine = Engine(config, cache_dir=tmp_path / "local-templates")
    local = engine.enroll(folder)
    local_templates = plain_templates(engine, local.entries)

    ray.init(num_cpus=1, include_dashboard=False, object_store_memory=80 * 2**20, log_to_driver=False)
    try:
        seen: list[tuple[int, int]] = []
        out = enroll_distributed(folder, config, cache_dir=tmp_path / "ray-templates", shard_size=4,
                                 warm_size_bins=(32,), progress=lambda d, t, m: seen.append((d, t)))
        assert ray.is_initialized()  # an instance the caller started is left running
        # The CLI's path: an index of the folder built through the same Ray instance.
        update = index_gallery_folder(folder, tmp_path / "idx", config, cache_dir=tmp_path / "ray-templates",
                                      use_ray=True, shard_size=6)
    finally:
        ray.shutdown()

    assert out.num_shards == 2 and seen[-1] == (6, 6)
    assert len(out.gallery.entries) == len(local.entries) == 6
    for a, b in zip(out.gallery.entries, local.entries):
        assert (a.identity, a.image_path, a.sha256, a.note) == (b.identity, b.image_path, b.sha256, b.note)
        np.testing.assert_array_equal(a.crop.pixels, b.crop.pixels)
        # MTCNN in another process may round differently in the last float32 bit (seen: 8e-6 px).
        np.testing.assert_allclose(a.crop.landmarks, b.crop.landmarks, atol=1e-4)
        np.testing.assert_allclose(a.crop.crop_box, b.crop.crop_box, atol=1e-4)
    assert [(p.image_path, p.reason) for p in out.gallery.problems] == \
        [(p.image_path, p.reason) for p in local.problems]
    np.testing.assert_allclose(out.templates, local_templates, atol=1e-5)
    # The degraded-hypothesis cache was warmed for probe bin 32 at scale 2: a search engine pointed at it hits.
    assert out.warmed == 6
    warm = Engine(config, cache_dir=tmp_path / "ray-templates")
    keys = [k for e in local.entries for k in warm.gallery_cache_key(e, 64)]
    assert all(warm.cache.load(k) is not None for k in keys)
    assert (update.added, update.rebuilt, update.num_rows) == (6, True, 6)
    index = GalleryIndex.load(tmp_path / "idx", template_family(warm.recognizer), warm.recognizer.weights_sha256)
    np.testing.assert_allclose(index.index.index.reconstruct_n(0, 6), centre_normalise(local_templates), atol=1e-5)
    assert [r.sha256 for _, r in sorted(index.rows.items())] == [e.sha256 for e in local.entries]


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
