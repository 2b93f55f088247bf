"""Low-resolution distillation of dlib's ResNet into ``dlib-resnet-lr`` (``forensic-face train-recognizer``).

Teacher: the frozen dlib ResNet on the full-resolution chip; its templates of every training face (plain and
mirrored) are computed once. Student: initialised from the same network (frozen affine layers folded into the
convolutions, every weight trainable). Each iteration the student sees

* ``batch_lr`` low-resolution chips from a broad randomised camera family, made the way the engine feeds the
  recognizer (:func:`forensic_face.training.recognizer_data.make_lr_batch`), and must put each on the teacher's
  full-resolution template of the same face (``1 - cos`` after removing the teacher's mean template, see
  :func:`distillation_loss`);
* ``batch_hr`` full-resolution chips, which must stay on the teacher's templates, so a high-resolution gallery
  is matched as well as today (weight ``hr_weight``);
* a relational term: the pairwise cosine similarities inside the low-resolution batch should be those of the
  teacher's templates of the same faces (weight ``relational_weight``);
* optionally an identity term (weight ``identity_weight``): a softmax over every training person's prototype
  (the mean of the teacher's full-resolution templates of that person) must pick the right person for each
  low-resolution chip (see :func:`identity_prototypes`). A low-resolution template cannot reach its teacher
  template exactly; this term spends what the network can do on the directions that tell people apart.

Seeded and resumable: batch ``i`` is a pure function of ``numpy.random.default_rng([seed, i])``; batches are
made in a background worker process while the network trains. A checkpoint (``checkpoint_last.pt``) with
``config.json`` and ``metrics.json`` beside it is written every ``checkpoint_every`` iterations, with a
validation on held-out peopleDevTrain people (never peopleDevTest): rank-1 of low-resolution probes (16, 24,
32 px) against full-resolution portraits, for the teacher, the student, and the student's probes against the
teacher's portraits. The finished network is exported as ``dlib_resnet_lr.safetensors``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from forensic_face.engine import ConfigError, resolve_device, sha256_of
from forensic_face.paths import atomic_write, cache_dir, lfw_dir
from forensic_face.training import data_pack as dp
from forensic_face.training import recognizer_data as rd
from forensic_face.training.distill_loss import distillation_loss, identity_prototypes
from forensic_face.training.distill_nets import student_network, teacher_network, teacher_templates
from forensic_face.training.distill_validation import (
    split_rows,
    teacher_validation,
    validate,
    validation_set,
)

log = logging.getLogger(__name__)

CHECKPOINT_NAME = "checkpoint_last.pt"
CONFIG_NAME = "config.json"
METRICS_NAME = "metrics.json"
EXPORT_NAME = "dlib_resnet_lr.safetensors"
RESUMABLE_CHANGES = frozenset({"iterations", "checkpoint_every", "num_threads", "device", "progress", "num_workers"})


@dataclass(frozen=True)
class RecognizerTrainConfig:
    """Everything a distillation run depends on (written to ``config.json``)."""

    out_dir: str
    iterations: int = 3000
    batch_lr: int = 32
    batch_hr: int = 16
    learning_rate: float = 5e-5
    final_learning_rate: float = 1e-6
    warmup_iterations: int = 200
    hr_weight: float = 1.0
    relational_weight: float = 2.0
    #: weight of the identity term (0 = off, the recipe of the first shipped run)
    identity_weight: float = 0.0
    #: softmax temperature of the identity term, on centred cosine similarities
    identity_temperature: float = 0.1
    face_px_min: int = 12
    face_px_max: int = 48
    #: upsamplers the engine may feed the recognizer with; each batch uses one
    upsamplers: tuple[str, ...] = ("bicubic", "face-sr")
    #: a ``dlib_resnet_lr.safetensors`` export to start the student from ("" = dlib's network), so a CPU run
    #: can continue an earlier one (e.g. the shipped weights) instead of starting over
    init_from: str = ""
    seed: int = 0
    checkpoint_every: int = 250
    val_people: int = 150  # held out: the last peopleDevTrain people with >= 2 images
    max_images: int = 0  # 0 = every peopleDevTrain image not held out
    data_root: str = ""
    data_cache_dir: str = ""  # "" = <cache_dir>/recognizer_data
    #: a folder made by ``forensic-face pack-recognizer-data``: faces and teacher outputs without LFW or the
    #: teacher's weights (a borrowed GPU machine); "" = LFW and the teacher as usual
    data_pack: str = ""
    device: str = "auto"
    num_threads: int = 2
    num_workers: int = 1
    progress: bool = True

    def __post_init__(self) -> None:
        if self.iterations < 1 or self.batch_lr < 2 or self.batch_hr < 0 or self.checkpoint_every < 1:
            raise ConfigError("iterations and checkpoint_every must be >= 1, batch_lr >= 2, batch_hr >= 0")
        if not 4 <= self.face_px_min <= self.face_px_max:
            raise ConfigError(f"face width range must satisfy 4 <= min <= max, got {self.face_px_min}..{self.face_px_max}")
        if not self.upsamplers:
            raise ConfigError("at least one upsampler is needed")
        if self.identity_weight < 0 or self.identity_temperature <= 0:
            raise ConfigError("identity_weight must be >= 0 and identity_temperature > 0")

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["upsamplers"] = list(self.upsamplers)
        return data


def learning_rate_at(config: RecognizerTrainConfig, iteration: int) -> float:
    """Linear warm-up, then cosine decay to ``final_learning_rate``."""
    if iteration < config.warmup_iterations:
        return config.learning_rate * (iteration + 1) / config.warmup_iterations
    progress = min(1.0, (iteration - config.warmup_iterations) / max(1, config.iterations - config.warmup_iterations))
    cosine = 0.5 * (1.0 + math.cos(math.pi * progress))
    return config.final_learning_rate + (config.learning_rate - config.final_learning_rate) * cosine


# ---------------------------------------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------------------------------------


def load_faces(config: RecognizerTrainConfig) -> rd.FaceSet:
    from forensic_face.engine import MtcnnDetector
    from forensic_face.training.sr_data import lfw_image_paths

    root = Path(config.data_root) if config.data_root else lfw_dir()
    paths = lfw_image_paths(root, "peopleDevTrain.txt")
    folder = Path(config.data_cache_dir) if config.data_cache_dir else cache_dir() / "recognizer_data"
    return rd.prepare_faces(paths, folder, MtcnnDetector(torch.device("cpu")))


def build_upsamplers(names: tuple[str, ...]) -> dict[str, Any]:
    from forensic_face.engine.upsamplers import create_upsampler

    return {name: create_upsampler(name, torch.device("cpu"), 64) for name in names}


class BatchStream(torch.utils.data.IterableDataset):  # type: ignore[type-arg]
    """Batches ``start..iterations-1``; batch ``i`` depends only on ``(seed, i)``. Made in a worker process."""

    def __init__(self, faces: rd.FaceSet, rows: np.ndarray, error: rd.LandmarkError,
                 config: RecognizerTrainConfig, start: int) -> None:
        self.faces, self.rows, self.error, self.config, self.start = faces, rows, error, config, start

    def __iter__(self) -> Iterator[dict[str, Any]]:
        torch.set_num_threads(1)
        upsamplers = build_upsamplers(self.config.upsamplers)
        cfg = self.config
        # Worker k of n makes batches start+k, start+k+n, ...; the DataLoader takes one from each worker in
        # turn, so the loop still sees every iteration once and in order.
        worker = torch.utils.data.get_worker_info()
        first, step = (worker.id, worker.num_workers) if worker is not None else (0, 1)
        for iteration in range(self.start + first, cfg.iterations, step):
            rng = np.random.default_rng([cfg.seed, iteration])
            batch = rd.make_lr_batch(self.faces, self.rows, rng, self.error, upsamplers,
                                     (cfg.face_px_min, cfg.face_px_max), cfg.batch_lr)
            hr_rows = self.rows[rng.integers(len(self.rows), size=cfg.batch_hr)]
            hr_mirrored = rng.random(cfg.batch_hr) < 0.5
            hr_chips = (rd.full_resolution_chips(self.faces, hr_rows, hr_mirrored) if cfg.batch_hr
                        else torch.zeros(0, 3, 150, 150))
            yield {"iteration": iteration, "lr_chips": batch.chips, "lr_rows": torch.from_numpy(batch.indices),
                   "lr_mirrored": torch.from_numpy(batch.mirrored), "hr_chips": hr_chips,
                   "hr_rows": torch.from_numpy(hr_rows), "hr_mirrored": torch.from_numpy(hr_mirrored),
                   "face_px": batch.face_px, "scale": batch.scale, "upsampler": batch.upsampler}


# ---------------------------------------------------------------------------------------------------------
# Data pack
# ---------------------------------------------------------------------------------------------------------


def write_data_pack(out_dir: Path, config: RecognizerTrainConfig, quality: int = dp.DEFAULT_WEBP_QUALITY,
                    region_enlarge: float = dp.DEFAULT_REGION_ENLARGE) -> dict[str, Any]:
    """Pack the faces and the teacher's outputs a run with ``config``'s seed and held-out people reads, for a
    machine without LFW or the teacher's weights (:mod:`forensic_face.training.data_pack`); return ``pack.json``."""
    from forensic_face.engine import MtcnnDetector

    source = load_faces(config)
    split = split_rows(source, config.val_people, config.max_images)
    faces_path = dp.write_faces(out_dir, source, quality, region_enlarge)
    # MTCNN's error is a property of the detector on real frames: measured on the LFW images, as a run
    # without a pack measures it.
    error = rd.measure_landmark_error(source, split.train_rows, MtcnnDetector(torch.device("cpu")),
                                      np.random.default_rng([config.seed, 7]))
    faces = dp.read_faces(faces_path)  # what a run from the pack will see
    teacher = teacher_network()
    targets = teacher_templates(faces, split.train_rows, teacher)
    teacher_val = teacher_validation(teacher, validation_set(faces, split, error, config.seed))
    return dp.finish_pack(out_dir, targets, teacher_val, error, dp.pack_settings(config),
                          data="LFW deep-funneled, peopleDevTrain.txt people only", images=len(faces),
                          train_images=int(len(split.train_rows)), webp_quality=int(quality),
                          region_enlarge=float(region_enlarge))


# ---------------------------------------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------------------------------------


def _write_json(path: Path, data: dict[str, Any]) -> None:
    with atomic_write(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True))


def _check_resume(out_dir: Path, config: RecognizerTrainConfig) -> None:
    saved_path = out_dir / CONFIG_NAME
    if not saved_path.is_file():
        return
    # Settings added after a run started hold their default there (e.g. identity_weight 0).
    saved = {**RecognizerTrainConfig(out_dir="").to_dict(), **json.loads(saved_path.read_text()).get("train", {})}
    current = config.to_dict()
    changed = {k for k in set(saved) | set(current) if saved.get(k) != current.get(k)} - RESUMABLE_CHANGES
    if changed:
        raise ConfigError(f"{out_dir} holds a run with different settings ({', '.join(sorted(changed))}); "
                          "use a new --out-dir or the same settings to resume")


def export_student(student: torch.nn.Module, path: Path, metadata: dict[str, str]) -> None:
    """The shipped format: the folded network's state dict as safetensors (float32)."""
    from safetensors.torch import save_file

    tensors = {k: v.detach().float().contiguous().cpu() for k, v in student.state_dict().items()}
    with atomic_write(path) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)


def train_recognizer(config: RecognizerTrainConfig, faces: rd.FaceSet | None = None,
                     landmark_error: rd.LandmarkError | None = None) -> dict[str, Any]:
    """Train (or resume) the student of ``config``; return the final metrics (also in metrics.json).

    ``faces`` and ``landmark_error`` replace the LFW faces and the measured MTCNN error (unit tests)."""
    torch.set_num_threads(config.num_threads)
    device = resolve_device(config.device)
    out_dir = Path(config.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    _check_resume(out_dir, config)
    torch.manual_seed(config.seed)

    pack = None
    if faces is None and config.data_pack:
        pack = dp.load_data_pack(Path(config.data_pack), dp.pack_settings(config))
        faces = pack.faces
    faces = faces if faces is not None else load_faces(config)
    split = split_rows(faces, config.val_people, config.max_images)
    if len(split.train_rows) < config.batch_lr:
        raise ConfigError(f"only {len(split.train_rows)} training images; need at least batch_lr={config.batch_lr}")
    config_path = out_dir / CONFIG_NAME
    if landmark_error is not None:
        error = landmark_error
    elif config_path.is_file():
        error = rd.LandmarkError(**json.loads(config_path.read_text())["landmark_error"])
    elif pack is not None:
        error = pack.landmark_error
    else:
        from forensic_face.engine import MtcnnDetector

        error = rd.measure_landmark_error(faces, split.train_rows, MtcnnDetector(torch.device("cpu")),
                                          np.random.default_rng([config.seed, 7]))
        log.info("MTCNN error on 24 px faces: %s", error)
    # The weights a continued run started from, hashed when it first started: the file may be replaced later
    # (shipping a run that continued the shipped weights overwrites them).
    started_from = (json.loads(config_path.read_text()).get("init_from_sha256", "") if config_path.is_file()
                    else "") or (sha256_of(config.init_from) if config.init_from else "")
    _write_json(config_path, {"train": config.to_dict(), "landmark_error": dataclasses.asdict(error),
                              "init_from_sha256": started_from,
                              **({"data_pack_sha256": pack.meta["sha256"]} if pack is not None else {}),
                              "train_images": int(len(split.train_rows)),
                              "val_portraits": int(len(split.val_gallery_rows)),
                              "val_probes": int(len(split.val_probe_rows))})

    val = validation_set(faces, split, error, config.seed)
    if pack is not None:  # no teacher network here: its outputs came with the pack
        targets, teacher_val = pack.targets, pack.teacher_val
    else:
        teacher = teacher_network().to(device, memory_format=torch.channels_last)
        targets = teacher_templates(faces, split.train_rows, teacher, out_dir / "teacher_templates.pt")
        teacher_val = teacher_validation(teacher, val)
    centre = targets[torch.from_numpy(split.train_rows)].reshape(-1, targets.shape[-1]).mean(0).to(device)
    prototypes, labels = identity_prototypes(targets, faces.identities, split.train_rows, centre)
    prototypes = prototypes.to(device)

    student = student_network(config.init_from).to(device, memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(student.parameters(), lr=config.learning_rate)
    start, history, elapsed_before = 0, [], 0.0
    checkpoint_path = out_dir / CHECKPOINT_NAME
    if checkpoint_path.is_file():
        state = torch.load(checkpoint_path, map_location="cpu", weights_only=True)
        student.load_state_dict(state["model"], strict=True)
        optimizer.load_state_dict(state["optimizer"])
        start = int(state["iteration"])
        saved = json.loads((out_dir / METRICS_NAME).read_text()) if (out_dir / METRICS_NAME).is_file() else {}
        history = list(saved.get("history", []))
        elapsed_before = float(saved.get("train_seconds", 0.0))
        log.info("resuming %s from iteration %d", checkpoint_path, start)
    else:
        entry = {"iteration": 0, **validate(student, teacher_val, val)}
        history.append(entry)
        log.info("before training: %s", entry)

    stream = BatchStream(faces, split.train_rows, error, config, start)
    loader = torch.utils.data.DataLoader(stream, batch_size=None, num_workers=config.num_workers,
                                         prefetch_factor=4 if config.num_workers else None,
                                         persistent_workers=False)
    t0 = time.perf_counter()
    parts_log: list[dict[str, float]] = []
    metrics: dict[str, Any] = {}
    bar = tqdm(total=config.iterations, initial=start, desc="dlib-resnet-lr", file=sys.stderr,
               disable=not config.progress)
    for batch in loader:
        iteration = int(batch["iteration"])
        for group in optimizer.param_groups:
            group["lr"] = learning_rate_at(config, iteration)
        lr_chips = batch["lr_chips"].to(device)
        hr_chips = batch["hr_chips"].to(device)
        chips = torch.cat([lr_chips, hr_chips]).contiguous(memory_format=torch.channels_last)
        out = student(chips)
        n_lr = lr_chips.shape[0]
        target_lr = targets[batch["lr_rows"], batch["lr_mirrored"].long()].to(device)
        target_hr = targets[batch["hr_rows"], batch["hr_mirrored"].long()].to(device)
        loss, parts = distillation_loss(out[:n_lr], target_lr, out[n_lr:], target_hr, config.hr_weight,
                                        config.relational_weight, centre, prototypes,
                                        labels[batch["lr_rows"]].to(device), config.identity_weight,
                                        config.identity_temperature)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        parts_log.append(parts)
        bar.update(1)
        bar.set_postfix(lr_cos=f"{np.mean([p['lr'] for p in parts_log[-50:]]):.4f}")

        done = iteration + 1
        if done % config.checkpoint_every == 0 or done == config.iterations:
            entry = {"iteration": done,
                     **{f"train_{k}": round(float(np.mean([p[k] for p in parts_log])), 5) for k in parts_log[0]},
                     **validate(student, teacher_val, val)}
            parts_log = []
            history.append(entry)
            metrics = {**entry, "train_seconds": round(elapsed_before + time.perf_counter() - t0, 1),
                       "device": str(device), "history": history}
            torch.save({"model": student.state_dict(), "optimizer": optimizer.state_dict(), "iteration": done},
                       checkpoint_path.with_suffix(".tmp"))
            checkpoint_path.with_suffix(".tmp").replace(checkpoint_path)
            _write_json(out_dir / METRICS_NAME, metrics)
            log.info("iteration %d: %s", done, {k: v for k, v in entry.items() if k != "iteration"})
    bar.close()
    if not metrics:
        metrics = json.loads((out_dir / METRICS_NAME).read_text())
    export_student(student.cpu().eval(), out_dir / EXPORT_NAME,
                   {"iterations": str(metrics.get("iteration", start)), "seed": str(config.seed),
                    "teacher": "dlib_face_recognition_resnet_model_v1.dat"})
    return metrics


def add_train_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``train-recognizer`` options; each maps 1:1 onto a field of :class:`RecognizerTrainConfig`."""
    d = RecognizerTrainConfig(out_dir="")
    parser.add_argument("--out-dir", required=True, help="run folder (checkpoint, config.json, metrics.json)")
    parser.add_argument("--iterations", type=int, default=d.iterations)
    parser.add_argument("--batch-lr", type=int, default=d.batch_lr, help="low-resolution chips per iteration")
    parser.add_argument("--batch-hr", type=int, default=d.batch_hr, help="full-resolution chips per iteration")
    parser.add_argument("--learning-rate", type=float, default=d.learning_rate)
    parser.add_argument("--final-learning-rate", type=float, default=d.final_learning_rate)
    parser.add_argument("--warmup-iterations", type=int, default=d.warmup_iterations)
    parser.add_argument("--hr-weight", type=float, default=d.hr_weight)
    parser.add_argument("--relational-weight", type=float, default=d.relational_weight)
    parser.add_argument("--identity-weight", type=float, default=d.identity_weight,
                        help="weight of the identity term: softmax over the training people's teacher prototypes")
    parser.add_argument("--identity-temperature", type=float, default=d.identity_temperature)
    parser.add_argument("--face-px-min", type=int, default=d.face_px_min)
    parser.add_argument("--face-px-max", type=int, default=d.face_px_max)
    parser.add_argument("--upsamplers", default=",".join(d.upsamplers), help="comma-separated upsampler names")
    parser.add_argument("--init-from", default="",
                        help="start the student from this dlib_resnet_lr.safetensors export (default: dlib's network)")
    parser.add_argument("--seed", type=int, default=d.seed)
    parser.add_argument("--checkpoint-every", type=int, default=d.checkpoint_every)
    parser.add_argument("--val-people", type=int, default=d.val_people)
    parser.add_argument("--max-images", type=int, default=0, help="use only the first N training images (0: all)")
    parser.add_argument("--data-root", default="", help="folder holding peopleDevTrain.txt (default: LFW)")
    parser.add_argument("--data-cache-dir", default="", help="where decoded faces and detections are cached")
    parser.add_argument("--data-pack", default="",
                        help="train from a folder made by `forensic-face pack-recognizer-data` (no LFW or teacher "
                             "weights needed, e.g. on a borrowed GPU machine)")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    parser.add_argument("--num-threads", type=int, default=d.num_threads)
    parser.add_argument("--num-workers", type=int, default=d.num_workers, help="batch-making processes (0: inline)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")


def config_from_args(args: argparse.Namespace) -> RecognizerTrainConfig:
    return RecognizerTrainConfig(
        out_dir=args.out_dir, iterations=args.iterations, batch_lr=args.batch_lr, batch_hr=args.batch_hr,
        learning_rate=args.learning_rate, final_learning_rate=args.final_learning_rate,
        warmup_iterations=args.warmup_iterations, hr_weight=args.hr_weight,
        relational_weight=args.relational_weight, identity_weight=args.identity_weight,
        identity_temperature=args.identity_temperature, face_px_min=args.face_px_min, face_px_max=args.face_px_max,
        upsamplers=tuple(u.strip() for u in args.upsamplers.split(",") if u.strip()), init_from=args.init_from,
        seed=args.seed,
        checkpoint_every=args.checkpoint_every, val_people=args.val_people, max_images=args.max_images,
        data_root=args.data_root, data_cache_dir=args.data_cache_dir, data_pack=args.data_pack, device=args.device,
        num_threads=args.num_threads, num_workers=args.num_workers, progress=not args.no_progress,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m forensic_face.training.train_recognizer", description=__doc__)
    add_train_arguments(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    metrics = train_recognizer(config_from_args(args))
    sys.stdout.write(json.dumps({k: v for k, v in metrics.items() if k != "history"}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
