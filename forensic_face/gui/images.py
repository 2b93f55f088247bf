"""Conversions between numpy ``(H, W, 3)`` uint8 RGB arrays and Qt images."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtGui import QImage, QPixmap


def to_qimage(pixels: np.ndarray) -> QImage:
    """Copy an RGB uint8 ``(H, W, 3)`` (or grey ``(H, W)``) array into a QImage that owns its memory."""
    arr = np.asarray(pixels)
    if arr.dtype != np.uint8:
        scale = 255.0 if arr.size and float(arr.max()) <= 1.0 else 1.0
        arr = np.clip(arr.astype(np.float32) * scale + 0.5, 0, 255).astype(np.uint8)
    if arr.ndim == 2:
        arr = np.repeat(arr[:, :, None], 3, axis=2)
    if arr.ndim != 3 or arr.shape[2] not in (3, 4):
        raise ValueError(f"expected an (H, W, 3) image, got shape {arr.shape}")
    arr = np.ascontiguousarray(arr[:, :, :3])
    height, width = arr.shape[:2]
    image = QImage(arr.data, width, height, 3 * width, QImage.Format.Format_RGB888)
    return image.copy()


def to_pixmap(pixels: np.ndarray, max_side: int | None = None, nearest: bool = False) -> QPixmap:
    """A QPixmap of ``pixels``; scaled (keeping aspect) so that its longer side is ``max_side`` if given."""
    pixmap = QPixmap.fromImage(to_qimage(pixels))
    if max_side is not None and max(pixmap.width(), pixmap.height()) != max_side:
        mode = Qt.TransformationMode.FastTransformation if nearest else Qt.TransformationMode.SmoothTransformation
        pixmap = pixmap.scaled(max_side, max_side, Qt.AspectRatioMode.KeepAspectRatio, mode)
    return pixmap


def enlarge_nearest(pixels: np.ndarray, factor: int) -> np.ndarray:
    """Nearest-neighbour enlargement by an integer factor: every original pixel becomes a visible block."""
    if factor < 1:
        raise ValueError(f"factor must be >= 1, got {factor}")
    return np.repeat(np.repeat(np.asarray(pixels), factor, axis=0), factor, axis=1)
