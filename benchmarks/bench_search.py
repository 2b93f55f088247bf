"""Time one probe search against LFW-XRes galleries of 10, 100 and 496 identities, cold and warm cache.

Usage (CPU here; ``--device cuda`` on a GPU machine):

    .venv/bin/python benchmarks/bench_search.py [--sizes 10,100,496] [--probes 3] [--budget standard]

For each gallery size: enroll the first N LFW-XRes people (timed), then search the first ``--probes`` probes
(24 px faces, nominal face width) three ways:

* cold: a new Engine on an EMPTY cache folder, so every gallery hypothesis template is computed;
* warm (disk): a new Engine on the same cache folder (gallery templates read from the on-disk cache);
* warm (memory): the same Engine searching the same probes again.

Templates per second counts the probe hypotheses plus the gallery hypotheses of every identity that one search
compares (read from the shapes of the result's similarity matrices), divided by the search time: in the cold
stage the gallery templates are computed, in the warm stages they are read from the cache, so only the cold
figure is a compute throughput. Memory: the process's peak RSS (``resource.getrusage``, a running
maximum) and the tracemalloc peak of Python/numpy allocations during the stage (torch buffers are not traced).
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
import tracemalloc
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from forensic_face.engine.config import EngineConfig
from forensic_face.engine.errors import NoFaceDetected
from forensic_face.engine.imaging import load_image
from forensic_face.eval.protocol import (
    ProbeSpec,
    XResSplit,
    lfw_xres_split,
    materialize_probes,
)
from forensic_face.eval.runner import build_gallery_folder, choose_face
from forensic_face.paths import lfw_dir


@dataclass
class Stage:
    name: str
    seconds_per_probe: float
    templates_per_s: float
    rss_peak_mb: float
    traced_peak_mb: float


def _rss_mb() -> float:
    # ru_maxrss is KiB on Linux, bytes on macOS.
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def _templates(result) -> int:  # type: ignore[no-untyped-def]
    """Probe hypotheses + gallery hypotheses of all identities, from the similarity matrices' shapes."""
    probe = sum(len(h) for h in result.probe_hypotheses.values())
    per_identity = 0
    if result.candidates:
        per_identity = sum(m.shape[1] for m in result.candidates[0].similarity.values())
    return probe + per_identity * len(result.ranking)


def _search_all(engine, probes, gallery) -> tuple[float, int]:  # type: ignore[no-untyped-def]
    seconds, templates = 0.0, 0
    for loaded, face in probes:
        t0 = time.perf_counter()
        result = engine.search(loaded, gallery, face=face)
        seconds += time.perf_counter() - t0
        templates += _templates(result)
    return seconds, templates


def _stage(name: str, fn, num_probes: int) -> tuple[Stage, int]:  # type: ignore[no-untyped-def]
    tracemalloc.start()
    seconds, templates = fn()
    _, traced_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return Stage(name, seconds / num_probes, templates / seconds if seconds else float("nan"), _rss_mb(),
                 traced_peak / 2**20), templates


def recognizer_only_rate(config: EngineConfig, num: int = 1024) -> float:
    """Templates/s of the recognizer alone on the search's device and batch size: canonical 160 px gallery
    crops with landmarks through ``Engine.embed`` (alignment + network, chunked), nothing else. The cold
    search's rate divided by this says how much of a cold search is spent outside the network."""
    from forensic_face.engine import Engine

    engine = Engine(config, cache_dir=None)
    rng = np.random.default_rng(0)
    images = torch.from_numpy(rng.random((num, 3, 160, 160), dtype=np.float32)).to(engine.device)
    unit = np.array([[0.34, 0.46], [0.66, 0.46], [0.5, 0.62], [0.37, 0.8], [0.63, 0.8]], np.float32) * 160
    lms = torch.from_numpy(np.broadcast_to(unit, (num, 5, 2)).copy()).to(engine.device)
    with torch.inference_mode():
        engine.embed(images[: config.batch_size], lms[: config.batch_size])  # warm-up
        t0 = time.perf_counter()
        engine.embed(images, lms)
        if engine.device.type == "cuda":
            torch.cuda.synchronize()
        return num / (time.perf_counter() - t0)


def detected_probes(engine, records) -> list:  # type: ignore[no-untyped-def]
    """``(LoadedImage, face)`` of each materialised probe whose face the engine detects, as the benchmark's
    runner chooses it (``choose_face``); probes without one are left out."""
    probes = []
    for record in records:
        loaded = load_image(record.path)
        face, _ = choose_face(engine.detect(loaded).faces, record.face)
        if face is not None:
            probes.append((loaded, face))
    return probes


def bench_size(size: int, num_probes: int, config: EngineConfig, lfw_root: Path, work: Path) -> list[Stage]:
    from forensic_face.engine import Engine

    full = lfw_xres_split(lfw_root, subset=size)
    split = XResSplit(full.gallery, full.probes[:num_probes], full.people_list)
    records = materialize_probes(split, ProbeSpec(width_px=24, face_width_source="nominal"), work / "probes",
                                 known_faces=None)
    gallery_dir = build_gallery_folder(split, work / f"gallery{size}")
    cache = work / f"engine-cache-{size}"

    engine = Engine(config, cache_dir=cache)
    t0 = time.perf_counter()
    gallery = engine.enroll(gallery_dir)
    enroll_s = time.perf_counter() - t0
    probes = detected_probes(engine, records)
    if not probes:
        raise NoFaceDetected(f"first {num_probes} probes of the {size}-identity subset")
    stages = [Stage("enroll (total s)", enroll_s, float("nan"), _rss_mb(), float("nan"))]
    cold, _ = _stage("cold", lambda: _search_all(engine, probes, gallery), len(probes))
    stages.append(cold)
    warm_mem, _ = _stage("warm (memory)", lambda: _search_all(engine, probes, gallery), len(probes))
    disk_engine = Engine(config, cache_dir=cache)
    warm_disk, _ = _stage("warm (disk)", lambda: _search_all(disk_engine, probes, gallery), len(probes))
    stages += [warm_disk, warm_mem]
    return stages


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10,100,496")
    parser.add_argument("--probes", type=int, default=3)
    parser.add_argument("--budget", default="standard")
    parser.add_argument("--upsampler", default="face-sr")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--lfw", type=Path, default=None)
    args = parser.parse_args(argv)
    torch.set_num_threads(max(1, args.threads))
    config = EngineConfig(device=args.device, budget=args.budget, upsampler=args.upsampler)
    lfw_root = args.lfw or lfw_dir()
    print(f"config: scales={config.scales} hypotheses={config.num_blur_hypotheses} upsampler={config.upsampler} "
          f"budget={config.budget} fusion={config.fusion} device={args.device} threads={torch.get_num_threads()} "
          f"cpus={os.cpu_count()}")
    rows: list[tuple[int, Stage]] = []
    with tempfile.TemporaryDirectory(prefix="bench_search_") as tmp:
        for size in (int(s) for s in args.sizes.split(",")):
            for stage in bench_size(size, args.probes, config, lfw_root, Path(tmp)):
                rows.append((size, stage))
                print(f"  {size:>4} identities  {stage.name:<16} done", file=sys.stderr, flush=True)
    rec_rate = recognizer_only_rate(config)
    print(f"{'gallery':>7}  {'stage':<16} {'s/probe':>9} {'templates/s':>12} {'vs recognizer':>14} "
          f"{'peak RSS MB':>12} {'traced MB':>10}")
    for size, s in rows:
        ratio = s.templates_per_s / rec_rate if s.name == "cold" else float("nan")
        print(f"{size:>7}  {s.name:<16} {s.seconds_per_probe:>9.3f} {s.templates_per_s:>12.1f} {ratio:>14.2f} "
              f"{s.rss_peak_mb:>12.0f} {s.traced_peak_mb:>10.1f}")
    print(f"recognizer alone (Engine.embed, batch {config.batch_size}, same device): {rec_rate:.1f} templates/s; "
          "'vs recognizer' is the cold search's rate over it (target >= 0.7)")
    return 0


if __name__ == "__main__":
    np.set_printoptions(precision=3)
    sys.exit(main())
