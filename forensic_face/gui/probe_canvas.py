"""The probe canvas: a still at a fitted, zoomable view with its face boxes, to pick, draw, move or resize a
box (the evidence pixels are never changed; brightness, contrast and gamma change the screen's copy only)."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QPointF, QRectF, QSize, Qt, Signal
from PySide6.QtGui import QBrush, QColor, QMouseEvent, QPainter, QPen
from PySide6.QtWidgets import (
    QGraphicsPixmapItem,
    QGraphicsRectItem,
    QGraphicsScene,
    QGraphicsSimpleTextItem,
    QGraphicsView,
    QWidget,
)

from forensic_face.engine import FaceDetection
from forensic_face.gui.images import to_qimage

#: Handle size (view pixels) for resizing a box by its corner.
HANDLE_PX = 8
#: Zoom limits of the probe view, relative to the fitted view (1 = the whole image fits).
MIN_ZOOM, MAX_ZOOM = 1.0, 64.0
#: One wheel notch or +/- key press zooms by this factor.
ZOOM_STEP = 1.25


def adjust_for_display(pixels: np.ndarray, brightness: float = 0.0, contrast: float = 1.0,
                       gamma: float = 1.0) -> np.ndarray:
    """A display copy of uint8 RGB ``pixels`` ``(H, W, 3)``: contrast about mid-grey, then brightness (added,
    -1..1 of the full range), then gamma (> 1 brightens the shadows). The evidence array is never modified and
    the copy is for the screen only: searches, hashes and reports use the original pixels."""
    if brightness == 0.0 and contrast == 1.0 and gamma == 1.0:
        return pixels
    x = pixels.astype(np.float32) / 255.0
    x = np.clip((x - 0.5) * contrast + 0.5 + brightness, 0.0, 1.0)
    if gamma != 1.0:
        x = x ** (1.0 / gamma)
    return np.ascontiguousarray((x * 255.0 + 0.5).astype(np.uint8))


class FaceBoxView(QGraphicsView):
    """The probe at a fitted zoom (nearest neighbour, so pixels stay pixels) with its face boxes.

    Click a box to use it. Drag on the image to draw a new box; drag inside the chosen box to move it, or at
    its corner to resize it. Every finished drag emits ``box_drawn(x1, y1, x2, y2)`` in image pixels.
    The wheel or + / - zoom (about the mouse), 0 fits the image again; drag with the middle button, or with
    Shift held, to pan.
    """

    box_drawn = Signal(float, float, float, float)
    face_clicked = Signal(int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("faceBoxView")
        self.setScene(QGraphicsScene(self))
        self.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setBackgroundBrush(QBrush(QColor("#1e2227")))
        self.setMinimumSize(200, 160)
        self.setAcceptDrops(False)
        self._pixmap_item: QGraphicsPixmapItem | None = None
        self._boxes: list[QRectF] = []
        self._selected = -1
        self._items: list[QGraphicsRectItem] = []
        self._temp: QGraphicsRectItem | None = None
        self._press: QPointF | None = None
        self._mode = ""
        self._origin_rect = QRectF()
        self._corner = 0
        self._size = (0, 0)
        self._zoom = 1.0
        self._pan_from: QPointF | None = None
        self._pixels: np.ndarray | None = None
        self._display = (0.0, 1.0, 1.0)  # brightness, contrast, gamma: the screen's copy only
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setTransformationAnchor(QGraphicsView.ViewportAnchor.AnchorUnderMouse)

    @property
    def zoom(self) -> float:
        """Magnification relative to the fitted view."""
        return self._zoom

    def set_zoom(self, zoom: float) -> None:
        zoom = min(max(zoom, MIN_ZOOM), MAX_ZOOM)
        if self._pixmap_item is None or zoom == self._zoom:
            return
        self.scale(zoom / self._zoom, zoom / self._zoom)
        self._zoom = zoom

    def set_display(self, brightness: float, contrast: float, gamma: float) -> None:
        """Show the probe brighter, with more contrast or another gamma; the evidence pixels stay as they are."""
        self._display = (brightness, contrast, gamma)
        if self._pixmap_item is not None and self._pixels is not None:
            from PySide6.QtGui import QPixmap

            self._pixmap_item.setPixmap(QPixmap.fromImage(to_qimage(adjust_for_display(self._pixels,
                                                                                       *self._display))))

    def wheelEvent(self, event) -> None:  # type: ignore[no-untyped-def]  # noqa: N802 - Qt override
        notches = event.angleDelta().y() / 120.0
        if self._pixmap_item is None or notches == 0:
            super().wheelEvent(event)
            return
        self.set_zoom(self._zoom * ZOOM_STEP ** notches)
        event.accept()

    def keyPressEvent(self, event) -> None:  # type: ignore[no-untyped-def]  # noqa: N802 - Qt override
        key = event.key()
        if key in (Qt.Key.Key_Plus, Qt.Key.Key_Equal):
            self.set_zoom(self._zoom * ZOOM_STEP)
        elif key == Qt.Key.Key_Minus:
            self.set_zoom(self._zoom / ZOOM_STEP)
        elif key == Qt.Key.Key_0:
            self.set_zoom(1.0)
        else:
            super().keyPressEvent(event)
            return
        event.accept()

    def clear_image(self) -> None:
        self.scene().clear()
        self._pixmap_item = None
        self._pixels = None
        self._zoom = 1.0
        self._items = []
        self._temp = None
        self._boxes = []
        self._size = (0, 0)

    def set_probe(self, pixels: np.ndarray, faces: tuple[FaceDetection, ...], selected: int,
                  manual: FaceDetection | None) -> None:
        # The same image again (a face chosen, a box refined) keeps the zoom and pan the examiner set.
        same = pixels is self._pixels
        zoom, centre = self._zoom, self.mapToScene(self.viewport().rect().center())
        self.clear_image()
        from PySide6.QtGui import QPixmap

        self._pixels = pixels
        item = self.scene().addPixmap(QPixmap.fromImage(to_qimage(adjust_for_display(pixels, *self._display))))
        item.setTransformationMode(Qt.TransformationMode.FastTransformation)
        self._pixmap_item = item
        self._size = (int(pixels.shape[1]), int(pixels.shape[0]))
        self.scene().setSceneRect(QRectF(0, 0, self._size[0], self._size[1]))
        self._boxes = [QRectF(QPointF(f.box[0], f.box[1]), QPointF(f.box[2], f.box[3])) for f in faces]
        if manual is not None:
            self._boxes.append(QRectF(QPointF(manual.box[0], manual.box[1]), QPointF(manual.box[2], manual.box[3])))
        self._selected = len(faces) if (selected < 0 and manual is not None) else selected
        scale_hint = max(self._size) / 300.0
        for i, rect in enumerate(self._boxes):
            is_manual = manual is not None and i == len(self._boxes) - 1
            chosen = i == self._selected
            colour = QColor("#2ecc71" if chosen else ("#3fa7ff" if is_manual else "#f1c40f"))
            pen = QPen(colour, 0)
            pen.setCosmetic(True)
            pen.setWidthF(2.5 if chosen else 1.5)
            if not chosen:
                pen.setStyle(Qt.PenStyle.DashLine)
            rect_item = self.scene().addRect(rect, pen)
            label = QGraphicsSimpleTextItem("manual" if is_manual else f"#{i + 1}")
            label.setBrush(QBrush(colour))
            label.setScale(max(scale_hint, 0.05))
            label.setPos(rect.left(), rect.top() - 14 * max(scale_hint, 0.05))
            self.scene().addItem(label)
            self._items.append(rect_item)
        self._fit()
        if same:
            self.set_zoom(zoom)
            self.centerOn(centre)

    def _fit(self) -> None:
        """The whole image in view (zoom 1)."""
        self._zoom = 1.0
        if self._pixmap_item is not None:
            self.fitInView(self.scene().sceneRect(), Qt.AspectRatioMode.KeepAspectRatio)

    def resizeEvent(self, event) -> None:  # type: ignore[no-untyped-def]  # noqa: N802 - Qt override
        super().resizeEvent(event)
        zoom = self._zoom
        self._fit()
        self.set_zoom(zoom)

    def sizeHint(self) -> QSize:
        return QSize(360, 300)

    # Mouse: click to choose a face, drag to draw, move or resize ---------------------------------------------
    def _clamp(self, p: QPointF) -> QPointF:
        return QPointF(min(max(p.x(), 0.0), float(self._size[0])), min(max(p.y(), 0.0), float(self._size[1])))

    def _pans(self, event: QMouseEvent) -> bool:
        return event.button() == Qt.MouseButton.MiddleButton or (
            event.button() == Qt.MouseButton.LeftButton
            and bool(event.modifiers() & Qt.KeyboardModifier.ShiftModifier))

    def mousePressEvent(self, event: QMouseEvent) -> None:  # noqa: N802 - Qt override
        if self._pixmap_item is not None and self._pans(event):
            self._pan_from = event.position()
            event.accept()
            return
        if self._pixmap_item is None or event.button() != Qt.MouseButton.LeftButton:
            super().mousePressEvent(event)
            return
        p = self._clamp(self.mapToScene(event.position().toPoint()))
        self._press = p
        self._mode = "new"
        if 0 <= self._selected < len(self._boxes):
            rect = self._boxes[self._selected]
            tol = HANDLE_PX / max(self.transform().m11(), 1e-6)
            corners = [rect.topLeft(), rect.topRight(), rect.bottomRight(), rect.bottomLeft()]
            for k, c in enumerate(corners):
                if abs(c.x() - p.x()) <= tol and abs(c.y() - p.y()) <= tol:
                    self._mode, self._corner = "resize", k
                    break
            else:
                if rect.contains(p):
                    self._mode = "move"
            self._origin_rect = QRectF(rect)
        event.accept()

    def _drag_rect(self, p: QPointF) -> QRectF:
        if self._press is None:
            return QRectF()
        if self._mode == "move":
            rect = self._origin_rect.translated(p - self._press)
            dx = min(0.0, self._size[0] - rect.right()) - min(0.0, rect.left())
            dy = min(0.0, self._size[1] - rect.bottom()) - min(0.0, rect.top())
            return rect.translated(dx, dy)
        if self._mode == "resize":
            r = self._origin_rect
            opposite = [r.bottomRight(), r.bottomLeft(), r.topLeft(), r.topRight()][self._corner]
            return QRectF(opposite, p).normalized()
        return QRectF(self._press, p).normalized()

    def mouseMoveEvent(self, event: QMouseEvent) -> None:  # noqa: N802 - Qt override
        if self._pan_from is not None:
            delta = event.position() - self._pan_from
            self._pan_from = event.position()
            self.horizontalScrollBar().setValue(self.horizontalScrollBar().value() - round(delta.x()))
            self.verticalScrollBar().setValue(self.verticalScrollBar().value() - round(delta.y()))
            event.accept()
            return
        if self._press is None:
            super().mouseMoveEvent(event)
            return
        rect = self._drag_rect(self._clamp(self.mapToScene(event.position().toPoint())))
        if self._temp is None:
            pen = QPen(QColor("#3fa7ff"), 0)
            pen.setCosmetic(True)
            pen.setWidthF(2.0)
            self._temp = self.scene().addRect(rect, pen, QBrush(QColor(63, 167, 255, 40)))
        else:
            self._temp.setRect(rect)
        event.accept()

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:  # noqa: N802 - Qt override
        if self._pan_from is not None:
            self._pan_from = None
            event.accept()
            return
        if self._press is None:
            super().mouseReleaseEvent(event)
            return
        p = self._clamp(self.mapToScene(event.position().toPoint()))
        press, self._press = self._press, None
        if self._temp is not None:
            self.scene().removeItem(self._temp)
            self._temp = None
        moved_px = (p - press).manhattanLength() * self.transform().m11()
        if moved_px < 4:
            for i, rect in enumerate(self._boxes):
                if rect.contains(p):
                    self.face_clicked.emit(i)
                    break
            event.accept()
            return
        self._press = press
        rect = self._drag_rect(p)
        self._press = None
        if rect.width() >= 4 and rect.height() >= 4:
            self.box_drawn.emit(rect.left(), rect.top(), rect.right(), rect.bottom())
        event.accept()
