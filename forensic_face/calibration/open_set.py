"""Open-set cue: is the top of a ranking typical of a person in the gallery, or may the person be absent?

A search always returns a rank-1 candidate, also when the person is not in the gallery, and a candidate's LR
(:mod:`forensic_face.calibration`) weighs one comparison at a time, as if that candidate had not been selected as
the best of many. The open-set cue weighs the top of the whole ranking: a statistic of the gallery scores (by
default the rank-1 score; :data:`STATISTICS`), turned into a likelihood ratio for

    H1: the person in the probe is in the gallery (as some candidate, not necessarily rank 1)
    H2: the person is not in the gallery

with the same logistic calibration and ELUB bounds as the candidate LRs (:func:`fit_calibration`). It is fitted
on benchmark runs by simulating absence: each probe gives one H1 sample (its scores against the gallery)
and one H2 sample (the same scores with its own identity's column removed, i.e. its person left out of the
gallery). Probes are split by identity (:func:`~forensic_face.calibration.fit.split_by_identity`): fitted on one
half, measured on the people of the other half (``forensic-face calibrate --open-set``).

The best score of a gallery depends on how many people it holds (the maximum of more non-mated scores is
higher), so a calibration is fitted per gallery size, on random galleries of that many identities drawn from the
benchmark's. Open-set calibrations are :class:`~forensic_face.calibration.CalibrationSet` files in their own
folder, one sub-folder ``gallery_<N>`` per gallery size (:data:`OPEN_SET_CALIBRATION_DIR`, so a score-to-LR
lookup never finds them). A search uses the smallest fitted gallery size at least as large as its own
(:func:`gallery_size_folders`), and within it the calibration matched by the same rule as the candidate LRs
(:func:`~forensic_face.calibration.calibration_for_result`: engine conditions, scales used, face-width band).
No match means no cue, said in words; the cue is never guessed.
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
from forensic_face.engine import ConfigError

#: Shipped open-set calibrations (CalibrationSet JSON files, one per engine setting and set of scales).
OPEN_SET_CALIBRATION_DIR = SHIPPED_CALIBRATION_DIR / "open_set"

H1_PRESENT = "H1 (the person is in the gallery)"
H2_ABSENT = "H2 (the person is not in the gallery)"

#: The statistic needs a spread of other gallery scores to stand out from.
MIN_GALLERY_IDENTITIES = 10

OPEN_SET_CAVEAT = (
    "The open-set LR weighs the top of the ranking, calibrated on reference data (LFW-XRes) with people left out "
    "of galleries of about this size; it says whether the person is likely in the gallery, not which candidate is "
    "the person, and a gallery of another population, or imaging conditions unlike the calibration's, may change it."
)

#: Sub-folders of the open-set calibrations: ``gallery_<N>`` holds those fitted on galleries of N identities.
GALLERY_FOLDER_PREFIX = "gallery_"
#: A calibration fitted on N identities serves galleries of up to this many times N (see gallery_size_folders).
GALLERY_SIZE_TOLERANCE = 1.25

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
DEFAULT_STATISTIC = "top1"


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


def too_small_gallery(num_identities: int) -> OpenSetCue:
    return not_available(f"the gallery has {num_identities} identities; the cue needs at least "
                         f"{MIN_GALLERY_IDENTITIES}", num_identities)


def cue_from_ranking(ranking: Sequence[tuple[str, float]], calibration: Calibration) -> OpenSetCue:
    """The cue of a ranking (every gallery identity with its fused score) under an open-set ``calibration``."""
    num = len(ranking)
    if num < MIN_GALLERY_IDENTITIES:
        return too_small_gallery(num)
    statistic = statistic_of(calibration)
    value = open_set_statistic([score for _, score in ranking], statistic)
    log10_lr = float(calibration.log10_lr([value])[0])
    lr = 10.0 ** log10_lr
    verbal = verbal_equivalent(lr, H1_PRESENT, H2_ABSENT)
    if lr < 1.0:
        text = (f"The person may not be in the gallery: the top of this ranking is more typical of searches whose "
                f"person is absent (open-set LR {format_lr(lr)}, {verbal}).")
    else:
        text = (f"The top of this ranking is more typical of searches whose person is in the gallery: open-set LR "
                f"{format_lr(lr)}, {verbal}; it does not say which candidate is the person.")
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
    num = len(result.ranking)
    if num < MIN_GALLERY_IDENTITIES:
        return too_small_gallery(num)
    root = OPEN_SET_CALIBRATION_DIR if directory is None else Path(directory)
    folders = gallery_size_folders(root, num)
    if not folders:
        sizes = sorted(int(f.name.removeprefix(GALLERY_FOLDER_PREFIX)) for f in root.glob(f"{GALLERY_FOLDER_PREFIX}*")
                       if f.name.removeprefix(GALLERY_FOLDER_PREFIX).isdigit()) if root.is_dir() else []
        return not_available(f"the gallery has {num} identities, more than the open-set calibrations were fitted for "
                             f"(galleries of up to {sizes[-1]})" if sizes else "no open-set calibration is installed",
                             num)
    try:
        for _, folder in folders:
            calibration = calibration_for_result(result, directory=folder)
            if calibration is not None:
                return cue_from_ranking(result.ranking, calibration)
        reason = why_no_calibration(result, directory=folders[0][1]) or "no open-set calibration matches this search"
    except ConfigError as exc:  # a record too old or incomplete to tell its settings
        return not_available(str(exc), num)
    # why_no_calibration speaks of likelihood ratios of scores; here only its cause matters.
    return not_available(reason.split("; scores rank candidates")[0].replace("likelihood ratios come", "the cue comes"),
                         num)


def gallery_size_folders(directory: Path, num_identities: int) -> list[tuple[int, Path]]:
    """The ``gallery_<N>`` sub-folders of ``directory`` that may serve a gallery of ``num_identities``, as
    ``(N, folder)``, best first: the smallest N at least as large, then the larger ones. A calibration fitted on
    a larger gallery is cautious on a smaller one (its people-left-out best scores came from more identities, so
    it asks more of a score before it supports presence); one fitted on a smaller gallery would overstate
    presence, so it serves only galleries up to :data:`GALLERY_SIZE_TOLERANCE` times its size."""
    folders = []
    for folder in directory.glob(f"{GALLERY_FOLDER_PREFIX}*") if directory.is_dir() else []:
        size = folder.name.removeprefix(GALLERY_FOLDER_PREFIX)
        if folder.is_dir() and size.isdigit() and num_identities <= int(size) * GALLERY_SIZE_TOLERANCE:
            folders.append((int(size), folder))
    return sorted(folders, key=lambda f: (f[0] < num_identities, f[0] if f[0] >= num_identities else -f[0]))


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


#: Gallery sizes at which the held-out behaviour of a calibration is also measured (random identities per probe),
#: besides the whole benchmark gallery: what a calibration for one size does on galleries of another.
CHECK_GALLERY_SIZES = (10, 30, 100)


def calibrate_open_set(data: Any, band: int, heldout_fraction: float, seed: int,
                       statistic: str = DEFAULT_STATISTIC, gallery_size: int | None = None) -> OpenSetOutcome:
    """Fit the open-set calibration on one identity-disjoint half of ``data`` (a
    :class:`~forensic_face.calibration.fit.ProbeScores`) and measure it on the other (:func:`cue_rates`).
    ``gallery_size``: fit and measure on a random gallery of that many identities per probe (seeded) instead of
    the whole benchmark gallery. The held-out rates are also measured at the other :data:`CHECK_GALLERY_SIZES`
    and on the whole gallery. The returned calibration's ``cllr``/``cllr_min`` are the held-out values."""
    from forensic_face.calibration.fit import conditions_text, run_metadata, split_by_identity

    if statistic not in STATISTICS:
        raise ConfigError(f"unknown open-set statistic {statistic!r}; choose one of {sorted(STATISTICS)}")
    num_columns = int(data.scores.shape[1])
    if gallery_size is not None and not 3 <= gallery_size < num_columns:
        raise ConfigError(f"--gallery-size must lie between 3 and {num_columns - 1} (the benchmark gallery has "
                          f"{num_columns} identities; leave it out to use them all)")
    fit_rows, heldout_rows = split_by_identity(data.identity, heldout_fraction, seed)
    rng = np.random.default_rng(seed)

    def statistics(rows: np.ndarray, size: int | None) -> tuple[np.ndarray, np.ndarray]:
        return present_absent_statistics(data.scores[rows], data.mated_column[rows], statistic, size, rng)

    fit_present, fit_absent = statistics(fit_rows, gallery_size)
    test_present, test_absent = statistics(heldout_rows, gallery_size)
    fitted = fit_calibration(fit_present, fit_absent, band=band)
    # Rank 1 of a sampled gallery is not recorded: the rank-1 rates are those of the whole gallery only.
    filled = np.where(np.isfinite(data.scores), data.scores, -np.inf)
    whole = gallery_size is None
    rank1_correct = (np.argmax(filled, axis=1) == data.mated_column) if whole else np.zeros(len(filled), bool)

    def rates(present: np.ndarray, absent: np.ndarray, correct: np.ndarray, with_rank1: bool) -> dict[str, Any]:
        out = cue_rates(fitted, present, absent, correct)
        if not with_rank1:
            out.pop("present_rank1_correct_may_be_absent"), out.pop("present_rank1_correct")
        return out

    heldout = rates(test_present, test_absent, rank1_correct[heldout_rows], whole)
    fit = rates(fit_present, fit_absent, rank1_correct[fit_rows], whole)
    by_size = {}
    for size in (*CHECK_GALLERY_SIZES, None):
        if size != gallery_size and (size is None or size < num_columns):
            present, absent = statistics(heldout_rows, size)
            correct = np.argmax(filled, axis=1) == data.mated_column
            by_size[str(size or num_columns)] = rates(present, absent, correct[heldout_rows], size is None)
    num_gallery = gallery_size or num_columns
    metadata = run_metadata(data, band, heldout_fraction, seed, fit_rows, heldout_rows)
    split = metadata["split"]
    sampled = f"random {gallery_size}-identity galleries drawn from the {num_columns}" if gallery_size else \
        f"the whole {num_columns}-identity gallery"
    text = (
        f"{conditions_text(metadata)}; open-set statistic {statistic} on {sampled}, H1 the person is in the "
        f"gallery / H2 left out; fitted on {fit_present.size} probes of {len(split['fit_identities'])} people; Cllr "
        f"{heldout['cllr']:.3f} measured on {test_present.size} probes of {len(split['heldout_identities'])} other "
        f"people, present and left out."
    )
    calibration = dataclasses.replace(
        fitted, cllr=heldout["cllr"], cllr_min=heldout["cllr_min"], conditions=text,
        method=f"{METHOD_PREFIX}{statistic}; lir.algorithms.logistic_regression.LogitCalibrator + lir ELUB bounds")
    metadata.update({"kind": "open-set", "statistic": statistic, "num_gallery_identities": num_gallery,
                     "benchmark_gallery_identities": num_columns,
                     "hypotheses": {"H1": H1_PRESENT, "H2": H2_ABSENT}, "fit": fit, "heldout": heldout,
                     "heldout_by_gallery_size": by_size})
    return OpenSetOutcome(calibration, metadata, test_present, test_absent)
