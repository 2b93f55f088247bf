"""What the GUI tests share besides fixtures (tests/gui/conftest.py): a fast engine config, file drops, waiting
for a window's job, a walking-face clip, and a window showing a synthetic search result with no real engine."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl
from PySide6.QtGui import QDropEvent

from forensic_face.engine.config import EngineConfig
from forensic_face.gui.settings import WindowState

FAST = EngineConfig(device="cpu", budget="fast", scales=(2,), upsampler="bicubic", num_blur_hypotheses=4,
                    batch_size=32, top_k=5)


def mime_with_urls(paths: list[Path], extra_urls: tuple[str, ...] = ()) -> QMimeData:
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(p)) for p in paths] + [QUrl(u) for u in extra_urls])
    return mime


def drop_on(widget, mime: QMimeData) -> None:  # type: ignore[no-untyped-def]
    event = QDropEvent(QPointF(10, 10), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                       Qt.KeyboardModifier.NoModifier)
    widget.dropEvent(event)


def walking_clip(path: Path, patch: np.ndarray, size: tuple[int, int], frames: int, fps: float, top: int,
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


def wait_job(qtbot, window, name: str, timeout_ms: int = 60_000):  # type: ignore[no-untyped-def]
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


class RenderingEngine:
    """Renders gallery hypotheses (cheaply) and nothing else: the window's jobs without loading models."""

    config, device = FAST, "cpu"

    def __init__(self) -> None:
        self.rendered: list[str] = []

    def gallery_hypothesis_image(self, entry, label, target):  # type: ignore[no-untyped-def]
        self.rendered.append(label)
        return np.zeros((24, 24, 3), np.uint8)


def synthetic_window(qtbot, tmp_path: Path):  # type: ignore[no-untyped-def]
    """A window with a search result the size of a real one (tests/gui/xvfb_layout_check.py) and no real engine."""
    from forensic_face.gui.main_window import MainWindow
    from tests.gui.xvfb_layout_check import clip_probe, synthetic_result

    window = MainWindow(config=FAST, state=WindowState(tmp_path / "state.ini"),
                        engine_factory=lambda _config: RenderingEngine())
    window.holder.get()
    qtbot.addWidget(window)
    gallery, result = synthetic_result(tmp_path)
    window.gallery = gallery
    return window, result, clip_probe


class Blocking:
    """A job that runs until released (and says so), so a test can look at the window during a job."""

    def __init__(self) -> None:
        self.release = threading.Event()

    def __call__(self, _engine, progress, _cancel):  # type: ignore[no-untyped-def]
        progress(1, 4, "a long message naming a clip, parking lot camera 3 — 2026-11-30 23.41.07.mp4, frame 400")
        self.release.wait(30)
        return []
