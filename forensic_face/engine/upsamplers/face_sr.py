"""Face super-resolution (face hallucination): a small EDSR trained only on faces, at 2x, 4x and 8x.

Paper section 3.3. The architecture follows EDSR (Lim et al., 2017) in the documented-kwargs style of
BasicSR: a head convolution, a body of residual blocks with residual scaling and a long skip, and a tail
of pixel-shuffle stages. Two changes suit tiny faces and short training: the network normalises its own
input (``x - 0.5``), and it predicts the *residual* to bicubic interpolation (``bicubic_skip``), so an
untrained tail already gives bicubic output and training only has to learn the missing detail.

One network per scale (``face_sr_x2``, ``face_sr_x4``, ``face_sr_x8`` in resources/weights/manifest.json):
each file has its own SHA-256 in the results, and each scale can be retrained alone.
See docs/super_resolution.md for the reasoning, training and evaluation.

Weights are safetensors files (no pickled code is ever executed when loading); the architecture kwargs are
stored in the file's metadata under ``"arch"`` and the tensors are loaded to the CPU, then strictly.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch import nn

from forensic_face.engine.check import check_image_batch
from forensic_face.engine.errors import ConfigError, WeightsIntegrityError
from forensic_face.engine.upsamplers.registry import register_upsampler
from forensic_face.engine.weights import verified_path, verify_file

log = logging.getLogger(__name__)

#: Scales the shipped networks support, and the manifest name of each.
FACE_SR_SCALES: tuple[int, ...] = (2, 4, 8)


def weights_name(scale: int) -> str:
    """Manifest name of the shipped network for ``scale`` (``face_sr_x4``)."""
    return f"face_sr_x{scale}"


class ResBlock(nn.Module):
    """conv-ReLU-conv with a scaled identity skip: ``x + res_scale * body(x)`` (no batch norm, as EDSR)."""

    def __init__(self, n_feats: int, res_scale: float = 1.0) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(n_feats, n_feats, 3, padding=1)
        self.conv2 = nn.Conv2d(n_feats, n_feats, 3, padding=1)
        self.res_scale = res_scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.res_scale * self.conv2(F.relu(self.conv1(x), inplace=True))


class PixelShuffleUpsampler(nn.Sequential):
    """``log2(scale)`` stages of conv (``n_feats -> 4 n_feats``) + ``PixelShuffle(2)``."""

    def __init__(self, scale: int, n_feats: int) -> None:
        layers: list[nn.Module] = []
        for _ in range(int(math.log2(scale))):
            layers += [nn.Conv2d(n_feats, 4 * n_feats, 3, padding=1), nn.PixelShuffle(2)]
        super().__init__(*layers)


class FaceSrNet(nn.Module):
    """EDSR-style face super-resolution network for one scale.

    Args:
        scale: magnification, a power of two (2, 4 or 8).
        n_feats: channels of the feature maps (EDSR-baseline uses 64; 32 keeps it fast on a CPU).
        n_blocks: residual blocks in the body.
        res_scale: multiplier of each block's residual branch (EDSR uses 0.1 for very wide nets).
        bicubic_skip: add bicubic interpolation of the input to the output, so the net learns a residual.

    Shape: ``(N,3,h,w)`` RGB in [0,1] -> ``(N,3,h*scale,w*scale)``, not clamped (the loss sees raw values).

    >>> FaceSrNet(scale=4, n_feats=8, n_blocks=1)(torch.rand(2, 3, 10, 12)).shape
    torch.Size([2, 3, 40, 48])
    """

    def __init__(
        self,
        scale: int = 4,
        n_feats: int = 32,
        n_blocks: int = 8,
        res_scale: float = 1.0,
        bicubic_skip: bool = True,
    ) -> None:
        super().__init__()
        if scale < 2 or scale & (scale - 1):
            raise ConfigError(f"FaceSrNet scale must be a power of two >= 2, got {scale}")
        if n_feats < 1 or n_blocks < 0:
            raise ConfigError(f"FaceSrNet needs n_feats >= 1 and n_blocks >= 0, got {n_feats}, {n_blocks}")
        self.scale = scale
        self.n_feats = n_feats
        self.n_blocks = n_blocks
        self.res_scale = res_scale
        self.bicubic_skip = bicubic_skip
        self.head = nn.Conv2d(3, n_feats, 3, padding=1)
        self.body = nn.Sequential(
            *[ResBlock(n_feats, res_scale) for _ in range(n_blocks)], nn.Conv2d(n_feats, n_feats, 3, padding=1)
        )
        self.upsample = PixelShuffleUpsampler(scale, n_feats)
        self.tail = nn.Conv2d(n_feats, 3, 3, padding=1)
        if bicubic_skip:
            # Start exactly at bicubic: the residual branch outputs zero until training moves it.
            nn.init.zeros_(self.tail.weight)
            nn.init.zeros_(self.tail.bias)

    def arch(self) -> dict[str, Any]:
        """The constructor kwargs; ``FaceSrNet(**net.arch())`` builds the same architecture."""
        return {
            "scale": self.scale,
            "n_feats": self.n_feats,
            "n_blocks": self.n_blocks,
            "res_scale": self.res_scale,
            "bicubic_skip": self.bicubic_skip,
        }

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feat = self.head(x - 0.5)
        feat = feat + self.body(feat)
        out = self.tail(self.upsample(feat))
        if self.bicubic_skip:
            out = out + F.interpolate(x, scale_factor=self.scale, mode="bicubic", align_corners=False)
        return out


def count_parameters(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


def save_face_sr(net: FaceSrNet, path: str | Path, metadata: Mapping[str, str] | None = None) -> None:
    """Write ``net`` as safetensors with its architecture kwargs (and any extra string metadata)."""
    meta = {"arch": json.dumps(net.arch(), sort_keys=True), "format": "forensic_face.face_sr/1"}
    meta.update(metadata or {})
    state = {k: v.detach().to("cpu").contiguous() for k, v in net.state_dict().items()}
    save_file(state, str(path), metadata=meta)


def load_face_sr(path: str | Path, expected_sha256: str | None = None) -> FaceSrNet:
    """Load a network saved by :func:`save_face_sr` onto the CPU, strictly, in eval mode.

    With ``expected_sha256`` the file's hash is checked first and a mismatch raises
    :class:`WeightsIntegrityError`; shipped weights always go through :func:`load_shipped_face_sr`.
    """
    path = Path(path)
    if expected_sha256 is not None:
        verify_file(path, expected_sha256, what="face super-resolution weights")
    try:
        with safe_open(str(path), framework="pt", device="cpu") as fh:
            meta = fh.metadata() or {}
        state = load_file(str(path), device="cpu")
    except (OSError, ValueError, RuntimeError) as exc:  # safetensors raises SafetensorError (a ValueError/OSError)
        raise WeightsIntegrityError(f"face super-resolution weights {path} cannot be read: {exc}") from exc
    if "arch" not in meta:
        raise WeightsIntegrityError(f"face super-resolution weights {path} carry no 'arch' metadata")
    net = FaceSrNet(**json.loads(meta["arch"]))
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise WeightsIntegrityError(f"face super-resolution weights {path} do not fit the network: {exc}") from exc
    return net.eval()


def load_shipped_face_sr(scale: int) -> tuple[FaceSrNet, str]:
    """The shipped network for ``scale`` and its verified SHA-256 (from resources/weights/manifest.json)."""
    path, sha = verified_path(weights_name(scale))
    net = load_face_sr(path)
    if net.scale != scale:
        raise WeightsIntegrityError(f"{path} holds a {net.scale}x network but is listed as the {scale}x one")
    return net, sha


class FaceSrUpsampler:
    """The ``face-sr`` upsampler: the shipped face SR networks at 2x, 4x and 8x (scale 1 is the identity).

    Args:
        device: where the networks run.
        batch_size: images per forward pass (caps memory).
        weights: optional ``{scale: (path, sha256)}`` to use other files than the shipped ones; every file is
            hash-checked before it is loaded.
    """

    name = "face-sr"

    def __init__(
        self,
        device: torch.device | None = None,
        batch_size: int = 64,
        weights: Mapping[int, tuple[str | Path, str]] | None = None,
    ) -> None:
        if batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
        self.device = device or torch.device("cpu")
        self.batch_size = batch_size
        self.weights_sha256: dict[int, str] = {}
        self._nets: dict[int, FaceSrNet] = {}
        if weights is None:
            for scale in FACE_SR_SCALES:
                net, sha = load_shipped_face_sr(scale)
                self._add(scale, net, sha)
        else:
            for scale, (path, sha) in weights.items():
                net = load_face_sr(path, expected_sha256=sha)
                if net.scale != scale:
                    raise WeightsIntegrityError(f"{path} holds a {net.scale}x network, not {scale}x")
                self._add(scale, net, sha)

    def _add(self, scale: int, net: FaceSrNet, sha: str) -> None:
        self._nets[scale] = net.to(self.device).eval()
        self.weights_sha256[scale] = sha
        log.debug("face-sr x%d loaded (%d parameters, sha256 %s)", scale, count_parameters(net), sha)

    @property
    def scales(self) -> tuple[int, ...]:
        return tuple(sorted(self._nets))

    def upsample(self, images: torch.Tensor, scale: int) -> torch.Tensor:
        """``(N,3,h,w)`` in [0,1] -> ``(N,3,h*scale,w*scale)`` in [0,1], on the input's device."""
        check_image_batch(images)
        if scale == 1:
            return images
        if scale not in self._nets:
            raise ConfigError(f"face-sr has no {scale}x network; available scales: {list(self.scales)}")
        net = self._nets[scale]
        if images.shape[0] == 0:
            return images.new_zeros((0, 3, images.shape[2] * scale, images.shape[3] * scale))
        outputs = []
        with torch.inference_mode():
            for start in range(0, images.shape[0], self.batch_size):
                chunk = images[start : start + self.batch_size].to(self.device, torch.float32)
                outputs.append(net(chunk).clamp_(0.0, 1.0))
        return torch.cat(outputs).to(images.device)


class FaceSr24Upsampler(FaceSrUpsampler):
    """``face-sr-2-4``: the face networks at 2x and 4x, bicubic at 8x (and any other scale). On the full 24 px
    LFW-XRes protocol the shipped 8x network ranks lower than bicubic (single hypothesis 24.84 % against
    28.24 %, docs/super_resolution.md): this keeps a network only where it raised rank-1."""

    name = "face-sr-2-4"

    def __init__(self, device: torch.device | None = None, batch_size: int = 64) -> None:
        from forensic_face.engine.upsamplers.base import BicubicUpsampler

        super().__init__(device, batch_size, weights={s: verified_path(weights_name(s)) for s in (2, 4)})
        self._bicubic = BicubicUpsampler(self.device, batch_size)

    def upsample(self, images: torch.Tensor, scale: int) -> torch.Tensor:
        if scale in self._nets or scale == 1:
            return super().upsample(images, scale)
        return self._bicubic.upsample(images, scale)


register_upsampler("face-sr", FaceSrUpsampler)
register_upsampler("face-sr-2-4", FaceSr24Upsampler)
