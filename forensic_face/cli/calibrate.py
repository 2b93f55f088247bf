"""``forensic-face calibrate``: fit a score-to-LR calibration on benchmark scores (:mod:`forensic_face.calibration.fit`)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from forensic_face.calibration import CalibrationSet, tippett_plot
from forensic_face.calibration.fit import ProbeScores, calibrate, load_probe_scores
from forensic_face.engine import ConfigError


class CalibrateCommand:
    name = "calibrate"
    help = "fit a score-to-likelihood-ratio calibration on benchmark scores and test it on held-out people"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--scores", type=Path, action="append", required=True,
                            help="benchmark run folder (scores.npz + result.json) or its scores.npz; repeatable")
        parser.add_argument("--band", type=int, required=True, help="probe face-width band in pixels, e.g. 24")
        parser.add_argument("--out", type=Path, required=True, help="calibration JSON to write")
        parser.add_argument("--heldout-fraction", type=float, default=0.5,
                            help="fraction of probe identities held out for testing (default 0.5)")
        parser.add_argument("--seed", type=int, default=0, help="seed of the identity split (default 0)")
        parser.add_argument("--tippett", type=Path, help="write the held-out Tippett plot (PNG) here")
        parser.add_argument("--scales-used", default=None,
                            help="fit only the probes searched with these scales, e.g. 2,4 of 2,4,8: probes whose "
                                 "crop was too large for 8x get their own calibration (default: probes that used "
                                 "every configured scale)")
        parser.add_argument("--open-set", action="store_true",
                            help="fit the open-set cue instead (does the best candidate stand out, or may the person "
                                 "not be in the gallery?): H1 person in the gallery vs H2 left out; write it under "
                                 "resources/calibration/open_set/ to ship it")
        parser.add_argument("--statistic", default=None,
                            help="open-set statistic: top1, gap, z or gap-z (default top1; see docs/calibration.md)")
        parser.add_argument("--gallery-size", type=int, default=None,
                            help="open-set: fit on random galleries of this many identities (default: the whole "
                                 "benchmark gallery); ship it under resources/calibration/open_set/gallery_<N>/")
        parser.add_argument("--json", action="store_true", help="print the result as one JSON document")

    def run(self, args: argparse.Namespace) -> int:
        from forensic_face.engine import parse_scales

        scales_used = parse_scales(args.scales_used) if args.scales_used else None
        data = load_probe_scores(list(args.scores), args.band, scales_used)
        if args.open_set:
            return self._open_set(args, data)
        if args.statistic is not None or args.gallery_size is not None:
            raise ConfigError("--statistic and --gallery-size apply to --open-set calibrations only")
        outcome = calibrate(data, args.band, args.heldout_fraction, args.seed)
        cal = outcome.calibration
        self._save(args, cal, outcome.metadata, outcome.heldout_mated, outcome.heldout_nonmated,
                   f"Held-out Tippett plot, {cal.band_px} px, Cllr = {cal.cllr:.3f}")
        summary = {"out": str(args.out), "tippett": None if args.tippett is None else str(args.tippett),
                   "band_px": cal.band_px, "slope": cal.slope, "intercept": cal.intercept,
                   "log10_lr_bounds": [cal.lower_log10_lr, cal.upper_log10_lr], **outcome.metadata["heldout"],
                   "fit": outcome.metadata["fit"]}
        if args.json:
            json.dump(summary, sys.stdout, indent=2)
            sys.stdout.write("\n")
        else:
            held = outcome.metadata["heldout"]
            print(f"{args.out}: {cal.band_px} px band, log10 LR = {cal.slope:.4f} * score + {cal.intercept:.4f}, "
                  f"bounded to [{cal.lower_log10_lr:.2f}, {cal.upper_log10_lr:.2f}]")
            print(f"held-out ({held['num_mated']} mated / {held['num_nonmated']} non-mated): "
                  f"Cllr {held['cllr']:.4f}, Cllr_min {held['cllr_min']:.4f}")
        return 0

    @staticmethod
    def _save(args: argparse.Namespace, cal: Any, metadata: dict[str, Any], heldout_h1: Any, heldout_h2: Any,
              title: str) -> None:
        """Write the calibration to ``--out`` and, with ``--tippett``, its held-out Tippett plot."""
        args.out.parent.mkdir(parents=True, exist_ok=True)
        CalibrationSet((cal,), metadata).save(args.out)
        if args.tippett is not None:
            args.tippett.parent.mkdir(parents=True, exist_ok=True)
            tippett_plot(cal, heldout_h1, heldout_h2, args.tippett, title=title)

    def _open_set(self, args: argparse.Namespace, data: ProbeScores) -> int:
        from forensic_face.calibration.open_set import DEFAULT_STATISTIC, calibrate_open_set

        outcome = calibrate_open_set(data, args.band, args.heldout_fraction, args.seed,
                                     args.statistic or DEFAULT_STATISTIC, args.gallery_size)
        cal = outcome.calibration
        self._save(args, cal, outcome.metadata, outcome.heldout_present, outcome.heldout_absent,
                   f"Open-set cue, held-out people, {cal.band_px} px, Cllr = {cal.cllr:.3f}")
        meta = outcome.metadata
        summary = {"out": str(args.out), "tippett": None if args.tippett is None else str(args.tippett),
                   "statistic": meta["statistic"], "band_px": cal.band_px, "slope": cal.slope,
                   "intercept": cal.intercept, "log10_lr_bounds": [cal.lower_log10_lr, cal.upper_log10_lr],
                   "num_gallery_identities": meta["num_gallery_identities"], "heldout": meta["heldout"],
                   "heldout_by_gallery_size": meta["heldout_by_gallery_size"], "fit": meta["fit"]}
        if args.json:
            json.dump(summary, sys.stdout, indent=2)
            sys.stdout.write("\n")
            return 0
        print(f"{args.out}: open-set statistic {meta['statistic']}, {cal.band_px} px band, log10 LR = "
              f"{cal.slope:.4f} * statistic + {cal.intercept:.4f}, bounded to [{cal.lower_log10_lr:.2f}, "
              f"{cal.upper_log10_lr:.2f}]")
        for label, rates in [(f"held-out, {meta['num_gallery_identities']}-identity galleries", meta["heldout"]),
                             *((f"same map on {size}-identity galleries", r)
                               for size, r in meta["heldout_by_gallery_size"].items())]:
            print(f"{label} ({rates['num_present']} present / {rates['num_absent']} left out): Cllr "
                  f"{rates['cllr']:.4f}, Cllr_min {rates['cllr_min']:.4f}; absent people with LR > 1 "
                  f"{rates['absent_lr_above_1']:.1%}, LR >= 100 {rates['absent_lr_at_least_100']:.1%}, LR >= 1000 "
                  f"(strong) {rates['absent_lr_at_least_1000_strong']:.1%}; present people told 'may not be in "
                  f"the gallery' {rates['present_may_be_absent']:.1%}")
        return 0
