"""Gallery enrollment: a folder of portraits becomes a :class:`Gallery` of face crops.

A gallery folder holds one sub-folder per identity (any number of portraits each), or images named after
their identity, or both. Every file that cannot be enrolled is listed with its reason; nothing is dropped
silently.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from forensic_face.engine.callbacks import Progress, ShouldCancel, check_cancel
from forensic_face.engine.detect import MtcnnDetector, crop_face, largest_face
from forensic_face.engine.errors import GalleryError, ImageLoadError
from forensic_face.engine.imaging import is_image_path, load_image
from forensic_face.engine.results import Gallery, GalleryEntry, GalleryProblem

log = logging.getLogger(__name__)


def list_gallery_images(folder: Path) -> tuple[list[tuple[str, Path]], list[GalleryProblem]]:
    """``(identity, image path)`` pairs in a stable order, and the files that are not images. A missing folder,
    a file, or a folder without images raises :class:`GalleryError`."""
    folder = Path(folder)
    if not folder.exists():
        raise GalleryError(f"gallery folder {folder} does not exist; choose an existing folder")
    if not folder.is_dir():
        raise GalleryError(f"{folder} is a file, not a gallery folder; choose the folder that holds the portraits")
    items: list[tuple[str, Path]] = []
    problems: list[GalleryProblem] = []
    for child in sorted(folder.iterdir(), key=lambda p: p.name):
        if child.name.startswith("."):
            continue
        if child.is_dir():
            for image in sorted(child.rglob("*"), key=lambda p: str(p)):
                if image.is_file() and not image.name.startswith("."):
                    if is_image_path(image):
                        items.append((child.name, image))
                    else:
                        problems.append(GalleryProblem(image, f"not an image file ({image.suffix or 'no suffix'})"))
        elif is_image_path(child):
            items.append((child.stem, child))
        elif child.is_file():
            problems.append(GalleryProblem(child, f"not an image file ({child.suffix or 'no suffix'})"))
    if not items:
        raise GalleryError(
            f"gallery folder {folder} holds no images; put one portrait per identity in it "
            "(sub-folders named after identities, or files named after them)"
        )
    return items, problems


def enroll_items(
    items: Sequence[tuple[str, Path]],
    detector: MtcnnDetector,
    crop_enlarge: float = 1.3,
    min_face_px: int = 40,
    chunk_size: int = 16,
    progress: Progress = None,
    should_cancel: ShouldCancel = None,
) -> tuple[list[GalleryEntry], list[GalleryProblem]]:
    """Load, hash, detect and crop ``(identity, path)`` pairs. The largest face of each image is enrolled (and
    noted when there were several); images without a face, or that fail to load, become problems."""
    entries: list[GalleryEntry] = []
    problems: list[GalleryProblem] = []
    total = len(items)
    for start in range(0, total, chunk_size):
        check_cancel(should_cancel, "enrollment cancelled by the user")
        loaded = []
        for identity, path in items[start:start + chunk_size]:
            try:
                loaded.append((identity, load_image(path)))
            except ImageLoadError as exc:
                problems.append(GalleryProblem(path, f"{exc.reason}" + (f" ({exc.hint})" if exc.hint else "")))
        detections = detector.detect([image.pixels for _, image in loaded], min_face_px=min_face_px)
        for (identity, image), faces in zip(loaded, detections):
            if not faces:
                # Portraits may be small thumbnails: retry once searching for smaller faces.
                faces = detector.detect([image.pixels])[0]
            if not faces:
                problems.append(GalleryProblem(image.path, "no face found"))
                continue
            face = largest_face(faces)
            note = f"{len(faces)} faces found; the largest was used" if len(faces) > 1 else ""
            entries.append(GalleryEntry(identity=identity, image_path=image.path, sha256=image.sha256,
                                        crop=crop_face(image.pixels, face, crop_enlarge), note=note))
        if progress is not None:
            progress(min(start + chunk_size, total), total, "enrolling")
    return entries, problems


def enroll_gallery(
    folder: Path,
    detector: MtcnnDetector,
    crop_enlarge: float = 1.3,
    min_face_px: int = 40,
    chunk_size: int = 16,
    progress: Progress = None,
    should_cancel: ShouldCancel = None,
) -> Gallery:
    """Enroll every portrait of a gallery folder (see :func:`enroll_items`); problems are listed, not dropped."""
    folder = Path(folder)
    items, problems = list_gallery_images(folder)
    entries, item_problems = enroll_items(items, detector, crop_enlarge, min_face_px, chunk_size,
                                          progress, should_cancel)
    return assemble_gallery(folder, len(items), entries, problems + item_problems)


def require_faces(folder: Path, num_images: int, num_entries: int) -> None:
    """Raise :class:`GalleryError` when none of the folder's ``num_images`` images gave an enrollable face."""
    if num_entries == 0:
        raise GalleryError(f"no face was found in any of the {num_images} images in {folder}; "
                           "check that the folder holds face portraits")


def assemble_gallery(folder: Path, num_images: int, entries: Sequence[GalleryEntry],
                     problems: Sequence[GalleryProblem]) -> Gallery:
    """The :class:`Gallery` of an enrolled folder; refuses one in which no image gave a face."""
    require_faces(folder, num_images, len(entries))
    log.info("enrolled %d portraits of %d identities from %s (%d problems)", len(entries),
             len({e.identity for e in entries}), folder, len(problems))
    return Gallery(root=folder, entries=tuple(entries), problems=tuple(problems))
