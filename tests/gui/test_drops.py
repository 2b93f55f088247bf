"""Files dropped on the window: copies never moves, folders expanded, non-images refused with a message."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QPointF, Qt
from PySide6.QtGui import QDropEvent

from forensic_face.gui.drops import paths_from_mime
from forensic_face.gui.probe_panel import ProbePanel
from tests.gui.helpers import drop_on, mime_with_urls


def test_drop_files_and_folder_on_probe_panel(qtbot, app, probe_files) -> None:  # type: ignore[no-untyped-def]
    folder, paths = probe_files
    panel = ProbePanel()
    qtbot.addWidget(panel)
    with qtbot.waitSignal(panel.paths_dropped) as blocker:
        drop_on(panel, mime_with_urls([paths[0]]))
    assert blocker.args[0] == [paths[0]]
    with qtbot.waitSignal(panel.paths_dropped) as blocker:
        drop_on(panel, mime_with_urls([folder]))
    assert sorted(blocker.args[0]) == sorted(paths)
    assert all(p.exists() for p in blocker.args[0])


def test_drops_are_copies_never_moves(qtbot, app, probe_files) -> None:  # type: ignore[no-untyped-def]
    """A drop proposed as a move (Shift held, as a file manager does) is accepted as a copy: the source
    application must not delete the evidence."""
    from PySide6.QtCore import QPoint
    from PySide6.QtGui import QDragEnterEvent

    _, paths = probe_files
    panel = ProbePanel()
    qtbot.addWidget(panel)
    mime = mime_with_urls([paths[0]])
    enter = QDragEnterEvent(QPoint(5, 5), Qt.DropAction.MoveAction | Qt.DropAction.CopyAction, mime,
                            Qt.MouseButton.LeftButton, Qt.KeyboardModifier.ShiftModifier)
    assert enter.proposedAction() == Qt.DropAction.MoveAction
    panel.dragEnterEvent(enter)
    assert enter.isAccepted() and enter.dropAction() == Qt.DropAction.CopyAction
    drop = QDropEvent(QPointF(10, 10), Qt.DropAction.MoveAction | Qt.DropAction.CopyAction, mime,
                      Qt.MouseButton.LeftButton, Qt.KeyboardModifier.ShiftModifier)
    with qtbot.waitSignal(panel.paths_dropped):
        panel.dropEvent(drop)
    assert drop.isAccepted() and drop.dropAction() == Qt.DropAction.CopyAction
    assert paths[0].exists()


def test_non_image_drop_is_rejected_with_a_message(qtbot, app, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    notes = tmp_path / "notes ü.txt"
    notes.write_text("not an image")
    panel = ProbePanel()
    qtbot.addWidget(panel)
    emitted: list[list[Path]] = []
    panel.paths_dropped.connect(emitted.append)
    with qtbot.waitSignal(panel.message) as blocker:
        drop_on(panel, mime_with_urls([notes], extra_urls=("https://example.org/face.jpg",)))
    text, level = blocker.args
    assert level == "warning" and "notes ü.txt" in text and "not still images" in text
    assert emitted == []
    dropped = paths_from_mime(mime_with_urls([notes]))
    assert dropped.rejected == [notes] and not dropped.images
