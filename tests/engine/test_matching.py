"""Probe size bins (and the per-entry seeds of the gallery hypotheses they are matched to)."""

from __future__ import annotations

from forensic_face.engine.matching import probe_size_bin
from forensic_face.engine.templates import entry_seed


def test_probe_size_bins_and_seeds() -> None:
    assert probe_size_bin(29, 4) == 28 and probe_size_bin(31, 4) == 32 and probe_size_bin(1, 4) == 4
    assert entry_seed("ab" * 32, 0) == entry_seed("ab" * 32, 0) != entry_seed("ab" * 32, 1)
