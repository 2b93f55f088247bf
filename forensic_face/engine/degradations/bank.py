"""The degradation bank: every registered degradation with its name, words for investigators, sampler and
apply (:mod:`.ops`), in registration (Table 1) order. Chains and budgets (:mod:`.chains`) are derived from it,
so a degradation registered later joins them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from forensic_face.engine.degradations.ops import (
    ALGORITHM_VERSION,
    BRIGHTNESS_RANGE,
    CONTRAST_RANGE,
    DISK_BLUR_RADIUS_PX,
    GAUSS_BLUR_SIGMA,
    GAUSS_BLUR_WINDOW_PX,
    HUE_SHIFT_MAX,
    MOTION_BLUR_WINDOW_PX,
    NOISE_VARIANCE,
    PATCH_SHUFFLE_PROBABILITY,
    PATCH_SHUFFLE_SIZE_PX,
    PERSPECTIVE_MAX_SHIFT,
    RESCALE_FACTORS,
    SATURATION_RANGE,
    SHEAR_MAX,
    Params,
    apply_brightness,
    apply_color_jitter,
    apply_disk_blur,
    apply_gauss_blur,
    apply_gauss_noise,
    apply_motion_blur,
    apply_patch_shuffle,
    apply_perspective,
    apply_rescale,
    apply_shear,
    apply_speckle,
    sample_brightness,
    sample_color_jitter,
    sample_disk_blur,
    sample_gauss_blur,
    sample_gauss_noise,
    sample_motion_blur,
    sample_patch_shuffle,
    sample_perspective,
    sample_rescale,
    sample_shear,
    sample_speckle,
)
from forensic_face.engine.errors import ConfigError


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


