"""Chunked execution on the device, shrinking the chunk when the GPU runs out of memory."""

from __future__ import annotations

import logging
from collections.abc import Callable

import torch

from forensic_face.engine.errors import ForensicFaceError

log = logging.getLogger(__name__)


class OutOfMemory(ForensicFaceError):
    """Even one item at a time does not fit on the device."""


def map_chunks(fn: Callable[..., torch.Tensor], inputs: tuple[torch.Tensor, ...], batch_size: int) -> torch.Tensor:
    """``torch.cat([fn(*chunks) for chunks in zip(*(x.split(batch_size) for x in inputs))])``: the inputs
    share their first axis. On CUDA out-of-memory the chunk is halved and retried, down to one item, before
    :class:`OutOfMemory` tells the user to switch to the CPU."""
    count = inputs[0].shape[0]
    if count == 0 or any(x.shape[0] != count for x in inputs):
        raise ValueError("map_chunks needs inputs with the same, non-zero first axis")
    outputs: list[torch.Tensor] = []
    start = 0
    size = max(1, batch_size)
    while start < count:
        chunk = tuple(x[start:start + size] for x in inputs)
        try:
            outputs.append(fn(*chunk))
        except torch.cuda.OutOfMemoryError:
            torch.cuda.empty_cache()
            if size == 1:
                raise OutOfMemory(
                    "the GPU ran out of memory even one image at a time; choose device 'cpu' in the settings"
                ) from None
            size = max(1, size // 2)
            log.warning("GPU out of memory; retrying with batches of %d", size)
            continue
        start += chunk[0].shape[0]
    return torch.cat(outputs, dim=0)
