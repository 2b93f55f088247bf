"""Our PyTorch port of dlib's ResNet matches dlib itself on real faces (LFW peopleDevTest, 200 chips).

Chips are made by dlib alone (HOG frontal face detector, 5-point shape predictor, get_face_chip(150, 0.25)), so
the comparison isolates the network: our raw descriptor vs dlib.face_recognition_model_v1 on identical chips.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

pytestmark = pytest.mark.lfw

NUM_FACES = 200
MAX_L2 = 1e-3


@pytest.fixture(scope="module")
def dlib_chips(lfw_test_people, lfw_image) -> np.ndarray:
    dlib = pytest.importorskip("dlib")
    frm = pytest.importorskip("face_recognition_models")
    from PIL import Image

    detector = dlib.get_frontal_face_detector()
    predictor = dlib.shape_predictor(frm.pose_predictor_five_point_model_location())
    chips: list[np.ndarray] = []
    for name, count in lfw_test_people:
        for number in range(1, count + 1):
            img = np.asarray(Image.open(lfw_image(name, number)).convert("RGB"))
            dets = detector(img, 0)
            if dets:
                chips.append(dlib.get_face_chip(img, predictor(img, dets[0]), size=150, padding=0.25))
            if len(chips) == NUM_FACES:
                return np.stack(chips)
    pytest.skip(f"only {len(chips)} dlib detections in peopleDevTest; need {NUM_FACES}")


def test_port_matches_dlib_descriptor(dlib_chips: np.ndarray) -> None:
    dlib = pytest.importorskip("dlib")
    frm = pytest.importorskip("face_recognition_models")
    from forensic_face.engine.recognizers import create_recognizer

    torch.set_num_threads(1)
    reference = np.asarray(
        dlib.face_recognition_model_v1(frm.face_recognition_model_location()).compute_face_descriptor(list(dlib_chips)),
        dtype=np.float32,
    )
    rec = create_recognizer("dlib-resnet", torch.device("cpu"), batch_size=50)
    chips = torch.from_numpy(dlib_chips).permute(0, 3, 1, 2).float() / 255.0
    ours = rec.embed_raw(chips).numpy()

    assert ours.shape == reference.shape == (NUM_FACES, 128)
    diff = np.linalg.norm(ours - reference, axis=1)
    assert float(diff.max()) <= MAX_L2, f"max L2 {diff.max():.2e}, mean {diff.mean():.2e}"
    # dlib does not normalise its descriptor (norms ~1.3-1.5); embed() returns the unit-length direction.
    assert float(np.abs(np.linalg.norm(reference, axis=1) - 1).min()) > 0.05
    unit = rec.embed(chips).numpy()
    np.testing.assert_allclose(unit, reference / np.linalg.norm(reference, axis=1, keepdims=True), atol=1e-3)


def test_parsed_input_means_are_dlibs() -> None:
    frm = pytest.importorskip("face_recognition_models")
    from forensic_face.engine.recognizers.dlib_format import read_dlib_resnet_v1

    parsed = read_dlib_resnet_v1(frm.face_recognition_model_location())
    np.testing.assert_allclose(parsed.input_means, (122.782, 117.001, 104.298), atol=1e-4)
    assert parsed.input_size == 150 and parsed.tensors["fc.weight"].shape == (128, 256)
