"""Gallery listing and enrollment: non-images and faceless portraits reported, specific errors, cancel."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from PIL import Image

from forensic_face.engine.detect import MtcnnDetector
from forensic_face.engine.errors import Cancelled, GalleryError
from forensic_face.engine.gallery import enroll_gallery, list_gallery_images


def test_gallery_listing_reports_non_images(tmp_path: Path) -> None:
    (tmp_path / "Alice Smith").mkdir()
    Image.new("RGB", (10, 10)).save(tmp_path / "Alice Smith" / "a 1.jpg")
    (tmp_path / "Alice Smith" / "notes.txt").write_text("x")
    Image.new("RGB", (10, 10)).save(tmp_path / "Bob.png")
    (tmp_path / ".DS_Store").write_text("")
    items, problems = list_gallery_images(tmp_path)
    assert [(i, p.name) for i, p in items] == [("Alice Smith", "a 1.jpg"), ("Bob", "Bob.png")]
    assert [p.image_path.name for p in problems] == ["notes.txt"]


def test_gallery_errors_are_specific(tmp_path: Path) -> None:
    detector = MtcnnDetector()
    with pytest.raises(GalleryError, match="does not exist"):
        enroll_gallery(tmp_path / "missing", detector)
    with pytest.raises(GalleryError, match="holds no images"):
        enroll_gallery(tmp_path, detector)
    Image.new("RGB", (80, 80), (120, 120, 120)).save(tmp_path / "Nobody.png")
    (tmp_path / "Broken.jpg").write_bytes(b"junk")
    with pytest.raises(GalleryError, match="no face was found"):
        enroll_gallery(tmp_path, detector)


def test_enrollment_lists_problems_and_cancels(tmp_path: Path, lfw_image) -> None:
    src = lfw_image("Al_Gore", 1)
    shutil.copy(src, tmp_path / "Al Gore.jpg")
    Image.new("RGB", (80, 80), (120, 120, 120)).save(tmp_path / "Blank Wall.png")
    (tmp_path / "Broken.jpg").write_bytes(b"junk")
    detector = MtcnnDetector()
    gallery = enroll_gallery(tmp_path, detector)
    assert gallery.identities == ["Al Gore"]
    reasons = {p.image_path.name: p.reason for p in gallery.problems}
    assert reasons["Blank Wall.png"] == "no face found"
    assert "not an image" in reasons["Broken.jpg"]
    with pytest.raises(Cancelled):
        enroll_gallery(tmp_path, detector, should_cancel=lambda: True)
