"""A documented, seeded simulation of a surveillance camera, applied to uint8 RGB numpy images.

Used to make training inputs for the face super-resolution network and the probes of the LFW
cross-resolution benchmark. The chain follows the order in which a real CCTV camera degrades a face:

1. **optical blur** (lens + defocus + motion), a Gaussian applied at the *input* resolution with
   ``sigma_in = optical_blur_sigma / factor`` so that its width is ``optical_blur_sigma`` *output* pixels;
2. **sampling** by the sensor: ``area`` averaging (a box pre-filter, like pixel binning) or plain
   ``bicubic`` resampling without a pre-filter (keeps some aliasing, like cheap scalers);
3. **sensor noise**: additive Gaussian, ``noise_sigma`` in 0..255 units, drawn from
   ``np.random.default_rng(seed)``;
4. **colour gain**: a per-channel multiplier, a mild white-balance error of the camera's processing;
5. **JPEG** re-encoding at ``jpeg_quality`` (Pillow, in memory, 4:2:0 chroma subsampling).

Sampling parameters is separate from applying them (:func:`sample_surveillance_params` vs.
:func:`degrade_to_scale`), so a benchmark can record and replay exactly what was applied.

>>> import numpy as np
>>> face = np.full((120, 120, 3), 128, np.uint8)
>>> degrade_to_scale(face, 0.25, DEFAULT_SURVEILLANCE, seed=0).shape
(30, 30, 3)
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np
from PIL import Image

from forensic_face.engine import ConfigError, ShapeError

DownsampleName = Literal["area", "bicubic"]

#: Ranges of :func:`sample_surveillance_params` (inclusive), chosen to resemble real CCTV footage
#: of faces a few metres from the camera.
BLUR_SIGMA_RANGE: tuple[float, float] = (0.3, 1.2)  # output pixels
NOISE_SIGMA_RANGE: tuple[float, float] = (2.0, 8.0)  # 0..255 units
JPEG_QUALITY_RANGE: tuple[int, int] = (30, 85)
COLOUR_GAIN_RANGE: tuple[float, float] = (0.93, 1.07)
DOWNSAMPLE_METHODS: tuple[DownsampleName, ...] = ("area", "bicubic")


@dataclass(frozen=True)
class SurveillanceParams:
    """One camera setting. ``jpeg_quality=None`` switches JPEG off (for analysis and tests only)."""

    optical_blur_sigma: float  # Gaussian sigma in output pixels; 0 = no optical blur
    noise_sigma: float  # standard deviation of the sensor noise in 0..255 units; 0 = none
    jpeg_quality: int | None  # Pillow quality 1..95; None = no JPEG
    colour_gain: tuple[float, float, float] = (1.0, 1.0, 1.0)  # R, G, B multipliers
    downsample: DownsampleName = "area"

    def __post_init__(self) -> None:
        if not (self.optical_blur_sigma >= 0 and math.isfinite(self.optical_blur_sigma)):
            raise ConfigError(f"optical_blur_sigma must be >= 0, got {self.optical_blur_sigma}")
        if not (self.noise_sigma >= 0 and math.isfinite(self.noise_sigma)):
            raise ConfigError(f"noise_sigma must be >= 0, got {self.noise_sigma}")
        if self.jpeg_quality is not None and not 1 <= self.jpeg_quality <= 95:
            raise ConfigError(f"jpeg_quality must be in 1..95 or None, got {self.jpeg_quality}")
        if len(self.colour_gain) != 3 or any(not (0 < g < 2) for g in self.colour_gain):
            raise ConfigError(f"colour_gain must be three multipliers in (0, 2), got {self.colour_gain}")
        if self.downsample not in DOWNSAMPLE_METHODS:
            raise ConfigError(f"downsample must be one of {DOWNSAMPLE_METHODS}, got {self.downsample!r}")


#: A fixed mid-range setting: the surveillance quality of the LFW cross-resolution benchmark.
DEFAULT_SURVEILLANCE = SurveillanceParams(
    optical_blur_sigma=0.7,
    noise_sigma=4.0,
    jpeg_quality=60,
    colour_gain=(1.03, 1.0, 0.97),
    downsample="area",
)


def sample_surveillance_params(rng: np.random.Generator) -> SurveillanceParams:
    """Draw a realistic CCTV setting: blur sigma 0.3-1.2 output px, noise 2-8, JPEG 30-85, gain 0.93-1.07.

    All draws come from ``rng``; the same generator state gives the same parameters.
    """
    blur = float(rng.uniform(*BLUR_SIGMA_RANGE))
    noise = float(rng.uniform(*NOISE_SIGMA_RANGE))
    quality = int(rng.integers(JPEG_QUALITY_RANGE[0], JPEG_QUALITY_RANGE[1] + 1))
    gain = rng.uniform(*COLOUR_GAIN_RANGE, size=3)
    downsample = DOWNSAMPLE_METHODS[int(rng.integers(len(DOWNSAMPLE_METHODS)))]
    return SurveillanceParams(
        optical_blur_sigma=blur,
        noise_sigma=noise,
        jpeg_quality=quality,
        colour_gain=(float(gain[0]), float(gain[1]), float(gain[2])),
        downsample=downsample,
    )


def scaled_size(height: int, width: int, factor: float) -> tuple[int, int]:
    """Output ``(height, width)`` of :func:`degrade_to_scale`: rounded, at least 1 px."""
    return max(1, round(height * factor)), max(1, round(width * factor))


def degrade_to_scale(image: np.ndarray, factor: float, params: SurveillanceParams, seed: int) -> np.ndarray:
    """Simulate a surveillance camera that sees ``image`` at ``factor`` times its resolution.

    Args:
        image: uint8 ``(H, W, 3)`` RGB.
        factor: linear scale of the output, e.g. ``0.25`` makes a 120 px face 30 px (values < 1 shrink).
        params: the camera setting (see :class:`SurveillanceParams`).
        seed: seeds the sensor noise; the same inputs and seed always give the same bytes.

    Returns:
        uint8 ``(round(H*factor), round(W*factor), 3)`` RGB.
    """
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ShapeError(f"image: expected uint8 (H,W,3) RGB, got {image.dtype} {image.shape}")
    if not (factor > 0 and math.isfinite(factor)):
        raise ConfigError(f"factor must be a positive number, got {factor}")
    out_h, out_w = scaled_size(image.shape[0], image.shape[1], factor)
    x = image.astype(np.float32)

    sigma_in = params.optical_blur_sigma / factor
    if sigma_in > 0:
        radius = max(1, math.ceil(3.0 * sigma_in))
        x = cv2.GaussianBlur(x, (2 * radius + 1, 2 * radius + 1), sigma_in, borderType=cv2.BORDER_REFLECT_101)

    if (out_h, out_w) != image.shape[:2]:
        shrinking = out_h < image.shape[0]
        if params.downsample == "area" and shrinking:
            interpolation = cv2.INTER_AREA
        else:
            interpolation = cv2.INTER_CUBIC
        x = cv2.resize(x, (out_w, out_h), interpolation=interpolation)

    if params.noise_sigma > 0:
        rng = np.random.default_rng(seed)
        x = x + rng.normal(0.0, params.noise_sigma, size=x.shape).astype(np.float32)
    x = x * np.asarray(params.colour_gain, dtype=np.float32)
    out = np.clip(np.rint(x), 0, 255).astype(np.uint8)

    if params.jpeg_quality is not None:
        buffer = io.BytesIO()
        Image.fromarray(out).save(buffer, format="JPEG", quality=params.jpeg_quality)
        buffer.seek(0)
        with Image.open(buffer) as decoded:
            out = np.asarray(decoded.convert("RGB"), dtype=np.uint8).copy()
    return out
