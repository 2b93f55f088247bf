"""Training data for the low-resolution-robust recognizer (``dlib-resnet-lr``), made from LFW peopleDevTrain.

Faces (prepared once, cached):
    every peopleDevTrain image, decoded (250x250), with the MTCNN box and landmarks the engine's portrait
    detector finds on the original (the detection nearest the image centre). The teacher's input is the
    full-resolution chip aligned on those landmarks, plain and mirrored.

Low-resolution samples (:func:`make_lr_batch`), made the way the engine feeds the recognizer:
    1. the face box is jittered as MTCNN's box on a tiny face would be, and the engine's 1.3x square crop is
       cut around it; the crop is ``crop_px`` square at the camera's resolution (``crop_px = round(1.3 W)`` for a
       face ``W`` px wide), so one batch shares one size, as one probe's hypotheses do;
    2. a camera of :mod:`forensic_face.training.camera_family` records it (optics, sampling, exposure, noise,
       colour, grey, JPEG), each sample its own camera;
    3. landmarks are the full-resolution ones mapped into the crop plus a jitter of the size MTCNN's error on
       such crops (measured by :func:`measure_landmark_error`, recorded in the run's config);
    4. the crop is blurred with one of the engine's hypothesis sigmas, magnified by one of the engine's scales
       (with the upsampler the engine would use, or bicubic), and warped onto the recognizer's template.

Every draw comes from a ``numpy.random.Generator``; a batch is a pure function of its generator state.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from forensic_face.engine import (
    DLIB_CHIP_PADDING,
    DLIB_TEMPLATE_UNIT,
    MAX_HYPOTHESIS_PX,
    ConfigError,
    blur_sigmas,
    crop_square,
    gaussian_blur_per_sample,
    warp_to_template,
)
from forensic_face.engine.recognizers import INPUT_SIZE
from forensic_face.engine.upsamplers import Upsampler
from forensic_face.training.camera_family import apply_camera, sample_camera

log = logging.getLogger(__name__)

LFW_IMAGE_PX = 250
#: MTCNN order: left eye, right eye, nose, left mouth corner, right mouth corner. Mirroring swaps the pairs.
MIRROR_ORDER = (1, 0, 2, 4, 3)
#: The engine's crop enlargement (DetectorConfig.crop_enlarge).
CROP_ENLARGE = 1.3
#: Scales the engine magnifies probes by, and its number of blur hypotheses and their largest sigma.
ENGINE_SCALES = (2, 4, 8)
ENGINE_HYPOTHESES = 16
ENGINE_MAX_SIGMA = 1.0


@dataclass(frozen=True)
class FaceSet:
    """Decoded images ``(N,250,250,3)`` uint8 (memory-mapped), boxes ``(N,4)`` and landmarks ``(N,5,2)`` px,
    and each image's identity index ``(N,)``."""

    images: np.ndarray
    boxes: np.ndarray
    landmarks: np.ndarray
    identities: np.ndarray
    names: tuple[str, ...]

    def __len__(self) -> int:
        return int(self.images.shape[0])


@dataclass(frozen=True)
class LandmarkError:
    """MTCNN's error on tiny degraded faces, relative to the face width: landmark std per coordinate, box
    centre std and box size std (all fractions of the face width)."""

    landmark_std: float
    box_centre_std: float
    box_size_std: float
    detected: int
    tried: int


def _key(paths: Sequence[Path]) -> str:
    return hashlib.sha256("\n".join(str(p) for p in paths).encode()).hexdigest()[:16]


def prepare_faces(paths: Sequence[Path], cache_dir: Path, detector: object, batch: int = 64) -> FaceSet:
    """Decode ``paths`` (LFW 250x250 images) and detect their face once; cached in ``cache_dir``.

    ``detector`` is an :class:`forensic_face.engine.detect.MtcnnDetector`. An image where MTCNN finds nothing
    gets the median box and landmarks of the others (counted in the log).
    """
    cache_dir.mkdir(parents=True, exist_ok=True)
    key = _key(paths)
    image_file = cache_dir / f"lfw_images_{len(paths)}_{key}.npy"
    meta_file = cache_dir / f"lfw_faces_{len(paths)}_{key}.npz"
    identities_names = sorted({p.parent.name for p in paths})
    index_of = {n: i for i, n in enumerate(identities_names)}
    identities = np.array([index_of[p.parent.name] for p in paths], np.int64)
    if not image_file.is_file():
        tmp = image_file.with_suffix(".partial.npy")
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(len(paths), LFW_IMAGE_PX,
                                                                               LFW_IMAGE_PX, 3))
        for i, path in enumerate(paths):
            with Image.open(path) as img:
                pixels = np.asarray(img.convert("RGB"))
            if pixels.shape != (LFW_IMAGE_PX, LFW_IMAGE_PX, 3):
                raise ConfigError(f"{path}: expected a {LFW_IMAGE_PX}x{LFW_IMAGE_PX} LFW image, got {pixels.shape}")
            out[i] = pixels
        out.flush()
        del out
        tmp.replace(image_file)
    images = np.load(image_file, mmap_mode="r")
    if not meta_file.is_file():
        boxes = np.full((len(paths), 4), np.nan, np.float32)
        landmarks = np.full((len(paths), 5, 2), np.nan, np.float32)
        centre = np.array([LFW_IMAGE_PX / 2, LFW_IMAGE_PX / 2], np.float32)
        for start in range(0, len(paths), batch):
            found = detector.detect([np.asarray(images[i]) for i in range(start, min(len(paths), start + batch))],  # type: ignore[attr-defined]
                                    min_face_px=40)
            for offset, faces in enumerate(found):
                if not faces:
                    continue
                face = min(faces, key=lambda f: float(np.linalg.norm((f.box[:2] + f.box[2:]) / 2 - centre)))
                boxes[start + offset] = face.box
                landmarks[start + offset] = face.landmarks
            log.info("detected faces in %d/%d training images", min(len(paths), start + batch), len(paths))
        missing = np.isnan(boxes[:, 0])
        if missing.all():
            raise ConfigError("MTCNN found no face in any training image")
        boxes[missing] = np.nanmedian(boxes, axis=0)
        landmarks[missing] = np.nanmedian(landmarks, axis=0)
        log.info("no face found in %d training images: median box used", int(missing.sum()))
        np.savez(meta_file, boxes=boxes, landmarks=landmarks)
    meta = np.load(meta_file)
    return FaceSet(images=images, boxes=meta["boxes"], landmarks=meta["landmarks"], identities=identities,
                   names=tuple(f"{p.parent.name}/{p.stem}" for p in paths))


def mirror(image: np.ndarray, box: np.ndarray, landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Horizontally mirrored image, box and landmarks (pixel centres at integers; left/right points swapped)."""
    width = image.shape[1]
    flipped = np.ascontiguousarray(image[:, ::-1])
    box = np.array([width - 1 - box[2], box[1], width - 1 - box[0], box[3]], np.float32)
    lms = landmarks[list(MIRROR_ORDER)].copy()
    lms[:, 0] = width - 1 - lms[:, 0]
    return flipped, box, lms


def to_tensor(images: np.ndarray) -> torch.Tensor:
    """uint8 ``(N,H,W,3)`` -> float32 ``(N,3,H,W)`` in [0,1]."""
    return torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float().div_(255.0)


def align_chips(images: torch.Tensor, landmarks: torch.Tensor) -> torch.Tensor:
    """The dlib recognizer's 150 px chips, exactly as its ``prepare`` makes them."""
    return warp_to_template(images, landmarks, DLIB_TEMPLATE_UNIT, INPUT_SIZE, DLIB_CHIP_PADDING).clamp_(0.0, 1.0)


def full_resolution_chips(faces: FaceSet, indices: Sequence[int], mirrored: Sequence[bool]) -> torch.Tensor:
    """Teacher input: full-resolution chips ``(n,3,150,150)`` of ``faces[indices]`` (mirrored where asked)."""
    images, lms = [], []
    for i, flip in zip(indices, mirrored):
        image, box, landmarks = np.asarray(faces.images[i]), faces.boxes[i], faces.landmarks[i]
        if flip:
            image, box, landmarks = mirror(image, box, landmarks)
        images.append(image)
        lms.append(landmarks)
    return align_chips(to_tensor(np.stack(images)), torch.from_numpy(np.stack(lms)).float())


def lr_crop(image: np.ndarray, box: np.ndarray, landmarks: np.ndarray, crop_px: int, rng: np.random.Generator,
            error: LandmarkError) -> tuple[np.ndarray, np.ndarray]:
    """One camera-recorded ``crop_px`` square crop (uint8) and its landmarks in crop pixels."""
    width = float(max(box[2] - box[0], box[3] - box[1]))
    centre_shift = rng.normal(0.0, error.box_centre_std, size=2) * width
    size = max(0.5, 1.0 + float(rng.normal(0.0, error.box_size_std)))
    half = (box[2:] - box[:2]) * size / 2.0
    centre = (box[:2] + box[2:]) / 2.0 + centre_shift
    jittered = np.concatenate([centre - half, centre + half]).astype(np.float32)
    square = crop_square(image, jittered, CROP_ENLARGE)
    lr = apply_camera(square.pixels, (crop_px, crop_px), sample_camera(rng), rng)
    factor = crop_px / square.side
    lms = (landmarks - square.origin) * factor
    face_px = width * size * factor
    lms = lms + rng.normal(0.0, error.landmark_std * face_px, size=lms.shape)
    return lr, lms.astype(np.float32)


@dataclass(frozen=True)
class LrBatch:
    """Student inputs ``(B,3,150,150)``, the teacher-template rows they must match, and how they were made."""

    chips: torch.Tensor
    indices: np.ndarray
    mirrored: np.ndarray
    face_px: int
    scale: int
    upsampler: str


def make_lr_chips(faces: FaceSet, indices: np.ndarray, mirrored: np.ndarray, face_px: int, scale: int,
                  upsampler: Upsampler | None, sigmas: torch.Tensor, rng: np.random.Generator,
                  error: LandmarkError) -> torch.Tensor:
    """Low-resolution chips ``(n,3,150,150)`` of ``faces[indices]`` for a face ``face_px`` wide, blurred with
    ``sigmas`` ``(n,)`` and magnified ``scale`` times by ``upsampler`` (``scale`` 1: not magnified)."""
    crop_px = max(4, int(round(CROP_ENLARGE * face_px)))
    crops, lms = [], []
    for i, flip in zip(indices, mirrored):
        image, box, landmarks = np.asarray(faces.images[i]), faces.boxes[i], faces.landmarks[i]
        if flip:
            image, box, landmarks = mirror(image, box, landmarks)
        crop, crop_lms = lr_crop(image, box, landmarks, crop_px, rng, error)
        crops.append(crop)
        lms.append(crop_lms)
    batch = to_tensor(np.stack(crops))
    with torch.no_grad():
        batch = gaussian_blur_per_sample(batch, sigmas)
        if scale > 1:
            if upsampler is None:
                raise ConfigError(f"scale {scale} needs an upsampler")
            batch = upsampler.upsample(batch, scale)
        landmarks_t = torch.from_numpy(np.stack(lms)).float() * (batch.shape[-1] / crop_px)
        return align_chips(batch, landmarks_t)


def engine_scales(face_px: int) -> list[int]:
    """The scales the engine magnifies a probe with a face ``face_px`` wide by (its 320 px cap)."""
    crop_px = max(4, int(round(CROP_ENLARGE * face_px)))
    return [s for s in ENGINE_SCALES if crop_px * s <= MAX_HYPOTHESIS_PX] or [1]


def make_lr_batch(faces: FaceSet, rows: np.ndarray, rng: np.random.Generator, error: LandmarkError,
                  upsamplers: dict[str, Upsampler], face_px_range: tuple[int, int] = (12, 48),
                  num_samples: int = 32) -> LrBatch:
    """One random batch of low-resolution chips of ``faces[rows[k]]`` (``rows``: the training images).

    The face width is log-uniform in ``face_px_range``; the scale is one the engine would use for that crop
    (or 1, no magnification, now and then); the upsampler is drawn from ``upsamplers`` (name -> upsampler); each
    sample gets one of the engine's blur-hypothesis sigmas.
    """
    lo, hi = face_px_range
    face_px = int(round(math.exp(rng.uniform(math.log(lo), math.log(hi)))))
    scale = 1 if rng.random() < 0.1 else int(rng.choice(engine_scales(face_px)))
    names = sorted(upsamplers)
    upsampler_name = names[int(rng.integers(len(names)))]
    indices = rows[rng.integers(len(rows), size=num_samples)]
    mirrored = rng.random(num_samples) < 0.5
    sigmas = blur_sigmas(ENGINE_HYPOTHESES, ENGINE_MAX_SIGMA)[torch.from_numpy(
        rng.integers(ENGINE_HYPOTHESES, size=num_samples))]
    chips = make_lr_chips(faces, indices, mirrored, face_px, scale, upsamplers[upsampler_name], sigmas, rng, error)
    return LrBatch(chips=chips, indices=indices, mirrored=mirrored, face_px=face_px, scale=scale,
                   upsampler=upsampler_name if scale > 1 else "none")


def measure_landmark_error(faces: FaceSet, rows: np.ndarray, detector: object, rng: np.random.Generator,
                           face_px: int = 24, count: int = 192) -> LandmarkError:
    """How far MTCNN's box and landmarks on camera-degraded whole images (face ``face_px`` wide) fall from the
    full-resolution ones scaled down, as fractions of the face width. Sets the jitter of :func:`lr_crop`."""
    picks = rows[rng.choice(len(rows), size=min(count, len(rows)), replace=False)]
    lm_err, centre_err, size_err = [], [], []
    detected = 0
    images, truths = [], []
    for i in picks:
        box, lms = faces.boxes[i], faces.landmarks[i]
        width = float(max(box[2] - box[0], box[3] - box[1]))
        factor = face_px / width
        side = max(8, int(round(LFW_IMAGE_PX * factor)))
        degraded = apply_camera(np.asarray(faces.images[i]), (side, side), sample_camera(rng), rng)
        scale = side / LFW_IMAGE_PX
        images.append(degraded)
        truths.append((box * scale, lms * scale, width * scale))
    found = detector.detect(images)  # type: ignore[attr-defined]
    for faces_found, (box, lms, width) in zip(found, truths):
        if not faces_found:
            continue
        centre = (box[:2] + box[2:]) / 2
        face = min(faces_found, key=lambda f: float(np.linalg.norm((f.box[:2] + f.box[2:]) / 2 - centre)))
        if np.linalg.norm((face.box[:2] + face.box[2:]) / 2 - centre) > width:
            continue  # another face or a false alarm, not a localisation error
        detected += 1
        lm_err.append(((face.landmarks - lms) / width).ravel())
        centre_err.append((((face.box[:2] + face.box[2:]) / 2 - centre) / width))
        size_err.append(float(max(face.box[2] - face.box[0], face.box[3] - face.box[1])) / width - 1.0)
    if detected < 8:
        raise ConfigError(f"MTCNN found only {detected} of {len(picks)} degraded faces; cannot measure its error")
    return LandmarkError(
        landmark_std=float(np.std(np.concatenate(lm_err))),
        box_centre_std=float(np.std(np.concatenate(centre_err))),
        box_size_std=float(np.std(size_err)),
        detected=detected,
        tried=len(picks),
    )


def landmark_error_to_json(error: LandmarkError) -> str:
    return json.dumps(error.__dict__, sort_keys=True)
