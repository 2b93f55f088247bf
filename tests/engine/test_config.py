"""Engine settings: the scales parser, and recorded configs read back with the settings their search ran with."""

from __future__ import annotations

import pytest

from forensic_face.engine.config import parse_scales


def test_parse_scales_and_errors() -> None:
    assert parse_scales("8, 2 4,2") == (2, 4, 8)
    for bad in ("", "2, x", "0", "32"):
        with pytest.raises(ValueError):
            parse_scales(bad)


def test_recorded_configs_keep_the_settings_their_search_ran_with() -> None:
    """A search recorded before the flip test existed ran without it, whatever today's default is."""
    from forensic_face.engine.config import RECORD_LEGACY_VALUES, EngineConfig

    stored = EngineConfig(flip_test=True).to_dict()
    assert EngineConfig.from_record(stored).flip_test is True
    del stored["flip_test"]
    assert RECORD_LEGACY_VALUES["flip_test"] is False
    assert EngineConfig.from_record(stored).flip_test is False
    assert EngineConfig.from_dict(stored).flip_test is EngineConfig().flip_test
