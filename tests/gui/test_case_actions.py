"""The case actions of the window: a written report with no PDF viewer to open it."""

from __future__ import annotations

from pathlib import Path

from forensic_face.gui.settings import WindowState
from tests.gui.helpers import FAST


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
