"""The probe view: a drawn box in image pixels, zoom and pan."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QPointF, Qt

from forensic_face.gui.probe_canvas import FaceBoxView


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
