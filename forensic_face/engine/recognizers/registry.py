"""The recognizers by name. Backends register themselves when the package imports them; this module knows none
of them, so nothing here imports a backend."""

from __future__ import annotations

from collections.abc import Callable

import torch

from forensic_face.engine.errors import ConfigError
from forensic_face.engine.recognizers.base import Recognizer
from forensic_face.engine.recognizers.ensemble import RecognizerEnsemble, ensemble_members

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
    """The registered networks; :func:`create_recognizer` also takes ensembles of them (``"a+b"``)."""
    return sorted(_REGISTRY)


def recognizer_members(name: str) -> list[str]:
    """The registered networks a recognizer setting names (one, or an ensemble's members); an unknown name is a
    :class:`ConfigError` listing the available ones."""
    members = ensemble_members(name)
    unknown = [m for m in members if m not in _REGISTRY]
    if unknown:
        raise ConfigError(f"unknown recognizer {unknown[0]!r}; available: {', '.join(sorted(_REGISTRY))}, or several "
                          f"joined by '+'")
    return members


def create_recognizer(name: str, device: torch.device | str, batch_size: int = 64, model_path: str | None = None,
                      precision: str = "fp32", flip_test: bool = False) -> Recognizer:
    """Build the recognizer registered as ``name`` on ``device``, or the ensemble of the registered networks
    ``name`` joins with ``+`` (``"dlib-resnet-lr+faceres"``, see :mod:`.ensemble`).

    ``model_path`` selects the model file for backends that take one (required for "onnx-arcface" and
    "facenet-inception"; "dlib-resnet" defaults to the file shipped in ``face_recognition_models``); an
    ensemble takes none, since it would be ambiguous which member it replaces.
    ``flip_test`` makes every template the sum of the chip's and its mirror image's (see ``base``).
    """
    members = recognizer_members(name)
    if len(members) > 1 and model_path:
        raise ConfigError(f"a model file ({model_path}) cannot be given for the ensemble {name!r}: it would be "
                          "ambiguous which member it replaces; use the shipped weights or a single recognizer")
    built = []
    for member in members:
        recognizer = _REGISTRY[member](device=torch.device(device), batch_size=batch_size, model_path=model_path,
                                       precision=precision)
        recognizer.flip_test = bool(flip_test)
        built.append(recognizer)
    return built[0] if len(built) == 1 else RecognizerEnsemble(built)
