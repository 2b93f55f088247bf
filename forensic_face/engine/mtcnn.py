"""MTCNN face detection (P-Net, R-Net, O-Net) in plain PyTorch, batched over images, without torchvision.

The networks and weights are those of facenet-pytorch 2.6.0, whose wheel ships them as
``facenet_pytorch/data/{pnet,rnet,onet}.pt``; the cascade arithmetic is the same as its ``detect_face``, so boxes
and landmarks agree with it to rounding (tests/engine/test_mtcnn.py compares the two). What differs:

* no torchvision: non-maximum suppression is :func:`batched_nms` below (facenet-pytorch imports torchvision only
  for that), so the detector runs beside the CPU-only torch of the desktop build, which has no torchvision;
* the weight files are found without importing ``facenet_pytorch`` (its ``__init__`` imports torchvision), are
  SHA-256 verified, loaded with ``map_location="cpu"`` and ``strict=True``;
* the R-Net and O-Net inputs (24 and 48 px crops of every candidate box) are cut and area-resampled for all boxes
  of all images at once from integral images, not box by box.

Shapes: ``images`` are uint8 ``(N, H, W, 3)`` RGB; per image the result is ``(k, 5)`` boxes ``x1, y1, x2, y2,
score`` in pixels and ``(k, 5, 2)`` landmarks (left eye, right eye, nose, left and right mouth corner), best
score first.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from forensic_face.engine.errors import ConfigError, ShapeError, WeightsIntegrityError
from forensic_face.engine.weights import RESOURCES_WEIGHTS_DIR, verify_file

log = logging.getLogger(__name__)

NET_NAMES = ("pnet", "rnet", "onet")

#: SHA-256 of the weight files in the facenet-pytorch 2.6.0 wheel (facenet_pytorch/data/<name>.pt).
MTCNN_WEIGHTS_SHA256: Mapping[str, str] = {
    "pnet": "a2a71925e0b9996a42f63e47efc1ca19043e69558b5c523b978d611dfae49c8f",
    "rnet": "bbb937de72efc9ef83b186c49f5f558467a1d7e3453a8ece0d71a886633f6a86",
    "onet": "165bfbe42940416ccfb977545cf0e976d5bf321f67083ae2aaaa5c764280118d",
}

#: Where desktop builds put the three files (see packaging/forensic_face.spec); searched before facenet-pytorch.
BUNDLED_MTCNN_DIR = RESOURCES_WEIGHTS_DIR / "mtcnn"

PNET_STRIDE_PX = 2
PNET_WINDOW_PX = 12
RNET_INPUT_PX = 24
ONET_INPUT_PX = 48
#: Overlap thresholds of the cascade's suppression steps (the values of the original MTCNN release).
NMS_WITHIN_SCALE = 0.5
NMS_ACROSS_SCALES = 0.7
NMS_AFTER_RNET = 0.7
NMS_AFTER_ONET = 0.7


def _normalise(pixels: torch.Tensor) -> torch.Tensor:
    """0..255 to the nets' input range, (x - 127.5) / 128."""
    return (pixels - 127.5) * 0.0078125


# ---------------------------------------------------------------------------------------------------------
# Networks. Layer names are those of the weight files (strict loading); the dense layers see the feature map
# in (width, height, channel) order because the weights were converted from Caffe.
# ---------------------------------------------------------------------------------------------------------


class PNet(nn.Module):
    """Proposal net: fully convolutional, one 12x12 window every 2 px. Returns ``(offsets (N,4,h,w),
    face probability (N,h,w))``."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 10, kernel_size=3)
        self.prelu1 = nn.PReLU(10)
        self.pool1 = nn.MaxPool2d(2, 2, ceil_mode=True)
        self.conv2 = nn.Conv2d(10, 16, kernel_size=3)
        self.prelu2 = nn.PReLU(16)
        self.conv3 = nn.Conv2d(16, 32, kernel_size=3)
        self.prelu3 = nn.PReLU(32)
        self.conv4_1 = nn.Conv2d(32, 2, kernel_size=1)
        self.conv4_2 = nn.Conv2d(32, 4, kernel_size=1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.pool1(self.prelu1(self.conv1(x)))
        x = self.prelu3(self.conv3(self.prelu2(self.conv2(x))))
        face_probability = torch.softmax(self.conv4_1(x), dim=1)[:, 1]
        return self.conv4_2(x), face_probability


class RNet(nn.Module):
    """Refinement net on 24x24 crops. Returns ``(offsets (K,4), face probability (K,))``."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 28, kernel_size=3)
        self.prelu1 = nn.PReLU(28)
        self.pool1 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv2 = nn.Conv2d(28, 48, kernel_size=3)
        self.prelu2 = nn.PReLU(48)
        self.pool2 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv3 = nn.Conv2d(48, 64, kernel_size=2)
        self.prelu3 = nn.PReLU(64)
        self.dense4 = nn.Linear(576, 128)
        self.prelu4 = nn.PReLU(128)
        self.dense5_1 = nn.Linear(128, 2)
        self.dense5_2 = nn.Linear(128, 4)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.pool1(self.prelu1(self.conv1(x)))
        x = self.pool2(self.prelu2(self.conv2(x)))
        x = self.prelu3(self.conv3(x))
        x = self.prelu4(self.dense4(x.permute(0, 3, 2, 1).reshape(x.shape[0], -1)))
        face_probability = torch.softmax(self.dense5_1(x), dim=1)[:, 1]
        return self.dense5_2(x), face_probability


class ONet(nn.Module):
    """Output net on 48x48 crops. Returns ``(offsets (K,4), landmarks (K,10) as x1..x5, y1..y5 in box units,
    face probability (K,))``."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 32, kernel_size=3)
        self.prelu1 = nn.PReLU(32)
        self.pool1 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv2 = nn.Conv2d(32, 64, kernel_size=3)
        self.prelu2 = nn.PReLU(64)
        self.pool2 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv3 = nn.Conv2d(64, 64, kernel_size=3)
        self.prelu3 = nn.PReLU(64)
        self.pool3 = nn.MaxPool2d(2, 2, ceil_mode=True)
        self.conv4 = nn.Conv2d(64, 128, kernel_size=2)
        self.prelu4 = nn.PReLU(128)
        self.dense5 = nn.Linear(1152, 256)
        self.prelu5 = nn.PReLU(256)
        self.dense6_1 = nn.Linear(256, 2)
        self.dense6_2 = nn.Linear(256, 4)
        self.dense6_3 = nn.Linear(256, 10)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = self.pool1(self.prelu1(self.conv1(x)))
        x = self.pool2(self.prelu2(self.conv2(x)))
        x = self.pool3(self.prelu3(self.conv3(x)))
        x = self.prelu4(self.conv4(x))
        x = self.prelu5(self.dense5(x.permute(0, 3, 2, 1).reshape(x.shape[0], -1)))
        face_probability = torch.softmax(self.dense6_1(x), dim=1)[:, 1]
        return self.dense6_2(x), self.dense6_3(x), face_probability


# ---------------------------------------------------------------------------------------------------------
# Weights
# ---------------------------------------------------------------------------------------------------------


def _facenet_pytorch_data_dirs() -> list[Path]:
    """``facenet_pytorch/data`` of an installed facenet-pytorch, found without importing the package."""
    try:
        spec = importlib.util.find_spec("facenet_pytorch")
    except (ImportError, ValueError):
        return []
    if spec is None or not spec.submodule_search_locations:
        return []
    return [Path(location) / "data" for location in spec.submodule_search_locations]


def mtcnn_weights_dir() -> Path:
    """Folder holding ``pnet.pt``, ``rnet.pt`` and ``onet.pt``: ``resources/weights/mtcnn`` (desktop builds) or the
    data folder of the installed facenet-pytorch wheel."""
    searched = [BUNDLED_MTCNN_DIR, *_facenet_pytorch_data_dirs()]
    for folder in searched:
        if all((folder / f"{name}.pt").is_file() for name in NET_NAMES):
            return folder
    raise WeightsIntegrityError(
        "the MTCNN weight files pnet.pt, rnet.pt and onet.pt were not found in "
        + ", ".join(str(f) for f in searched)
        + "; install facenet-pytorch 2.6.0 (pip install --no-deps facenet-pytorch==2.6.0) or reinstall forensic_face"
    )


class MtcnnNets:
    """The three MTCNN networks with verified weights, in eval mode on one device.

    ``weights_sha256`` maps ``pnet``/``rnet``/``onet`` to the SHA-256 of the file each was loaded from.
    """

    def __init__(self, pnet: PNet, rnet: RNet, onet: ONet, weights_sha256: Mapping[str, str]) -> None:
        self.pnet = pnet.eval()
        self.rnet = rnet.eval()
        self.onet = onet.eval()
        self.weights_sha256 = dict(weights_sha256)

    @classmethod
    def load(cls, device: torch.device | None = None, weights_dir: str | Path | None = None) -> MtcnnNets:
        """Load the shipped weights (see :func:`mtcnn_weights_dir`), verifying each file's SHA-256.

        Raises :class:`WeightsIntegrityError` when a file is missing or differs from facenet-pytorch 2.6.0's.
        """
        folder = Path(weights_dir) if weights_dir is not None else mtcnn_weights_dir()
        pnet, rnet, onet = PNet(), RNet(), ONet()
        nets: dict[str, nn.Module] = {"pnet": pnet, "rnet": rnet, "onet": onet}
        digests: dict[str, str] = {}
        for name, net in nets.items():
            path = folder / f"{name}.pt"
            digests[name] = verify_file(path, MTCNN_WEIGHTS_SHA256[name], what=f"MTCNN weights {name}")
            state = torch.load(path, map_location="cpu", weights_only=True)
            net.load_state_dict(state, strict=True)
        log.debug("MTCNN weights loaded from %s", folder)
        return cls(pnet, rnet, onet, digests).to(device or torch.device("cpu"))

    @property
    def device(self) -> torch.device:
        return next(self.pnet.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.pnet.parameters()).dtype

    def to(self, device: torch.device) -> MtcnnNets:
        """Move the three nets to ``device`` (in place); returns ``self``."""
        for net in (self.pnet, self.rnet, self.onet):
            net.to(device)
        return self

    def combined_sha256(self) -> str:
        """One digest over the three file digests (in pnet, rnet, onet order), for results."""
        return hashlib.sha256("".join(self.weights_sha256[n] for n in NET_NAMES).encode()).hexdigest()


# ---------------------------------------------------------------------------------------------------------
# Non-maximum suppression
# ---------------------------------------------------------------------------------------------------------

OverlapName = Literal["union", "min"]


def _pairwise_overlap(a: torch.Tensor, b: torch.Tensor, overlap: OverlapName, inclusive: bool) -> torch.Tensor:
    """(A, B) overlap of xyxy boxes ``a`` (A,4) and ``b`` (B,4): intersection over union or over the smaller
    area. ``inclusive`` counts both edge pixels (width = x2 - x1 + 1), as the original MTCNN code does."""
    extra = 1.0 if inclusive else 0.0
    area_a = (a[:, 2] - a[:, 0] + extra) * (a[:, 3] - a[:, 1] + extra)
    area_b = (b[:, 2] - b[:, 0] + extra) * (b[:, 3] - b[:, 1] + extra)
    left = torch.maximum(a[:, None, 0], b[None, :, 0])
    top = torch.maximum(a[:, None, 1], b[None, :, 1])
    right = torch.minimum(a[:, None, 2], b[None, :, 2])
    bottom = torch.minimum(a[:, None, 3], b[None, :, 3])
    intersection = (right - left + extra).clamp(min=0) * (bottom - top + extra).clamp(min=0)
    if overlap == "min":
        return intersection / torch.minimum(area_a[:, None], area_b[None, :])
    return intersection / (area_a[:, None] + area_b[None, :] - intersection)


def batched_nms(
    boxes: torch.Tensor,
    scores: torch.Tensor,
    image_index: torch.Tensor,
    threshold: float,
    overlap: OverlapName = "union",
    inclusive: bool = False,
    block_size: int = 1024,
) -> torch.Tensor:
    """Greedy non-maximum suppression, separately for each image: indices of the kept boxes, best score first.

    ``boxes`` (K,4) xyxy, ``scores`` (K,), ``image_index`` (K,) int. A box is dropped when its overlap with a kept,
    higher-scoring box of the same image exceeds ``threshold``. ``overlap="union", inclusive=False`` is
    torchvision's ``batched_nms``; ``overlap="min", inclusive=True`` is the original MTCNN's final suppression.

    Exact greedy result, computed ``block_size`` boxes at a time: a block first loses the boxes that boxes kept
    from earlier blocks suppress, then the greedy choice inside the block is the fixed point of "kept unless a
    kept, better box of the block suppresses it", reached by repeating that rule until nothing changes.
    """
    num_boxes = boxes.shape[0]
    if num_boxes == 0:
        return torch.empty(0, dtype=torch.long, device=boxes.device)
    order = torch.argsort(scores, descending=True, stable=True)
    boxes, image_index = boxes[order], image_index[order]
    kept_chunks: list[torch.Tensor] = []
    for start in range(0, num_boxes, block_size):
        block = torch.arange(start, min(start + block_size, num_boxes), device=boxes.device)
        for kept in kept_chunks:
            suppressed = (_pairwise_overlap(boxes[block], boxes[kept], overlap, inclusive) > threshold) & (
                image_index[block, None] == image_index[None, kept]
            )
            block = block[~suppressed.any(dim=1)]
        # suppresses[i, j]: box i of the block would suppress box j (same image, i better than j).
        suppresses = (_pairwise_overlap(boxes[block], boxes[block], overlap, inclusive) > threshold) & (
            image_index[block, None] == image_index[None, block]
        )
        suppresses = suppresses.triu(diagonal=1)
        keep = torch.ones(block.shape[0], dtype=torch.bool, device=boxes.device)
        while True:
            new_keep = ~(suppresses & keep[:, None]).any(dim=0)
            if torch.equal(new_keep, keep):
                break
            keep = new_keep
        kept_chunks.append(block[keep])
    return order[torch.cat(kept_chunks)]


# ---------------------------------------------------------------------------------------------------------
# Cascade steps
# ---------------------------------------------------------------------------------------------------------


def pyramid_scales(height: int, width: int, min_face_size: float, pyramid_factor: float) -> list[float]:
    """Image scales at which P-Net's 12 px window covers faces from ``min_face_size`` up to the image size."""
    scale = PNET_WINDOW_PX / min_face_size
    min_side = min(height, width) * scale
    scales = []
    while min_side >= PNET_WINDOW_PX:
        scales.append(scale)
        scale *= pyramid_factor
        min_side *= pyramid_factor
    return scales


def _square(boxes: torch.Tensor) -> torch.Tensor:
    """Boxes (K,4+) made square about their centre (side = the longer side); extra columns kept."""
    width = boxes[:, 2] - boxes[:, 0]
    height = boxes[:, 3] - boxes[:, 1]
    side = torch.maximum(width, height)
    out = boxes.clone()
    out[:, 0] = boxes[:, 0] + width * 0.5 - side * 0.5
    out[:, 1] = boxes[:, 1] + height * 0.5 - side * 0.5
    out[:, 2] = out[:, 0] + side
    out[:, 3] = out[:, 1] + side
    return out


def _regress(boxes: torch.Tensor, offsets: torch.Tensor, inclusive: bool) -> torch.Tensor:
    """Apply the nets' box offsets (K,4), given in box widths/heights."""
    extra = 1.0 if inclusive else 0.0
    width = boxes[:, 2] - boxes[:, 0] + extra
    height = boxes[:, 3] - boxes[:, 1] + extra
    out = boxes.clone()
    out[:, :4] = boxes[:, :4] + offsets * torch.stack([width, height, width, height], dim=1)
    return out


def _integral_images(pixels: torch.Tensor) -> torch.Tensor:
    """(N,3,H+1,W+1) exact running sums of uint8 (N,3,H,W) images (int32 when it cannot overflow)."""
    num_images, channels, height, width = pixels.shape
    dtype = torch.int32 if height * width * 255 < 2**31 else torch.int64
    integral = torch.zeros(num_images, channels, height + 1, width + 1, dtype=dtype, device=pixels.device)
    integral[:, :, 1:, 1:] = pixels.cumsum(dim=2, dtype=dtype).cumsum(dim=3, dtype=dtype)
    return integral


def _area_bins(start: torch.Tensor, length: torch.Tensor, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """First and one-past-last source pixel of each of ``size`` output bins (K,size), as ``mode="area"``
    resampling (adaptive average pooling) splits a span of ``length`` pixels starting at ``start``."""
    bins = torch.arange(size, device=start.device)
    first = (bins[None, :] * length[:, None]) // size
    last = -((-(bins[None, :] + 1) * length[:, None]) // size)
    return start[:, None] + first, start[:, None] + last


def _crops(integral: torch.Tensor, image_index: torch.Tensor, windows: torch.Tensor, size: int) -> torch.Tensor:
    """(K,3,size,size) area-resampled crops, pixel windows (K,4) ``left, top, right, bottom`` (right/bottom
    exclusive) of images ``image_index`` (K,), all boxes at once from the integral images."""
    row_first, row_last = _area_bins(windows[:, 1], windows[:, 3] - windows[:, 1], size)
    col_first, col_last = _area_bins(windows[:, 0], windows[:, 2] - windows[:, 0], size)
    n = image_index[:, None, None]
    r0, r1 = row_first[:, :, None], row_last[:, :, None]
    c0, c1 = col_first[:, None, :], col_last[:, None, :]
    # Advanced indices around the channel slice put the (K,size,size) dims first: (K,size,size,3).
    sums = integral[n, :, r1, c1] - integral[n, :, r0, c1] - integral[n, :, r1, c0] + integral[n, :, r0, c0]
    areas = ((r1 - r0) * (c1 - c0))[..., None]
    return (sums.double() / areas).permute(0, 3, 1, 2)


def _pixel_windows(boxes: torch.Tensor, height: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Integer crop windows of boxes, clipped to the image, and which boxes have a non-empty window.

    As the original MTCNN code (1-based, inclusive): columns ``max(trunc(x1), 1) - 1`` to ``min(trunc(x2), W)``.
    """
    corners = boxes[:, :4].trunc().long()
    left = corners[:, 0].clamp(min=1) - 1
    top = corners[:, 1].clamp(min=1) - 1
    right = corners[:, 2].clamp(max=width)
    bottom = corners[:, 3].clamp(max=height)
    windows = torch.stack([left, top, right, bottom], dim=1)
    return windows, (right > left) & (bottom > top)


def _run_on_crops(
    net: nn.Module, integral: torch.Tensor, image_index: torch.Tensor, windows: torch.Tensor, size: int,
    dtype: torch.dtype, chunk: int,
) -> tuple[torch.Tensor, ...]:
    """The net's outputs on the crops of all windows, ``chunk`` crops at a time (caps memory)."""
    outputs: list[tuple[torch.Tensor, ...]] = []
    for start in range(0, windows.shape[0], chunk):
        part = slice(start, start + chunk)
        crops = _crops(integral, image_index[part], windows[part], size).to(dtype)
        outputs.append(tuple(net(_normalise(crops))))
    return tuple(torch.cat(parts, dim=0) for parts in zip(*outputs, strict=True))


def _proposals(
    images: torch.Tensor, nets: MtcnnNets, scales: Sequence[float], threshold: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Stage 1: P-Net windows over the image pyramid, suppressed per scale and across scales, then regressed
    and squared. Returns boxes (K,5) ``x1, y1, x2, y2, score`` and their image indices (K,)."""
    height, width = images.shape[2:]
    boxes_per_scale, index_per_scale = [], []
    for scale in scales:  # pyramid levels; each level is one batch over all images
        level = F.interpolate(images, size=(int(height * scale + 1), int(width * scale + 1)), mode="area")
        offsets, probability = nets.pnet(_normalise(level))
        image_index, row, col = (probability >= threshold).nonzero(as_tuple=True)
        cell = torch.stack([col, row], dim=1).to(offsets.dtype)
        top_left = ((PNET_STRIDE_PX * cell + 1) / scale).floor()
        bottom_right = ((PNET_STRIDE_PX * cell + PNET_WINDOW_PX) / scale).floor()
        score = probability[image_index, row, col]
        # Columns: x1, y1, x2, y2, score, then the four regression offsets.
        boxes = torch.cat([top_left, bottom_right, score[:, None], offsets[image_index, :, row, col]], dim=1)
        keep = batched_nms(boxes[:, :4], score, image_index, NMS_WITHIN_SCALE)
        boxes_per_scale.append(boxes[keep])
        index_per_scale.append(image_index[keep])
    boxes = torch.cat(boxes_per_scale)
    image_index = torch.cat(index_per_scale)
    keep = batched_nms(boxes[:, :4], boxes[:, 4], image_index, NMS_ACROSS_SCALES)
    boxes, image_index = boxes[keep], image_index[keep]
    boxes = _regress(boxes[:, :5], boxes[:, 5:9], inclusive=False)
    return _square(boxes), image_index


def detect_faces_mtcnn(
    images: np.ndarray | torch.Tensor,
    min_face_size: float,
    thresholds: Sequence[float],
    pyramid_factor: float,
    nets: MtcnnNets,
    device: torch.device | None = None,
    crop_chunk: int = 512,
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Run the MTCNN cascade on a batch of equal-sized images.

    Args:
        images: uint8 ``(N, H, W, 3)`` RGB, numpy or torch.
        min_face_size: smallest face width searched for, in pixels (12 = P-Net's window at full resolution).
        thresholds: face-probability thresholds of P-Net, R-Net and O-Net, e.g. ``(0.6, 0.7, 0.7)``.
        pyramid_factor: ratio of successive pyramid scales, e.g. 0.709.
        nets: the networks, already on ``device``.
        device: where to compute (default: the nets' device); the images are moved there.
        crop_chunk: R-Net/O-Net crops evaluated at once.

    Returns:
        Per image, float32 boxes ``(k, 5)`` (x1, y1, x2, y2, score) and landmarks ``(k, 5, 2)`` in pixels, best score
        first; ``k = 0`` when no face is found.
    """
    is_uint8 = images.dtype == torch.uint8 if isinstance(images, torch.Tensor) else images.dtype == np.uint8
    if images.ndim != 4 or images.shape[3] != 3 or not is_uint8:
        raise ShapeError(f"images must be uint8 (N, H, W, 3) RGB, got {images.dtype} {tuple(images.shape)}")
    if len(thresholds) != 3:
        raise ConfigError(f"MTCNN needs 3 thresholds (P-Net, R-Net, O-Net), got {list(thresholds)}")
    if min_face_size <= 0 or not 0.0 < pyramid_factor < 1.0:
        raise ConfigError(f"need min_face_size > 0 and 0 < pyramid_factor < 1, got {min_face_size}, {pyramid_factor}")
    device = device if device is not None else nets.device
    if nets.device != torch.device(device):
        raise ConfigError(f"the MTCNN nets are on {nets.device}, not {device}; move them with nets.to(device)")
    if isinstance(images, np.ndarray):
        images = torch.from_numpy(np.ascontiguousarray(images))
    num_images, height, width = images.shape[:3]

    with torch.inference_mode():
        pixels = images.to(device).permute(0, 3, 1, 2)  # uint8 (N,3,H,W)
        scales = pyramid_scales(height, width, min_face_size, pyramid_factor)
        boxes = torch.zeros(0, 5, dtype=nets.dtype, device=pixels.device)
        image_index = torch.zeros(0, dtype=torch.long, device=pixels.device)
        if scales:
            boxes, image_index = _proposals(pixels.to(nets.dtype), nets, scales, thresholds[0])
        landmarks = torch.zeros(0, 5, 2, dtype=boxes.dtype, device=boxes.device)
        integral = _integral_images(pixels) if boxes.shape[0] else None

        if integral is not None:  # Stage 2: R-Net on 24x24 crops.
            windows, valid = _pixel_windows(boxes, height, width)
            boxes, image_index = boxes[valid], image_index[valid]
            offsets, probability = _run_on_crops(nets.rnet, integral, image_index, windows[valid], RNET_INPUT_PX,
                                                 nets.dtype, crop_chunk)
            passed = probability > thresholds[1]
            boxes = torch.cat([boxes[passed, :4], probability[passed, None]], dim=1)
            image_index, offsets = image_index[passed], offsets[passed]
            keep = batched_nms(boxes[:, :4], boxes[:, 4], image_index, NMS_AFTER_RNET)
            boxes = _square(_regress(boxes[keep], offsets[keep], inclusive=True))
            image_index = image_index[keep]

        if integral is not None and boxes.shape[0]:  # Stage 3: O-Net on 48x48 crops, landmarks.
            windows, valid = _pixel_windows(boxes, height, width)
            boxes, image_index = boxes[valid], image_index[valid]
            offsets, points, probability = _run_on_crops(nets.onet, integral, image_index, windows[valid],
                                                         ONET_INPUT_PX, nets.dtype, crop_chunk)
            passed = probability > thresholds[2]
            boxes = torch.cat([boxes[passed, :4], probability[passed, None]], dim=1)
            image_index, offsets, points = image_index[passed], offsets[passed], points[passed]
            # Landmarks are predicted in units of the (inclusive) box size, from its top-left corner (1-based).
            size = (boxes[:, 2:4] - boxes[:, 0:2] + 1)[:, None, :]
            landmarks = size * torch.stack([points[:, :5], points[:, 5:]], dim=2) + boxes[:, None, 0:2] - 1
            boxes = _regress(boxes, offsets, inclusive=True)
            keep = batched_nms(boxes[:, :4], boxes[:, 4], image_index, NMS_AFTER_ONET, overlap="min", inclusive=True)
            boxes, image_index, landmarks = boxes[keep], image_index[keep], landmarks[keep]

        # Group by image, keeping the best-first order inside each image.
        order = torch.argsort(image_index, stable=True)
        counts = torch.bincount(image_index, minlength=num_images).tolist()
        boxes_np = boxes[order].float().cpu().numpy()
        landmarks_np = landmarks[order].float().cpu().numpy()
    splits = np.cumsum(counts)[:-1]
    return list(np.split(boxes_np, splits)), list(np.split(landmarks_np, splits))
