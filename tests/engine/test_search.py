"""End-to-end Meet-in-the-middle search on real LFW peopleDevTest faces."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from forensic_face.cli import main
from forensic_face.engine import Engine
from forensic_face.engine.config import EngineConfig
from forensic_face.engine.errors import Cancelled, NoFaceDetected
from forensic_face.engine.imaging import load_image
from forensic_face.engine.matching import MAX_HYPOTHESIS_PX, effective_scales

NUM_PEOPLE = 20


@pytest.fixture(scope="module")
def people(lfw_test_people: list[tuple[str, int]]) -> list[str]:
    return [name for name, count in lfw_test_people if count >= 2][:NUM_PEOPLE]


@pytest.fixture(scope="module")
def gallery_dir(people: list[str], lfw_image, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("gallery") / "mugshots Ü"
    folder.mkdir()
    for name in people:
        shutil.copy(lfw_image(name, 1), folder / f"{name}.jpg")
    return folder


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Engine:
    config = EngineConfig(device="cpu", budget="fast", scales=(2,), num_blur_hypotheses=3, upsampler="bicubic",
                          top_k=5, fusion="S_max,S_add")
    return Engine(config, cache_dir=tmp_path_factory.mktemp("templates"))


def test_full_resolution_probes_rank_the_true_identity_first(gallery_dir: Path, people: list[str], lfw_image,
                                                             tmp_path: Path) -> None:
    # Full-size probes fall in many size bins; without degradations each bin costs one template per portrait.
    config = EngineConfig(device="cpu", budget="none", scales=(2, 4, 8), num_blur_hypotheses=2,
                          upsampler="bicubic", top_k=5)
    engine = Engine(config, cache_dir=tmp_path)
    gallery = engine.enroll(gallery_dir)
    assert sorted(gallery.identities) == sorted(people)
    top1 = 0
    for name in people:
        result = engine.search(load_image(lfw_image(name, 2)), gallery)
        top1 += result.ranking[0][0] == name
        assert len(result.ranking) == len(people)
        assert [c.rank for c in result.candidates] == list(range(1, 6))
        # A full-size probe is magnified at most up to MAX_HYPOTHESIS_PX, often not at all.
        assert max(result.provenance["scales_used"]) * result.provenance["probe_size_bin_px"] <= MAX_HYPOTHESIS_PX
    assert top1 >= 0.8 * len(people)


def test_tiny_probe_search_carries_hypotheses_heatmaps_and_variants(engine: Engine, gallery_dir: Path,
                                                                   people: list[str], lfw_image,
                                                                   tmp_path: Path) -> None:
    gallery = engine.enroll(gallery_dir)
    name = people[0]
    pixels = load_image(lfw_image(name, 2)).pixels
    small = cv2.resize(pixels, (64, 64), interpolation=cv2.INTER_AREA)  # face about 24 px wide
    path = tmp_path / "cctv still.png"
    Image.fromarray(small).save(path)
    progress: list[tuple[int, int]] = []
    result = engine.search(load_image(path), gallery, progress=lambda d, t, m: progress.append((d, t)))
    assert progress and progress[-1][0] == progress[-1][1]
    assert result.provenance["scales_used"] == [2]
    best = result.candidates[0]
    m, n = 3, 1 + 11
    assert best.similarity[2].shape == (m, n)
    assert len(best.gallery_paths[2]) == n and best.gallery_paths[2][0] == "original"
    assert best.best_probe_hypothesis.image.shape[0] == 2 * result.probe_crop.size_px
    assert 1 <= len(best.best_gallery_hypotheses) <= 4
    # The search names its best variants; their pixels are made only for the views that show them.
    assert all(v.image is None and v.target_px == result.provenance["gallery_targets_px"]["2"]
               for v in best.best_gallery_hypotheses)
    # S_max over gallery hypotheses, then S_add over probe hypotheses (reported as a mean): from the heatmap.
    assert best.score == pytest.approx(float(best.similarity[2].max(axis=1).mean()), abs=1e-5)
    # Rendered in one batch per path for every candidate, they equal the one-at-a-time rendering.
    shown = engine.with_gallery_images(result, gallery)
    assert [c.identity for c in shown.candidates] == [c.identity for c in result.candidates]
    for cand in shown.candidates:
        entry = next(e for e in gallery.entries if e.sha256 == cand.gallery_sha256)
        for variant in cand.best_gallery_hypotheses:
            assert variant.image.dtype == np.uint8 and variant.image.shape[0] == variant.target_px
            again = engine.gallery_hypothesis_image(entry, variant.path, variant.target_px)
            np.testing.assert_array_equal(again, variant.image)
    # A second search reuses the stacked gallery templates from memory and the probe's templates from the
    # disk cache, and gives the same ranking.
    hits, misses = engine.cache.hits, engine.cache.misses
    again_result = engine.search(load_image(path), gallery)
    assert (engine.cache.hits, engine.cache.misses) == (hits + 1, misses)
    assert again_result.ranking == result.ranking
    # A new engine (a new session) finds every template in the disk cache.
    fresh = Engine(engine.config, cache_dir=engine.cache.root)
    fresh._recognizer, fresh._detector = engine.recognizer, engine.detector
    fresh_result = fresh.search(load_image(path), gallery)
    assert (fresh.cache.hits, fresh.cache.misses) == (1 + len(gallery.entries), 0)
    assert fresh_result.ranking == result.ranking
    # Another gallery budget changes the gallery's templates, not the probe's, and a benchmark-style search
    # (no hypothesis images) then does not magnify the probe again: only its best hypothesis, for display.
    other = Engine(engine.config.replace(budget="none"), cache_dir=engine.cache.root)
    other._recognizer, other._detector = engine.recognizer, engine.detector
    magnified: list[int] = []
    upsample = other.upsampler.upsample
    other.upsampler.upsample = lambda images, scale: magnified.append(images.shape[0]) or upsample(images, scale)
    lean = other.search(load_image(path), gallery, hypothesis_images=False)
    assert (other.cache.hits, other.cache.misses) == (1, len(gallery.entries))
    assert lean.probe_hypotheses == {} and magnified == [1] * len(lean.candidates)
    full = Engine(other.config, cache_dir=engine.cache.root)
    full._recognizer, full._detector = engine.recognizer, engine.detector
    reference = full.search(load_image(path), gallery)
    assert lean.ranking == reference.ranking
    for a, b in zip(lean.candidates, reference.candidates):
        assert a.best_probe_hypothesis.sigma == b.best_probe_hypothesis.sigma
        assert np.abs(a.best_probe_hypothesis.image.astype(int) - b.best_probe_hypothesis.image).max() <= 1


def test_no_face_and_cancel(engine: Engine, gallery_dir: Path, lfw_image, people: list[str], tmp_path: Path) -> None:
    gallery = engine.enroll(gallery_dir)
    blank = tmp_path / "wall.png"
    Image.new("RGB", (64, 48), (90, 90, 90)).save(blank)
    with pytest.raises(NoFaceDetected, match="draw the face box"):
        engine.search(load_image(blank), gallery)
    with pytest.raises(Cancelled):
        engine.search(load_image(lfw_image(people[1], 2)), gallery, should_cancel=lambda: True)


def test_effective_scales() -> None:
    assert effective_scales(32, (2, 4, 8)) == (2, 4, 8)
    assert effective_scales(200, (2, 4, 8)) == (1,)


def test_cli_search_json(gallery_dir: Path, people: list[str], lfw_image, tmp_path: Path,
                         capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FORENSIC_FACE_CACHE_DIR", str(tmp_path / "cache"))
    missing = tmp_path / "missing.jpg"
    code = main(["search", str(lfw_image(people[2], 2)), str(missing), "--gallery", str(gallery_dir), "--top", "3",
                 "--budget", "none", "--scales", "2", "--hypotheses", "2", "--upsampler", "bicubic", "--device", "cpu",
                 "--json"])
    records = json.loads(capsys.readouterr().out)
    assert code == 1  # one probe failed, and it is reported
    ok, bad = records
    assert ok["error"] is None and ok["sha256"] and len(ok["candidates"]) == 3
    assert set(ok["face"]) >= {"box", "score"} and len(ok["face"]["box"]) == 4
    assert ok["candidates"][0]["identity"] == people[2]
    assert set(ok["candidates"][0]) >= {"rank", "identity", "image", "score"}
    assert bad["error"] and "does not exist" in bad["error"] and bad["candidates"] == []
    # The open-set cue is stated, here as not available: no open-set calibration is fitted for these settings.
    assert not ok["open_set"]["available"] and ok["open_set"]["lr"] is None and bad["open_set"] is None
    assert ok["open_set"]["text"].startswith("Open-set cue not available: ")
    assert ok["open_set"]["num_gallery_identities"] == len(people)


def test_cli_search_records_into_a_case(gallery_dir: Path, people: list[str], lfw_image, tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """Batch work from the command line is evidence too: each search is recorded as the window records it."""
    from forensic_face.store.case_store import CaseStore
    from forensic_face.store.verify import verify_case

    monkeypatch.setenv("FORENSIC_FACE_CACHE_DIR", str(tmp_path / "cache"))
    case_path = tmp_path / "batch.ffcase"
    CaseStore.create(case_path, "B-1", "Batch", "J. Examiner").close()
    probes = [str(lfw_image(people[k], 2)) for k in (2, 3)]
    flags = ["--gallery", str(gallery_dir), "--top", "3", "--budget", "none", "--scales", "2", "--hypotheses", "2",
             "--upsampler", "bicubic", "--device", "cpu"]
    assert main(["search", *probes, *flags, "--case", str(case_path), "--json"]) == 0
    records = json.loads(capsys.readouterr().out)
    with CaseStore.open(case_path) as store:
        assert store.search_ids() == [r["case"]["search_id"] for r in records]
        stored = store.search(records[0]["case"]["search_id"])
        assert [c.candidate.identity for c in stored.candidates] == [c["identity"] for c in records[0]["candidates"]]
        assert stored.candidates[0].candidate.best_gallery_hypotheses  # the variants' images, as the window stores
        assert {e.path.name for e in store.evidence_items()} >= {Path(p).name for p in probes}
    assert verify_case(case_path).ok
    # A case that cannot be opened stops the command before any work.
    assert main(["search", probes[0], *flags, "--case", str(tmp_path / "none.ffcase")]) == 2
    assert "none.ffcase" in capsys.readouterr().err


def test_provisional_ranking_is_the_full_methods_first_column(engine: Engine, gallery_dir: Path, people: list[str],
                                                              lfw_image, tmp_path: Path) -> None:
    """The quick first ranking the window shows: the sigma-0 hypothesis at the smallest scale against each
    portrait's undegraded, resolution-matched hypothesis, exactly as the full method computes those."""
    from forensic_face.calibration import calibration_for_result
    from forensic_face.engine.errors import CaseStoreError
    from forensic_face.store.case_store import CaseStore

    gallery = engine.enroll(gallery_dir)
    pixels = load_image(lfw_image(people[1], 2)).pixels
    path = tmp_path / "still.png"
    Image.fromarray(cv2.resize(pixels, (64, 64), interpolation=cv2.INTER_AREA)).save(path)
    probe = load_image(path)
    quick = engine.provisional_search(probe, gallery)
    full = engine.search(probe, gallery)
    assert quick.provenance["provisional"] and len(quick.ranking) == len(people)
    assert [c.rank for c in quick.candidates] == list(range(1, 6))
    # Same face, crop and resolution target as the full search; scores from its first gallery column.
    assert quick.probe_crop.size_px == full.probe_crop.size_px
    assert quick.provenance["gallery_targets_px"] == full.provenance["gallery_targets_px"]
    row0 = {c.identity: float(c.similarity[2][0, 0]) for c in full.candidates}
    for cand in quick.candidates:
        if cand.identity in row0:
            assert cand.score == pytest.approx(row0[cand.identity], abs=1e-4)
    assert calibration_for_result(quick) is None  # its scores are not the calibrated fusion
    with CaseStore.create(tmp_path / "c.ffcase", "N-1", "", "pytest") as store:
        with pytest.raises(CaseStoreError, match="provisional"):
            store.record_search(quick, engine.config)


def test_warm_gallery_fills_exactly_what_a_search_looks_up(gallery_dir: Path, people: list[str], lfw_image,
                                                           tmp_path: Path) -> None:
    config = EngineConfig(device="cpu", budget="fast", scales=(2, 4), num_blur_hypotheses=2, upsampler="bicubic",
                          top_k=3)
    warm = Engine(config, cache_dir=tmp_path / "templates")
    gallery = warm.enroll(gallery_dir)
    steps: list[tuple[int, int]] = []
    stacks = warm.warm_gallery(gallery.entries, range(20, 44, 4), progress=lambda d, t, m: steps.append((d, t)))
    assert stacks > 0 and steps[-1][0] == steps[-1][1]
    pixels = load_image(lfw_image(people[3], 2)).pixels
    path = tmp_path / "still.png"
    Image.fromarray(cv2.resize(pixels, (64, 64), interpolation=cv2.INTER_AREA)).save(path)
    fresh = Engine(config, cache_dir=tmp_path / "templates")
    fresh.search(load_image(path), gallery)
    assert fresh.cache.misses == len(config.scales)  # the probe's own templates only; every gallery one was warm


def test_search_views_template_mean(engine: Engine, gallery_dir: Path, people: list[str], lfw_image,
                                    tmp_path: Path) -> None:
    """Template-mean fusion of several views of one face: identical views give the single search's scores
    whatever their weights; different views give a ranking of their own and are all recorded."""
    gallery = engine.enroll(gallery_dir)
    probes = []
    pixels = load_image(lfw_image(people[2], 2)).pixels
    for k, size in enumerate((64, 72)):  # two "frames": the face at about 24 and 27 px
        path = tmp_path / f"view{k}.png"
        Image.fromarray(cv2.resize(pixels, (size, size), interpolation=cv2.INTER_AREA)).save(path)
        probes.append(load_image(path))
    single = engine.search(probes[0], gallery)
    same = engine.search_views([(probes[0], None), (probes[0], None)], gallery, weights=[0.2, 5.0])
    assert [i for i, _ in same.ranking] == [i for i, _ in single.ranking]
    assert np.allclose([s for _, s in same.ranking], [s for _, s in single.ranking], atol=1e-5)
    both = engine.search_views([(probes[0], None), (probes[1], None)], gallery, weights=[1.0, 3.0])
    views = both.provenance["views"]
    assert views["fusion"] == "template-mean" and views["reference"] == 1
    assert [v["sha256"] for v in views["views"]] == [p.sha256 for p in probes]
    assert both.probe_sha256 == probes[1].sha256  # the reference is the view of highest weight
    other = engine.search(probes[1], gallery)
    assert both.provenance["scales_used"] == other.provenance["scales_used"]
    assert both.ranking != single.ranking and both.ranking != other.ranking
    with pytest.raises(Exception, match="weights for"):
        engine.search_views([(probes[0], None)], gallery, weights=[1.0, 2.0])


def test_scales_with_one_resolution_target_share_gallery_templates(gallery_dir: Path, people: list[str], lfw_image,
                                                                  tmp_path: Path) -> None:
    """4x and 8x of a 40 px crop both match the gallery to the canonical 160 px: computed once, not per scale."""
    from forensic_face.engine.matching import resolution_target

    config = EngineConfig(device="cpu", budget="none", scales=(4, 8), num_blur_hypotheses=1, upsampler="bicubic",
                          top_k=3)
    engine = Engine(config, cache_dir=tmp_path / "templates")
    gallery = engine.enroll(gallery_dir)
    from forensic_face.engine.detect import manual_face

    pixels = load_image(lfw_image(people[4], 2)).pixels
    path = tmp_path / "still.png"
    Image.fromarray(cv2.resize(pixels, (80, 80), interpolation=cv2.INTER_AREA)).save(path)
    probe = load_image(path)
    face = manual_face(probe.pixels, [25, 25, 55, 55])  # 30 px: a 39 px crop, 4x and 8x both under 320 px
    result = engine.search(probe, gallery, face=face)
    size_bin = result.provenance["probe_size_bin_px"]
    assert result.provenance["scales_used"] == [4, 8]
    assert resolution_target(size_bin, 4) == resolution_target(size_bin, 8) == 160
    # One gallery stack per portrait (shared by both scales) plus the probe's two scales.
    assert engine.cache.misses == len(gallery.entries) + 2


def test_flip_test_templates_are_cached_apart_and_recorded(engine: Engine, tmp_path: Path) -> None:
    """Templates with and without the flip test are not comparable: every cache key and the provenance differ."""
    flipped = Engine(engine.config.replace(flip_test=True), cache_dir=tmp_path / "templates")
    plain = Engine(engine.config.replace(flip_test=False), cache_dir=tmp_path / "templates")
    assert flipped.recognizer.flip_test and not plain.recognizer.flip_test
    assert flipped.recognizer_digest() != plain.recognizer_digest()
    assert flipped.template_settings_digest() != plain.template_settings_digest()
    assert flipped.provenance()["recognizer"]["flip_test"] is True
    assert plain.provenance()["recognizer"]["flip_test"] is False


def test_crop_probe_templates_are_the_hypotheses_embedded_and_cached(tmp_path: Path) -> None:
    """The one probe side of Figure 1 (Engine.crop_probe_templates) that searches, video searches and the shortlist's
    query share: the paper's blurred, magnified hypotheses of the crop, their templates per scale, cached per crop and
    scale; asked without hypothesis images, cached scales are read back without being magnified again."""
    import torch

    from forensic_face.engine.detect import crop_face
    from forensic_face.engine.imaging import to_tensor
    from forensic_face.engine.probe import probe_hypotheses
    from forensic_face.engine.results import FaceDetection
    from forensic_face.engine.upsamplers import BicubicUpsampler

    config = EngineConfig(device="cpu", upsampler="bicubic", scales=(2, 4), num_blur_hypotheses=3,
                          recognizer="dlib-resnet", flip_test=False)
    engine = Engine(config, cache_dir=tmp_path)
    pixels = np.random.default_rng(0).integers(0, 255, (120, 120, 3), dtype=np.uint8)
    landmarks = np.array([[52, 55], [68, 55], [60, 62], [53, 70], [67, 70]], np.float32)
    face = FaceDetection(box=np.array([45.0, 45.0, 75.0, 80.0], np.float32), score=0.99, landmarks=landmarks)
    crop = crop_face(pixels, face, config.detector.crop_enlarge)
    magnified: list[int] = []
    upsample = engine.upsampler.upsample
    engine.upsampler.upsample = lambda images, scale: magnified.append(scale) or upsample(images, scale)

    with torch.inference_mode():
        sigmas, hyps, templates = engine.crop_probe_templates(crop, (2, 4))
        assert sorted(hyps) == sorted(templates) == [2, 4] and magnified == [2, 4]
        assert (engine.cache.hits, engine.cache.misses) == (0, 2)
        expected_sigmas, expected_hyps = probe_hypotheses(to_tensor(crop.pixels, engine.device), (2, 4),
                                                          BicubicUpsampler(), 3, config.max_blur_sigma)
        torch.testing.assert_close(sigmas, expected_sigmas)
        dim = engine.recognizer.embedding_dim
        for scale in (2, 4):
            torch.testing.assert_close(hyps[scale], expected_hyps[scale])
            assert hyps[scale].shape == (3, 3, scale * crop.size_px, scale * crop.size_px)
            assert templates[scale].shape == (3, dim)
            lms = torch.from_numpy(crop.landmarks).float()[None].expand(3, -1, -1) * scale
            torch.testing.assert_close(templates[scale], engine.embed(hyps[scale], lms))

        magnified.clear()
        _, lean_hyps, cached = engine.crop_probe_templates(crop, (2, 4), hypothesis_images=False)
        assert lean_hyps == {} and magnified == [] and engine.cache.hits == 2
        _, shown_hyps, again = engine.crop_probe_templates(crop, (2, 4))
    assert sorted(shown_hyps) == [2, 4] and magnified == [2, 4]  # shown hypotheses are magnified again…
    assert (engine.cache.hits, engine.cache.misses) == (4, 2)  # …and their templates still read from the cache
    for scale in (2, 4):
        assert torch.equal(cached[scale], templates[scale]) and torch.equal(again[scale], templates[scale])
