"""Evaluate the face super-resolution networks against bicubic interpolation on LFW peopleDevTest faces.

For each scale, ``num_faces`` seeded faces of peopleDevTest people (identities never seen in training) are
cropped like the training data (the centred 140 px square), resized to the HR size ``lr_px * scale``, and
degraded with a random, seeded surveillance-camera setting to the LR size. Both methods magnify the same LR
faces; we report PSNR and SSIM against the HR face (RGB, [0,1]) and identity preservation: the cosine
similarity between recognizer templates of the magnified face and of the HR face, both aligned with the
five MTCNN landmarks found on the original LFW image.

Run ``python -m forensic_face.training.eval_sr --help`` (or ``forensic-face eval-sr``).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from forensic_face.engine import ConfigError, ShapeError, resolve_device
from forensic_face.engine.upsamplers import Upsampler, create_upsampler
from forensic_face.eval.compare import sign_test_p
from forensic_face.paths import cache_dir, lfw_dir
from forensic_face.training.sr_data import (
    CROP_PX,
    LFW_IMAGE_PX,
    evaluation_pairs,
    lfw_image_paths,
    load_crops,
)
from forensic_face.training.train_sr import psnr

log = logging.getLogger(__name__)

#: LR face side per scale in the evaluation: HR = 64, 128 and 128 px, at or below the real resolution of
#: an LFW face crop (about 140 px), so the HR target is a true image and not itself an upsampling.
EVAL_LR_PX: dict[int, int] = {2: 32, 4: 32, 8: 16}


def _gaussian_window(size: int = 11, sigma: float = 1.5, device: torch.device | None = None) -> torch.Tensor:
    x = torch.arange(size, dtype=torch.float32, device=device) - (size - 1) / 2
    g = torch.exp(-0.5 * (x / sigma) ** 2)
    g = g / g.sum()
    return (g[:, None] * g[None, :])[None, None]


def ssim(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-image SSIM (Wang et al. 2004: 11x11 Gaussian window, sigma 1.5, K1=0.01, K2=0.03) of ``(N,3,H,W)``
    images in [0,1], averaged over the RGB channels and the valid window positions.

    >>> float(ssim(torch.ones(1, 3, 16, 16) * 0.5, torch.ones(1, 3, 16, 16) * 0.5)[0])
    1.0
    """
    if output.shape != target.shape or output.dim() != 4 or min(output.shape[-2:]) < 11:
        raise ShapeError(f"ssim needs two equal (N,C,H,W) batches of at least 11 px, got {tuple(output.shape)}")
    x, y = output.clamp(0, 1).float(), target.float()
    c = x.shape[1]
    window = _gaussian_window(device=x.device).expand(c, 1, 11, 11)

    def blur(t: torch.Tensor) -> torch.Tensor:
        return F.conv2d(t, window, groups=c)

    mu_x, mu_y = blur(x), blur(y)
    var_x = blur(x * x) - mu_x**2
    var_y = blur(y * y) - mu_y**2
    cov = blur(x * y) - mu_x * mu_y
    c1, c2 = 0.01**2, 0.03**2
    value = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))
    return value.flatten(1).mean(1)


@dataclass(frozen=True)
class ScaleResult:
    """Mean metrics of one scale; ``identity_*`` are NaN when no recognizer was used."""

    scale: int
    lr_px: int
    hr_px: int
    num_faces: int
    num_identity_faces: int  # faces where MTCNN found landmarks on the original image (identity columns)
    psnr_bicubic: float
    psnr_sr: float
    ssim_bicubic: float
    ssim_sr: float
    identity_bicubic: float
    identity_sr: float
    identity_sr_wins: float  # fraction of faces whose SR template is closer to the HR template than bicubic's
    # Two-sided sign test of those per-face wins against losses (ties dropped): how likely a split at least this
    # uneven is if SR and bicubic preserved identity equally well. NaN without a recognizer.
    identity_sign_test_p: float
    sr_seconds: float


def evaluation_faces(root: Path, num_faces: int, seed: int) -> list[Path]:
    """``num_faces`` images of peopleDevTest people, drawn without replacement with ``seed``, sorted."""
    paths = lfw_image_paths(root, "peopleDevTest.txt")
    if num_faces > len(paths):
        raise ConfigError(f"asked for {num_faces} faces but peopleDevTest has {len(paths)} images")
    chosen = np.random.default_rng(seed).choice(len(paths), size=num_faces, replace=False)
    return [paths[i] for i in sorted(chosen)]


def crop_landmarks(paths: Sequence[Path], device: torch.device) -> tuple[list[int], np.ndarray]:
    """MTCNN landmarks of the best face in each LFW image, in the coordinates of the centred ``CROP_PX``
    square. Returns the indices of the images where a face was found and their ``(K,5,2)`` landmarks."""
    from forensic_face.engine import MtcnnDetector

    detector = MtcnnDetector(device)
    images = []
    for path in paths:
        with Image.open(path) as img:
            images.append(np.asarray(img.convert("RGB")))
    found, landmarks = [], []
    offset = (LFW_IMAGE_PX - CROP_PX) / 2
    for i, faces in enumerate(detector.detect(images)):
        if faces:
            found.append(i)
            landmarks.append(np.asarray(faces[0].landmarks, dtype=np.float32) - offset)
    return found, np.stack(landmarks) if landmarks else np.zeros((0, 5, 2), np.float32)


def _templates(recognizer: Any, images: torch.Tensor, landmarks: torch.Tensor, batch_size: int) -> torch.Tensor:
    out = []
    with torch.inference_mode():
        for i in range(0, images.shape[0], batch_size):
            prepared = recognizer.prepare(images[i : i + batch_size], landmarks[i : i + batch_size])
            out.append(recognizer.embed(prepared))
    return F.normalize(torch.cat(out).float(), dim=1)


def evaluate_sr(
    upsampler: Upsampler,
    scales: Sequence[int] = (2, 4, 8),
    num_faces: int = 200,
    seed: int = 0,
    recognizer: Any | None = None,
    device: torch.device | None = None,
    data_root: Path | None = None,
    batch_size: int = 32,
) -> list[ScaleResult]:
    """SR vs. bicubic on seeded peopleDevTest faces; see the module docstring for the protocol."""
    device = device or torch.device("cpu")
    root = data_root or lfw_dir()
    paths = evaluation_faces(root, num_faces, seed)
    crops = load_crops(paths, cache_dir() / "sr_crops")
    found: list[int] = []
    if recognizer is not None:
        found, crop_lms = crop_landmarks(paths, device)
        log.info("MTCNN found faces in %d of %d evaluation images", len(found), len(paths))
    results = []
    for scale in scales:
        lr_px = EVAL_LR_PX[scale]
        hr_px = lr_px * scale
        lr, hr = evaluation_pairs(crops, scale, lr_px, np.random.default_rng([seed, scale]))
        bicubic = F.interpolate(lr, scale_factor=scale, mode="bicubic", align_corners=False).clamp(0, 1)
        t0 = time.perf_counter()
        sr = upsampler.upsample(lr.to(device), scale).cpu()
        sr_seconds = time.perf_counter() - t0
        ident_bicubic = ident_sr = wins = sign_p = float("nan")
        if recognizer is not None:
            idx = torch.as_tensor(found)
            lms = torch.from_numpy(crop_lms * (hr_px / CROP_PX)).to(device)
            t_hr = _templates(recognizer, hr[idx].to(device), lms, batch_size)
            t_bic = _templates(recognizer, bicubic[idx].to(device), lms, batch_size)
            t_sr = _templates(recognizer, sr[idx].to(device), lms, batch_size)
            cos_bic = (t_hr * t_bic).sum(1)
            cos_sr = (t_hr * t_sr).sum(1)
            ident_bicubic, ident_sr = float(cos_bic.mean()), float(cos_sr.mean())
            wins = float((cos_sr > cos_bic).float().mean())
            sign_p = sign_test_p(int((cos_sr > cos_bic).sum()), int((cos_sr < cos_bic).sum()))
        results.append(
            ScaleResult(
                scale=scale,
                lr_px=lr_px,
                hr_px=hr_px,
                num_faces=num_faces,
                num_identity_faces=len(found) if recognizer is not None else 0,
                psnr_bicubic=float(psnr(bicubic, hr).mean()),
                psnr_sr=float(psnr(sr, hr).mean()),
                ssim_bicubic=float(ssim(bicubic, hr).mean()),
                ssim_sr=float(ssim(sr, hr).mean()),
                identity_bicubic=ident_bicubic,
                identity_sr=ident_sr,
                identity_sr_wins=wins,
                identity_sign_test_p=sign_p,
                sr_seconds=sr_seconds,
            )
        )
        log.info("x%d: %s", scale, results[-1])
    return results


def results_table(results: Sequence[ScaleResult], name: str = "face-sr") -> str:
    """Markdown table of :func:`evaluate_sr` results; ``name`` labels the upsampler's columns."""
    lines = [
        f"| scale | LR -> HR px | faces (with landmarks) | PSNR bicubic | PSNR {name} | SSIM bicubic | SSIM {name} "
        f"| identity cos bicubic | identity cos {name} | {name} closer to HR identity | sign test p |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r.scale}x | {r.lr_px} -> {r.hr_px} | {r.num_faces} ({r.num_identity_faces}) | {r.psnr_bicubic:.2f} dB | {r.psnr_sr:.2f} dB "
            f"| {r.ssim_bicubic:.3f} | {r.ssim_sr:.3f} | {r.identity_bicubic:.4f} | {r.identity_sr:.4f} "
            f"| {100 * r.identity_sr_wins:.0f}% | {r.identity_sign_test_p:.2g} |"
        )
    return "\n".join(lines)


def hypotheses_figure(
    upsampler: Upsampler,
    out_path: Path,
    num_faces: int = 3,
    lr_px: int = 24,
    seed: int = 1,
    data_root: Path | None = None,
) -> None:
    """PNG of the engine's 16 blur hypotheses (sigma 0..1) magnified at 2x, 4x and 8x for a few test faces.

    Each face gets one block: the LR input, then per scale a row of the 16 hypotheses, all shown at the 8x
    size so the rows line up (the 2x and 4x results are enlarged with nearest-neighbour for display only).
    """
    from forensic_face.engine import probe_hypotheses

    root = data_root or lfw_dir()
    paths = evaluation_faces(root, num_faces, seed)
    crops = load_crops(paths, None)
    tile = lr_px * 8
    rows = []
    for i in range(num_faces):
        lr, hr = evaluation_pairs(crops[i : i + 1], 8, lr_px, np.random.default_rng([seed, i]))
        sigmas, hyps = probe_hypotheses(lr, (2, 4, 8), upsampler, num_hypotheses=16, max_sigma=1.0)
        header = [F.interpolate(lr, size=(tile, tile), mode="nearest"), hr] + [torch.ones_like(hr)] * 14
        rows.append(torch.cat(header, dim=3))
        for scale in (2, 4, 8):
            shown = F.interpolate(hyps[scale], size=(tile, tile), mode="nearest")
            rows.append(torch.cat(list(shown), dim=2)[None])
    grid = torch.cat(rows, dim=2)[0]
    pixels = (grid.clamp(0, 1).permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    # Halve for a file that is easy to view; thumbnails stay 96 px.
    Image.fromarray(pixels).resize((pixels.shape[1] // 2, pixels.shape[0] // 2), Image.Resampling.LANCZOS).save(
        out_path, optimize=True
    )
    log.info("wrote %s (sigmas %s)", out_path, [round(float(s), 3) for s in sigmas])


def add_eval_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--num-faces", type=int, default=200, help="peopleDevTest faces per scale")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--scales", type=int, nargs="+", default=[2, 4, 8], choices=(2, 4, 8))
    parser.add_argument("--upsampler", default="face-sr", help="registered upsampler to compare with bicubic")
    parser.add_argument("--recognizer", default="dlib-resnet", help="for identity preservation; 'none' skips it")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    parser.add_argument("--num-threads", type=int, default=1)
    parser.add_argument("--json-out", type=Path, help="also write the results as JSON here")
    parser.add_argument("--figure-out", type=Path, help="write the blur-hypotheses figure (PNG) here")
    parser.add_argument("--figure-only", action="store_true", help="only write --figure-out, no evaluation")


def run_eval(args: argparse.Namespace) -> int:
    torch.set_num_threads(args.num_threads)
    device = resolve_device(args.device)
    upsampler: Upsampler
    if args.upsampler == "face-sr":
        # Load only the evaluated scales (each through its verified shipped file).
        from forensic_face.engine.upsamplers import FaceSrUpsampler, weights_name
        from forensic_face.engine import verified_path

        upsampler = FaceSrUpsampler(device, weights={s: verified_path(weights_name(s)) for s in args.scales})
    else:
        upsampler = create_upsampler(args.upsampler, device)
    if args.figure_only or args.figure_out:
        if tuple(sorted(args.scales)) != (2, 4, 8) or not args.figure_out:
            raise ConfigError("the hypotheses figure shows 2x, 4x and 8x: use --scales 2 4 8 and --figure-out")
    if args.figure_only:
        hypotheses_figure(upsampler, args.figure_out)
        return 0
    recognizer = None
    if args.recognizer != "none":
        from forensic_face.engine.recognizers import create_recognizer

        recognizer = create_recognizer(args.recognizer, device=device)
    results = evaluate_sr(upsampler, args.scales, args.num_faces, args.seed, recognizer, device)
    table = results_table(results, args.upsampler)
    sys.stdout.write(table + "\n")
    if args.json_out:
        args.json_out.write_text(
            json.dumps(
                {"upsampler": args.upsampler, "weights_sha256": {str(k): v for k, v in upsampler.weights_sha256.items()},
                 "recognizer": args.recognizer, "seed": args.seed, "results": [asdict(r) for r in results]},
                indent=2,
            )
        )
    if args.figure_out:
        hypotheses_figure(upsampler, args.figure_out)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m forensic_face.training.eval_sr", description=__doc__)
    add_eval_arguments(parser)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return run_eval(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
