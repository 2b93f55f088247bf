"""A broad, randomised family of surveillance cameras, for training models that must work on cameras we never see.

:mod:`forensic_face.surveillance` is *one* mid-range CCTV model (the LFW-XRes benchmark's). Training a recognizer or
an upsampler on it alone would tune them to that camera. This family draws every factor independently and much
wider, in the order a real camera chain applies them:

1. optics: Gaussian defocus (0-1.6 output px) and, sometimes, linear motion blur (1-5 output px, any angle);
2. sampling by the sensor/scaler: area, bilinear, bicubic or nearest;
3. exposure: gamma 0.6-1.6 and, sometimes, low light (gain 0.35-0.8, which also raises the relative noise);
4. sensor noise: Gaussian (0-14 on the 0..255 scale) and/or Poisson (shot noise at 4-60 photons per unit);
5. colour processing: per-channel white-balance gains 0.85-1.15; sometimes grey (IR night mode, mono cameras);
6. JPEG at quality 20-95 with 4:2:0 chroma subsampling (most of the time; some streams are near-lossless).

Sampling the parameters (:func:`sample_camera`) is separate from applying them (:func:`apply_camera`), so a
training batch can be recorded and replayed. All randomness comes from a ``numpy.random.Generator``.

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> face = np.full((120, 120, 3), 128, np.uint8)
>>> apply_camera(face, (30, 30), sample_camera(rng), rng).shape
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

from forensic_face.engine import ShapeError

SamplingName = Literal["area", "bilinear", "bicubic", "nearest"]
SAMPLING_METHODS: tuple[SamplingName, ...] = ("area", "bilinear", "bicubic", "nearest")
_CV2_INTERPOLATION = {"area": cv2.INTER_AREA, "bilinear": cv2.INTER_LINEAR, "bicubic": cv2.INTER_CUBIC,
                      "nearest": cv2.INTER_NEAREST}
#: Relative frequency of the sampling methods (area-like binning and bilinear scalers are the most common).
SAMPLING_WEIGHTS = (0.4, 0.25, 0.2, 0.15)


@dataclass(frozen=True)
class CameraParams:
    """One camera of the family (see the module docstring for the ranges)."""

    defocus_sigma: float  # Gaussian sigma in output pixels
    motion_length: float  # motion-blur length in output pixels; 0 = none
    motion_angle_deg: float
    sampling: SamplingName
    gamma: float
    exposure_gain: float  # < 1 is low light
    gaussian_noise: float  # sigma on the 0..255 scale
    poisson_photons: float  # photons per unit intensity for shot noise; 0 = none
    white_balance: tuple[float, float, float]
    grey: bool
    jpeg_quality: int | None  # None = no JPEG


def sample_camera(rng: np.random.Generator) -> CameraParams:
    """Draw one camera from the family; every draw comes from ``rng``."""
    motion = float(rng.uniform(1.0, 5.0)) if rng.random() < 0.3 else 0.0
    low_light = rng.random() < 0.25
    return CameraParams(
        defocus_sigma=float(rng.uniform(0.0, 1.6)),
        motion_length=motion,
        motion_angle_deg=float(rng.uniform(0.0, 180.0)),
        sampling=SAMPLING_METHODS[int(rng.choice(len(SAMPLING_METHODS), p=SAMPLING_WEIGHTS))],
        gamma=float(np.exp(rng.uniform(np.log(0.6), np.log(1.6)))),
        exposure_gain=float(rng.uniform(0.35, 0.8)) if low_light else 1.0,
        gaussian_noise=float(rng.uniform(0.0, 14.0)),
        poisson_photons=float(np.exp(rng.uniform(np.log(4.0), np.log(60.0)))) if rng.random() < 0.35 else 0.0,
        white_balance=tuple(float(g) for g in rng.uniform(0.85, 1.15, size=3)),  # type: ignore[arg-type]
        grey=bool(rng.random() < 0.15),
        jpeg_quality=int(rng.integers(20, 96)) if rng.random() < 0.85 else None,
    )


def motion_kernel(length_px: float, angle_deg: float) -> np.ndarray:
    """Normalised line kernel of ``length_px`` (sub-pixel lengths spread over the end pixels)."""
    size = max(3, 2 * math.ceil(length_px / 2) + 1)
    kernel = np.zeros((size, size), np.float32)
    centre = size // 2
    angle = math.radians(angle_deg)
    steps = max(2, int(math.ceil(length_px * 4)))
    for t in np.linspace(-length_px / 2, length_px / 2, steps):
        x, y = centre + t * math.cos(angle), centre + t * math.sin(angle)
        x0, y0 = int(math.floor(x)), int(math.floor(y))
        fx, fy = x - x0, y - y0
        for dx, dy, w in ((0, 0, (1 - fx) * (1 - fy)), (1, 0, fx * (1 - fy)), (0, 1, (1 - fx) * fy), (1, 1, fx * fy)):
            if 0 <= x0 + dx < size and 0 <= y0 + dy < size:
                kernel[y0 + dy, x0 + dx] += w
    return kernel / kernel.sum()


def apply_optics(image: np.ndarray, factor: float, params: CameraParams) -> np.ndarray:
    """Blur float32 ``(H,W,3)`` at input resolution so that the blur has its size in *output* pixels."""
    sigma_in = params.defocus_sigma / factor
    out = image
    if sigma_in > 0.05:
        radius = max(1, math.ceil(3.0 * sigma_in))
        out = cv2.GaussianBlur(out, (2 * radius + 1, 2 * radius + 1), sigma_in, borderType=cv2.BORDER_REFLECT_101)
    if params.motion_length > 0:
        out = cv2.filter2D(out, -1, motion_kernel(params.motion_length / factor, params.motion_angle_deg),
                           borderType=cv2.BORDER_REFLECT_101)
    return out


def apply_camera(region: np.ndarray, out_size: tuple[int, int], params: CameraParams,
                 rng: np.random.Generator) -> np.ndarray:
    """What the camera ``params`` records of ``region`` (uint8 ``(H,W,3)`` RGB) at ``out_size`` ``(h, w)``.

    The optics are applied at the region's resolution; the noise comes from ``rng``. Returns uint8 RGB.
    """
    if region.ndim != 3 or region.shape[2] != 3 or region.dtype != np.uint8:
        raise ShapeError(f"region: expected uint8 (H,W,3) RGB, got {region.dtype} {region.shape}")
    out_h, out_w = out_size
    factor = out_w / region.shape[1]
    x = apply_optics(region.astype(np.float32), factor, params)
    x = cv2.resize(x, (out_w, out_h), interpolation=_CV2_INTERPOLATION[params.sampling])
    x = np.clip(x / 255.0, 0.0, 1.0) ** params.gamma * params.exposure_gain
    if params.poisson_photons > 0:
        x = rng.poisson(x * params.poisson_photons).astype(np.float32) / params.poisson_photons
    x = x * 255.0
    if params.gaussian_noise > 0:
        x = x + rng.normal(0.0, params.gaussian_noise, size=x.shape).astype(np.float32)
    x = x * np.asarray(params.white_balance, dtype=np.float32)
    if params.grey:
        x = np.repeat(x @ np.array([[0.299], [0.587], [0.114]], np.float32), 3, axis=2)
    out = np.clip(np.rint(x), 0, 255).astype(np.uint8)
    if params.jpeg_quality is not None:
        buffer = io.BytesIO()
        Image.fromarray(out).save(buffer, format="JPEG", quality=params.jpeg_quality, subsampling=2)
        buffer.seek(0)
        with Image.open(buffer) as decoded:
            out = np.asarray(decoded.convert("RGB"), dtype=np.uint8).copy()
    return out
