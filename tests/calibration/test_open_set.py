"""The open-set cue: fitted on synthetic benchmark scores with people left out, matched to a search's settings,
and stated (or said to be unavailable) in the CLI record."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from tests.cli.test_calibrate import RECOGNIZER_SHA, _provenance, _write_run

from forensic_face.calibration import (
    Calibration,
    CalibrationSet,
    engine_conditions,
    fit_calibration,
    load_shipped_calibration,
)
from forensic_face.calibration import open_set as open_set_module
from forensic_face.calibration.fit import load_probe_scores
from forensic_face.calibration.open_set import (
    METHOD_PREFIX,
    STATISTICS,
    calibrate_open_set,
    cue_from_ranking,
    open_set_cue,
    open_set_statistic,
    present_absent_statistics,
    statistic_of,
)
from forensic_face.cli import build_parser
from forensic_face.cli.calibrate import CalibrateCommand
from forensic_face.cli.common import add_likelihood_ratios, print_search_record
from forensic_face.engine.config import EngineConfig
from forensic_face.engine.errors import ConfigError


def test_statistics_of_a_known_ranking() -> None:
    scores = [np.nan, 1.0, 5.0, 2.0, 3.0]  # NaN ignored; sorted 5, 3, 2, 1
    assert open_set_statistic(scores, "top1") == 5.0
    assert open_set_statistic(scores, "gap") == 2.0
    rest = np.array([3.0, 2.0, 1.0])
    assert open_set_statistic(scores, "z") == pytest.approx((5.0 - rest.mean()) / rest.std())
    assert open_set_statistic(scores, "gap-z") == pytest.approx(2.0 / rest.std())
    with pytest.raises(ConfigError, match="at least 3"):
        open_set_statistic([1.0, np.nan, 2.0], "gap")
    with pytest.raises(ConfigError, match="unknown open-set statistic"):
        open_set_statistic(scores, "max")


def test_absence_is_simulated_by_removing_the_persons_column() -> None:
    scores = np.array([[9.0, 1.0, 2.0, 3.0], [0.0, 8.0, 4.0, 1.0]])
    present, absent = present_absent_statistics(scores, np.array([0, 1]), "top1")
    np.testing.assert_array_equal(present, [9.0, 8.0])
    np.testing.assert_array_equal(absent, [3.0, 4.0])  # the best of the others
    rng = np.random.default_rng(0)
    present, absent = present_absent_statistics(scores, np.array([0, 1]), "top1", gallery_size=3, rng=rng)
    np.testing.assert_array_equal(present, [9.0, 8.0])  # the person is kept in a sampled gallery for H1
    np.testing.assert_array_equal(absent, [3.0, 4.0])  # and left out for H2
    with pytest.raises(ConfigError, match="gallery size"):
        present_absent_statistics(scores, np.array([0, 1]), "top1", gallery_size=4, rng=rng)


@pytest.mark.parametrize("statistic", sorted(STATISTICS))
def test_fit_on_separable_scores_separates_present_from_absent(tmp_path: Path, statistic: str) -> None:
    run = _write_run(tmp_path / "run", separation=5.0, num_people=40, per_person=3)
    outcome = calibrate_open_set(load_probe_scores([run], band=24), 24, 0.5, seed=1, statistic=statistic)
    cal, meta = outcome.calibration, outcome.metadata
    assert cal.slope > 0 and statistic_of(cal) == statistic
    assert cal.cllr == pytest.approx(meta["heldout"]["cllr"]) and cal.cllr < 0.5
    # held out by identity: no person on both sides, every probe once present and once left out
    split = meta["split"]
    assert set(split["fit_identities"]).isdisjoint(split["heldout_identities"])
    assert meta["heldout"]["num_present"] == meta["heldout"]["num_absent"] == outcome.heldout_present.size
    assert meta["heldout"]["absent_lr_at_least_1000_strong"] == 0.0
    assert meta["heldout"]["present_may_be_absent"] < 0.2
    assert set(meta["heldout_by_gallery_size"]) == {"10", "30"}  # 100 is larger than this 40-identity gallery
    assert float(np.median(outcome.heldout_present)) > float(np.median(outcome.heldout_absent))


def test_fit_on_uninformative_scores_has_cllr_near_one(tmp_path: Path) -> None:
    run = _write_run(tmp_path / "run", separation=0.0, num_people=40, per_person=3)
    outcome = calibrate_open_set(load_probe_scores([run], band=24), 24, 0.5, seed=1, statistic="top1")
    assert outcome.calibration.cllr > 0.8


def _open_set_calibration(slope: float = 1.0, intercept: float = -1.0) -> Calibration:
    """An open-set map log10 LR = slope * top1 + intercept, bounded to [-2, 3]."""
    rng = np.random.default_rng(0)
    cal = fit_calibration(rng.normal(3, 1, 200), rng.normal(0, 1, 200), band=24)
    return dataclasses.replace(cal, slope=slope, intercept=intercept, lower_log10_lr=-2.0, upper_log10_lr=3.0,
                               method=f"{METHOD_PREFIX}top1; test")


def _ranking(top: float, num: int = 20) -> tuple[tuple[str, float], ...]:
    return (("Alice", top),) + tuple((f"P{k}", 0.0) for k in range(num - 1))


def test_cue_says_may_not_be_in_gallery_only_when_the_lr_favours_absence() -> None:
    cal = _open_set_calibration()  # log10 LR = top1 - 1
    absent = cue_from_ranking(_ranking(0.2), cal)
    assert absent.available and absent.may_be_absent and absent.lr < 1
    assert "may not be in the gallery" in absent.text and "H2 (the person is not in the gallery)" in absent.text
    present = cue_from_ranking(_ranking(3.5), cal)
    assert not present.may_be_absent and present.lr == pytest.approx(10 ** 2.5, rel=1e-4)
    assert "typical of searches whose person is in the gallery" in present.text and "may not" not in present.text
    assert "moderately strong support for H1 (the person is in the gallery)" in present.text
    small = cue_from_ranking(_ranking(3.5, num=5), cal)
    assert not small.available and "5 identities" in small.text
    score_to_lr = dataclasses.replace(cal, method="lir.algorithms.logistic_regression.LogitCalibrator")
    with pytest.raises(ConfigError, match="no known open-set statistic"):
        cue_from_ranking(_ranking(1.0), score_to_lr)


def _search(config: EngineConfig, ranking: tuple[tuple[str, float], ...]) -> SimpleNamespace:
    return SimpleNamespace(provenance=_provenance(config), probe_face=SimpleNamespace(width_px=24.0), ranking=ranking)


def _ship(folder: Path, config: EngineConfig, gallery_size: int = 20, intercept: float = -1.0) -> None:
    """An open-set calibration for ``config`` fitted (as it were) on galleries of ``gallery_size`` identities."""
    (folder / f"gallery_{gallery_size}").mkdir(parents=True, exist_ok=True)
    CalibrationSet((_open_set_calibration(intercept=intercept),),
                   {"engine": engine_conditions(config, RECOGNIZER_SHA)}).save(
        folder / f"gallery_{gallery_size}" / "open_set_w24.json")


def test_cue_is_matched_to_settings_and_says_when_unavailable(tmp_path: Path) -> None:
    config = EngineConfig()
    _ship(tmp_path, config)
    assert open_set_cue(_search(config, _ranking(0.0)), directory=tmp_path).may_be_absent
    other = open_set_cue(_search(config.replace(fusion="T_add"), _ranking(0.0)), directory=tmp_path)
    assert not other.available and other.lr is None
    assert other.text.startswith("Open-set cue not available: no calibration was fitted for these settings")
    assert "likelihood ratios" not in other.text
    shortlisted = _search(config, _ranking(3.0))
    shortlisted.provenance["shortlist"] = {"k": 20}
    assert "shortlist" in open_set_cue(shortlisted, directory=tmp_path).text
    provisional = _search(config, _ranking(3.0))
    provisional.provenance["provisional"] = True
    assert not open_set_cue(provisional, directory=tmp_path).available


def test_search_record_states_the_cue_or_its_absence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    config = EngineConfig()
    _ship(tmp_path, config)
    monkeypatch.setattr(open_set_module, "OPEN_SET_CALIBRATION_DIR", tmp_path)
    record = {"probe": "p.png", "error": None, "calibration": None,
              "candidates": [{"rank": 1, "identity": "Alice", "image": "a.jpg", "score": 0.2}]}
    add_likelihood_ratios(record, _search(config, _ranking(0.2)))
    cue = json.loads(json.dumps(record))["open_set"]
    assert cue["available"] and cue["may_be_absent"] and cue["lr"] < 1 and cue["statistic"] == "top1"
    assert cue["calibration"]["band_px"] == 24 and "not which candidate" in cue["calibration"]["caveat"]
    print_search_record(record)
    assert "Open set: The person may not be in the gallery" in capsys.readouterr().out
    monkeypatch.setattr(open_set_module, "OPEN_SET_CALIBRATION_DIR", tmp_path / "none")
    add_likelihood_ratios(record, _search(config, _ranking(0.2)))
    assert record["open_set"]["available"] is False and record["open_set"]["lr"] is None
    print_search_record(record)
    assert "Open set: Open-set cue not available" in capsys.readouterr().out


def test_calibrate_open_set_command_writes_a_calibration_lr_lookups_never_use(tmp_path: Path) -> None:
    run = _write_run(tmp_path / "run", separation=4.0, num_people=40, per_person=3)
    out = tmp_path / "cal" / "open_set" / "w24.json"
    command = CalibrateCommand()
    args = build_parser([command]).parse_args(["calibrate", "--open-set", "--statistic", "gap", "--scores", str(run),
                                               "--band", "24", "--out", str(out), "--seed", "2"])
    assert command.run(args) == 0
    cal_set = CalibrationSet.load(out)
    assert cal_set.metadata["kind"] == "open-set" and statistic_of(cal_set.calibrations[0]) == "gap"
    assert cal_set.metadata["engine"]["fusion"] == "S_add,S_add"
    # kept apart from the score-to-LR calibrations: a lookup in the folder above finds nothing
    config = EngineConfig(upsampler="bicubic", budget="standard", fusion="S_add,S_add")
    assert load_shipped_calibration(config, RECOGNIZER_SHA, 24.0, directory=tmp_path / "cal") is None
    args = build_parser([command]).parse_args(["calibrate", "--statistic", "gap", "--scores", str(run),
                                               "--band", "24", "--out", str(out)])
    with pytest.raises(ConfigError, match="--open-set"):
        command.run(args)


def test_shipped_open_set_calibrations_are_valid() -> None:
    from forensic_face.calibration.open_set import OPEN_SET_CALIBRATION_DIR

    for path in sorted(OPEN_SET_CALIBRATION_DIR.glob("gallery_*/*.json")):
        cal_set = CalibrationSet.load(path)
        assert cal_set.metadata["kind"] == "open-set", path
        assert path.parent.name == f"gallery_{cal_set.metadata['num_gallery_identities']}", path
        assert all(c.slope > 0 and 0.0 < c.cllr < 1.0 and statistic_of(c) == cal_set.metadata["statistic"]
                   for c in cal_set.calibrations), path


def test_a_gallery_uses_the_smallest_fitted_size_at_least_as_large(tmp_path: Path) -> None:
    """A calibration fitted on a larger gallery is cautious on a smaller one; one fitted on a smaller gallery
    would overstate presence, so it serves galleries at most 1.25 times its size."""
    config = EngineConfig()
    for size, intercept in ((10, -0.5), (30, -1.0), (100, -1.5)):
        _ship(tmp_path, config, size, intercept)  # log10 LR = top1 + intercept; the rank-1 score is 0
    def lr_for(num: int) -> float | None:
        return open_set_cue(_search(config, _ranking(0.0, num=num)), directory=tmp_path).log10_lr

    assert [lr_for(n) for n in (10, 11, 30, 31, 100, 125)] == [-0.5, -1.0, -1.0, -1.5, -1.5, -1.5]
    too_large = open_set_cue(_search(config, _ranking(0.0, num=126)), directory=tmp_path)
    assert not too_large.available and "126 identities" in too_large.text and "up to 100" in too_large.text


def test_fit_on_random_galleries_of_a_given_size(tmp_path: Path) -> None:
    run = _write_run(tmp_path / "run", separation=5.0, num_people=40, per_person=3)
    data = load_probe_scores([run], band=24)
    outcome = calibrate_open_set(data, 24, 0.5, seed=1, gallery_size=10)
    meta = outcome.metadata
    assert meta["num_gallery_identities"] == 10 and meta["benchmark_gallery_identities"] == 40
    assert set(meta["heldout_by_gallery_size"]) == {"30", "40"}  # the other sizes, and the whole gallery
    assert "random 10-identity galleries drawn from the 40" in outcome.calibration.conditions
    with pytest.raises(ConfigError, match="--gallery-size"):
        calibrate_open_set(data, 24, 0.5, seed=1, gallery_size=40)
