"""The one atomic-write helper every writer of the package uses (forensic_face.paths.atomic_write)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import numpy as np
import pytest

from forensic_face.paths import atomic_write


def test_the_target_appears_whole_with_the_ordinary_mode(tmp_path: Path) -> None:
    target = tmp_path / "pack.npz"
    old_umask = os.umask(0o022)
    try:
        with atomic_write(target) as tmp:
            assert tmp.parent == tmp_path and tmp.name.endswith(".npz") and not target.exists()
            np.savez(tmp, x=np.arange(3))  # numpy keeps a name that already ends in .npz
    finally:
        os.umask(old_umask)
    assert np.load(target)["x"].tolist() == [0, 1, 2]
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pack.npz"]


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "settings.toml"
    target.write_text("old")
    with pytest.raises(OSError, match="disk full"):
        with atomic_write(target) as tmp:
            tmp.write_text("half")
            raise OSError("disk full")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["settings.toml"]


def test_two_writers_never_share_a_temporary_name(tmp_path: Path) -> None:
    target = tmp_path / "index.json"
    with atomic_write(target) as first, atomic_write(target, durable=False) as second:
        assert first != second
        first.write_text("1")
        second.write_text("2")
    assert target.read_text() == "1"  # the outer block ends last
