"""Shortlist index: exactness, persistence, incremental updates, recognizer mismatch, two-stage search."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("faiss", reason="faiss-cpu is not installed")

from forensic_face.engine.config import EngineConfig  # noqa: E402
from forensic_face.engine.matching import effective_scales, probe_size_bin  # noqa: E402
from forensic_face.engine.results import FaceCrop, FaceDetection, Gallery, GalleryEntry  # noqa: E402
from forensic_face.large_gallery.shortlist import (  # noqa: E402
    INDEX_FILE,
    SIDECAR_FILE,
    GalleryIndex,
    IndexMismatchError,
    IndexRow,
    centre_normalise,
    restrict_gallery,
    sync_index,
)


def _templates(n: int, seed: int = 0, dim: int = 128) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _rows(n: int, per_identity: int = 1) -> list[IndexRow]:
    return [IndexRow(f"id{i // per_identity:05d}", f"{i:064x}", f"/g/{i}.jpg") for i in range(n)]


def _entry(row: IndexRow) -> GalleryEntry:
    face = FaceDetection(box=np.zeros(4), score=1.0, landmarks=np.zeros((5, 2)))
    crop = FaceCrop(pixels=np.zeros((4, 4, 3), np.uint8), landmarks=np.zeros((5, 2)), crop_box=np.zeros(4), face=face)
    return GalleryEntry(identity=row.identity, image_path=Path(row.image_path), sha256=row.sha256, crop=crop)


@dataclass
class _Recognizer:
    name: str = "fake"
    weights_sha256: str = "a" * 64
    flip_test: bool = False


@dataclass
class _Config:
    seed: int = 0


@dataclass
class _FakeEngine:
    """Only what sync_index touches when templates are supplied."""

    recognizer: _Recognizer = field(default_factory=_Recognizer)
    config: _Config = field(default_factory=_Config)


def test_centre_normalise_inner_product_is_correlation() -> None:
    x = _templates(5, seed=1)
    c = centre_normalise(x)
    corr = np.corrcoef(x)
    np.testing.assert_allclose(c @ c.T, corr, atol=1e-5)


def test_flat_shortlist_is_exact_and_groups_portraits_by_identity() -> None:
    templates = _templates(300)
    rows = _rows(300, per_identity=3)  # 100 identities, 3 portraits each
    index = GalleryIndex.build("fake", "a" * 64, rows, templates, kind="flat")
    query = centre_normalise(templates[[7]])
    short = index.shortlist(query, 10)
    assert short[0][0] == "id00002"  # row 7 belongs to identity 2
    assert len(short) == 10 and len({i for i, _ in short}) == 10
    # Exactness: the best score per identity equals brute force.
    sims = (centre_normalise(templates) @ query[0]).reshape(100, 3).max(axis=1)
    expected = np.argsort(-sims, kind="stable")[:10]
    assert [i for i, _ in short] == [f"id{j:05d}" for j in expected]
    np.testing.assert_allclose([s for _, s in short], sims[expected], atol=1e-5)
    # Asking for more identities than exist returns them all.
    assert index.num_identities == 100
    assert len(index.shortlist(query, 1000)) == 100
    index.remove([6, 7, 8])  # every portrait of identity 2
    assert index.num_identities == 99 and "id00002" not in {i for i, _ in index.shortlist(query, 1000)}


def test_ivf_index_finds_planted_mates_and_removes_rows() -> None:
    templates = _templates(5000, seed=2)
    index = GalleryIndex.build("fake", "a" * 64, _rows(5000), templates, kind="ivf")
    assert index.kind == "ivf" and index.index.nlist == 256
    rng = np.random.default_rng(3)
    picks = rng.choice(5000, 20, replace=False)
    queries = centre_normalise(templates[picks] + 0.3 * _templates(20, seed=4))
    found = sum(f"id{p:05d}" in {i for i, _ in index.shortlist(q[None], 10)} for p, q in zip(picks, queries))
    assert found >= 18
    index.remove([int(picks[0])])
    assert index.num_rows == 4999
    assert f"id{picks[0]:05d}" not in {i for i, _ in index.shortlist(queries[[0]], 10)}


def test_save_load_roundtrip_and_integrity(tmp_path: Path) -> None:
    templates = _templates(50)
    index = GalleryIndex.build("fake", "a" * 64, _rows(50), templates, kind="flat")
    index.save(tmp_path)
    loaded = GalleryIndex.load(tmp_path, "fake", "a" * 64)
    q = centre_normalise(templates[[3]])
    assert loaded.shortlist(q, 5) == index.shortlist(q, 5)
    assert loaded.digest() == index.digest()
    with pytest.raises(IndexMismatchError, match="built by"):
        GalleryIndex.load(tmp_path, "fake", "b" * 64)
    with pytest.raises(IndexMismatchError, match="built by"):
        GalleryIndex.load(tmp_path, "other", "a" * 64)
    data = bytearray((tmp_path / INDEX_FILE).read_bytes())
    data[-1] ^= 0xFF
    (tmp_path / INDEX_FILE).write_bytes(bytes(data))
    with pytest.raises(IndexMismatchError, match="hash"):
        GalleryIndex.load(tmp_path, "fake", "a" * 64)


def test_sync_index_incremental_and_rebuild_on_recognizer_change(tmp_path: Path) -> None:
    templates = _templates(40, seed=5)
    rows = _rows(40)
    entries = [_entry(r) for r in rows]
    gallery = Gallery(root=tmp_path, entries=tuple(entries[:30]))
    engine = _FakeEngine()
    index, report = sync_index(engine, gallery, tmp_path / "idx", templates=templates[:30])  # type: ignore[arg-type]
    assert report.rebuilt and report.added == 30 and index.num_rows == 30
    # Add 10 portraits, remove 5: only the delta is touched; row ids of kept portraits are stable.
    ids_before = {r.sha256: i for i, r in index.rows.items()}
    changed = Gallery(root=tmp_path, entries=tuple(entries[5:40]))
    index, report = sync_index(engine, changed, tmp_path / "idx", templates=templates[5:40])  # type: ignore[arg-type]
    assert (report.added, report.removed, report.rebuilt) == (10, 5, False)
    assert index.num_rows == 35
    assert all(ids_before[r.sha256] == i for i, r in index.rows.items() if r.sha256 in ids_before)
    reloaded = GalleryIndex.load(tmp_path / "idx", "fake", "a" * 64)
    assert {r.identity for r in reloaded.rows.values()} == {e.identity for e in changed.entries}
    short = reloaded.shortlist(centre_normalise(templates[[0]]), 35)
    assert "id00000" not in {i for i, _ in short}  # removed portrait can no longer be shortlisted
    assert reloaded.shortlist(centre_normalise(templates[[39]]), 1)[0][0] == "id00039"
    # Same rows, other recognizer weights: a full rebuild with the new templates, never a mix.
    other = _FakeEngine(recognizer=_Recognizer(weights_sha256="c" * 64))
    new_templates = _templates(35, seed=6)
    index, report = sync_index(other, changed, tmp_path / "idx", templates=new_templates)  # type: ignore[arg-type]
    assert report.rebuilt and "built by" in report.reason and report.added == 35
    meta = json.loads((tmp_path / "idx" / SIDECAR_FILE).read_text())
    assert meta["weights_sha256"] == "c" * 64
    vectors = index.index.index.reconstruct_n(0, 35) if hasattr(index.index, "index") else None
    np.testing.assert_allclose(vectors, centre_normalise(new_templates), atol=1e-6)
    with pytest.raises(IndexMismatchError):
        GalleryIndex.load(tmp_path / "idx", "fake", "a" * 64)
    # The same weights under the flip test make other templates: rebuilt too, under the flip family's name.
    flipped = _FakeEngine(recognizer=_Recognizer(weights_sha256="c" * 64, flip_test=True))
    _, report = sync_index(flipped, changed, tmp_path / "idx", templates=new_templates)  # type: ignore[arg-type]
    assert report.rebuilt and json.loads((tmp_path / "idx" / SIDECAR_FILE).read_text())["recognizer"] == "fake+flip"


def test_restrict_gallery_keeps_order(tmp_path: Path) -> None:
    entries = tuple(_entry(r) for r in _rows(6, per_identity=2))
    sub = restrict_gallery(Gallery(root=tmp_path, entries=entries), ["id00002", "id00000"])
    assert [e.sha256 for e in sub.entries] == [entries[i].sha256 for i in (0, 1, 4, 5)]


def test_two_stage_equals_exhaustive_restricted_on_lfw(lfw_root: Path, lfw_test_people, lfw_image,
                                                       tmp_path: Path) -> None:
    import torch

    from forensic_face.engine import Engine
    from forensic_face.engine.config import EngineConfig
    from forensic_face.engine.imaging import load_image
    from forensic_face.large_gallery.shortlist import plain_templates, shortlist_search

    torch.set_num_threads(1)
    people = [name for name, count in lfw_test_people if count >= 2][:5]
    folder = tmp_path / "gallery"
    for name in people:
        (folder / name).mkdir(parents=True)
        (folder / name / f"{name}_0001.jpg").symlink_to(lfw_image(name, 1))
    engine = Engine(EngineConfig(device="cpu", budget="none", scales=(2,), num_blur_hypotheses=2, top_k=5),
                    cache_dir=tmp_path / "templates")
    gallery = engine.enroll(folder)
    index, report = sync_index(engine, gallery, tmp_path / "idx")
    assert report.rebuilt and index.num_rows == len(gallery.entries)
    # A row keeps its portrait's face exactly: re-cropped from the row, it is the enrollment's crop to the bit.
    from forensic_face.large_gallery.shortlist import row_entry

    by_sha = {e.sha256: e for e in gallery.entries}
    for row in index.rows.values():
        crop, enrolled = row_entry(row, engine.config.detector.crop_enlarge).crop, by_sha[row.sha256].crop
        assert crop.face.box.tobytes() == enrolled.face.box.tobytes()
        assert np.array_equal(crop.pixels, enrolled.pixels) and np.array_equal(crop.landmarks, enrolled.landmarks)
    np.testing.assert_allclose(index.index.index.reconstruct_n(0, index.num_rows),
                               centre_normalise(plain_templates(engine, gallery.entries)), atol=1e-5)
    probe = load_image(lfw_image(people[0], 2))
    face = engine.detect(probe).faces[0]
    full = dict(engine.search(probe, gallery, face=face).ranking)
    two = shortlist_search(engine, index, probe, gallery, num_shortlist=2, face=face)
    shortlisted = [i for i, _ in two.shortlist]
    assert len(shortlisted) == 2
    assert [i for i, _ in two.result.ranking] == sorted(shortlisted, key=lambda i: -full[i])
    for identity, score in two.result.ranking:
        assert score == pytest.approx(full[identity], abs=1e-5)
    assert two.result.provenance["shortlist"]["num_shortlist"] == 2
    # A gallery the index does not cover is refused, not searched with a stale index.
    smaller = restrict_gallery(gallery, people[:3])
    with pytest.raises(IndexMismatchError, match="index update"):
        shortlist_search(engine, index, probe, smaller, num_shortlist=2, face=face)


def test_cli_index_build_update_and_search_large(lfw_root: Path, lfw_test_people, lfw_image, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    import torch

    from forensic_face.cli import build_parser
    from forensic_face.cli.large_gallery import IndexCommand, ShortlistSearchCommand

    torch.set_num_threads(1)
    people = [name for name, count in lfw_test_people if count >= 2][:4]
    folder = tmp_path / "gallery"
    for name in people[:3]:
        (folder / name).mkdir(parents=True)
        (folder / name / f"{name}_0001.jpg").symlink_to(lfw_image(name, 1))
    commands = [IndexCommand(), ShortlistSearchCommand()]
    parser = build_parser(commands)
    small = ["--device", "cpu", "--budget", "none", "--scales", "2", "--hypotheses", "2"]
    index_dir = tmp_path / "idx"

    def run(argv: list[str]) -> dict:
        args = parser.parse_args(argv)
        command = next(c for c in commands if c.name == args.command)
        assert command.run(args) == 0
        return json.loads(capsys.readouterr().out)

    built = run(["index", "build", str(folder), "--index", str(index_dir), "--json", *small])
    assert (built["rows"], built["added"], built["rebuilt"]) == (3, 3, True)
    # One portrait removed, one identity added: only the delta is enrolled.
    (folder / people[0] / f"{people[0]}_0001.jpg").unlink()
    (folder / people[0]).rmdir()
    (folder / people[3]).mkdir()
    (folder / people[3] / f"{people[3]}_0001.jpg").symlink_to(lfw_image(people[3], 1))
    updated = run(["index", "update", str(folder), "--index", str(index_dir), "--json", *small])
    assert (updated["rows"], updated["added"], updated["removed"], updated["kept"], updated["rebuilt"]) == \
        (3, 1, 1, 2, False)
    probe = lfw_image(people[3], 2)
    found = run(["search-large", str(probe), "--index", str(index_dir), "--shortlist", "2", "--json", *small])
    assert found[0]["error"] is None and len(found[0]["candidates"]) == 2
    assert found[0]["candidates"][0]["identity"] == people[3]
    # An index whose recorded weights differ is refused by search-large and rebuilt (not mixed) by update.
    meta = json.loads((index_dir / SIDECAR_FILE).read_text())
    meta["weights_sha256"] = "0" * 64
    (index_dir / SIDECAR_FILE).write_text(json.dumps(meta))
    args = parser.parse_args(["search-large", str(probe), "--index", str(index_dir), *small])
    with pytest.raises(IndexMismatchError, match="built by"):
        ShortlistSearchCommand().run(args)
    rebuilt = run(["index", "update", str(folder), "--index", str(index_dir), "--json", *small])
    assert (rebuilt["rows"], rebuilt["added"], rebuilt["kept"], rebuilt["rebuilt"]) == (3, 3, 0, True)
    assert "built by" in rebuilt["reason"]


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
