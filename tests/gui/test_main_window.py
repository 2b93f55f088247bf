"""The main window (pytest-qt, offscreen): window state and recent lists, keyboard focus, controls during a job,
and the real engine on a 5-identity LFW gallery: search, decisions, report, cancel, video probes, every face of
a still."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QKeySequence

from forensic_face.gui.candidates import DECISION_COLUMN
from forensic_face.gui.probe_records import ProbeRecord
from forensic_face.gui.settings import WindowState
from tests.gui.helpers import FAST, Blocking, drop_on, mime_with_urls, synthetic_window, wait_job, walking_clip

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


def test_window_state_and_recent_lists(tmp_path: Path, qtbot, app) -> None:  # type: ignore[no-untyped-def]
    from forensic_face.gui.main_window import MainWindow

    state = WindowState(tmp_path / "state.ini")
    window = MainWindow(config=FAST, state=state)
    qtbot.addWidget(window)
    window.resize(701, 503)
    window.save_window_state()
    state.add_recent_gallery(tmp_path / "g1")
    state.add_recent_gallery(tmp_path / "g2")
    state.add_recent_gallery(tmp_path / "g1")
    assert state.recent_galleries() == [str(tmp_path / "g1"), str(tmp_path / "g2")]
    again = MainWindow(config=FAST, state=WindowState(tmp_path / "state.ini"))
    qtbot.addWidget(again)
    assert (again.width(), again.height()) == (701, 503)
    assert [a.text() for a in again.recent_galleries_menu.actions()] == state.recent_galleries()
    shortcuts = {a.text(): [s.toString() for s in a.shortcuts()] for a in again.actions()}
    assert shortcuts["Open &gallery…"] == ["Ctrl+G"] and shortcuts["Add &probes…"] == ["Ctrl+O"]
    assert shortcuts["&Search"] == ["Ctrl+R", "F5"] and shortcuts["Cancel"] == ["Esc"]
    assert QKeySequence("Ctrl+,").toString() in shortcuts["Se&ttings…"]


@pytest.mark.lfw
def test_real_search_fills_candidates_heatmaps_and_screenshot(qtbot, app, lfw_case, tmp_path) -> None:  # type: ignore[no-untyped-def]
    import torch

    from forensic_face.gui.main_window import MainWindow

    torch.set_num_threads(1)
    gallery_dir, probe, people = lfw_case
    window = MainWindow(config=FAST, state=WindowState(tmp_path / "state.ini"))
    qtbot.addWidget(window)
    window.resize(1600, 1000)
    window.show()
    qtbot.waitExposed(window)
    started = time.monotonic()

    drop_on(window.gallery_panel, mime_with_urls([gallery_dir]))
    kind, _ = wait_job(qtbot, window, "enroll")
    assert kind == "finished", window.banner.text()
    assert window.gallery is not None and window.gallery_panel.identities.count() == 5
    assert window.state.recent_galleries()[0] == str(gallery_dir)

    drop_on(window.probe_panel, mime_with_urls([probe]))
    kind, _ = wait_job(qtbot, window, "probes")
    assert kind == "finished", window.banner.text()
    record = window.probe_panel.records[0]
    assert record.image is not None and record.faces, record.status_text()
    assert "face(s)" in window.probe_panel.list.item(0).text()

    assert window.create_case(tmp_path / "Fall ä 1.ffcase", "2024-0173", "GUI test", "pytest")
    partials: list[tuple[float, object]] = []
    window.runner.partial.connect(lambda name, value: partials.append((time.monotonic(), value)))
    search_started = time.monotonic()
    qtbot.keyClick(window, Qt.Key.Key_F5)  # the search shortcut
    kind, _ = wait_job(qtbot, window, "search", timeout_ms=90_000)
    assert kind == "finished", window.banner.text()
    search_s = time.monotonic() - started
    # A provisional ranking was shown first, then replaced by the full result.
    assert partials and partials[0][1][1].provenance["provisional"]
    print(f"provisional ranking after {partials[0][0] - search_started:.1f} s, "
          f"full search after {time.monotonic() - search_started:.1f} s")
    assert "Provisional" not in window.candidates_title.text()
    result = window.current_result()
    assert result is not None and record.result is result
    assert len(window.case_store.search_ids()) == 1, window.banner.text()  # recorded in the open case
    table = window.candidates
    assert table.rowCount() == 5
    assert [table.item(r, 0).text() for r in range(5)] == ["1", "2", "3", "4", "5"]
    assert {table.item(r, 2).text().replace(" ", "_") for r in range(5)} == set(people)
    scores = [float(table.item(r, 3).text()) for r in range(5)]
    assert scores == sorted(scores, reverse=True)

    # Keyboard navigation moves the comparison to the next candidate.
    table.setFocus()
    qtbot.keyClick(table, Qt.Key.Key_Down)
    assert table.currentRow() == 1
    second = result.candidates[1]
    assert second.identity.replace("_", " ") in window.comparison.header.text()
    assert "investigative lead only" in window.comparison.enhanced_badge.text()
    native = window.comparison.probe_native.image.pixmap()
    assert (native.width(), native.height()) == result.probe_crop.pixels.shape[1::-1]

    # One heatmap per scale with explicit levels; a click shows the pair of images of that cell.
    heat = window.heatmaps
    assert sorted(heat.images) == [2]
    image = heat.images[2]
    assert image.image.shape == second.similarity[2].shape and image.image.shape[0] == 4
    assert image.axisOrder == "row-major"
    lo, hi = heat.levels
    assert lo <= float(second.similarity[2].min()) and hi >= float(second.similarity[2].max())
    assert heat.colorbar is not None
    row, col = 3, image.image.shape[1] - 1
    image.clicked.emit(row, col)
    assert f"probe hypothesis {row}" in heat.readout.text() and f"{second.similarity[2][row, col]:.4f}" in \
        heat.readout.text()
    assert not heat.probe_tile.image.pixmap().isNull()
    if heat.gallery_hypothesis(2, col) is None:  # not carried by the candidate: the engine renders it
        kind, _ = wait_job(qtbot, window, "render")
        assert kind == "finished", window.banner.text()
    assert not heat.gallery_tile.image.pixmap().isNull()
    assert image.cell_at(col + 0.5, row + 0.5) == (row, col) and image.cell_at(-1, 0) is None

    # Examiner decisions from the keyboard and with a note, kept in the case with their audit entries.
    search_id = record.search_id
    assert search_id == window.case_store.search_ids()[0]
    table.setFocus()
    table.selectRow(0)
    qtbot.keyClick(table, Qt.Key.Key_L)
    assert window.decide(1, "excluded", "different hairline")
    decisions = window.case_store.decisions(search_id)
    assert decisions[1].decision == "possible lead" and decisions[2].note == "different hairline"
    assert table.item(0, DECISION_COLUMN).text() == "possible lead"
    assert table.item(1, DECISION_COLUMN).text() == "excluded"
    assert [e.action for e in window.case_store.audit_entries()][-2:] == ["decision", "decision"]
    menu = table.decision_menu(2)
    assert [a.text().split("\t")[0] for a in menu.actions()[:4]] == [
        "Possible lead", "Excluded", "Inconclusive", "Not reviewed"]

    # The report, from the window: on the worker thread, with the decisions in it.
    window.open_reports = False
    report = tmp_path / "report ü.pdf"
    assert window.export_report_action.isEnabled()
    assert window.export_report(report, [search_id], examiner="A. Examiner", top=2)
    kind, outcome = wait_job(qtbot, window, "report", timeout_ms=120_000)
    assert kind == "finished", window.banner.text()
    assert report.is_file() and report.read_bytes().startswith(b"%PDF")
    assert "Report written" in window.banner.text()
    if shutil.which("pdftotext"):
        import subprocess

        text = subprocess.run(["pdftotext", str(report), "-"], capture_output=True, text=True, check=True).stdout
        assert "A. Examiner" in text and "possible lead" in text.lower()
    assert window.case_store.audit_entries()[-1].action == "export"

    window.tabs.setCurrentIndex(0)
    table.selectRow(0)
    ARTIFACTS.mkdir(exist_ok=True)
    assert window.grab().save(str(ARTIFACTS / "gui_window.png"))
    window.tabs.setCurrentIndex(1)
    assert window.grab().save(str(ARTIFACTS / "gui_heatmaps.png"))
    print(f"enroll+detect+search through the GUI: {search_s:.1f} s")

    # A still without a face: the user draws the box and manual_face refines it.
    blank = tmp_path / "leer ñ.png"
    from PIL import Image

    Image.fromarray(np.full((64, 64, 3), 90, np.uint8)).save(blank)
    window.add_probes([blank])
    kind, _ = wait_job(qtbot, window, "probes")
    index = len(window.probe_panel.records) - 1
    assert window.probe_panel.records[index].faces == ()
    assert "no face found" in window.probe_panel.list.item(index).text()
    window.probe_panel.list.setCurrentRow(index)
    window.probe_panel.view.box_drawn.emit(10.0, 12.0, 50.0, 56.0)
    # A flat grey still and a box over half of it: the window asks before using it; the examiner says yes.
    dialog = window.probe_panel.box_dialog
    assert dialog is not None and "more than half" in dialog.text()
    dialog.done(int(dialog.StandardButton.Yes))
    kind, _ = wait_job(qtbot, window, "manual")
    assert kind == "finished", window.banner.text()
    chosen = window.probe_panel.records[index].chosen_face
    assert chosen is not None and chosen.manual and list(chosen.box) == [10.0, 12.0, 50.0, 56.0]

    # Preparing the gallery for small probes: a job that fills the template cache a search will look up.
    assert window.warm_action.isEnabled() and window.warm_gallery()
    kind, outcome = wait_job(qtbot, window, "warm", timeout_ms=180_000)
    assert kind == "finished" and outcome.value > 0, window.banner.text()
    assert "Gallery prepared" in window.banner.text()

    # Search all probes: one queued job, every probe with a face searched and recorded in the case.
    assert window.search_all_action.isEnabled()
    before = len(window.case_store.search_ids())
    assert window.search_all()
    kind, outcome = wait_job(qtbot, window, "search-all", timeout_ms=180_000)
    assert kind == "finished", window.banner.text()
    assert outcome.value.total == 2 and not outcome.value.cancelled
    assert all(r.result is not None and r.search_id is not None for r in window.probe_panel.records)
    assert len(window.case_store.search_ids()) == before + 2
    assert "Searched 2 of 2 probes" in window.banner.text()


@pytest.mark.lfw
def test_cancel_stops_a_real_enrollment_promptly(qtbot, app, tmp_path, lfw_test_people, lfw_image) -> None:  # type: ignore[no-untyped-def]
    import torch

    from forensic_face.gui.main_window import MainWindow

    torch.set_num_threads(1)
    gallery = tmp_path / "große Galerie"
    for name, _count in lfw_test_people[:64]:
        (gallery / name).mkdir(parents=True)
        shutil.copy(lfw_image(name, 1), gallery / name / f"{name}_0001.jpg")
    # Small chunks, so the engine checks for cancellation often.
    window = MainWindow(config=FAST.replace(batch_size=8), state=WindowState(tmp_path / "state.ini"))
    qtbot.addWidget(window)
    progress: list[tuple[int, int]] = []
    window.runner.progress.connect(lambda job, done, total, msg: progress.append((done, total)))
    assert window.open_gallery(gallery)
    qtbot.waitUntil(lambda: any(done > 0 for done, _ in progress), timeout=60_000)
    assert window.progress.isVisible() or not window.isVisible()
    pressed = time.monotonic()
    with qtbot.waitSignal(window.runner.cancelled, timeout=5_000) as blocker:
        window.cancel_job()
    latency = time.monotonic() - pressed
    assert blocker.args[0] == "enroll"
    qtbot.waitUntil(lambda: not window.runner.busy, timeout=5_000)
    assert latency < 3.0, f"cancel took {latency:.2f} s"
    assert window.gallery is None
    assert "cancelled" in window.banner.text()
    done, total = progress[-1]
    assert done < total, "enrollment finished before the cancel took effect"
    print(f"cancel latency: {latency:.2f} s at {done}/{total}")


@pytest.mark.lfw
def test_video_probe_searched_from_the_window_and_recorded(qtbot, app, lfw_case, tmp_path, lfw_image) -> None:  # type: ignore[no-untyped-def]
    """A clip dropped on the probe panel becomes a probe per face track; its search fuses the track's best
    frames, is recorded in the case with the video as evidence, and the report names the frames used."""
    import cv2
    import torch
    from PIL import Image

    from forensic_face.gui.main_window import MainWindow

    torch.set_num_threads(1)
    gallery_dir, _, people = lfw_case
    face = np.asarray(Image.open(lfw_image(people[2], 2)).convert("RGB").crop((60, 60, 190, 190))
                      .resize((110, 110), Image.BICUBIC))
    clip = walking_clip(tmp_path / "Kamera 2.avi", face, (180, 320), frames=8, fps=8.0, top=35, left=20, step=20)

    window = MainWindow(config=FAST, state=WindowState(tmp_path / "state.ini"))
    qtbot.addWidget(window)
    window.open_reports = False
    assert window.open_gallery(gallery_dir)
    assert wait_job(qtbot, window, "enroll")[0] == "finished", window.banner.text()
    assert window.create_case(tmp_path / "video.ffcase", "V-1", "clip", "pytest")
    drop_on(window.probe_panel, mime_with_urls([clip]))
    assert wait_job(qtbot, window, "probes")[0] == "finished", window.banner.text()
    record = window.probe_panel.records[0]
    assert record.video_track is not None and "track 1" in window.probe_panel.list.item(0).text()
    window.probe_panel.list.setCurrentRow(0)
    assert window.search_current()
    assert wait_job(qtbot, window, "search", timeout_ms=120_000)[0] == "finished", window.banner.text()
    result = window.current_result()
    video = result.provenance["video"]
    # The filmstrip shows the track's faces frame by frame; the frames the search fused are highlighted, and the
    # timeline walks through them.
    panel = window.probe_panel
    assert panel.track_strip.isVisibleTo(panel) and panel.track_strip.count() == len(record.video_track[1].faces)
    assert sorted(panel.used_frames()) == sorted(f["index"] for f in video["frames"])
    panel.timeline.setValue(panel.track_strip.count() - 1)
    assert panel.track_strip.currentRow() == panel.track_strip.count() - 1
    assert f"frame {record.video_track[1].last.frame_index} of 8" in panel.timeline_label.text()
    assert video["track"] == 1 and 1 <= len(video["frames"]) <= 5
    assert result.probe_path == clip and result.probe_sha256 == video["sha256"]
    assert window.case_store.evidence_items()[0].format == "video"
    # The fused search replays from the same frames of the same file.
    from forensic_face.store.replay import replay_search

    outcome = replay_search(window.case_store, window.probe_panel.records[0].search_id)
    assert outcome.identical and outcome.max_score_difference < 1e-5, outcome.summary_lines()
    from forensic_face.engine.video import frames_searched_text

    assert frames_searched_text(len(video["frames"])) in window.candidates.horizontalHeaderItem(5).toolTip()
    assert window.export_report(tmp_path / "video.pdf", top=1)
    assert wait_job(qtbot, window, "report", timeout_ms=120_000)[0] == "finished", window.banner.text()
    if shutil.which("pdftotext"):
        import subprocess

        text = subprocess.run(["pdftotext", str(tmp_path / "video.pdf"), "-"], capture_output=True, text=True,
                              check=True).stdout
        assert "track 1 of a clip of 8 frames" in " ".join(text.split())


def test_box_drawn_on_a_video_frame_starts_a_track(qtbot, app, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A clip in which the detector finds no face: the examiner scrubs to a frame, draws a box, and the window
    follows it into a track that can be searched."""
    import cv2

    from forensic_face.gui.main_window import MainWindow

    rng = np.random.default_rng(3)
    patch = cv2.GaussianBlur(rng.integers(0, 255, (30, 30, 3), dtype=np.uint8), (0, 0), 1.5)
    clip = walking_clip(tmp_path / "night.avi", patch, (120, 240), frames=12, fps=10.0, top=40, left=20, step=3)

    window = MainWindow(config=FAST, state=WindowState(tmp_path / "state.ini"))
    qtbot.addWidget(window)
    drop_on(window.probe_panel, mime_with_urls([clip]))
    assert wait_job(qtbot, window, "probes")[0] == "finished", window.banner.text()
    panel = window.probe_panel
    record = panel.records[0]
    assert record.video is not None and record.track is None and not record.searchable
    assert "scrub to a frame and draw a box" in panel.list.item(0).text()
    panel.list.setCurrentRow(0)
    assert panel.frame_row.isVisibleTo(panel) and panel.frame_slider.maximum() == 11
    panel.frame_slider.setValue(2)  # released on frame 2: decoded and shown
    assert wait_job(qtbot, window, "frame")[0] == "finished", window.banner.text()
    assert panel.records[0].video_frame == 2 and "2 / 11" in panel.frame_label.text()
    panel.view.box_drawn.emit(26.0, 40.0, 56.0, 70.0)
    assert wait_job(qtbot, window, "video-track")[0] == "finished", window.banner.text()
    record = panel.records[0]
    assert len(panel.records) == 1 and record.track is not None and record.searchable
    assert [f.frame_index for f in record.track.faces] == [2, 7]
    assert "followed on 2 sampled frames (frames 2–7)" in window.banner.text()
    assert abs(float(record.track.faces[1].face.box[0]) - (20 + 3 * 7)) <= 2
    assert "track 1" in panel.list.item(0).text() and panel.track_strip.count() == 2


@pytest.mark.lfw
def test_search_every_face_of_a_still(qtbot, app, lfw_case, tmp_path, lfw_image) -> None:  # type: ignore[no-untyped-def]
    """A still showing two people: *Search every face* lists one probe per face and searches both as one job,
    each ranked and recorded on its own."""
    import torch
    from PIL import Image

    from forensic_face.gui.main_window import MainWindow

    torch.set_num_threads(1)
    gallery_dir, _, people = lfw_case
    pair = Image.new("RGB", (180, 90), (80, 80, 80))
    for k, name in enumerate((people[1], people[3])):
        face = Image.open(lfw_image(name, 2)).convert("RGB").crop((50, 50, 200, 200)).resize((80, 80), Image.BICUBIC)
        pair.paste(face, (5 + 95 * k, 5))
    still = tmp_path / "zwei Personen.png"
    pair.save(still)
    window = MainWindow(config=FAST, state=WindowState(tmp_path / "state.ini"))
    qtbot.addWidget(window)
    assert window.open_gallery(gallery_dir)
    assert wait_job(qtbot, window, "enroll")[0] == "finished", window.banner.text()
    assert window.create_case(tmp_path / "pair.ffcase", "P-2", "two faces", "pytest")
    window.add_probes([still])
    assert wait_job(qtbot, window, "probes")[0] == "finished", window.banner.text()
    panel = window.probe_panel
    panel.list.setCurrentRow(0)
    assert len(panel.records[0].faces) >= 2 and window.search_faces_action.isEnabled()
    assert window.search_all_faces()
    kind, outcome = wait_job(qtbot, window, "search-all", timeout_ms=180_000)
    assert kind == "finished", window.banner.text()
    n = len(panel.records[0].faces)
    assert len(panel.records) == n and outcome.value.total == n
    assert sorted(r.face_of for r in panel.records) == list(range(n))
    assert all(r.result is not None and r.search_id is not None for r in panel.records)
    boxes = {tuple(np.round(r.result.probe_face.box, 1)) for r in panel.records}
    assert len(boxes) == n  # each record searched its own face
    assert "face 2 of" in panel.list.item(1).text()
    window.search_all_faces()  # again: the face records are reused, not added twice
    wait_job(qtbot, window, "search-all", timeout_ms=180_000)
    assert len(panel.records) == n


def test_down_key_in_the_probe_list_keeps_focus_there(qtbot, app, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Browsing probes with the arrow keys shows each one's candidates but leaves the focus in the list, so the
    next L/X/I is not taken as a decision on a candidate."""
    window, result, clip_probe = synthetic_window(qtbot, tmp_path)
    window.show()
    qtbot.waitExposed(window)
    panel = window.probe_panel
    records = [clip_probe(tmp_path), ProbeRecord(path=tmp_path / "still.png", image=clip_probe(tmp_path).image)]
    records[1].result = result
    panel.add_records(records)
    panel.list.setCurrentRow(0)
    window.activateWindow()
    panel.list.setFocus()
    qtbot.waitUntil(panel.list.hasFocus)
    qtbot.keyClick(panel.list, Qt.Key.Key_Down)
    assert panel.current_index() == 1 and window.candidates.rowCount() > 0  # its result is shown…
    assert panel.list.hasFocus() and not window.candidates.hasFocus()  # …and the focus stayed
    decisions: list[object] = []
    window.candidates.decision_requested.connect(lambda *a: decisions.append(a))
    qtbot.keyClick(panel.list, Qt.Key.Key_L)
    assert decisions == []


def test_controls_that_start_jobs_are_disabled_during_a_job(qtbot, app, tmp_path) -> None:  # type: ignore[no-untyped-def]
    window, _, clip_probe = synthetic_window(qtbot, tmp_path)
    window.probe_panel.add_records([clip_probe(tmp_path)])
    window.state.add_recent_gallery(tmp_path)
    window._rebuild_recent_menus()
    controls = {"menu Open gallery": window.open_gallery_action, "menu Add probes": window.add_probe_action,
                "menu New case": window.new_case_action, "menu Open case": window.open_case_action,
                "menu Recent galleries": window.recent_galleries_menu,
                "gallery panel Open gallery": window.gallery_panel.open_button,
                "probe panel Add probes": window.probe_panel.add_button,
                "probe panel Remove": window.probe_panel.remove_button,
                "probe panel Frame": window.probe_panel.frame_slider}
    assert all(c.isEnabled() for c in controls.values()), [n for n, c in controls.items() if not c.isEnabled()]
    blocking = Blocking()
    assert window._start("probes", blocking)
    try:
        assert not [n for n, c in controls.items() if c.isEnabled()]
    finally:
        blocking.release.set()
        qtbot.waitUntil(lambda: not window.runner.busy, timeout=10_000)
    assert all(c.isEnabled() for c in controls.values()), [n for n, c in controls.items() if not c.isEnabled()]
