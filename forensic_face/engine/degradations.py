"""Gallery degradation bank (paper section 3.2, Table 1, eq. 1, Figure 2).

Every degradation of Table 1 is a pair, in the kornia style:

* ``sample_<name>(batch, generator, height, width) -> Params`` draws the per-image parameters from the given
  CPU :class:`torch.Generator` (never the global RNG). Every tensor in ``Params`` has a leading batch axis
  ``(B, ...)`` so the setting varies per image inside one batched call and can be stored for replay.
* ``apply_<name>(images, params) -> images`` is deterministic: ``(B,3,H,W)`` float in [0, 1] in, the same
  shape, dtype and device out, clamped to [0, 1]. Parameters are moved to ``images.device``.

Chains follow eq. (1): ``G_H = rho3(down2(rho2(down2(rho1(G)))))``, where ``down2`` halves the size with
antialiased bicubic interpolation, so a chain of length k yields an image of size ``H / 2**(k-1)``.
The chains form a tree (Figure 2); :func:`iter_degraded` walks it depth first so every prefix is computed once
for the whole batch. Randomness at a tree node is drawn from a generator seeded by :func:`node_seed` from the
image's seed and the node's prefix, so an image's hypothesis for a path never depends on the batch it was in or
on which other paths were requested.

Ranges chosen for the random degradations (the paper gives none) are documented on each sampler and in
``docs/degradations.md``.
"""

from __future__ import annotations

import hashlib
import logging
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from forensic_face.engine.callbacks import check_cancel
from forensic_face.engine.check import check_image_batch
from forensic_face.engine.config import BUDGETS
from forensic_face.engine.errors import ConfigError, ShapeError

log = logging.getLogger(__name__)

Params = dict[str, torch.Tensor]
Path = tuple[str, ...]

#: Variance of the additive and multiplicative Gaussian noise (Table 1).
NOISE_VARIANCE = 0.02
#: Horizontal motion-blur window in pixels (Table 1).
MOTION_BLUR_WINDOW_PX = 20
#: Gaussian blur (Table 1).
GAUSS_BLUR_SIGMA = 1.1
GAUSS_BLUR_WINDOW_PX = 5
#: Disk blur radius in pixels (Table 1).
DISK_BLUR_RADIUS_PX = 5
#: Colour jitter: hue shift as a fraction of the hue circle, saturation factor.
HUE_SHIFT_MAX = 0.05
SATURATION_RANGE = (0.6, 1.4)
#: Brightness jitter: multiplicative brightness and contrast factors.
BRIGHTNESS_RANGE = (0.7, 1.3)
CONTRAST_RANGE = (0.7, 1.3)
#: Perspective: each corner moves independently by up to this fraction of the image side, in x and y.
PERSPECTIVE_MAX_SHIFT = 0.1
#: Shear: shear coefficients (tangent of the shear angle) in x and y, about +/- 8.5 degrees.
SHEAR_MAX = 0.15
#: Down-then-up rescale: the downscale factor is drawn uniformly from these values.
RESCALE_FACTORS = (1.5, 2.0, 2.5, 3.0)
#: PatchShuffle (Kang et al. 2017): patch side and per-patch shuffle probability.
PATCH_SHUFFLE_SIZE_PX = 2
PATCH_SHUFFLE_PROBABILITY = 0.2

#: Bumped whenever a change alters which pixels a given (seed, path) produces.
ALGORITHM_VERSION = "degradations-v1"


# --------------------------------------------------------------------------------------------- helpers


def _uniform(batch: int, generator: torch.Generator, low: float, high: float, *shape: int) -> torch.Tensor:
    u = torch.rand((batch, *shape), generator=generator, dtype=torch.float32)
    return low + (high - low) * u


def _param(params: Params, key: str, x: torch.Tensor, name: str) -> torch.Tensor:
    if key not in params:
        raise ConfigError(f"{name}: missing parameter {key!r}; draw params with sample_{name}")
    value = params[key].to(device=x.device)
    if value.shape[0] != x.shape[0]:
        raise ShapeError(f"{name}: parameter {key!r} is for {value.shape[0]} images, got {x.shape[0]}")
    return value


def _depthwise(x: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Convolve each channel with the same 2-D ``kernel`` (kh, kw), replicate padding, output size = input size."""
    kh, kw = kernel.shape
    top, left = (kh - 1) // 2, (kw - 1) // 2
    padded = F.pad(x, (left, kw - 1 - left, top, kh - 1 - top), mode="replicate")
    weight = kernel.to(device=x.device, dtype=x.dtype).expand(x.shape[1], 1, kh, kw)
    return F.conv2d(padded, weight, groups=x.shape[1])


def _gray(x: torch.Tensor) -> torch.Tensor:
    weights = torch.tensor([0.299, 0.587, 0.114], device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    return (x * weights).sum(dim=1, keepdim=True)


def motion_blur_kernel(window_px: int = MOTION_BLUR_WINDOW_PX) -> torch.Tensor:
    """Horizontal box kernel ``(1, window_px)`` summing to one."""
    return torch.full((1, window_px), 1.0 / window_px)


def gaussian_kernel(sigma: float = GAUSS_BLUR_SIGMA, window_px: int = GAUSS_BLUR_WINDOW_PX) -> torch.Tensor:
    """Normalised isotropic Gaussian ``(window_px, window_px)``."""
    coords = torch.arange(window_px, dtype=torch.float64) - (window_px - 1) / 2
    g = torch.exp(-(coords**2) / (2 * sigma**2))
    kernel = g[:, None] * g[None, :]
    return (kernel / kernel.sum()).float()


def disk_kernel(radius_px: int = DISK_BLUR_RADIUS_PX, supersample: int = 8) -> torch.Tensor:
    """Normalised disk ``(2r+1, 2r+1)``; edge pixels weighted by the fraction of their area inside the disk."""
    size = 2 * radius_px + 1
    offsets = (torch.arange(supersample, dtype=torch.float64) + 0.5) / supersample - 0.5
    centres = torch.arange(size, dtype=torch.float64) - radius_px
    fine = (centres[:, None] + offsets[None, :]).reshape(-1)
    inside = (fine[:, None] ** 2 + fine[None, :] ** 2) <= radius_px**2
    coverage = inside.double().reshape(size, supersample, size, supersample).mean(dim=(1, 3))
    return (coverage / coverage.sum()).float()


def down2(images: torch.Tensor) -> torch.Tensor:
    """The paper's downsampling between chain steps: 2x, bicubic, antialiased, clamped to [0, 1]."""
    h, w = images.shape[-2:]
    out = F.interpolate(images.float(), size=(max(1, h // 2), max(1, w // 2)), mode="bicubic",
                        align_corners=False, antialias=True)
    return out.clamp(0.0, 1.0).to(images.dtype)


# --------------------------------------------------------------------------------------------- noise


def sample_gauss_noise(batch: int, generator: torch.Generator, height: int, width: int,
                       variance: float = NOISE_VARIANCE) -> Params:
    """Additive Gaussian noise, mean 0, variance 0.02 (Table 1), drawn independently per pixel and channel.

    Returns ``noise`` ``(B,3,H,W)`` standard normal and ``std`` ``(B,)``.
    """
    noise = torch.randn((batch, 3, height, width), generator=generator, dtype=torch.float32)
    return {"noise": noise, "std": torch.full((batch,), math.sqrt(variance))}


def apply_gauss_noise(images: torch.Tensor, params: Params) -> torch.Tensor:
    """``clamp(x + std * noise)``."""
    check_image_batch(images)
    x = images.float()
    noise = _param(params, "noise", x, "gauss_noise")
    std = _param(params, "std", x, "gauss_noise").view(-1, 1, 1, 1)
    return (x + std * noise).clamp(0.0, 1.0).to(images.dtype)


def sample_speckle(batch: int, generator: torch.Generator, height: int, width: int,
                   variance: float = NOISE_VARIANCE) -> Params:
    """Speckle (multiplicative Gaussian) noise, mean 0, variance 0.02 (Table 1): ``x + x * n``."""
    return sample_gauss_noise(batch, generator, height, width, variance)


def apply_speckle(images: torch.Tensor, params: Params) -> torch.Tensor:
    """``clamp(x + x * std * noise)``."""
    check_image_batch(images)
    x = images.float()
    noise = _param(params, "noise", x, "speckle")
    std = _param(params, "std", x, "speckle").view(-1, 1, 1, 1)
    return (x + x * std * noise).clamp(0.0, 1.0).to(images.dtype)


# --------------------------------------------------------------------------------------------- photometric


def rgb_to_hsv(images: torch.Tensor) -> torch.Tensor:
    """``(B,3,H,W)`` RGB in [0,1] to HSV with every channel in [0,1] (hue as a fraction of the circle)."""
    r, g, b = images.unbind(dim=1)
    maxc, argmax = images.max(dim=1)
    minc = images.min(dim=1).values
    delta = maxc - minc
    safe = torch.where(delta > 0, delta, torch.ones_like(delta))
    hue = torch.where(argmax == 0, ((g - b) / safe) % 6.0,
                      torch.where(argmax == 1, (b - r) / safe + 2.0, (r - g) / safe + 4.0))
    hue = torch.where(delta > 0, hue / 6.0, torch.zeros_like(hue))
    sat = torch.where(maxc > 0, delta / torch.where(maxc > 0, maxc, torch.ones_like(maxc)), torch.zeros_like(maxc))
    return torch.stack((hue, sat, maxc), dim=1)


def hsv_to_rgb(hsv: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`rgb_to_hsv`."""
    h, s, v = hsv.unbind(dim=1)
    h6 = (h % 1.0) * 6.0
    sector = torch.floor(h6)
    f = h6 - sector
    p = v * (1 - s)
    q = v * (1 - s * f)
    t = v * (1 - s * (1 - f))
    sector = sector.long() % 6
    # Per sector (0..5) the (r, g, b) sources among (v, t, p, q).
    table_r = torch.stack((v, q, p, p, t, v), dim=1)
    table_g = torch.stack((t, v, v, q, p, p), dim=1)
    table_b = torch.stack((p, p, t, v, v, q), dim=1)
    idx = sector.unsqueeze(1)
    return torch.cat((table_r.gather(1, idx), table_g.gather(1, idx), table_b.gather(1, idx)), dim=1)


def sample_color_jitter(batch: int, generator: torch.Generator, height: int, width: int,
                        hue_shift_max: float = HUE_SHIFT_MAX,
                        saturation_range: tuple[float, float] = SATURATION_RANGE) -> Params:
    """Colour jitter: hue shift uniform in [-0.05, 0.05] of the hue circle (+/- 18 degrees), saturation factor
    uniform in [0.6, 1.4]. Returns ``hue_shift`` ``(B,)`` and ``saturation`` ``(B,)``."""
    return {"hue_shift": _uniform(batch, generator, -hue_shift_max, hue_shift_max),
            "saturation": _uniform(batch, generator, *saturation_range)}


def apply_color_jitter(images: torch.Tensor, params: Params) -> torch.Tensor:
    """Shift hue and scale saturation in HSV space."""
    check_image_batch(images)
    x = images.float()
    shift = _param(params, "hue_shift", x, "color_jitter").view(-1, 1, 1)
    factor = _param(params, "saturation", x, "color_jitter").view(-1, 1, 1)
    h, s, v = rgb_to_hsv(x.clamp(0.0, 1.0)).unbind(dim=1)
    hsv = torch.stack(((h + shift) % 1.0, (s * factor).clamp(0.0, 1.0), v), dim=1)
    return hsv_to_rgb(hsv).clamp(0.0, 1.0).to(images.dtype)


def sample_brightness(batch: int, generator: torch.Generator, height: int, width: int,
                      brightness_range: tuple[float, float] = BRIGHTNESS_RANGE,
                      contrast_range: tuple[float, float] = CONTRAST_RANGE) -> Params:
    """Brightness jitter: brightness and contrast factors each uniform in [0.7, 1.3]. Returns ``brightness``
    ``(B,)`` and ``contrast`` ``(B,)``."""
    return {"brightness": _uniform(batch, generator, *brightness_range),
            "contrast": _uniform(batch, generator, *contrast_range)}


def apply_brightness(images: torch.Tensor, params: Params) -> torch.Tensor:
    """``x * brightness``, clamped, then contrast: blend with the image's mean grey, ``m + c * (x - m)``."""
    check_image_batch(images)
    x = images.float()
    bright = _param(params, "brightness", x, "brightness").view(-1, 1, 1, 1)
    contrast = _param(params, "contrast", x, "brightness").view(-1, 1, 1, 1)
    x = (x * bright).clamp(0.0, 1.0)
    mean = _gray(x).mean(dim=(2, 3), keepdim=True)
    return (mean + contrast * (x - mean)).clamp(0.0, 1.0).to(images.dtype)


# --------------------------------------------------------------------------------------------- blurs


def sample_motion_blur(batch: int, generator: torch.Generator, height: int, width: int) -> Params:
    """Horizontal motion blur has no random parameter (window 20, Table 1)."""
    return {}


def apply_motion_blur(images: torch.Tensor, params: Params) -> torch.Tensor:
    """Horizontal box blur over 20 pixels (replicate padding; the even window sits 10 left, 9 right)."""
    check_image_batch(images)
    x = images.float()
    return _depthwise(x, motion_blur_kernel()).clamp(0.0, 1.0).to(images.dtype)


def sample_gauss_blur(batch: int, generator: torch.Generator, height: int, width: int) -> Params:
    """Gaussian blur has no random parameter (sigma 1.1, window 5, Table 1)."""
    return {}


def apply_gauss_blur(images: torch.Tensor, params: Params) -> torch.Tensor:
    """Gaussian blur, sigma 1.1, 5x5 window, replicate padding."""
    check_image_batch(images)
    x = images.float()
    return _depthwise(x, gaussian_kernel()).clamp(0.0, 1.0).to(images.dtype)


def sample_disk_blur(batch: int, generator: torch.Generator, height: int, width: int) -> Params:
    """Disk blur has no random parameter (radius 5, Table 1)."""
    return {}


def apply_disk_blur(images: torch.Tensor, params: Params) -> torch.Tensor:
    """Disk (pillbox) blur of radius 5 pixels, 11x11 kernel, replicate padding."""
    check_image_batch(images)
    x = images.float()
    return _depthwise(x, disk_kernel()).clamp(0.0, 1.0).to(images.dtype)


# --------------------------------------------------------------------------------------------- geometric


def _base_grid(batch: int, height: int, width: int, device: torch.device) -> torch.Tensor:
    """Normalised pixel-centre coordinates ``(B,H,W,2)`` (x, y) in [-1, 1], align_corners=False."""
    theta = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], device=device).expand(batch, 2, 3)
    return F.affine_grid(theta, [batch, 3, height, width], align_corners=False)


def sample_perspective(batch: int, generator: torch.Generator, height: int, width: int,
                       max_shift: float = PERSPECTIVE_MAX_SHIFT) -> Params:
    """Random perspective: each of the 4 image corners (top-left, top-right, bottom-right, bottom-left) moves
    independently in x and y by a uniform fraction in [-0.1, 0.1] of the image side. Returns ``corner_shift``
    ``(B,4,2)`` in normalised units (the image spans [-1, 1], so 0.1 of the side is 0.2)."""
    return {"corner_shift": _uniform(batch, generator, -2 * max_shift, 2 * max_shift, 4, 2)}


def _homography(src: torch.Tensor, dst: torch.Tensor) -> torch.Tensor:
    """Batched 3x3 homographies ``(B,3,3)`` with ``H @ src_i ~ dst_i`` for 4 point pairs ``(B,4,2)``."""
    batch = src.shape[0]
    x, y = src[..., 0], src[..., 1]
    u, v = dst[..., 0], dst[..., 1]
    zeros, ones = torch.zeros_like(x), torch.ones_like(x)
    rows_u = torch.stack((x, y, ones, zeros, zeros, zeros, -u * x, -u * y), dim=-1)
    rows_v = torch.stack((zeros, zeros, zeros, x, y, ones, -v * x, -v * y), dim=-1)
    a = torch.cat((rows_u, rows_v), dim=1)
    rhs = torch.cat((u, v), dim=1).unsqueeze(-1)
    h = torch.linalg.solve(a, rhs).squeeze(-1)
    return torch.cat((h, torch.ones(batch, 1, dtype=h.dtype, device=h.device)), dim=1).view(batch, 3, 3)


def apply_perspective(images: torch.Tensor, params: Params) -> torch.Tensor:
    """Warp so each image corner lands at ``corner + corner_shift``; bilinear, border padding (no black
    wedges, which would be a cue unrelated to identity)."""
    check_image_batch(images)
    x = images.float()
    shift = _param(params, "corner_shift", x, "perspective").double()
    batch, _, height, width = x.shape
    corners = torch.tensor([[-1.0, -1.0], [1.0, -1.0], [1.0, 1.0], [-1.0, 1.0]], dtype=torch.float64,
                           device=x.device).expand(batch, 4, 2)
    # Sampling maps output coordinates (the moved corners) back to input coordinates (the original corners).
    hom = _homography(corners + shift, corners)
    grid = _base_grid(batch, height, width, x.device).double()
    homog = torch.cat((grid, torch.ones_like(grid[..., :1])), dim=-1)
    mapped = torch.einsum("bij,bhwj->bhwi", hom, homog)
    grid_in = (mapped[..., :2] / mapped[..., 2:3]).float()
    out = F.grid_sample(x, grid_in, mode="bilinear", padding_mode="border", align_corners=False)
    return out.clamp(0.0, 1.0).to(images.dtype)


def sample_shear(batch: int, generator: torch.Generator, height: int, width: int,
                 max_shear: float = SHEAR_MAX) -> Params:
    """Random shear: coefficients ``shear`` ``(B,2)`` (x, y) each uniform in [-0.15, 0.15] (tangent of the
    shear angle, about +/- 8.5 degrees), in pixel units about the image centre."""
    return {"shear": _uniform(batch, generator, -max_shear, max_shear, 2)}


def apply_shear(images: torch.Tensor, params: Params) -> torch.Tensor:
    """Sample the input at ``x' = x + sx * y``, ``y' = y + sy * x`` (pixel units about the centre); bilinear,
    border padding."""
    check_image_batch(images)
    x = images.float()
    shear = _param(params, "shear", x, "shear")
    batch, _, height, width = x.shape
    theta = torch.zeros(batch, 2, 3, device=x.device)
    theta[:, 0, 0] = 1.0
    theta[:, 1, 1] = 1.0
    # Normalised coordinates scale x by 2/W and y by 2/H; convert the pixel-unit shear accordingly.
    theta[:, 0, 1] = shear[:, 0] * height / width
    theta[:, 1, 0] = shear[:, 1] * width / height
    grid = F.affine_grid(theta, [batch, 3, height, width], align_corners=False)
    out = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    return out.clamp(0.0, 1.0).to(images.dtype)


# --------------------------------------------------------------------------------------------- resampling


def sample_rescale(batch: int, generator: torch.Generator, height: int, width: int,
                   factors: Sequence[float] = RESCALE_FACTORS) -> Params:
    """Down-then-up rescale: ``factor`` ``(B,)`` drawn uniformly from {1.5, 2, 2.5, 3}. A small set keeps the
    batch in at most four groups that share an intermediate size."""
    choice = torch.randint(len(factors), (batch,), generator=generator)
    return {"factor": torch.tensor(list(factors), dtype=torch.float32)[choice]}


def apply_rescale(images: torch.Tensor, params: Params) -> torch.Tensor:
    """Downscale by ``factor`` (bicubic, antialiased), then upscale back to the original size (bicubic)."""
    check_image_batch(images)
    x = images.float()
    factor = _param(params, "factor", x, "rescale")
    height, width = x.shape[-2:]
    out = torch.empty_like(x)
    for value in torch.unique(factor).tolist():
        idx = (factor == value).nonzero(as_tuple=True)[0]
        small_size = (max(1, round(height / value)), max(1, round(width / value)))
        small = F.interpolate(x[idx], size=small_size, mode="bicubic", align_corners=False, antialias=True)
        out[idx] = F.interpolate(small.clamp(0.0, 1.0), size=(height, width), mode="bicubic",
                                 align_corners=False)
    return out.clamp(0.0, 1.0).to(images.dtype)


def sample_patch_shuffle(batch: int, generator: torch.Generator, height: int, width: int,
                         patch_px: int = PATCH_SHUFFLE_SIZE_PX,
                         probability: float = PATCH_SHUFFLE_PROBABILITY) -> Params:
    """PatchShuffle (Kang et al. 2017): the image is tiled into non-overlapping 2x2 patches; each patch is
    shuffled with probability 0.2 by a uniformly random permutation of its pixels (channels move together).
    Returns ``permutation`` ``(B, H//2, W//2, 4)`` (the identity for unshuffled patches)."""
    rows, cols = height // patch_px, width // patch_px
    cells = patch_px * patch_px
    perm = torch.rand((batch, rows, cols, cells), generator=generator).argsort(dim=-1)
    shuffle = torch.rand((batch, rows, cols), generator=generator) < probability
    identity = torch.arange(cells).expand(batch, rows, cols, cells)
    return {"permutation": torch.where(shuffle.unsqueeze(-1), perm, identity)}


def apply_patch_shuffle(images: torch.Tensor, params: Params) -> torch.Tensor:
    """Permute pixels within each patch; a trailing row/column that does not fill a patch is left as is."""
    check_image_batch(images)
    perm = _param(params, "permutation", images, "patch_shuffle")
    batch, channels, height, width = images.shape
    rows, cols, cells = perm.shape[1:]
    patch = math.isqrt(cells)
    if rows != height // patch or cols != width // patch:
        raise ShapeError(f"patch_shuffle: permutation grid {rows}x{cols} does not fit a {height}x{width} image")
    out = images.clone()
    region = images[:, :, : rows * patch, : cols * patch]
    tiles = region.reshape(batch, channels, rows, patch, cols, patch).permute(0, 1, 2, 4, 3, 5)
    tiles = tiles.reshape(batch, channels, rows, cols, cells)
    index = perm.unsqueeze(1).expand(batch, channels, rows, cols, cells)
    shuffled = tiles.gather(-1, index).reshape(batch, channels, rows, cols, patch, patch)
    out[:, :, : rows * patch, : cols * patch] = shuffled.permute(0, 1, 2, 4, 3, 5).reshape(
        batch, channels, rows * patch, cols * patch)
    return out


# --------------------------------------------------------------------------------------------- registry

Sampler = Callable[[int, torch.Generator, int, int], Params]
Applier = Callable[[torch.Tensor, Params], torch.Tensor]


@dataclass(frozen=True)
class Degradation:
    """One degradation function of Table 1: a stable short ``name``, a parameter sampler and a pure apply."""

    name: str
    description: str
    sampler: Sampler
    applier: Applier
    #: What an investigator reads for it, e.g. "motion blur" (defaults to the name).
    plain: str = ""

    def sample(self, batch: int, generator: torch.Generator, height: int, width: int) -> Params:
        return self.sampler(batch, generator, height, width)

    def apply(self, images: torch.Tensor, params: Params) -> torch.Tensor:
        return self.applier(images, params)

    def __call__(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Sample for the batch from ``generator`` and apply."""
        params = self.sample(images.shape[0], generator, images.shape[-2], images.shape[-1])
        return self.apply(images, params)


_REGISTRY: dict[str, Degradation] = {}


def register_degradation(degradation: Degradation) -> None:
    """Add a degradation; duplicate names and names with ``>`` are rejected."""
    if degradation.name in _REGISTRY:
        raise ConfigError(f"degradation {degradation.name!r} is already registered")
    if ">" in degradation.name or not degradation.name:
        raise ConfigError(f"invalid degradation name {degradation.name!r}")
    _REGISTRY[degradation.name] = degradation


for _deg in (
    Degradation("gauss_noise", "Additive Gaussian noise, mean 0, variance 0.02", sample_gauss_noise,
                apply_gauss_noise, plain="Gaussian noise"),
    Degradation("speckle", "Multiplicative Gaussian (speckle) noise, mean 0, variance 0.02", sample_speckle,
                apply_speckle, plain="speckle noise"),
    Degradation("color_jitter", "Random hue and saturation change", sample_color_jitter, apply_color_jitter, plain="colour shift"),
    Degradation("brightness", "Random brightness and contrast change", sample_brightness, apply_brightness, plain="brightness and contrast change"),
    Degradation("motion_blur", "Horizontal motion blur, window 20", sample_motion_blur, apply_motion_blur, plain="motion blur"),
    Degradation("gauss_blur", "Gaussian blur, sigma 1.1, window 5", sample_gauss_blur, apply_gauss_blur, plain="Gaussian blur"),
    Degradation("disk_blur", "Disk blur, radius 5", sample_disk_blur, apply_disk_blur, plain="defocus (disk) blur"),
    Degradation("perspective", "Random perspective transform", sample_perspective, apply_perspective, plain="perspective change"),
    Degradation("shear", "Random shear mapping", sample_shear, apply_shear, plain="shear"),
    Degradation("rescale", "Downscale, then upscale back to the original size", sample_rescale, apply_rescale, plain="down- and up-scaling"),
    Degradation("patch_shuffle", "Random patch shuffle (Kang et al.)", sample_patch_shuffle,
                apply_patch_shuffle, plain="patch shuffle"),
):
    register_degradation(_deg)

#: The 11 names of Table 1, in table order: the bank as shipped. Chains and budgets are derived from the
#: registry itself (:func:`available_degradations`), so a degradation registered later joins them.
DEGRADATION_NAMES: tuple[str, ...] = tuple(_REGISTRY)


def settings_record() -> dict[str, object]:
    """Every fixed setting and range of the bank, for the provenance stored with a search result."""
    return {
        "algorithm_version": ALGORITHM_VERSION,
        "names": available_degradations(),
        "noise_variance": NOISE_VARIANCE,
        "motion_blur_window_px": MOTION_BLUR_WINDOW_PX,
        "gauss_blur_sigma": GAUSS_BLUR_SIGMA,
        "gauss_blur_window_px": GAUSS_BLUR_WINDOW_PX,
        "disk_blur_radius_px": DISK_BLUR_RADIUS_PX,
        "hue_shift_max": HUE_SHIFT_MAX,
        "saturation_range": list(SATURATION_RANGE),
        "brightness_range": list(BRIGHTNESS_RANGE),
        "contrast_range": list(CONTRAST_RANGE),
        "perspective_max_shift": PERSPECTIVE_MAX_SHIFT,
        "shear_max": SHEAR_MAX,
        "rescale_factors": list(RESCALE_FACTORS),
        "patch_shuffle_size_px": PATCH_SHUFFLE_SIZE_PX,
        "patch_shuffle_probability": PATCH_SHUFFLE_PROBABILITY,
        "downsampling": "2x bicubic, antialiased, between chain steps",
    }


def available_degradations() -> list[str]:
    """Registered names in registration (Table 1) order."""
    return list(_REGISTRY)


def get_degradation(name: str) -> Degradation:
    if name not in _REGISTRY:
        raise ConfigError(f"unknown degradation {name!r}; available: {', '.join(_REGISTRY)}")
    return _REGISTRY[name]


# --------------------------------------------------------------------------------------------- paths


def path_label(path: Sequence[str]) -> str:
    """``("gauss_noise", "disk_blur")`` -> ``"gauss_noise>down>disk_blur"`` (the downsampling made explicit)."""
    if not path:
        raise ConfigError("a degradation path needs at least one step")
    return ">down>".join(path)


#: Label of the undegraded gallery crop, always the first gallery hypothesis.
ORIGINAL_PATH = "original"


def describe_path(label: str) -> str:
    """A gallery hypothesis label in words, for investigators and reports.

    >>> describe_path("speckle>down>gauss_noise>down>gauss_blur")
    'speckle noise, then half size, then Gaussian noise, then half size, then Gaussian blur'
    >>> describe_path("original")
    'the portrait as enrolled'
    """
    if label == ORIGINAL_PATH:
        return "the portrait as enrolled"
    # A name this version does not know (a case from another version) is shown as it is, never refused.
    steps = [(_REGISTRY[n].plain or n) if n in _REGISTRY else n for n in label.split(">down>")]
    return ", then half size, then ".join(steps)


def parse_path_label(label: str) -> Path:
    """Inverse of :func:`path_label`; unknown names raise :class:`ConfigError`."""
    path = tuple(label.split(">down>"))
    for name in path:
        get_degradation(name)
    return path


def all_paths(num_degradations: int | None = None, max_len: int = 3) -> list[Path]:
    """Every chain of the first ``num_degradations`` registered degradations (default: all of them) of length
    1..``max_len`` (eq. 1, Figure 2).

    Order: by length, then lexicographically by registration (Table 1) index (``itertools.product`` order). With
    the 11 degradations of Table 1 that is 11 + 121 + 1331 = 1,463 paths.
    """
    registered = available_degradations()
    num_degradations = len(registered) if num_degradations is None else num_degradations
    if not 1 <= num_degradations <= len(registered):
        raise ConfigError(f"num_degradations must be in 1..{len(registered)}, got {num_degradations}")
    if max_len < 1:
        raise ConfigError(f"max_len must be >= 1, got {max_len}")
    names = registered[:num_degradations]
    paths: list[Path] = [(n,) for n in names]
    frontier = list(paths)
    for _ in range(max_len - 1):
        frontier = [p + (n,) for p in frontier for n in names]
        paths.extend(frontier)
    return paths


def _stable_key(*parts: object) -> bytes:
    return hashlib.sha256(":".join(str(p) for p in (ALGORITHM_VERSION, *parts)).encode()).digest()


def _stable_permutation(n: int, *key: object) -> list[int]:
    """A permutation of ``range(n)`` fixed by ``key`` on every machine and Python version (SHA-256 order)."""
    return sorted(range(n), key=lambda i: _stable_key(*key, i))


#: Rounds of the balanced sample per chain length in the "standard" budget: 11 + 2*11 + 3*11 = 66 paths.
STANDARD_ROUNDS = {2: 2, 3: 3}


def balanced_rounds(seed: int = 0, rounds: dict[int, int] = STANDARD_ROUNDS) -> list[tuple[int, set[Path]]]:
    """The balanced sample of chains, one ``(length, chains)`` entry per round, in drawing order.

    Each round of a length builds one chain per registered degradation (11 for Table 1) from independent seeded
    permutations of the registered degradations, one per position, so every degradation occurs exactly once at
    every position of that round; a round that would repeat a chain already chosen (or a single) is redrawn. Permutations come from SHA-256 of ``(seed, length, round,
    position, attempt, index)``, so the sample is identical on every machine.
    """
    names = available_degradations()
    chosen: set[Path] = set(all_paths(max_len=1))
    drawn: list[tuple[int, set[Path]]] = []
    for length, num_rounds in rounds.items():
        for round_index in range(num_rounds):
            for attempt in range(1000):
                perms = [_stable_permutation(len(names), seed, length, round_index, pos, attempt)
                         for pos in range(length)]
                batch = {tuple(names[perms[pos][i]] for pos in range(length)) for i in range(len(names))}
                if not batch & chosen:
                    chosen |= batch
                    drawn.append((length, batch))
                    break
            else:  # pragma: no cover - 1000 collisions in a row would need an astronomically unlucky seed
                raise ConfigError(f"could not draw a balanced path set for seed {seed}")
    return drawn


def select_paths(budget: str, seed: int = 0) -> list[Path]:
    """The degradation paths of a compute budget.

    * ``"none"``: ``[]`` (the caller uses the undegraded gallery image only).
    * ``"fast"``: 11 pairs, the first round of the standard budget's balanced pairs (every degradation once at
      each position), so ``fast`` is a subset of ``standard``. Pairs rather than the 11 singles at the same
      cost: with template fusion they rank about 3 points higher at 24 px (their 2x downsampling between the two
      degradations brings the portrait nearer a tiny probe; measured in ``docs/accuracy.md``). Until
      2026-12-06 ``fast`` was the 11 singles.
    * ``"standard"``: 66 paths: the 11 singles and the rounds of :func:`balanced_rounds`, 2 of pairs and 3 of
      triples (22 pairs, 33 triples), so every degradation occurs exactly twice at every position of the pairs
      and three times at every position of the triples.
    * ``"paper"``: all 1,463 paths of :func:`all_paths`.

    Returned in :func:`all_paths` order.
    """
    if budget == "none":
        return []
    if budget == "paper":
        return all_paths()
    if budget == "fast":
        chosen = balanced_rounds(seed, {2: 1})[0][1]
    elif budget == "standard":
        chosen = set(all_paths(max_len=1)).union(*(batch for _, batch in balanced_rounds(seed)))
    else:
        raise ConfigError(f"unknown degradation budget {budget!r}; expected one of {', '.join(BUDGETS)}")
    order = {p: i for i, p in enumerate(all_paths())}
    return sorted(chosen, key=order.__getitem__)


# --------------------------------------------------------------------------------------------- gallery


def node_seed(image_seed: int, prefix: Sequence[str]) -> int:
    """Seed of the generator for the last step of ``prefix`` applied to the image with ``image_seed``.

    SHA-256 of the algorithm version, the image seed and the prefix label, first 8 bytes, 63 bits; identical on
    every machine (no ``hash()``).
    """
    digest = _stable_key(int(image_seed), path_label(prefix))
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


def sample_node_params(degradation: Degradation, prefix: Sequence[str], seeds: Sequence[int], height: int,
                       width: int) -> Params:
    """Per-image params for the tree node ``prefix`` (whose last step is ``degradation``), stacked ``(N, ...)``.

    Each image draws from its own CPU generator seeded with :func:`node_seed`, so its parameters do not depend
    on the other images in the batch. Only the small random draws loop over images; applying is batched.
    """
    generator = torch.Generator(device="cpu")
    per_image: list[Params] = []
    for seed in seeds:
        generator.manual_seed(node_seed(seed, prefix))
        per_image.append(degradation.sample(1, generator, height, width))
    keys = per_image[0].keys() if per_image else ()
    return {k: torch.cat([p[k] for p in per_image], dim=0) for k in keys}


@dataclass(frozen=True)
class DegradedPath:
    """The hypotheses of one path for every image of the batch: ``images`` ``(N,3,h,w)``, ``h = H / 2**(k-1)``."""

    path: Path
    images: torch.Tensor

    @property
    def label(self) -> str:
        return path_label(self.path)


def _validate_paths(paths: Sequence[Sequence[str]]) -> list[Path]:
    out: list[Path] = []
    for path in paths:
        path = tuple(path)
        if not path:
            raise ConfigError("a degradation path needs at least one step")
        for name in path:
            get_degradation(name)
        out.append(path)
    return out


def _seed_list(seeds: Sequence[int] | torch.Tensor, num_images: int) -> list[int]:
    values = seeds.tolist() if isinstance(seeds, torch.Tensor) else [int(s) for s in seeds]
    if len(values) != num_images:
        raise ShapeError(f"need one seed per image: {num_images} images, {len(values)} seeds")
    return [int(v) for v in values]


def iter_degraded(
    images: torch.Tensor,
    paths: Sequence[Sequence[str]],
    seeds: Sequence[int] | torch.Tensor,
    device: torch.device | None = None,
    progress: Callable[[int, int, str], None] | None = None,
    should_cancel: Callable[[], bool] | None = None,
) -> Iterator[DegradedPath]:
    """Yield one :class:`DegradedPath` per distinct requested path, walking the chain tree depth first.

    A tree node (a prefix) is computed once for the whole batch and shared by every requested path below it,
    and only the live branch is kept in memory, so streaming the output into a recognizer keeps memory at
    about ``max_len`` image batches. Paths come out in depth-first Table 1 order (a prefix before its
    extensions), not in request order. ``progress(done_nodes, total_nodes, label)`` is called after each node;
    :class:`Cancelled` is raised between nodes when ``should_cancel()`` is true.
    """
    check_image_batch(images)
    wanted = _validate_paths(paths)
    seed_list = _seed_list(seeds, images.shape[0])
    device = device or images.device
    requested = set(wanted)
    nodes = {p[:k] for p in requested for k in range(1, len(p) + 1)}
    rank = {name: i for i, name in enumerate(_REGISTRY)}
    children: dict[Path, list[str]] = {}
    for node in nodes:
        children.setdefault(node[:-1], []).append(node[-1])
    for kids in children.values():
        kids.sort(key=rank.__getitem__)
    total = len(nodes)
    done = 0
    x0 = images.to(device=device)

    stack: list[tuple[Path, torch.Tensor]] = [((name,), x0) for name in reversed(children.get((), []))]
    while stack:
        check_cancel(should_cancel)
        prefix, x_in = stack.pop()
        degradation = get_degradation(prefix[-1])
        params = sample_node_params(degradation, prefix, seed_list, x_in.shape[-2], x_in.shape[-1])
        out = degradation.apply(x_in, params)
        done += 1
        if progress is not None:
            progress(done, total, path_label(prefix))
        if prefix in requested:
            yield DegradedPath(prefix, out)
        below = children.get(prefix)
        if below:
            x_next = down2(out)
            stack.extend((prefix + (name,), x_next) for name in reversed(below))
    log.debug("degraded %d images along %d paths (%d tree nodes)", images.shape[0], len(requested), total)


def degrade_gallery(
    images: torch.Tensor,
    paths: Sequence[Sequence[str]],
    seeds: Sequence[int] | torch.Tensor,
    device: torch.device | None = None,
    progress: Callable[[int, int, str], None] | None = None,
    should_cancel: Callable[[], bool] | None = None,
) -> list[DegradedPath]:
    """Degrade ``images`` ``(N,3,H,W)`` along every path; one :class:`DegradedPath` per entry of ``paths``,
    in the same order (repeated paths share one tensor). See :func:`iter_degraded` for reuse and seeding.

    Output sizes: a path of length k gives ``(N,3,H//2**(k-1),W//2**(k-1))`` (each halving floors).
    """
    wanted = _validate_paths(paths)
    results = {d.path: d for d in iter_degraded(images, wanted, seeds, device, progress, should_cancel)}
    return [results[p] for p in wanted]
