"""Recognizer arithmetic on this machine: float32 against bfloat16 (and ``auto``), side by side in one run.

For each recognizer: chips per second of ``embed`` in each precision (best of ``--repeats``, one batch size,
``--threads`` torch threads), the speed ratio to float32, and the smallest cosine between a template and its
float32 twin over ``--chips`` random chips. Speed is measured here, never asserted in tests.

    .venv/bin/python benchmarks/bench_precision.py --recognizers dlib-resnet-lr --threads 1
"""

from __future__ import annotations

import argparse
import time

import torch

from forensic_face.engine.errors import ConfigError
from forensic_face.engine.recognizers import create_recognizer
from forensic_face.engine.recognizers.base import cpu_has_native_bf16


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recognizers", default="dlib-resnet-lr", help="comma list of registered recognizers")
    parser.add_argument("--precisions", default="fp32,bf16")
    parser.add_argument("--chips", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device("cpu")
    print(f"CPU bfloat16 instructions: {cpu_has_native_bf16()}; threads {args.threads}; batch {args.batch_size}")
    print("| recognizer | precision | chips/s | x fp32 | min cosine to fp32 |")
    print("|---|---|---:|---:|---:|")
    for name in args.recognizers.split(","):
        reference: torch.Tensor | None = None
        base_rate = 0.0
        for precision in args.precisions.split(","):
            try:
                rec = create_recognizer(name, device, batch_size=args.batch_size, precision=precision)
            except ConfigError as exc:
                print(f"| {name} | {precision} | - | - | {exc} |")
                continue
            size = rec.input_size
            chips = torch.rand(args.chips, 3, size, size, generator=torch.Generator().manual_seed(0))
            best = float("inf")
            for _ in range(args.repeats):
                start = time.perf_counter()
                templates = rec.embed(chips)
                best = min(best, time.perf_counter() - start)
            rate = args.chips / best
            if reference is None:
                reference, base_rate = templates, rate
            cosine = float(torch.nn.functional.cosine_similarity(reference, templates).min())
            print(f"| {name} | {rec.precision} | {rate:.1f} | {rate / base_rate:.2f} | {cosine:.6f} |")


if __name__ == "__main__":
    main()
