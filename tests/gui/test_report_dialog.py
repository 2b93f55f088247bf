"""The report dialog lists the case's searches with their whole probe names."""

from __future__ import annotations


def test_report_dialog_lists_searches_with_their_whole_probe_names(qtbot, app, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from types import SimpleNamespace

    from forensic_face.gui.report_dialog import ReportDialog

    names = ["parking lot camera 3 — 2026-11-30 23.41.07.mp4", "front door still 0001 — enhanced export.png"]
    store = SimpleNamespace(
        info=lambda: SimpleNamespace(examiner="A. Examiner", case_number="2026-117"),
        search_summaries=lambda: [SimpleNamespace(id=k + 1, created_utc="2026-12-01T10:00:00Z",
                                                  probe_path=tmp_path / name, first_identity="Maria_Soledad_Alvear")
                                  for k, name in enumerate(names)])
    dialog = ReportDialog(store, str(tmp_path))
    qtbot.addWidget(dialog)
    dialog.show()
    qtbot.waitExposed(dialog)
    searches = dialog.searches
    assert searches.viewport().width() >= searches.sizeHintForColumn(0), (searches.viewport().width(),
                                                                          searches.sizeHintForColumn(0))
    assert searches.horizontalScrollBar().maximum() == 0
