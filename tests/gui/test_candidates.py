"""The candidate list's open-set cue: stated, or said to be unavailable."""

from __future__ import annotations

import numpy as np

from tests.gui.helpers import synthetic_window


def test_open_set_cue_is_shown_above_the_candidates(qtbot, app, tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """The window says whether the ranking supports that the person is in the gallery or not, and without an open-set
    calibration for the settings says there is no cue (never a made-up one)."""
    import dataclasses

    from forensic_face.calibration import CalibrationSet, engine_conditions_from_provenance, fit_calibration
    from forensic_face.calibration import open_set

    window, result, _ = synthetic_window(qtbot, tmp_path)
    monkeypatch.setattr(open_set, "OPEN_SET_CALIBRATION_DIR", tmp_path / "none")
    window.show_result(result)
    label = window.open_set
    assert label.isVisibleTo(window) and "No open-set cue" in label.text()
    assert "Open-set cue not available: no open-set calibration is installed" in label.toolTip()
    rng = np.random.default_rng(0)
    base = fit_calibration(rng.normal(3, 1, 50), rng.normal(0, 1, 50), band=24)
    folder = tmp_path / "open_set"
    (folder / "gallery_30").mkdir(parents=True)
    conditions = engine_conditions_from_provenance(result.provenance)
    for intercept, expected in ((-10.0, "may not be in the gallery"),
                                (-6.0, "support that the person is in the gallery")):
        # log10 LR = 10 * rank-1 score + intercept; the synthetic rank 1 scores 0.9
        cal = dataclasses.replace(base, slope=10.0, intercept=intercept, lower_log10_lr=-2.0, upper_log10_lr=3.0,
                                  method=f"{open_set.METHOD_PREFIX}top1; test")
        CalibrationSet((cal,), {"engine": conditions}).save(folder / "gallery_30" / "w24.json")
        monkeypatch.setattr(open_set, "OPEN_SET_CALIBRATION_DIR", folder)
        window.show_result(result)
        assert expected in label.text(), label.text()
        assert "held-out Cllr" in label.toolTip() and "not which candidate" in label.toolTip()
    assert "Open set: LR 1e+03, moderately strong support" in label.text(), label.text()
    window.show_result(None)
    assert not label.isVisibleTo(window)
