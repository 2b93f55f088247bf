"""The first searches on a new gallery, as the window runs them, with the shipped default settings; and where a
cold search spends its time (``--profile``).

Usage (CPU here; ``--device cuda`` on a GPU machine):

    .venv/bin/python benchmarks/bench_first_search.py [--gallery 30] [--threads 1] [--profile]

Steps, each on the engine the window's worker holds (``Engine`` with ``EngineConfig()`` defaults, an EMPTY
template cache): enroll the first ``--gallery`` LFW-XRes people; the provisional ranking of a 24 px probe
(``Engine.provisional_search``, what the window shows first); its full search (every gallery hypothesis
template of its size computed); a second 24 px probe (gallery templates now cached); a 19 px probe (another
size bin: its gallery templates are computed); and ``Engine.warm_gallery`` for the size bins the window
prepares. With ``--profile`` the cold full search runs under cProfile and the table lists the cumulative
time of each stage function of the method (they nest: a stage's time includes the stages it calls).
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import sys
import tempfile
import time
from pathlib import Path

import torch

from forensic_face.engine.config import EngineConfig
from forensic_face.engine.imaging import load_image
from forensic_face.eval.protocol import ProbeSpec, XResSplit, lfw_xres_split, materialize_probes
from forensic_face.eval.runner import build_gallery_folder, choose_face
from forensic_face.paths import lfw_dir

#: (module path fragment, function) of the method's stages, in the order a search calls them.
STAGE_FUNCTIONS = (
    ("engine/search.py", "search_views", "whole search"),
    ("engine/search.py", "crop_probe_templates", "probe side: hypotheses and their templates"),
    ("engine/probe.py", "probe_hypotheses", "  pre-blur and super-resolution"),
    ("engine/search.py", "gallery_templates", "gallery side: hypothesis templates"),
    ("engine/templates.py", "canonical_crops", "  canonical gallery crops (decode, resize)"),
    ("engine/degradations.py", "iter_degraded", "  degradation chains"),
    ("engine/matching.py", "match_resolution", "  resolution matching (resize to the probe's size)"),
    ("engine/search.py", "embed", "  recognizer: alignment + network (both sides)"),
    ("engine/recognizers/base.py", "prepare", "    alignment to the recognizer's chip"),
    ("engine/cache.py", "store", "  template cache writes"),
    ("engine/fusion.py", "fuse_scores", "similarity and fusion"),
    ("engine/ranking.py", "build_candidates", "ranking and candidates"),
)


def _timed(fn):  # type: ignore[no-untyped-def]
    t0 = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - t0


def _profile_table(stats: pstats.Stats, total: float) -> list[str]:
    rows = []
    by_key = stats.stats  # type: ignore[attr-defined]
    for fragment, name, meaning in STAGE_FUNCTIONS:
        cumulative = sum(v[3] for (path, _, func), v in by_key.items()
                         if func == name and path.replace(os.sep, "/").endswith(fragment))
        calls = sum(v[1] for (path, _, func), v in by_key.items()
                    if func == name and path.replace(os.sep, "/").endswith(fragment))
        rows.append(f"| {meaning} | `{fragment.split('/')[-1]}:{name}` | {calls} | {cumulative:.2f} | "
                    f"{100 * cumulative / total:.0f} % |")
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gallery", type=int, default=30, help="LFW-XRes people in the gallery (default 30)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--budget", default=None, help="gallery budget (default: the shipped default)")
    parser.add_argument("--profile", action="store_true", help="profile the cold full search (cProfile)")
    parser.add_argument("--lfw", type=Path, default=None)
    args = parser.parse_args(argv)
    torch.set_num_threads(max(1, args.threads))

    from forensic_face.engine import Engine
    from forensic_face.gui.jobs import WARM_SIZE_BINS

    config = EngineConfig(device=args.device)
    if args.budget:
        config = config.replace(budget=args.budget)
    full = lfw_xres_split(args.lfw or lfw_dir(), subset=args.gallery)
    split = XResSplit(full.gallery, full.probes[:3], full.people_list)
    lines = [f"config: recognizer={config.recognizer} upsampler={config.upsampler} scales={config.scales} "
             f"hypotheses={config.num_blur_hypotheses} budget={config.budget} fusion={config.fusion} "
             f"device={args.device} threads={torch.get_num_threads()} cpus={os.cpu_count()} "
             f"gallery={len(split.gallery)} portraits"]
    with tempfile.TemporaryDirectory(prefix="bench_first_") as tmp:
        work = Path(tmp)
        probes = {}
        for width in (24, 19):
            records = materialize_probes(split, ProbeSpec(width_px=width, face_width_source="nominal"),
                                         work / f"probes{width}", known_faces=None)
            probes[width] = records
        engine, load_s = _timed(lambda: Engine(config, cache_dir=work / "cache"))
        gallery, enroll_s = _timed(lambda: engine.enroll(build_gallery_folder(split, work / "gallery")))

        def probe(width: int, k: int):  # type: ignore[no-untyped-def]
            loaded = load_image(probes[width][k].path)
            face, _ = choose_face(engine.detect(loaded).faces, probes[width][k].face)
            return loaded, face

        first, first_face = probe(24, 0)
        _, provisional_s = _timed(lambda: engine.provisional_search(first, gallery, first_face))
        profiler = cProfile.Profile() if args.profile else None
        if profiler is not None:
            profiler.enable()
        _, cold_s = _timed(lambda: engine.search(first, gallery, face=first_face))
        if profiler is not None:
            profiler.disable()
        second, second_face = probe(24, 1)
        _, warm_s = _timed(lambda: engine.search(second, gallery, face=second_face))
        other, other_face = probe(19, 2)
        _, other_s = _timed(lambda: engine.search(other, gallery, face=other_face))
        fresh = Engine(config, cache_dir=work / "cache-warm")
        _, warm_gallery_s = _timed(lambda: fresh.warm_gallery(gallery.entries, WARM_SIZE_BINS))

    lines += [
        "| step | seconds |", "|---|---:|",
        f"| engine created (models load lazily) | {load_s:.1f} |",
        f"| enroll {len(gallery.entries)} portraits (detection, crops; loads MTCNN) | {enroll_s:.1f} |",
        f"| provisional ranking of the first 24 px probe (loads recognizer and face-sr) | {provisional_s:.1f} |",
        f"| full search of that probe, cold (its size bin's gallery templates computed) | {cold_s:.1f} |",
        f"| full search of a second 24 px probe (gallery templates cached) | {warm_s:.1f} |",
        f"| full search of a 19 px probe (another size bin, computed) | {other_s:.1f} |",
        f"| Prepare gallery: warm_gallery for size bins {list(WARM_SIZE_BINS)} | {warm_gallery_s:.1f} |",
    ]
    if profiler is not None:
        stats = pstats.Stats(profiler)
        lines += ["", f"cold full search under cProfile ({cold_s:.1f} s with the profiler's overhead):", "",
                  "| stage | function | calls | cumulative s | share |", "|---|---|---:|---:|---:|"]
        lines += _profile_table(stats, cold_s)
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
