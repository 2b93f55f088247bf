"""The gallery panel takes a dropped folder and refuses a dropped file."""

from __future__ import annotations

from forensic_face.gui.gallery_panel import GalleryPanel
from tests.gui.helpers import drop_on, mime_with_urls


def test_gallery_panel_drop(qtbot, app, probe_files) -> None:  # type: ignore[no-untyped-def]
    folder, paths = probe_files
    panel = GalleryPanel()
    qtbot.addWidget(panel)
    with qtbot.waitSignal(panel.folder_chosen) as blocker:
        drop_on(panel, mime_with_urls([folder]))
    assert blocker.args[0] == folder
    with qtbot.waitSignal(panel.message) as blocker:
        assert panel.handle_drop(mime_with_urls([paths[0]])) is False
    assert "folder" in blocker.args[0]
