"""Train one face super-resolution network (:class:`FaceSrNet`) on LFW peopleDevTrain faces.

Seeded and resumable: the model is initialised from ``seed``, and the batch of iteration ``i`` is drawn from
``numpy.random.default_rng([seed, i])``, so a run that is stopped and resumed sees exactly the batches
of an uninterrupted run. Every checkpoint (``checkpoint_last.pt``) has ``config.json`` and ``metrics.json``
beside it; the finished network is exported as ``face_sr_x{scale}.safetensors`` (the shipped format).

Run ``python -m forensic_face.training.train_sr --help`` (or ``forensic-face train-sr``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from forensic_face.engine import ConfigError, resolve_device, sha256_of
from forensic_face.engine.upsamplers import FaceSrNet, count_parameters, save_face_sr
from forensic_face.paths import atomic_write, cache_dir, lfw_dir
from forensic_face.training.sr_data import (
    CAMERA_MODELS,
    DEFAULT_LR_RANGE,
    lfw_image_paths,
    load_crops,
    make_pairs,
)

log = logging.getLogger(__name__)

CHECKPOINT_NAME = "checkpoint_last.pt"
CONFIG_NAME = "config.json"
METRICS_NAME = "metrics.json"
#: Settings that may change when a run is resumed; any other difference is refused.
RESUMABLE_CHANGES = frozenset({"iterations", "checkpoint_every", "num_threads", "device", "progress"})
#: Recognizers the identity loss can run through (see SrTrainConfig.identity_recognizer).
IDENTITY_RECOGNIZERS = ("dlib-resnet", "dlib-resnet-lr")


@dataclass(frozen=True)
class SrTrainConfig:
    """Everything a training run depends on (written to ``config.json``)."""

    scale: int
    out_dir: str
    iterations: int = 1000
    batch_size: int = 16
    learning_rate: float = 4e-4
    final_learning_rate: float = 2e-5  # cosine decay from learning_rate to this over `iterations`
    n_feats: int = 32
    n_blocks: int = 6
    res_scale: float = 1.0
    lr_px_min: int = 0  # 0 = the per-scale default of sr_data.DEFAULT_LR_RANGE
    lr_px_max: int = 0
    seed: int = 0
    checkpoint_every: int = 100
    val_images: int = 64  # held-out images of peopleDevTrain people (the last people in the list)
    max_images: int = 0  # 0 = every peopleDevTrain image not held out
    data_root: str = ""  # "" = forensic_face.paths.lfw_dir()
    crop_cache_dir: str = ""  # "" = <cache_dir>/sr_crops
    device: str = "auto"
    num_threads: int = 1
    progress: bool = True
    synthetic: bool = False  # train on synthetic_faces() instead of LFW (unit tests only)
    #: Weight of the identity loss, 1 - cosine between dlib ResNet templates of SR output and HR target
    #: (0 = L1 only). It keeps the network from trading identity for PSNR (section 3.3, [43]).
    identity_weight: float = 0.0
    #: Start from these weights (a face_sr_x{scale}.safetensors, e.g. the shipped ones) instead of from seed;
    #: the optimizer starts fresh. Fine-tuning, e.g. with the identity loss.
    init_from: str = ""
    init_from_sha256: str = ""  # filled in from the file; recorded so the run can be traced
    #: The cameras that make the LR inputs (sr_data.CAMERA_MODELS): the benchmark's CCTV model or the broad
    #: family the recognizer was distilled on.
    camera_model: str = "surveillance"
    #: Network whose template of the SR output is compared with dlib ResNet's template of the HR face in the
    #: identity loss: ``dlib-resnet`` itself, or the distilled ``dlib-resnet-lr`` (trained so that its template
    #: of a degraded face lands on dlib ResNet's full-resolution one), so the SR learns to give the student what
    #: it needs rather than what the teacher needs.
    identity_recognizer: str = "dlib-resnet"

    def __post_init__(self) -> None:
        if self.scale not in (2, 4, 8):
            raise ConfigError(f"scale must be 2, 4 or 8, got {self.scale}")
        if self.iterations < 1 or self.batch_size < 1 or self.checkpoint_every < 1:
            raise ConfigError("iterations, batch_size and checkpoint_every must be >= 1")
        if self.identity_weight < 0:
            raise ConfigError(f"identity_weight must be >= 0, got {self.identity_weight}")
        if self.camera_model not in CAMERA_MODELS:
            raise ConfigError(f"camera_model must be one of {', '.join(CAMERA_MODELS)}, got {self.camera_model!r}")
        if self.identity_recognizer not in IDENTITY_RECOGNIZERS:
            raise ConfigError(f"identity_recognizer must be one of {', '.join(IDENTITY_RECOGNIZERS)}, "
                              f"got {self.identity_recognizer!r}")
        lo, hi = self.lr_range()
        if not 4 <= lo <= hi:
            raise ConfigError(f"LR face size range must satisfy 4 <= min <= max, got {lo}..{hi}")

    def lr_range(self) -> tuple[int, int]:
        default = DEFAULT_LR_RANGE[self.scale]
        return (self.lr_px_min or default[0], self.lr_px_max or default[1])

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _batch_rng(seed: int, iteration: int) -> np.random.Generator:
    return np.random.default_rng([seed, iteration])


def _learning_rate(config: SrTrainConfig, iteration: int) -> float:
    progress = min(1.0, iteration / config.iterations)
    cosine = 0.5 * (1.0 + math.cos(math.pi * progress))
    return config.final_learning_rate + (config.learning_rate - config.final_learning_rate) * cosine


def psnr(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-image PSNR in dB of ``(N,3,H,W)`` images in [0,1]."""
    mse = (output.clamp(0, 1) - target).pow(2).flatten(1).mean(1)
    return 10.0 * torch.log10(1.0 / mse.clamp_min(1e-10))


def _load_data(config: SrTrainConfig) -> tuple[np.ndarray, np.ndarray]:
    """(training crops, validation crops), uint8 ``(N,160,160,3)``."""
    if config.synthetic:
        from forensic_face.training.sr_data import synthetic_faces

        return synthetic_faces(24, seed=config.seed), synthetic_faces(8, seed=config.seed + 1)
    root = Path(config.data_root) if config.data_root else lfw_dir()
    paths = lfw_image_paths(root, "peopleDevTrain.txt")
    # Hold out whole people (the end of the list) so validation faces are unseen identities.
    val_paths = paths[-config.val_images :] if config.val_images else []
    held_people = {p.parent.name for p in val_paths}
    train_paths = [p for p in paths if p.parent.name not in held_people]
    if config.max_images:
        train_paths = train_paths[: config.max_images]
    crop_dir = Path(config.crop_cache_dir) if config.crop_cache_dir else cache_dir() / "sr_crops"
    return load_crops(train_paths, crop_dir), load_crops(val_paths, crop_dir)


def _validation_set(config: SrTrainConfig, val_crops: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    lo, hi = config.lr_range()
    lr_px = (lo + hi) // 2
    rng = np.random.default_rng([config.seed, 10**9])
    lr, hr, _ = make_pairs(val_crops, config.scale, lr_px, len(val_crops), rng, jitter=False,
                           camera_model=config.camera_model)
    return lr, hr


def _evaluate(net: FaceSrNet, lr: torch.Tensor, hr: torch.Tensor, device: torch.device) -> dict[str, float]:
    if lr.shape[0] == 0:
        return {}
    net.eval()
    with torch.inference_mode():
        out = torch.cat([net(lr[i : i + 16].to(device)).cpu() for i in range(0, lr.shape[0], 16)])
    bicubic = F.interpolate(lr, scale_factor=net.scale, mode="bicubic", align_corners=False)
    net.train()
    return {
        "val_psnr_sr": float(psnr(out, hr).mean()),
        "val_psnr_bicubic": float(psnr(bicubic, hr).mean()),
        "val_l1_sr": float((out.clamp(0, 1) - hr).abs().mean()),
    }


def identity_network(device: torch.device, name: str = "dlib-resnet") -> torch.nn.Module:
    """A recognizer's network (``dlib-resnet`` or the shipped ``dlib-resnet-lr``), frozen, for the identity loss."""
    from forensic_face.engine.recognizers import LR_WEIGHTS_NAME, load_dlib_resnet, load_dlib_resnet_lr
    from forensic_face.engine import shipped_weights

    if name == "dlib-resnet-lr":
        entry = shipped_weights(LR_WEIGHTS_NAME)
        model, _ = load_dlib_resnet_lr(entry.path, entry.sha256)
    else:
        model, _ = load_dlib_resnet()
        model = model.fold_affine()
    model = model.to(device).eval()
    for param in model.parameters():
        param.requires_grad_(False)
    return model


def identity_loss(recognizer: torch.nn.Module, output: torch.Tensor, target: torch.Tensor,
                  reference_recognizer: torch.nn.Module | None = None) -> torch.Tensor:
    """Mean ``1 - cos`` between ``recognizer``'s templates of ``output`` and ``reference_recognizer``'s (default:
    the same network) of ``target`` (both ``(N,3,S,S)`` face squares in [0,1], resized to the recognizer's
    150 px). Gradients flow into ``output`` only."""
    from forensic_face.engine.recognizers import INPUT_SIZE

    def chips(x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear", align_corners=False)

    with torch.no_grad():
        reference = (reference_recognizer or recognizer)(chips(target))
    produced = recognizer(chips(output.clamp(0.0, 1.0)))
    return (1.0 - F.cosine_similarity(produced, reference, dim=1)).mean()


def _evaluate_identity(net: FaceSrNet, recognizer: torch.nn.Module | None, lr: torch.Tensor, hr: torch.Tensor,
                       device: torch.device, reference: torch.nn.Module | None = None) -> dict[str, float]:
    """Validation identity loss of SR and of bicubic (the bar the network must beat)."""
    if recognizer is None or lr.shape[0] == 0:
        return {}
    net.eval()
    with torch.inference_mode():
        out = torch.cat([net(lr[i : i + 16].to(device)) for i in range(0, lr.shape[0], 16)])
        bicubic = F.interpolate(lr.to(device), scale_factor=net.scale, mode="bicubic", align_corners=False)
        hr = hr.to(device)
        sr_loss = identity_loss(recognizer, out, hr, reference)
        bicubic_loss = identity_loss(recognizer, bicubic, hr, reference)
    net.train()
    return {"val_identity_loss_sr": float(sr_loss), "val_identity_loss_bicubic": float(bicubic_loss)}


def _initial_weights(config: SrTrainConfig) -> FaceSrNet:
    from forensic_face.engine.upsamplers import load_face_sr

    net = load_face_sr(config.init_from, expected_sha256=config.init_from_sha256 or None)
    arch = {"scale": config.scale, "n_feats": config.n_feats, "n_blocks": config.n_blocks,
            "res_scale": config.res_scale}
    if any(net.arch().get(k) != v for k, v in arch.items()):
        raise ConfigError(f"--init-from {config.init_from} is a {net.arch()} network; this run is {arch}")
    return net


def _write_json(path: Path, data: dict[str, Any]) -> None:
    with atomic_write(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True))


def _check_resume(out_dir: Path, config: SrTrainConfig) -> None:
    saved_path = out_dir / CONFIG_NAME
    if not saved_path.is_file():
        return
    saved = json.loads(saved_path.read_text())
    current = config.to_dict()
    changed = {k for k in set(saved) | set(current) if saved.get(k) != current.get(k)} - RESUMABLE_CHANGES
    if changed:
        raise ConfigError(
            f"{out_dir} holds a run with different settings ({', '.join(sorted(changed))}); "
            "use a new --out-dir or the same settings to resume"
        )


def train_sr(config: SrTrainConfig, on_checkpoint: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Train (or resume) the network of ``config``; return the final metrics (also in metrics.json)."""
    torch.set_num_threads(config.num_threads)
    device = resolve_device(config.device)
    out_dir = Path(config.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    _check_resume(out_dir, config)

    torch.manual_seed(config.seed)
    net = FaceSrNet(scale=config.scale, n_feats=config.n_feats, n_blocks=config.n_blocks, res_scale=config.res_scale)
    if config.init_from:
        net = _initial_weights(config)
    net.to(device).train()
    recognizer = reference = None
    if config.identity_weight > 0:
        recognizer = identity_network(device, config.identity_recognizer)
        if config.identity_recognizer != "dlib-resnet":  # the target template is always the teacher's
            reference = identity_network(device, "dlib-resnet")
    optimizer = torch.optim.Adam(net.parameters(), lr=config.learning_rate, betas=(0.9, 0.99))
    start = 0
    history: list[dict[str, Any]] = []
    elapsed_before = 0.0
    checkpoint_path = out_dir / CHECKPOINT_NAME
    if checkpoint_path.is_file():
        state = torch.load(checkpoint_path, map_location="cpu", weights_only=True)
        net.load_state_dict(state["model"], strict=True)
        optimizer.load_state_dict(state["optimizer"])
        start = int(state["iteration"])
        metrics_path = out_dir / METRICS_NAME
        if metrics_path.is_file():
            saved = json.loads(metrics_path.read_text())
            history = list(saved.get("history", []))
            elapsed_before = float(saved.get("train_seconds", 0.0))
        log.info("resuming %s from iteration %d", checkpoint_path, start)

    train_crops, val_crops = _load_data(config)
    val_lr, val_hr = _validation_set(config, val_crops)
    lo, hi = config.lr_range()
    _write_json(out_dir / CONFIG_NAME, config.to_dict())

    losses: list[float] = []
    identity_losses: list[float] = []
    t0 = time.perf_counter()
    metrics: dict[str, Any] = {}
    bar = tqdm(
        range(start, config.iterations),
        initial=start,
        total=config.iterations,
        desc=f"face-sr x{config.scale}",
        file=sys.stderr,
        disable=not config.progress,
    )
    for iteration in bar:
        rng = _batch_rng(config.seed, iteration)
        lr_px = int(rng.integers(lo, hi + 1))
        lr, hr, _ = make_pairs(train_crops, config.scale, lr_px, config.batch_size, rng,
                               camera_model=config.camera_model)
        lr, hr = lr.to(device), hr.to(device)
        for group in optimizer.param_groups:
            group["lr"] = _learning_rate(config, iteration)
        output = net(lr)
        l1 = F.l1_loss(output, hr)
        loss = l1
        if recognizer is not None:
            identity = identity_loss(recognizer, output, hr, reference)
            loss = loss + config.identity_weight * identity
            identity_losses.append(float(identity.detach()))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(float(l1.detach()))
        bar.set_postfix(l1=f"{np.mean(losses[-20:]):.4f}",
                        **({"id": f"{np.mean(identity_losses[-20:]):.4f}"} if identity_losses else {}))

        done = iteration + 1
        if done % config.checkpoint_every == 0 or done == config.iterations:
            train_seconds = elapsed_before + time.perf_counter() - t0
            entry = {"iteration": done, "train_l1": float(np.mean(losses)), **_evaluate(net, val_lr, val_hr, device)}
            if identity_losses:
                entry["train_identity_loss"] = float(np.mean(identity_losses))
                entry.update(_evaluate_identity(net, recognizer, val_lr, val_hr, device, reference))
            history.append(entry)
            losses, identity_losses = [], []
            metrics = {
                **entry,
                "train_seconds": round(train_seconds, 1),
                "parameters": count_parameters(net),
                "device": str(device),
                "history": history,
            }
            torch.save(
                {"model": net.state_dict(), "optimizer": optimizer.state_dict(), "iteration": done},
                checkpoint_path.with_suffix(".tmp"),
            )
            checkpoint_path.with_suffix(".tmp").replace(checkpoint_path)
            _write_json(out_dir / METRICS_NAME, metrics)
            log.info("x%d iteration %d: %s", config.scale, done, entry)
            if on_checkpoint is not None:
                on_checkpoint(metrics)
    bar.close()

    if not metrics:  # nothing left to train: report what the last checkpoint recorded
        metrics = json.loads((out_dir / METRICS_NAME).read_text())
    save_face_sr(
        net.cpu().eval(),
        out_dir / f"face_sr_x{config.scale}.safetensors",
        metadata={"iterations": str(metrics["iteration"]), "seed": str(config.seed)},
    )
    return metrics


def add_train_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``train-sr`` options; each maps 1:1 onto a field of :class:`SrTrainConfig`."""
    defaults = SrTrainConfig(scale=4, out_dir="")
    parser.add_argument("--scale", type=int, choices=(2, 4, 8), required=True)
    parser.add_argument("--out-dir", required=True, help="run folder (checkpoint, config.json, metrics.json)")
    parser.add_argument("--iterations", type=int, default=defaults.iterations)
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size)
    parser.add_argument("--learning-rate", type=float, default=defaults.learning_rate)
    parser.add_argument("--final-learning-rate", type=float, default=defaults.final_learning_rate)
    parser.add_argument("--n-feats", type=int, default=defaults.n_feats)
    parser.add_argument("--n-blocks", type=int, default=defaults.n_blocks)
    parser.add_argument("--res-scale", type=float, default=defaults.res_scale)
    parser.add_argument("--lr-px-min", type=int, default=0, help="smallest LR face side (0: per-scale default)")
    parser.add_argument("--lr-px-max", type=int, default=0, help="largest LR face side (0: per-scale default)")
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--checkpoint-every", type=int, default=defaults.checkpoint_every)
    parser.add_argument("--val-images", type=int, default=defaults.val_images)
    parser.add_argument("--max-images", type=int, default=0, help="use only the first N training images (0: all)")
    parser.add_argument("--data-root", default="", help="folder holding peopleDevTrain.txt (default: LFW)")
    parser.add_argument("--crop-cache-dir", default="", help="where decoded crops are cached")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    parser.add_argument("--num-threads", type=int, default=defaults.num_threads)
    parser.add_argument("--no-progress", action="store_true", help="no tqdm bar on stderr")
    parser.add_argument("--identity-weight", type=float, default=defaults.identity_weight,
                        help="weight of the identity loss (1 - cosine of dlib ResNet templates; 0: L1 only)")
    parser.add_argument("--init-from", default="",
                        help="start from these face_sr_x{scale}.safetensors weights (fine-tuning)")
    parser.add_argument("--camera-model", choices=CAMERA_MODELS, default=defaults.camera_model,
                        help="cameras of the LR inputs: the benchmark's CCTV model (surveillance) or the broad "
                             "randomised family the recognizer was distilled on (family)")
    parser.add_argument("--identity-recognizer", choices=IDENTITY_RECOGNIZERS, default=defaults.identity_recognizer,
                        help="network whose template of the SR output the identity loss compares with dlib "
                             "ResNet's template of the HR face")


def config_from_args(args: argparse.Namespace) -> SrTrainConfig:
    return SrTrainConfig(
        scale=args.scale,
        out_dir=args.out_dir,
        iterations=args.iterations,
        batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        final_learning_rate=args.final_learning_rate,
        n_feats=args.n_feats,
        n_blocks=args.n_blocks,
        res_scale=args.res_scale,
        lr_px_min=args.lr_px_min,
        lr_px_max=args.lr_px_max,
        seed=args.seed,
        checkpoint_every=args.checkpoint_every,
        val_images=args.val_images,
        max_images=args.max_images,
        data_root=args.data_root,
        crop_cache_dir=args.crop_cache_dir,
        device=args.device,
        num_threads=args.num_threads,
        progress=not args.no_progress,
        identity_weight=args.identity_weight,
        init_from=args.init_from,
        init_from_sha256=sha256_of(Path(args.init_from)) if args.init_from else "",
        camera_model=args.camera_model,
        identity_recognizer=args.identity_recognizer,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m forensic_face.training.train_sr", description=__doc__)
    add_train_arguments(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    metrics = train_sr(config_from_args(args))
    sys.stdout.write(json.dumps({k: v for k, v in metrics.items() if k != "history"}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
