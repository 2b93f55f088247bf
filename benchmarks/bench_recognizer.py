"""Throughput of the dlib ResNet port vs dlib-bin on the same 150x150 chips, at batch sizes 1, 32 and 256.

Chips are dlib-made LFW peopleDevTest chips when LFW is present, otherwise random images (the network's cost
does not depend on the content). The port runs on the CPU (``--threads`` torch threads; dlib-bin's CPU build is
single-threaded here) and, when CUDA is available, on the GPU in fp32 and fp16.

Run:  .venv/bin/python benchmarks/bench_recognizer.py [--threads 1] [--write-docs]
"""

from __future__ import annotations

import argparse
import logging
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from forensic_face.paths import lfw_dir  # noqa: E402

log = logging.getLogger("bench_recognizer")
DOC = ROOT / "docs" / "recognizer.md"
BATCH_SIZES = (1, 32, 256)


def load_chips(count: int) -> tuple[np.ndarray, str]:
    """``count`` uint8 (150,150,3) chips: dlib-made LFW chips, or random pixels when LFW is absent."""
    root = lfw_dir()
    if (root / "peopleDevTest.txt").is_file():
        import dlib
        import face_recognition_models as frm
        from PIL import Image

        detector = dlib.get_frontal_face_detector()
        predictor = dlib.shape_predictor(frm.pose_predictor_five_point_model_location())
        chips = []
        for line in (root / "peopleDevTest.txt").read_text().splitlines()[1:]:
            name, num = line.split("\t")
            for number in range(1, int(num) + 1):
                img = np.asarray(Image.open(root / "images_deepfunneled" / name / f"{name}_{number:04d}.jpg")
                                 .convert("RGB"))
                dets = detector(img, 0)
                if dets:
                    chips.append(dlib.get_face_chip(img, predictor(img, dets[0]), size=150, padding=0.25))
                if len(chips) == count:
                    return np.stack(chips), "LFW peopleDevTest chips made by dlib"
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, size=(count, 150, 150, 3), dtype=np.uint8), "random 150x150 images"


def faces_per_second(fn: object, num_faces: int, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()  # type: ignore[operator]
        best = min(best, time.perf_counter() - start)
    return num_faces / best


def bench_port(chips: np.ndarray, device: torch.device, precision: str, batch_size: int, num_faces: int,
               name: str = "dlib-resnet", flip_test: bool = False) -> float:
    from forensic_face.engine.recognizers import create_recognizer

    rec = create_recognizer(name, device, batch_size=batch_size, precision=precision, flip_test=flip_test)
    x = (torch.from_numpy(chips[:num_faces]).permute(0, 3, 1, 2).float() / 255.0).to(device)

    def run() -> None:
        rec.embed(x)
        if device.type == "cuda":
            torch.cuda.synchronize()

    run()  # warm-up (allocations, cuDNN autotuning)
    return faces_per_second(run, num_faces, repeats=3 if device.type == "cuda" else 2)


def bench_dlib(chips: np.ndarray, batch_size: int, num_faces: int) -> float:
    import dlib
    import face_recognition_models as frm

    net = dlib.face_recognition_model_v1(frm.face_recognition_model_location())
    batches = [list(chips[i:i + batch_size]) for i in range(0, num_faces, batch_size)]

    def run() -> None:
        for batch in batches:
            if batch_size == 1:
                net.compute_face_descriptor(batch[0])
            else:
                net.compute_face_descriptor(batch)

    net.compute_face_descriptor(chips[0])  # warm-up
    return faces_per_second(run, num_faces, repeats=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1: shared machine)")
    parser.add_argument("--write-docs", action="store_true", help=f"write the table into {DOC}")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    torch.set_num_threads(args.threads)

    chips, source = load_chips(max(BATCH_SIZES))
    # Faces timed per batch size: enough for a stable number without minutes of dlib time.
    num_faces = {1: 16, 32: 64, 256: 256}
    rows = []
    for bs in BATCH_SIZES:
        n = num_faces[bs]
        port_cpu = bench_port(chips, torch.device("cpu"), "fp32", bs, n)
        ref = bench_dlib(chips, bs, n)
        # The low-resolution-distilled network: same architecture, folded weights from resources/weights.
        lr_cpu = bench_port(chips, torch.device("cpu"), "fp32", bs, n, name="dlib-resnet-lr")
        # The flip test runs every chip twice (chip and mirror image in one batch).
        lr_flip_cpu = bench_port(chips, torch.device("cpu"), "fp32", bs, n, name="dlib-resnet-lr", flip_test=True)
        row = {"bs": bs, "faces": n, "port_cpu": port_cpu, "lr_cpu": lr_cpu, "lr_flip_cpu": lr_flip_cpu, "dlib": ref}
        if torch.cuda.is_available():
            row["port_cuda"] = bench_port(chips, torch.device("cuda"), "fp32", bs, max(n, 256))
            row["port_cuda_fp16"] = bench_port(chips, torch.device("cuda"), "fp16", bs, max(n, 256))
        log.info("batch %d: %s", bs, row)
        rows.append(row)

    gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else ""
    header = ("| batch size | faces timed | dlib-bin CPU (faces/s) | port CPU fp32 (faces/s) | port / dlib "
              "| dlib-resnet-lr CPU fp32 (faces/s) | dlib-resnet-lr + flip test CPU fp32 (faces/s) |")
    sep = "|---|---|---|---|---|---|---|"
    if gpu:
        header += " port CUDA fp32 | port CUDA fp16 |"
        sep += "---|---|"
    lines = [
        f"Measured {time.strftime('%Y-%m-%d')} on {platform.processor() or platform.machine()} "
        f"({torch.get_num_threads()} torch thread(s); dlib-bin {_dlib_version()} CPU build, BLAS: "
        f"{_dlib_blas()}){' and ' + gpu if gpu else ', no GPU'}; chips: {source}. Best of repeated runs "
        "(dlib: one run).",
        "",
        header,
        sep,
    ]
    for r in rows:
        line = (f"| {r['bs']} | {r['faces']} | {r['dlib']:.1f} | {r['port_cpu']:.1f} | "
                f"{r['port_cpu'] / r['dlib']:.1f}x | {r['lr_cpu']:.1f} | {r['lr_flip_cpu']:.1f} |")
        if gpu:
            line += f" {r['port_cuda']:.0f} | {r['port_cuda_fp16']:.0f} |"
        lines.append(line)
    lines += ["", "Command: `.venv/bin/python benchmarks/bench_recognizer.py --write-docs`"]
    text = "\n".join(lines)
    print(text)
    if args.write_docs:
        from forensic_face.eval.markdown import replace_marked_block

        replace_marked_block(DOC, "bench-recognizer", text)


def _dlib_version() -> str:
    import dlib

    return str(dlib.__version__)


def _dlib_blas() -> str:
    import dlib

    return "yes" if getattr(dlib, "DLIB_USE_BLAS", False) else "no"


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    main()
