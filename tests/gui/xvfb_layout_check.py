"""Run by tests/gui/test_gui_xvfb.py inside Xvfb at one screen size: open the window as a user would, show a search
result, and print one JSON line saying whether the key views are fully inside the window.

Not a test module itself (pytest does not collect it): it needs a real X server of a given size.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path

import numpy as np


def synthetic_result(tmp: Path):  # type: ignore[no-untyped-def]
    """A search result the size of a real one: a 31 px probe crop, 8x hypotheses, 160 px portraits, names as
    long as LFW's longest."""
    from PIL import Image

    from forensic_face.engine.config import EngineConfig
    from forensic_face.engine.imaging import sha256_file
    from forensic_face.engine.results import (
        Candidate,
        FaceCrop,
        FaceDetection,
        Gallery,
        GalleryEntry,
        GalleryHypothesis,
        ProbeHypothesis,
        SearchResult,
    )

    rng = np.random.default_rng(0)
    face = FaceDetection(box=np.array([10, 10, 34, 34], np.float32), score=0.99,
                         landmarks=np.array([[17, 19], [27, 19], [22, 24], [18, 29], [26, 29]], np.float32))
    names = ["Maria Soledad Alvear Valenzuela", "Arnold Schwarzenegger", "Gloria Macapagal Arroyo",
             "Luiz Inacio Lula da Silva", "Jennifer Lopez"] + [f"Person {k}" for k in range(15)]
    entries, candidates = [], []
    probe_path = tmp / "cctv frame.png"
    Image.fromarray(rng.integers(0, 255, (120, 160, 3), dtype=np.uint8)).save(probe_path)
    for k, name in enumerate(names):
        ident = name.replace(" ", "_")
        path = tmp / f"{ident}_0001.png"
        Image.fromarray(rng.integers(0, 255, (250, 250, 3), dtype=np.uint8)).save(path)
        crop = FaceCrop(pixels=rng.integers(0, 255, (160, 160, 3), dtype=np.uint8),
                        landmarks=np.zeros((5, 2), np.float32), crop_box=np.array([40, 40, 200, 200], np.float32),
                        face=face)
        entry = GalleryEntry(ident, path, sha256_file(path), crop)
        entries.append(entry)
        variants = tuple(GalleryHypothesis(s, "speckle>down>gauss_noise", 0.5, rng.integers(
            0, 255, (31 * s, 31 * s, 3), dtype=np.uint8), 31 * s) for s in (2, 4, 8))
        candidates.append(Candidate(
            rank=k + 1, identity=ident, image_path=path, gallery_sha256=entry.sha256, score=0.9 - 0.01 * k,
            per_scale_scores={2: 0.3, 4: 0.3, 8: 0.3},
            best_probe_hypothesis=ProbeHypothesis(8, 0.4, rng.integers(0, 255, (248, 248, 3), dtype=np.uint8)),
            best_gallery_hypotheses=variants,
            similarity={s: rng.random((16, 67)).astype(np.float32) for s in (2, 4, 8)},
            gallery_paths={s: ("original",) * 67 for s in (2, 4, 8)}))
    crop = FaceCrop(pixels=rng.integers(0, 255, (31, 31, 3), dtype=np.uint8), landmarks=np.zeros((5, 2), np.float32),
                    crop_box=np.array([6, 6, 37, 37], np.float32), face=face)
    result = SearchResult(probe_path=probe_path, probe_sha256=sha256_file(probe_path), probe_face=face,
                          probe_crop=crop, candidates=tuple(candidates),
                          ranking=tuple((c.identity, c.score) for c in candidates), probe_hypotheses={},
                          provenance={"config": EngineConfig().to_dict(), "scales_used": [2, 4, 8],
                                      "recognizer": {"name": "dlib-resnet-lr", "weights_sha256": "0" * 64},
                                      "upsampler": {"name": "face-sr", "weights_sha256": {}}})
    return Gallery(root=tmp, entries=tuple(entries), problems=()), result


def clip_probe(tmp: Path):  # type: ignore[no-untyped-def]
    """A video probe as the window lists it after following a face through a clip: a track of 24 sampled faces
    with their thumbnails, shown by its best frame (the layout a tester saw outgrow a 1366x768 screen)."""
    from forensic_face.engine.imaging import LoadedImage
    from forensic_face.engine.results import FaceDetection, ImageDetections
    from forensic_face.engine.video import Track, TrackFace, VideoEvidence
    from forensic_face.gui.probe_records import ProbeRecord

    rng = np.random.default_rng(1)
    path = tmp / "parking lot camera 3 — 2026-11-30 23.41.07.mp4"
    video = VideoEvidence(path, "ab" * 32, 10_000_000, 25.0, 1800, 1280, 720)
    face = FaceDetection(box=np.array([600, 300, 628, 334], np.float32), score=0.97,
                         landmarks=np.array([[607, 312], [621, 312], [614, 318], [608, 326], [620, 326]], np.float32))
    track = Track(id=1, faces=[TrackFace(k * 5, k * 0.2, face, 3.0 + k % 4, "cd" * 32,
                                         thumbnail=rng.integers(0, 255, (48, 40, 3), dtype=np.uint8))
                               for k in range(24)])
    pixels = rng.integers(0, 255, (720, 1280, 3), dtype=np.uint8)
    image = LoadedImage(path, pixels, "ef" * 32, 10_000_000, "video", "RGB", 1)
    detections = ImageDetections(source=str(path), sha256=image.sha256, width=1280, height=720, faces=(face,),
                                 upsample_factor=1.0)
    return ProbeRecord(path=path, image=image, video_track=(video, track), video_frame=0, detections=detections)


def tick_label_boxes(panel):  # type: ignore[no-untyped-def]
    """The scene rectangles of the tick labels pyqtgraph draws on every heatmap axis, by axis."""
    from PySide6.QtGui import QImage, QPainter

    canvas = QImage(4, 4, QImage.Format.Format_ARGB32)
    painter = QPainter(canvas)
    boxes = {}
    try:
        for scale, image in panel.images.items():
            plot = image.getViewBox().parentItem()
            for side in ("left", "bottom"):
                axis = plot.getAxis(side)
                specs = axis.generateDrawSpecs(painter)
                boxes[f"x{scale} {side}"] = [axis.mapRectToScene(rect) for rect, _flags, _text in specs[2]]
    finally:
        painter.end()
    return boxes


def overlapping_ticks(panel) -> dict[str, int]:  # type: ignore[no-untyped-def]
    """How many neighbouring tick labels overlap on each heatmap axis (0 everywhere: readable)."""
    out = {}
    for name, rects in tick_label_boxes(panel).items():
        out[name] = sum(1 for a, b in zip(rects, rects[1:]) if a.intersects(b))
    return out


def main(out_dir: str) -> int:
    from PySide6.QtCore import QPoint, QRect, Qt, QTimer
    from PySide6.QtGui import QGuiApplication

    from forensic_face.engine.config import EngineConfig
    from forensic_face.gui.app import create_application
    from forensic_face.gui.main_window import MainWindow

    app = create_application(sys.argv[:1])
    window = MainWindow(config=EngineConfig(device="cpu"))
    gallery, result = synthetic_result(Path(out_dir))
    window.gallery = gallery
    window.show()

    def inside(widget, container) -> bool:  # type: ignore[no-untyped-def]
        top_left = widget.mapTo(container, QPoint(0, 0))
        return widget.isVisible() and container.rect().contains(QRect(top_left, widget.size()))

    # A clip probe listed and a job running (progress, time left, Cancel in the status bar): the state in which
    # a tester saw the window outgrow a 1366x768 screen.
    release = threading.Event()

    def job(_engine, progress, _cancel):  # type: ignore[no-untyped-def]
        for k in range(8):  # time left is estimated after 2 s of measured progress
            progress(k, 10, f"Following faces in {clip.path.name}: frame {200 * k} of 1800")
            time.sleep(0.4)
        release.wait(30)
        return []

    clip = clip_probe(Path(out_dir))

    def start() -> None:
        window.probe_panel.add_records([clip])
        window.runner.start("probes", job, needs_engine=False)
        QTimer.singleShot(3500, check)

    def check() -> None:
        window.show_result(result)
        app.processEvents()
        screen = window.screen().availableGeometry()
        comparison = window.comparison
        viewport = comparison.viewport()
        views = {"probe original": comparison.probe_native.image, "probe enlarged": comparison.probe_enlarged.image,
                 "hypothesis": comparison.enhanced.image, "portrait": comparison.portrait.image}
        table = window.candidates
        metrics = table.fontMetrics()
        # A name is readable when, wrapped to the column, it fits the row (no word cut, no line hidden).
        identity_cut = []
        for r in range(min(5, table.rowCount())):
            text = table.item(r, 2).text()
            width = table.columnWidth(2) - 8
            needed = metrics.boundingRect(QRect(0, 0, width, 10_000), int(Qt.TextFlag.TextWordWrap), text)
            longest_word = max(metrics.horizontalAdvance(w) for w in text.split())
            if longest_word > width or needed.height() > table.rowHeight(r):
                identity_cut.append(text)
        report = {
            "screen": [screen.width(), screen.height()],
            "window": [window.frameGeometry().width(), window.frameGeometry().height()],
            "window_inside_screen": screen.contains(window.frameGeometry()),
            "views_inside": {name: inside(w, viewport) and inside(w, window) for name, w in views.items()},
            "views_px": {name: [w.pixmap().width(), w.pixmap().height()] for name, w in views.items()},
            "views_clipped": [name for name, w in views.items()
                              if w.pixmap().width() > w.width() or w.pixmap().height() > w.height()],
            "comparison_vscroll": comparison.verticalScrollBar().maximum(),
            "comparison_hscroll": comparison.horizontalScrollBar().maximum(),
            "identity_cut": identity_cut,
            "table_inside": inside(table, window),
            "status_bar_on_screen": window.statusBar().isVisible() and screen.contains(QRect(
                window.statusBar().mapToGlobal(QPoint(0, 0)), window.statusBar().size())),
            "status_job_widgets_inside": {w.objectName(): w.isVisible() and inside(w, window.statusBar())
                                          for w in (window.time_left_label, window.progress, window.cancel_button)},
            "time_left": window.time_left_label.text(),
            "time_left_elided": window.time_left_label.width() < window.time_left_label.sizeHint().width(),
            "list_rows_visible": {name: lst.height() // max(1, lst.sizeHintForRow(0)) for name, lst in (
                ("probes", window.probe_panel.list),)},
        }
        window.grab().save(str(Path(out_dir) / f"window_{screen.width()}x{screen.height()}.png"))
        window.tabs.setCurrentWidget(window.heatmaps)
        app.processEvents()
        report["heatmap_tick_overlaps"] = overlapping_ticks(window.heatmaps)
        report["heatmap_axes"] = len(tick_label_boxes(window.heatmaps))
        window.grab().save(str(Path(out_dir) / f"heatmaps_{screen.width()}x{screen.height()}.png"))
        print("LAYOUT " + json.dumps(report), flush=True)
        finish()

    def finish() -> None:
        # A heatmap cell may have asked the worker to render its gallery image: let it end first.
        release.set()
        if window.runner.busy:
            QTimer.singleShot(200, finish)
            return
        window.close()
        app.exit(0)

    QTimer.singleShot(1500, start)
    assert QGuiApplication.platformName() == "xcb", QGuiApplication.platformName()
    return app.exec()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
