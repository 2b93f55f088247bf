"""Small reusable widgets: an image tile with a caption, and the in-window message banner."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QPixmap
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from forensic_face.gui.images import to_pixmap


class ImageTile(QFrame):
    """An image above a caption. ``native=True`` shows the pixels 1:1 (no resampling at all)."""

    def __init__(self, title: str = "", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("imageTile")
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.title = QLabel(title)
        self.title.setObjectName("tileTitle")
        self.title.setWordWrap(True)
        self.image = QLabel()
        self.image.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.image.setMinimumSize(48, 48)
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
            self.image.setPixmap(QPixmap())
            self.image.setText("—")
        else:
            self.image.setText("")
            self.image.setPixmap(to_pixmap(pixels, max_side=max_side, nearest=nearest))
        self.caption.setText(caption)

    def set_pixmap(self, pixmap: QPixmap, caption: str = "") -> None:
        self.image.setText("")
        self.image.setPixmap(pixmap)
        self.caption.setText(caption)

    def clear(self, text: str = "—") -> None:
        self.image.setPixmap(QPixmap())
        self.image.setText(text)
        self.caption.setText("")


class MessageBanner(QFrame):
    """Errors, warnings and notices inside the window (never a modal traceback dialog)."""

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
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.timeout.connect(self.hide)
        self.hide()

    def show_message(self, text: str, level: str = "info", timeout_ms: int = 0) -> None:
        if level not in self.LEVELS:
            level = "info"
        self.level = level
        self.setProperty("level", level)
        self.style().unpolish(self)
        self.style().polish(self)
        prefix = {"error": "Error: ", "warning": "Warning: ", "info": ""}[level]
        self.label.setText(prefix + text)
        self.show()
        self._timer.stop()
        if timeout_ms > 0:
            self._timer.start(timeout_ms)

    def text(self) -> str:
        return self.label.text()
