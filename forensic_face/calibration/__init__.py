"""Score-to-likelihood-ratio calibration (evaluative reporting, ENFSI 2015).

A fused similarity score is not evidence strength. A :class:`Calibration` maps scores to likelihood ratios

    LR = p(score | same person) / p(score | different persons)

with a logistic-regression calibrator fitted by NFI's ``lir`` package on mated and non-mated scores measured
under stated conditions (one calibration per probe face-width band, e.g. 16/24/32 px), then bounded by lir's
Empirical Lower and Upper Bounds (ELUB, Vergeer et al. 2016) so no LR claims more than the calibration data can
support. Logistic calibration is monotone by construction (a higher score never gives a lower LR) and has two
parameters, so it saves to a small JSON file and applies without lir.

Every LR is reported with :data:`CALIBRATION_CAVEAT`: the case's imaging conditions may differ from those of the
calibration data.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from forensic_face.engine import ConfigError
from forensic_face.paths import RESOURCES_DIR

FORMAT = "forensic_face.calibration/1"

CALIBRATION_CAVEAT = (
    "Likelihood ratios come from a calibration fitted on reference data (stated conditions, face-width band); "
    "the imaging conditions of this case may differ from those of the calibration data, so the value is an "
    "indication of evidential strength under those conditions, not a property of this case alone."
)

#: ENFSI Guideline for Evaluative Reporting in Forensic Science (2015): verbal equivalents of LR > 1, as
#: (lower LR bound, upper LR bound, phrase). LR < 1 uses the same phrases for 1/LR and the alternative proposition.
VERBAL_SCALE: tuple[tuple[float, float, str], ...] = (
    (1.0, 10.0, "weak or limited support"),
    (10.0, 100.0, "moderate support"),
    (100.0, 1_000.0, "moderately strong support"),
    (1_000.0, 10_000.0, "strong support"),
    (10_000.0, 1_000_000.0, "very strong support"),
    (1_000_000.0, math.inf, "extremely strong support"),
)


def verbal_equivalent(lr: float, h1: str = "H1 (same person)", h2: str = "H2 (different persons)") -> str:
    """ENFSI (2015) verbal equivalent of a likelihood ratio, symmetric for LR < 1.

    ``h1``/``h2`` name the propositions; by default those of a candidate's LR: "the probe and the candidate
    show the same person" and "different persons".
    """
    if not math.isfinite(lr) and lr != math.inf:
        raise ConfigError(f"likelihood ratio must be a number, got {lr}")
    if lr < 0:
        raise ConfigError(f"likelihood ratio must be >= 0, got {lr}")
    if lr == 1.0:
        return "no support for either proposition (LR = 1)"
    value, proposition = (lr, h1) if lr > 1.0 else ((math.inf if lr == 0 else 1.0 / lr), h2)
    for low, high, phrase in VERBAL_SCALE:
        if low < value <= high or (high == math.inf and value > low):
            return f"{phrase} for {proposition}"
    raise ConfigError(f"likelihood ratio {lr} is outside the verbal scale")  # unreachable for valid input


@dataclass(frozen=True)
class Calibration:
    """Logistic score-to-LR map for one face-width band, with ELUB bounds on log10 LR.

    ``log10 LR(s) = clip(slope * s + intercept, lower, upper)`` with ``slope``/``intercept`` in log10 units.
    """

    band_px: int
    slope: float
    intercept: float
    lower_log10_lr: float
    upper_log10_lr: float
    num_mated: int
    num_nonmated: int
    cllr: float
    cllr_min: float
    #: Free-text description of the data and conditions the calibration was fitted on.
    conditions: str = ""
    method: str = "lir.algorithms.logistic_regression.LogitCalibrator + lir ELUB bounds"

    def log10_lr(self, scores: Sequence[float] | np.ndarray) -> np.ndarray:
        """log10 LR of each score, bounded by the ELUB bounds; shape as ``scores``."""
        values = np.asarray(scores, dtype=np.float64)
        llr = self.slope * values + self.intercept
        return np.clip(llr, self.lower_log10_lr, self.upper_log10_lr)

    def lr(self, scores: Sequence[float] | np.ndarray) -> np.ndarray:
        """Likelihood ratio of each score."""
        return np.power(10.0, self.log10_lr(scores))

    def to_json(self) -> dict[str, Any]:
        return {
            "band_px": self.band_px, "slope": self.slope, "intercept": self.intercept,
            "lower_log10_lr": self.lower_log10_lr, "upper_log10_lr": self.upper_log10_lr,
            "num_mated": self.num_mated, "num_nonmated": self.num_nonmated,
            "cllr": self.cllr, "cllr_min": self.cllr_min, "conditions": self.conditions, "method": self.method,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Calibration:
        try:
            return cls(
                band_px=int(data["band_px"]), slope=float(data["slope"]), intercept=float(data["intercept"]),
                lower_log10_lr=float(data["lower_log10_lr"]), upper_log10_lr=float(data["upper_log10_lr"]),
                num_mated=int(data["num_mated"]), num_nonmated=int(data["num_nonmated"]),
                cllr=float(data["cllr"]), cllr_min=float(data["cllr_min"]),
                conditions=str(data.get("conditions", "")), method=str(data.get("method", cls.method)),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"calibration record is incomplete or malformed ({exc})") from None


@dataclass(frozen=True)
class CalibrationSet:
    """Calibrations for several face-width bands; a probe uses the band nearest to its face width."""

    calibrations: tuple[Calibration, ...]
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.calibrations:
            raise ConfigError("a calibration set needs at least one band")

    @property
    def bands_px(self) -> list[int]:
        return [c.band_px for c in self.calibrations]

    def for_width(self, face_width_px: float) -> Calibration:
        """The calibration whose band is nearest to the probe's face width (ties: the smaller band)."""
        return min(self.calibrations, key=lambda c: (abs(c.band_px - face_width_px), c.band_px))

    def to_json(self) -> dict[str, Any]:
        return {"format": FORMAT, "metadata": self.metadata, "bands": [c.to_json() for c in self.calibrations]}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CalibrationSet:
        if data.get("format") != FORMAT:
            raise ConfigError(f"not a forensic_face calibration file (format {data.get('format')!r}, "
                              f"expected {FORMAT!r})")
        return cls(tuple(Calibration.from_json(b) for b in data.get("bands", [])), dict(data.get("metadata", {})))

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_json(), indent=2, sort_keys=True) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> CalibrationSet:
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"calibration file {path} does not exist") from None
        except json.JSONDecodeError as exc:
            raise ConfigError(f"calibration file {path} is not valid JSON ({exc})") from None
        return cls.from_json(data)


def _labelled(mated: np.ndarray, nonmated: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    scores = np.concatenate([mated, nonmated]).astype(np.float64)
    labels = np.concatenate([np.ones(len(mated)), np.zeros(len(nonmated))]).astype(np.int64)
    return scores, labels


def _check_scores(name: str, values: Sequence[float] | np.ndarray) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64).reshape(-1)
    if arr.size < 2:
        raise ConfigError(f"{name} needs at least 2 scores to fit a calibration, got {arr.size}")
    if not np.all(np.isfinite(arr)):
        raise ConfigError(f"{name} contains NaN or infinite scores")
    return arr


def cllr(log10_lrs: Sequence[float] | np.ndarray, labels: Sequence[int] | np.ndarray) -> float:
    """Log-likelihood-ratio cost (Brümmer & du Preez 2006) via ``lir.metrics.cllr``; labels 1 = mated."""
    from lir.data.models import LLRData
    from lir.metrics import cllr as lir_cllr

    return float(lir_cllr(LLRData(features=np.asarray(log10_lrs, dtype=np.float64),
                                  labels=np.asarray(labels, dtype=np.int64))))


def cllr_min(log10_lrs: Sequence[float] | np.ndarray, labels: Sequence[int] | np.ndarray) -> float:
    """Discrimination-only Cllr (after isotonic re-calibration), via ``lir.metrics.cllr_min``."""
    from lir.data.models import LLRData
    from lir.metrics import cllr_min as lir_cllr_min

    return float(lir_cllr_min(LLRData(features=np.asarray(log10_lrs, dtype=np.float64),
                                      labels=np.asarray(labels, dtype=np.int64))))


def fit_calibration(mated_scores: Sequence[float] | np.ndarray, nonmated_scores: Sequence[float] | np.ndarray,
                    band: int, conditions: str = "") -> Calibration:
    """Fit a logistic score-to-LR calibration (lir ``LogitCalibrator``) plus ELUB bounds for one band.

    ``mated_scores``: fused scores of same-person comparisons; ``nonmated_scores``: different persons; ``band``:
    the probe face width in pixels these scores were measured at.
    """
    from lir.algorithms.bayeserror import elub
    from lir.algorithms.logistic_regression import LogitCalibrator

    mated = _check_scores("mated_scores", mated_scores)
    nonmated = _check_scores("nonmated_scores", nonmated_scores)
    if band < 1:
        raise ConfigError(f"band must be a positive face width in pixels, got {band}")
    scores, labels = _labelled(mated, nonmated)
    # Weak regularisation: with class-balanced weights the fit is the maximum-likelihood logistic calibration.
    calibrator = LogitCalibrator(C=1e6, max_iter=1000)
    calibrator.fit(scores, labels)
    ln_to_log10 = math.log10(math.e)
    slope = float(calibrator._logit.coef_.reshape(-1)[0]) * ln_to_log10
    intercept = float(calibrator._logit.intercept_.reshape(-1)[0]) * ln_to_log10
    raw = slope * scores + intercept
    lower, upper = elub(raw.copy(), labels, add_misleading=1)
    bounded = np.clip(raw, lower, upper)
    return Calibration(
        band_px=int(band), slope=slope, intercept=intercept,
        lower_log10_lr=float(lower), upper_log10_lr=float(upper),
        num_mated=int(mated.size), num_nonmated=int(nonmated.size),
        cllr=cllr(bounded, labels), cllr_min=cllr_min(raw, labels), conditions=conditions,
    )


def tippett_plot(calibration: Calibration, mated_scores: Sequence[float] | np.ndarray,
                 nonmated_scores: Sequence[float] | np.ndarray, path: str | Path | None = None,
                 title: str | None = None) -> bytes:
    """Tippett plot (cumulative proportions of log10 LR under H1 and H2) as PNG bytes; also written to ``path``.

    Uses matplotlib's Agg canvas directly, so it is safe off the GUI thread and headless.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    mated = _check_scores("mated_scores", mated_scores)
    nonmated = _check_scores("nonmated_scores", nonmated_scores)
    llr_mated = np.sort(calibration.log10_lr(mated))
    llr_nonmated = np.sort(calibration.log10_lr(nonmated))
    figure = Figure(figsize=(5.0, 3.6), dpi=120)
    FigureCanvasAgg(figure)
    ax = figure.add_subplot(1, 1, 1)
    for values, colour, label in ((llr_mated, "tab:blue", "mated (H1 true)"),
                                  (llr_nonmated, "tab:red", "non-mated (H2 true)")):
        # Proportion of LRs >= x, as a step function over the sorted values.
        proportion = 1.0 - np.arange(values.size) / values.size
        ax.step(values, proportion * 100.0, where="post", color=colour, label=f"{label}, n={values.size}")
    ax.axvline(0.0, color="black", linestyle="--", linewidth=0.8)
    ax.set_xlabel("log10 LR")
    ax.set_ylabel("proportion of LRs >= x (%)")
    ax.set_ylim(0, 101)
    ax.set_title(title or f"Tippett plot, {calibration.band_px} px band, Cllr = {calibration.cllr:.3f}")
    ax.grid(True, linestyle=":", linewidth=0.5)
    ax.legend(loc="lower left", fontsize=8)
    figure.tight_layout()
    import io

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    data = buffer.getvalue()
    if path is not None:
        Path(path).write_bytes(data)
    return data


# -- shipped calibrations and matching them to a search's settings ---------------------------------------------

#: Where the calibrations shipped with forensic_face live (one CalibrationSet JSON per file).
SHIPPED_CALIBRATION_DIR = RESOURCES_DIR / "calibration"

#: A probe uses a calibration band only when its face width is within this many pixels of the band.
BAND_TOLERANCE_PX = 4.0

#: EngineConfig fields that change the fused scores (device, batch size, seed and top_k do not).
SCORE_CONFIG_FIELDS = ("recognizer", "upsampler", "precision", "scales", "num_blur_hypotheses", "max_blur_sigma",
                       "budget", "resolution_matching", "fusion", "size_bin_px")


def engine_conditions(config: Any, recognizer_sha256: str,
                      upsampler_weights_sha256: dict[str, str] | None = None,
                      degradation_paths: Sequence[str] | None = None) -> dict[str, Any]:
    """The settings a calibration is valid for: the score-relevant fields of an ``EngineConfig`` (or its
    ``to_dict()``) and the flip test when on, the recognizer's weights SHA-256, the upsampler's weights SHA-256
    (per scale; empty for bicubic), the detector's crop enlargement, and the SHA-256 of the gallery degradation
    paths (``degradation_paths``: the labels a search recorded; by default those the budget selects with the
    config's seed). Two searches with equal conditions produce comparable scores.

    The paths are named, not only the budget: a budget's name has selected other paths in other versions
    (``fast`` until 2026-12-06), and a replayed search keeps the paths it recorded."""
    from forensic_face.engine import SCORE_SCALE, FusionSpec, cache_key
    from forensic_face.engine.degradations import path_label, select_paths

    data = config if isinstance(config, dict) else config.to_dict()
    try:
        out: dict[str, Any] = {name: data[name] for name in SCORE_CONFIG_FIELDS}
        out["crop_enlarge"] = float(data["detector"]["crop_enlarge"])
    except (KeyError, TypeError) as exc:
        raise ConfigError(f"engine settings lack a field a calibration depends on ({exc})") from None
    out["scales"] = [int(s) for s in out["scales"]]
    out["max_blur_sigma"] = float(out["max_blur_sigma"])
    # Named only when on: calibrations fitted before the flip test existed keep matching the searches without
    # it, and never match those with it (configs recorded before it lack the field: they ran without it).
    if data.get("flip_test", False):
        out["flip_test"] = True
    # An ensemble's scores depend on how its members' scores are combined; named only for ensembles, so the
    # calibrations of single networks keep matching.
    from forensic_face.engine.recognizers import ENSEMBLE_SEPARATOR, ensemble_members

    if ENSEMBLE_SEPARATOR in str(out["recognizer"]):
        members = ensemble_members(str(out["recognizer"]))
        weights = [float(w) for w in data.get("ensemble_weights") or ()] or [1.0] * len(members)
        out["ensemble_rule"] = str(data.get("ensemble_rule", "mean"))
        out["ensemble_weights"] = [w / sum(weights) for w in weights]
        flips = [bool(f) for f in data.get("ensemble_flip_test") or ()]
        if flips:  # named only when set per member, so a calibration fitted without the setting still matches
            out["ensemble_flip_test"] = flips

    out["fusion"] = FusionSpec.parse(str(out["fusion"])).name  # "S_add" and "S_add,S_add" are one fusion
    out["score_scale"] = SCORE_SCALE
    out["recognizer_sha256"] = str(recognizer_sha256)
    out["upsampler_weights_sha256"] = {str(k): str(v) for k, v in (upsampler_weights_sha256 or {}).items()}
    if degradation_paths is None:
        degradation_paths = [path_label(p) for p in select_paths(str(out["budget"]), int(data.get("seed", 0)))]
    out["degradation_paths_sha256"] = cache_key(degradation_paths=list(degradation_paths))
    return out


def config_as_run(provenance: dict[str, Any]) -> dict[str, Any]:
    """A search's recorded engine settings with the precision its recognizer actually ran in (``auto`` names
    none; records made before the precision was recorded ran in the configured one)."""
    try:
        config = dict(provenance["config"])
        config["precision"] = provenance["recognizer"].get("precision", config.get("precision"))
    except (KeyError, TypeError, AttributeError) as exc:
        raise ConfigError(f"provenance record lacks {exc}; cannot tell which calibration applies") from None
    return config


def engine_conditions_from_provenance(provenance: dict[str, Any]) -> dict[str, Any]:
    """:func:`engine_conditions` of a search's or a benchmark run's provenance record."""
    try:
        return engine_conditions(config_as_run(provenance), provenance["recognizer"]["weights_sha256"],
                                 provenance.get("upsampler", {}).get("weights_sha256") or {},
                                 provenance.get("degradation_paths"))
    except (KeyError, TypeError) as exc:
        raise ConfigError(f"provenance record lacks {exc}; cannot tell which calibration applies") from None


def shipped_calibration_sets(directory: str | Path | None = None) -> list[CalibrationSet]:
    """Every readable ``*.json`` calibration set in ``directory`` (default :data:`SHIPPED_CALIBRATION_DIR`), in
    file-name order; unreadable files are skipped with a warning."""
    import logging

    folder = Path(directory) if directory is not None else SHIPPED_CALIBRATION_DIR
    sets = []
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            sets.append(CalibrationSet.load(path))
        except ConfigError as exc:
            logging.getLogger(__name__).warning("skipping calibration file: %s", exc)
    return sets


def load_shipped_calibration(config: Any, recognizer_sha256: str, face_width_px: float, *,
                             upsampler_weights_sha256: dict[str, str] | None = None,
                             directory: str | Path | None = None,
                             tolerance_px: float = BAND_TOLERANCE_PX,
                             scales_used: Sequence[int] | None = None,
                             degradation_paths: Sequence[str] | None = None) -> Calibration | None:
    """The shipped calibration for a search made with ``config`` on a probe face ``face_width_px`` wide.

    Looks at every ``*.json`` in ``directory`` (default :data:`SHIPPED_CALIBRATION_DIR`) whose
    ``metadata["engine"]`` equals :func:`engine_conditions` of these settings, and picks the band nearest to
    the face width. Returns ``None`` -- meaning "no calibration for these settings", an ordinary state in which
    scores are shown without likelihood ratios -- when no file matches the settings or no matching band lies
    within ``tolerance_px`` of the face width. ``scales_used`` (the scales the search actually used,
    ``provenance["scales_used"]``): a probe whose crop is too large for the largest magnification drops it, and
    its fused scores are then on another level; it is matched only by a calibration fitted on probes that used
    exactly those scales (``forensic-face calibrate --scales-used``). ``degradation_paths``: the gallery paths
    the search recorded (``provenance["degradation_paths"]``; default: those the budget selects). Unreadable files
    are skipped with a warning.
    """
    wanted = engine_conditions(config, recognizer_sha256, upsampler_weights_sha256, degradation_paths)
    if scales_used is not None and [int(x) for x in scales_used] != wanted["scales"]:
        wanted["scales"] = [int(x) for x in scales_used]
    candidates = [c for s in shipped_calibration_sets(directory) if s.metadata.get("engine") == wanted
                  for c in s.calibrations]
    if not candidates or not math.isfinite(face_width_px):
        return None
    best = CalibrationSet(tuple(candidates)).for_width(face_width_px)
    return best if abs(best.band_px - face_width_px) <= tolerance_px else None


def calibration_for_result(result: Any, directory: str | Path | None = None) -> Calibration | None:
    """:func:`load_shipped_calibration` for a :class:`~forensic_face.engine.results.SearchResult` (its provenance
    and probe face width); ``None`` means no calibration applies to it (always for a provisional ranking:
    its scores come from one hypothesis pair, not the calibrated fusion)."""
    if result.provenance.get("provisional") or "video" in result.provenance:
        return None
    conditions = engine_conditions_from_provenance(result.provenance)
    return load_shipped_calibration(config_as_run(result.provenance), conditions["recognizer_sha256"],
                                    result.probe_face.width_px,
                                    upsampler_weights_sha256=conditions["upsampler_weights_sha256"],
                                    directory=directory, scales_used=result.provenance.get("scales_used"),
                                    degradation_paths=result.provenance.get("degradation_paths"))


def why_no_calibration(result: Any, directory: str | Path | None = None) -> str:
    """Why :func:`calibration_for_result` finds none for ``result``, in words for the investigator (empty when
    one applies): a provisional ranking, settings no calibration was fitted for, a face width outside the
    fitted bands, or a set of scales (a probe too large for the largest magnification) without its own fit."""
    if result.provenance.get("provisional"):
        return "this is the provisional ranking; likelihood ratios come with the full search"
    if "video" in result.provenance:
        from forensic_face.engine import video_no_calibration_reason

        return video_no_calibration_reason(len(result.provenance["video"].get("frames", ())))
    try:
        conditions = engine_conditions_from_provenance(result.provenance)
    except ConfigError as exc:
        return str(exc)
    sets = shipped_calibration_sets(directory)
    width = result.probe_face.width_px
    used = [int(s) for s in result.provenance.get("scales_used") or conditions["scales"]]

    def without_scales(engine: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in engine.items() if k != "scales"}

    same_settings = [s for s in sets if without_scales(s.metadata.get("engine", {})) == without_scales(conditions)]
    if not same_settings:
        return ("no calibration was fitted for these settings (recognizer, upsampler, budget or its gallery "
                "degradation paths, fusion or hypotheses differ from every shipped calibration); scores rank "
                "candidates but are not likelihood ratios")
    matching_scales = [c for s in same_settings for c in s.calibrations if s.metadata["engine"].get("scales") == used]
    if not matching_scales:
        return (f"this probe was searched at {', '.join(f'{s}x' for s in used)} (its crop is too large for the "
                f"larger magnifications, or the scales differ) and no calibration was fitted for that set of scales")
    bands = sorted({c.band_px for c in matching_scales})
    if math.isfinite(width) and any(abs(b - width) <= BAND_TOLERANCE_PX for b in bands):
        return ""  # the same test as load_shipped_calibration: one applies
    return (f"the probe face is {width:.0f} px wide; calibrations exist for {', '.join(f'{b} px' for b in bands)} "
            f"faces (within {BAND_TOLERANCE_PX:.0f} px)")


def lr_record(calibration: Calibration | None, score: float) -> dict[str, Any]:
    """``{"lr", "log10_lr", "verbal"}`` of one candidate's score; all ``None`` without a calibration."""
    if calibration is None:
        return {"lr": None, "log10_lr": None, "verbal": None}
    log10_lr = float(calibration.log10_lr([score])[0])
    lr = 10.0 ** log10_lr
    return {"lr": float(f"{lr:.6g}"), "log10_lr": round(log10_lr, 4), "verbal": verbal_equivalent(lr)}


def format_lr(lr: float) -> str:
    """An LR for display: 3 significant digits, powers of ten outside [0.001, 10^4]."""
    return f"{lr:.3g}" if 1e-3 <= lr <= 1e4 else f"10^{math.log10(lr):.1f}"
