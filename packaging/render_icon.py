"""Render resources/icons/forensic_face.svg to forensic_face.png (256 px, transparent) with Qt, no display needed.

    QT_QPA_PLATFORM=offscreen .venv/bin/python packaging/render_icon.py [size]

The PNG is committed; the Linux .desktop entry and window managers without SVG support use it.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ICONS = Path(__file__).resolve().parents[1] / "resources" / "icons"


def render(size: int = 256) -> Path:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtCore import Qt
    from PySide6.QtGui import QGuiApplication, QImage, QPainter
    from PySide6.QtSvg import QSvgRenderer

    app = QGuiApplication.instance() or QGuiApplication([])  # noqa: F841 (QPainter needs an application)
    renderer = QSvgRenderer(str(ICONS / "forensic_face.svg"))
    if not renderer.isValid():
        raise SystemExit(f"cannot read {ICONS / 'forensic_face.svg'}")
    image = QImage(size, size, QImage.Format.Format_ARGB32)
    image.fill(Qt.GlobalColor.transparent)
    painter = QPainter(image)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    renderer.render(painter)
    painter.end()
    out = ICONS / "forensic_face.png"
    if not image.save(str(out)):
        raise SystemExit(f"cannot write {out}")
    return out


if __name__ == "__main__":
    print(render(int(sys.argv[1]) if len(sys.argv) > 1 else 256))
