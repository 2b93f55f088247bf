"""Enrolment cost of each gallery degradation budget: the gallery templates a first search must compute.

Usage (CPU here; ``--device cuda`` on a GPU machine):

    .venv/bin/python benchmarks/bench_budgets.py [--people 20] [--crop-px 31] [--threads 2]

Enrols the first ``--people`` LFW-XRes gallery portraits once, then for each budget warms, on an EMPTY template
cache, every gallery hypothesis template that searches of a ``--crop-px`` probe crop (31 px: a 24 px face with the
1.3 box enlargement) look up (``Engine.warm_gallery``: each scale's resolution target). Reports seconds per
portrait, templates per second and the ratio to the ``fast`` budget. ``fast-singles`` is the ``fast`` budget
before 2026-12-06 (the 11 single degradations), kept here to show that the change to 11 pairs did not make
``fast`` slower.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

from forensic_face.engine import Engine
from forensic_face.engine.config import EngineConfig
from forensic_face.engine.degradations import Path as DegradationPath, all_paths, select_paths
from forensic_face.engine.matching import probe_plan
from forensic_face.eval.protocol import lfw_xres_split
from forensic_face.eval.runner import build_gallery_folder
from forensic_face.paths import lfw_dir


def budget_variants(seed: int) -> dict[str, list[DegradationPath]]:
    """The path sets compared: every budget with degradations, and the former ``fast``."""
    return {
        "fast-singles": all_paths(max_len=1),
        "fast": select_paths("fast", seed),
        "standard": select_paths("standard", seed),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--people", type=int, default=20)
    parser.add_argument("--crop-px", type=int, default=31, help="probe crop side (31: a 24 px face)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--lfw", type=Path, default=None)
    args = parser.parse_args(argv)
    torch.set_num_threads(max(1, args.threads))
    config = EngineConfig(device=args.device)
    size_bin, scales = probe_plan(args.crop_px, config.size_bin_px, config.scales)
    split = lfw_xres_split(args.lfw or lfw_dir(), subset=args.people)
    print(f"config: recognizer={config.recognizer} flip_test={config.flip_test} scales={scales} "
          f"size bin {size_bin} px, {args.people} portraits, device={args.device} threads={torch.get_num_threads()} "
          f"cpus={os.cpu_count()}")
    with tempfile.TemporaryDirectory(prefix="bench_budgets_") as tmp:
        root = Path(tmp)
        folder = build_gallery_folder(split, root / "gallery")
        entries = Engine(config, cache_dir=root / "enrol").enroll(folder).entries
        rows = []
        for name, paths in budget_variants(config.seed).items():
            engine = Engine(config, cache_dir=root / f"cache-{name}", degradation_paths=paths)
            engine.recognizer  # load the model outside the timing
            start = time.perf_counter()
            stacks = engine.warm_gallery(entries, [size_bin])
            seconds = time.perf_counter() - start
            num_templates = stacks * (1 + len(paths))
            rows.append((name, len(paths), seconds, num_templates))
            print(f"  {name:<13} done in {seconds:.1f} s", file=sys.stderr, flush=True)
    fast_seconds = next(s for n, _, s, _ in rows if n == "fast")
    print(f"{'budget':<13} {'paths':>5} {'s/portrait':>11} {'templates/s':>12} {'vs fast':>8}")
    for name, num_paths, seconds, num_templates in rows:
        print(f"{name:<13} {num_paths:>5} {seconds / len(entries):>11.2f} {num_templates / seconds:>12.1f} "
              f"{seconds / fast_seconds:>8.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
