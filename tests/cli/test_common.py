"""The CLI's progress: a bar on stderr when it is a terminal, nothing there otherwise (log lines with -v)."""

from __future__ import annotations

import logging

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
