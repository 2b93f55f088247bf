"""Face detection on large stills: time per image and faces found, tiled (the engine's path for images over
``LARGE_IMAGE_SIDE_PX``) against upsampling the whole image (the path small images take).

Usage:

    .venv/bin/python benchmarks/bench_large_stills.py [--frames 6] [--threads 1]

Images (all seeded):

* **1080p CCTV frames**: 1920x1080, a smooth random background, four LFW peopleDevTest probe images pasted in,
  each degraded by the LFW-XRes benchmark camera so that its face is 16, 20, 24 or 30 px wide;
* **1350 px portraits**: LFW images enlarged to 1350x1350 (one face of about 600 px);
* **a 6000x4000 photo**: eight LFW images pasted at face widths of 40 to 160 px.

A face counts as found when a detection overlaps its known box with IoU > 0.3; "other" counts the detections
that match no pasted face.

``--search-gallery N`` then searches one 1080p frame end to end with the shipped default settings: a 20 px face
of one of the first N LFW-XRes people pasted into it, the frame saved as PNG and loaded as evidence, detected
(tiled path), and searched against those N people's portraits; it prints the times and the true person's rank.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image

from forensic_face.engine import detect as detect_module
from forensic_face.engine.detect import MtcnnDetector, _iou
from forensic_face.eval.protocol import degrade_probe, lfw_xres_split, nominal_face
from forensic_face.paths import lfw_dir
from forensic_face.surveillance import DEFAULT_SURVEILLANCE


def _background(height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    coarse = rng.integers(30, 220, (max(2, height // 40), max(2, width // 40), 3), dtype=np.uint8)
    image = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC)
    return cv2.add(image, rng.integers(0, 12, image.shape, dtype=np.uint8))


def _paste(canvas: np.ndarray, patch: np.ndarray, rng: np.random.Generator, taken: list[np.ndarray]
           ) -> tuple[int, int]:
    h, w = patch.shape[:2]
    for _ in range(200):
        y, x = int(rng.integers(0, canvas.shape[0] - h)), int(rng.integers(0, canvas.shape[1] - w))
        box = np.array([x, y, x + w, y + h], np.float32)
        if all(_iou(box, t) == 0 for t in taken):
            taken.append(box)
            canvas[y:y + h, x:x + w] = patch
            return x, y
    raise RuntimeError("no room to paste")


def cctv_frames(paths: list[Path], count: int, rng: np.random.Generator) -> list[tuple[np.ndarray, list[np.ndarray]]]:
    known = nominal_face()
    frames = []
    for k in range(count):
        frame, taken, faces = _background(1080, 1920, rng), [], []
        for n, width in enumerate((16, 20, 24, 30)):
            with Image.open(paths[(4 * k + n) % len(paths)]) as im:
                original = np.asarray(im.convert("RGB"))
            probe = degrade_probe(original, known, width, DEFAULT_SURVEILLANCE, int(rng.integers(2**31)))
            x, y = _paste(frame, probe.pixels, rng, taken)
            faces.append(np.asarray(probe.face.box, np.float32) + np.array([x, y, x, y], np.float32))
        frames.append((frame, faces))
    return frames


def portraits(paths: list[Path], count: int) -> list[tuple[np.ndarray, list[np.ndarray]]]:
    known = nominal_face()
    out = []
    for path in paths[:count]:
        with Image.open(path) as im:
            image = np.asarray(im.convert("RGB").resize((1350, 1350), Image.BICUBIC))
        out.append((image, [np.asarray(known.box, np.float32) * 1350 / 250]))
    return out


def big_photo(paths: list[Path], rng: np.random.Generator) -> list[tuple[np.ndarray, list[np.ndarray]]]:
    known = nominal_face()
    photo, taken, faces = _background(4000, 6000, rng), [], []
    for n, width in enumerate((40, 50, 60, 80, 100, 120, 140, 160)):
        factor = width / known.width_px
        with Image.open(paths[n]) as im:
            side = round(250 * factor)
            patch = np.asarray(im.convert("RGB").resize((side, side), Image.BICUBIC))
        x, y = _paste(photo, patch, rng, taken)
        faces.append(np.asarray(known.box, np.float32) * factor + np.array([x, y, x, y], np.float32))
    return [(photo, faces)]


def run(detector: MtcnnDetector, images: list[tuple[np.ndarray, list[np.ndarray]]]) -> tuple[float, int, int, int]:
    seconds, found, total, other = 0.0, 0, 0, 0
    for image, faces in images:
        t0 = time.perf_counter()
        detections = detector.detect([image])[0]
        seconds += time.perf_counter() - t0
        matched = [any(_iou(d.box, f) > 0.3 for d in detections) for f in faces]
        found += sum(matched)
        total += len(faces)
        other += sum(not any(_iou(d.box, f) > 0.3 for f in faces) for d in detections)
    return seconds / len(images), found, total, other


def search_frame(split, people: int, rng: np.random.Generator, work: Path) -> str:  # type: ignore[no-untyped-def]
    """One 1080p frame with a 20 px face searched end to end (see the module docstring)."""
    from forensic_face.engine import Engine
    from forensic_face.engine.config import EngineConfig
    from forensic_face.engine.imaging import load_image
    from forensic_face.eval.protocol import XResSplit
    from forensic_face.eval.runner import build_gallery_folder

    gallery_images = split.gallery[:people]
    names = {g.identity for g in gallery_images}
    probe_image = next(p for p in split.probes if p.identity in names)
    sub = XResSplit(gallery_images, (probe_image,), split.people_list)
    frame, taken = _background(1080, 1920, rng), []
    with Image.open(probe_image.path) as im:
        original = np.asarray(im.convert("RGB"))
    probe = degrade_probe(original, nominal_face(), 20.0, DEFAULT_SURVEILLANCE, 7)
    x, y = _paste(frame, probe.pixels, rng, taken)
    truth = np.asarray(probe.face.box, np.float32) + np.array([x, y, x, y], np.float32)
    path = work / "frame_1080p.png"
    Image.fromarray(frame).save(path)
    engine = Engine(EngineConfig(), cache_dir=work / "cache")
    gallery = engine.enroll(build_gallery_folder(sub, work / "gallery"))
    loaded = load_image(path)
    t0 = time.perf_counter()
    faces = engine.detect(loaded).faces
    detect_s = time.perf_counter() - t0
    face = max(faces, key=lambda f: _iou(f.box, truth), default=None)
    if face is None or _iou(face.box, truth) <= 0.3:
        return f"search of a 1080p frame: the 20 px face was NOT found among {len(faces)} detections"
    t0 = time.perf_counter()
    result = engine.search(loaded, gallery, face=face)
    search_s = time.perf_counter() - t0
    rank = next(r for r, (name, _) in enumerate(result.ranking, start=1) if name == probe_image.identity)
    return (f"search of a 1080p frame ({probe_image.name}, face {face.width_px:.1f} px found among {len(faces)} "
            f"detections): detection {detect_s:.2f} s, cold full search against {len(gallery.entries)} portraits "
            f"{search_s:.1f} s (default settings), the true person at rank {rank}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=6)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--lfw", type=Path, default=None)
    parser.add_argument("--search-gallery", type=int, default=0, metavar="N",
                        help="also search one 1080p frame against the first N LFW-XRes people (0: skip)")
    args = parser.parse_args(argv)
    torch.set_num_threads(max(1, args.threads))
    rng = np.random.default_rng(0)
    split = lfw_xres_split(args.lfw or lfw_dir())
    paths = [p.path for p in split.probes]
    sets = {"1080p CCTV frame (faces 16-30 px)": cctv_frames(paths, args.frames, rng),
            "1350 px portrait": portraits([g.path for g in split.gallery], 3),
            "6000x4000 photo (faces 40-160 px)": big_photo(paths, rng)}
    detector = MtcnnDetector(torch.device(args.device))
    detector.detect([np.zeros((64, 64, 3), np.uint8)])  # warm-up
    print(f"device={args.device} threads={torch.get_num_threads()} cpus={os.cpu_count()} "
          f"large-image threshold {detect_module.LARGE_IMAGE_SIDE_PX} px")
    print("| image | path | s per image | faces found | other detections |")
    print("|---|---|---:|---:|---:|")
    threshold = detect_module.LARGE_IMAGE_SIDE_PX
    for name, images in sets.items():
        for label, side in (("tiled (engine)", threshold), ("whole image upsampled", 10**9)):
            detect_module.LARGE_IMAGE_SIDE_PX = side
            try:
                seconds, found, total, other = run(detector, images)
            finally:
                detect_module.LARGE_IMAGE_SIDE_PX = threshold
            print(f"| {name} | {label} | {seconds:.2f} | {found}/{total} | {other} |", flush=True)
    if args.search_gallery:
        import tempfile

        with tempfile.TemporaryDirectory(prefix="bench_stills_") as tmp:
            print(search_frame(split, args.search_gallery, rng, Path(tmp)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
