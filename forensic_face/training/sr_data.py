"""Training and evaluation pairs for face super-resolution, made from LFW deep-funneled faces.

LFW deep-funneled images are 250x250 with the face centred and about 100-115 px wide. The high-resolution
(HR) face is a square of ``CROP_PX`` = 140 px (about 1.3x the face width, like the engine's 1.3x-enlarged
MTCNN crop) about the image centre. Decoded crops are cached once as a ``.npy`` file (memory-mapped, so
several training processes share one copy in the page cache).

A pair is made by resizing the crop to ``lr_px * scale`` (the HR target) and degrading that under a randomly
drawn, seeded camera (the LR input, exactly ``lr_px`` square): the benchmark's CCTV model
(:func:`forensic_face.surveillance.degrade_to_scale`) or the broad training family
(:func:`forensic_face.training.camera_family.apply_camera`). All randomness comes from a
``numpy.random.Generator``.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image

from forensic_face.engine import ConfigError, GalleryError
from forensic_face.training.camera_family import CameraParams, apply_camera, sample_camera
from forensic_face.surveillance import (
    SurveillanceParams,
    degrade_to_scale,
    sample_surveillance_params,
)

log = logging.getLogger(__name__)

#: Side of the HR face square in LFW deep-funneled pixels (about 1.3x the face width).
CROP_PX = 140
#: Side of the cached square; the margin around ``CROP_PX`` allows jittered crops.
CACHE_PX = 160
LFW_IMAGE_PX = 250

#: Default LR face sizes per scale. The HR target is ``lr_px * scale``; the ranges keep it at or below
#: about the real resolution of an LFW face (140 px) except for the largest 8x sizes.
DEFAULT_LR_RANGE: dict[int, tuple[int, int]] = {2: (16, 40), 4: (16, 36), 8: (12, 24)}

#: Where the LR inputs come from: ``surveillance`` is the one mid-range CCTV model of
#: :mod:`forensic_face.surveillance` (the LFW-XRes benchmark's camera, with its parameters sampled about it);
#: ``family`` is the broad randomised family of :mod:`forensic_face.training.camera_family` (the recognizer's
#: distillation cameras), for networks that must work on cameras we never see.
CAMERA_MODELS = ("surveillance", "family")


def lfw_people(root: Path, list_name: str) -> list[tuple[str, int]]:
    """``(name, image count)`` of an LFW people list such as ``peopleDevTrain.txt``."""
    path = root / list_name
    if not path.is_file():
        raise GalleryError(f"{path} is missing; point FORENSIC_FACE_DATA at the folder holding lfw/")
    out = []
    for line in path.read_text().splitlines()[1:]:
        if line.strip():
            name, count = line.split("\t")
            out.append((name, int(count)))
    return out


def lfw_image_paths(root: Path, list_name: str) -> list[Path]:
    """Every image of the people in ``list_name``, in file order."""
    return [
        root / "images_deepfunneled" / name / f"{name}_{number:04d}.jpg"
        for name, count in lfw_people(root, list_name)
        for number in range(1, count + 1)
    ]


def centre_square(image: np.ndarray, side: int) -> np.ndarray:
    """The ``side`` x ``side`` square about the centre of ``image`` (which must be at least that big)."""
    h, w = image.shape[:2]
    if h < side or w < side:
        raise ConfigError(f"image of {w}x{h} px is smaller than the {side} px crop")
    top, left = (h - side) // 2, (w - side) // 2
    return image[top : top + side, left : left + side]


def load_crops(paths: Sequence[Path], cache_dir: Path | None, side: int = CACHE_PX) -> np.ndarray:
    """uint8 ``(N, side, side, 3)`` centre crops of ``paths``; cached in ``cache_dir`` when given.

    The cache file name hashes the list of paths and the side, so a different selection never reuses it.
    """
    key = hashlib.sha256(("\n".join(str(p) for p in paths) + f"|{side}").encode()).hexdigest()[:16]
    cache_file = cache_dir / f"lfw_crops_{side}px_{len(paths)}_{key}.npy" if cache_dir else None
    if cache_file is not None and cache_file.is_file():
        crops = np.load(cache_file, mmap_mode="r")
        if crops.shape == (len(paths), side, side, 3):
            return crops
        log.warning("ignoring crop cache %s with unexpected shape %s", cache_file, crops.shape)
    if cache_file is not None:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache_file.with_suffix(".partial.npy")
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(len(paths), side, side, 3))
    else:
        out = np.empty((len(paths), side, side, 3), np.uint8)
    log.info("decoding %d LFW crops (%d px)", len(paths), side)
    for i, path in enumerate(paths):
        with Image.open(path) as img:
            out[i] = centre_square(np.asarray(img.convert("RGB")), side)
    if cache_file is not None:
        if isinstance(out, np.memmap):
            out.flush()
        del out
        tmp.replace(cache_file)
        return np.load(cache_file, mmap_mode="r")
    return out


def resize_square(image: np.ndarray, side: int) -> np.ndarray:
    """Area-average when shrinking, bicubic when enlarging."""
    if image.shape[0] == side and image.shape[1] == side:
        return np.ascontiguousarray(image)
    interpolation = cv2.INTER_AREA if side < image.shape[0] else cv2.INTER_CUBIC
    return cv2.resize(np.ascontiguousarray(image), (side, side), interpolation=interpolation)


@dataclass(frozen=True)
class PairRecipe:
    """How one training pair was made, so it can be replayed."""

    index: int
    crop_px: int
    offset_y: int
    offset_x: int
    flip: bool
    camera: SurveillanceParams | CameraParams
    noise_seed: int


def sample_recipe(rng: np.random.Generator, num_images: int, jitter: bool) -> tuple[int, int, int, bool, int]:
    """Image index, crop side, offsets into the cached square and flip for one pair."""
    index = int(rng.integers(num_images))
    if not jitter:
        margin = (CACHE_PX - CROP_PX) // 2
        return index, CROP_PX, margin, margin, False
    crop_px = int(round(CROP_PX * rng.uniform(0.93, 1.07)))
    centre = (CACHE_PX - crop_px) // 2
    shift = min(4, centre)
    off_y = centre + int(rng.integers(-shift, shift + 1))
    off_x = centre + int(rng.integers(-shift, shift + 1))
    return index, crop_px, off_y, off_x, bool(rng.integers(2))


def make_pairs(
    crops: np.ndarray, scale: int, lr_px: int, count: int, rng: np.random.Generator, jitter: bool = True,
    camera_model: str = "surveillance",
) -> tuple[torch.Tensor, torch.Tensor, list[PairRecipe]]:
    """``count`` (LR, HR) pairs: LR ``(count,3,lr_px,lr_px)``, HR ``(count,3,lr_px*scale,lr_px*scale)``.

    Float32 in [0,1]. Each pair gets a random crop, crop jitter, flip and camera setting (of ``camera_model``,
    one of :data:`CAMERA_MODELS`) from ``rng``.
    """
    hr_px = lr_px * scale
    lr_list, hr_list, recipes = [], [], []
    for _ in range(count):
        index, crop_px, off_y, off_x, flip = sample_recipe(rng, crops.shape[0], jitter)
        square = np.asarray(crops[index, off_y : off_y + crop_px, off_x : off_x + crop_px])
        if flip:
            square = square[:, ::-1]
        hr = resize_square(square, hr_px)
        lr, camera, noise_seed = degrade_face(hr, scale, rng, camera_model)
        lr_list.append(lr)
        hr_list.append(hr)
        recipes.append(PairRecipe(index, crop_px, off_y, off_x, flip, camera, noise_seed))
    return _to_tensor(np.stack(lr_list)), _to_tensor(np.stack(hr_list)), recipes


def degrade_face(
    hr: np.ndarray, scale: int, rng: np.random.Generator, camera_model: str = "surveillance"
) -> tuple[np.ndarray, SurveillanceParams | CameraParams, int]:
    """The LR face of a uint8 HR face under a random camera of ``camera_model`` drawn from ``rng``; also
    returns the setting and the noise seed, so the degradation can be replayed."""
    if camera_model not in CAMERA_MODELS:
        raise ConfigError(f"camera model must be one of {', '.join(CAMERA_MODELS)}, got {camera_model!r}")
    if camera_model == "family":
        params = sample_camera(rng)
        noise_seed = int(rng.integers(2**31 - 1))
        lr_px = hr.shape[0] // scale
        return apply_camera(hr, (lr_px, lr_px), params, np.random.default_rng(noise_seed)), params, noise_seed
    camera = sample_surveillance_params(rng)
    noise_seed = int(rng.integers(2**31 - 1))
    return degrade_to_scale(hr, 1.0 / scale, camera, seed=noise_seed), camera, noise_seed


def evaluation_pairs(
    crops: np.ndarray, scale: int, lr_px: int, rng: np.random.Generator, camera_model: str = "surveillance"
) -> tuple[torch.Tensor, torch.Tensor]:
    """One (LR, HR) pair per crop, in order: the centred ``CROP_PX`` square, no jitter, random camera."""
    margin = (crops.shape[1] - CROP_PX) // 2
    hr = np.stack([resize_square(np.asarray(c[margin : margin + CROP_PX, margin : margin + CROP_PX]), lr_px * scale)
                   for c in crops])
    lr = np.stack([degrade_face(h, scale, rng, camera_model)[0] for h in hr])
    return _to_tensor(lr), _to_tensor(hr)


def _to_tensor(images: np.ndarray) -> torch.Tensor:
    """uint8 ``(N,H,W,3)`` -> float32 ``(N,3,H,W)`` in [0,1]."""
    return torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float().div_(255.0)


def synthetic_faces(count: int, side: int = CACHE_PX, seed: int = 0) -> np.ndarray:
    """Smooth random blobs with edges, uint8 ``(count, side, side, 3)``: a stand-in for LFW in unit tests."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:side, 0:side].astype(np.float32) / side
    out = np.empty((count, side, side, 3), np.uint8)
    for i in range(count):
        img = np.zeros((side, side, 3), np.float32)
        for _ in range(6):
            cy, cx, r = rng.uniform(0.2, 0.8), rng.uniform(0.2, 0.8), rng.uniform(0.05, 0.3)
            mask = ((yy - cy) ** 2 + (xx - cx) ** 2) < r * r
            img[mask] = rng.uniform(0, 255, size=3)
        out[i] = np.clip(img, 0, 255).astype(np.uint8)
    return out
