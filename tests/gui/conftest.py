"""GUI fixtures (pytest-qt, offscreen): the application, probe files under awkward names, a small LFW case."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from forensic_face.gui.app import create_application


@pytest.fixture
def app(qapp):  # type: ignore[no-untyped-def]
    return create_application([])


@pytest.fixture
def probe_files(tmp_path: Path, lfw_image) -> tuple[Path, list[Path]]:  # type: ignore[no-untyped-def]
    """Copies of LFW images under names with spaces and non-ASCII characters."""
    folder = tmp_path / "Beweis Ordner ä ö 証拠"
    folder.mkdir()
    sources = [lfw_image("Abdullah_Gul", 2), lfw_image("Abdullah_Gul", 3)]
    paths = []
    for i, src in enumerate(sources):
        dst = folder / f"probe {i} Zoë – ñ.jpg"
        shutil.copy(src, dst)
        paths.append(dst)
    return folder, paths


@pytest.fixture(scope="module")
def lfw_case(tmp_path_factory, lfw_test_people, lfw_image):  # type: ignore[no-untyped-def]
    """A 5-identity gallery (first image each) under a non-ASCII path with spaces, and a small probe still."""
    from PIL import Image

    base = tmp_path_factory.mktemp("lfw gui")
    people = [name for name, count in lfw_test_people if count >= 2][:5]
    gallery = base / "Galerie Fälle ü"
    for name in people:
        (gallery / name).mkdir(parents=True)
        shutil.copy(lfw_image(name, 1), gallery / name / f"{name}_0001.jpg")
    (gallery / people[0] / "notes.txt").write_text("not an image")
    probe = base / "Überwachung Kamera 3.png"
    # 250 px LFW frame -> 90 px: the face becomes about 40 px wide, a small surveillance-like face.
    Image.open(lfw_image(people[2], 2)).resize((90, 90), Image.BICUBIC).save(probe)
    return gallery, probe, people
