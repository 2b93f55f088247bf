"""The recognizers by name. Backends register themselves when the package imports them; this module knows none
of them, so nothing here imports a backend."""

from __future__ import annotations

from collections.abc import Callable

import torch

from forensic_face.engine.errors import ConfigError
from forensic_face.engine.recognizers.base import Recognizer

RecognizerFactory = Callable[..., Recognizer]
_REGISTRY: dict[str, RecognizerFactory] = {}


def register_recognizer(name: str, factory: RecognizerFactory) -> None:
    """Register ``factory(device=, batch_size=, model_path=, precision=) -> Recognizer``; duplicates are rejected."""
    if not name or not isinstance(name, str):
        raise ConfigError(f"recognizer name must be a non-empty string, got {name!r}")
    if name in _REGISTRY:
        raise ConfigError(f"recognizer {name!r} is already registered")
    _REGISTRY[name] = factory


def available_recognizers() -> list[str]:
    """Names accepted by :func:`create_recognizer`."""
    return sorted(_REGISTRY)


def create_recognizer(name: str, device: torch.device | str, batch_size: int = 64, model_path: str | None = None,
                      precision: str = "fp32", flip_test: bool = False) -> Recognizer:
    """Build the recognizer registered as ``name`` on ``device``.

    ``model_path`` selects the model file for backends that take one (required for "onnx-arcface" and
    "facenet-inception"; "dlib-resnet" defaults to the file shipped in ``face_recognition_models``).
    ``flip_test`` makes every template the sum of the chip's and its mirror image's (see ``base``).
    """
    if name not in _REGISTRY:
        raise ConfigError(f"unknown recognizer {name!r}; available: {', '.join(sorted(_REGISTRY))}")
    recognizer = _REGISTRY[name](device=torch.device(device), batch_size=batch_size, model_path=model_path,
                                 precision=precision)
    recognizer.flip_test = bool(flip_test)
    return recognizer
