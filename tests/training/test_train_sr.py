"""Face-SR training: pairs, checkpoints with config + metrics, exact resumption, and the evaluation maths."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from forensic_face.engine.errors import ConfigError
from forensic_face.engine.upsamplers.face_sr import load_face_sr
from forensic_face.training.eval_sr import ssim
from forensic_face.training.sr_data import (
    lfw_image_paths,
    load_crops,
    make_pairs,
    synthetic_faces,
)
from forensic_face.training.train_sr import CHECKPOINT_NAME, SrTrainConfig, train_sr


def _config(out_dir: Path, **changes: Any) -> SrTrainConfig:
    values: dict[str, Any] = dict(
        scale=2, out_dir=str(out_dir), iterations=3, batch_size=2, n_feats=8, n_blocks=1,
        checkpoint_every=2, synthetic=True, progress=False, lr_px_min=8, lr_px_max=10, seed=5,
    )
    values.update(changes)
    return SrTrainConfig(**values)


class _Crash(Exception):
    pass


def test_make_pairs_sizes_and_seeding() -> None:
    crops = synthetic_faces(4, seed=1)
    lr, hr, recipes = make_pairs(crops, 4, 12, 3, np.random.default_rng(0))
    assert lr.shape == (3, 3, 12, 12) and hr.shape == (3, 3, 48, 48)
    assert lr.dtype == torch.float32 and 0.0 <= float(lr.min()) and float(hr.max()) <= 1.0
    lr2, hr2, recipes2 = make_pairs(crops, 4, 12, 3, np.random.default_rng(0))
    assert torch.equal(lr, lr2) and torch.equal(hr, hr2) and recipes == recipes2
    # The LR input is a degraded HR: close to its area-downsampled version, but not equal.
    area = F.avg_pool2d(hr, 4)
    assert 0.005 < float((lr - area).abs().mean()) < 0.15


def test_make_pairs_with_the_broad_camera_family() -> None:
    """The recognizer's training cameras (camera_family) can make the LR inputs too: seeded, right sizes, and a
    camera of the family (not the benchmark's CCTV model) recorded in each recipe."""
    from forensic_face.training.camera_family import CameraParams

    crops = synthetic_faces(4, seed=1)
    lr, hr, recipes = make_pairs(crops, 2, 20, 6, np.random.default_rng(3), camera_model="family")
    assert lr.shape == (6, 3, 20, 20) and hr.shape == (6, 3, 40, 40)
    assert all(isinstance(r.camera, CameraParams) for r in recipes)
    again = make_pairs(crops, 2, 20, 6, np.random.default_rng(3), camera_model="family")
    assert torch.equal(lr, again[0]) and recipes == again[2]
    with pytest.raises(ConfigError, match="camera_model"):
        _config(Path("unused"), camera_model="webcam")
    with pytest.raises(ConfigError, match="identity_recognizer"):
        _config(Path("unused"), identity_recognizer="arcface")


def test_training_writes_checkpoint_config_metrics_and_weights(tmp_path: Path) -> None:
    config = _config(tmp_path / "run")
    metrics = train_sr(config)
    run = Path(config.out_dir)
    assert (run / CHECKPOINT_NAME).is_file()
    saved_config = json.loads((run / "config.json").read_text())
    assert saved_config["scale"] == 2 and saved_config["seed"] == 5
    saved_metrics = json.loads((run / "metrics.json").read_text())
    assert [h["iteration"] for h in saved_metrics["history"]] == [2, 3]
    assert metrics["iteration"] == 3
    assert {"val_psnr_sr", "val_psnr_bicubic", "train_l1"} <= set(saved_metrics)
    net = load_face_sr(run / "face_sr_x2.safetensors")
    assert net.scale == 2 and net.n_feats == 8


def test_resume_continues_exactly(tmp_path: Path) -> None:
    """A run that crashes after its first checkpoint and is resumed ends with the same weights as one that ran
    straight through (batches come from (seed, iteration), the optimizer state is restored)."""
    straight = _config(tmp_path / "straight", iterations=4)
    train_sr(straight)

    interrupted = _config(tmp_path / "interrupted", iterations=4)

    def crash(metrics: dict[str, Any]) -> None:
        raise _Crash

    with pytest.raises(_Crash):
        train_sr(interrupted, on_checkpoint=crash)
    first = torch.load(Path(interrupted.out_dir) / CHECKPOINT_NAME, weights_only=True)
    assert first["iteration"] == 2

    metrics = train_sr(interrupted)
    assert [h["iteration"] for h in metrics["history"]] == [2, 4]
    a = load_face_sr(Path(straight.out_dir) / "face_sr_x2.safetensors").state_dict()
    b = load_face_sr(Path(interrupted.out_dir) / "face_sr_x2.safetensors").state_dict()
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)


def test_resume_with_other_settings_is_refused(tmp_path: Path) -> None:
    train_sr(_config(tmp_path / "run", iterations=2))
    with pytest.raises(ConfigError, match="learning_rate"):
        train_sr(_config(tmp_path / "run", iterations=4, learning_rate=1e-3))


@pytest.mark.lfw
def test_lfw_training_crops(lfw_root: Path, tmp_path: Path) -> None:
    paths = lfw_image_paths(lfw_root, "peopleDevTrain.txt")[:3]
    test_people = {line.split("\t")[0] for line in (lfw_root / "peopleDevTest.txt").read_text().splitlines()[1:]}
    assert not {p.parent.name for p in paths} & test_people
    crops = load_crops(paths, tmp_path)
    assert crops.shape == (3, 160, 160, 3) and crops.dtype == np.uint8
    again = load_crops(paths, tmp_path)  # served from the .npy cache
    assert isinstance(again, np.memmap) and np.array_equal(np.asarray(again), crops)


def test_ssim_identity_and_ordering() -> None:
    torch.manual_seed(0)
    x = torch.rand(2, 3, 32, 32)
    assert torch.allclose(ssim(x, x), torch.ones(2), atol=1e-5)
    slightly = (x + 0.02 * torch.randn_like(x)).clamp(0, 1)
    badly = (x + 0.2 * torch.randn_like(x)).clamp(0, 1)
    assert bool((ssim(slightly, x) > ssim(badly, x)).all())


def test_ship_run_writes_weights_and_manifest(tmp_path: Path) -> None:
    from forensic_face.engine.upsamplers.face_sr import FaceSrUpsampler
    from forensic_face.engine.weights import sha256_of
    from forensic_face.training.ship_sr import ship_run

    config = _config(tmp_path / "run", iterations=2)
    train_sr(config)
    manifest = tmp_path / "manifest.json"
    manifest.write_text(json.dumps({"weights": {"other_model": {"file": "x.bin", "sha256": "0" * 64}}}))
    name = ship_run(Path(config.out_dir), weights_dir=tmp_path / "weights", manifest_path=manifest)
    entry = json.loads(manifest.read_text())["weights"][name]
    assert name == "face_sr_x2"
    assert "other_model" in json.loads(manifest.read_text())["weights"]
    path = tmp_path / "weights" / entry["file"]
    assert entry["sha256"] == sha256_of(path)
    assert "--iterations 2" in entry["training_command"] and "--n-feats 8" in entry["training_command"]
    assert entry["seed"] == 5 and entry["metrics"]["iterations"] == 2
    upsampler = FaceSrUpsampler(weights={2: (path, entry["sha256"])})
    assert upsampler.upsample(torch.rand(1, 3, 8, 8), 2).shape == (1, 3, 16, 16)

    # A network fine-tuned from the shipped one replaces it; the manifest keeps the parent's record.
    tuned = _config(tmp_path / "tuned", iterations=2, identity_weight=0.5, init_from=str(path),
                    init_from_sha256=entry["sha256"])
    train_sr(tuned)
    ship_run(Path(tuned.out_dir), weights_dir=tmp_path / "weights", manifest_path=manifest)
    tuned_entry = json.loads(manifest.read_text())["weights"][name]
    assert tuned_entry["fine_tuned_from"]["sha256"] == entry["sha256"] != tuned_entry["sha256"]
    assert f"fine-tuned on LFW faces from the network with SHA-256 {entry['sha256']}" in tuned_entry["description"]
    assert "--identity-weight 0.5" in tuned_entry["training_command"]
    assert "init_from_sha256" not in tuned_entry["training_command"].replace("-", "_")
    assert {"val_identity_loss_sr", "val_identity_loss_bicubic"} <= set(tuned_entry["metrics"])


def test_identity_loss_is_zero_for_the_target_and_pulls_output_towards_it() -> None:
    from forensic_face.training.train_sr import identity_loss, identity_network

    recognizer = identity_network(torch.device("cpu"))
    hr = torch.from_numpy(synthetic_faces(2, seed=3)[:, :96, :96]).permute(0, 3, 1, 2).float() / 255.0
    assert float(identity_loss(recognizer, hr, hr)) == pytest.approx(0.0, abs=1e-5)
    blurred = F.avg_pool2d(hr, 8)
    output = F.interpolate(blurred, scale_factor=8, mode="nearest").requires_grad_(True)
    loss = identity_loss(recognizer, output, hr)
    assert float(loss.detach()) > 1e-3
    loss.backward()
    assert output.grad is not None and float(output.grad.abs().sum()) > 0
    assert not any(p.requires_grad for p in recognizer.parameters())


def test_fine_tuning_with_identity_loss_starts_from_the_given_weights(tmp_path: Path) -> None:
    base = _config(tmp_path / "base", iterations=2)
    train_sr(base)
    weights = Path(base.out_dir) / "face_sr_x2.safetensors"
    tuned = _config(tmp_path / "tuned", iterations=2, identity_weight=0.5, init_from=str(weights))
    metrics = train_sr(tuned)
    assert {"train_identity_loss", "val_identity_loss_sr", "val_identity_loss_bicubic"} <= set(metrics)
    assert json.loads((Path(tuned.out_dir) / "config.json").read_text())["init_from"] == str(weights)
    with pytest.raises(ConfigError, match="n_feats"):
        train_sr(_config(tmp_path / "other", iterations=1, n_feats=16, init_from=str(weights)))
