"""Probe hypotheses: the pre-blur sigmas, per-sample Gaussian blur and the magnified hypotheses per scale."""

from __future__ import annotations

import numpy as np
import torch

from forensic_face.engine.probe import (
    blur_sigmas,
    gaussian_blur_per_sample,
    probe_hypotheses,
)
from forensic_face.engine.upsamplers import BicubicUpsampler


def test_blur_sigmas_are_evenly_spaced_from_zero() -> None:
    sigmas = blur_sigmas(16, 1.0)
    assert sigmas[0] == 0 and sigmas[-1] == 1.0 and len(sigmas) == 16
    np.testing.assert_allclose(np.diff(sigmas.numpy()), 1 / 15, rtol=1e-5)
    assert blur_sigmas(1).tolist() == [0.0]


def test_zero_sigma_is_identity_and_blur_grows_with_sigma() -> None:
    gen = torch.Generator().manual_seed(0)
    image = torch.rand(1, 3, 24, 24, generator=gen).expand(3, -1, -1, -1).contiguous()
    out = gaussian_blur_per_sample(image, torch.tensor([0.0, 0.5, 1.0]))
    torch.testing.assert_close(out[0], image[0])
    roughness = [float((o[:, :, 1:] - o[:, :, :-1]).abs().mean()) for o in out]
    assert roughness[0] > roughness[1] > roughness[2]
    torch.testing.assert_close(out.mean(dim=(1, 2, 3)), image.mean(dim=(1, 2, 3)), atol=0.02, rtol=0)


def test_probe_hypotheses_shapes_per_scale() -> None:
    crop = torch.rand(1, 3, 20, 20)
    sigmas, hyps = probe_hypotheses(crop, (1, 2, 4), BicubicUpsampler(), num_hypotheses=5)
    assert sigmas.shape == (5,)
    assert hyps[1].shape == (5, 3, 20, 20)
    assert hyps[2].shape == (5, 3, 40, 40)
    assert hyps[4].shape == (5, 3, 80, 80)
    assert float(hyps[4].min()) >= 0 and float(hyps[4].max()) <= 1
