"""Our MTCNN cascade (forensic_face.engine.mtcnn) against facenet-pytorch's detect_face, its NMS against a plain
greedy reference, weight verification, and that it imports and runs with torchvision blocked."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from forensic_face.engine.errors import ConfigError, ShapeError, WeightsIntegrityError
from forensic_face.engine.mtcnn import (
    MTCNN_WEIGHTS_SHA256,
    NET_NAMES,
    MtcnnNets,
    batched_nms,
    detect_faces_mtcnn,
    mtcnn_weights_dir,
    pyramid_scales,
)

THRESHOLDS = (0.6, 0.7, 0.7)
PYRAMID_FACTOR = 0.709
PROJECT_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def nets() -> MtcnnNets:
    return MtcnnNets.load()


def _read_rgb(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        pytest.skip(f"cannot read {path}")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


@pytest.fixture(scope="module")
def lfw_batch(lfw_root: Path, lfw_test_people: list[tuple[str, int]]) -> np.ndarray:
    """First image of the first 10 peopleDevTest people: (10, 250, 250, 3) uint8."""
    paths = [lfw_root / "images_deepfunneled" / name / f"{name}_0001.jpg" for name, _ in lfw_test_people[:10]]
    return np.stack([_read_rgb(p) for p in paths])


def _facenet_detect(batch: np.ndarray, min_face: float) -> tuple[list[np.ndarray], list[np.ndarray]]:
    pytest.importorskip("torchvision")
    from facenet_pytorch.models.mtcnn import ONet, PNet, RNet
    from facenet_pytorch.models.utils.detect_face import detect_face

    with torch.inference_mode():
        boxes, points = detect_face(batch, min_face, PNet().eval(), RNet().eval(), ONet().eval(),
                                    list(THRESHOLDS), PYRAMID_FACTOR, torch.device("cpu"))
    return list(boxes), list(points)


def _assert_same_detections(ours: tuple[list[np.ndarray], list[np.ndarray]],
                            theirs: tuple[list[np.ndarray], list[np.ndarray]]) -> int:
    """Same faces per image, boxes and landmarks within 1 px, scores within 1e-4; returns the face count."""
    num_faces = 0
    assert len(ours[0]) == len(theirs[0])
    for image, (box, point, ref_box, ref_point) in enumerate(zip(*ours, *theirs, strict=True)):
        ref_box = np.asarray(ref_box, dtype=np.float32).reshape(-1, 5)
        ref_point = np.asarray(ref_point, dtype=np.float32).reshape(-1, 5, 2)
        assert box.shape == ref_box.shape, f"image {image}: {box.shape[0]} faces, facenet-pytorch {ref_box.shape[0]}"
        assert point.shape == (box.shape[0], 5, 2)
        order, ref_order = np.argsort(-box[:, 4], kind="stable"), np.argsort(-ref_box[:, 4], kind="stable")
        np.testing.assert_allclose(box[order, :4], ref_box[ref_order, :4], atol=1.0, rtol=0)
        np.testing.assert_allclose(box[order, 4], ref_box[ref_order, 4], atol=1e-4, rtol=0)
        np.testing.assert_allclose(point[order], ref_point[ref_order], atol=1.0, rtol=0)
        num_faces += box.shape[0]
    return num_faces


@pytest.mark.lfw
@pytest.mark.parametrize("min_face", [12.0, 40.0])
def test_matches_facenet_pytorch_on_lfw(lfw_batch: np.ndarray, nets: MtcnnNets, min_face: float) -> None:
    ours = detect_faces_mtcnn(lfw_batch, min_face, THRESHOLDS, PYRAMID_FACTOR, nets)
    num_faces = _assert_same_detections(ours, _facenet_detect(lfw_batch, min_face))
    assert num_faces >= len(lfw_batch)  # every portrait has its subject, some have bystanders
    assert all(boxes.dtype == np.float32 for boxes in ours[0])


@pytest.mark.lfw
def test_matches_facenet_pytorch_on_downscaled_lfw(lfw_batch: np.ndarray, nets: MtcnnNets) -> None:
    """Faces of ~25 px (250 -> 60 px images), found at the finest pyramid level; crops reach the borders."""
    small = np.stack([cv2.resize(image, (60, 60), interpolation=cv2.INTER_AREA) for image in lfw_batch[:6]])
    ours = detect_faces_mtcnn(torch.from_numpy(small), 12.0, THRESHOLDS, PYRAMID_FACTOR, nets)
    assert _assert_same_detections(ours, _facenet_detect(small, 12.0)) >= 4


@pytest.mark.lfw
def test_batch_equals_images_one_by_one(lfw_batch: np.ndarray, nets: MtcnnNets) -> None:
    batch_boxes, batch_points = detect_faces_mtcnn(lfw_batch[:4], 20.0, THRESHOLDS, PYRAMID_FACTOR, nets)
    for index in range(4):
        boxes, points = detect_faces_mtcnn(lfw_batch[index:index + 1], 20.0, THRESHOLDS, PYRAMID_FACTOR, nets)
        np.testing.assert_allclose(batch_boxes[index], boxes[0], atol=1e-3)
        np.testing.assert_allclose(batch_points[index], points[0], atol=1e-3)


def test_blank_images_give_empty_arrays(nets: MtcnnNets) -> None:
    blank = np.full((2, 64, 48, 3), 128, dtype=np.uint8)
    boxes, points = detect_faces_mtcnn(blank, 12.0, THRESHOLDS, PYRAMID_FACTOR, nets)
    assert [b.shape for b in boxes] == [(0, 5), (0, 5)]
    assert [p.shape for p in points] == [(0, 5, 2), (0, 5, 2)]
    # Smaller than the smallest face: no pyramid level at all, still one empty result per image.
    tiny = np.zeros((3, 10, 10, 3), dtype=np.uint8)
    assert pyramid_scales(10, 10, 12.0, PYRAMID_FACTOR) == []
    boxes, points = detect_faces_mtcnn(tiny, 12.0, THRESHOLDS, PYRAMID_FACTOR, nets)
    assert [b.shape for b in boxes] == [(0, 5)] * 3


def test_invalid_inputs_raise_typed_errors(nets: MtcnnNets) -> None:
    with pytest.raises(ShapeError):
        detect_faces_mtcnn(np.zeros((32, 32, 3), np.uint8), 12.0, THRESHOLDS, PYRAMID_FACTOR, nets)
    with pytest.raises(ShapeError):
        detect_faces_mtcnn(np.zeros((1, 32, 32, 3), np.float32), 12.0, THRESHOLDS, PYRAMID_FACTOR, nets)
    with pytest.raises(ConfigError):
        detect_faces_mtcnn(np.zeros((1, 32, 32, 3), np.uint8), 12.0, (0.6, 0.7), PYRAMID_FACTOR, nets)
    with pytest.raises(ConfigError):
        detect_faces_mtcnn(np.zeros((1, 32, 32, 3), np.uint8), 0.0, THRESHOLDS, PYRAMID_FACTOR, nets)


def _greedy_reference(boxes: np.ndarray, scores: np.ndarray, image_index: np.ndarray, threshold: float,
                      overlap: str, inclusive: bool) -> list[int]:
    extra = 1.0 if inclusive else 0.0
    order = sorted(range(len(scores)), key=lambda i: (-scores[i], i))
    kept: list[int] = []
    for i in order:
        suppressed = False
        for j in kept:
            if image_index[i] != image_index[j]:
                continue
            w = max(0.0, min(boxes[i, 2], boxes[j, 2]) - max(boxes[i, 0], boxes[j, 0]) + extra)
            h = max(0.0, min(boxes[i, 3], boxes[j, 3]) - max(boxes[i, 1], boxes[j, 1]) + extra)
            area_i = (boxes[i, 2] - boxes[i, 0] + extra) * (boxes[i, 3] - boxes[i, 1] + extra)
            area_j = (boxes[j, 2] - boxes[j, 0] + extra) * (boxes[j, 3] - boxes[j, 1] + extra)
            denominator = min(area_i, area_j) if overlap == "min" else area_i + area_j - w * h
            if w * h / denominator > threshold:
                suppressed = True
                break
        if not suppressed:
            kept.append(i)
    return kept


@pytest.mark.parametrize(("overlap", "inclusive", "threshold"), [("union", False, 0.5), ("min", True, 0.7)])
def test_batched_nms_equals_greedy_reference(overlap: str, inclusive: bool, threshold: float) -> None:
    """Dense clusters (long suppression chains) across 3 images, with small blocks to exercise the block logic."""
    generator = np.random.default_rng(0)
    num_boxes = 300
    corners = generator.uniform(0, 60, size=(num_boxes, 2))
    sizes = generator.uniform(8, 30, size=(num_boxes, 1))
    boxes = np.concatenate([corners, corners + sizes], axis=1).astype(np.float32)
    scores = generator.uniform(size=num_boxes).astype(np.float32)
    image_index = generator.integers(0, 3, size=num_boxes)
    expected = _greedy_reference(boxes, scores, image_index, threshold, overlap, inclusive)
    for block_size in (7, 64, 1024):
        kept = batched_nms(torch.from_numpy(boxes), torch.from_numpy(scores), torch.from_numpy(image_index),
                           threshold, overlap=overlap, inclusive=inclusive, block_size=block_size)  # type: ignore[arg-type]
        assert kept.tolist() == expected
    assert 10 < len(expected) < num_boxes


def test_batched_nms_matches_torchvision() -> None:
    torchvision_ops = pytest.importorskip("torchvision.ops")
    generator = torch.Generator().manual_seed(1)
    corners = torch.rand(500, 2, generator=generator) * 100
    boxes = torch.cat([corners, corners + 5 + torch.rand(500, 2, generator=generator) * 30], dim=1)
    scores = torch.rand(500, generator=generator)
    image_index = torch.randint(0, 4, (500,), generator=generator)
    expected = torchvision_ops.batched_nms(boxes, scores, image_index, 0.5)
    assert batched_nms(boxes, scores, image_index, 0.5).tolist() == expected.tolist()
    assert batched_nms(boxes[:0], scores[:0], image_index[:0], 0.5).shape == (0,)


def test_weights_are_verified(tmp_path: Path) -> None:
    source = mtcnn_weights_dir()
    for name in NET_NAMES:
        shutil.copy(source / f"{name}.pt", tmp_path / f"{name}.pt")
    nets = MtcnnNets.load(weights_dir=tmp_path)
    assert nets.weights_sha256 == dict(MTCNN_WEIGHTS_SHA256)
    assert nets.combined_sha256() == hashlib.sha256("".join(MTCNN_WEIGHTS_SHA256[n] for n in NET_NAMES).encode()
                                                    ).hexdigest()
    assert not nets.pnet.training and nets.device == torch.device("cpu")

    damaged = bytearray((tmp_path / "rnet.pt").read_bytes())
    damaged[-100] ^= 0xFF
    (tmp_path / "rnet.pt").write_bytes(bytes(damaged))
    with pytest.raises(WeightsIntegrityError, match="SHA-256"):
        MtcnnNets.load(weights_dir=tmp_path)
    shutil.copy(source / "rnet.pt", tmp_path / "rnet.pt")
    (tmp_path / "onet.pt").unlink()
    with pytest.raises(WeightsIntegrityError, match="missing"):
        MtcnnNets.load(weights_dir=tmp_path)


def test_runs_with_torchvision_blocked() -> None:
    """The desktop build has no torchvision: importing the detector modules and running the cascade must not
    need it, nor import facenet_pytorch (whose __init__ imports torchvision)."""
    script = textwrap.dedent("""
        import sys
        sys.modules["torchvision"] = None  # any `import torchvision` now raises ImportError
        import numpy as np
        import forensic_face.engine.detect
        from forensic_face.engine.mtcnn import MtcnnNets, detect_faces_mtcnn
        nets = MtcnnNets.load()
        boxes, points = detect_faces_mtcnn(np.zeros((1, 40, 40, 3), np.uint8), 12.0, (0.6, 0.7, 0.7), 0.709, nets)
        assert boxes[0].shape == (0, 5) and points[0].shape == (0, 5, 2)
        assert "facenet_pytorch" not in sys.modules, "facenet_pytorch was imported"
        print("ok")
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                            cwd=PROJECT_ROOT)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
