"""Probe side of Meet-in-the-middle (paper section 3.3): multi-hypothesis super-resolution.

The probe crop is blurred with ``m`` Gaussian sigmas evenly spaced from 0 (no blur) to ``max_sigma`` and each
blurred copy is magnified by every scale. Blurring first suppresses noise and sampling artefacts that the
upsampler would otherwise amplify; the recognizer later tells which hypothesis works best.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from forensic_face.engine.check import check_image_batch
from forensic_face.engine.upsamplers.base import Upsampler


def blur_sigmas(num_hypotheses: int, max_sigma: float = 1.0) -> torch.Tensor:
    """Sigmas of the hypotheses: ``linspace(0, max_sigma, m)``; a single hypothesis is the unblurred crop.

    >>> blur_sigmas(3).tolist()
    [0.0, 0.5, 1.0]
    """
    if num_hypotheses == 1:
        return torch.zeros(1)
    return torch.linspace(0.0, max_sigma, num_hypotheses)


def gaussian_blur_per_sample(images: torch.Tensor, sigmas: torch.Tensor) -> torch.Tensor:
    """Blur image ``i`` of ``(N,3,H,W)`` with ``sigmas[i]`` in one grouped convolution; sigma 0 is identity.

    >>> gaussian_blur_per_sample(torch.rand(4, 3, 16, 16), torch.tensor([0.0, 0.3, 0.6, 1.0])).shape
    torch.Size([4, 3, 16, 16])
    """
    check_image_batch(images)
    n, c, h, w = images.shape
    sigmas = sigmas.to(device=images.device, dtype=images.dtype).reshape(n)
    radius = max(1, int(math.ceil(3.0 * float(sigmas.max()))))
    offsets = torch.arange(-radius, radius + 1, device=images.device, dtype=images.dtype)
    safe = sigmas.clamp(min=1e-6)[:, None]
    kernel_1d = torch.exp(-0.5 * (offsets[None, :] / safe) ** 2)
    # sigma == 0 must be exactly the identity (a delta kernel), not a numerically tiny blur.
    delta = (offsets == 0).to(images.dtype)[None, :].expand(n, -1)
    kernel_1d = torch.where(sigmas[:, None] > 0, kernel_1d, delta)
    kernel_1d = kernel_1d / kernel_1d.sum(dim=1, keepdim=True)
    kernel_2d = kernel_1d[:, :, None] * kernel_1d[:, None, :]
    weight = kernel_2d[:, None].repeat_interleave(c, dim=0)  # (N*C, 1, k, k)
    padded = F.pad(images.reshape(1, n * c, h, w), (radius,) * 4, mode="reflect" if min(h, w) > radius else "replicate")
    out = F.conv2d(padded, weight, groups=n * c)
    return out.reshape(n, c, h, w)


def probe_hypotheses(
    crop: torch.Tensor,
    scales: tuple[int, ...],
    upsampler: Upsampler,
    num_hypotheses: int = 16,
    max_sigma: float = 1.0,
) -> tuple[torch.Tensor, dict[int, torch.Tensor]]:
    """Multi-hypothesis SR of one probe crop ``(1,3,h,w)``.

    Returns the sigmas ``(m,)`` and, per scale, the hypotheses ``(m,3,h*s,w*s)`` in [0,1]. Scale 1 means no
    super-resolution (the crop itself, blurred), the paper's baseline.
    """
    check_image_batch(crop, "probe crop")
    sigmas = blur_sigmas(num_hypotheses, max_sigma)
    blurred = gaussian_blur_per_sample(crop.expand(num_hypotheses, -1, -1, -1).contiguous(), sigmas)
    out: dict[int, torch.Tensor] = {}
    for scale in scales:
        out[scale] = blurred if scale == 1 else upsampler.upsample(blurred, scale)
    return sigmas, out


def probe_hypothesis(
    crop: torch.Tensor,
    scale: int,
    index: int,
    upsampler: Upsampler,
    num_hypotheses: int = 16,
    max_sigma: float = 1.0,
) -> torch.Tensor:
    """Hypothesis ``index`` at ``scale`` of :func:`probe_hypotheses`, ``(1,3,h*s,w*s)``, magnifying only it.

    For showing the hypothesis that scored best when the templates came from the cache. The blur runs over all
    sigmas, as in :func:`probe_hypotheses` (its kernel radius follows the largest sigma), so the image is the
    same up to the upsampler's floating-point batch effects.
    """
    check_image_batch(crop, "probe crop")
    sigmas = blur_sigmas(num_hypotheses, max_sigma)
    blurred = gaussian_blur_per_sample(crop.expand(num_hypotheses, -1, -1, -1).contiguous(), sigmas)[index : index + 1]
    return blurred if scale == 1 else upsampler.upsample(blurred, scale)
