"""GUI tests (pytest-qt, offscreen). The LFW tests run the real engine on a 5-identity gallery."""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QMimeData, QPointF, Qt, QTimer, QUrl
from PySide6.QtGui import QDropEvent, QKeySequence
from PySide6.QtWidgets import QToolButton

from forensic_face.engine.config import EngineConfig, parse_scales
from forensic_face.engine.errors import Cancelled, GalleryError
from forensic_face.gui.app import create_application
from forensic_face.gui.drops import paths_from_mime
from forensic_face.gui.gallery_panel import GalleryPanel
from forensic_face.gui.candidates import DECISION_COLUMN
from forensic_face.gui.images import enlarge_nearest, to_qimage
from forensic_face.gui.probe_canvas import FaceBoxView
from forensic_face.gui.probe_panel import ProbePanel
from forensic_face.gui.probe_records import ProbeRecord
from forensic_face.gui.settings import WindowState
from forensic_face.gui.settings_dialog import SettingsDialog
from forensic_face.gui.worker import EngineHolder, JobRunner, fallback_configs
from forensic_face.settings import (
    load_settings,
    save_settings,
    settings_path,
)

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
FAST = EngineConfig(device="cpu", budget="fast", scales=(2,), upsampler="bicubic", num_blur_hypotheses=4,
                    batch_size=32, top_k=5)


def _mime(paths: list[Path], extra_urls: tuple[str, ...] = ()) -> QMimeData:
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(p)) for p in paths] + [QUrl(u) for u in extra_urls])
    return mime


def _drop(widget, mime: QMimeData) -> None:  # type: ignore[no-untyped-def]
    event = QDropEvent(QPointF(10, 10), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                       Qt.KeyboardModifier.NoModifier)
    widget.dropEvent(event)


@pytest.fixture
def app(qapp):  # type: ignore[no-untyped-def]
    return create_application([])


@pytest.fixture
def probe_files(tmp_path: Path, lfw_image) -> tuple[Path, list[Path]]:  # type: ignore[no-untyped-def]
    """Copies of LFW images under names with spaces and non-ASCII characters."""
    folder = tmp_path / "Beweis Ordner ä ö 証拠"
    folder.mkdir()
    sources = [lfw_image("Abdullah_Gul", 2), lfw_image("Abdullah_Gul", 3)]
    paths = []
    for i, src in enumerate(sources):
        dst = folder / f"probe {i} Zoë – ñ.jpg"
        shutil.copy(src, dst)
        paths.append(dst)
    return folder, paths


# Pure helpers --------------------------------------------------------------------------------------------
def test_image_conversion_and_nearest_enlargement() -> None:
    pixels = np.zeros((3, 5, 3), np.uint8)
    pixels[1, 2] = (255, 0, 0)
    big = enlarge_nearest(pixels, 4)
    assert big.shape == (12, 20, 3)
    assert (big[4:8, 8:12] == (255, 0, 0)).all() and big[3, 8].sum() == 0
    image = to_qimage(pixels)
    assert (image.width(), image.height()) == (5, 3)
    assert image.pixelColor(2, 1).red() == 255 and image.pixelColor(1, 1).red() == 0


def test_parse_scales_and_errors() -> None:
    assert parse_scales("8, 2 4,2") == (2, 4, 8)
    for bad in ("", "2, x", "0", "32"):
        with pytest.raises(ValueError):
            parse_scales(bad)


def test_fallback_configs_after_gpu_oom() -> None:
    steps = fallback_configs(EngineConfig(device="cuda", batch_size=64))
    assert [(c.device, c.batch_size) for c, _ in steps] == [("cuda", 16), ("cpu", 64)]
    assert "batch size 16" in steps[0][1] and "CPU" in steps[1][1]
    assert fallback_configs(EngineConfig(device="cpu")) == []


# Drops ---------------------------------------------------------------------------------------------------
def test_drop_files_and_folder_on_probe_panel(qtbot, app, probe_files) -> None:  # type: ignore[no-untyped-def]
    folder, paths = probe_files
    panel = ProbePanel()
    qtbot.addWidget(panel)
    with qtbot.waitSignal(panel.paths_dropped) as blocker:
        _drop(panel, _mime([paths[0]]))
    assert blocker.args[0] == [paths[0]]
    with qtbot.waitSignal(panel.paths_dropped) as blocker:
        _drop(panel, _mime([folder]))
    assert sorted(blocker.args[0]) == sorted(paths)
    assert all(p.exists() for p in blocker.args[0])


def test_drops_are_copies_never_moves(qtbot, app, probe_files) -> None:  # type: ignore[no-untyped-def]
    """A drop proposed as a move (Shift held, as a file manager does) is accepted as a copy: the source
    application must not delete the evidence."""
    from PySide6.QtCore import QPoint
    from PySide6.QtGui import QDragEnterEvent

    _, paths = probe_files
    panel = ProbePanel()
    qtbot.addWidget(panel)
    mime = _mime([paths[0]])
    enter = QDragEnterEvent(QPoint(5, 5), Qt.DropAction.MoveAction | Qt.DropAction.CopyAction, mime,
                            Qt.MouseButton.LeftButton, Qt.KeyboardModifier.ShiftModifier)
    assert enter.proposedAction() == Qt.DropAction.MoveAction
    panel.dragEnterEvent(enter)
    assert enter.isAccepted() and enter.dropAction() == Qt.DropAction.CopyAction
    drop = QDropEvent(QPointF(10, 10), Qt.DropAction.MoveAction | Qt.DropAction.CopyAction, mime,
                      Qt.MouseButton.LeftButton, Qt.KeyboardModifier.ShiftModifier)
    with qtbot.waitSignal(panel.paths_dropped):
        panel.dropEvent(drop)
    assert drop.isAccepted() and drop.dropAction() == Qt.DropAction.CopyAction
    assert paths[0].exists()


def test_a_report_with_no_pdf_viewer_says_so(tmp_path: Path, qtbot, app, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from types import SimpleNamespace

    from forensic_face.gui import case_actions
    from forensic_face.gui.main_window import MainWindow

    window = MainWindow(config=FAST, state=WindowState(tmp_path / "state.ini"))
    qtbot.addWidget(window)
    monkeypatch.setattr(case_actions.QDesktopServices, "openUrl", lambda url: False)
    report = SimpleNamespace(path=tmp_path / "r.pdf", num_pages=3, sha256="0" * 64,
                             verification=SimpleNamespace(ok=True))
    window.open_reports = True
    window.report_written(report)
    assert "no PDF viewer could be opened" in window.banner.text()


def test_non_image_drop_is_rejected_with_a_message(qtbot, app, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    notes = tmp_path / "notes ü.txt"
    notes.write_text("not an image")
    panel = ProbePanel()
    qtbot.addWidget(panel)
    emitted: list[list[Path]] = []
    panel.paths_dropped.connect(emitted.append)
    with qtbot.waitSignal(panel.message) as blocker:
        _drop(panel, _mime([notes], extra_urls=("https://example.org/face.jpg",)))
    text, level = blocker.args
    assert level == "warning" and "notes ü.txt" in text and "not still images" in text
    assert emitted == []
    dropped = paths_from_mime(_mime([notes]))
    assert dropped.rejected == [notes] and not dropped.images


def test_gallery_panel_drop(qtbot, app, probe_files) -> None:  # type: ignore[no-untyped-def]
    folder, paths = probe_files
    panel = GalleryPanel()
    qtbot.addWidget(panel)
    with qtbot.waitSignal(panel.folder_chosen) as blocker:
        _drop(panel, _mime([folder]))
    assert blocker.args[0] == folder
    with qtbot.waitSignal(panel.message) as blocker:
        assert panel.handle_drop(_mime([paths[0]])) is False
    assert "folder" in blocker.args[0]


def test_drawing_a_box_reports_image_pixels(qtbot, app) -> None:  # type: ignore[no-untyped-def]
    view = FaceBoxView()
    qtbot.addWidget(view)
    view.resize(400, 400)
    view.show()
    qtbot.waitExposed(view)
    view.set_probe(np.full((100, 100, 3), 128, np.uint8), (), 0, None)
    start = view.mapFromScene(QPointF(20, 30))
    end = view.mapFromScene(QPointF(60, 80))
    with qtbot.waitSignal(view.box_drawn) as blocker:
        qtbot.mousePress(view.viewport(), Qt.MouseButton.LeftButton, pos=start)
        qtbot.mouseMove(view.viewport(), pos=(start + end) / 2)
        qtbot.mouseMove(view.viewport(), pos=end)
        qtbot.mouseRelease(view.viewport(), Qt.MouseButton.LeftButton, pos=end)
    x1, y1, x2, y2 = blocker.args
    assert abs(x1 - 20) < 2 and abs(y1 - 30) < 2 and abs(x2 - 60) < 2 and abs(y2 - 80) < 2


# Settings ------------------------------------------------------------------------------------------------
def test_settings_dialog_builds_and_persists_config(qtbot, app) -> None:  # type: ignore[no-untyped-def]
    dialog = SettingsDialog(EngineConfig())
    qtbot.addWidget(dialog)
    dialog.editors["device"].show("cpu")
    dialog.editors["budget"].show("fast")
    dialog.editors["scales"].widget.setText("4, 2")
    dialog.editors["top_k"].show(7)
    dialog.editors["num_blur_hypotheses"].show(4)
    dialog.editors["flip_test"].show(not EngineConfig().flip_test)
    dialog.accept()
    config = dialog.config()
    assert (config.device, config.budget, config.scales, config.top_k, config.num_blur_hypotheses) == \
        ("cpu", "fast", (2, 4), 7, 4)
    assert config.flip_test is not EngineConfig().flip_test
    path = save_settings(config)
    assert path == settings_path() and load_settings() == config


def test_settings_dialog_shows_every_user_setting_and_restores_defaults(qtbot, app) -> None:  # type: ignore[no-untyped-def]
    from forensic_face.engine.config import USER_SETTINGS

    edited = EngineConfig(device="cpu", recognizer="dlib-resnet", flip_test=False, upsampler="bicubic", budget="fast",
                          scales=(2,), fusion="S_add,S_add", num_blur_hypotheses=3, batch_size=5, top_k=7,
                          video_frames=2, video_fusion="template-mean")
    dialog = SettingsDialog(edited)
    qtbot.addWidget(dialog)
    assert list(dialog.editors) == [s.name for s in USER_SETTINGS if s.label is not None]
    assert dialog.build_config() == edited  # each editor shows its setting's value and reads it back
    dialog._restore_defaults()
    assert dialog.build_config() == EngineConfig()


def test_settings_dialog_offers_every_fusion_once_default_first(qtbot, app) -> None:  # type: ignore[no-untyped-def]
    from forensic_face.engine.fusion import FusionSpec, canonical_fusions

    dialog = SettingsDialog(EngineConfig(fusion="S_add"))  # an alias saved by hand stays selectable
    qtbot.addWidget(dialog)
    fusion = dialog.editors["fusion"].widget
    offered = [fusion.itemText(i) for i in range(fusion.count())]
    assert offered[0] == EngineConfig().fusion
    assert sorted(offered[:-1]) == sorted(canonical_fusions()) and offered[-1] == "S_add"
    assert len({FusionSpec.parse(name) for name in offered[:-1]}) == len(offered) - 1
    assert fusion.currentText() == "S_add"


def test_settings_dialog_offers_the_measured_ensemble_and_checks_typed_ones(qtbot, app) -> None:  # type: ignore[no-untyped-def]
    dialog = SettingsDialog(EngineConfig())
    qtbot.addWidget(dialog)
    recognizer = dialog.editors["recognizer"].widget
    offered = [recognizer.itemText(i) for i in range(recognizer.count())]
    assert "dlib-resnet-lr+faceres" in offered and "faceres" in offered
    recognizer.setCurrentText("dlib-resnet-lr+mobileface")
    dialog.accept()
    assert dialog.config().recognizer == "dlib-resnet-lr+mobileface"
    dialog = SettingsDialog(EngineConfig())
    qtbot.addWidget(dialog)
    dialog.editors["recognizer"].show("dlib-resnet-lr+nonet")
    dialog.accept()
    assert dialog.result() != int(SettingsDialog.DialogCode.Accepted) and "nonet" in dialog.error.text()


def test_settings_dialog_refuses_invalid_input(qtbot, app) -> None:  # type: ignore[no-untyped-def]
    original = EngineConfig()
    dialog = SettingsDialog(original)
    qtbot.addWidget(dialog)
    dialog.editors["scales"].widget.setText("two")
    dialog.accept()
    assert dialog.result() != int(SettingsDialog.DialogCode.Accepted)
    assert "scales" in dialog.error.text()
    assert dialog.config() == original


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


# Worker --------------------------------------------------------------------------------------------------
def test_worker_reports_errors_and_retries_gpu_oom(qtbot, app) -> None:  # type: ignore[no-untyped-def]
    import torch

    # The "engine" here is the config it was built from, so the test sees which config each attempt used.
    holder = EngineHolder(EngineConfig(device="cuda", batch_size=8), factory=lambda config: config)
    runner = JobRunner(holder)
    used: list[tuple[str, int]] = []

    def oom_twice(engine, progress, cancel):  # type: ignore[no-untyped-def]
        used.append((engine.device, engine.batch_size))
        if len(used) < 3:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return "done on " + engine.device

    notices: list[str] = []
    runner.notice.connect(notices.append)
    with qtbot.waitSignal(runner.finished, timeout=5000) as blocker:
        assert runner.start("search", oom_twice)
    assert blocker.args == ["search", "done on cpu"]
    assert used == [("cuda", 8), ("cuda", 2), ("cpu", 8)]
    assert len(notices) == 2 and "CPU" in notices[1]
    qtbot.waitUntil(lambda: not runner.busy)

    def typed_error(engine, progress, cancel):  # type: ignore[no-untyped-def]
        raise GalleryError("/cases/gallery: no usable faces")

    with qtbot.waitSignal(runner.failed, timeout=5000) as blocker:
        runner.start("enroll", typed_error)
    assert blocker.args == ["enroll", "/cases/gallery: no usable faces"]
    qtbot.waitUntil(lambda: not runner.busy)

    def bug(engine, progress, cancel):  # type: ignore[no-untyped-def]
        return {}["missing"]

    with qtbot.waitSignal(runner.failed, timeout=5000) as blocker:
        runner.start("search", bug)
    assert "Unexpected error (KeyError)" in blocker.args[1] and "Traceback" not in blocker.args[1]
    qtbot.waitUntil(lambda: not runner.busy)


def test_worker_runs_off_the_gui_thread(qtbot, app) -> None:  # type: ignore[no-untyped-def]
    holder = EngineHolder(EngineConfig(), factory=lambda config: config)
    runner = JobRunner(holder)
    seen: dict[str, object] = {}

    def task(engine, progress, cancel):  # type: ignore[no-untyped-def]
        seen["thread"] = threading.current_thread()
        progress(1, 2, "half")
        if cancel():
            raise Cancelled()
        return 42

    with qtbot.waitSignal(runner.finished, timeout=5000):
        runner.start("probes", task)
    assert seen["thread"] is not threading.main_thread()
    qtbot.waitUntil(lambda: not runner.busy)
    assert runner.start("x", task) and not runner.start("y", task)  # one job at a time
    qtbot.waitUntil(lambda: not runner.busy)


# Real engine on LFW --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def lfw_case(tmp_path_factory, lfw_test_people, lfw_image):  # type: ignore[no-untyped-def]
    """A 5-identity gallery (first image each) under a non-ASCII path with spaces, and a small probe still."""
    from PIL import Image

    base = tmp_path_factory.mktemp("lfw gui")
    people = [name for name, count in lfw_test_people if count >= 2][:5]
    gallery = base / "Galerie Fälle ü"
    for name in people:
        (gallery / name).mkdir(parents=True)
        shutil.copy(lfw_image(name, 1), gallery / name / f"{name}_0001.jpg")
    (gallery / people[0] / "notes.txt").write_text("not an image")
    probe = base / "Überwachung Kamera 3.png"
    # 250 px LFW frame -> 90 px: the face becomes about 40 px wide, a small surveillance-like face.
    Image.open(lfw_image(people[2], 2)).resize((90, 90), Image.BICUBIC).save(probe)
    return gallery, probe, people


def _walking_clip(path: Path, patch: np.ndarray, size: tuple[int, int], frames: int, fps: float, top: int,
                  left: int, step: int) -> Path:
    """An MJPG clip of ``patch`` moving right by ``step`` px per frame over a plain background."""
    import cv2

    h, w = size
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (w, h))
    for k in range(frames):
        frame = np.full((h, w, 3), 65, np.uint8)
        frame[top:top + patch.shape[0], left + step * k:left + step * k + patch.shape[1]] = patch
        writer.write(np.ascontiguousarray(frame[:, :, ::-1]))
    writer.release()
    return path


def _wait_job(qtbot, window, name: str, timeout_ms: int = 60_000):  # type: ignore[no-untyped-def]
    outcomes: list[tuple[str, object]] = []

    def record(kind: str):  # type: ignore[no-untyped-def]
        return lambda job, value: outcomes.append((kind, value)) if job == name else None

    slots = [record("finished"), record("failed"), record("cancelled")]
    window.runner.finished.connect(slots[0])
    window.runner.failed.connect(slots[1])
    window.runner.cancelled.connect(slots[2])
    try:
        qtbot.waitUntil(lambda: bool(outcomes) and not window.runner.busy, timeout=timeout_ms)
    finally:
        window.runner.finished.disconnect(slots[0])
        window.runner.failed.disconnect(slots[1])
        window.runner.cancelled.disconnect(slots[2])
    return outcomes[0]


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

    _drop(window.gallery_panel, _mime([gallery_dir]))
    kind, _ = _wait_job(qtbot, window, "enroll")
    assert kind == "finished", window.banner.text()
    assert window.gallery is not None and window.gallery_panel.identities.count() == 5
    assert window.state.recent_galleries()[0] == str(gallery_dir)

    _drop(window.probe_panel, _mime([probe]))
    kind, _ = _wait_job(qtbot, window, "probes")
    assert kind == "finished", window.banner.text()
    record = window.probe_panel.records[0]
    assert record.image is not None and record.faces, record.status_text()
    assert "face(s)" in window.probe_panel.list.item(0).text()

    assert window.create_case(tmp_path / "Fall ä 1.ffcase", "2024-0173", "GUI test", "pytest")
    partials: list[tuple[float, object]] = []
    window.runner.partial.connect(lambda name, value: partials.append((time.monotonic(), value)))
    search_started = time.monotonic()
    qtbot.keyClick(window, Qt.Key.Key_F5)  # the search shortcut
    kind, _ = _wait_job(qtbot, window, "search", timeout_ms=90_000)
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
        kind, _ = _wait_job(qtbot, window, "render")
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
    kind, outcome = _wait_job(qtbot, window, "report", timeout_ms=120_000)
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
    kind, _ = _wait_job(qtbot, window, "probes")
    index = len(window.probe_panel.records) - 1
    assert window.probe_panel.records[index].faces == ()
    assert "no face found" in window.probe_panel.list.item(index).text()
    window.probe_panel.list.setCurrentRow(index)
    window.probe_panel.view.box_drawn.emit(10.0, 12.0, 50.0, 56.0)
    # A flat grey still and a box over half of it: the window asks before using it; the examiner says yes.
    dialog = window.probe_panel.box_dialog
    assert dialog is not None and "more than half" in dialog.text()
    dialog.done(int(dialog.StandardButton.Yes))
    kind, _ = _wait_job(qtbot, window, "manual")
    assert kind == "finished", window.banner.text()
    chosen = window.probe_panel.records[index].chosen_face
    assert chosen is not None and chosen.manual and list(chosen.box) == [10.0, 12.0, 50.0, 56.0]

    # Preparing the gallery for small probes: a job that fills the template cache a search will look up.
    assert window.warm_action.isEnabled() and window.warm_gallery()
    kind, outcome = _wait_job(qtbot, window, "warm", timeout_ms=180_000)
    assert kind == "finished" and outcome.value > 0, window.banner.text()
    assert "Gallery prepared" in window.banner.text()

    # Search all probes: one queued job, every probe with a face searched and recorded in the case.
    assert window.search_all_action.isEnabled()
    before = len(window.case_store.search_ids())
    assert window.search_all()
    kind, outcome = _wait_job(qtbot, window, "search-all", timeout_ms=180_000)
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
    clip = _walking_clip(tmp_path / "Kamera 2.avi", face, (180, 320), frames=8, fps=8.0, top=35, left=20, step=20)

    window = MainWindow(config=FAST, state=WindowState(tmp_path / "state.ini"))
    qtbot.addWidget(window)
    window.open_reports = False
    assert window.open_gallery(gallery_dir)
    assert _wait_job(qtbot, window, "enroll")[0] == "finished", window.banner.text()
    assert window.create_case(tmp_path / "video.ffcase", "V-1", "clip", "pytest")
    _drop(window.probe_panel, _mime([clip]))
    assert _wait_job(qtbot, window, "probes")[0] == "finished", window.banner.text()
    record = window.probe_panel.records[0]
    assert record.video_track is not None and "track 1" in window.probe_panel.list.item(0).text()
    window.probe_panel.list.setCurrentRow(0)
    assert window.search_current()
    assert _wait_job(qtbot, window, "search", timeout_ms=120_000)[0] == "finished", window.banner.text()
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
    assert _wait_job(qtbot, window, "report", timeout_ms=120_000)[0] == "finished", window.banner.text()
    if shutil.which("pdftotext"):
        import subprocess

        text = subprocess.run(["pdftotext", str(tmp_path / "video.pdf"), "-"], capture_output=True, text=True,
                              check=True).stdout
        assert "track 1 of a clip of 8 frames" in " ".join(text.split())


def test_each_track_of_a_video_is_its_own_probe(qtbot, app, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from forensic_face.engine.video import Track, VideoEvidence

    video = VideoEvidence(tmp_path / "clip.mp4", "ab" * 32, 10, 25.0, 100, 320, 180)
    panel = ProbePanel()
    qtbot.addWidget(panel)
    records = [ProbeRecord(path=video.path, video_track=(video, Track(id=k))) for k in (1, 2)]
    panel.add_records(records)
    panel.add_records(records[:1])  # the same track again: not added twice
    assert len(panel.records) == 2


def test_box_drawn_on_a_video_frame_starts_a_track(qtbot, app, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A clip in which the detector finds no face: the examiner scrubs to a frame, draws a box, and the window
    follows it into a track that can be searched."""
    import cv2

    from forensic_face.gui.main_window import MainWindow

    rng = np.random.default_rng(3)
    patch = cv2.GaussianBlur(rng.integers(0, 255, (30, 30, 3), dtype=np.uint8), (0, 0), 1.5)
    clip = _walking_clip(tmp_path / "night.avi", patch, (120, 240), frames=12, fps=10.0, top=40, left=20, step=3)

    window = MainWindow(config=FAST, state=WindowState(tmp_path / "state.ini"))
    qtbot.addWidget(window)
    _drop(window.probe_panel, _mime([clip]))
    assert _wait_job(qtbot, window, "probes")[0] == "finished", window.banner.text()
    panel = window.probe_panel
    record = panel.records[0]
    assert record.video is not None and record.track is None and not record.searchable
    assert "scrub to a frame and draw a box" in panel.list.item(0).text()
    panel.list.setCurrentRow(0)
    assert panel.frame_row.isVisibleTo(panel) and panel.frame_slider.maximum() == 11
    panel.frame_slider.setValue(2)  # released on frame 2: decoded and shown
    assert _wait_job(qtbot, window, "frame")[0] == "finished", window.banner.text()
    assert panel.records[0].video_frame == 2 and "2 / 11" in panel.frame_label.text()
    panel.view.box_drawn.emit(26.0, 40.0, 56.0, 70.0)
    assert _wait_job(qtbot, window, "video-track")[0] == "finished", window.banner.text()
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
    assert _wait_job(qtbot, window, "enroll")[0] == "finished", window.banner.text()
    assert window.create_case(tmp_path / "pair.ffcase", "P-2", "two faces", "pytest")
    window.add_probes([still])
    assert _wait_job(qtbot, window, "probes")[0] == "finished", window.banner.text()
    panel = window.probe_panel
    panel.list.setCurrentRow(0)
    assert len(panel.records[0].faces) >= 2 and window.search_faces_action.isEnabled()
    assert window.search_all_faces()
    kind, outcome = _wait_job(qtbot, window, "search-all", timeout_ms=180_000)
    assert kind == "finished", window.banner.text()
    n = len(panel.records[0].faces)
    assert len(panel.records) == n and outcome.value.total == n
    assert sorted(r.face_of for r in panel.records) == list(range(n))
    assert all(r.result is not None and r.search_id is not None for r in panel.records)
    boxes = {tuple(np.round(r.result.probe_face.box, 1)) for r in panel.records}
    assert len(boxes) == n  # each record searched its own face
    assert "face 2 of" in panel.list.item(1).text()
    window.search_all_faces()  # again: the face records are reused, not added twice
    _wait_job(qtbot, window, "search-all", timeout_ms=180_000)
    assert len(panel.records) == n


# Issue 33: the window at 1366x768 -------------------------------------------------------------------------------
class _RenderingEngine:
    """Renders gallery hypotheses (cheaply) and nothing else: the window's jobs without loading models."""

    config, device = FAST, "cpu"

    def __init__(self) -> None:
        self.rendered: list[str] = []

    def gallery_hypothesis_image(self, entry, label, target):  # type: ignore[no-untyped-def]
        self.rendered.append(label)
        return np.zeros((24, 24, 3), np.uint8)


def _synthetic_window(qtbot, tmp_path: Path):  # type: ignore[no-untyped-def]
    """A window with a search result the size of a real one (tests/xvfb_layout_check.py) and no real engine."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from xvfb_layout_check import clip_probe, synthetic_result

    from forensic_face.gui.main_window import MainWindow

    window = MainWindow(config=FAST, state=WindowState(tmp_path / "state.ini"),
                        engine_factory=lambda _config: _RenderingEngine())
    window.holder.get()
    qtbot.addWidget(window)
    gallery, result = synthetic_result(tmp_path)
    window.gallery = gallery
    return window, result, clip_probe


class _Blocking:
    """A job that runs until released (and says so), so a test can look at the window during a job."""

    def __init__(self) -> None:
        self.release = threading.Event()

    def __call__(self, _engine, progress, _cancel):  # type: ignore[no-untyped-def]
        progress(1, 4, "a long message naming a clip, parking lot camera 3 — 2026-11-30 23.41.07.mp4, frame 400")
        self.release.wait(30)
        return []


def test_banners_stay_until_dismissed(qtbot, app, tmp_path) -> None:  # type: ignore[no-untyped-def]
    window, _, _ = _synthetic_window(qtbot, tmp_path)
    window.show()
    for level in ("info", "warning"):
        window.show_message("Searched 5 of 5 probes.", level)
        qtbot.wait(100)
        assert window.banner.isVisible()
    blocking = _Blocking()
    assert window._start("probes", blocking)  # a new job does not hide the last result either
    qtbot.wait(200)
    blocking.release.set()
    qtbot.waitUntil(lambda: not window.runner.busy, timeout=10_000)
    assert window.banner.isVisible() and "Searched 5 of 5" in window.banner.text()
    # Nothing is set to hide it later (a 15 s timer once did).
    assert not [t for t in window.banner.findChildren(QTimer) if t.isActive()]
    window.banner.findChild(QToolButton).click()  # the ✕
    assert not window.banner.isVisible()


def test_down_key_in_the_probe_list_keeps_focus_there(qtbot, app, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Browsing probes with the arrow keys shows each one's candidates but leaves the focus in the list, so the
    next L/X/I is not taken as a decision on a candidate."""
    window, result, clip_probe = _synthetic_window(qtbot, tmp_path)
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
    window, _, clip_probe = _synthetic_window(qtbot, tmp_path)
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
    blocking = _Blocking()
    assert window._start("probes", blocking)
    try:
        assert not [n for n, c in controls.items() if c.isEnabled()]
    finally:
        blocking.release.set()
        qtbot.waitUntil(lambda: not window.runner.busy, timeout=10_000)
    assert all(c.isEnabled() for c in controls.values()), [n for n, c in controls.items() if not c.isEnabled()]


def test_heatmap_cell_clicked_during_a_job_is_rendered_after_it(qtbot, app, tmp_path) -> None:  # type: ignore[no-untyped-def]
    window, result, _ = _synthetic_window(qtbot, tmp_path)
    rendered = window.holder.engine.rendered
    blocking = _Blocking()
    assert window._start("probes", blocking)
    window.show_result(result)
    heatmaps = window.heatmaps
    heatmaps.select_cell(2, 3, 5)  # the synthetic candidate carries no image for this path: to be rendered
    note = heatmaps.gallery_tile.image.text()
    assert "when the running job ends" in note and heatmaps.pending_render() is not None
    blocking.release.set()
    qtbot.waitUntil(lambda: heatmaps.pending_render() is None and not window.runner.busy, timeout=10_000)
    assert rendered and not heatmaps.gallery_tile.image.pixmap().isNull()


def test_report_dialog_lists_searches_with_their_whole_probe_names(qtbot, app, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from types import SimpleNamespace

    from forensic_face.gui.report_dialog import ReportDialog

    names = ["parking lot camera 3 — 2026-11-30 23.41.07.mp4", "front door still 0001 — enhanced export.png"]
    store = SimpleNamespace(
        info=lambda: SimpleNamespace(examiner="A. Examiner", case_number="2026-117"),
        search_summaries=lambda: [SimpleNamespace(id=k + 1, created_utc="2026-12-01T10:00:00Z",
                                                  probe_path=tmp_path / name, first_identity="Maria_Soledad_Alvear")
                                  for k, name in enumerate(names)])
    dialog = ReportDialog(store, str(tmp_path))
    qtbot.addWidget(dialog)
    dialog.show()
    qtbot.waitExposed(dialog)
    searches = dialog.searches
    assert searches.viewport().width() >= searches.sizeHintForColumn(0), (searches.viewport().width(),
                                                                          searches.sizeHintForColumn(0))
    assert searches.horizontalScrollBar().maximum() == 0


# Looking at the probe ----------------------------------------------------------------------------------------
def test_probe_view_zooms_and_pans(qtbot, app) -> None:  # type: ignore[no-untyped-def]
    from forensic_face.gui.probe_canvas import ZOOM_STEP

    view = FaceBoxView()
    qtbot.addWidget(view)
    view.resize(320, 240)
    view.show()
    qtbot.waitExposed(view)
    view.set_probe(np.zeros((240, 320, 3), np.uint8), (), 0, None)
    fitted = view.transform().m11()
    qtbot.keyClick(view, Qt.Key.Key_Plus)
    qtbot.keyClick(view, Qt.Key.Key_Plus)
    assert view.zoom == pytest.approx(ZOOM_STEP ** 2) and view.transform().m11() == pytest.approx(fitted * ZOOM_STEP ** 2)
    qtbot.keyClick(view, Qt.Key.Key_Minus)
    assert view.zoom == pytest.approx(ZOOM_STEP)
    from PySide6.QtCore import QPoint
    from PySide6.QtGui import QWheelEvent

    centre = QPointF(160, 120)
    view.wheelEvent(QWheelEvent(centre, view.mapToGlobal(centre), QPoint(), QPoint(0, 240),
                                Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier,
                                Qt.ScrollPhase.NoScrollPhase, False))
    assert view.zoom == pytest.approx(ZOOM_STEP ** 3)
    # Shift-drag pans (no box is drawn).
    drawn: list[tuple[float, ...]] = []
    view.box_drawn.connect(lambda *b: drawn.append(b))
    before = view.mapToScene(view.viewport().rect().center())
    qtbot.mousePress(view.viewport(), Qt.MouseButton.LeftButton, Qt.KeyboardModifier.ShiftModifier, QPoint(200, 150))
    qtbot.mouseMove(view.viewport(), QPoint(120, 100))
    qtbot.mouseRelease(view.viewport(), Qt.MouseButton.LeftButton, Qt.KeyboardModifier.ShiftModifier, QPoint(120, 100))
    after = view.mapToScene(view.viewport().rect().center())
    assert after.x() > before.x() + 5 and after.y() > before.y() + 5 and drawn == []
    qtbot.keyClick(view, Qt.Key.Key_0)
    assert view.zoom == 1.0 and view.transform().m11() == pytest.approx(fitted)


def test_display_adjustments_never_touch_the_evidence(qtbot, app, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from forensic_face.engine.imaging import LoadedImage

    pixels = np.random.default_rng(0).integers(0, 120, (60, 80, 3), dtype=np.uint8)
    original = pixels.copy()
    panel = ProbePanel()
    qtbot.addWidget(panel)
    panel.add_records([ProbeRecord(path=tmp_path / "dark.png",
                                   image=LoadedImage(tmp_path / "dark.png", pixels, "0" * 64, 1, "PNG", "RGB", 1))])
    shown_before = panel.view._pixmap_item.pixmap().toImage().pixelColor(10, 10).red()
    panel.brightness.setValue(60)
    panel.gamma.setValue(50)
    shown_after = panel.view._pixmap_item.pixmap().toImage().pixelColor(10, 10).red()
    assert shown_after > shown_before  # the screen shows it brighter…
    assert np.array_equal(panel.records[0].image.pixels, original)  # …the evidence is as it was
    panel.reset_display()
    assert panel.view._pixmap_item.pixmap().toImage().pixelColor(10, 10).red() == shown_before


@pytest.mark.parametrize("box, why", [((10, 10, 15, 40), "too small"), ((0, 0, 70, 50), "more than half"),
                                      ((40, 5, 70, 35), "no face-like detail")])
def test_implausible_drawn_box_asks_first(qtbot, app, tmp_path, box, why) -> None:  # type: ignore[no-untyped-def]
    from forensic_face.engine.imaging import LoadedImage

    pixels = np.zeros((100, 120, 3), np.uint8)
    pixels[:, :40] = np.random.default_rng(1).integers(0, 255, (100, 40, 3), dtype=np.uint8)  # detail on the left
    panel = ProbePanel()
    qtbot.addWidget(panel)
    panel.add_records([ProbeRecord(path=tmp_path / "p.png",
                                   image=LoadedImage(tmp_path / "p.png", pixels, "0" * 64, 1, "PNG", "RGB", 1))])
    drawn: list[tuple[int, tuple]] = []
    panel.box_drawn.connect(lambda i, b: drawn.append((i, b)))
    panel.view.box_drawn.emit(*map(float, box))
    assert drawn == [] and panel.box_dialog is not None and why in panel.box_dialog.text()
    panel.box_dialog.done(int(panel.box_dialog.StandardButton.No))
    assert drawn == []
    panel.view.box_drawn.emit(*map(float, box))
    panel.box_dialog.done(int(panel.box_dialog.StandardButton.Yes))
    assert drawn == [(0, tuple(map(float, box)))]
    panel.view.box_drawn.emit(5.0, 20.0, 35.0, 48.0)  # a plausible box: no question
    assert drawn[-1] == (0, (5.0, 20.0, 35.0, 48.0)) and panel.box_dialog is None


def test_open_set_cue_is_shown_above_the_candidates(qtbot, app, tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """The window says whether the ranking supports that the person is in the gallery or not, and without an open-set
    calibration for the settings says there is no cue (never a made-up one)."""
    import dataclasses

    from forensic_face.calibration import CalibrationSet, engine_conditions_from_provenance, fit_calibration
    from forensic_face.calibration import open_set

    window, result, _ = _synthetic_window(qtbot, tmp_path)
    monkeypatch.setattr(open_set, "OPEN_SET_CALIBRATION_DIR", tmp_path / "none")
    window.show_result(result)
    label = window.open_set
    assert label.isVisibleTo(window) and "No open-set cue" in label.text()
    assert "Open-set cue not available: no open-set calibration is installed" in label.toolTip()
    rng = np.random.default_rng(0)
    base = fit_calibration(rng.normal(3, 1, 50), rng.normal(0, 1, 50), band=24)
    folder = tmp_path / "open_set"
    (folder / "gallery_30").mkdir(parents=True)
    conditions = engine_conditions_from_provenance(result.provenance)
    for intercept, expected in ((-10.0, "may not be in the gallery"),
                                (-6.0, "support that the person is in the gallery")):
        # log10 LR = 10 * rank-1 score + intercept; the synthetic rank 1 scores 0.9
        cal = dataclasses.replace(base, slope=10.0, intercept=intercept, lower_log10_lr=-2.0, upper_log10_lr=3.0,
                                  method=f"{open_set.METHOD_PREFIX}top1; test")
        CalibrationSet((cal,), {"engine": conditions}).save(folder / "gallery_30" / "w24.json")
        monkeypatch.setattr(open_set, "OPEN_SET_CALIBRATION_DIR", folder)
        window.show_result(result)
        assert expected in label.text(), label.text()
        assert "held-out Cllr" in label.toolTip() and "not which candidate" in label.toolTip()
    assert "Open set: LR 1e+03, moderately strong support" in label.text(), label.text()
    window.show_result(None)
    assert not label.isVisibleTo(window)
