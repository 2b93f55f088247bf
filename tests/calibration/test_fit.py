"""Score-to-LR calibration on synthetic score distributions."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from forensic_face.calibration import (
    CALIBRATION_CAVEAT,
    Calibration,
    CalibrationSet,
    cllr,
    fit_calibration,
    tippett_plot,
    verbal_equivalent,
)
from forensic_face.engine.errors import ConfigError


@pytest.fixture(scope="module")
def separable() -> tuple[np.ndarray, np.ndarray, Calibration]:
    rng = np.random.default_rng(0)
    mated, nonmated = rng.normal(0.6, 0.1, 400), rng.normal(0.2, 0.1, 2000)
    return mated, nonmated, fit_calibration(mated, nonmated, band=16, conditions="synthetic Gaussian")


def test_separable_scores_give_monotone_informative_lrs(separable) -> None:
    mated, nonmated, cal = separable
    grid = np.linspace(-0.5, 1.5, 201)
    llr = cal.log10_lr(grid)
    assert np.all(np.diff(llr) >= 0) and cal.slope > 0
    assert cal.cllr < 0.3 and cal.cllr_min <= cal.cllr + 1e-9
    assert cal.lr([0.7])[0] > 10 and cal.lr([0.1])[0] < 0.1
    # ELUB bounds: no LR beyond what 400 mated / 2000 non-mated comparisons support.
    assert cal.upper_log10_lr <= math.log10(2000 + 1) + 0.01 and cal.lower_log10_lr >= -math.log10(400 + 1) - 0.01
    assert llr.max() == pytest.approx(cal.upper_log10_lr) and llr.min() == pytest.approx(cal.lower_log10_lr)
    # Cllr via lir agrees with the textbook formula.
    m, n = cal.log10_lr(mated), cal.log10_lr(nonmated)
    manual = 0.5 * (np.mean(np.log2(1 + 10 ** -m)) + np.mean(np.log2(1 + 10 ** n)))
    labels = np.r_[np.ones(m.size), np.zeros(n.size)]
    assert cllr(np.r_[m, n], labels) == pytest.approx(manual, rel=1e-9)


def test_uninformative_scores_give_cllr_near_one() -> None:
    rng = np.random.default_rng(1)
    cal = fit_calibration(rng.normal(0.3, 0.1, 400), rng.normal(0.3, 0.1, 2000), band=24)
    assert cal.cllr == pytest.approx(1.0, abs=0.02)
    assert np.all(np.abs(cal.log10_lr([0.0, 0.3, 0.6])) < 0.3)


def test_json_round_trip_and_band_choice(separable, tmp_path: Path) -> None:
    _, _, cal16 = separable
    rng = np.random.default_rng(2)
    cal32 = fit_calibration(rng.normal(0.7, 0.1, 100), rng.normal(0.2, 0.1, 300), band=32)
    cset = CalibrationSet((cal16, cal32), {"data": "synthetic"})
    path = tmp_path / "cal.json"
    cset.save(path)
    loaded = CalibrationSet.load(path)
    assert loaded == cset
    np.testing.assert_array_equal(loaded.calibrations[0].lr([0.1, 0.5]), cal16.lr([0.1, 0.5]))
    assert loaded.for_width(12).band_px == 16 and loaded.for_width(30).band_px == 32
    assert loaded.for_width(24).band_px == 16  # tie: the smaller band
    path.write_text('{"format": "other"}')
    with pytest.raises(ConfigError, match="not a forensic_face calibration"):
        CalibrationSet.load(path)
    with pytest.raises(ConfigError, match="does not exist"):
        CalibrationSet.load(tmp_path / "none.json")


def test_fit_rejects_bad_input() -> None:
    with pytest.raises(ConfigError, match="at least 2"):
        fit_calibration([0.5], [0.1, 0.2], band=16)
    with pytest.raises(ConfigError, match="NaN"):
        fit_calibration([0.5, np.nan], [0.1, 0.2], band=16)
    with pytest.raises(ConfigError, match="band"):
        fit_calibration([0.5, 0.6], [0.1, 0.2], band=0)


@pytest.mark.parametrize("lr, phrase", [
    (5, "weak or limited support for H1"), (50, "moderate support for H1"), (500, "moderately strong support for H1"),
    (5e3, "strong support for H1"), (5e5, "very strong support for H1"), (5e6, "extremely strong support for H1"),
    (10, "weak or limited support for H1"), (0.2, "weak or limited support for H2"),
    (1 / 500, "moderately strong support for H2"), (1e-7, "extremely strong support for H2"),
    (1.0, "no support for either"),
])
def test_enfsi_verbal_scale(lr: float, phrase: str) -> None:
    assert phrase in verbal_equivalent(lr)


def test_verbal_scale_rejects_negative() -> None:
    with pytest.raises(ConfigError):
        verbal_equivalent(-1.0)
    assert "calibration" in CALIBRATION_CAVEAT and "differ" in CALIBRATION_CAVEAT


def test_tippett_plot_png(separable, tmp_path: Path) -> None:
    mated, nonmated, cal = separable
    out = tmp_path / "tippett.png"
    data = tippett_plot(cal, mated, nonmated, out)
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and out.read_bytes() == data
    from PIL import Image

    with Image.open(out) as image:
        assert image.size == (600, 432)
