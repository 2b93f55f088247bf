"""Device check: what a GPU machine (or the CPU, ``--quick``) does with the shipped networks, as tables.

Run by ``benchmarks/device_check.sh``. Measures, on ``--device``:

* the recognizers (``dlib-resnet``, ``dlib-resnet-lr``) at batch 32/256/1024 in fp32, and on CUDA bf16 and
  fp16: faces/s, and the largest template difference of the reduced precision from fp32;
* the probe side of a search: 16 pre-blurs x face-sr 2x/4x/8x of one 30 px crop (48 hypotheses): seconds;
* the gallery side: one chunk of gallery hypotheses (the standard budget's 66 paths + the original) of a batch
  of 160 px crops, degraded, resolution-matched and embedded (``templates.gallery_hypothesis_templates``):
  templates/s, beside the recognizer-only rate of the same batch.

Random pixels stand in for faces (the networks' cost does not depend on the content), so no data is needed on
the machine. ``--quick`` shrinks every size for a dry run on a CPU in well under a minute.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _best_time(fn, device: torch.device, repeats: int) -> float:  # type: ignore[no-untyped-def]
    fn()  # warm-up (allocations, cuDNN autotuning)
    _sync(device)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        _sync(device)
        best = min(best, time.perf_counter() - t0)
    return best


def recognizer_rows(device: torch.device, batch_sizes: list[int], precisions: list[str], repeats: int) -> list[dict]:
    from forensic_face.engine.recognizers import create_recognizer

    rows = []
    rng = np.random.default_rng(0)
    fixed = torch.from_numpy(rng.random((8, 3, 150, 150), dtype=np.float32)).to(device)
    for name in ("dlib-resnet", "dlib-resnet-lr"):
        reference = None
        for precision in precisions:
            for bs in batch_sizes:
                rec = create_recognizer(name, device, batch_size=bs, precision=precision)
                chips = torch.from_numpy(rng.random((bs, 3, 150, 150), dtype=np.float32)).to(device)
                with torch.inference_mode():
                    seconds = _best_time(lambda: rec.embed(chips), device, repeats)
                    out = rec.embed(fixed).float().cpu()
                if precision == "fp32" and reference is None:
                    reference = out
                diff = float((out - reference).abs().max()) if reference is not None else float("nan")
                rows.append({"recognizer": name, "precision": precision, "batch": bs,
                             "faces_per_s": round(bs / seconds, 1), "max_abs_diff_vs_fp32": round(diff, 5)})
    return rows


def probe_side(device: torch.device, repeats: int) -> dict:
    from forensic_face.engine.probe import probe_hypotheses
    from forensic_face.engine.upsamplers import create_upsampler

    up = create_upsampler("face-sr", device, batch_size=64)
    crop = torch.rand(1, 3, 30, 30, device=device)
    with torch.inference_mode():
        seconds = _best_time(lambda: probe_hypotheses(crop, (2, 4, 8), up, 16, 1.0), device, repeats)
    return {"hypotheses": 48, "seconds": round(seconds, 4)}


def gallery_side(device: torch.device, batch: int, repeats: int) -> dict:
    from forensic_face.engine import Engine, EngineConfig
    from forensic_face.engine.matching import match_resolution
    from forensic_face.engine.templates import GalleryCrops, gallery_hypothesis_templates

    engine = Engine(EngineConfig(device=str(device), batch_size=max(64, batch)), cache_dir=None)
    images = torch.rand(batch, 3, 160, 160, device=device)
    unit = torch.tensor([[0.34, 0.46], [0.66, 0.46], [0.5, 0.62], [0.37, 0.8], [0.63, 0.8]], device=device) * 160
    crops = GalleryCrops(images, unit.expand(batch, 5, 2).contiguous())
    paths = engine.degradation_paths
    seeds = list(range(batch))
    with torch.inference_mode():
        seconds = _best_time(lambda: gallery_hypothesis_templates(crops, paths, seeds, 64, engine.embed), device,
                             repeats)
        rec_seconds = _best_time(lambda: engine.embed(*match_resolution(images, crops.landmarks, 64)), device,
                                 repeats)
    templates = batch * (1 + len(paths))
    return {"portraits": batch, "templates": templates, "templates_per_s": round(templates / seconds, 1),
            "recognizer_only_per_s": round(batch / rec_seconds, 1),
            "ratio": round((templates / seconds) / (batch / rec_seconds), 3)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--quick", action="store_true", help="small sizes: a CPU dry run")
    parser.add_argument("--out", type=Path, required=True, help="folder for device_check.json and .md")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("no CUDA device here; use --device cpu --quick for a dry run")
    torch.set_num_threads(1 if device.type == "cpu" else torch.get_num_threads())
    batch_sizes = [2, 8] if args.quick else [32, 256, 1024]
    # Reduced precision is a CUDA feature of the recognizers (fp32 elsewhere).
    precisions = ["fp32", "bf16", "fp16"] if device.type == "cuda" else ["fp32"]
    repeats = 1 if args.quick else 3
    report = {
        "device": torch.cuda.get_device_name() if device.type == "cuda" else platform.processor() or "cpu",
        "torch": torch.__version__, "quick": args.quick,
        "recognizers": recognizer_rows(device, batch_sizes, precisions, repeats),
        "probe_side_face_sr": probe_side(device, repeats),
        "gallery_side_standard_budget": gallery_side(device, 2 if args.quick else 64, repeats),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "device_check.json").write_text(json.dumps(report, indent=2))
    lines = [f"Device check on {report['device']} (torch {report['torch']}{', quick' if args.quick else ''})", "",
             "| recognizer | precision | batch | faces/s | max abs diff vs fp32 |", "|---|---|---:|---:|---:|"]
    lines += [f"| {r['recognizer']} | {r['precision']} | {r['batch']} | {r['faces_per_s']} | "
              f"{r['max_abs_diff_vs_fp32']} |" for r in report["recognizers"]]
    p, g = report["probe_side_face_sr"], report["gallery_side_standard_budget"]
    lines += ["", f"Probe side: {p['hypotheses']} face-sr hypotheses of a 30 px crop in {p['seconds']} s.",
              f"Gallery side: {g['templates']} gallery hypothesis templates of {g['portraits']} portraits at "
              f"{g['templates_per_s']} templates/s; the recognizer alone {g['recognizer_only_per_s']} templates/s "
              f"(ratio {g['ratio']})."]
    (args.out / "device_check.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
