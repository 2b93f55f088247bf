"""Upsampler interface and registry, with the built-in bicubic upsampler."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch
import torch.nn.functional as F

from forensic_face.engine.check import check_image_batch


@runtime_checkable
class Upsampler(Protocol):
    """Magnifies ``(N,3,h,w)`` RGB in [0,1] to ``(N,3,h*scale,w*scale)`` in [0,1]."""

    name: str
    #: SHA-256 of the weights per scale ("" for parameter-free methods); recorded in every result.
    weights_sha256: dict[int, str]

    def upsample(self, images: torch.Tensor, scale: int) -> torch.Tensor: ...


class BicubicUpsampler:
    """Plain bicubic interpolation (the paper's "no SR" baseline)."""

    name = "bicubic"
    weights_sha256: dict[int, str] = {}

    def __init__(self, device: torch.device | None = None, batch_size: int = 64) -> None:
        self.device = device or torch.device("cpu")
        self.batch_size = batch_size

    def upsample(self, images: torch.Tensor, scale: int) -> torch.Tensor:
        check_image_batch(images)
        if scale == 1:
            return images
        out = F.interpolate(images, scale_factor=scale, mode="bicubic", align_corners=False, antialias=False)
        return out.clamp_(0.0, 1.0)
