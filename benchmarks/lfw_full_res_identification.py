"""496-way rank-1 identification on LFW peopleDevTest at full resolution: our dlib port vs dlib itself.

Protocol (data/README.md): people of peopleDevTest.txt with at least two images (496 people, 2,493 images); the
first image by number is the gallery portrait, the others are probes; nearest gallery template by cosine
similarity.

Three template sets are compared:

1. ``dlib`` -- dlib.face_recognition_model_v1 on dlib-made chips (HOG detector, 5-point shape predictor,
   get_face_chip(150, 0.25));
2. ``port`` -- our PyTorch port (forensic_face "dlib-resnet") on exactly the same chips;
3. ``port+mtcnn`` -- our engine path: facenet-pytorch MTCNN landmarks, our batched template warp, our port.

Run:  .venv/bin/python benchmarks/lfw_full_res_identification.py [--write-docs]
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from forensic_face.paths import lfw_dir  # noqa: E402

log = logging.getLogger("lfw_full_res_identification")
DOC = ROOT / "docs" / "recognizer.md"
MARKER = "lfw-identification"
# Where LFW deep-funneled faces sit when the HOG detector misses one (250x250 images, faces ~100-115 px).
FALLBACK_BOX = (68, 68, 182, 182)


def protocol(root: Path) -> tuple[list[Path], np.ndarray, np.ndarray]:
    """Image paths, identity labels, and a gallery mask (first image of each person)."""
    lines = (root / "peopleDevTest.txt").read_text().splitlines()[1:]
    paths, labels, gallery = [], [], []
    for identity, line in enumerate(entry for entry in lines if int(entry.split("\t")[1]) >= 2):
        name, count = line.split("\t")
        for number in range(1, int(count) + 1):
            paths.append(root / "images_deepfunneled" / name / f"{name}_{number:04d}.jpg")
            labels.append(identity)
            gallery.append(number == 1)
    return paths, np.asarray(labels), np.asarray(gallery)


def rank1(templates: np.ndarray, labels: np.ndarray, gallery: np.ndarray) -> float:
    unit = templates / np.linalg.norm(templates, axis=1, keepdims=True)
    scores = unit[~gallery] @ unit[gallery].T
    predicted = labels[gallery][scores.argmax(axis=1)]
    return float((predicted == labels[~gallery]).mean() * 100.0)


def dlib_chips(images: list[np.ndarray]) -> tuple[np.ndarray, int]:
    import dlib
    import face_recognition_models as frm

    detector = dlib.get_frontal_face_detector()
    predictor = dlib.shape_predictor(frm.pose_predictor_five_point_model_location())
    chips, fallbacks = [], 0
    for img in images:
        dets = detector(img, 0) or detector(img, 1)
        if dets:
            centre = np.array(img.shape[1::-1]) / 2
            rect = min(dets, key=lambda r: np.hypot(r.center().x - centre[0], r.center().y - centre[1]))
        else:
            rect, fallbacks = dlib.rectangle(*FALLBACK_BOX), fallbacks + 1
        chips.append(dlib.get_face_chip(img, predictor(img, rect), size=150, padding=0.25))
    return np.stack(chips), fallbacks


def mtcnn_landmarks(images: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(N,5,2) MTCNN landmarks of the face nearest the centre, and a mask of images where MTCNN found none."""
    from facenet_pytorch import MTCNN

    mtcnn = MTCNN(device="cpu", keep_all=True)
    out = np.zeros((len(images), 5, 2), dtype=np.float32)
    found = np.zeros(len(images), dtype=bool)
    for start in range(0, len(images), 32):
        batch = np.stack(images[start:start + 32])
        boxes, _, points = mtcnn.detect(batch, landmarks=True)
        for i, (b, p) in enumerate(zip(boxes, points)):
            if b is None:
                continue
            centres = (b[:, :2] + b[:, 2:]) / 2 - np.array(batch.shape[2:0:-1]) / 2
            out[start + i] = p[int(np.hypot(*centres.T).argmin())]
            found[start + i] = True
    return out, found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1: shared machine)")
    parser.add_argument("--limit", type=int, default=0, help="use only the first N people (0 = all 496)")
    parser.add_argument("--write-docs", action="store_true", help=f"write the numbers into {DOC}")
    parser.add_argument("--skip-dlib-descriptors", action="store_true",
                        help="do not run dlib-bin's own network (8 min on 2 CPUs); its row and the port-vs-dlib "
                             "distance are then not measured")
    parser.add_argument("--lr-model", default=None,
                        help="dlib-resnet-lr weights to measure (default: the shipped ones when present)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    torch.set_num_threads(args.threads)

    import dlib
    import face_recognition_models as frm
    from PIL import Image

    from forensic_face.engine.recognizers import create_recognizer

    root = lfw_dir()
    if not (root / "peopleDevTest.txt").is_file():
        raise SystemExit(f"LFW not found at {root}; set FORENSIC_FACE_DATA")
    paths, labels, gallery = protocol(root)
    if args.limit:
        keep = labels < args.limit
        paths = [p for p, k in zip(paths, keep) if k]
        labels, gallery = labels[keep], gallery[keep]
    log.info("%d people, %d images (%d probes)", gallery.sum(), len(paths), (~gallery).sum())
    images = [np.asarray(Image.open(p).convert("RGB")) for p in paths]

    t0 = time.perf_counter()
    chips, fallbacks = dlib_chips(images)
    log.info("dlib chips in %.0f s (%d fallback boxes)", time.perf_counter() - t0, fallbacks)

    rec = create_recognizer("dlib-resnet", torch.device("cpu"), batch_size=64)
    chip_tensor = torch.from_numpy(chips).permute(0, 3, 1, 2).float() / 255.0
    t0 = time.perf_counter()
    port = rec.embed_raw(chip_tensor).numpy()
    port_s = time.perf_counter() - t0

    if args.skip_dlib_descriptors:
        ref, dlib_s, diff = None, float("nan"), np.full(1, np.nan)
    else:
        net = dlib.face_recognition_model_v1(frm.face_recognition_model_location())
        t0 = time.perf_counter()
        ref = np.asarray(net.compute_face_descriptor(list(chips)), dtype=np.float32)
        dlib_s = time.perf_counter() - t0
        diff = np.linalg.norm(port - ref, axis=1)

    t0 = time.perf_counter()
    landmarks, found = mtcnn_landmarks(images)
    mtcnn_s = time.perf_counter() - t0
    batch = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float() / 255.0
    mtcnn_templates = port.copy()  # images where MTCNN finds no face keep the dlib-chip template
    idx = np.flatnonzero(found)
    for start in range(0, len(idx), 256):
        sel = idx[start:start + 256]
        aligned = rec.prepare(batch[sel], torch.from_numpy(landmarks[sel]))
        mtcnn_templates[sel] = rec.embed_raw(aligned).numpy()

    results = {
        "dlib": rank1(ref, labels, gallery) if ref is not None else float("nan"),
        "port": rank1(port, labels, gallery),
        "port+mtcnn": rank1(mtcnn_templates, labels, gallery),
    }
    # The low-resolution-distilled network must keep full-resolution identification (issue 16: >= 93 %); the
    # flip test (templates of chip + mirror image) is measured for both networks.
    def chip_templates(rec: object) -> tuple[np.ndarray, np.ndarray]:
        on_dlib_chips = rec.embed(chip_tensor).numpy()  # type: ignore[attr-defined]
        on_mtcnn = on_dlib_chips.copy()
        for start in range(0, len(idx), 256):
            sel = idx[start:start + 256]
            aligned = rec.prepare(batch[sel], torch.from_numpy(landmarks[sel]))  # type: ignore[attr-defined]
            on_mtcnn[sel] = rec.embed(aligned).numpy()  # type: ignore[attr-defined]
        return on_dlib_chips, on_mtcnn

    extra_rows: list[str] = []
    variants = [("dlib-resnet", None, True), ("dlib-resnet-lr", args.lr_model, False),
                ("dlib-resnet-lr", args.lr_model, True)]
    for name, model_path, flip_test in variants:
        try:
            variant = create_recognizer(name, torch.device("cpu"), batch_size=64, model_path=model_path,
                                        flip_test=flip_test)
        except Exception as exc:  # noqa: BLE001 - reported, the other rows still stand
            log.warning("%s not measured: %s", name, exc)
            continue
        label = f"`{name}`" + (" + flip test" if flip_test else "") + (
            f" ({variant.weights_sha256[:12]})" if name != "dlib-resnet" else "")
        on_dlib_chips, on_mtcnn = chip_templates(variant)
        extra_rows += [
            f"| {label} | the same dlib chips | {rank1(on_dlib_chips, labels, gallery):.2f} |",
            f"| {label} | MTCNN landmarks + our `warp_to_template` | {rank1(on_mtcnn, labels, gallery):.2f} |",
        ]
    n = len(paths)
    measured_dlib = ref is not None
    dlib_row = ([f"| dlib-bin 20.0.1 `compute_face_descriptor` | dlib HOG + 5-point + `get_face_chip` | "
                 f"{results['dlib']:.2f} |"] if measured_dlib else [])
    agreement = (f"Port vs dlib on identical chips: L2 distance of raw descriptors max {diff.max():.2e}, "
                 f"mean {diff.mean():.2e}. " if measured_dlib else "dlib-bin's own network not run "
                 "(`--skip-dlib-descriptors`). ")
    dlib_time = f", dlib {dlib_s:.1f} s ({n / dlib_s:.1f} faces/s)" if measured_dlib else ""
    lines = [
        f"Measured {time.strftime('%Y-%m-%d')} on this machine's CPU (torch threads: {args.threads}), "
        f"{int(gallery.sum())} people, {n} images, {int((~gallery).sum())} probes.",
        "",
        "| templates | chips | rank-1 (%) |",
        "|---|---|---|",
        *dlib_row,
        f"| our port (`dlib-resnet`) | the same dlib chips | {results['port']:.2f} |",
        f"| our port (`dlib-resnet`) | MTCNN landmarks + our `warp_to_template` | {results['port+mtcnn']:.2f} |",
        *extra_rows,
        "",
        f"{agreement}dlib's HOG detector missed {fallbacks} images (fixed centre box used); "
        f"MTCNN missed {int((~found).sum())} (dlib-chip template kept).",
        "",
        f"Time for the {n} chips: our port {port_s:.1f} s ({n / port_s:.0f} faces/s){dlib_time}; "
        f"MTCNN landmarks {mtcnn_s:.0f} s.",
        "",
        "Command: `.venv/bin/python benchmarks/lfw_full_res_identification.py --write-docs`",
    ]
    text = "\n".join(lines)
    print(text)
    if args.write_docs:
        from forensic_face.eval.markdown import replace_marked_block

        replace_marked_block(DOC, MARKER, text)


if __name__ == "__main__":
    main()
