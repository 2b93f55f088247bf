"""``forensic-face calibrate`` on synthetic benchmark scores, and LRs in the search output."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from forensic_face.calibration import (
    CalibrationSet,
    calibration_for_result,
    engine_conditions,
    fit_calibration,
    load_shipped_calibration,
    why_no_calibration,
)
from forensic_face.calibration.fit import load_probe_scores, split_by_identity
from forensic_face.cli import build_parser
from forensic_face.cli.calibrate import CalibrateCommand
from forensic_face.cli.common import add_likelihood_ratios, print_search_record
from forensic_face.engine.config import EngineConfig
from forensic_face.engine.errors import ConfigError

RECOGNIZER_SHA = "ab" * 32


def _provenance(config: EngineConfig) -> dict:
    return {"config": config.to_dict(), "config_sha256": config.digest(),
            "recognizer": {"name": config.recognizer, "weights_sha256": RECOGNIZER_SHA},
            "upsampler": {"name": config.upsampler, "weights_sha256": {}}}


def _write_run(folder: Path, separation: float, seed: int = 0, num_people: int = 12, per_person: int = 3) -> Path:
    """A benchmark run folder like ``eval.runner.write_run``: per-probe scores against a gallery."""
    rng = np.random.default_rng(seed)
    identities = [f"Person_{k:02d}" for k in range(num_people)]
    mated = np.repeat(np.arange(num_people), per_person)
    # fused scores of an additive fusion over 3 scales lie around 45, like the real LFW-XRes runs
    scores = rng.normal(45.0, 1.0, (mated.size, num_people)).astype(np.float32)
    scores[np.arange(mated.size), mated] += separation
    mated[-1] = -1  # one probe not searched
    scores[-1] = np.nan
    folder.mkdir(parents=True)
    np.savez_compressed(folder / "scores.npz", scores=scores, mated_index=mated, identities=np.asarray(identities),
                        probe_names=np.asarray([f"p{i}" for i in range(mated.size)]), band_px=np.asarray(24))
    config = EngineConfig(upsampler="bicubic", budget="standard", fusion="S_add,S_add")  # an additive fusion
    (folder / "result.json").write_text(json.dumps({
        "protocol": "lfw-xres", "settings": {"width_px": 24, "camera": "fixed", "face_width_source": "mtcnn"},
        "config": config.to_dict(), "config_digest": config.digest(), "provenance": _provenance(config)}))
    return folder


def _calibrate(run: Path, out: Path, *extra: str) -> int:
    command = CalibrateCommand()
    args = build_parser([command]).parse_args(
        ["calibrate", "--scores", str(run), "--band", "24", "--out", str(out), "--seed", "3", *extra])
    return command.run(args)


def test_split_by_identity_is_disjoint_and_seeded() -> None:
    identity = np.repeat(np.array([f"P{k}" for k in range(10)], dtype=object), 3)
    fit, held = split_by_identity(identity, 0.5, seed=1)
    assert set(identity[fit]).isdisjoint(set(identity[held]))
    assert len(set(identity[held])) == 5 and fit.size + held.size == identity.size
    again = split_by_identity(identity, 0.5, seed=1)
    np.testing.assert_array_equal(again[1], held)
    assert not np.array_equal(split_by_identity(identity, 0.5, seed=2)[1], held)
    with pytest.raises(ConfigError):
        split_by_identity(identity, 1.0, seed=0)


def test_calibrate_writes_loadable_json_and_tippett(tmp_path: Path) -> None:
    run = _write_run(tmp_path / "run", separation=3.0)
    out, png = tmp_path / "cal" / "w24.json", tmp_path / "tippett.png"
    assert _calibrate(run, out, "--tippett", str(png)) == 0
    cal_set = CalibrationSet.load(out)
    cal = cal_set.calibrations[0]
    assert cal.band_px == 24 and cal.slope > 0
    split = cal_set.metadata["split"]
    assert set(split["fit_identities"]).isdisjoint(split["heldout_identities"])
    assert len(split["fit_identities"]) + len(split["heldout_identities"]) == 12
    assert cal.cllr == pytest.approx(cal_set.metadata["heldout"]["cllr"])
    assert cal.cllr < 1.0 and cal.cllr_min <= cal.cllr + 1e-9  # separable scores: informative LRs
    assert cal_set.metadata["engine"]["fusion"] == "S_add,S_add"  # the run's fusion (see _write_run)
    assert cal_set.metadata["engine"]["recognizer_sha256"] == RECOGNIZER_SHA
    assert cal_set.metadata["num_scores"] == 35 * 12
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_calibrate_uninformative_scores_have_cllr_near_one(tmp_path: Path) -> None:
    run = _write_run(tmp_path / "run", separation=0.0, num_people=20)
    out = tmp_path / "w24.json"
    assert _calibrate(run, out) == 0
    assert CalibrationSet.load(out).calibrations[0].cllr > 0.8


def test_calibrate_rejects_wrong_band_and_flat_scores(tmp_path: Path) -> None:
    run = _write_run(tmp_path / "run", separation=3.0)
    with pytest.raises(ConfigError, match="24 px probes"):
        load_probe_scores([run], band=16)
    flat = tmp_path / "flat.npz"
    np.savez(flat, mated_w24=np.zeros(3), nonmated_w24=np.zeros(9))
    with pytest.raises(ConfigError, match="per-probe scores"):
        load_probe_scores([flat], band=24)


def _result(config: EngineConfig, width_px: float) -> SimpleNamespace:
    return SimpleNamespace(provenance=_provenance(config), probe_face=SimpleNamespace(width_px=width_px), ranking=())


def test_shipped_calibration_matches_settings_and_band(tmp_path: Path) -> None:
    config = EngineConfig()
    rng = np.random.default_rng(0)
    cal = fit_calibration(rng.normal(2, 1, 60), rng.normal(0, 1, 300), band=24)
    CalibrationSet((cal,), {"engine": engine_conditions(config, RECOGNIZER_SHA)}).save(tmp_path / "w24.json")
    found = load_shipped_calibration(config, RECOGNIZER_SHA, 25.0, directory=tmp_path)
    assert found is not None and found.band_px == 24
    # device / batch size / seed do not change scores; the rest must match
    assert load_shipped_calibration(config.replace(device="cpu", batch_size=8), RECOGNIZER_SHA, 22.0,
                                    directory=tmp_path) is not None
    assert load_shipped_calibration(config, RECOGNIZER_SHA, 30.0, directory=tmp_path) is None
    assert load_shipped_calibration(config, "cd" * 32, 24.0, directory=tmp_path) is None
    other_upsampler = "bicubic" if config.upsampler != "bicubic" else "face-sr"
    for change in ({"fusion": "T_add"}, {"budget": "fast"}, {"upsampler": other_upsampler}, {"scales": (2, 4)},
                   {"flip_test": not config.flip_test}):
        assert load_shipped_calibration(config.replace(**change), RECOGNIZER_SHA, 24.0, directory=tmp_path) is None
    # retrained super-resolution weights make other scores: the calibration no longer applies
    assert load_shipped_calibration(config, RECOGNIZER_SHA, 24.0, directory=tmp_path,
                                    upsampler_weights_sha256={"2": "ef" * 32}) is None
    assert calibration_for_result(_result(config, 24.0), directory=tmp_path) is not None
    # Scores made with other gallery degradation paths than the fit's (a search recorded when the budget's name
    # selected other paths, replayed with them) get no calibration; the budget's own recorded paths match.
    from forensic_face.engine.degradations import all_paths, path_label, select_paths

    own = _result(config, 24.0)
    own.provenance["degradation_paths"] = [path_label(p) for p in select_paths(config.budget, config.seed)]
    assert calibration_for_result(own, directory=tmp_path) is not None
    singles = _result(config, 24.0)
    singles.provenance["degradation_paths"] = [path_label(p) for p in all_paths(max_len=1)]
    assert calibration_for_result(singles, directory=tmp_path) is None
    assert "degradation paths" in why_no_calibration(singles, directory=tmp_path)
    assert load_shipped_calibration(config, RECOGNIZER_SHA, 24.0, directory=tmp_path,
                                    degradation_paths=["gauss_noise"]) is None
    # A calibration fitted before the flip test existed (its conditions lack the field) still matches searches
    # without it, and only those.
    legacy = engine_conditions(config.replace(flip_test=False), RECOGNIZER_SHA)
    assert "flip_test" not in legacy
    assert "flip_test" in engine_conditions(config.replace(flip_test=True), RECOGNIZER_SHA)


def _record() -> dict:
    return {"probe": "p.png", "error": None, "calibration": None,
            "candidates": [{"rank": 1, "identity": "A", "image": "a.jpg", "score": 2.5},
                           {"rank": 2, "identity": "B", "image": "b.jpg", "score": -1.0}]}


def test_search_json_has_lr_with_matching_calibration(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    from forensic_face import calibration

    config = EngineConfig()
    rng = np.random.default_rng(0)
    cal = fit_calibration(rng.normal(2, 1, 60), rng.normal(0, 1, 300), band=24)
    CalibrationSet((cal,), {"engine": engine_conditions(config, RECOGNIZER_SHA)}).save(tmp_path / "w24.json")
    monkeypatch.setattr(calibration, "SHIPPED_CALIBRATION_DIR", tmp_path)

    record = _record()
    add_likelihood_ratios(record, _result(config, 24.0))
    first, second = record["candidates"]
    assert first["lr"] == pytest.approx(float(cal.lr([2.5])[0]), rel=1e-5)
    assert first["log10_lr"] > second["log10_lr"]
    assert "support" in first["verbal"] and record["calibration"]["band_px"] == 24
    assert "conditions of this case may differ" in record["calibration"]["caveat"]
    json.dumps(record)
    print_search_record(record)
    text = capsys.readouterr().out
    assert "LR " in text and first["verbal"] in text and "may differ" in text

    other = _record()
    add_likelihood_ratios(other, _result(config.replace(fusion="T_add"), 24.0))
    assert other["calibration"] is None
    assert all(c["lr"] is None and c["verbal"] is None and c["log10_lr"] is None for c in other["candidates"])
    print_search_record(other)
    assert "No likelihood ratios: no calibration was fitted for these settings" in capsys.readouterr().out


def test_shipped_file_is_valid() -> None:
    from forensic_face.calibration import SHIPPED_CALIBRATION_DIR

    files = sorted(SHIPPED_CALIBRATION_DIR.glob("*.json"))
    assert files, "no calibration shipped in resources/calibration"
    for path in files:
        cal_set = CalibrationSet.load(path)
        expected = engine_conditions(cal_set.metadata["engine_config"], cal_set.metadata["engine"]["recognizer_sha256"],
                                     cal_set.metadata["engine"]["upsampler_weights_sha256"])
        if cal_set.metadata.get("scales_used"):  # fitted on probes searched with fewer scales (--scales-used)
            expected["scales"] = cal_set.metadata["scales_used"]
        if expected["precision"] == "auto":  # conditions name the precision the recognizer ran in (config_as_run)
            assert cal_set.metadata["engine"]["precision"] in ("fp32", "bf16"), path
            expected["precision"] = cal_set.metadata["engine"]["precision"]
        assert cal_set.metadata["engine"] == expected, path
        assert all(0.0 < c.cllr < 1.0 and c.slope > 0 for c in cal_set.calibrations)


def test_probes_that_dropped_a_scale_are_left_out(tmp_path: Path) -> None:
    run = _write_run(tmp_path / "run", separation=3.0)
    with np.load(run / "scores.npz") as data:
        arrays = {k: data[k] for k in data.files}
    # additive fusion over 3 scales: full-scale probes score about 45, a probe that used 2 scales about 30
    arrays["scores"][:4] = arrays["scores"][:4] * (2.0 / 3.0)
    np.savez(run / "scores.npz", **arrays)
    data = load_probe_scores([run], band=24)
    assert data.identity.size == 35 - 4
    arrays["probe_num_scales"] = np.full(36, 3)
    arrays["probe_num_scales"][:6] = 2
    np.savez(run / "scores.npz", **arrays)
    assert load_probe_scores([run], band=24).identity.size == 35 - 6


def test_search_that_dropped_a_scale_gets_only_a_calibration_of_its_scales(tmp_path: Path) -> None:
    config = EngineConfig()
    rng = np.random.default_rng(0)
    cal = fit_calibration(rng.normal(2, 1, 60), rng.normal(0, 1, 300), band=24)
    CalibrationSet((cal,), {"engine": engine_conditions(config, RECOGNIZER_SHA)}).save(tmp_path / "w24.json")
    result = _result(config, 24.0)
    result.provenance["scales_used"] = [2, 4, 8]
    assert calibration_for_result(result, directory=tmp_path) is not None
    assert why_no_calibration(result, directory=tmp_path) == ""
    result.provenance["scales_used"] = [2, 4]
    assert calibration_for_result(result, directory=tmp_path) is None
    assert "searched at 2x, 4x" in why_no_calibration(result, directory=tmp_path)
    assert "fitted for these settings" in why_no_calibration(_result(config.replace(fusion="T_add"), 24.0),
                                                             directory=tmp_path)
    far = _result(config, 40.0)
    far.provenance["scales_used"] = [2, 4, 8]
    assert "40 px wide; calibrations exist for 24 px" in why_no_calibration(far, directory=tmp_path)
    # A calibration fitted on probes searched with exactly (2, 4) serves them, and only them.
    two = fit_calibration(rng.normal(1.5, 1, 60), rng.normal(0, 1, 300), band=24)
    conditions = {**engine_conditions(config, RECOGNIZER_SHA), "scales": [2, 4]}
    CalibrationSet((two,), {"engine": conditions}).save(tmp_path / "w24_scales_2_4.json")
    found = calibration_for_result(result, directory=tmp_path)
    assert found is not None and found.slope == pytest.approx(two.slope)
    result.provenance["scales_used"] = [2, 4, 8]
    assert calibration_for_result(result, directory=tmp_path).slope == pytest.approx(cal.slope)


def test_calibrate_fits_the_probes_that_used_fewer_scales(tmp_path: Path) -> None:
    run = _write_run(tmp_path / "run", separation=3.0, num_people=20)
    with np.load(run / "scores.npz") as data:
        arrays = {k: data[k] for k in data.files}
    arrays["probe_num_scales"] = np.full(arrays["mated_index"].size, 3)
    arrays["probe_num_scales"][::3] = 2  # one probe of each person used 2 scales
    np.savez(run / "scores.npz", **arrays)
    data = load_probe_scores([run], band=24, scales_used=(2, 4))
    assert data.identity.size == 20 and data.scales_used == (2, 4)
    assert _calibrate(run, tmp_path / "w24_2_4.json", "--scales-used", "2,4") == 0
    cal_set = CalibrationSet.load(tmp_path / "w24_2_4.json")
    assert cal_set.metadata["engine"]["scales"] == [2, 4]
    with pytest.raises(ConfigError, match="leading part"):
        load_probe_scores([run], band=24, scales_used=(4, 8))


def test_default_settings_have_a_shipped_calibration() -> None:
    """A search with the engine's default settings and the shipped model files gets likelihood ratios at 24 px;
    the previous defaults (S_add,S_add fusion; before that dlib-resnet with face-sr) and the bicubic and
    dlib-resnet-lr variants of the older one keep their own calibrations."""
    from forensic_face.calibration import engine_conditions_from_provenance
    from forensic_face.engine import Engine

    previous = EngineConfig(device="cpu", fusion="S_add,S_add")
    older = previous.replace(recognizer="dlib-resnet", upsampler="face-sr", flip_test=False)
    for config in (EngineConfig(device="cpu"), previous, older, older.replace(upsampler="bicubic"),
                   older.replace(recognizer="dlib-resnet-lr")):
        provenance = Engine(config).provenance()
        conditions = engine_conditions_from_provenance(provenance)
        found = load_shipped_calibration(provenance["config"], conditions["recognizer_sha256"], 24.0,
                                         upsampler_weights_sha256=conditions["upsampler_weights_sha256"],
                                         scales_used=config.scales)
        assert found is not None and found.band_px == 24, f"no shipped calibration for {config.upsampler}"
