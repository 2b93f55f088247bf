"""Case store: create/open, evidence import, searches round-trip, decisions, enrollment resume after kill -9."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from forensic_face.engine.config import EngineConfig
from forensic_face.engine.errors import CaseStoreError, ImageLoadError
from forensic_face.engine.imaging import sha256_file
from forensic_face.engine.results import (
    Candidate,
    FaceCrop,
    FaceDetection,
    Gallery,
    GalleryEntry,
    GalleryHypothesis,
    GalleryProblem,
    ProbeHypothesis,
    SearchResult,
)
from forensic_face.store import (
    CaseStore,
    EnrollmentItem,
    default_case_path,
    verify_case,
)
from forensic_face.store.schema import APPLICATION_ID, SCHEMA_VERSION


def write_image(path: Path, size: int = 24, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(path)
    return path


def _face(size: float, manual: bool = False) -> FaceDetection:
    return FaceDetection(box=np.array([2.0, 3.0, 2.0 + size, 3.0 + size], np.float32), score=0.98,
                         landmarks=np.array([[6, 8], [12, 8], [9, 11], [7, 14], [11, 14]], np.float32), manual=manual)


def make_gallery(root: Path, names: tuple[str, ...] = ("Alice_A", "Bob_B", "Carol_C")) -> Gallery:
    entries = []
    for k, name in enumerate(names):
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        path = write_image(folder / f"{name}_0001.png", size=64, seed=100 + k)
        crop = FaceCrop(pixels=np.full((40, 40, 3), 30 * k, np.uint8), landmarks=np.zeros((5, 2), np.float32),
                        crop_box=np.array([4, 4, 44, 44], np.float32), face=_face(30.0))
        entries.append(GalleryEntry(name, path, sha256_file(path), crop))
    return Gallery(root=root, entries=tuple(entries),
                   problems=(GalleryProblem(root / "Dan_D" / "broken.jpg", "file is truncated"),))


def make_search_result(probe: Path, gallery: Gallery, scales: tuple[int, ...] = (2, 4), num_sigmas: int = 3,
                       manual: bool = False) -> SearchResult:
    """A small but complete SearchResult built from synthetic arrays (no engine run)."""
    rng = np.random.default_rng(7)
    hyps = {s: tuple(ProbeHypothesis(s, float(sig), rng.integers(0, 255, (12 * s, 12 * s, 3), dtype=np.uint8))
                     for sig in np.linspace(0, 1, num_sigmas)) for s in scales}
    ranking = tuple((e.identity, 0.9 - 0.2 * k) for k, e in enumerate(gallery.entries))
    candidates = []
    for k, entry in enumerate(gallery.entries):
        paths = {s: ("down", "gauss_noise>down", "down>disk_blur") for s in scales}
        candidates.append(Candidate(
            rank=k + 1, identity=entry.identity, image_path=entry.image_path, gallery_sha256=entry.sha256,
            score=ranking[k][1], per_scale_scores={s: ranking[k][1] - 0.01 * s for s in scales},
            best_probe_hypothesis=hyps[scales[-1]][1],
            best_gallery_hypotheses=tuple(GalleryHypothesis(s, "down", 0.5, rng.integers(
                0, 255, (12 * s, 12 * s, 3), dtype=np.uint8)) for s in scales),
            similarity={s: rng.random((num_sigmas, 3)).astype(np.float32) for s in scales},
            gallery_paths=paths))
    crop = FaceCrop(pixels=rng.integers(0, 255, (12, 12, 3), dtype=np.uint8), landmarks=np.zeros((5, 2), np.float32),
                    crop_box=np.array([0, 0, 12, 12], np.float32), face=_face(9.0, manual))
    return SearchResult(probe_path=probe, probe_sha256=sha256_file(probe), probe_face=_face(9.0, manual),
                        probe_crop=crop, candidates=tuple(candidates), ranking=ranking, probe_hypotheses=hyps,
                        provenance={"seed": 0, "recognizer": "dlib-resnet", "weights": {"dlib": "ab" * 32},
                                    "path_like": Path("/x"), "numpy": np.float32(1.5)})


@pytest.fixture()
def case(tmp_path: Path) -> CaseStore:
    store = CaseStore.create(tmp_path / "case.ffcase", "2026-0042", "Robbery at Main St", "J. Examiner")
    yield store
    store.close()


def test_create_open_metadata_and_pragmas(tmp_path: Path) -> None:
    path = tmp_path / "c.ffcase"
    CaseStore.create(path, "N-1", "Title", "Examiner").close()
    with CaseStore.open(path) as store:
        info = store.info()
        assert (info.case_number, info.title, info.examiner, info.schema_version) == ("N-1", "Title", "Examiner",
                                                                                     SCHEMA_VERSION)
        conn = store.connection
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
        assert conn.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
        assert [e.action for e in store.audit_entries()] == ["create"]
    with pytest.raises(CaseStoreError, match="already exists"):
        CaseStore.create(path, "N-1", "T", "E")


def test_open_rejects_non_cases(tmp_path: Path) -> None:
    with pytest.raises(CaseStoreError, match="no such case"):
        CaseStore.open(tmp_path / "missing.ffcase")
    text = tmp_path / "notes.ffcase"
    text.write_text("hello")
    with pytest.raises(CaseStoreError, match="not an SQLite"):
        CaseStore.open(text)
    other = tmp_path / "other.db"
    sqlite3.connect(other).execute("CREATE TABLE t (x)").connection.commit()
    with pytest.raises(CaseStoreError, match="not a forensic_face case"):
        CaseStore.open(other)
    newer = tmp_path / "newer.ffcase"
    CaseStore.create(newer, "N", "T", "E").close()
    raw = sqlite3.connect(newer)
    raw.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    raw.close()
    with pytest.raises(CaseStoreError, match="newer forensic_face"):
        CaseStore.open(newer)


def test_default_case_path_in_data_dir() -> None:
    from forensic_face.paths import data_dir

    path = default_case_path("robbery")
    assert path == data_dir() / "cases" / "robbery.ffcase" and path.parent.is_dir()


def test_add_evidence_hashes_original_and_never_writes_it(case: CaseStore, tmp_path: Path) -> None:
    probe = write_image(tmp_path / "probe.png")
    before = (probe.read_bytes(), probe.stat().st_mtime_ns)
    item = case.add_evidence(probe, "probe")
    assert item.sha256 == sha256_file(probe) and item.role == "probe" and item.size_bytes == len(before[0])
    assert (item.width, item.height) == (24, 24)
    assert (probe.read_bytes(), probe.stat().st_mtime_ns) == before
    assert case.add_evidence(probe, "probe").id == item.id  # same file again: same record
    assert [e.action for e in case.audit_entries()] == ["create", "import"]
    with pytest.raises(CaseStoreError, match="role"):
        case.add_evidence(probe, "suspect")
    with pytest.raises(ImageLoadError):
        case.add_evidence(tmp_path / "nope.png", "probe")
    with pytest.raises(sqlite3.IntegrityError, match="cannot be changed"):
        case.connection.execute("UPDATE evidence SET sha256 = 'x'")


def test_decide_command_records_a_decision_with_its_audit_entry(case: CaseStore, tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    from forensic_face.cli import main

    gallery = make_gallery(tmp_path / "gallery")
    probe = write_image(tmp_path / "probe.png")
    case.add_evidence(probe, "probe")
    search_id = case.record_search(make_search_result(probe, gallery), EngineConfig(), gallery=gallery)
    path = str(case.path)
    assert main(["decide", path, str(search_id), "2", "excluded", "--note", "different ears",
                 "--examiner", "J. Examiner"]) == 0
    assert "rank 2 (Bob_B): excluded by J. Examiner: different ears" in capsys.readouterr().out
    decision = case.search(search_id).candidates[1].decision
    assert (decision.decision, decision.note, decision.examiner) == ("excluded", "different ears", "J. Examiner")
    assert case.audit_entries()[-1].action == "decision"
    assert main(["decide", path, str(search_id), "9", "excluded"]) == 2  # no candidate at rank 9
    assert "rank 9" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # not one of the decisions the report knows
        main(["decide", path, str(search_id), "1", "match"])


def test_search_round_trip_with_decisions_and_lr(case: CaseStore, tmp_path: Path) -> None:
    from forensic_face.calibration import fit_calibration

    gallery = make_gallery(tmp_path / "gallery")
    probe = write_image(tmp_path / "probe.png")
    case.add_evidence(probe, "probe")
    result = make_search_result(probe, gallery)
    rng = np.random.default_rng(0)
    calibration = fit_calibration(rng.normal(0.7, 0.1, 200), rng.normal(0.2, 0.1, 400), band=8)
    config = EngineConfig(scales=(2, 4), budget="fast", seed=5)
    search_id = case.record_search(result, config, gallery=gallery, calibration=calibration)
    case.set_decision(search_id, 1, "possible lead", "similar ear shape")
    case.set_decision(search_id, 2, "excluded", "different hairline")
    case.set_decision(search_id, 2, "inconclusive", "on second review")
    with pytest.raises(CaseStoreError, match="decision must be"):
        case.set_decision(search_id, 1, "match")
    with pytest.raises(CaseStoreError, match="rank 9"):
        case.set_decision(search_id, 9, "excluded")

    stored = case.search(search_id)
    assert stored.config == config and stored.seed == 5 and stored.status == "complete"
    assert stored.probe.sha256 == result.probe_sha256 and stored.face.manual is False
    np.testing.assert_allclose(stored.face.box, result.probe_face.box)
    np.testing.assert_array_equal(stored.probe_crop, result.probe_crop.pixels)
    assert stored.ranking == result.ranking
    assert stored.provenance["path_like"] == "/x" and stored.provenance["numpy"] == 1.5
    assert set(stored.probe_hypotheses) == {2, 4}
    for s in (2, 4):
        for a, b in zip(stored.probe_hypotheses[s], result.probe_hypotheses[s]):
            np.testing.assert_array_equal(a.image, b.image)
            assert a.sigma == pytest.approx(b.sigma)
    assert [c.candidate.identity for c in stored.candidates] == [c.identity for c in result.candidates]
    for sc, orig in zip(stored.candidates, result.candidates):
        c = sc.candidate
        assert c.score == pytest.approx(orig.score) and c.per_scale_scores == pytest.approx(orig.per_scale_scores)
        np.testing.assert_array_equal(c.best_probe_hypothesis.image, orig.best_probe_hypothesis.image)
        for s in (2, 4):
            np.testing.assert_array_equal(c.similarity[s], orig.similarity[s])
            assert c.gallery_paths[s] == orig.gallery_paths[s]
        for a, b in zip(c.best_gallery_hypotheses, orig.best_gallery_hypotheses):
            np.testing.assert_array_equal(a.image, b.image)
        assert sc.gallery_crop is not None and sc.gallery_crop.shape == (40, 40, 3)
        assert sc.log10_lr == pytest.approx(float(calibration.log10_lr([orig.score])[0]))
    lrs = [sc.log10_lr for sc in stored.candidates]
    assert lrs == sorted(lrs, reverse=True)  # higher score, higher LR
    decisions = [(sc.decision.decision, sc.decision.note) for sc in stored.candidates]
    assert decisions == [("possible lead", "similar ear shape"), ("inconclusive", "on second review"),
                         ("not reviewed", "")]
    assert stored.calibration is not None and stored.calibration["band_px"] == 8
    rebuilt = stored.to_search_result()
    assert rebuilt.to_json() == result.to_json() | {"probe": str(stored.probe.path)}

    record = case.gallery(stored.gallery_id)
    assert record.num_identities == 3 and len(record.images) == 3 and len(record.problems) == 1
    assert case.record_gallery(gallery) == record.id  # same gallery recorded once
    actions = [e.action for e in case.audit_entries()]
    assert actions == ["create", "import", "gallery", "search", "decision", "decision", "decision"]
    search_entry = case.audit_entries()[3]
    assert search_entry.details["config"]["seed"] == 5 and search_entry.details["provenance"]["seed"] == 0
    with pytest.raises(CaseStoreError, match="no search"):
        case.search(999)


def test_record_search_imports_probe_and_refuses_changed_file(case: CaseStore, tmp_path: Path) -> None:
    gallery = make_gallery(tmp_path / "gallery")
    probe = write_image(tmp_path / "probe.png")
    result = make_search_result(probe, gallery)
    search_id = case.record_search(result, EngineConfig())  # probe not imported yet: imported now
    assert case.search(search_id).probe.role == "probe"
    probe2 = write_image(tmp_path / "probe2.png", seed=9)
    stale = make_search_result(probe2, gallery)
    object.__setattr__(stale, "probe_sha256", "0" * 64)  # the file differs from what the search read
    with pytest.raises(CaseStoreError, match="changed after the search"):
        case.record_search(stale, EngineConfig())


def test_enrollment_resume_and_finish(case: CaseStore, tmp_path: Path) -> None:
    gallery = make_gallery(tmp_path / "gallery")
    state = case.begin_enrollment(gallery.root, "digest-1", total=4)
    first = [EnrollmentItem(e.image_path, e.identity, e.sha256, "done", e.crop.face, e.crop.crop_box)
             for e in gallery.entries[:2]]
    case.record_enrollment_items(state.id, first)
    resumed = case.begin_enrollment(gallery.root, "digest-1", total=4)
    assert resumed.id == state.id and resumed.num_done == 2
    assert resumed.done_paths == {e.image_path for e in gallery.entries[:2]}
    np.testing.assert_allclose(resumed.items[0].face.box, gallery.entries[0].crop.face.box)
    assert case.begin_enrollment(gallery.root, "digest-2", total=4).id != state.id  # other settings: fresh
    case.record_enrollment_items(state.id, [EnrollmentItem(tmp_path / "x.jpg", "X", "00", "problem",
                                                           reason="no face")])
    gallery_id = case.finish_enrollment(state.id, gallery)
    assert case.enrollment(state.id).status == "done" and gallery_id is not None
    with pytest.raises(CaseStoreError, match="already finished"):
        case.record_enrollment_items(state.id, first)
    assert [s.id for s in case.unfinished_enrollments()] == [state.id + 1]


_WRITER = textwrap.dedent("""
    import sys, numpy as np
    from pathlib import Path
    from forensic_face.store import CaseStore, EnrollmentItem
    from forensic_face.engine.results import FaceDetection
    store = CaseStore.open(sys.argv[1])
    state = store.begin_enrollment(sys.argv[2], "digest", total=100000)
    face = FaceDetection(np.array([1, 2, 30, 31], np.float32), 0.9, np.zeros((5, 2), np.float32))
    k = state.num_done
    print("ready", flush=True)
    while True:
        store.record_enrollment_items(state.id, [EnrollmentItem(Path(f"/g/p{k + j:06d}.jpg"), f"id{k + j}",
                                                 "ab" * 32, "done", face, np.array([0, 0, 40, 40]))
                                                 for j in range(5)])
        k += 5
""")


def test_kill_during_enrollment_leaves_consistent_resumable_case(case: CaseStore, tmp_path: Path) -> None:
    path = case.path
    case.close()
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[2]))
    counts = []
    for _ in range(2):
        proc = subprocess.Popen([sys.executable, "-c", _WRITER, str(path), str(tmp_path / "g")], env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert proc.stdout is not None and proc.stdout.readline().strip() == b"ready", proc.stderr.read()
        time.sleep(1.0)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        with CaseStore.open(path) as store:
            assert store.connection.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
            (state,) = store.unfinished_enrollments()
            counts.append(state.num_done)
            assert state.num_done > 0 and state.num_done % 5 == 0  # whole chunks only
            # Every chunk committed with its audit entry, and the chain is intact.
            progress = [e for e in store.audit_entries() if e.action == "enroll_progress"]
            assert sum(len(e.details["items"]) for e in progress) == state.num_done
    assert counts[1] > counts[0]  # the second run resumed after the first run's last chunk
    report = verify_case(path, record=False)
    assert report.chain.ok and report.ok


@pytest.mark.lfw
def test_real_engine_search_is_stored_and_replays_identically(lfw_test_people, lfw_image, tmp_path: Path,
                                                              capsys: pytest.CaptureFixture) -> None:
    """3 LFW test identities, budget "fast", scale x2, bicubic: store, reload, replay (manual box and detected)."""
    import argparse

    import torch

    from forensic_face.cli.case import ReplayCommand
    from forensic_face.engine import Engine
    from forensic_face.engine.degradations import DEGRADATION_NAMES, all_paths
    from forensic_face.engine.detect import manual_face
    from forensic_face.engine.imaging import load_image
    from forensic_face.store.replay import replay_search

    torch.set_num_threads(1)
    names = [name for name, count in lfw_test_people if count >= 2][:3]
    for name in names:
        (tmp_path / "gallery" / name).mkdir(parents=True)
        (tmp_path / "gallery" / name / f"{name}_0001.jpg").symlink_to(lfw_image(name, 1))
    probe_path = tmp_path / "probe.png"
    Image.open(lfw_image(names[1], 2)).resize((64, 64), Image.Resampling.BICUBIC).save(probe_path)
    config = EngineConfig(device="cpu", budget="fast", scales=(2,), upsampler="bicubic", num_blur_hypotheses=4,
                          top_k=3)
    engine = Engine(config)
    gallery = engine.enroll(tmp_path / "gallery")
    probe = load_image(probe_path)
    detected = engine.search(probe, gallery)
    drawn = engine.search(probe, gallery, face=manual_face(probe.pixels, [16, 14, 48, 52], engine.detector))
    path = tmp_path / "real.ffcase"
    with CaseStore.create(path, "LFW-1", "Engine round trip", "Test") as store:
        store.add_evidence(probe_path, "probe")
        ids = [store.record_search(r, config, gallery=gallery) for r in (detected, drawn)]
        stored = store.search(ids[0])
        assert stored.ranking == tuple((i, float(s)) for i, s in detected.ranking)
        assert stored.provenance["config_sha256"] == config.digest()
        assert store.search(ids[1]).face.manual
        for search_id in ids:
            outcome = replay_search(store, search_id)
            assert outcome.identical, outcome.summary_lines()
            assert outcome.max_score_difference <= 1e-5
        assert [e.action for e in store.audit_entries()][-2:] == ["replay", "replay"]
        # A search made when "fast" meant the 11 singles (before 2026-12-06) replays with its recorded paths.
        before = Engine(config, degradation_paths=all_paths(max_len=1)).search(probe, gallery)
        assert before.provenance["degradation_paths"] == list(DEGRADATION_NAMES)
        old_id = store.record_search(before, config, gallery=gallery)
        outcome = replay_search(store, old_id)
        assert outcome.identical, outcome.summary_lines()
        assert any("11 gallery degradation paths recorded" in n for n in outcome.notes), outcome.notes
    command = ReplayCommand()
    parser = argparse.ArgumentParser()
    command.add_arguments(parser)
    assert command.run(parser.parse_args([str(path), str(ids[0])])) == 0
    assert "IDENTICAL" in capsys.readouterr().out
    # A stored ranking that no longer matches what the files give is reported at its first differing rank.
    raw = sqlite3.connect(path)
    raw.execute("DROP TRIGGER searches_no_update")  # the tampering verify also reports (test_integrity.py)
    swapped = [[i, s] for i, s in reversed(detected.ranking)]
    import json

    raw.execute("UPDATE searches SET ranking_json = ? WHERE id = ?", (json.dumps(swapped), ids[0]))
    raw.commit()
    raw.close()
    assert command.run(parser.parse_args([str(path), str(ids[0])])) == 1
    assert "first difference at rank 1" in capsys.readouterr().out
    # A search that recorded a degradation this version does not know cannot be replayed with other paths.
    raw = sqlite3.connect(path)
    provenance = json.loads(raw.execute("SELECT provenance_json FROM searches WHERE id = ?", (old_id,)).fetchone()[0])
    provenance["degradation_paths"] = ["gauss_noise>down>sepia_tone"]
    raw.execute("UPDATE searches SET provenance_json = ? WHERE id = ?", (json.dumps(provenance), old_id))
    raw.commit()
    raw.close()
    with CaseStore.open(path) as store, pytest.raises(CaseStoreError, match="degradation this version does not have"):
        replay_search(store, old_id)


def test_detection_and_manual_box_are_logged_at_full_precision(case: CaseStore, tmp_path: Path) -> None:
    from forensic_face.engine.results import ImageDetections

    probe = write_image(tmp_path / "probe.png")
    item = case.add_evidence(probe, "probe")
    face = FaceDetection(np.array([1.23456, 2.0, 20.5, 21.0], np.float32), 0.9, np.zeros((5, 2), np.float32))
    case.record_detection(item.id, ImageDetections(str(probe), item.sha256, 24, 24, (face,)))
    case.record_manual_box(item.id, _face(9.0, manual=True))
    detect, manual = case.audit_entries()[-2:]
    assert detect.action == "detect" and detect.details["faces"][0]["box"][0] == float(np.float32(1.23456))
    assert manual.action == "manual_box" and manual.details["face"]["manual"] is True
    with pytest.raises(CaseStoreError, match="SHA-256"):
        case.record_detection(item.id, ImageDetections(str(probe), "0" * 64, 24, 24, ()))
