"""The LFW-XRes split and its probe degradation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from forensic_face.eval.protocol import (
    KnownFace,
    ProbeSpec,
    degrade_probe,
    lfw_xres_split,
    materialize_probes,
    nominal_face,
    probe_seed,
    read_people_list,
)
from forensic_face.surveillance import DEFAULT_SURVEILLANCE

pytestmark = pytest.mark.lfw


def test_split_counts_and_disjointness(lfw_root: Path) -> None:
    split = lfw_xres_split(lfw_root)
    assert len(split.gallery) == 496
    assert len(split.gallery) + len(split.probes) == 2493
    assert len(split.probes) == 1997
    train = {name for name, _ in read_people_list(lfw_root / "peopleDevTrain.txt")}
    assert not train & set(split.identities)
    # the first image by number is the gallery; no gallery image is also a probe
    assert all(g.number == 1 for g in split.gallery)
    assert {p.identity for p in split.probes} == set(split.identities)
    assert not {g.name for g in split.gallery} & {p.name for p in split.probes}
    assert all(p.number >= 2 for p in split.probes)


def test_subset_keeps_first_people(lfw_root: Path) -> None:
    full = lfw_xres_split(lfw_root)
    sub = lfw_xres_split(lfw_root, subset=3)
    assert sub.identities == full.identities[:3]
    assert {p.identity for p in sub.probes} == set(sub.identities)


def _original(lfw_image, name: str = "Abel_Pacheco", number: int = 2) -> np.ndarray:
    from PIL import Image

    with Image.open(lfw_image(name, number)) as im:
        return np.asarray(im.convert("RGB"))


def test_probe_is_deterministic(lfw_image) -> None:
    pixels = _original(lfw_image)
    seed = probe_seed(0, "Abel_Pacheco_0002")
    assert seed == probe_seed(0, "Abel_Pacheco_0002")
    assert seed != probe_seed(1, "Abel_Pacheco_0002") != probe_seed(0, "Abel_Pacheco_0003")
    a = degrade_probe(pixels, nominal_face(), 24, DEFAULT_SURVEILLANCE, seed)
    b = degrade_probe(pixels, nominal_face(), 24, DEFAULT_SURVEILLANCE, seed)
    c = degrade_probe(pixels, nominal_face(), 24, DEFAULT_SURVEILLANCE, seed + 1)
    assert a.pixels.tobytes() == b.pixels.tobytes()
    assert a.pixels.tobytes() != c.pixels.tobytes()


@pytest.mark.parametrize("width", [16, 24, 32])
def test_probe_face_width(lfw_image, width: int) -> None:
    pixels = _original(lfw_image)
    # an off-centre, MTCNN-like box 88 px wide
    known = KnownFace(np.array([80.0, 70.0, 168.0, 178.0]), np.array([[100.0, 110]] * 5), "mtcnn")
    probe = degrade_probe(pixels, known, width, DEFAULT_SURVEILLANCE, 7)
    assert abs(probe.face_width_px - width) <= 1.0
    # the whole image was degraded, not a crop
    assert abs(probe.pixels.shape[1] - 250 * width / 88.0) <= 1.0
    assert probe.pixels.dtype == np.uint8 and probe.pixels.shape[2] == 3
    # the face box is scaled with the image
    assert np.allclose(probe.face.box / probe.pixels.shape[1] * 250, known.box, atol=2.5)


def test_materialized_probes_are_reproducible(lfw_root: Path, tmp_path: Path) -> None:
    split = lfw_xres_split(lfw_root, subset=1)
    spec = ProbeSpec(width_px=16, face_width_source="nominal")
    first = materialize_probes(split, spec, tmp_path / "a", known_faces=None)
    second = materialize_probes(split, spec, tmp_path / "b", known_faces=None)
    assert len(first) == len(split.probes)
    for r1, r2 in zip(first, second):
        assert r1.path.read_bytes() == r2.path.read_bytes()
        assert r1.image.identity == split.identities[0]
        assert abs(r1.face.width_px - 16) <= 1.0
