"""MTCNN detection on real LFW faces, at full size and shrunk to surveillance size, plus the 1.3x crop."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from forensic_face.cli import main
from forensic_face.engine.config import DetectorConfig
from forensic_face.engine.detect import (
    MtcnnDetector,
    crop_face,
    detection_upsample_factor,
    manual_face,
)
from forensic_face.engine.errors import ShapeError
from forensic_face.engine.imaging import load_image
from forensic_face.engine.results import FaceDetection

PEOPLE = ["Abdullah_Gul", "Adrien_Brody", "Al_Gore", "Amelie_Mauresmo", "Angela_Merkel", "Bill_Clinton"]


@pytest.fixture(scope="module")
def detector() -> MtcnnDetector:
    return MtcnnDetector()


@pytest.fixture(scope="module")
def faces(lfw_root: Path) -> list[np.ndarray]:
    paths = [lfw_root / "images_deepfunneled" / p / f"{p}_0001.jpg" for p in PEOPLE]
    existing = [p for p in paths if p.is_file()]
    if len(existing) < 4:
        pytest.skip("expected LFW people are missing")
    return [load_image(p).pixels for p in existing]


def _centred(face: FaceDetection, size: float) -> bool:
    cx, cy = (face.box[0] + face.box[2]) / 2, (face.box[1] + face.box[3]) / 2
    return abs(cx - size / 2) < 0.15 * size and abs(cy - size / 2) < 0.15 * size


def test_full_resolution_faces(detector: MtcnnDetector, faces: list[np.ndarray]) -> None:
    results = detector.detect(faces, min_face_px=40)
    for found in results:
        assert found, "every LFW portrait has a face"
        best = found[0]
        assert _centred(best, 250)
        assert 70 < best.width_px < 130
        assert best.landmarks.shape == (5, 2)
        left_eye, right_eye = best.landmarks[0], best.landmarks[1]
        assert left_eye[0] < right_eye[0], "landmark order: left eye first"
        assert all(found[i].score >= found[i + 1].score for i in range(len(found) - 1)), "best first"


@pytest.mark.parametrize("face_width", [16, 24])
def test_tiny_faces_are_found_by_upsampling(detector: MtcnnDetector, faces: list[np.ndarray], face_width: int) -> None:
    factor = face_width / 93.0  # MTCNN boxes on LFW are ~93 px wide at 250x250
    size = round(250 * factor)
    small = [cv2.resize(f, (size, size), interpolation=cv2.INTER_AREA) for f in faces]
    results = detector.detect(small)
    hits = [bool(r) and _centred(r[0], size) for r in results]
    assert sum(hits) >= len(faces) - 1
    widths = [r[0].width_px for r in results if r]
    assert abs(np.median(widths) - face_width) < 0.3 * face_width


def test_small_faces_in_a_1080p_frame_are_found_in_upsampled_tiles(detector: MtcnnDetector,
                                                                   faces: list[np.ndarray]) -> None:
    """A CCTV frame is not upsampled whole: the coarse native pass proposes the 18-30 px faces and upsampled
    tiles confirm them, with boxes and landmarks in frame pixels; nothing is found on the background."""
    from forensic_face.engine import detect as detect_module

    rng = np.random.default_rng(1)
    coarse = rng.integers(40, 200, (27, 48, 3), dtype=np.uint8)
    frame = cv2.resize(coarse, (1920, 1080), interpolation=cv2.INTER_CUBIC)
    assert not detector.detect([frame])[0]
    truth = []
    for k, (face, width) in enumerate(zip(faces, (18, 22, 26, 30))):
        size = round(250 * width / 93.0)
        small = cv2.resize(face, (size, size), interpolation=cv2.INTER_AREA)
        x, y = 200 + 400 * k, 300 + 150 * k
        frame[y:y + size, x:x + size] = small
        truth.append((x + size / 2, y + size / 2, width))
    assert max(frame.shape) > detect_module.LARGE_IMAGE_SIDE_PX
    found = detector.detect([frame])[0]
    hits = 0
    for cx, cy, width in truth:
        near = [f for f in found if abs((f.box[0] + f.box[2]) / 2 - cx) < 0.3 * width
                and abs((f.box[1] + f.box[3]) / 2 - cy) < 0.3 * width]
        if near:
            hits += 1
            assert abs(near[0].width_px - width) < 0.35 * width
            left_eye = near[0].landmarks[0]
            assert abs(left_eye[0] - cx) < width and abs(left_eye[1] - cy) < width  # landmarks in frame pixels
    assert hits >= len(truth) - 1, found


def test_no_face_is_an_explicit_empty_result(detector: MtcnnDetector) -> None:
    blank = np.full((120, 160, 3), 127, dtype=np.uint8)
    assert detector.detect([blank]) == [()]


def test_rejects_wrong_dtype(detector: MtcnnDetector) -> None:
    with pytest.raises(ShapeError):
        detector.detect([np.zeros((10, 10, 3), dtype=np.float32)])


def test_upsample_factor_caps_large_images() -> None:
    config = DetectorConfig(min_face_px=12)
    assert detection_upsample_factor(60, 60, config) > 2
    assert detection_upsample_factor(4000, 6000, config) == 1.0


def test_crop_is_square_enlarged_and_padded_at_border() -> None:
    pixels = np.zeros((100, 100, 3), dtype=np.uint8)
    pixels[:, :50] = 200
    face = FaceDetection(box=np.array([0, 10, 40, 50], np.float32), score=1.0,
                         landmarks=np.array([[10, 20], [30, 20], [20, 30], [12, 40], [28, 40]], np.float32))
    crop = crop_face(pixels, face, enlarge=1.3)
    assert crop.pixels.shape == (52, 52, 3)
    # The part left of the image is edge-padded (replicated), not black.
    assert crop.pixels[:, 0].min() == 200
    np.testing.assert_allclose(crop.landmarks + crop.crop_box[:2], face.landmarks)


def test_manual_box_gets_refined_landmarks(detector: MtcnnDetector, faces: list[np.ndarray]) -> None:
    found = detector.detect(faces[:1], min_face_px=40)[0][0]
    drawn = found.box + np.array([-4, -3, 5, 2], dtype=np.float32)
    face = manual_face(faces[0], drawn, detector)
    assert face.manual
    np.testing.assert_allclose(face.box, drawn)
    assert np.abs(face.landmarks - found.landmarks).max() < 6.0
    # Without a detector the landmarks are placed at their mean positions inside the box.
    rough = manual_face(faces[0], drawn, None)
    assert rough.manual and rough.score == 0.0
    assert np.all((rough.landmarks >= drawn[:2]) & (rough.landmarks <= drawn[2:]))


def test_manual_box_outside_image_is_refused() -> None:
    with pytest.raises(ShapeError, match="outside"):
        manual_face(np.zeros((50, 50, 3), np.uint8), [60, 60, 90, 90], None)


def test_cli_detect_json_reports_errors_per_file(lfw_image, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = lfw_image("Al_Gore", 1)
    if not good.is_file():
        pytest.skip("Al_Gore_0001 missing")
    bad = tmp_path / "broken file.jpg"
    bad.write_bytes(b"not a jpeg")
    code = main(["detect", str(good), str(bad), "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 1
    assert out[0]["error"] is None and len(out[0]["faces"]) >= 1
    assert set(out[0]["faces"][0]) >= {"box", "score", "landmarks"}
    assert out[1]["error"] and "broken file.jpg" in out[1]["error"]
