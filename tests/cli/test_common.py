"""The CLI's shared pieces: the progress bar (on stderr when it is a terminal, nothing there otherwise; log lines
with -v) and the engine setting flags."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from forensic_face.cli.common import ProgressBar


def test_progress_bar_draws_on_a_terminal_and_is_quiet_otherwise(capsys: pytest.CaptureFixture[str],
                                                                 caplog: pytest.LogCaptureFixture) -> None:
    bar = ProgressBar("gallery: ", enabled=True)
    for done in range(0, 11):
        bar(done, 10, "gallery templates 2x")
    bar.close()
    assert "gallery: gallery templates 2x" in capsys.readouterr().err

    quiet = ProgressBar(enabled=False)
    with caplog.at_level(logging.INFO, logger="forensic_face"):
        for done in range(0, 11):
            quiet(done, 10, "gallery templates 4x")
    quiet.close()
    assert capsys.readouterr().err == ""
    # Not a terminal: a log line at the start and at the end, not one per step.
    lines = [r.getMessage() for r in caplog.records if "gallery templates 4x" in r.getMessage()]
    assert lines == ["gallery templates 4x 0/10", "gallery templates 4x 10/10"]


def test_cli_flip_test_flag_sets_the_engine_setting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import argparse

    from forensic_face.cli.common import add_engine_arguments, engine_config_from_args

    monkeypatch.setenv("FORENSIC_FACE_CONFIG_DIR", str(tmp_path))
    parser = argparse.ArgumentParser()
    add_engine_arguments(parser)
    assert engine_config_from_args(parser.parse_args(["--flip-test", "on"])).flip_test is True
    assert engine_config_from_args(parser.parse_args(["--flip-test", "off"])).flip_test is False


def test_every_user_setting_flag_sets_its_engine_setting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The flags are generated from USER_SETTINGS and read back from it: each one given changes its field."""
    import argparse

    from forensic_face.cli.common import add_setting_arguments, engine_config_from_args
    from forensic_face.engine.config import USER_SETTINGS, EngineConfig

    monkeypatch.setenv("FORENSIC_FACE_CONFIG_DIR", str(tmp_path))
    given = {"count": ("3", 3), "whole": ("7", 7), "scales": ("4,2", (2, 4)), "weights": ("2,1", (2.0, 1.0)),
             "switches": ("on,off", (True, False)), "file": ("model.pt", "model.pt")}
    names = {"recognizer": "dlib-resnet", "upsampler": "bicubic", "fusion": "S_add,S_add"}
    parser = argparse.ArgumentParser()
    add_setting_arguments(parser, [s.name for s in USER_SETTINGS])
    defaults = EngineConfig()
    for setting in USER_SETTINGS:
        default = getattr(defaults, setting.name)
        if setting.entry == "choice":
            text, expected = next((c, c) for c in setting.choices if c != default)
        elif setting.entry == "on-off":
            text, expected = ("off", False) if default else ("on", True)
        elif setting.entry == "name":
            text = expected = names[setting.name]
        else:
            text, expected = given.get(setting.entry, (None, False))  # off-flag: given alone, it turns it off
        argv = [setting.flag] if text is None else [setting.flag, text]
        config = engine_config_from_args(parser.parse_args(argv))
        assert getattr(config, setting.name) == expected != default, setting.name
        assert config.replace(**{setting.name: default}) == defaults, setting.name  # nothing else changed
