"""Gallery panel: open or drop a folder, see the enrolled identities and the images that failed."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QIcon
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QListView,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QSplitter,
    QStyle,
    QVBoxLayout,
    QWidget,
)

from forensic_face.engine import Gallery
from forensic_face.gui.drops import FileDropTarget, paths_from_mime
from forensic_face.gui.images import to_pixmap

THUMB_PX = 72


class GalleryPanel(FileDropTarget, QWidget):
    """Shows one enrolled :class:`Gallery`. Emits ``folder_chosen`` for a dropped or opened folder."""

    folder_chosen = Signal(Path)
    open_requested = Signal()
    message = Signal(str, str)  # text, level

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("galleryPanel")
        self.setAcceptDrops(True)
        self.gallery: Gallery | None = None

        self.open_button = QPushButton("Open gallery…")
        self.open_button.setToolTip("Open a gallery folder (Ctrl+G): one sub-folder per identity, or images "
                                    "named after the identity")
        self.open_button.clicked.connect(self.open_requested)
        self.summary = QLabel("Drop a gallery folder here")
        self.summary.setObjectName("panelSummary")
        self.summary.setWordWrap(True)
        top = QHBoxLayout()
        top.addWidget(self.summary, 1)
        top.addWidget(self.open_button)

        self.identities = QListWidget()
        self.identities.setObjectName("identityList")
        self.identities.setViewMode(QListView.ViewMode.IconMode)
        self.identities.setIconSize(QSize(THUMB_PX, THUMB_PX))
        self.identities.setGridSize(QSize(THUMB_PX + 34, THUMB_PX + 34))
        self.identities.setResizeMode(QListView.ResizeMode.Adjust)
        self.identities.setMovement(QListView.Movement.Static)
        self.identities.setUniformItemSizes(True)
        self.identities.setWordWrap(True)
        self.identities.setAcceptDrops(False)
        # Two rows of portraits at least: a splitter may otherwise squeeze the list to one row at 1366x768.
        self.identities.setMinimumHeight(2 * (THUMB_PX + 34) + 6)

        self.problems = QListWidget()
        self.problems.setObjectName("problemList")
        self.problems.setAcceptDrops(False)
        self.problems_label = QLabel("Problems")
        self.problems_label.setObjectName("sectionLabel")
        problems_box = QWidget()
        pl = QVBoxLayout(problems_box)
        pl.setContentsMargins(0, 0, 0, 0)
        pl.addWidget(self.problems_label)
        pl.addWidget(self.problems)

        split = QSplitter(Qt.Orientation.Vertical)
        split.addWidget(self.identities)
        split.addWidget(problems_box)
        split.setStretchFactor(0, 4)
        split.setStretchFactor(1, 1)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.addLayout(top)
        layout.addWidget(split, 1)

    def set_gallery(self, gallery: Gallery) -> None:
        self.gallery = gallery
        self.identities.clear()
        self.problems.clear()
        for entry in gallery.entries:
            item = QListWidgetItem(QIcon(to_pixmap(entry.crop.pixels, THUMB_PX)), entry.identity.replace("_", " "))
            tip = f"{entry.identity}\n{entry.image_path}\nSHA-256 {entry.sha256[:16]}…"
            if entry.note:
                tip += f"\n{entry.note}"
            item.setToolTip(tip)
            item.setData(Qt.ItemDataRole.UserRole, entry.identity)
            self.identities.addItem(item)
        warn = self.style().standardIcon(QStyle.StandardPixmap.SP_MessageBoxWarning)
        for problem in gallery.problems:
            item = QListWidgetItem(warn, f"{problem.image_path.name}: {problem.reason}")
            item.setToolTip(str(problem.image_path))
            self.problems.addItem(item)
        n_ids = len(set(gallery.identities))
        self.summary.setText(f"<b>{gallery.root.name}</b> — {n_ids} identities, {len(gallery.entries)} portraits"
                             + (f", <span style='color:#c0392b'>{len(gallery.problems)} problem(s)</span>"
                                if gallery.problems else ""))
        self.summary.setToolTip(str(gallery.root))
        self.problems_label.setText(f"Problems ({len(gallery.problems)})")

    def set_enrolling(self, folder: Path) -> None:
        self.summary.setText(f"Enrolling <b>{folder.name}</b>…")

    # Drag and drop ----------------------------------------------------------------------------------------
    def handle_drop(self, mime) -> bool:  # type: ignore[no-untyped-def]
        """Enroll the first dropped folder; anything else is explained in a message. True if accepted."""
        dropped = paths_from_mime(mime)
        if dropped.folders:
            if len(dropped.folders) > 1:
                self.message.emit(f"Only one gallery at a time: using {dropped.folders[0].name}.", "warning")
            self.folder_chosen.emit(dropped.folders[0])
            return True
        if dropped.images:
            self.message.emit("A gallery is a folder: drop the folder that holds the portraits (probe stills go "
                              "to the Probes panel).", "warning")
            return False
        self.message.emit("Drop a gallery folder here (one sub-folder per identity, or images named after "
                          "the identity). " + dropped.rejection_message(), "warning")
        return False
