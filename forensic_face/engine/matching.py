"""Resolution matching (paper section 3.2): which magnifications a probe gets and the size to which the
gallery hypotheses are brought to meet each of them.

Probe crops are binned by size so probes of similar size share gallery templates; each scale's gallery
hypotheses are resized to the probe hypothesis size (capped at the canonical gallery crop, which lacks
nothing a larger probe hypothesis has).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

#: Gallery crops are brought to this size before degradation, so the pixel parameters of Table 1 (motion
#: window 20, disk radius 5, ...) mean the same thing for every portrait whatever its original resolution.
GALLERY_CANONICAL_PX = 160
#: Largest probe hypothesis side. Magnifying beyond it only adds cost: the recognizer sees at most ~150 px.
#: 320 keeps the paper's 8x for crops up to 40 px (faces up to ~30 px wide).
MAX_HYPOTHESIS_PX = 320


def probe_size_bin(crop_px: int, bin_px: int) -> int:
    """Probe crop sizes are binned so probes of similar size share gallery templates.

    >>> probe_size_bin(31, 4)
    32
    """
    return max(bin_px, bin_px * round(crop_px / bin_px))


def effective_scales(crop_px: int, scales: Sequence[int]) -> tuple[int, ...]:
    """The configured scales whose hypotheses stay within :data:`MAX_HYPOTHESIS_PX`; a probe too large for
    any of them is not super-resolved at all (scale 1): it already has more pixels than the recognizer uses.

    >>> effective_scales(31, (2, 4, 8)), effective_scales(60, (2, 4, 8)), effective_scales(200, (2, 4, 8))
    ((2, 4, 8), (2, 4), (1,))
    """
    kept = tuple(s for s in scales if crop_px * s <= MAX_HYPOTHESIS_PX)
    return kept or (1,)


def probe_plan(crop_px: int, bin_px: int, scales: Sequence[int]) -> tuple[int, tuple[int, ...]]:
    """``(size bin, scales)`` of a probe crop: what every search path (exhaustive, shortlist, cache warming)
    must agree on.

    >>> probe_plan(31, 4, (2, 4, 8)), probe_plan(61, 4, (2, 4, 8))
    ((32, (2, 4, 8)), (60, (2, 4)))
    """
    size_bin = probe_size_bin(crop_px, bin_px)
    return size_bin, effective_scales(size_bin, scales)


def resolution_target(size_bin_px: int, scale: int) -> int:
    """Side to which gallery hypotheses are resized to match a probe hypothesis of ``size_bin_px * scale``.

    Matching removes the detail the probe lacks; a probe hypothesis at least as large as the canonical gallery
    crop lacks none, so the target is capped there. Every such probe then shares one set of gallery templates
    instead of one per size (the recognizer resamples to its own input size either way).

    >>> resolution_target(32, 2), resolution_target(32, 8), resolution_target(48, 4)
    (64, 160, 160)
    """
    return min(size_bin_px * scale, GALLERY_CANONICAL_PX)


def resize_batch(images: torch.Tensor, size: int) -> torch.Tensor:
    """Square resize with antialiasing when shrinking (area-like), bicubic when enlarging."""
    if images.shape[-1] == size and images.shape[-2] == size:
        return images
    out = F.interpolate(images, size=(size, size), mode="bicubic", align_corners=False,
                        antialias=size < images.shape[-1])
    return out.clamp_(0.0, 1.0)


def match_resolution(images: torch.Tensor, landmarks: torch.Tensor, target_px: int | None
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    """Bring gallery hypotheses ``(B,3,S,S)`` to the probe hypothesis size; landmarks ``(B,5,2)`` follow.
    ``target_px=None`` (resolution matching off) leaves them as they are."""
    if target_px is None:
        return images, landmarks
    return resize_batch(images, target_px), landmarks * (target_px / images.shape[-1])
