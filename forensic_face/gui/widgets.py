"""Small reusable widgets: an image tile with a caption, and the in-window message banner."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QPixmap, QResizeEvent
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QSizePolicy,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from forensic_face.gui.images import to_pixmap


class FitImage(QLabel):
    """An image shown at most ``max_side`` px and never wider than the space the layout gives it, so a row of
    them fits a laptop screen without scrolling (a plain QLabel insists on its pixmap's size). ``native``
    images are shown 1:1 and never rescaled: they are the evidence's own pixels."""

    MIN_SIDE = 48

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.setMinimumSize(self.MIN_SIDE, self.MIN_SIDE)
        # A note in place of the image ("rendering…", why it is missing) wraps within the tile, never clipped.
        self.setWordWrap(True)
        self._source = QPixmap()
        self._max_side: int | None = None
        self._nearest = False

    def set_source(self, pixmap: QPixmap, max_side: int | None, nearest: bool) -> None:
        """Show ``pixmap`` fitted to at most ``max_side`` (None: 1:1)."""
        self._source, self._max_side, self._nearest = pixmap, max_side, nearest
        self.setText("")
        self._refit()
        self.updateGeometry()

    def clear_source(self, text: str) -> None:
        self._source = QPixmap()
        self.setPixmap(QPixmap())
        self.setMinimumHeight(self.MIN_SIDE)
        self.setText(text)
        self.updateGeometry()

    def _side(self) -> int:
        src = max(self._source.width(), self._source.height())
        return src if self._max_side is None else self._max_side

    def _refit(self) -> None:
        if self._source.isNull():
            return
        if self._max_side is None:
            self.setPixmap(self._source)
            return
        side = max(self.MIN_SIDE, min(self._max_side, self.width()))
        mode = Qt.TransformationMode.FastTransformation if self._nearest else Qt.TransformationMode.SmoothTransformation
        pixmap = self._source.scaled(side, side, Qt.AspectRatioMode.KeepAspectRatio, mode)
        self.setPixmap(pixmap)
        # The width decides the size; the layout must then give the label the image's height.
        self.setMinimumHeight(max(self.MIN_SIDE, pixmap.height()))

    def sizeHint(self) -> QSize:  # noqa: N802 - Qt override
        if self._source.isNull():
            return QSize(self.MIN_SIDE, self.MIN_SIDE)
        side = self._side()
        return self._source.size().scaled(side, side, Qt.AspectRatioMode.KeepAspectRatio)

    def minimumSizeHint(self) -> QSize:  # noqa: N802 - Qt override
        if self._max_side is None and not self._source.isNull():
            return self._source.size()  # evidence pixels 1:1: never squeezed
        return QSize(self.MIN_SIDE, self.MIN_SIDE)

    def resizeEvent(self, event: QResizeEvent) -> None:  # noqa: N802 - Qt override
        super().resizeEvent(event)
        self._refit()


class ElidedLabel(QLabel):
    """One line of text that takes the width it is given and elides the rest ("…"), the full text in its tooltip.
    A plain QLabel asks for its whole text's width: a long job message or cache path in the status bar then
    widens the window past a laptop screen or squeezes the fields beside it."""

    def __init__(self, text: str = "", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        # Prefers its whole text, yields down to nothing (minimumSizeHint) when the row is short.
        self.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Preferred)
        self._full = ""
        self.setText(text)

    def setText(self, text: str) -> None:  # noqa: N802 - Qt override
        self._full = text
        self.setToolTip(text)
        self._elide()
        self.updateGeometry()

    def full_text(self) -> str:
        return self._full

    def _elide(self) -> None:
        super().setText(self.fontMetrics().elidedText(self._full, Qt.TextElideMode.ElideRight, max(0, self.width())))

    def sizeHint(self) -> QSize:  # noqa: N802 - Qt override
        margins = self.contentsMargins()
        width = self.fontMetrics().horizontalAdvance(self._full) + margins.left() + margins.right() + 2
        return QSize(width, super().sizeHint().height())

    def minimumSizeHint(self) -> QSize:  # noqa: N802 - Qt override
        return QSize(0, super().minimumSizeHint().height())

    def resizeEvent(self, event: QResizeEvent) -> None:  # noqa: N802 - Qt override
        super().resizeEvent(event)
        self._elide()


class ImageTile(QFrame):
    """An image above a caption. ``native=True`` shows the pixels 1:1 (no resampling at all)."""

    def __init__(self, title: str = "", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("imageTile")
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.title = QLabel(title)
        self.title.setObjectName("tileTitle")
        self.title.setWordWrap(True)
        self.image = FitImage()
        self.caption = QLabel()
        self.caption.setObjectName("tileCaption")
        self.caption.setWordWrap(True)
        self.caption.setAlignment(Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignTop)
        self.caption.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.setSpacing(4)
        layout.addWidget(self.title)
        layout.addWidget(self.image, 1)
        layout.addWidget(self.caption)

    def set_image(self, pixels: np.ndarray | None, max_side: int | None = None, nearest: bool = False,
                  caption: str = "") -> None:
        if pixels is None:
            self.image.clear_source("—")
        else:
            self.image.set_source(to_pixmap(pixels), max_side, nearest)
        self.caption.setText(caption)

    def set_pixmap(self, pixmap: QPixmap, caption: str = "") -> None:
        self.image.set_source(pixmap, None, False)
        self.caption.setText(caption)

    def clear(self, text: str = "—") -> None:
        self.image.clear_source(text)
        self.caption.setText("")


class MessageBanner(QFrame):
    """Errors, warnings and notices inside the window (never a modal traceback dialog). A message stays until the
    examiner dismisses it (or a newer one replaces it): a result or warning that vanished on a timer while they
    looked elsewhere would be a result they never saw."""

    LEVELS = ("error", "warning", "info")

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("messageBanner")
        self.label = QLabel()
        self.label.setWordWrap(True)
        self.label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        close = QToolButton()
        close.setText("✕")
        close.setAutoRaise(True)
        close.setToolTip("Dismiss")
        close.clicked.connect(self.hide)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(10, 6, 6, 6)
        layout.addWidget(self.label, 1)
        layout.addWidget(close, 0, Qt.AlignmentFlag.AlignTop)
        self.level = "info"
        self.hide()

    def show_message(self, text: str, level: str = "info") -> None:
        if level not in self.LEVELS:
            level = "info"
        self.level = level
        self.setProperty("level", level)
        self.style().unpolish(self)
        self.style().polish(self)
        prefix = {"error": "Error: ", "warning": "Warning: ", "info": ""}[level]
        self.label.setText(prefix + text)
        self.show()

    def text(self) -> str:
        return self.label.text()
