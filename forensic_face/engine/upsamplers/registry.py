"""The upsamplers by name. Backends register themselves when the package imports them; this module knows none
of them, so nothing here imports a backend."""

from __future__ import annotations

from collections.abc import Callable

import torch

from forensic_face.engine.errors import ConfigError
from forensic_face.engine.upsamplers.base import Upsampler

UpsamplerFactory = Callable[..., Upsampler]
_REGISTRY: dict[str, UpsamplerFactory] = {}


def register_upsampler(name: str, factory: UpsamplerFactory) -> None:
    """Register a factory ``(device=..., batch_size=...) -> Upsampler``; duplicate names are rejected."""
    if name in _REGISTRY:
        raise ConfigError(f"upsampler {name!r} is already registered")
    _REGISTRY[name] = factory


def available_upsamplers() -> list[str]:
    """Names accepted by :func:`create_upsampler`."""
    return sorted(_REGISTRY)


def create_upsampler(name: str, device: torch.device, batch_size: int = 64) -> Upsampler:
    """Build the upsampler registered as ``name`` on ``device``."""
    if name not in _REGISTRY:
        raise ConfigError(f"unknown upsampler {name!r}; available: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name](device=device, batch_size=batch_size)
