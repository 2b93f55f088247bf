"""Entry checks for tensors, in the spirit of kornia's KORNIA_CHECK_SHAPE."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from forensic_face.engine.errors import ShapeError


def check_shape(x: torch.Tensor, dims: Sequence[str], name: str = "input") -> None:
    """Raise :class:`ShapeError` unless ``x`` matches ``dims``.

    ``dims`` holds one entry per axis: a letter (any size) or a number as a string (that exact size).

    >>> check_shape(torch.zeros(2, 3, 8, 8), ["B", "3", "H", "W"])
    """
    if not isinstance(x, torch.Tensor):
        raise ShapeError(f"{name}: expected a torch.Tensor, got {type(x).__name__}")
    if x.dim() != len(dims):
        raise ShapeError(f"{name}: expected shape {list(dims)}, got {tuple(x.shape)}")
    for axis, (size, want) in enumerate(zip(x.shape, dims)):
        if want.isdigit() and size != int(want):
            raise ShapeError(f"{name}: axis {axis} must be {want}, got shape {tuple(x.shape)}")


def check_image_batch(x: torch.Tensor, name: str = "images") -> None:
    """Images are float ``(N,3,H,W)`` RGB in [0, 1]."""
    check_shape(x, ["N", "3", "H", "W"], name)
    if not x.is_floating_point():
        raise ShapeError(f"{name}: expected a floating point tensor in [0, 1], got {x.dtype}")
