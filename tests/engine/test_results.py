"""Result records: the face codec is exact and reads older rounded records."""

from __future__ import annotations

import numpy as np


def test_face_record_is_exact_and_reads_old_rounded_records() -> None:
    """One face codec: a detected (float32) face comes back bit for bit; the record is the one cases have always
    stored in their hash chain; records rounded to 0.01 px by older eval caches and shortlist indexes still read."""
    import json

    from forensic_face.engine.results import FaceDetection

    rng = np.random.default_rng(0)
    face = FaceDetection(box=rng.uniform(0, 500, 4).astype(np.float32), score=float(np.float32(0.987654321)),
                         landmarks=rng.uniform(0, 500, (5, 2)).astype(np.float32))
    back = FaceDetection.from_json(json.loads(json.dumps(face.to_json())))
    assert back.box.dtype == back.landmarks.dtype == np.float32
    assert back.box.tobytes() == face.box.tobytes() and back.landmarks.tobytes() == face.landmarks.tobytes()
    assert (back.score, back.manual) == (face.score, False)
    drawn = FaceDetection(box=np.array([1.5, 2.25, 30.125, 40.0], np.float32), score=0.0,
                          landmarks=np.full((5, 2), 0.1, np.float32), manual=True)
    x = float(np.float32(0.1))  # a case stores the float32's exact value, not the decimal it was typed as
    assert drawn.to_json() == {"box": [1.5, 2.25, 30.125, 40.0], "score": 0.0, "landmarks": [[x, x]] * 5,
                               "manual": True}
    old = {"box": [10.12, 20.5, 40.0, 60.99], "score": 0.99999, "landmarks": [[15.01, 30.0]] * 5}
    read = FaceDetection.from_json(old)
    assert np.array_equal(read.box, np.float32(old["box"])) and read.landmarks.shape == (5, 2) and not read.manual
