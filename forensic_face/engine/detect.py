"""Face detection with MTCNN (facenet-pytorch's shipped weights) and the paper's 1.3x crop.

Tiny surveillance faces (12-30 px) are below what MTCNN's 12 px P-Net window finds reliably, so small images
are upsampled (bicubic) before detection; boxes and landmarks are mapped back to original pixels.
"""

from __future__ import annotations

import dataclasses
import logging
from collections import defaultdict
from collections.abc import Sequence

import cv2
import numpy as np
import torch

from forensic_face.engine.config import DetectorConfig
from forensic_face.engine.errors import ShapeError
from forensic_face.engine.mtcnn import MtcnnNets, detect_faces_mtcnn
from forensic_face.engine.results import FaceCrop, FaceDetection

log = logging.getLogger(__name__)

#: Mean MTCNN landmark positions inside an MTCNN box, as fractions of box width/height (left eye, right eye,
#: nose, left and right mouth corners). Used when the user draws a box and no landmarks can be refined in it.
MEAN_LANDMARKS_IN_BOX = np.array(
    [[0.315, 0.405], [0.685, 0.405], [0.500, 0.590], [0.345, 0.780], [0.655, 0.780]], dtype=np.float32
)

#: Largest side, in pixels, an image may be upsampled to for detection (caps memory and time).
MAX_DETECTION_SIDE_PX = 4096
#: Images with a longer side than this (CCTV frames, photos) are not upsampled whole: a coarse pass at native
#: resolution proposes faces, and only a tile around each small proposal is upsampled and searched again.
LARGE_IMAGE_SIDE_PX = 1280
#: Face-probability thresholds (P-, R-, O-Net) of the coarse pass: lower than the final ones, so it proposes
#: tiny faces that the upsampled tile then confirms or rejects.
COARSE_THRESHOLDS = (0.5, 0.5, 0.5)
#: A tile is this many times a proposal's width (square, about its centre).
TILE_FACE_WIDTHS = 3.0


def detection_upsample_factor(height: int, width: int, config: DetectorConfig) -> float:
    """How much to enlarge an image before MTCNN so that faces of ``config.min_face_px`` reach
    ``config.upsample_faces_to_px`` (MTCNN is unreliable on faces under ~20 px), within a size cap."""
    factor = min(config.max_upsample, config.upsample_faces_to_px / max(config.min_face_px, 1))
    factor = min(factor, MAX_DETECTION_SIDE_PX / max(height, width))
    return max(factor, 1.0)


class MtcnnDetector:
    """MTCNN cascade with the weights shipped in the facenet-pytorch wheel.

    ``detect`` takes RGB uint8 images of any sizes; images of equal (upsampled) size are run as one batch.
    """

    def __init__(self, device: torch.device | None = None, config: DetectorConfig | None = None) -> None:
        self.device = device or torch.device("cpu")
        self.config = config or DetectorConfig()
        # Our own cascade on facenet-pytorch's shipped (hash-verified) weights: no torchvision needed.
        self.nets = MtcnnNets.load(self.device)
        self.pyramid_factor = 0.709

    def weights_sha256(self) -> str:
        """Digest of the three MTCNN weight files, recorded in every result."""
        return self.nets.combined_sha256()

    def _run_cascade(self, batch: np.ndarray, min_face_size: float, thresholds: Sequence[float] | None = None
                     ) -> tuple[list[np.ndarray], list[np.ndarray]]:
        with torch.inference_mode():
            return detect_faces_mtcnn(batch, min_face_size, thresholds or self.config.thresholds,
                                      self.pyramid_factor, self.nets, self.device)

    def detect(
        self, images: Sequence[np.ndarray], min_face_px: float | None = None
    ) -> list[tuple[FaceDetection, ...]]:
        """Detect every face in each image, best (highest score) first; ``()`` is the explicit no-face result.

        ``min_face_px`` overrides the configured smallest face (in original pixels); portraits use a larger
        value, which skips the upsampling and the fine pyramid levels that tiny faces need.
        """
        config = self.config if min_face_px is None else dataclasses.replace(self.config, min_face_px=int(min_face_px))
        prepared: list[tuple[np.ndarray, float]] = []
        large: list[int] = []
        for index, image in enumerate(images):
            if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
                raise ShapeError(f"image {index}: expected uint8 (H, W, 3) RGB, got {image.dtype} {image.shape}")
            height, width = image.shape[:2]
            factor = detection_upsample_factor(height, width, config)
            if factor > 1.0 and max(height, width) > LARGE_IMAGE_SIDE_PX:
                large.append(index)
                prepared.append((image[:0, :0], 1.0))  # detected below, tile by tile
                continue
            if factor > 1.0:
                size = (max(1, round(width * factor)), max(1, round(height * factor)))
                image = cv2.resize(image, size, interpolation=cv2.INTER_CUBIC)
                factor = size[0] / width
            prepared.append((image, factor))

        groups: dict[tuple[int, int], list[int]] = defaultdict(list)
        for index, (image, _) in enumerate(prepared):
            if index not in large:
                groups[image.shape[:2]].append(index)

        results: list[tuple[FaceDetection, ...]] = [() for _ in images]
        for index in large:
            results[index] = self._detect_large(images[index], config)
        for indices in groups.values():
            factors = [prepared[i][1] for i in indices]
            min_face = max(12.0, config.min_face_px * min(factors))
            batch = np.stack([prepared[i][0] for i in indices])
            boxes, points = self._run_cascade(batch, min_face)
            for slot, index in enumerate(indices):
                results[index] = self._to_detections(boxes[slot], points[slot], prepared[index][1])
        return results

    def _detect_large(self, image: np.ndarray, config: DetectorConfig) -> tuple[FaceDetection, ...]:
        """A large image (a CCTV frame, a photo) without upsampling all of it: a coarse cascade at native
        resolution with lowered thresholds proposes faces; a proposal narrower than
        ``config.upsample_faces_to_px`` is searched again in an upsampled tile about it (``TILE_FACE_WIDTHS``
        wide), with the final thresholds, and kept only where the tile confirms it; wider proposals are kept when
        they passed the final thresholds. Detections are merged by non-maximum suppression."""
        height, width = image.shape[:2]
        boxes, points = self._run_cascade(image[None], max(12.0, config.min_face_px), COARSE_THRESHOLDS)
        final = np.asarray(config.thresholds, np.float32)
        found: list[FaceDetection] = []
        for box, pts in zip(np.asarray(boxes[0], np.float32), np.asarray(points[0], np.float32).reshape(-1, 5, 2)):
            face_px = float(box[2] - box[0])
            if face_px >= config.upsample_faces_to_px:
                if box[4] >= final[2]:
                    found.append(FaceDetection(box=box[:4].copy(), score=float(box[4]), landmarks=pts.copy()))
                continue
            half = 0.5 * TILE_FACE_WIDTHS * max(face_px, float(config.min_face_px))
            cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
            x1, y1 = int(max(0, cx - half)), int(max(0, cy - half))
            x2, y2 = int(min(width, cx + half)), int(min(height, cy + half))
            if x2 - x1 < 8 or y2 - y1 < 8:
                continue
            factor = min(config.max_upsample, config.upsample_faces_to_px / max(face_px, 1.0))
            tile = cv2.resize(np.ascontiguousarray(image[y1:y2, x1:x2]),
                              (round((x2 - x1) * factor), round((y2 - y1) * factor)), interpolation=cv2.INTER_CUBIC)
            scale = tile.shape[1] / (x2 - x1)
            tile_boxes, tile_points = self._run_cascade(tile[None], 12.0)
            candidates = self._to_detections(tile_boxes[0], tile_points[0], scale)
            offset = np.array([x1, y1], np.float32)
            shifted = [(f, f.box + np.tile(offset, 2)) for f in candidates]
            best = max(shifted, key=lambda fb: _iou(fb[1], box[:4]), default=None)
            if best is not None and _iou(best[1], box[:4]) > 0.3:
                found.append(FaceDetection(box=best[1], score=best[0].score, landmarks=best[0].landmarks + offset))
        return _suppress(found)

    @staticmethod
    def _to_detections(boxes: np.ndarray, points: np.ndarray, factor: float) -> tuple[FaceDetection, ...]:
        boxes = np.asarray(boxes, dtype=np.float32)
        if boxes.size == 0:
            return ()
        points = np.asarray(points, dtype=np.float32).reshape(-1, 5, 2)
        order = np.argsort(-boxes[:, 4], kind="stable")
        return tuple(
            FaceDetection(box=boxes[i, :4] / factor, score=float(boxes[i, 4]), landmarks=points[i] / factor)
            for i in order
        )


def largest_face(faces: Sequence[FaceDetection]) -> FaceDetection:
    """The face with the largest box area (gallery portraits: the subject is the largest face)."""
    if not faces:
        raise ValueError("no faces to choose from")
    return max(faces, key=lambda f: float((f.box[2] - f.box[0]) * (f.box[3] - f.box[1])))


def _suppress(faces: Sequence[FaceDetection], iou: float = 0.5) -> tuple[FaceDetection, ...]:
    """Best-first non-maximum suppression of detections from overlapping tiles."""
    kept: list[FaceDetection] = []
    for face in sorted(faces, key=lambda f: -f.score):
        if all(_iou(face.box, k.box) <= iou for k in kept):
            kept.append(face)
    return tuple(kept)


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    x1, y1 = max(a[0], b[0]), max(a[1], b[1])
    x2, y2 = min(a[2], b[2]), min(a[3], b[3])
    inter = max(0.0, x2 - x1) * max(0.0, y2 - y1)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


def manual_face(pixels: np.ndarray, box: Sequence[float], detector: MtcnnDetector | None = None) -> FaceDetection:
    """A face from a box the user drew. Landmarks are refined by MTCNN inside the box when it finds the face
    there (IoU > 0.3), otherwise placed at their mean positions in the box. The user's box is kept as drawn."""
    height, width = pixels.shape[:2]
    x1, y1, x2, y2 = (float(v) for v in box)
    x1, x2 = sorted((x1, x2))
    y1, y2 = sorted((y1, y2))
    if x2 - x1 < 2 or y2 - y1 < 2:
        raise ShapeError(f"the drawn box {list(box)} is too small; draw a box around the whole face")
    if x2 <= 0 or y2 <= 0 or x1 >= width or y1 >= height:
        raise ShapeError(f"the drawn box {list(box)} lies outside the {width}x{height} image")
    user_box = np.array([x1, y1, x2, y2], dtype=np.float32)
    landmarks = MEAN_LANDMARKS_IN_BOX * np.array([x2 - x1, y2 - y1], dtype=np.float32) + user_box[:2]
    score = 0.0
    if detector is not None:
        region = crop_square(pixels, user_box, enlarge=1.8)
        found = detector.detect([region.pixels])[0]
        offset = region.origin
        for face in found:
            candidate_box = face.box + np.array([*offset, *offset], dtype=np.float32)
            if _iou(candidate_box, user_box) > 0.3:
                landmarks = face.landmarks + offset
                score = face.score
                break
    return FaceDetection(box=user_box, score=score, landmarks=landmarks.astype(np.float32), manual=True)


class _Square:
    def __init__(self, pixels: np.ndarray, origin: np.ndarray, side: int) -> None:
        self.pixels = pixels
        self.origin = origin
        self.side = side


def crop_square(pixels: np.ndarray, box: np.ndarray, enlarge: float) -> _Square:
    """Square of side ``enlarge * max(w, h)`` about the box centre; parts outside the image are edge-padded."""
    cx, cy = (box[0] + box[2]) / 2.0, (box[1] + box[3]) / 2.0
    side = max(2, int(round(enlarge * max(box[2] - box[0], box[3] - box[1]))))
    left = int(round(cx - side / 2.0))
    top = int(round(cy - side / 2.0))
    height, width = pixels.shape[:2]
    pad_left, pad_top = max(0, -left), max(0, -top)
    pad_right, pad_bottom = max(0, left + side - width), max(0, top + side - height)
    inner = pixels[max(0, top):min(height, top + side), max(0, left):min(width, left + side)]
    if pad_left or pad_top or pad_right or pad_bottom:
        # Edge replication, not black: a hard black border would be amplified by super-resolution.
        inner = cv2.copyMakeBorder(inner, pad_top, pad_bottom, pad_left, pad_right, cv2.BORDER_REPLICATE)
    return _Square(np.ascontiguousarray(inner), np.array([left, top], dtype=np.float32), side)


def crop_face(pixels: np.ndarray, face: FaceDetection, enlarge: float = 1.3) -> FaceCrop:
    """The paper's crop: the face box enlarged ``enlarge`` times about its centre, square, padded at borders."""
    square = crop_square(pixels, face.box, enlarge)
    landmarks = (face.landmarks - square.origin).astype(np.float32)
    crop_box = np.array([*square.origin, *(square.origin + square.side)], dtype=np.float32)
    return FaceCrop(pixels=square.pixels, landmarks=landmarks, crop_box=crop_box, face=face)
