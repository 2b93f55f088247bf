"""Open-set cue: does the best candidate stand out from the rest of the gallery, or may the person be absent?

A search always returns a rank-1 candidate, also when the person is not in the gallery, and a candidate's LR
(:mod:`forensic_face.calibration`) weighs one comparison at a time. The open-set cue weighs the whole ranking:
a statistic of how far the rank-1 fused score stands out from the other gallery scores, turned into a likelihood
ratio for

    H1: the person in the probe is in the gallery (as some candidate, not necessarily rank 1)
    H2: the person is not in the gallery

with the same logistic calibration and ELUB bounds as the candidate LRs (:func:`fit_calibration`). It is fitted
on benchmark runs by simulating absence: each probe gives one H1 sample (its scores against the whole gallery)
and one H2 sample (the same scores with its own identity's column removed, i.e. its person left out of the
gallery). Probes are split by identity (:func:`~forensic_face.calibration.fit.split_by_identity`): fitted on one
half, measured on the people of the other half (``forensic-face calibrate --open-set``).

Open-set calibrations are :class:`~forensic_face.calibration.CalibrationSet` files in their own folder
(:data:`OPEN_SET_CALIBRATION_DIR`, so a score-to-LR lookup never finds them), matched to a search by the same
rule as the candidate LRs (:func:`~forensic_face.calibration.calibration_for_result`: engine conditions, scales
used, face-width band). No match means no cue, said in words; the cue is never guessed.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from forensic_face.calibration import (
    SHIPPED_CALIBRATION_DIR,
    Calibration,
    calibration_for_result,
    cllr,
    cllr_min,
    fit_calibration,
    format_lr,
    verbal_equivalent,
    why_no_calibration,
)
from forensic_face.engine.errors import ConfigError

#: Shipped open-set calibrations (CalibrationSet JSON files, one per engine setting and set of scales).
OPEN_SET_CALIBRATION_DIR = SHIPPED_CALIBRATION_DIR / "open_set"

H1_PRESENT = "H1 (the person is in the gallery)"
H2_ABSENT = "H2 (the person is not in the gallery)"

#: The statistic needs a spread of other gallery scores to stand out from.
MIN_GALLERY_IDENTITIES = 10

OPEN_SET_CAVEAT = (
    "The open-set LR weighs how far the rank-1 score stands out from the other gallery scores, calibrated on "
    "reference data (LFW-XRes) with people left out of the gallery; it says whether the person is likely in the "
    "gallery, not which candidate is the person, and a gallery of another size or population than the "
    "calibration's may change it."
)

#: Marks a calibration's ``method`` as an open-set one; the statistic's name follows.
METHOD_PREFIX = "open-set statistic "


def _sorted_desc(scores: Sequence[float] | np.ndarray) -> np.ndarray:
    values = np.asarray(scores, dtype=np.float64).reshape(-1)
    return -np.sort(-values[np.isfinite(values)])


def _top1(s: np.ndarray) -> float:
    return float(s[0])


def _gap(s: np.ndarray) -> float:
    return float(s[0] - s[1])


def _z(s: np.ndarray) -> float:
    rest = s[1:]
    return float((s[0] - rest.mean()) / max(float(rest.std()), 1e-12))


def _gap_z(s: np.ndarray) -> float:
    return float((s[0] - s[1]) / max(float(s[1:].std()), 1e-12))


#: Candidate statistics of one probe's gallery scores sorted best first (``forensic-face calibrate --open-set
#: --statistic``; docs/calibration.md compares them): the rank-1 score, the rank-1 minus rank-2 gap, the rank-1
#: score z-normalised by the mean and spread of the others, and the gap so normalised.
STATISTICS: dict[str, Callable[[np.ndarray], float]] = {"top1": _top1, "gap": _gap, "z": _z, "gap-z": _gap_z}
DEFAULT_STATISTIC = "z"


def open_set_statistic(scores: Sequence[float] | np.ndarray, statistic: str = DEFAULT_STATISTIC) -> float:
    """The open-set statistic of one probe's fused scores against every gallery identity (NaN entries ignored)."""
    if statistic not in STATISTICS:
        raise ConfigError(f"unknown open-set statistic {statistic!r}; choose one of {sorted(STATISTICS)}")
    ordered = _sorted_desc(scores)
    if ordered.size < 3:
        raise ConfigError(f"the open-set statistic needs scores of at least 3 gallery identities, got {ordered.size}")
    return STATISTICS[statistic](ordered)


def statistic_of(calibration: Calibration) -> str:
    """The statistic an open-set calibration was fitted on (recorded in its ``method``)."""
    name = calibration.method.removeprefix(METHOD_PREFIX).split(";", 1)[0].strip()
    if not calibration.method.startswith(METHOD_PREFIX) or name not in STATISTICS:
        raise ConfigError(f"calibration method {calibration.method!r} names no known open-set statistic")
    return name


# -- the cue of one search -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class OpenSetCue:
    """The open-set statement of one search. ``available`` False: ``text`` says why there is no cue."""

    available: bool
    text: str
    statistic: str | None = None
    value: float | None = None
    lr: float | None = None
    log10_lr: float | None = None
    verbal: str | None = None
    #: LR < 1: the ranking supports "the person is not in the gallery" over "is in the gallery".
    may_be_absent: bool = False
    num_gallery_identities: int = 0
    calibration: Calibration | None = None

    def to_json(self) -> dict[str, Any]:
        cal = self.calibration
        return {"available": self.available, "text": self.text, "statistic": self.statistic,
                "value": None if self.value is None else round(self.value, 6),
                "lr": self.lr, "log10_lr": self.log10_lr, "verbal": self.verbal,
                "may_be_absent": self.may_be_absent, "num_gallery_identities": self.num_gallery_identities,
                "calibration": None if cal is None else {
                    "band_px": cal.band_px, "cllr": round(cal.cllr, 4), "cllr_min": round(cal.cllr_min, 4),
                    "conditions": cal.conditions, "caveat": OPEN_SET_CAVEAT}}


def not_available(reason: str, num_identities: int = 0) -> OpenSetCue:
    return OpenSetCue(available=False, num_gallery_identities=num_identities,
                      text=f"Open-set cue not available: {reason}. Nothing here says whether the person is in the "
                           "gallery.")


def cue_from_ranking(ranking: Sequence[tuple[str, float]], calibration: Calibration) -> OpenSetCue:
    """The cue of a ranking (every gallery identity with its fused score) under an open-set ``calibration``."""
    num = len(ranking)
    if num < MIN_GALLERY_IDENTITIES:
        return not_available(f"the gallery has {num} identities; the cue needs at least {MIN_GALLERY_IDENTITIES} "
                             "to tell whether the best one stands out", num)
    statistic = statistic_of(calibration)
    value = open_set_statistic([score for _, score in ranking], statistic)
    log10_lr = float(calibration.log10_lr([value])[0])
    lr = 10.0 ** log10_lr
    verbal = verbal_equivalent(lr, H1_PRESENT, H2_ABSENT)
    if lr < 1.0:
        text = (f"The best candidate does not stand out from the rest of the gallery: the person may not be in the "
                f"gallery (open-set LR {format_lr(lr)}, {verbal}).")
    else:
        text = (f"The best candidate stands out from the rest of the gallery: open-set LR {format_lr(lr)}, {verbal}; "
                "it does not say which candidate is the person.")
    return OpenSetCue(available=True, text=text, statistic=statistic, value=value, lr=float(f"{lr:.6g}"),
                      log10_lr=round(log10_lr, 4), verbal=verbal, may_be_absent=lr < 1.0,
                      num_gallery_identities=num, calibration=calibration)


def open_set_cue(result: Any, directory: str | Path | None = None) -> OpenSetCue:
    """The open-set cue of a :class:`~forensic_face.engine.results.SearchResult` (or a stored search's
    ``to_search_result()``), from the open-set calibration matching its settings and face width; otherwise
    the reason there is none."""
    if "shortlist" in result.provenance:
        return not_available("the ranking covers a shortlist of the gallery, not every identity, and the cue is "
                             "calibrated on whole-gallery rankings", len(result.ranking))
    folder = OPEN_SET_CALIBRATION_DIR if directory is None else Path(directory)
    try:
        calibration = calibration_for_result(result, directory=folder)
    except ConfigError as exc:  # a record too old or incomplete to tell its settings
        return not_available(str(exc), len(result.ranking))
    if calibration is None:
        reason = why_no_calibration(result, directory=folder) or "no open-set calibration matches this search"
        # why_no_calibration speaks of likelihood ratios of scores; here only its cause matters.
        reason = reason.split("; scores rank candidates")[0].replace("likelihood ratios come", "the cue comes")
        return not_available(reason, len(result.ranking))
    return cue_from_ranking(result.ranking, calibration)


# -- fitting on benchmark runs ---------------------------------------------------------------------------------


def present_absent_statistics(scores: np.ndarray, mated_column: np.ndarray, statistic: str,
                              gallery_size: int | None = None,
                              rng: np.random.Generator | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per probe (row of ``scores``, its identity's column ``mated_column``): the statistic with its person in
    the gallery (H1) and with that column removed (H2, the person left out). ``gallery_size``: instead of the
    whole gallery, a random ``gallery_size`` identities per probe (its own among them for H1, not for H2)."""
    present, absent = [], []
    num_columns = scores.shape[1]
    for row, column in zip(scores, mated_column):
        others = np.delete(np.arange(num_columns), column)
        if gallery_size is not None:
            if rng is None:
                raise ConfigError("a random generator is needed to sample galleries")
            if not 3 <= gallery_size <= others.size:
                raise ConfigError(f"gallery size {gallery_size} must lie between 3 and {others.size}")
            picked = rng.choice(others, size=gallery_size, replace=False)
            present.append(open_set_statistic(np.append(row[picked[: gallery_size - 1]], row[column]), statistic))
            absent.append(open_set_statistic(row[picked], statistic))
        else:
            present.append(open_set_statistic(row, statistic))
            absent.append(open_set_statistic(row[others], statistic))
    return np.asarray(present), np.asarray(absent)


def cue_rates(calibration: Calibration, present: np.ndarray, absent: np.ndarray,
              rank1_correct: np.ndarray) -> dict[str, Any]:
    """Held-out behaviour of the cue: Cllr, Cllr_min, the rates of false support for presence among absent
    people (LR > 1, >= 100, >= 1000 i.e. "strong support" or more on the ENFSI scale) and of "may not be in
    the gallery" (LR < 1) among present people, overall and where rank 1 was the person."""
    lr_present = calibration.log10_lr(present)
    lr_absent = calibration.log10_lr(absent)
    labels = np.concatenate([np.ones(present.size), np.zeros(absent.size)]).astype(np.int64)
    raw = calibration.slope * np.concatenate([present, absent]) + calibration.intercept
    correct = np.asarray(rank1_correct, dtype=bool)

    def rate(mask: np.ndarray) -> float | None:
        return round(float(mask.mean()), 4) if mask.size else None

    return {
        "num_present": int(present.size), "num_absent": int(absent.size),
        "cllr": cllr(np.concatenate([lr_present, lr_absent]), labels), "cllr_min": cllr_min(raw, labels),
        "absent_lr_above_1": rate(lr_absent > 0), "absent_lr_at_least_100": rate(lr_absent >= 2),
        "absent_lr_at_least_1000_strong": rate(lr_absent >= 3),
        "present_may_be_absent": rate(lr_present < 0),
        "present_rank1_correct_may_be_absent": rate(lr_present[correct] < 0),
        "present_rank1_correct": rate(correct),
    }


@dataclass(frozen=True)
class OpenSetOutcome:
    calibration: Calibration
    metadata: dict[str, Any]
    heldout_present: np.ndarray
    heldout_absent: np.ndarray


#: Gallery sizes at which the held-out behaviour is also measured (random identities per probe): a case gallery
#: is often far smaller than the benchmark's.
CHECK_GALLERY_SIZES = (30, 100)


def calibrate_open_set(data: Any, band: int, heldout_fraction: float, seed: int,
                       statistic: str = DEFAULT_STATISTIC) -> OpenSetOutcome:
    """Fit the open-set calibration on one identity-disjoint half of ``data`` (a
    :class:`~forensic_face.calibration.fit.ProbeScores`) and measure it on the other (:func:`cue_rates`, on
    the whole gallery and on random galleries of :data:`CHECK_GALLERY_SIZES` identities). The returned
    calibration's ``cllr``/``cllr_min`` are the held-out values."""
    from forensic_face.calibration.fit import conditions_text, run_metadata, split_by_identity

    if statistic not in STATISTICS:
        raise ConfigError(f"unknown open-set statistic {statistic!r}; choose one of {sorted(STATISTICS)}")
    fit_rows, heldout_rows = split_by_identity(data.identity, heldout_fraction, seed)
    num_gallery = int(data.scores.shape[1])
    fit_present, fit_absent = present_absent_statistics(data.scores[fit_rows], data.mated_column[fit_rows],
                                                        statistic)
    test_present, test_absent = present_absent_statistics(data.scores[heldout_rows],
                                                          data.mated_column[heldout_rows], statistic)
    fitted = fit_calibration(fit_present, fit_absent, band=band)
    filled = np.where(np.isfinite(data.scores), data.scores, -np.inf)
    rank1_correct = np.argmax(filled, axis=1) == data.mated_column
    heldout = cue_rates(fitted, test_present, test_absent, rank1_correct[heldout_rows])
    fit = cue_rates(fitted, fit_present, fit_absent, rank1_correct[fit_rows])
    rng = np.random.default_rng(seed)
    by_size = {}
    for size in CHECK_GALLERY_SIZES:
        if size < num_gallery - 1:
            present, absent = present_absent_statistics(data.scores[heldout_rows], data.mated_column[heldout_rows],
                                                        statistic, gallery_size=size, rng=rng)
            picked_correct = np.zeros(present.size, dtype=bool)  # rank 1 depends on the sampled gallery
            rates = cue_rates(fitted, present, absent, picked_correct)
            rates.pop("present_rank1_correct_may_be_absent"), rates.pop("present_rank1_correct")
            by_size[str(size)] = rates
    metadata = run_metadata(data, band, heldout_fraction, seed, fit_rows, heldout_rows)
    split = metadata["split"]
    text = (
        f"{conditions_text(metadata)}; open-set statistic {statistic} of a {num_gallery}-identity gallery, "
        f"H1 the person is in the gallery / H2 left out; fitted on {fit_present.size} probes of "
        f"{len(split['fit_identities'])} people; Cllr {heldout['cllr']:.3f} measured on {test_present.size} probes "
        f"of {len(split['heldout_identities'])} other people, present and left out."
    )
    calibration = dataclasses.replace(
        fitted, cllr=heldout["cllr"], cllr_min=heldout["cllr_min"], conditions=text,
        method=f"{METHOD_PREFIX}{statistic}; lir.algorithms.logistic_regression.LogitCalibrator + lir ELUB bounds")
    metadata.update({"kind": "open-set", "statistic": statistic, "num_gallery_identities": num_gallery,
                     "hypotheses": {"H1": H1_PRESENT, "H2": H2_ABSENT}, "fit": fit, "heldout": heldout,
                     "heldout_by_gallery_size": by_size})
    return OpenSetOutcome(calibration, metadata, test_present, test_absent)
