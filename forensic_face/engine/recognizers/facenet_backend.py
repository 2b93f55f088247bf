"""FaceNet (facenet_pytorch.InceptionResnetV1) with a user-supplied state-dict file, 160x160, box alignment.

The project ships no FaceNet weights and never downloads any: the user points ``recognizer_model_path`` at a
state dict of :class:`facenet_pytorch.InceptionResnetV1` (``torch.save(model.state_dict(), path)``, or a
``.safetensors`` file with the same keys). A classifier head (``logits.*``) in the file is ignored because only
embeddings are used; every other key must match exactly (strict loading).
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from forensic_face.engine.errors import ModelFileError
from forensic_face.engine.recognizers.base import AlignedRecognizer
from forensic_face.engine.recognizers.registry import register_recognizer
from forensic_face.engine.weights import sha256_of

log = logging.getLogger(__name__)

EXPECTED_FORMAT = ("a PyTorch state dict (.pt/.pth, or .safetensors) of facenet_pytorch.InceptionResnetV1 "
                   "with keys such as 'conv2d_1a.conv.weight' and 'last_bn.running_mean'")


def _one_line(exc: BaseException, limit: int = 400) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= limit else text[:limit] + "..."


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path), device="cpu")
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file becomes one typed, explained error
        raise ModelFileError(f"{path}: cannot be read as a state dict ({type(exc).__name__}: {_one_line(exc)}); "
                             f"expected {EXPECTED_FORMAT}") from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ModelFileError(f"{path}: holds a {type(state).__name__}, not a dict of tensors; expected {EXPECTED_FORMAT}")
    return state


def load_inception_resnet_v1(model_path: str | Path | None) -> tuple[torch.nn.Module, str]:
    """Build InceptionResnetV1 (embedding mode) from ``model_path``; return the eval-mode model and file SHA-256."""
    if model_path is None:
        raise ModelFileError(f"recognizer 'facenet-inception' needs a model file: set the recognizer model path to "
                             f"{EXPECTED_FORMAT}")
    path = Path(model_path)
    if not path.is_file():
        raise ModelFileError(f"{path}: file not found; expected {EXPECTED_FORMAT}")
    from facenet_pytorch import InceptionResnetV1

    state = _read_state_dict(path)
    head = [k for k in state if k.startswith("logits.")]
    if head:
        log.info("%s: ignoring classifier head %s (embeddings only)", path, head)
        state = {k: v for k, v in state.items() if not k.startswith("logits.")}
    model = InceptionResnetV1(pretrained=None, classify=False)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ModelFileError(f"{path}: does not match InceptionResnetV1 ({_one_line(exc)}); "
                             f"expected {EXPECTED_FORMAT}") from None
    return model.eval(), sha256_of(path)


class FacenetRecognizer(AlignedRecognizer):
    """InceptionResnetV1 embeddings (512-D) of the 1.3x face crop resized to 160x160."""

    name = "facenet-inception"
    input_size = 160
    embedding_dim = 512
    alignment = "box"

    def __init__(self, device: torch.device, batch_size: int = 64, model_path: str | None = None,
                 precision: str = "fp32") -> None:
        super().__init__(device, batch_size, precision)
        model, digest = load_inception_resnet_v1(model_path)
        self.model = model.to(device=self.device, dtype=self.compute_dtype)
        self.weights_sha256 = digest
        self.model_path = Path(model_path) if model_path else None

    def _forward(self, chips: torch.Tensor) -> torch.Tensor:
        # facenet_pytorch's fixed_image_standardization: (pixel - 127.5) / 128 on the 0..255 scale.
        return self.model((chips * 255.0 - 127.5) / 128.0)


register_recognizer("facenet-inception", FacenetRecognizer)
