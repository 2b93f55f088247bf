"""The LFW-XRes split and its probe degradation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from forensic_face.eval.protocol import (
    KnownFace,
    ProbeSpec,
    degrade_probe,
    lfw_xres_split,
    materialize_probes,
    nominal_face,
    probe_seed,
    read_people_list,
)
from forensic_face.surveillance import DEFAULT_SURVEILLANCE

pytestmark = pytest.mark.lfw


def test_split_counts_and_disjointness(lfw_root: Path) -> None:
    split = lfw_xres_split(lfw_root)
    assert len(split.gallery) == 496
    assert len(split.gallery) + len(split.probes) == 2493
    assert len(split.probes) == 1997
    train = {name for name, _ in read_people_list(lfw_root / "peopleDevTrain.txt")}
    assert not train & set(split.identities)
    # the first image by number is the gallery; no gallery image is also a probe
    assert all(g.number == 1 for g in split.gallery)
    assert {p.identity for p in split.probes} == set(split.identities)
    assert not {g.name for g in split.gallery} & {p.name for p in split.probes}
    assert all(p.number >= 2 for p in split.probes)


def test_subset_keeps_first_people(lfw_root: Path) -> None:
    full = lfw_xres_split(lfw_root)
    sub = lfw_xres_split(lfw_root, subset=3)
    assert sub.identities == full.identities[:3]
    assert {p.identity for p in sub.probes} == set(sub.identities)


def _original(lfw_image, name: str = "Abel_Pacheco", number: int = 2) -> np.ndarray:
    from PIL import Image

    with Image.open(lfw_image(name, number)) as im:
        return np.asarray(im.convert("RGB"))


def test_probe_is_deterministic(lfw_image) -> None:
    pixels = _original(lfw_image)
    seed = probe_seed(0, "Abel_Pacheco_0002")
    assert seed == probe_seed(0, "Abel_Pacheco_0002")
    assert seed != probe_seed(1, "Abel_Pacheco_0002") != probe_seed(0, "Abel_Pacheco_0003")
    a = degrade_probe(pixels, nominal_face(), 24, DEFAULT_SURVEILLANCE, seed)
    b = degrade_probe(pixels, nominal_face(), 24, DEFAULT_SURVEILLANCE, seed)
    c = degrade_probe(pixels, nominal_face(), 24, DEFAULT_SURVEILLANCE, seed + 1)
    assert a.pixels.tobytes() == b.pixels.tobytes()
    assert a.pixels.tobytes() != c.pixels.tobytes()


@pytest.mark.parametrize("width", [16, 24, 32])
def test_probe_face_width(lfw_image, width: int) -> None:
    pixels = _original(lfw_image)
    # an off-centre, MTCNN-like box 88 px wide
    known = KnownFace(np.array([80.0, 70.0, 168.0, 178.0]), np.array([[100.0, 110]] * 5), "mtcnn")
    probe = degrade_probe(pixels, known, width, DEFAULT_SURVEILLANCE, 7)
    assert abs(probe.face_width_px - width) <= 1.0
    # the whole image was degraded, not a crop
    assert abs(probe.pixels.shape[1] - 250 * width / 88.0) <= 1.0
    assert probe.pixels.dtype == np.uint8 and probe.pixels.shape[2] == 3
    # the face box is scaled with the image
    assert np.allclose(probe.face.box / probe.pixels.shape[1] * 250, known.box, atol=2.5)


def test_materialized_probes_are_reproducible(lfw_root: Path, tmp_path: Path) -> None:
    split = lfw_xres_split(lfw_root, subset=1)
    spec = ProbeSpec(width_px=16, face_width_source="nominal")
    first = materialize_probes(split, spec, tmp_path / "a", known_faces=None)
    second = materialize_probes(split, spec, tmp_path / "b", known_faces=None)
    assert len(first) == len(split.probes)
    for r1, r2 in zip(first, second):
        assert r1.path.read_bytes() == r2.path.read_bytes()
        assert r1.image.identity == split.identities[0]
        assert abs(r1.face.width_px - 16) <= 1.0


# --- runner plumbing with a stand-in engine (the real one is exercised in test_runner_end_to_end) ---------------


class _FakeEngine:
    """Implements the Engine contract's detect/enroll/search/provenance with known answers.

    Detection fails on probe images numbered 3; search scores the true identity (from the file name) 1.0 and
    everyone else less, so a searched probe is always rank 1 and a missed one never is.
    """

    def __init__(self) -> None:
        from forensic_face.engine.config import EngineConfig

        self.config = EngineConfig(device="cpu", budget="fast", scales=(2,))
        self.num_searches = 0
        self.detector = self

    def detect(self, image, min_face_px=None):  # type: ignore[no-untyped-def]
        if isinstance(image, list):  # the MtcnnDetector.detect(images, min_face_px) form
            from types import SimpleNamespace

            return [self.detect(SimpleNamespace(pixels=im, path=Path("x.jpg"), sha256="")).faces for im in image]
        return self._detect(image)

    def _detect(self, image):  # type: ignore[no-untyped-def]
        from forensic_face.engine.results import FaceDetection, ImageDetections

        h, w = image.pixels.shape[:2]
        faces = ()
        if not (w < 200 and image.path.stem.endswith("_0003")):
            half = 0.18 * w
            box = np.array([w / 2 - half, h / 2 - half, w / 2 + half, h / 2 + half])
            faces = (FaceDetection(box=box, score=0.99, landmarks=np.tile(box[:2], (5, 1))),)
        return ImageDetections(str(image.path), image.sha256, w, h, faces)

    def enroll(self, folder, progress=None, should_cancel=None):  # type: ignore[no-untyped-def]
        from forensic_face.engine.imaging import load_image
        from forensic_face.engine.results import FaceCrop, Gallery, GalleryEntry

        entries = []
        for sub in sorted(p for p in folder.iterdir() if p.is_dir()):
            image = load_image(next(sub.iterdir()))
            face = self.detect(image).faces[0]
            crop = FaceCrop(image.pixels, face.landmarks, face.box, face)
            entries.append(GalleryEntry(sub.name, image.path, image.sha256, crop))
        return Gallery(folder, tuple(entries))

    def search(self, probe, gallery, face=None, progress=None, should_cancel=None, hypothesis_images=True):  # type: ignore[no-untyped-def]
        from types import SimpleNamespace

        self.num_searches += 1
        truth = probe.path.stem.rsplit("_", 1)[0]
        ranking = sorted(((e.identity, 1.0 if e.identity == truth else 0.5 - 0.01 * i)
                          for i, e in enumerate(gallery.entries)), key=lambda t: -t[1])
        return SimpleNamespace(ranking=tuple(ranking), provenance={"scales_used": [2]})

    def provenance(self) -> dict:
        return {"engine": "fake"}


def _fake_settings(lfw_root: Path, tmp_path: Path, fallback: bool, **changes):  # type: ignore[no-untyped-def]
    from forensic_face.eval.runner import EvalSettings

    return EvalSettings(lfw_root=lfw_root, cache_dir=tmp_path / "cache", width_px=24, subset=4,
                        fallback_known_face=fallback, **changes)


def test_runner_oracle_landmarks_searches_every_probe_at_its_known_face(lfw_root: Path, tmp_path: Path) -> None:
    from forensic_face.eval.runner import evaluate, prepare

    engine = _FakeEngine()
    searched_faces = []
    real_search = engine.search

    def search(probe, gallery, face=None, **kwargs):  # type: ignore[no-untyped-def]
        searched_faces.append(face)
        return real_search(probe, gallery, face=face, **kwargs)

    engine.search = search  # type: ignore[method-assign]
    prepared = prepare(engine, _fake_settings(lfw_root, tmp_path, fallback=False, oracle_landmarks=True))  # type: ignore[arg-type]
    result = evaluate(engine, prepared)  # type: ignore[arg-type]
    # Probes the detector misses are searched too, each at the known box with the scaled original landmarks.
    assert result.counts["oracle-landmarks"] == len(prepared.probes) and result.counts["no-face"] == 0
    for face, record in zip(searched_faces, prepared.probes):
        np.testing.assert_allclose(face.box, record.face.box)
        np.testing.assert_allclose(face.landmarks, record.face.landmarks)


def test_clean_camera_is_plain_area_downsampling(lfw_image) -> None:
    import cv2
    from PIL import Image

    from forensic_face.eval.protocol import CLEAN_CAMERA, ProbeSpec, camera_params
    from forensic_face.surveillance import degrade_to_scale

    assert camera_params(ProbeSpec(camera="clean"), "Anyone_0002") == CLEAN_CAMERA
    with Image.open(lfw_image("Aaron_Peirsol", 1)) as im:
        pixels = np.asarray(im.convert("RGB"))
    out = degrade_to_scale(pixels, 0.25, CLEAN_CAMERA, seed=3)
    area = cv2.resize(pixels.astype(np.float32), (out.shape[1], out.shape[0]), interpolation=cv2.INTER_AREA)
    assert np.abs(out.astype(np.float32) - area).max() <= 0.5 + 1e-3


def test_runner_counts_misses_and_caches(lfw_root: Path, tmp_path: Path) -> None:
    from forensic_face.eval.runner import evaluate, prepare, write_run

    engine = _FakeEngine()
    prepared = prepare(engine, _fake_settings(lfw_root, tmp_path, fallback=False))  # type: ignore[arg-type]
    num_probes = len(prepared.probes)
    missed = sum(1 for r in prepared.probes if r.image.number == 3)
    assert num_probes > missed > 0
    result = evaluate(engine, prepared)  # type: ignore[arg-type]
    assert result.counts["no-face"] == missed
    assert engine.num_searches == num_probes - missed
    assert result.rates()["rank1"] == pytest.approx((num_probes - missed) / num_probes)
    assert result.ranks.tolist().count(0) == missed
    # the same variant again: every probe comes from the search cache
    again = evaluate(engine, prepared, cached_only=True)  # type: ignore[arg-type]
    assert engine.num_searches == num_probes - missed
    assert again.counts["from_cache"] == num_probes - missed
    np.testing.assert_array_equal(again.scores, result.scores)

    paths = write_run(result, tmp_path / "out")
    data = np.load(paths["scores"])
    assert data["mated_w24"].shape == (num_probes - missed,)
    assert data["nonmated_w24"].shape == ((num_probes - missed) * (len(prepared.identities) - 1),)
    assert np.all(data["mated_w24"] == 1.0) and np.all(data["nonmated_w24"] < 1.0)
    assert '"rank1"' in paths["json"].read_text()


def test_cached_only_scores_the_probes_a_stopped_run_reached(lfw_root: Path, tmp_path: Path) -> None:
    """A run stopped part-way is summarised over the probes it searched: the others are left out of the result
    (not counted as misses) and nothing is searched."""
    from forensic_face.eval.runner import evaluate, prepare

    engine = _FakeEngine()
    settings = _fake_settings(lfw_root, tmp_path, fallback=True)
    prepared = prepare(engine, settings)  # type: ignore[arg-type]
    full = evaluate(engine, prepared)  # type: ignore[arg-type]
    (rows_file,) = (settings.cache_dir / "searches").glob("*.jsonl")
    header, *rows = rows_file.read_text().splitlines()
    kept = len(rows) // 2
    assert 0 < kept < len(rows)
    rows_file.write_text("\n".join([header, *rows[:kept]]) + "\n")
    searches_before = engine.num_searches

    partial = evaluate(engine, prepared, cached_only=True)  # type: ignore[arg-type]
    assert engine.num_searches == searches_before
    assert partial.counts["not-searched"] == len(rows) - kept
    assert len(partial.probe_names) == len(partial.mated) == partial.scores.shape[0] == kept
    assert partial.probe_names == full.probe_names[:kept]
    np.testing.assert_array_equal(partial.scores, full.scores[:kept])
    assert partial.rates()["rank1"] == 1.0


def test_runner_fallback_uses_known_face(lfw_root: Path, tmp_path: Path) -> None:
    from forensic_face.eval.runner import evaluate, prepare

    engine = _FakeEngine()
    prepared = prepare(engine, _fake_settings(lfw_root, tmp_path, fallback=True))  # type: ignore[arg-type]
    result = evaluate(engine, prepared)  # type: ignore[arg-type]
    assert result.counts["fallback"] == sum(1 for r in prepared.probes if r.image.number == 3) > 0
    assert result.rates()["rank1"] == 1.0


def test_ablation_rows_and_table(lfw_root: Path, tmp_path: Path) -> None:
    from forensic_face.engine.config import EngineConfig
    from forensic_face.eval.ablation import (
        ablation_rows,
        run_ablation,
        select_rows,
        table2_markdown,
    )
    from forensic_face.eval.runner import prepare

    rows = ablation_rows(EngineConfig(device="cpu"), "face-sr", "standard")
    assert len(rows) == 1 + 4 * 3 + 4 + 1
    base = rows[0].config
    assert (base.scales, base.num_blur_hypotheses, base.upsampler, base.budget, base.resolution_matching) == (
        (1,), 1, "bicubic", "none", False)
    final = rows[-1].config
    assert (final.scales, final.fusion, final.budget, final.resolution_matching) == (
        (2, 4, 8), "S_max,S_add", "standard", True)
    assert len({r.config.digest() for r in rows}) == len(rows)

    engine = _FakeEngine()
    prepared = prepare(engine, _fake_settings(lfw_root, tmp_path, fallback=True))  # type: ignore[arg-type]
    chosen = select_rows(rows, "baseline,single-2x")
    outcomes = run_ablation(chosen, prepared, lambda config: engine, tmp_path / "abl")
    table = table2_markdown(outcomes)
    assert "| Baseline (no SR) | 100.00 |" in table
    assert "| +Single-hypothesis SR | 100.00 |  |  |" in table
    assert (tmp_path / "abl" / "baseline" / "cmc.png").is_file()


def test_runner_end_to_end(lfw_root: Path, tmp_path: Path) -> None:
    """The real engine on 3 people: budget fast, 2x bicubic, two blur hypotheses."""
    pytest.importorskip("forensic_face.engine.search")
    import torch

    from forensic_face.engine import Engine
    from forensic_face.engine.config import EngineConfig
    from forensic_face.eval.runner import EvalSettings, evaluate, prepare, write_run

    torch.set_num_threads(1)
    config = EngineConfig(device="cpu", budget="fast", scales=(2,), upsampler="bicubic", num_blur_hypotheses=2,
                          top_k=1)
    engine = Engine(config, cache_dir=tmp_path / "templates")
    settings = EvalSettings(lfw_root=lfw_root, cache_dir=tmp_path / "eval", width_px=24, subset=3,
                            fallback_known_face=True)
    prepared = prepare(engine, settings)
    assert len(prepared.identities) == 3
    result = evaluate(engine, prepared)
    n = len(prepared.probes)
    assert result.scores.shape == (n, 3)
    assert result.counts["detected"] + result.counts["detected-other"] + result.counts["fallback"] == n
    assert not np.isnan(result.scores).any()
    ranks = result.ranks
    assert set(ranks.tolist()) <= {1, 2, 3}
    # the CMC reaches 100 % at the gallery size, and rank-1 is what the ranks say
    assert result.curve[-1] == 1.0
    assert result.rates()["rank1"] == pytest.approx(float(np.mean(ranks == 1)))
    paths = write_run(result, tmp_path / "out")
    assert "recognizer" in paths["json"].read_text()


def test_code_version_flags_code_changes_not_benchmark_outputs(tmp_path: Path, monkeypatch) -> None:
    """A run that rewrites docs/results.md as it goes must not call its own code "uncommitted"."""
    import shutil
    import subprocess

    import forensic_face
    from forensic_face.eval.ablation import code_version

    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    (tmp_path / "forensic_face").mkdir()
    (tmp_path / "docs").mkdir()
    (tmp_path / "forensic_face" / "__init__.py").write_text("x = 1\n")
    (tmp_path / "docs" / "results.md").write_text("old\n")

    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(tmp_path), "-c", "user.name=t", "-c", "user.email=t@t", *args],
                              capture_output=True, text=True, check=True).stdout.strip()

    git("init", "-q")
    git("add", ".")
    git("commit", "-qm", "init")
    commit = git("rev-parse", "HEAD")[:12]
    monkeypatch.setattr(forensic_face, "__file__", str(tmp_path / "forensic_face" / "__init__.py"))
    (tmp_path / "docs" / "results.md").write_text("rewritten by the benchmark\n")
    assert code_version().endswith(f"commit {commit}")
    (tmp_path / "forensic_face" / "__init__.py").write_text("x = 2\n")
    assert code_version().endswith(f"commit {commit} with uncommitted changes")


def test_search_cache_follows_model_weights_and_budget_paths(lfw_root: Path, tmp_path: Path) -> None:
    """Retrained weights under the same model name must not be answered with the old weights' scores."""
    from forensic_face.eval.runner import evaluate, prepare

    engine = _FakeEngine()
    settings = _fake_settings(lfw_root, tmp_path, fallback=False)
    prepared = prepare(engine, settings)
    evaluate(engine, prepared)
    searched = engine.num_searches
    evaluate(engine, prepared)
    assert engine.num_searches == searched  # same weights: every row from the cache
    engine.provenance = lambda: {"engine": "fake", "upsampler": {"name": "face-sr", "weights_sha256": {"2": "new"}}}
    evaluate(engine, prepared)
    assert engine.num_searches == 2 * searched
    # A budget whose name stays but whose paths change (as "fast" did on 2026-12-06) is a new method too.
    engine.provenance = lambda: {"engine": "fake", "upsampler": {"name": "face-sr", "weights_sha256": {"2": "new"}},
                                 "degradation_paths": ["gauss_noise>down>rescale"]}
    evaluate(engine, prepared)
    assert engine.num_searches == 3 * searched
