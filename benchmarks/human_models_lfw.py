"""faceres and mobileface against dlib-resnet-lr on LFW peopleDevTest: rank-1 alone and fused, warp interpolation,
input conventions, and embedding speed.

Protocol: the first ``--people`` people of peopleDevTest.txt with at least two images (150: 837 images); the first
image of each person is the gallery portrait (full resolution), the others are probes, at full resolution and
through the surveillance camera model (``forensic_face.surveillance.degrade_to_scale``, DEFAULT_SURVEILLANCE,
whole 250x250 image scaled so the MTCNN box is ``--width`` px wide, noise seeded per image as in LFW-XRes). One
chip per face: landmarks from MTCNN on the original image (scaled to the degraded image for low-resolution
probes), one similarity warp straight to the recognizer's chip, no super-resolution. Templates: cosine,
nearest gallery template. Fusion: per probe, each recognizer's scores against the gallery are z-normalised
(minus their mean, over their standard deviation) and summed.

Runs behind docs/recognizer.md (2 torch threads, 2 CPU cores shared with other jobs):
    # everything: both interpolations, conventions, speed (about 30 min)
    .venv/bin/python benchmarks/human_models_lfw.py --people 150 --width 24 --threads 2
    # the shipped settings only (bilinear), about 15 min
    .venv/bin/python benchmarks/human_models_lfw.py --modes bilinear --skip-conventions --skip-speed
    # faceres chip padding on people no reported number uses (peopleDevTrain), about 12 min
    .venv/bin/python benchmarks/human_models_lfw.py --people-list peopleDevTrain.txt --faceres-paddings 0,0.1,0.2
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from forensic_face.engine.align import warp_to_template  # noqa: E402
from forensic_face.engine.recognizers import create_recognizer  # noqa: E402
from forensic_face.engine.recognizers.base import AlignedRecognizer  # noqa: E402
from forensic_face.engine.recognizers.faceres_arch import FaceResNet  # noqa: E402
from forensic_face.engine.recognizers.human_models import load_network  # noqa: E402
from forensic_face.engine.recognizers.mobileface_arch import MobileFaceNet  # noqa: E402
from forensic_face.eval.protocol import probe_seed, read_people_list  # noqa: E402
from forensic_face.paths import lfw_dir  # noqa: E402
from forensic_face.surveillance import DEFAULT_SURVEILLANCE, degrade_to_scale  # noqa: E402

log = logging.getLogger("human_models_lfw")
RECOGNIZERS = ("dlib-resnet-lr", "faceres", "mobileface")
MODES = ("bilinear", "bicubic")


def split(root: Path, num_people: int, people_list: str = "peopleDevTest.txt"
          ) -> tuple[list[Path], np.ndarray, np.ndarray]:
    """Image paths, identity labels and the gallery mask (first image of each person)."""
    people = [(name, count) for name, count in read_people_list(root / people_list) if count >= 2]
    paths, labels, gallery = [], [], []
    for identity, (name, count) in enumerate(people[:num_people]):
        for number in range(1, count + 1):
            paths.append(root / "images_deepfunneled" / name / f"{name}_{number:04d}.jpg")
            labels.append(identity)
            gallery.append(number == 1)
    return paths, np.asarray(labels), np.asarray(gallery)


def central_faces(images: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """MTCNN box widths and landmarks (N,5,2) of the face nearest the centre, and where one was found."""
    from facenet_pytorch import MTCNN

    mtcnn = MTCNN(device="cpu", keep_all=True)
    widths = np.zeros(len(images))
    landmarks = np.zeros((len(images), 5, 2), dtype=np.float32)
    found = np.zeros(len(images), dtype=bool)
    for start in range(0, len(images), 32):
        batch = np.stack(images[start:start + 32])
        boxes, _, points = mtcnn.detect(batch, landmarks=True)
        for i, (b, p) in enumerate(zip(boxes, points)):
            if b is None:
                continue
            centres = (b[:, :2] + b[:, 2:]) / 2 - np.array(batch.shape[2:0:-1]) / 2
            best = int(np.hypot(*centres.T).argmin())
            widths[start + i], landmarks[start + i], found[start + i] = b[best, 2] - b[best, 0], p[best], True
    return widths, landmarks, found


def low_resolution(images: list[np.ndarray], paths: list[Path], widths: np.ndarray, landmarks: np.ndarray,
                   width_px: int) -> tuple[list[np.ndarray], np.ndarray]:
    """Each image through the camera model at the scale that makes its face ``width_px`` wide, and the landmarks
    mapped onto it (pixel centres at integers: ``x' = (x + 0.5) * s - 0.5``)."""
    out, moved = [], landmarks.copy()
    for i, (image, path) in enumerate(zip(images, paths)):
        small = degrade_to_scale(image, width_px / widths[i], DEFAULT_SURVEILLANCE, seed=probe_seed(0, path.name))
        scale = np.array([small.shape[1] / image.shape[1], small.shape[0] / image.shape[0]])
        moved[i] = (landmarks[i] + 0.5) * scale - 0.5
        out.append(small)
    return out, moved


def make_chips(rec: AlignedRecognizer, images: list[np.ndarray], landmarks: np.ndarray, mode: str,
               padding: float | None = None) -> torch.Tensor:
    # ``padding`` None: the recognizer's own chip padding (what its ``prepare`` uses).
    """One chip per face, warped with ``mode``; one warp per image, as the low-resolution images differ in size."""
    chips = []
    for image, points in zip(images, landmarks):
        tensor = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None].float() / 255.0
        chip = warp_to_template(tensor, torch.from_numpy(points)[None], rec.template_unit, rec.input_size,
                                rec.template_padding if padding is None else padding, mode=mode)
        chips.append(chip.clamp_(0.0, 1.0))
    return torch.cat(chips)


def raw_outputs(run: Callable[[torch.Tensor], torch.Tensor], chips: torch.Tensor) -> np.ndarray:
    with torch.inference_mode():
        return torch.cat([run(chips[s:s + 64].contiguous(memory_format=torch.channels_last))
                          for s in range(0, len(chips), 64)]).numpy()


def with_probe_rows(num_rows: int, probes: np.ndarray, values: np.ndarray) -> np.ndarray:
    """``values`` of the probes placed in a ``num_rows`` array (gallery rows zero: never read)."""
    out = np.zeros((num_rows, values.shape[1]), dtype=values.dtype)
    out[probes] = values
    return out


def cosine_scores(templates: np.ndarray, gallery: np.ndarray, probes: np.ndarray) -> np.ndarray:
    unit = templates / np.linalg.norm(templates, axis=1, keepdims=True)
    return unit[probes] @ unit[gallery].T


def rank1(scores: np.ndarray, labels: np.ndarray, gallery: np.ndarray, probes: np.ndarray) -> float:
    return float((labels[gallery][scores.argmax(axis=1)] == labels[probes]).mean() * 100.0)


def znorm(scores: np.ndarray) -> np.ndarray:
    return (scores - scores.mean(axis=1, keepdims=True)) / scores.std(axis=1, keepdims=True)


def embed_speed(name: str, threads: int, repeats: int = 3, batch: int = 32) -> float:
    """Milliseconds per chip of ``embed`` (fp32, no flip test) on ``batch`` chips, best of ``repeats``."""
    torch.set_num_threads(threads)
    rec = create_recognizer(name, torch.device("cpu"), batch_size=batch)
    chips = torch.rand(batch, 3, rec.input_size, rec.input_size, generator=torch.Generator().manual_seed(0))
    rec.embed(chips[:4])  # warm-up
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        rec.embed(chips)
        best = min(best, time.perf_counter() - start)
    return best / batch * 1000.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--people", type=int, default=150)
    parser.add_argument("--width", type=int, default=24, help="probe face width in px (MTCNN box)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default="runs/human_models_lfw.json")
    parser.add_argument("--skip-speed", action="store_true")
    parser.add_argument("--modes", default=",".join(MODES), help="warp interpolations to compare")
    parser.add_argument("--skip-conventions", action="store_true", help="skip the input-convention/padding rows")
    parser.add_argument("--people-list", default="peopleDevTest.txt",
                        help="peopleDevTrain.txt checks a setting on people no result here is reported on")
    parser.add_argument("--faceres-paddings", default="",
                        help="only measure faceres (bilinear, no flip test) at these chip paddings, e.g. 0,0.1,0.2")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    torch.set_num_threads(args.threads)
    from PIL import Image

    root = lfw_dir()
    paths, labels, gallery = split(root, args.people, args.people_list)
    images = [np.asarray(Image.open(p).convert("RGB")) for p in paths]
    widths, landmarks, found = central_faces(images)
    if not found.all():
        raise SystemExit(f"MTCNN found no face in {int((~found).sum())} images; this protocol needs all")
    probes = ~gallery
    probe_index = np.flatnonzero(probes)
    # Only probes are degraded: the gallery is always the full-resolution portrait.
    small, small_landmarks = low_resolution([images[i] for i in probe_index], [paths[i] for i in probe_index],
                                            widths[probe_index], landmarks[probe_index], args.width)
    log.info("%d people, %d images, %d probes; median face %.1f px", gallery.sum(), len(paths), probes.sum(),
             np.median(widths))
    results: dict[str, object] = {"people": int(gallery.sum()), "images": len(paths), "probes": int(probes.sum()),
                                  "width_px": args.width, "threads": args.threads, "people_list": args.people_list}
    if args.faceres_paddings:
        rec = create_recognizer("faceres", torch.device("cpu"), batch_size=64)
        padding_rank1 = {}
        for padding in (float(p) for p in args.faceres_paddings.split(",")):
            full = raw_outputs(rec.embed_raw, make_chips(rec, images, landmarks, "bilinear", padding))
            low = raw_outputs(rec.embed_raw, make_chips(rec, small, small_landmarks, "bilinear", padding))
            for res, probe_side in (("full", full), (f"{args.width}px", with_probe_rows(len(paths), probes, low))):
                both = np.where(gallery[:, None], full, probe_side)
                padding_rank1[f"faceres padding {padding} | {res}"] = rank1(cosine_scores(both, gallery, probes),
                                                                           labels, gallery, probes)
            log.info("faceres padding %s done", padding)
        results["faceres_padding_rank1"] = padding_rank1
        Path(args.out).write_text(json.dumps(results, indent=2))
        sys.stdout.write(json.dumps(results, indent=2) + "\n")
        return

    # Templates per recognizer, interpolation and resolution; gallery chips are always full resolution.
    templates: dict[tuple[str, str, str, bool], np.ndarray] = {}
    modes = args.modes.split(",")
    for name in RECOGNIZERS:
        rec = create_recognizer(name, torch.device("cpu"), batch_size=64)
        results[f"{name} chip padding"] = rec.template_padding
        for mode in modes:
            t0 = time.perf_counter()
            for res, imgs, lms in (("full", images, landmarks), (f"{args.width}px", small, small_landmarks)):
                chips = make_chips(rec, imgs, lms, mode)
                plain, mirrored = raw_outputs(rec.embed_raw, chips), raw_outputs(rec.embed_raw, chips.flip(-1))
                if res != "full":
                    plain, mirrored = (with_probe_rows(len(paths), probes, v) for v in (plain, mirrored))
                templates[(name, mode, res, False)] = plain
                templates[(name, mode, res, True)] = plain + mirrored
            log.info("%s %s: %.0f s", name, mode, time.perf_counter() - t0)

    def scores_of(name: str, mode: str, res: str, flip: bool) -> np.ndarray:
        probe_side = templates[(name, mode, res, flip)]
        both = np.where(gallery[:, None], templates[(name, mode, "full", flip)], probe_side)
        return cosine_scores(both, gallery, probes)

    table = {}
    for res in ("full", f"{args.width}px"):
        for flip in (False, True):
            for mode in modes:
                for name in RECOGNIZERS:
                    table[f"{name} | {mode} | {res} | flip={flip}"] = rank1(scores_of(name, mode, res, flip),
                                                                           labels, gallery, probes)
                fusions = {"dlib-resnet-lr+faceres": ("dlib-resnet-lr", "faceres"),
                           "dlib-resnet-lr+mobileface": ("dlib-resnet-lr", "mobileface"),
                           "dlib-resnet-lr+faceres+mobileface": RECOGNIZERS}
                for label, members in fusions.items():
                    fused = sum(znorm(scores_of(m, mode, res, flip)) for m in members)
                    table[f"{label} | {mode} | {res} | flip={flip}"] = rank1(fused, labels, gallery, probes)
    results["rank1"] = table

    # Input conventions and chip padding, full resolution, bilinear, no flip.
    conventions = {
        "faceres BGR minus VGG means (shipped), padding 0": ("faceres", FaceResNet(), 0.0),
        "faceres RGB 0..255, no mean (Human's enhance), padding 0": (
            "faceres", FaceResNet(input_mean_bgr=(0.0, 0.0, 0.0), bgr=False), 0.0),
        "faceres padding 0.1 (shipped)": ("faceres", FaceResNet(), 0.1),
        "mobileface RGB, padding 0 (shipped)": ("mobileface", MobileFaceNet(), 0.0),
        "mobileface BGR": ("mobileface", MobileFaceNet(bgr=True), 0.0),
        "mobileface padding 0.1": ("mobileface", MobileFaceNet(), 0.1),
    }
    convention_rank1 = {}
    for label, (name, model, padding) in ({} if args.skip_conventions else conventions).items():
        rec = create_recognizer(name, torch.device("cpu"), batch_size=64)
        model = load_network(model, name)[0]
        model = model.to(memory_format=torch.channels_last)
        full = raw_outputs(model, make_chips(rec, images, landmarks, "bilinear", padding))
        low = raw_outputs(model, make_chips(rec, small, small_landmarks, "bilinear", padding))
        for res, probe_side in (("full", full), (f"{args.width}px", with_probe_rows(len(paths), probes, low))):
            both = np.where(gallery[:, None], full, probe_side)
            convention_rank1[f"{label} | {res}"] = rank1(cosine_scores(both, gallery, probes), labels, gallery,
                                                         probes)
        log.info("convention %s done", label)
    results["conventions_rank1"] = convention_rank1

    if not args.skip_speed:
        results["ms_per_chip"] = {f"{name} | {threads} thread(s)": embed_speed(name, threads)
                                  for name in RECOGNIZERS for threads in (1, 2)}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2))
    sys.stdout.write(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
