"""Time the engine's multi-hypothesis super-resolution of one probe face with the shipped ``face-sr`` networks.

Usage (CPU here; ``--device cuda`` on a GPU machine):

    .venv/bin/python benchmarks/bench_sr.py [--face-px 30] [--repeats 5] [--threads 1 2]

One probe crop of ``--face-px`` square is blurred with the 16 sigmas 0..1 and each copy is magnified 2x, 4x and
8x (48 hypotheses), exactly as ``forensic_face.engine.probe.probe_hypotheses`` does in a search. Reported: the
median and minimum wall time over ``--repeats`` runs after one warm-up, per thread count, and the parameter
count and file size of each network. The bicubic upsampler is timed the same way for reference.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import torch

from forensic_face.engine.config import resolve_device
from forensic_face.engine.probe import probe_hypotheses
from forensic_face.engine.upsamplers import create_upsampler
from forensic_face.engine.upsamplers.face_sr import (
    FACE_SR_SCALES,
    count_parameters,
    load_shipped_face_sr,
    weights_name,
)
from forensic_face.engine.weights import shipped_weights


def _time(fn: object, repeats: int, device: torch.device) -> list[float]:
    times = []
    for i in range(repeats + 1):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()  # type: ignore[operator]
        if device.type == "cuda":
            torch.cuda.synchronize()
        if i:  # the first run is a warm-up
            times.append(time.perf_counter() - t0)
    return times


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--face-px", type=int, default=30)
    parser.add_argument("--hypotheses", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args(argv)

    device = resolve_device(args.device)
    out = sys.stdout
    for scale in FACE_SR_SCALES:
        net, sha = load_shipped_face_sr(scale)
        size_mb = shipped_weights(weights_name(scale)).path.stat().st_size / 1e6
        out.write(f"face-sr x{scale}: {count_parameters(net):,} parameters, {size_mb:.2f} MB, sha256 {sha[:12]}\n")

    torch.manual_seed(0)
    crop = torch.rand(1, 3, args.face_px, args.face_px, device=device)
    total = args.hypotheses * len(FACE_SR_SCALES)
    for name in ("face-sr", "bicubic"):
        upsampler = create_upsampler(name, device, batch_size=args.batch_size)
        for threads in args.threads:
            torch.set_num_threads(threads)

            def run() -> None:
                probe_hypotheses(crop, FACE_SR_SCALES, upsampler, num_hypotheses=args.hypotheses)

            times = _time(run, args.repeats, device)
            out.write(
                f"{name:8s} {total} hypotheses of a {args.face_px} px face on {device} ({threads} thread(s)): "
                f"median {statistics.median(times):.3f} s, min {min(times):.3f} s over {args.repeats} runs\n"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
