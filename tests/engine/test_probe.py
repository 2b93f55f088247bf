"""Probe hypotheses, the template cache, chunking and gallery enrollment errors."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from forensic_face.engine.batching import map_chunks
from forensic_face.engine.cache import TemplateCache, cache_key
from forensic_face.engine.detect import MtcnnDetector
from forensic_face.engine.errors import Cancelled, GalleryError
from forensic_face.engine.gallery import enroll_gallery, list_gallery_images
from forensic_face.engine.matching import probe_size_bin
from forensic_face.engine.probe import (
    blur_sigmas,
    gaussian_blur_per_sample,
    probe_hypotheses,
)
from forensic_face.engine.templates import entry_seed
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


def test_probe_size_bins_and_seeds() -> None:
    assert probe_size_bin(29, 4) == 28 and probe_size_bin(31, 4) == 32 and probe_size_bin(1, 4) == 4
    assert entry_seed("ab" * 32, 0) == entry_seed("ab" * 32, 0) != entry_seed("ab" * 32, 1)


def test_map_chunks_matches_one_call() -> None:
    x = torch.arange(10.0)[:, None]
    y = torch.ones(10, 2)
    out = map_chunks(lambda a, b: a * 2 + b.sum(1, keepdim=True), (x, y), batch_size=3)
    torch.testing.assert_close(out, x * 2 + 2)
    with pytest.raises(ValueError):
        map_chunks(lambda a: a, (torch.zeros(0, 1),), 2)


def test_template_cache_roundtrip_and_corruption_is_recomputed(tmp_path: Path) -> None:
    cache = TemplateCache(tmp_path)
    key = cache_key(kind="test", sha="x", scale=2)
    templates = torch.randn(5, 128)
    assert cache.load(key) is None
    cache.store(key, templates)
    torch.testing.assert_close(cache.load(key), templates)
    path = next(tmp_path.rglob("*.safetensors"))
    data = bytearray(path.read_bytes())
    data[-8:] = b"\x00" * 8  # damage the tensor bytes: the recorded SHA-256 no longer matches
    path.write_bytes(bytes(data))
    assert cache.load(key) is None
    assert not path.exists(), "an untrustworthy entry is removed"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"garbage")
    assert cache.load(key) is None
    assert TemplateCache(None).load(key) is None


def test_gallery_listing_reports_non_images(tmp_path: Path) -> None:
    (tmp_path / "Alice Smith").mkdir()
    Image.new("RGB", (10, 10)).save(tmp_path / "Alice Smith" / "a 1.jpg")
    (tmp_path / "Alice Smith" / "notes.txt").write_text("x")
    Image.new("RGB", (10, 10)).save(tmp_path / "Bob.png")
    (tmp_path / ".DS_Store").write_text("")
    items, problems = list_gallery_images(tmp_path)
    assert [(i, p.name) for i, p in items] == [("Alice Smith", "a 1.jpg"), ("Bob", "Bob.png")]
    assert [p.image_path.name for p in problems] == ["notes.txt"]


def test_gallery_errors_are_specific(tmp_path: Path) -> None:
    detector = MtcnnDetector()
    with pytest.raises(GalleryError, match="does not exist"):
        enroll_gallery(tmp_path / "missing", detector)
    with pytest.raises(GalleryError, match="holds no images"):
        enroll_gallery(tmp_path, detector)
    Image.new("RGB", (80, 80), (120, 120, 120)).save(tmp_path / "Nobody.png")
    (tmp_path / "Broken.jpg").write_bytes(b"junk")
    with pytest.raises(GalleryError, match="no face was found"):
        enroll_gallery(tmp_path, detector)


def test_enrollment_lists_problems_and_cancels(tmp_path: Path, lfw_image) -> None:
    src = lfw_image("Al_Gore", 1)
    shutil.copy(src, tmp_path / "Al Gore.jpg")
    Image.new("RGB", (80, 80), (120, 120, 120)).save(tmp_path / "Blank Wall.png")
    (tmp_path / "Broken.jpg").write_bytes(b"junk")
    detector = MtcnnDetector()
    gallery = enroll_gallery(tmp_path, detector)
    assert gallery.identities == ["Al Gore"]
    reasons = {p.image_path.name: p.reason for p in gallery.problems}
    assert reasons["Blank Wall.png"] == "no face found"
    assert "not an image" in reasons["Broken.jpg"]
    with pytest.raises(Cancelled):
        enroll_gallery(tmp_path, detector, should_cancel=lambda: True)


def test_recorded_configs_keep_the_settings_their_search_ran_with() -> None:
    """A search recorded before the flip test existed ran without it, whatever today's default is."""
    from forensic_face.engine.config import RECORD_LEGACY_VALUES, EngineConfig

    stored = EngineConfig(flip_test=True).to_dict()
    assert EngineConfig.from_record(stored).flip_test is True
    del stored["flip_test"]
    assert RECORD_LEGACY_VALUES["flip_test"] is False
    assert EngineConfig.from_record(stored).flip_test is False
    assert EngineConfig.from_dict(stored).flip_test is EngineConfig().flip_test


def test_cli_flip_test_flag_sets_the_engine_setting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import argparse

    from forensic_face.cli.common import add_engine_arguments, engine_config_from_args

    monkeypatch.setenv("FORENSIC_FACE_CONFIG_DIR", str(tmp_path))
    parser = argparse.ArgumentParser()
    add_engine_arguments(parser)
    assert engine_config_from_args(parser.parse_args(["--flip-test", "on"])).flip_test is True
    assert engine_config_from_args(parser.parse_args(["--flip-test", "off"])).flip_test is False


def test_every_user_setting_flag_sets_its_engine_setting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The flags are generated from USER_SETTINGS and read back from it: each one given changes its field."""
    import argparse

    from forensic_face.cli.common import add_setting_arguments, engine_config_from_args
    from forensic_face.engine.config import USER_SETTINGS, EngineConfig

    monkeypatch.setenv("FORENSIC_FACE_CONFIG_DIR", str(tmp_path))
    given = {"count": ("3", 3), "whole": ("7", 7), "scales": ("4,2", (2, 4)), "weights": ("2,1", (2.0, 1.0)),
             "switches": ("on,off", (True, False)), "file": ("model.pt", "model.pt")}
    names = {"recognizer": "dlib-resnet", "upsampler": "bicubic", "fusion": "S_add,S_add"}
    parser = argparse.ArgumentParser()
    add_setting_arguments(parser, [s.name for s in USER_SETTINGS])
    defaults = EngineConfig()
    for setting in USER_SETTINGS:
        default = getattr(defaults, setting.name)
        if setting.entry == "choice":
            text, expected = next((c, c) for c in setting.choices if c != default)
        elif setting.entry == "on-off":
            text, expected = ("off", False) if default else ("on", True)
        elif setting.entry == "name":
            text = expected = names[setting.name]
        else:
            text, expected = given.get(setting.entry, (None, False))  # off-flag: given alone, it turns it off
        argv = [setting.flag] if text is None else [setting.flag, text]
        config = engine_config_from_args(parser.parse_args(argv))
        assert getattr(config, setting.name) == expected != default, setting.name
        assert config.replace(**{setting.name: default}) == defaults, setting.name  # nothing else changed


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
