"""ArcFace-style ONNX recognizers (e.g. insightface's ResNet-50/100 models) through onnxruntime.

Expected model: one input ``(N|1, 3, 112, 112)`` float32 RGB normalised as ``(pixel - 127.5) / 127.5`` on the
0..255 scale, one output ``(N, D)`` embedding. Faces are aligned with the standard ArcFace 5-point template.
The CUDA execution provider is used when the recognizer's device is CUDA and onnxruntime offers it.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch

from forensic_face.engine.align import ARCFACE_TEMPLATE_UNIT
from forensic_face.engine.errors import ConfigError, ModelFileError
from forensic_face.engine.recognizers.base import AlignedRecognizer
from forensic_face.engine.recognizers.registry import register_recognizer
from forensic_face.engine.weights import sha256_of

log = logging.getLogger(__name__)

INPUT_SIZE = 112
EXPECTED_FORMAT = ("an ONNX face-recognition model with one float input of shape (N,3,112,112) "
                   "(RGB, (x-127.5)/127.5) and one output of shape (N,D), e.g. an insightface ArcFace model")


def _one_line(exc: BaseException, limit: int = 400) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= limit else text[:limit] + "..."


def _providers(device: torch.device) -> list[str]:
    import onnxruntime as ort

    available = ort.get_available_providers()
    if device.type == "cuda" and "CUDAExecutionProvider" in available:
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    if device.type == "cuda":
        log.warning("onnxruntime has no CUDA provider here (available: %s); the ONNX model runs on the CPU",
                    available)
    return ["CPUExecutionProvider"]


def open_session(path: Path, device: torch.device) -> Any:
    """An onnxruntime session for ``path``, validated against :data:`EXPECTED_FORMAT`."""
    import onnxruntime as ort

    if not path.is_file():
        raise ModelFileError(f"{path}: file not found; expected {EXPECTED_FORMAT}")
    options = ort.SessionOptions()
    options.log_severity_level = 3
    try:
        session = ort.InferenceSession(str(path), sess_options=options, providers=_providers(device))
    except Exception as exc:  # noqa: BLE001 - onnxruntime raises several unrelated types for bad files
        raise ModelFileError(f"{path}: cannot be loaded by onnxruntime ({type(exc).__name__}: {_one_line(exc)}); "
                             f"expected {EXPECTED_FORMAT}") from None
    inputs, outputs = session.get_inputs(), session.get_outputs()
    if len(inputs) != 1 or len(outputs) < 1:
        raise ModelFileError(f"{path}: has {len(inputs)} inputs and {len(outputs)} outputs; expected {EXPECTED_FORMAT}")
    shape = list(inputs[0].shape)
    if inputs[0].type != "tensor(float)" or len(shape) != 4 or shape[1] != 3 or shape[2:] != [INPUT_SIZE, INPUT_SIZE]:
        raise ModelFileError(f"{path}: input {inputs[0].name!r} is {inputs[0].type} {shape}; expected {EXPECTED_FORMAT}")
    out_shape = list(outputs[0].shape)
    if len(out_shape) != 2:
        raise ModelFileError(f"{path}: output {outputs[0].name!r} has shape {out_shape}; expected {EXPECTED_FORMAT}")
    return session


class OnnxArcFaceRecognizer(AlignedRecognizer):
    """An ArcFace-style ONNX model on 112x112 chips aligned to the ArcFace template."""

    name = "onnx-arcface"
    input_size = INPUT_SIZE
    alignment = "template"
    template_unit = ARCFACE_TEMPLATE_UNIT
    template_padding = 0.0

    def __init__(self, device: torch.device, batch_size: int = 64, model_path: str | None = None,
                 precision: str = "fp32") -> None:
        if precision == "auto":  # the model file fixes its precision
            precision = "fp32"
        if precision != "fp32":
            raise ConfigError(f"onnx-arcface runs the model in the precision stored in the file; set precision "
                              f"fp32 (got {precision!r})")
        super().__init__(device, batch_size, precision)
        if model_path is None:
            raise ModelFileError(f"recognizer 'onnx-arcface' needs a model file: set the recognizer model path to "
                                 f"{EXPECTED_FORMAT}")
        self.model_path = Path(model_path)
        self.session = open_session(self.model_path, self.device)
        self.weights_sha256 = sha256_of(self.model_path)
        self._input_name = self.session.get_inputs()[0].name
        batch_dim = self.session.get_inputs()[0].shape[0]
        #: models exported with a fixed batch of 1 are run one chip at a time
        self._fixed_batch = batch_dim if isinstance(batch_dim, int) else None
        dim = self.session.get_outputs()[0].shape[1]
        if not isinstance(dim, int):
            probe = np.zeros((self._fixed_batch or 1, 3, INPUT_SIZE, INPUT_SIZE), dtype=np.float32)
            dim = int(self.session.run(None, {self._input_name: probe})[0].shape[1])
        self.embedding_dim = int(dim)
        log.info("onnx-arcface %s: %d-D, providers %s", self.model_path.name, self.embedding_dim,
                 self.session.get_providers())

    def _run(self, batch: np.ndarray) -> np.ndarray:
        try:
            return np.asarray(self.session.run(None, {self._input_name: batch})[0], dtype=np.float32)
        except Exception as exc:  # noqa: BLE001 - surface runtime failures as a model-file problem
            raise ModelFileError(f"{self.model_path}: inference failed ({type(exc).__name__}: {_one_line(exc)}); "
                                 f"expected {EXPECTED_FORMAT}") from None

    def _forward(self, chips: torch.Tensor) -> torch.Tensor:
        x = ((chips.float() * 255.0 - 127.5) / 127.5).cpu().numpy()
        if self._fixed_batch is not None and self._fixed_batch != x.shape[0]:
            if self._fixed_batch != 1:
                raise ModelFileError(f"{self.model_path}: fixed batch size {self._fixed_batch} is not supported; "
                                     f"expected {EXPECTED_FORMAT}")
            out = np.concatenate([self._run(x[i:i + 1]) for i in range(x.shape[0])])
        else:
            out = self._run(x)
        if out.ndim != 2 or out.shape[0] != x.shape[0]:
            raise ModelFileError(f"{self.model_path}: output shape {out.shape} for a batch of {x.shape[0]}; "
                                 f"expected {EXPECTED_FORMAT}")
        return torch.from_numpy(out).to(self.device)


register_recognizer("onnx-arcface", OnnxArcFaceRecognizer)
