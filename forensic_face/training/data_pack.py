"""A compact, self-contained copy of ``train-recognizer``'s data for a machine that has no LFW (a borrowed GPU).

The device machine receives the repository and at most 64 MiB with it; LFW's peopleDevTrain JPEGs (about
117 MB) and the teacher's weights (the 22 MB dlib ``.dat`` inside a 126 MB wheel) do not fit beside the
repository's own 28 MB. A pack holds what a distillation run reads instead:

* ``faces.npz``: the region of each 250 px LFW image around its face (a square ``region_enlarge`` times the
  MTCNN box, about 210 px; the dlib chips and almost every jittered lr crop stay inside it, see
  :func:`face_regions`), WebP-encoded, with the boxes, landmarks and identities of
  :func:`recognizer_data.prepare_faces`. Decoded, each region is put back at its place in a 250 px image and
  the rest of that image is the region mirrored at its edges (a background-like surround for the few crops
  that reach past it, where black would be an edge no camera frame has), so boxes and landmarks are unchanged;
* ``teacher.pt``: the teacher's templates of every training image (plain and mirrored) and its templates of
  the validation chips, computed from the *decoded* pack, so a run from the pack sees exactly the faces its
  targets were made from, and the same run on this machine and on the GPU agree;
* ``pack.json``: the settings it was made for (seed, held-out people, images), the MTCNN landmark error
  measured on the training faces, and the SHA-256 of both files, checked when the pack is loaded.

``forensic-face pack-recognizer-data --out runs/recognizer-pack`` (:func:`train_recognizer.write_data_pack`, which
has the teacher), then ``train-recognizer --data-pack runs/recognizer-pack``
(``benchmarks/gpu_train_recognizer.sh`` carries it to the GPU). This module is the format alone.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from forensic_face.engine import ConfigError, sha256_of
from forensic_face.training import recognizer_data as rd
from forensic_face.paths import atomic_write

log = logging.getLogger(__name__)

PACK_VERSION = 1
FACES_NAME = "faces.npz"
TEACHER_NAME = "teacher.pt"
META_NAME = "pack.json"
#: Settings a pack's teacher outputs depend on; a run must ask for the same.
PACK_SETTINGS = ("seed", "val_people", "max_images")
#: WebP quality of the face regions: the largest that keeps repository + pack under the device's 64 MiB.
DEFAULT_WEBP_QUALITY = 55
#: Side of the kept square about each face, in face-box widths (see :func:`face_regions`).
DEFAULT_REGION_ENLARGE = 1.7


@dataclass(frozen=True)
class DataPack:
    """A loaded pack: the faces, the teacher's templates ``(N,2,D)``, its validation templates, the error."""

    faces: rd.FaceSet
    targets: torch.Tensor
    teacher_val: dict[str, torch.Tensor]
    landmark_error: rd.LandmarkError
    meta: dict[str, Any]


def pack_settings(config: object) -> dict[str, Any]:
    """A run config's values of :data:`PACK_SETTINGS`."""
    return {name: getattr(config, name) for name in PACK_SETTINGS}


def face_regions(boxes: np.ndarray, image_px: int, region_enlarge: float) -> np.ndarray:
    """Integer squares ``(N,4)`` x0, y0, x1, y1 about each box centre, ``region_enlarge`` times its larger side,
    clipped to the image. 1.7 holds the engine's 1.3x crop with one standard deviation of the training jitter
    of box size and centre (MTCNN on 24 px faces: 7-9 % of the face width each) and the dlib chip."""
    width = np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])
    centre = (boxes[:, :2] + boxes[:, 2:]) / 2.0
    half = (region_enlarge * width / 2.0)[:, None]
    low = np.clip(np.floor(centre - half), 0, image_px).astype(np.int32)
    high = np.clip(np.ceil(centre + half), 0, image_px).astype(np.int32)
    return np.concatenate([low, high], axis=1)


def encode_regions(images: np.ndarray, regions: np.ndarray, quality: int) -> tuple[np.ndarray, np.ndarray]:
    """WebP bytes of each RGB region, concatenated ``(total,)`` uint8, and their offsets ``(N+1,)``."""
    blobs: list[np.ndarray] = []
    for i, (x0, y0, x1, y1) in enumerate(regions):
        bgr = np.ascontiguousarray(np.asarray(images[i])[y0:y1, x0:x1, ::-1])
        ok, buf = cv2.imencode(".webp", bgr, [cv2.IMWRITE_WEBP_QUALITY, int(quality)])
        if not ok:
            raise ConfigError(f"OpenCV could not WebP-encode training image {i}: this OpenCV build lacks WebP")
        blobs.append(buf.reshape(-1))
    offsets = np.zeros(len(blobs) + 1, np.int64)
    offsets[1:] = np.cumsum([len(b) for b in blobs])
    return (np.concatenate(blobs) if blobs else np.zeros(0, np.uint8)), offsets


def decode_regions(blob: np.ndarray, offsets: np.ndarray, regions: np.ndarray, image_px: int) -> np.ndarray:
    """``(N,image_px,image_px,3)`` uint8: each decoded region at its place, mirrored at its edges around it."""
    images = np.empty((len(regions), image_px, image_px, 3), np.uint8)
    for i, (x0, y0, x1, y1) in enumerate(regions):
        bgr = cv2.imdecode(blob[offsets[i]:offsets[i + 1]], cv2.IMREAD_COLOR)
        if bgr is None or bgr.shape[:2] != (y1 - y0, x1 - x0):
            raise ConfigError(f"data pack image {i} does not decode to its {x1 - x0}x{y1 - y0} region: "
                              "the pack is damaged; make it again with `forensic-face pack-recognizer-data`")
        images[i] = cv2.copyMakeBorder(bgr, int(y0), int(image_px - y1), int(x0), int(image_px - x1),
                                       cv2.BORDER_REFLECT_101)[:, :, ::-1]
    return images


def read_faces(path: Path) -> rd.FaceSet:
    """The faces of a pack's ``faces.npz``, decoded (what a run from the pack sees)."""
    with np.load(path, allow_pickle=False) as data:
        images = decode_regions(data["blob"], data["offsets"], data["regions"], int(data["image_px"]))
        return rd.FaceSet(images=images, boxes=data["boxes"], landmarks=data["landmarks"],
                          identities=data["identities"], names=tuple(str(n) for n in data["names"]))


def write_faces(out_dir: Path, source: rd.FaceSet, quality: int, region_enlarge: float) -> Path:
    """Write ``faces.npz``: each face region of ``source`` WebP-encoded, with boxes, landmarks and identities."""
    if not 1 <= quality <= 100 or region_enlarge < 1.3:
        raise ConfigError(f"quality must be 1-100 and region_enlarge >= 1.3, got {quality} and {region_enlarge}")
    out_dir.mkdir(parents=True, exist_ok=True)
    image_px = int(source.images.shape[1])
    regions = face_regions(source.boxes, image_px, region_enlarge)
    blob, offsets = encode_regions(source.images, regions, quality)
    path = out_dir / FACES_NAME
    with atomic_write(path) as tmp:
        np.savez(tmp, blob=blob, offsets=offsets, regions=regions, image_px=np.int64(image_px), boxes=source.boxes,
                 landmarks=source.landmarks, identities=source.identities, names=np.array(source.names))
    log.info("wrote %s (%.1f MiB, %d images)", path, path.stat().st_size / 2**20, len(regions))
    return path


def finish_pack(out_dir: Path, targets: torch.Tensor, teacher_val: dict[str, torch.Tensor],
                landmark_error: rd.LandmarkError, settings: dict[str, Any], **details: Any) -> dict[str, Any]:
    """Write ``teacher.pt`` and ``pack.json`` beside ``faces.npz`` (``settings``: the values of
    :data:`PACK_SETTINGS` the pack was made for; ``details``: more facts for ``pack.json``); return the latter."""
    teacher_path = out_dir / TEACHER_NAME
    # float16 halves the pack's largest part after the images; the teacher's unit templates lose nothing
    # a cosine loss can see (relative error about 5e-4).
    torch.save({"targets": targets.half(), "val": {k: v.half() for k, v in teacher_val.items()}}, teacher_path)
    meta = {
        "version": PACK_VERSION,
        "made": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        **details,
        **{name: settings[name] for name in PACK_SETTINGS},
        "landmark_error": dataclasses.asdict(landmark_error),
        "sha256": {FACES_NAME: sha256_of(out_dir / FACES_NAME), TEACHER_NAME: sha256_of(teacher_path)},
    }
    (out_dir / META_NAME).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    return meta


def load_data_pack(pack_dir: Path, settings: dict[str, Any] | None = None) -> DataPack:
    """Load and verify a pack; with ``settings`` (the run's values of :data:`PACK_SETTINGS`), check it was made
    for the run's seed and held-out people."""
    meta_path = pack_dir / META_NAME
    if not meta_path.is_file():
        raise ConfigError(f"{pack_dir} is not a data pack (no {META_NAME}); make one with "
                          "`forensic-face pack-recognizer-data --out DIR`")
    meta = json.loads(meta_path.read_text())
    if meta.get("version") != PACK_VERSION:
        raise ConfigError(f"{meta_path}: pack version {meta.get('version')}, this code reads {PACK_VERSION}; "
                          "make the pack again")
    for name, expected in meta["sha256"].items():
        actual = sha256_of(pack_dir / name) if (pack_dir / name).is_file() else "missing"
        if actual != expected:
            raise ConfigError(f"{pack_dir / name}: SHA-256 {actual} does not match {META_NAME} ({expected}): the "
                              "pack is damaged or incomplete; copy it again or make it again")
    if settings is not None:
        differing = {n: (meta[n], settings[n]) for n in PACK_SETTINGS if meta[n] != settings[n]}
        if differing:
            asked = ", ".join(f"{n} {ours} (pack: {theirs})" for n, (theirs, ours) in differing.items())
            raise ConfigError(f"data pack {pack_dir} was made for other settings than this run's: {asked}; its "
                              "teacher outputs depend on them. Make a pack with the run's settings "
                              "(`forensic-face pack-recognizer-data --seed ... --val-people ... --max-images ...`)")
    teacher = torch.load(pack_dir / TEACHER_NAME, map_location="cpu", weights_only=True)
    return DataPack(faces=read_faces(pack_dir / FACES_NAME), targets=teacher["targets"].float(),
                    teacher_val={k: v.float() for k, v in teacher["val"].items()},
                    landmark_error=rd.LandmarkError(**meta["landmark_error"]), meta=meta)
