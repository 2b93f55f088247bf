"""Face alignment: map 5 facial landmarks onto a recognizer's template with one batched similarity warp.

Landmarks are ``(N,5,2)`` pixel (x, y) coordinates in MTCNN order: left eye, right eye, nose tip, left mouth
corner, right mouth corner ("left" = image left). Pixel centres sit at integer coordinates, as in dlib.

Two templates are provided:

* :data:`DLIB_TEMPLATE_UNIT` reproduces dlib's face chips (``dlib.get_face_chip(img, shape, 150, 0.25)``).
  dlib maps landmarks onto its 68-point mean face (``get_face_chip_details`` in
  ``dlib/image_transforms/interpolation.h``); the MTCNN-equivalent points of that mean face are the eye centres
  (mean of points 36-41 and 42-47), the nose tip (30) and the mouth corners (48, 54).
* :data:`ARCFACE_TEMPLATE_UNIT`: the standard 112x112 ArcFace 5-point template, divided by 112.

A template in "unit" coordinates lies in [0, 1] of the face region; ``padding`` enlarges the chip around it the
way dlib does: ``chip = (padding + unit) / (1 + 2 * padding) * out_size``.
"""

from __future__ import annotations

import logging
import math

import torch
import torch.nn.functional as F

from forensic_face.engine.check import check_image_batch, check_shape
from forensic_face.engine.errors import ShapeError

log = logging.getLogger(__name__)

# dlib's mean face shape (points 17-67 of the iBUG 68-point scheme, in [0, 1] of the face), the points we need.
_DLIB_MEAN_FACE: dict[int, tuple[float, float]] = {
    30: (0.490127, 0.515625),
    36: (0.121737, 0.216423), 37: (0.187122, 0.178758), 38: (0.265825, 0.179852),
    39: (0.334606, 0.231733), 40: (0.260918, 0.245099), 41: (0.182743, 0.244077),
    42: (0.645647, 0.231733), 43: (0.714428, 0.179852), 44: (0.793132, 0.178758),
    45: (0.858516, 0.216423), 46: (0.79751, 0.244077), 47: (0.719335, 0.245099),
    48: (0.254149, 0.780233), 54: (0.726104, 0.780233),
}


def _mean_point(indices: range | tuple[int, ...]) -> tuple[float, float]:
    xs = [_DLIB_MEAN_FACE[i][0] for i in indices]
    ys = [_DLIB_MEAN_FACE[i][1] for i in indices]
    return sum(xs) / len(xs), sum(ys) / len(ys)


#: MTCNN-order 5-point template on dlib's mean face, unit coordinates (before padding).
DLIB_TEMPLATE_UNIT = torch.tensor(
    [_mean_point(range(36, 42)), _mean_point(range(42, 48)), _DLIB_MEAN_FACE[30], _DLIB_MEAN_FACE[48],
     _DLIB_MEAN_FACE[54]],
    dtype=torch.float64,
)
#: dlib's chip convention for its ResNet: 150x150 pixels, padding 0.25.
DLIB_CHIP_SIZE = 150
DLIB_CHIP_PADDING = 0.25

#: The ArcFace (insightface) 112x112 template, in unit coordinates; used with padding 0.
ARCFACE_TEMPLATE_UNIT = torch.tensor(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]],
    dtype=torch.float64,
) / 112.0


def template_pixels(template_unit: torch.Tensor, out_size: int, padding: float) -> torch.Tensor:
    """Template points in output-chip pixels: ``(padding + unit) / (1 + 2 padding) * out_size``, shape (5,2)."""
    check_shape(template_unit, ["5", "2"], "template_unit")
    return (padding + template_unit.to(torch.float64)) / (1.0 + 2.0 * padding) * out_size


def similarity_transform(src: torch.Tensor, dst: torch.Tensor) -> torch.Tensor:
    """Least-squares similarity (rotation, uniform scale, translation) mapping ``src`` onto ``dst`` (Umeyama 1991).

    Args:
        src: ``(N,P,2)`` points.
        dst: ``(P,2)`` or ``(N,P,2)`` points.

    Returns:
        ``(N,2,3)`` matrices ``M`` with ``dst ~ M[:, :, :2] @ src + M[:, :, 2]``, in ``src``'s dtype and device
        (computed in float64).

    >>> m = similarity_transform(torch.rand(4, 5, 2), torch.rand(5, 2))
    >>> tuple(m.shape)
    (4, 2, 3)
    """
    if src.dim() != 3 or src.shape[-1] != 2 or src.shape[1] < 2:
        raise ShapeError(f"src: expected shape (N,P,2) with P >= 2, got {tuple(src.shape)}")
    if dst.dim() == 2:
        dst = dst.unsqueeze(0).expand(src.shape[0], -1, -1)
    if dst.shape != src.shape:
        raise ShapeError(f"dst: expected shape {(src.shape[1], 2)} or {tuple(src.shape)}, got {tuple(dst.shape)}")
    s = src.to(torch.float64)
    d = dst.to(device=src.device, dtype=torch.float64)
    num_points = s.shape[1]
    mu_s = s.mean(dim=1, keepdim=True)
    mu_d = d.mean(dim=1, keepdim=True)
    sc = s - mu_s
    dc = d - mu_d
    var_s = sc.pow(2).sum(dim=(1, 2)) / num_points  # (N,)
    cov = dc.transpose(1, 2) @ sc / num_points  # (N,2,2)
    u, sigma, vh = torch.linalg.svd(cov)
    reflect = torch.ones_like(sigma)
    reflect[:, 1] = torch.sign(torch.linalg.det(u) * torch.linalg.det(vh))
    reflect[reflect == 0] = 1.0
    rot = u @ torch.diag_embed(reflect) @ vh
    scale = (sigma * reflect).sum(dim=1) / var_s.clamp_min(1e-12)
    lin = scale[:, None, None] * rot
    trans = mu_d.transpose(1, 2) - lin @ mu_s.transpose(1, 2)
    return torch.cat([lin, trans], dim=2).to(src.dtype)


def invert_affine(m: torch.Tensor) -> torch.Tensor:
    """Invert ``(N,2,3)`` affine matrices."""
    check_shape(m, ["N", "2", "3"], "affine")
    lin = m[:, :, :2]
    inv = torch.linalg.inv(lin)
    return torch.cat([inv, -(inv @ m[:, :, 2:])], dim=2)


def _pixel_to_norm(size_x: int, size_y: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """3x3 matrix from pixel (centre at integer) to grid_sample's align_corners=False coordinates."""
    return torch.tensor([[2.0 / size_x, 0.0, 1.0 / size_x - 1.0],
                         [0.0, 2.0 / size_y, 1.0 / size_y - 1.0],
                         [0.0, 0.0, 1.0]], dtype=dtype, device=device)


def warp_affine(images: torch.Tensor, chip_to_image: torch.Tensor, out_size: int,
                antialias: bool = True, mode: str = "bilinear") -> torch.Tensor:
    """Sample ``(N,3,out,out)`` chips where chip pixel ``(u, v)`` reads image pixel ``chip_to_image @ (u, v, 1)``.

    Bilinear sampling (``mode="bicubic"`` for grid_sample's bicubic, which overshoots: clamp afterwards), zero
    outside the image. Every recognizer's ``prepare`` uses bilinear: on 24 px LFW probes it was 1-3.4 points
    better for dlib-resnet-lr, level for faceres and 3.5 points worse for mobileface (docs/recognizer.md,
    "faceres and mobileface"), so no single choice wins and the default network's keeps it. When a chip pixel
    covers more than one image pixel and ``antialias`` is set, each chip pixel averages a k x k grid of samples
    over its footprint (k = ceil of the largest scale in the batch, at most 4), which plays the role of dlib's
    pyramid down-sampling.
    """
    check_image_batch(images)
    check_shape(chip_to_image, [str(images.shape[0]), "2", "3"], "chip_to_image")
    n, _, height, width = images.shape
    device = images.device
    work = torch.float64
    a = torch.cat([chip_to_image.to(device=device, dtype=work),
                   torch.tensor([[[0.0, 0.0, 1.0]]], dtype=work, device=device).expand(n, 1, 3)], dim=1)
    to_norm = _pixel_to_norm(width, height, work, device)
    from_norm = torch.linalg.inv(_pixel_to_norm(out_size, out_size, work, device))
    theta = (to_norm @ a @ from_norm)[:, :2, :]

    scale = torch.linalg.det(chip_to_image[:, :, :2].to(work)).abs().sqrt()
    steps = min(4, max(1, math.ceil(float(scale.max()) - 1e-6))) if antialias and n else 1
    grid = F.affine_grid(theta.to(images.dtype), [n, 3, out_size, out_size], align_corners=False)
    if steps == 1:
        return F.grid_sample(images, grid, mode=mode, padding_mode="zeros", align_corners=False)
    # Sub-pixel offsets inside one chip pixel, mapped through the linear part into normalised input units.
    offsets = (torch.arange(steps, dtype=work, device=device) + 0.5) / steps - 0.5
    lin_norm = theta[:, :, :2] * (2.0 / out_size)  # d(norm_in)/d(chip px) per sample
    out = torch.zeros(n, images.shape[1], out_size, out_size, dtype=images.dtype, device=device)
    for dy in offsets:
        for dx in offsets:
            shift = (lin_norm @ torch.stack([dx, dy]).to(work).expand(n, 2).unsqueeze(-1)).squeeze(-1)
            shifted = grid + shift.to(images.dtype)[:, None, None, :]
            out += F.grid_sample(images, shifted, mode=mode, padding_mode="zeros", align_corners=False)
    return out / (steps * steps)


def warp_to_template(images: torch.Tensor, landmarks: torch.Tensor, template_unit: torch.Tensor, out_size: int,
                     padding: float = 0.0, antialias: bool = True, mode: str = "bilinear") -> torch.Tensor:
    """Align faces: similarity-map each image's 5 landmarks onto the template and sample an ``out_size`` chip.

    Args:
        images: ``(N,3,H,W)`` float RGB in [0,1].
        landmarks: ``(N,5,2)`` pixel (x, y) in MTCNN order, in the coordinates of ``images``.
        template_unit: ``(5,2)`` template points in [0,1] of the (unpadded) face region.
        out_size: chip side in pixels.
        padding: dlib-style padding around the template (0.25 for dlib's ResNet, 0 for ArcFace).
        antialias, mode: see :func:`warp_affine`.

    Returns:
        ``(N,3,out_size,out_size)`` chips on ``images.device``.

    >>> chips = warp_to_template(torch.rand(2, 3, 64, 64), torch.rand(2, 5, 2) * 64, DLIB_TEMPLATE_UNIT, 32, 0.25)
    >>> tuple(chips.shape)
    (2, 3, 32, 32)
    """
    check_image_batch(images)
    check_shape(landmarks, [str(images.shape[0]), "5", "2"], "landmarks")
    dst = template_pixels(template_unit, out_size, padding).to(landmarks.device)
    image_to_chip = similarity_transform(landmarks.to(torch.float64), dst)
    degenerate = image_to_chip[:, :, :2].abs().sum(dim=(1, 2)) < 1e-9
    if bool(degenerate.any()):
        raise ShapeError(f"landmarks of sample(s) {degenerate.nonzero().flatten().tolist()} are degenerate "
                         "(all points coincide); cannot align")
    return warp_affine(images, invert_affine(image_to_chip), out_size, antialias=antialias, mode=mode)


def resize_crop(images: torch.Tensor, out_size: int) -> torch.Tensor:
    """Plain resize of face crops (e.g. MTCNN box enlarged 1.3x) to ``(N,3,out_size,out_size)``, antialiased."""
    check_image_batch(images)
    if images.shape[-2:] == (out_size, out_size):
        return images
    out = F.interpolate(images, size=(out_size, out_size), mode="bilinear", align_corners=False, antialias=True)
    return out.clamp_(0.0, 1.0)


class TemplateAligner:
    """Holds a template, chip size and padding; ``__call__`` runs :func:`warp_to_template`."""

    def __init__(self, template_unit: torch.Tensor, out_size: int, padding: float = 0.0,
                 antialias: bool = True) -> None:
        check_shape(template_unit, ["5", "2"], "template_unit")
        self.template_unit = template_unit
        self.out_size = out_size
        self.padding = padding
        self.antialias = antialias

    def __call__(self, images: torch.Tensor, landmarks: torch.Tensor) -> torch.Tensor:
        return warp_to_template(images, landmarks, self.template_unit, self.out_size, self.padding, self.antialias)
