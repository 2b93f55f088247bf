"""What a drag-and-drop (or an Open dialog) delivered: image files, folders, and everything else."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from PySide6.QtCore import QMimeData, Qt
from PySide6.QtGui import QDragEnterEvent, QDropEvent

from forensic_face.engine import is_image_path, is_video_path


@dataclass
class DroppedPaths:
    images: list[Path] = field(default_factory=list)
    folders: list[Path] = field(default_factory=list)
    rejected: list[Path] = field(default_factory=list)

    def rejection_message(self) -> str:
        """A one-line explanation of what was ignored, or ``""``."""
        if not self.rejected:
            return ""
        names = ", ".join(p.name or str(p) for p in self.rejected[:3])
        more = f" and {len(self.rejected) - 3} more" if len(self.rejected) > 3 else ""
        return (f"Ignored {len(self.rejected)} item(s) that are not still images or folders: {names}{more}. "
                "Supported: JPEG, PNG, BMP, TIFF, WebP stills and MP4, AVI, MKV, MOV videos.")


def classify_paths(paths: list[Path]) -> DroppedPaths:
    out = DroppedPaths()
    for path in paths:
        if path.is_dir():
            out.folders.append(path)
        elif path.is_file() and (is_image_path(path) or is_video_path(path)):
            out.images.append(path)
        else:
            out.rejected.append(path)
    return out


def paths_from_mime(mime: QMimeData) -> DroppedPaths:
    """Classify the local file URLs of a drop; non-file URLs and plain text are rejected."""
    paths: list[Path] = []
    rejected: list[Path] = []
    for url in mime.urls():
        if url.isLocalFile():
            paths.append(Path(url.toLocalFile()))
        else:
            rejected.append(Path(url.toString()))
    out = classify_paths(paths)
    out.rejected = rejected + out.rejected
    if not mime.urls() and mime.hasText():
        out.rejected.append(Path(mime.text()[:60]))
    return out


def images_in_folder(folder: Path) -> list[Path]:
    """The still images directly in ``folder`` (sorted; sub-folders are not searched)."""
    return sorted(p for p in folder.iterdir() if p.is_file() and is_image_path(p))


class FileDropTarget:
    """Mixin (before the Qt widget base) for panels that take dropped files: URL drags are accepted and the
    mime data goes to the widget's ``handle_drop``, which explains anything it cannot use."""

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:  # noqa: N802 - Qt override
        if event.mimeData().hasUrls():
            # Always a copy: the source application must never think the evidence was moved (a file manager
            # would then delete the original).
            event.setDropAction(Qt.DropAction.CopyAction)
            event.accept()
        else:
            event.ignore()

    def dropEvent(self, event: QDropEvent) -> None:  # noqa: N802 - Qt override
        self.handle_drop(event.mimeData())  # type: ignore[attr-defined]
        event.setDropAction(Qt.DropAction.CopyAction)
        event.accept()
