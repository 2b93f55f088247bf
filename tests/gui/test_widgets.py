"""Shared widgets: the message banner stays until the examiner dismisses it."""

from __future__ import annotations

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QToolButton

from tests.gui.helpers import Blocking, synthetic_window


def test_banners_stay_until_dismissed(qtbot, app, tmp_path) -> None:  # type: ignore[no-untyped-def]
    window, _, _ = synthetic_window(qtbot, tmp_path)
    window.show()
    for level in ("info", "warning"):
        window.show_message("Searched 5 of 5 probes.", level)
        qtbot.wait(100)
        assert window.banner.isVisible()
    blocking = Blocking()
    assert window._start("probes", blocking)  # a new job does not hide the last result either
    qtbot.wait(200)
    blocking.release.set()
    qtbot.waitUntil(lambda: not window.runner.busy, timeout=10_000)
    assert window.banner.isVisible() and "Searched 5 of 5" in window.banner.text()
    # Nothing is set to hide it later (a 15 s timer once did).
    assert not [t for t in window.banner.findChildren(QTimer) if t.isActive()]
    window.banner.findChild(QToolButton).click()  # the ✕
    assert not window.banner.isVisible()
