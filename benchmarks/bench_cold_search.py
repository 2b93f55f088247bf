"""Cold searches of several engine settings side by side in one run, as ratios to today's default.

A cold search is the first search of a probe size on a gallery: every gallery hypothesis template of that size
is computed (what an investigator waits for after opening a gallery). For each setting: a new Engine on an EMPTY
cache folder searches the same 24 px LFW-XRes probes of the first ``--people`` peopleDevTest identities; the
settings take turns probe by probe (round robin), so a load change on this shared machine touches all of them
alike. The table gives seconds per probe and the ratio to the first setting (today's default).

    .venv/bin/python benchmarks/bench_cold_search.py --people 20 --probes 2 \\
        --settings "default;recognizer=dlib-resnet-lr+faceres;precision=auto;recognizer=dlib-resnet-lr+faceres,precision=auto"

A setting is ``default`` or comma-separated ``field=value`` changes of the default EngineConfig (a per-member
flip test as ``ensemble_flip_test=on/off``).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from forensic_face.engine.config import EngineConfig
from forensic_face.eval.protocol import ProbeSpec, XResSplit, lfw_xres_split, materialize_probes
from forensic_face.eval.runner import build_gallery_folder
from forensic_face.paths import lfw_dir

from bench_search import detected_probes  # the sibling benchmark: scripts run from benchmarks/ are on sys.path


def parse_setting(text: str, base: EngineConfig) -> EngineConfig:
    """``default`` or ``field=value,field=value`` -> the default config with those changes."""
    if text.strip() == "default":
        return base
    changes: dict[str, Any] = {}
    for part in text.split(","):
        field, _, value = part.partition("=")
        value = value.strip()
        # A list setting is written with '/': ensemble_flip_test=on/off.
        changes[field.strip()] = ([v == "on" for v in value.split("/")] if "/" in value and "flip" in field
                                  else int(value) if value.isdigit() else value)
    return EngineConfig.from_dict({**base.to_dict(), **changes})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--people", type=int, default=20, help="gallery identities (first N peopleDevTest people)")
    parser.add_argument("--probes", type=int, default=2)
    parser.add_argument("--settings", default="default;precision=auto", help="';'-separated settings")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--lfw", type=Path, default=None)
    args = parser.parse_args(argv)
    torch.set_num_threads(max(1, args.threads))
    base = EngineConfig(device=args.device)
    settings = [(text, parse_setting(text, base)) for text in args.settings.split(";")]
    from forensic_face.engine import Engine

    with tempfile.TemporaryDirectory(prefix="bench_cold_") as tmp:
        work = Path(tmp)
        full = lfw_xres_split(args.lfw or lfw_dir(), subset=args.people)
        split = XResSplit(full.gallery, full.probes[:args.probes], full.people_list)
        records = materialize_probes(split, ProbeSpec(width_px=24, face_width_source="nominal"), work / "probes",
                                     known_faces=None)
        gallery_dir = build_gallery_folder(split, work / "gallery")
        first = Engine(settings[0][1], cache_dir=work / "enroll-cache")
        gallery = first.enroll(gallery_dir)
        probes = detected_probes(first, records)
        seconds = [0.0] * len(settings)
        precisions = [""] * len(settings)
        for p, (loaded, face) in enumerate(probes):
            for k, (text, config) in enumerate(settings):
                # A new engine on an empty cache: nothing in memory or on disk. Its models load before timing,
                # since a cold search here means the gallery's templates, not reading model files.
                engine = Engine(config, cache_dir=work / f"cache-{k}-{p}")
                engine.provenance()
                precisions[k] = engine.recognizer.precision
                start = time.perf_counter()
                engine.search(loaded, gallery, face=face)
                seconds[k] += time.perf_counter() - start
                print(f"  {text}: {loaded.path.name} {time.perf_counter() - start:.1f} s", file=sys.stderr,
                      flush=True)
    print(f"{len(probes)} probes of 24 px, {len(gallery.entries)} portraits, device {args.device}, "
          f"threads {torch.get_num_threads()}, cpus {os.cpu_count()}")
    print("| setting | recognizer | precision | s per cold search | x default |")
    print("|---|---|---|---:|---:|")
    for (text, config), precision, total in zip(settings, precisions, seconds):
        per = total / len(probes)
        print(f"| {text} | {config.recognizer} | {precision} | {per:.1f} | {per / (seconds[0] / len(probes)):.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
