"""Alignment: batched Umeyama similarity, template warps, dlib-like chips."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from forensic_face.engine.align import (
    ARCFACE_TEMPLATE_UNIT,
    DLIB_TEMPLATE_UNIT,
    TemplateAligner,
    invert_affine,
    resize_crop,
    similarity_transform,
    template_pixels,
    warp_affine,
    warp_to_template,
)
from forensic_face.engine.errors import ShapeError


def _random_similarity(n: int, gen: torch.Generator) -> torch.Tensor:
    angle = (torch.rand(n, generator=gen) - 0.5) * 2 * math.pi
    scale = 0.3 + 3 * torch.rand(n, generator=gen)
    trans = (torch.rand(n, 2, generator=gen) - 0.5) * 200
    rot = torch.stack([torch.stack([angle.cos(), -angle.sin()], 1), torch.stack([angle.sin(), angle.cos()], 1)], 1)
    return torch.cat([scale[:, None, None] * rot, trans[:, :, None]], dim=2).double()


def test_similarity_transform_recovers_known_transform_batched() -> None:
    gen = torch.Generator().manual_seed(0)
    truth = _random_similarity(8, gen)
    dst = torch.rand(5, 2, generator=gen).double() * 100
    # src = truth^-1 (dst), so similarity_transform(src, dst) must give truth back.
    src = (invert_affine(truth)[:, :, :2] @ dst.T + invert_affine(truth)[:, :, 2:]).transpose(1, 2)
    got = similarity_transform(src, dst)
    assert got.shape == (8, 2, 3)
    torch.testing.assert_close(got, truth, atol=1e-8, rtol=1e-8)


def test_similarity_transform_is_least_squares_for_noisy_points() -> None:
    gen = torch.Generator().manual_seed(1)
    src = torch.rand(4, 5, 2, generator=gen).double() * 50
    dst = src * 2 + 3 + torch.randn(4, 5, 2, generator=gen).double() * 0.5
    m = similarity_transform(src, dst)
    mapped = (m[:, :, :2] @ src.transpose(1, 2) + m[:, :, 2:]).transpose(1, 2)
    best = (mapped - dst).pow(2).sum()
    # Perturbing the optimum never lowers the error.
    for delta in (1e-3, -1e-3):
        m2 = m.clone()
        m2[:, 0, 0] += delta
        m2[:, 1, 1] += delta
        worse = ((m2[:, :, :2] @ src.transpose(1, 2) + m2[:, :, 2:]).transpose(1, 2) - dst).pow(2).sum()
        assert worse > best


def test_similarity_transform_rejects_bad_shapes() -> None:
    with pytest.raises(ShapeError):
        similarity_transform(torch.rand(5, 2), torch.rand(5, 2))
    with pytest.raises(ShapeError):
        similarity_transform(torch.rand(2, 5, 2), torch.rand(4, 2))


def test_templates_are_plausible_faces() -> None:
    for template in (DLIB_TEMPLATE_UNIT, ARCFACE_TEMPLATE_UNIT):
        assert template.shape == (5, 2)
        assert bool(((template > 0) & (template < 1)).all())
        left_eye, right_eye, nose, mouth_l, mouth_r = template
        assert left_eye[0] < right_eye[0] and mouth_l[0] < mouth_r[0]
        assert max(left_eye[1], right_eye[1]) < nose[1] < min(mouth_l[1], mouth_r[1])
    # dlib padding convention: (padding + unit) / (1 + 2 padding) * size.
    px = template_pixels(DLIB_TEMPLATE_UNIT, 150, 0.25)
    torch.testing.assert_close(px, (0.25 + DLIB_TEMPLATE_UNIT) / 1.5 * 150)


def _blob_image(points: torch.Tensor, size: int, sigma: float = 1.5) -> torch.Tensor:
    ys, xs = torch.meshgrid(torch.arange(size).double(), torch.arange(size).double(), indexing="ij")
    img = torch.zeros(size, size, dtype=torch.float64)
    for x, y in points:
        img += torch.exp(-((xs - x) ** 2 + (ys - y) ** 2) / (2 * sigma ** 2))
    return img.clamp(0, 1).float().expand(3, size, size)


def _centroid(chip: torch.Tensor, at: torch.Tensor, radius: int = 6) -> torch.Tensor:
    x0, y0 = (int(round(float(v))) for v in at)
    patch = chip[0, y0 - radius:y0 + radius + 1, x0 - radius:x0 + radius + 1].double()
    ys, xs = torch.meshgrid(torch.arange(y0 - radius, y0 + radius + 1).double(),
                            torch.arange(x0 - radius, x0 + radius + 1).double(), indexing="ij")
    return torch.stack([(patch * xs).sum() / patch.sum(), (patch * ys).sum() / patch.sum()])


def test_warp_puts_landmarks_on_template_pixels() -> None:
    size, out = 200, 150
    target = template_pixels(DLIB_TEMPLATE_UNIT, out, 0.25)
    # Landmarks: the template rotated by 20 degrees, scaled by 0.8 and shifted, inside a 200 px image.
    truth = torch.tensor([[[0.8 * math.cos(0.35), -0.8 * math.sin(0.35), 30.0],
                           [0.8 * math.sin(0.35), 0.8 * math.cos(0.35), 10.0]]], dtype=torch.float64)
    landmarks = (truth[:, :, :2] @ target.T + truth[:, :, 2:]).transpose(1, 2)
    images = _blob_image(landmarks[0], size)[None]
    chips = warp_to_template(images, landmarks.float(), DLIB_TEMPLATE_UNIT, out, 0.25)
    assert chips.shape == (1, 3, out, out)
    for point in target:
        assert float((_centroid(chips[0], point) - point).norm()) < 0.3


def test_warp_identity_reproduces_the_image() -> None:
    gen = torch.Generator().manual_seed(3)
    images = torch.rand(2, 3, 40, 40, generator=gen)
    eye = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]).expand(2, 2, 3)
    out = warp_affine(images, eye, 40)
    torch.testing.assert_close(out, images, atol=1e-5, rtol=0)


def test_bicubic_mode_keeps_identity_and_differs_from_bilinear_when_magnifying() -> None:
    gen = torch.Generator().manual_seed(4)
    images = torch.rand(1, 3, 12, 12, generator=gen)
    eye = torch.tensor([[[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]])
    torch.testing.assert_close(warp_affine(images, eye, 12, mode="bicubic"), images, atol=1e-5, rtol=0)
    magnify = torch.tensor([[[0.25, 0.0, 0.0], [0.0, 0.25, 0.0]]])  # chip px -> a quarter image px
    bilinear, bicubic = warp_affine(images, magnify, 40), warp_affine(images, magnify, 40, mode="bicubic")
    assert float((bilinear - bicubic).abs().max()) > 0.02


def test_antialiased_downscale_averages_fine_detail() -> None:
    checker = ((torch.arange(128)[:, None] + torch.arange(128)[None, :]) % 2).float().expand(1, 3, 128, 128)
    shrink = torch.tensor([[[4.0, 0.0, 0.0], [0.0, 4.0, 0.0]]])  # chip px -> 4 image px
    smooth = warp_affine(checker.contiguous(), shrink, 32, antialias=True)
    aliased = warp_affine(checker.contiguous(), shrink, 32, antialias=False)
    assert float(smooth[..., 2:-2, 2:-2].std()) < 0.05
    # Plain bilinear sampling hits pixels of one colour only: the checkerboard aliases to black.
    assert abs(float(aliased[..., 2:-2, 2:-2].mean()) - 0.5) > 0.3
    assert abs(float(smooth[..., 2:-2, 2:-2].mean()) - 0.5) < 0.05


def test_warp_rejects_degenerate_and_misshaped_landmarks() -> None:
    images = torch.rand(2, 3, 32, 32)
    with pytest.raises(ShapeError):
        warp_to_template(images, torch.full((2, 5, 2), 10.0), DLIB_TEMPLATE_UNIT, 16, 0.25)
    with pytest.raises(ShapeError):
        warp_to_template(images, torch.rand(3, 5, 2), DLIB_TEMPLATE_UNIT, 16, 0.25)
    with pytest.raises(ShapeError):
        warp_to_template(torch.rand(2, 1, 32, 32), torch.rand(2, 5, 2), DLIB_TEMPLATE_UNIT, 16, 0.25)


def test_resize_crop_and_aligner_class() -> None:
    images = torch.rand(3, 3, 90, 70)
    out = resize_crop(images, 160)
    assert out.shape == (3, 3, 160, 160) and float(out.min()) >= 0 and float(out.max()) <= 1
    aligner = TemplateAligner(ARCFACE_TEMPLATE_UNIT, 112)
    lms = template_pixels(ARCFACE_TEMPLATE_UNIT, 90, 0.0).float().expand(3, 5, 2)
    assert aligner(torch.rand(3, 3, 90, 90), lms).shape == (3, 3, 112, 112)


@pytest.mark.lfw
def test_mtcnn_aligned_chips_look_like_dlib_chips(lfw_test_people, lfw_image) -> None:
    """Our MTCNN-landmark chips give nearly the same dlib descriptor as dlib's own get_face_chip chips."""
    dlib = pytest.importorskip("dlib")
    frm = pytest.importorskip("face_recognition_models")
    from facenet_pytorch import MTCNN
    from PIL import Image

    from forensic_face.engine.recognizers import create_recognizer

    torch.set_num_threads(1)
    detector = dlib.get_frontal_face_detector()
    predictor = dlib.shape_predictor(frm.pose_predictor_five_point_model_location())
    mtcnn = MTCNN(device="cpu")
    rec = create_recognizer("dlib-resnet", torch.device("cpu"))
    dists = []
    for name, _ in lfw_test_people[:8]:
        img = np.asarray(Image.open(lfw_image(name, 1)).convert("RGB"))
        dets = detector(img, 1)
        boxes, _, points = mtcnn.detect(Image.fromarray(img), landmarks=True)
        if not dets or boxes is None:
            continue
        dlib_chip = dlib.get_face_chip(img, predictor(img, dets[0]), size=150, padding=0.25)
        tensor = torch.from_numpy(img.copy()).permute(2, 0, 1)[None].float() / 255
        ours = rec.prepare(tensor, torch.from_numpy(np.asarray(points[:1], dtype=np.float32)))
        theirs = torch.from_numpy(dlib_chip.copy()).permute(2, 0, 1)[None].float() / 255
        emb = rec.embed(torch.cat([theirs, ours]))
        dists.append(float((emb[0] - emb[1]).norm()))
    assert len(dists) >= 5
    # Same image, two aligners: far below the distance between different people (~0.6-0.9 normalised).
    assert float(np.mean(dists)) < 0.2, dists
