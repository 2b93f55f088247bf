"""The face super-resolution network, its weights handling and the ``face-sr`` upsampler."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from forensic_face.engine.errors import ConfigError, ShapeError, WeightsIntegrityError
from forensic_face.engine.upsamplers import available_upsamplers, create_upsampler
from forensic_face.engine.upsamplers.face_sr import (
    FACE_SR_SCALES,
    FaceSrNet,
    FaceSrUpsampler,
    load_face_sr,
    save_face_sr,
    weights_name,
)
from forensic_face.engine.weights import MANIFEST_PATH, sha256_of


def _tiny(scale: int, seed: int = 0) -> FaceSrNet:
    torch.manual_seed(seed)
    net = FaceSrNet(scale=scale, n_feats=8, n_blocks=1)
    # Give the zero-initialised tail some weights so the output is not plain bicubic.
    torch.nn.init.normal_(net.tail.weight, std=0.05)
    return net.eval()


@pytest.fixture
def tiny_weights(tmp_path: Path) -> dict[int, tuple[Path, str]]:
    out = {}
    for scale in FACE_SR_SCALES:
        path = tmp_path / f"tiny_x{scale}.safetensors"
        save_face_sr(_tiny(scale, seed=scale), path)
        out[scale] = (path, sha256_of(path))
    return out


@pytest.mark.parametrize("scale", FACE_SR_SCALES)
def test_network_output_shape(scale: int) -> None:
    out = _tiny(scale)(torch.rand(3, 3, 11, 14))
    assert out.shape == (3, 3, 11 * scale, 14 * scale)


def test_untrained_network_is_exactly_bicubic() -> None:
    """The zero-initialised tail plus the bicubic skip: training starts from the bicubic baseline."""
    net = FaceSrNet(scale=4, n_feats=8, n_blocks=2).eval()
    x = torch.rand(2, 3, 12, 12)
    expected = F.interpolate(x, scale_factor=4, mode="bicubic", align_corners=False)
    assert torch.allclose(net(x), expected, atol=1e-6)


def test_bad_architecture_is_refused() -> None:
    with pytest.raises(ConfigError):
        FaceSrNet(scale=3)


def test_upsampler_output_in_unit_range_and_chunking(tiny_weights: dict[int, tuple[Path, str]]) -> None:
    images = torch.rand(5, 3, 16, 16)
    whole = FaceSrUpsampler(torch.device("cpu"), batch_size=64, weights=tiny_weights)
    chunked = FaceSrUpsampler(torch.device("cpu"), batch_size=2, weights=tiny_weights)
    for scale in FACE_SR_SCALES:
        out = whole.upsample(images, scale)
        assert out.shape == (5, 3, 16 * scale, 16 * scale)
        assert out.dtype == torch.float32
        assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0
        assert torch.allclose(chunked.upsample(images, scale), out, atol=1e-5)
    assert whole.upsample(images, 1) is images
    assert whole.upsample(images[:0], 4).shape == (0, 3, 64, 64)
    assert whole.weights_sha256 == {s: sha for s, (_, sha) in tiny_weights.items()}


def test_upsampler_refuses_bad_input(tiny_weights: dict[int, tuple[Path, str]]) -> None:
    upsampler = FaceSrUpsampler(torch.device("cpu"), weights=tiny_weights)
    with pytest.raises(ConfigError):
        upsampler.upsample(torch.rand(1, 3, 8, 8), 3)
    with pytest.raises(ShapeError):
        upsampler.upsample(torch.rand(1, 8, 8), 2)


def test_registry_gives_face_sr_with_the_shipped_weights() -> None:
    assert "face-sr" in available_upsamplers()
    upsampler = create_upsampler("face-sr", torch.device("cpu"), batch_size=8)
    assert upsampler.name == "face-sr"
    manifest = json.loads(MANIFEST_PATH.read_text())["weights"]
    assert upsampler.weights_sha256 == {s: manifest[weights_name(s)]["sha256"] for s in FACE_SR_SCALES}
    out = upsampler.upsample(torch.rand(2, 3, 20, 20), 8)
    assert out.shape == (2, 3, 160, 160)


def test_face_sr_2_4_keeps_the_networks_at_2x_and_4x_and_is_bicubic_at_8x() -> None:
    mixed = create_upsampler("face-sr-2-4", torch.device("cpu"), batch_size=8)
    full = create_upsampler("face-sr", torch.device("cpu"), batch_size=8)
    bicubic = create_upsampler("bicubic", torch.device("cpu"))
    assert mixed.name == "face-sr-2-4" and sorted(mixed.weights_sha256) == [2, 4]
    x = torch.rand(2, 3, 20, 20, generator=torch.Generator().manual_seed(0))
    for scale in (2, 4):
        assert torch.equal(mixed.upsample(x, scale), full.upsample(x, scale))
    assert torch.equal(mixed.upsample(x, 8), bicubic.upsample(x, 8))
    assert not torch.equal(full.upsample(x, 8), bicubic.upsample(x, 8))


def test_shipped_weights_stay_near_bicubic_on_a_smooth_image() -> None:
    """Sanity of the shipped networks: on a clean smooth image they stay close to the bicubic result."""
    upsampler = create_upsampler("face-sr", torch.device("cpu"))
    yy, xx = torch.meshgrid(torch.linspace(0, 1, 24), torch.linspace(0, 1, 24), indexing="ij")
    smooth = torch.stack([0.3 + 0.4 * xx, 0.2 + 0.5 * yy, 0.5 + 0.2 * xx * yy])[None]
    for scale in FACE_SR_SCALES:
        bicubic = F.interpolate(smooth, scale_factor=scale, mode="bicubic", align_corners=False)
        assert (upsampler.upsample(smooth, scale) - bicubic).abs().mean() < 0.03


def test_hash_mismatch_raises(tmp_path: Path) -> None:
    shipped = {s: json.loads(MANIFEST_PATH.read_text())["weights"][weights_name(s)] for s in FACE_SR_SCALES}
    source = MANIFEST_PATH.parent / shipped[4]["file"]
    corrupt = tmp_path / "corrupt_x4.safetensors"
    shutil.copy(source, corrupt)
    data = bytearray(corrupt.read_bytes())
    data[-10] ^= 0xFF  # flip one byte of the last tensor
    corrupt.write_bytes(bytes(data))
    with pytest.raises(WeightsIntegrityError, match="SHA-256 .* expected"):
        load_face_sr(corrupt, expected_sha256=shipped[4]["sha256"])
    with pytest.raises(WeightsIntegrityError, match="SHA-256"):
        FaceSrUpsampler(torch.device("cpu"), weights={4: (corrupt, shipped[4]["sha256"])})


def test_missing_file_and_mismatched_tensors_raise(tmp_path: Path) -> None:
    with pytest.raises(WeightsIntegrityError, match="missing"):
        load_face_sr(tmp_path / "absent.safetensors", expected_sha256="0" * 64)
    # A file whose tensors do not fit the architecture in its metadata is refused (strict loading).
    net = _tiny(2)
    state = {k: v for k, v in net.state_dict().items() if not k.startswith("tail")}
    path = tmp_path / "partial.safetensors"
    save_file(state, str(path), metadata={"arch": json.dumps(net.arch())})
    with pytest.raises(WeightsIntegrityError, match="do not fit"):
        load_face_sr(path)


def test_wrong_scale_file_is_refused(tiny_weights: dict[int, tuple[Path, str]]) -> None:
    with pytest.raises(WeightsIntegrityError, match="8x network"):
        FaceSrUpsampler(torch.device("cpu"), weights={2: tiny_weights[8]})


def test_save_load_round_trip(tiny_weights: dict[int, tuple[Path, str]]) -> None:
    path, sha = tiny_weights[2]
    net = load_face_sr(path, expected_sha256=sha)
    reference = _tiny(2, seed=2)
    x = torch.rand(1, 3, 9, 9)
    with torch.inference_mode():
        assert torch.equal(net(x), reference(x))
    assert not net.training
