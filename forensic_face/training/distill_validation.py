"""Held-out people of a distillation run (peopleDevTrain only, never peopleDevTest): the split of the training
faces and the rank-1 validation of teacher and student at each validation face width."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from forensic_face.training import recognizer_data as rd
from forensic_face.training.distill_nets import embed

VALIDATION_WIDTHS_PX = (16, 24, 32)


@dataclass(frozen=True)
class Split:
    train_rows: np.ndarray
    val_gallery_rows: np.ndarray
    val_probe_rows: np.ndarray


def split_rows(faces: rd.FaceSet, val_people: int, max_images: int) -> Split:
    """Hold out the last ``val_people`` identities with >= 2 images (first image: portrait, others: probes)."""
    counts = np.bincount(faces.identities)
    order: list[int] = []
    for identity in faces.identities:
        if not order or order[-1] != identity:
            order.append(int(identity))
    multi = [i for i in order if counts[i] >= 2]
    held = set(multi[-val_people:]) if val_people else set()
    rows = np.arange(len(faces))
    held_mask = np.isin(faces.identities, list(held))
    train_rows = rows[~held_mask]
    if max_images:
        train_rows = train_rows[:max_images]
    gallery, probes = [], []
    seen: set[int] = set()
    for row in rows[held_mask]:
        identity = int(faces.identities[row])
        (probes if identity in seen else gallery).append(int(row))
        seen.add(identity)
    return Split(train_rows, np.array(gallery, np.int64), np.array(probes, np.int64))


@dataclass(frozen=True)
class ValidationSet:
    gallery_chips: torch.Tensor
    gallery_identities: torch.Tensor
    probe_identities: torch.Tensor
    probe_hr_chips: torch.Tensor
    probe_lr_chips: dict[int, torch.Tensor]


def validation_set(faces: rd.FaceSet, split: Split, error: rd.LandmarkError, seed: int) -> ValidationSet:
    """Held-out people: portraits at full resolution, probes at each validation width through a family camera,
    single hypothesis (no blur), bicubic at the largest scale the engine would use."""
    from forensic_face.engine.upsamplers import BicubicUpsampler

    g, p = split.val_gallery_rows, split.val_probe_rows
    gallery = rd.full_resolution_chips(faces, g, [False] * len(g))
    probe_hr = rd.full_resolution_chips(faces, p, [False] * len(p))
    lr: dict[int, torch.Tensor] = {}
    upsampler = BicubicUpsampler()
    for width in VALIDATION_WIDTHS_PX:
        rng = np.random.default_rng([seed, 10**6, width])
        scale = max(rd.engine_scales(width))
        lr[width] = rd.make_lr_chips(faces, p, np.zeros(len(p), bool), width, scale, upsampler,
                                     torch.zeros(len(p)), rng, error)
    return ValidationSet(gallery, torch.from_numpy(faces.identities[g]), torch.from_numpy(faces.identities[p]),
                         probe_hr, lr)


def teacher_validation(teacher: torch.nn.Module, val: ValidationSet) -> dict[str, torch.Tensor]:
    """The teacher's templates of the validation chips (its portraits are also the student's gallery)."""
    return {"gallery": embed(teacher, val.gallery_chips), "hr": embed(teacher, val.probe_hr_chips),
            **{f"lr{w}": embed(teacher, c) for w, c in val.probe_lr_chips.items()}}


def rank1(probe: torch.Tensor, gallery: torch.Tensor, probe_ids: torch.Tensor, gallery_ids: torch.Tensor) -> float:
    best = (probe @ gallery.T).argmax(dim=1)
    return float((gallery_ids[best] == probe_ids).float().mean())


def validate(student: torch.nn.Module, teacher_val: dict[str, torch.Tensor], val: ValidationSet) -> dict[str, float]:
    gallery_s = embed(student, val.gallery_chips)
    out: dict[str, float] = {}
    ids = (val.probe_identities, val.gallery_identities)
    out["val_rank1_hr_teacher"] = rank1(teacher_val["hr"], teacher_val["gallery"], *ids)
    out["val_rank1_hr_student"] = rank1(embed(student, val.probe_hr_chips), gallery_s, *ids)
    for width, chips in val.probe_lr_chips.items():
        probe_s = embed(student, chips)
        out[f"val_rank1_{width}px_teacher"] = rank1(teacher_val[f"lr{width}"], teacher_val["gallery"], *ids)
        out[f"val_rank1_{width}px_student"] = rank1(probe_s, gallery_s, *ids)
        out[f"val_rank1_{width}px_student_vs_teacher_gallery"] = rank1(probe_s, teacher_val["gallery"], *ids)
    return {k: round(v, 4) for k, v in out.items()}
