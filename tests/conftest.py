"""Shared fixtures. Tests that need LFW skip with a clear reason when ../shared/data/lfw is absent."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


@pytest.fixture(autouse=True)
def _isolated_dirs(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings, cases and derived caches of tests never touch the user's real folders."""
    base = tmp_path_factory.getbasetemp()
    monkeypatch.setenv("FORENSIC_FACE_CONFIG_DIR", str(base / "config"))
    monkeypatch.setenv("FORENSIC_FACE_DATA_DIR", str(base / "data"))
    # One cache for the whole session: converted weights are reused across tests.
    monkeypatch.setenv("FORENSIC_FACE_CACHE_DIR", str(base / "cache"))


def _lfw_root() -> Path:
    from forensic_face.paths import lfw_dir

    return lfw_dir()


@pytest.fixture(scope="session")
def lfw_root() -> Path:
    root = _lfw_root()
    if not (root / "images_deepfunneled").is_dir():
        pytest.skip(f"LFW not found at {root} (set FORENSIC_FACE_DATA to the folder holding lfw/)")
    return root


def _people(root: Path, list_name: str) -> list[tuple[str, int]]:
    lines = (root / list_name).read_text().splitlines()[1:]
    out = []
    for line in lines:
        name, count = line.split("\t")
        out.append((name, int(count)))
    return out


@pytest.fixture(scope="session")
def lfw_test_people(lfw_root: Path) -> list[tuple[str, int]]:
    """(name, image count) of peopleDevTest.txt, in file order."""
    return _people(lfw_root, "peopleDevTest.txt")


@pytest.fixture(scope="session")
def lfw_image(lfw_root: Path):
    """lfw_image(name, number) -> path of that LFW image."""

    def _path(name: str, number: int = 1) -> Path:
        return lfw_root / "images_deepfunneled" / name / f"{name}_{number:04d}.jpg"

    return _path
