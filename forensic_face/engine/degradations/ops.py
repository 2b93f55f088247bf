"""The degradation operations of Table 1 (paper section 3.2), in the kornia style.

* ``sample_<name>(batch, generator, height, width) -> Params`` draws the per-image parameters from the given
  CPU :class:`torch.Generator` (never the global RNG). Every tensor in ``Params`` has a leading batch axis
  ``(B, ...)`` so the setting varies per image inside one batched call and can be stored for replay.
* ``apply_<name>(images, params) -> images`` is deterministic: ``(B,3,H,W)`` float in [0, 1] in, the same
  shape, dtype and device out, clamped to [0, 1]. Parameters are moved to ``images.device``.

Ranges chosen for the random degradations (the paper gives none) are documented on each sampler and in
``docs/degradations.md``. The bank that names them is :mod:`.bank`; the chains and budgets :mod:`.chains`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from forensic_face.engine.check import check_image_batch
from forensic_face.engine.errors import ConfigError, ShapeError

Params = dict[str, torch.Tensor]

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


