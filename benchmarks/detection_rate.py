"""MTCNN detection rate on LFW-XRes probes at face widths 16, 24 and 32 px.

Takes the first N probe images of the LFW-XRes split (peopleDevTest people with >= 2 images), degrades each
whole image with the protocol's surveillance pipeline so the face is W px wide, runs the engine's detector and
counts a hit when the best face overlaps the known (nominal, centred) face box with IoU > 0.3.

    .venv/bin/python benchmarks/detection_rate.py --images 200 --widths 16,24,32
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from forensic_face.engine.detect import MtcnnDetector
from forensic_face.engine.imaging import load_image
from forensic_face.eval.protocol import (
    ProbeSpec,
    camera_params,
    degrade_probe,
    lfw_xres_split,
    nominal_face,
    probe_seed,
)
from forensic_face.paths import lfw_dir


def iou(a: np.ndarray, b: np.ndarray) -> float:
    x1, y1 = max(a[0], b[0]), max(a[1], b[1])
    x2, y2 = min(a[2], b[2]), min(a[3], b[3])
    inter = max(0.0, x2 - x1) * max(0.0, y2 - y1)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--widths", default="16,24,32")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    split = lfw_xres_split(lfw_dir())
    probes = split.probes[: args.images]
    originals = [load_image(p.path).pixels for p in probes]
    detector = MtcnnDetector()
    rows = []
    for width in (int(w) for w in args.widths.split(",")):
        spec = ProbeSpec(width_px=width, seed=args.seed)
        degraded = []
        for p, pixels in zip(probes, originals):
            name = p.path.name
            degraded.append(degrade_probe(pixels, nominal_face(*pixels.shape[:2]), width,
                                          camera_params(spec, name), probe_seed(args.seed, name)))
        start = time.perf_counter()
        found = detector.detect([d.pixels for d in degraded])
        seconds = time.perf_counter() - start
        detected = sum(bool(f) for f in found)
        hits = int(sum(bool(f) and iou(f[0].box, d.face.box) > 0.3 for f, d in zip(found, degraded)))
        widths = [f[0].width_px for f in found if f]
        rows.append({"width_px": width, "images": len(probes), "any_face": detected, "correct_face": hits,
                     "rate": hits / len(probes), "median_detected_width_px": float(np.median(widths)) if widths else None,
                     "seconds": round(seconds, 1)})
        print(json.dumps(rows[-1]))
    print("| face width | images | a face found | the right face found | rate |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['width_px']} px | {r['images']} | {r['any_face']} | {r['correct_face']} | {100 * r['rate']:.1f}% |")


if __name__ == "__main__":
    main()
