"""The surveillance-camera simulation: seeded, right size, and each stage does what it claims."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from forensic_face.engine.errors import ConfigError, ShapeError
from forensic_face.surveillance import (
    BLUR_SIGMA_RANGE,
    COLOUR_GAIN_RANGE,
    DEFAULT_SURVEILLANCE,
    JPEG_QUALITY_RANGE,
    NOISE_SIGMA_RANGE,
    SurveillanceParams,
    degrade_to_scale,
    sample_surveillance_params,
)

CLEAN = SurveillanceParams(optical_blur_sigma=0.0, noise_sigma=0.0, jpeg_quality=None)


def _test_image(size: int = 128) -> np.ndarray:
    """A deterministic image with edges, texture and smooth regions (a checkerboard over gradients)."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    checker = ((yy // 8 + xx // 8) % 2) * 120.0
    r = 60 + checker + 0.3 * xx
    g = 40 + checker + 0.4 * yy
    b = 90 + 0.5 * checker + 0.2 * (xx + yy)
    return np.clip(np.stack([r, g, b], axis=-1), 0, 255).astype(np.uint8)


def _high_frequency_energy(image: np.ndarray) -> float:
    x = image.astype(np.float64)
    return float(np.mean(np.diff(x, axis=0) ** 2) + np.mean(np.diff(x, axis=1) ** 2))


def test_deterministic_for_a_seed_and_differs_across_seeds() -> None:
    image = _test_image()
    a = degrade_to_scale(image, 0.25, DEFAULT_SURVEILLANCE, seed=7)
    b = degrade_to_scale(image, 0.25, DEFAULT_SURVEILLANCE, seed=7)
    c = degrade_to_scale(image, 0.25, DEFAULT_SURVEILLANCE, seed=8)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


@pytest.mark.parametrize(("factor", "expected"), [(0.5, (64, 48)), (0.25, (32, 24)), (0.125, (16, 12)), (0.3, (38, 29))])
def test_output_size_and_type(factor: float, expected: tuple[int, int]) -> None:
    image = _test_image()[:, :96]
    out = degrade_to_scale(image, factor, DEFAULT_SURVEILLANCE, seed=0)
    assert out.shape == (*expected, 3)
    assert out.dtype == np.uint8


def test_optical_blur_removes_detail() -> None:
    image = _test_image()
    sharp = degrade_to_scale(image, 0.5, CLEAN, seed=0)
    blurred = degrade_to_scale(image, 0.5, dataclasses.replace(CLEAN, optical_blur_sigma=1.0), seed=0)
    assert _high_frequency_energy(blurred) < 0.6 * _high_frequency_energy(sharp)


def test_blur_width_is_in_output_pixels() -> None:
    """The same output-pixel sigma removes a similar fraction of detail at 2x and 4x shrink."""
    image = _test_image(256)
    params = dataclasses.replace(CLEAN, optical_blur_sigma=0.8)
    ratios = []
    for factor in (0.5, 0.25):
        sharp = degrade_to_scale(image, factor, CLEAN, seed=0)
        blurred = degrade_to_scale(image, factor, params, seed=0)
        ratios.append(_high_frequency_energy(blurred) / _high_frequency_energy(sharp))
    assert abs(ratios[0] - ratios[1]) < 0.2


def test_noise_has_the_requested_strength() -> None:
    flat = np.full((200, 200, 3), 128, np.uint8)
    out = degrade_to_scale(flat, 0.5, dataclasses.replace(CLEAN, noise_sigma=6.0), seed=3)
    residual = out.astype(np.float64) - 128.0
    assert abs(residual.mean()) < 0.3
    assert 5.5 < residual.std() < 6.5


def test_jpeg_adds_block_artefacts() -> None:
    image = _test_image()
    params = dataclasses.replace(CLEAN, optical_blur_sigma=0.5)
    raw = degrade_to_scale(image, 0.5, params, seed=0)
    coded = degrade_to_scale(image, 0.5, dataclasses.replace(params, jpeg_quality=30), seed=0)
    error = np.abs(coded.astype(np.int16) - raw.astype(np.int16))
    assert error.mean() > 1.0
    # JPEG error is larger on the 8x8 block borders than inside the blocks.
    rows = np.abs(np.diff(coded.astype(np.float64), axis=0)).mean(axis=(1, 2))
    rows_raw = np.abs(np.diff(raw.astype(np.float64), axis=0)).mean(axis=(1, 2))
    excess = rows - rows_raw
    border = excess[7::8].mean()
    inside = np.delete(excess, np.arange(7, excess.size, 8)).mean()
    assert border > inside


def test_colour_gain_scales_channels() -> None:
    flat = np.full((40, 40, 3), 100, np.uint8)
    out = degrade_to_scale(flat, 0.5, dataclasses.replace(CLEAN, colour_gain=(1.05, 1.0, 0.95)), seed=0)
    assert tuple(int(v) for v in out[5, 5]) == (105, 100, 95)


def test_sampled_parameters_stay_in_documented_ranges() -> None:
    rng = np.random.default_rng(0)
    drawn = [sample_surveillance_params(rng) for _ in range(300)]
    for p in drawn:
        assert BLUR_SIGMA_RANGE[0] <= p.optical_blur_sigma <= BLUR_SIGMA_RANGE[1]
        assert NOISE_SIGMA_RANGE[0] <= p.noise_sigma <= NOISE_SIGMA_RANGE[1]
        assert p.jpeg_quality is not None
        assert JPEG_QUALITY_RANGE[0] <= p.jpeg_quality <= JPEG_QUALITY_RANGE[1]
        assert all(COLOUR_GAIN_RANGE[0] <= g <= COLOUR_GAIN_RANGE[1] for g in p.colour_gain)
    assert {p.downsample for p in drawn} == {"area", "bicubic"}
    # Seeded: a second generator with the same seed replays the same settings.
    again = np.random.default_rng(0)
    assert [sample_surveillance_params(again) for _ in range(300)] == drawn


def test_invalid_input_is_refused() -> None:
    with pytest.raises(ConfigError):
        SurveillanceParams(optical_blur_sigma=-1.0, noise_sigma=0.0, jpeg_quality=50)
    with pytest.raises(ConfigError):
        SurveillanceParams(optical_blur_sigma=0.5, noise_sigma=0.0, jpeg_quality=120)
    with pytest.raises(ConfigError):
        degrade_to_scale(_test_image(), 0.0, DEFAULT_SURVEILLANCE, seed=0)
    with pytest.raises(ShapeError):
        degrade_to_scale(np.zeros((10, 10), np.uint8), 0.5, DEFAULT_SURVEILLANCE, seed=0)
