"""Fit a score-to-LR calibration (``forensic-face calibrate``) on LFW-XRes benchmark scores, test it on held-out
probes, and write the calibration JSON and a Tippett plot.

The probes of the benchmark run(s) are split by identity (seeded; no person's probes fall in both halves). The
calibration is fitted on the mated / non-mated scores of one half and its Cllr and Cllr_min are measured on the
other half. The gallery is the same for both halves (every probe is compared with every gallery identity), so
held-out probes are new probe images of new people compared with the same gallery portraits.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from forensic_face.calibration import (
    Calibration,
    cllr,
    cllr_min,
    engine_conditions_from_provenance,
    fit_calibration,
)
from forensic_face.engine import ConfigError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ProbeScores:
    """Per-probe scores of one or more benchmark runs: probe ``i`` is ``identity[i]`` and scored ``scores[i]``
    against ``gallery``; ``mated_column[i]`` is the gallery column of its identity."""

    identity: np.ndarray  # (P,) str
    scores: np.ndarray  # (P, G) float, NaN where not scored
    mated_column: np.ndarray  # (P,) int
    result: dict[str, Any]  # the first run's result.json (empty when absent)
    sources: tuple[str, ...]
    #: The scales the kept probes were searched with, when not all configured ones (see load_probe_scores).
    scales_used: tuple[int, ...] | None = None

    def split_scores(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Mated and non-mated scores of the probes ``rows`` (finite scores only)."""
        sub = self.scores[rows]
        cols = self.mated_column[rows]
        is_mated = np.zeros(sub.shape, dtype=bool)
        is_mated[np.arange(len(rows)), cols] = True
        finite = np.isfinite(sub)
        return sub[is_mated & finite].astype(np.float64), sub[~is_mated & finite].astype(np.float64)


def _locate(source: Path) -> tuple[Path, Path | None]:
    if source.is_dir():
        npz = source / "scores.npz"
        result = source / "result.json"
    else:
        npz, result = source, source.parent / "result.json"
    if not npz.is_file():
        raise ConfigError(f"{npz} does not exist (give a benchmark run folder or its scores.npz)")
    return npz, result if result.is_file() else None


def load_probe_scores(sources: list[Path], band: int, scales_used: tuple[int, ...] | None = None) -> ProbeScores:
    """Read ``scores.npz`` (+ ``result.json`` beside it) of each benchmark run; all must share the engine
    settings, the gallery identities and the face-width band.

    By default only probes searched at every configured scale are kept. ``scales_used`` (a leading part of the
    configured scales, e.g. ``(2, 4)`` of ``(2, 4, 8)``) keeps instead the probes whose crop was too large for
    the larger magnifications and were searched at exactly those: their scores sit on another level and get a
    calibration of their own."""
    identity: list[np.ndarray] = []
    rows: list[np.ndarray] = []
    columns: list[np.ndarray] = []
    first_result: dict[str, Any] = {}
    gallery: list[str] | None = None
    conditions: dict[str, Any] | None = None
    for source in sources:
        npz_path, result_path = _locate(source)
        with np.load(npz_path, allow_pickle=False) as data:
            missing = {"scores", "mated_index", "identities"} - set(data.files)
            if missing:
                raise ConfigError(f"{npz_path} lacks {sorted(missing)}: per-probe scores are needed to split by "
                                  "identity; re-run `forensic-face eval` to write them")
            run_band = int(data["band_px"]) if "band_px" in data.files else None
            scores = np.asarray(data["scores"], dtype=np.float64)
            mated = np.asarray(data["mated_index"], dtype=np.int64)
            names = [str(n) for n in data["identities"]]
            per_probe_scales = np.asarray(data["probe_num_scales"]) if "probe_num_scales" in data.files else None
        result = json.loads(result_path.read_text(encoding="utf-8")) if result_path else {}
        if run_band is None:
            run_band = int(result.get("settings", {}).get("width_px", band))
        if run_band != band:
            raise ConfigError(f"{npz_path} holds {run_band} px probes, not the {band} px band asked for")
        if gallery is None:
            gallery, first_result = names, result
        elif names != gallery:
            raise ConfigError(f"{npz_path} was scored against a different gallery than {sources[0]}")
        if "provenance" in result:
            run_conditions = engine_conditions_from_provenance(result["provenance"])
            if conditions is None:
                conditions = run_conditions
            elif run_conditions != conditions:
                raise ConfigError(f"{npz_path} was made with different engine settings than {sources[0]}")
        searched = mated >= 0
        if scales_used is not None:
            configured = [int(s) for s in (result.get("config") or result.get("provenance", {}).get("config")
                                           or {}).get("scales", ())]
            if list(scales_used) != configured[: len(scales_used)] or len(scales_used) >= len(configured):
                raise ConfigError(f"--scales-used {list(scales_used)} must be a leading part of the run's scales "
                                  f"{configured} (a probe drops its largest magnifications first)")
            if per_probe_scales is None:
                raise ConfigError(f"{npz_path} does not record the scales each probe used; re-run the benchmark")
            keep = searched & (per_probe_scales == len(scales_used))
        else:
            keep = searched & _used_all_scales(scores, result, per_probe_scales)
        if scales_used is None and int(searched.sum() - keep.sum()):
            log.warning("%s: %d of %d searched probes used fewer than all configured scales (their crop was too "
                        "large for the largest magnification); they are left out of the calibration, and searches "
                        "of such probes get no LR", npz_path, int(searched.sum() - keep.sum()), int(searched.sum()))
        identity.append(np.asarray(names, dtype=object)[mated[keep]])
        rows.append(scores[keep])
        columns.append(mated[keep])
        log.info("%s: %d searched probes of %d", npz_path, int(keep.sum()), len(mated))
    probe_identity = np.concatenate(identity)
    if probe_identity.size == 0:
        raise ConfigError("the benchmark runs hold no searched probes")
    return ProbeScores(identity=probe_identity, scores=np.concatenate(rows), mated_column=np.concatenate(columns),
                       result=first_result, sources=tuple(str(s) for s in sources),
                       scales_used=None if scales_used is None else tuple(int(s) for s in scales_used))


def _used_all_scales(scores: np.ndarray, result: dict[str, Any], data_num_scales: np.ndarray | None) -> np.ndarray:
    """Per probe: did its search use every configured scale? A probe whose crop is too large for a magnification
    drops that scale (``engine.search.effective_scales``), and fusions that add per-scale similarities (S_add,
    T_add) then give all its scores on a lower level (about k/K of the full-scale level), so its scores are not
    comparable with the others'. Benchmark runs do not record the scales each probe used; for additive fusions
    they are inferred from the level of each probe's scores: a probe used all K scales when the median of its
    gallery scores is at least (K - 0.5) / K times the 90th percentile of those medians over all probes."""
    num_probes = scores.shape[0]
    config = result.get("config") or result.get("provenance", {}).get("config") or {}
    num_scales = len(config.get("scales", ()))
    if data_num_scales is not None:
        return np.asarray(data_num_scales) == num_scales
    if num_scales <= 1 or "add" not in str(config.get("fusion", "")).lower():
        return np.ones(num_probes, dtype=bool)
    with np.errstate(all="ignore"):
        medians = np.nanmedian(np.where(np.isfinite(scores), scores, np.nan), axis=1)
    finite = np.isfinite(medians)
    if not finite.any():
        return np.zeros(num_probes, dtype=bool)
    level = float(np.percentile(medians[finite], 90))
    if level <= 0:
        raise ConfigError("cannot tell which probes used every scale (scores are not positive); the run must "
                          "record probe_num_scales")
    return finite & (medians >= level * (num_scales - 0.5) / num_scales)


def split_by_identity(identity: np.ndarray, heldout_fraction: float,
                      seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Row indices ``(fit, heldout)``: each identity's probes go to one side only; ``heldout_fraction`` of the
    identities (rounded, at least one on each side) are held out, chosen with ``numpy.random.default_rng(seed)``."""
    if not 0.0 < heldout_fraction < 1.0:
        raise ConfigError(f"--heldout-fraction must lie strictly between 0 and 1, got {heldout_fraction}")
    people = np.unique(identity.astype(str))
    if people.size < 2:
        raise ConfigError(f"need probes of at least 2 identities to hold some out, got {people.size}")
    order = np.random.default_rng(seed).permutation(people.size)
    num_heldout = min(people.size - 1, max(1, round(heldout_fraction * people.size)))
    heldout_people = set(people[order[:num_heldout]].tolist())
    in_heldout = np.array([str(p) in heldout_people for p in identity], dtype=bool)
    return np.flatnonzero(~in_heldout), np.flatnonzero(in_heldout)


@dataclass(frozen=True)
class CalibrationOutcome:
    calibration: Calibration
    metadata: dict[str, Any]
    heldout_mated: np.ndarray
    heldout_nonmated: np.ndarray


def run_metadata(data: ProbeScores, band: int, heldout_fraction: float, seed: int, fit_rows: np.ndarray,
                 heldout_rows: np.ndarray) -> dict[str, Any]:
    """What a calibration fitted on ``data`` records about its data: protocol, band, benchmark settings, the
    engine conditions it is matched by (``engine``), the engine config, the source runs and the identity split."""
    result = data.result
    provenance = result.get("provenance", {})
    conditions = engine_conditions_from_provenance(provenance) if provenance else {}
    if data.scales_used is not None and conditions:
        # Looked up by searches that used exactly these scales (load_shipped_calibration's scales_used).
        conditions = {**conditions, "scales": list(data.scales_used)}
    return {
        "protocol": result.get("protocol"),
        "band_px": band,
        "settings": result.get("settings", {}),
        "engine": conditions,
        # Set when the calibration is for probes searched with fewer scales than configured.
        "scales_used": None if data.scales_used is None else list(data.scales_used),
        "engine_config_digest": result.get("config_digest") or provenance.get("config_sha256"),
        "engine_config": provenance.get("config", result.get("config")),
        "sources": list(data.sources),
        "split": {"by": "probe identity", "heldout_fraction": heldout_fraction, "seed": seed,
                  "fit_identities": sorted(set(data.identity[fit_rows].astype(str))),
                  "heldout_identities": sorted(set(data.identity[heldout_rows].astype(str)))},
    }


def conditions_text(metadata: dict[str, Any]) -> str:
    """The data and engine settings of a calibration, in words (the start of its ``conditions`` text)."""
    settings, conditions = metadata["settings"], metadata["engine"]
    return (
        f"{metadata.get('protocol') or 'benchmark'} probes, {metadata['band_px']} px face-width band "
        f"(camera {settings.get('camera', '?')}, face width from {settings.get('face_width_source', '?')}); "
        f"recognizer {conditions.get('recognizer', '?')} (weights SHA-256 "
        f"{str(conditions.get('recognizer_sha256', '?'))[:12]}...), upsampler {conditions.get('upsampler', '?')}, "
        f"scales {conditions.get('scales', '?')}, budget {conditions.get('budget', '?')}, fusion "
        f"{conditions.get('fusion', '?')}"
    )


def calibrate(data: ProbeScores, band: int, heldout_fraction: float, seed: int) -> CalibrationOutcome:
    """Fit on one identity-disjoint half, measure Cllr / Cllr_min on the other; the returned calibration's
    ``cllr``/``cllr_min`` are the HELD-OUT values (the fit-half values are in the metadata)."""
    fit_rows, heldout_rows = split_by_identity(data.identity, heldout_fraction, seed)
    fit_mated, fit_nonmated = data.split_scores(fit_rows)
    test_mated, test_nonmated = data.split_scores(heldout_rows)
    for name, arr in (("fit mated", fit_mated), ("held-out mated", test_mated),
                      ("fit non-mated", fit_nonmated), ("held-out non-mated", test_nonmated)):
        if arr.size < 2:
            raise ConfigError(f"only {arr.size} {name} scores; use more probes or another --heldout-fraction")
    metadata = run_metadata(data, band, heldout_fraction, seed, fit_rows, heldout_rows)
    fitted = fit_calibration(fit_mated, fit_nonmated, band=band)
    labels = np.concatenate([np.ones(test_mated.size), np.zeros(test_nonmated.size)]).astype(np.int64)
    test_scores = np.concatenate([test_mated, test_nonmated])
    raw = fitted.slope * test_scores + fitted.intercept
    heldout_cllr = cllr(fitted.log10_lr(test_scores), labels)
    heldout_cllr_min = cllr_min(raw, labels)
    text = (
        f"{conditions_text(metadata)}; fitted on {fit_mated.size} mated / {fit_nonmated.size} non-mated scores "
        f"of {len(metadata['split']['fit_identities'])} people; Cllr {heldout_cllr:.3f} and Cllr_min "
        f"{heldout_cllr_min:.3f} measured on {test_mated.size} mated / {test_nonmated.size} non-mated scores of "
        f"{len(metadata['split']['heldout_identities'])} other people."
    )
    calibration = dataclasses.replace(fitted, cllr=heldout_cllr, cllr_min=heldout_cllr_min, conditions=text)
    metadata.update({
        "fit": {"num_mated": int(fit_mated.size), "num_nonmated": int(fit_nonmated.size),
                "cllr": fitted.cllr, "cllr_min": fitted.cllr_min},
        "heldout": {"num_mated": int(test_mated.size), "num_nonmated": int(test_nonmated.size),
                    "cllr": heldout_cllr, "cllr_min": heldout_cllr_min},
        "num_scores": int(fit_mated.size + fit_nonmated.size + test_mated.size + test_nonmated.size),
    })
    return CalibrationOutcome(calibration, metadata, test_mated, test_nonmated)
