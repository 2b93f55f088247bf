"""Result dataclasses shared by the engine, the GUI, the case store and the report.

Outside the engine nobody sees tensors: images are ``uint8`` numpy arrays ``(H, W, 3)`` RGB, boxes are
``(4,)`` float ``x1, y1, x2, y2`` in source-image pixels, landmarks ``(5, 2)`` pixels in the order left eye,
right eye, nose, left mouth corner, right mouth corner (MTCNN's order).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np


@dataclass(frozen=True)
class FaceDetection:
    """One face in a source image. ``manual`` is True for a box the user drew."""

    box: np.ndarray
    score: float
    landmarks: np.ndarray
    manual: bool = False

    @property
    def width_px(self) -> float:
        return float(self.box[2] - self.box[0])

    def to_json(self) -> dict[str, Any]:
        """The face's record, exact (cases, their hash chain, eval caches, shortlist indexes keep it; replaying
        a search and re-cropping a face need the very coordinates): :meth:`from_json` reads it back bit for bit."""
        return {"box": [float(v) for v in np.asarray(self.box).reshape(-1)], "score": float(self.score),
                "landmarks": [[float(x), float(y)] for x, y in np.asarray(self.landmarks).reshape(-1, 2)],
                "manual": bool(self.manual)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> FaceDetection:
        """The face of a :meth:`to_json` record, in float32 (the detector's type, so a detected face comes back
        bit for bit). Older records are read too: those rounded to 0.01 px (eval caches and shortlist indexes
        written before the record was exact) and those without ``manual`` (a detected face)."""
        return cls(box=np.asarray(data["box"], dtype=np.float32), score=float(data["score"]),
                   landmarks=np.asarray(data["landmarks"], dtype=np.float32).reshape(-1, 2),
                   manual=bool(data.get("manual", False)))


@dataclass(frozen=True)
class ImageDetections:
    """All faces found in one image, best first. An empty ``faces`` tuple is the explicit "no face" result."""

    source: str
    sha256: str
    width: int
    height: int
    faces: tuple[FaceDetection, ...]
    #: Factor the image was upsampled by before detection (tiny faces); boxes are in original pixels.
    upsample_factor: float = 1.0

    @property
    def found(self) -> bool:
        return len(self.faces) > 0

    def to_json(self) -> dict[str, Any]:
        return {
            "image": self.source,
            "sha256": self.sha256,
            "width": self.width,
            "height": self.height,
            "upsample_factor": self.upsample_factor,
            "faces": [f.to_json() for f in self.faces],
        }


@dataclass(frozen=True)
class FaceCrop:
    """The paper's crop: the face box enlarged about its centre (1.3x), made square, padded at the border."""

    pixels: np.ndarray
    #: Landmarks in crop pixels.
    landmarks: np.ndarray
    #: The crop's square in source pixels (may extend past the border, which is padded).
    crop_box: np.ndarray
    face: FaceDetection

    @property
    def size_px(self) -> int:
        return int(self.pixels.shape[0])


@dataclass(frozen=True)
class GalleryEntry:
    """One enrolled portrait."""

    identity: str
    image_path: Path
    sha256: str
    crop: FaceCrop
    #: Anything the user should know, e.g. "3 faces found; the largest was used".
    note: str = ""


@dataclass(frozen=True)
class GalleryProblem:
    """A gallery image that could not be enrolled, with the reason."""

    image_path: Path
    reason: str


@dataclass(frozen=True)
class Gallery:
    root: Path
    entries: tuple[GalleryEntry, ...]
    problems: tuple[GalleryProblem, ...] = ()

    @property
    def identities(self) -> list[str]:
        return [e.identity for e in self.entries]


@dataclass(frozen=True)
class ProbeHypothesis:
    """One super-resolved probe hypothesis: pre-blur sigma, then magnification by ``scale``."""

    scale: int
    sigma: float
    image: np.ndarray


@dataclass(frozen=True)
class GalleryHypothesis:
    """One degraded, resolution-matched gallery hypothesis; ``path`` names the chain, e.g. "gauss_noise>down>disk_blur".

    ``image`` is None until a view asks for it (:meth:`Engine.with_gallery_images`): a search names its best
    variants but does not re-create their pixels. ``target_px``: the size it was matched to (None: unmatched)."""

    scale: int
    path: str
    score: float
    image: np.ndarray | None = None
    target_px: int | None = None


@dataclass(frozen=True)
class Candidate:
    """A ranked gallery identity. Candidates are investigative leads for human review, not identifications."""

    rank: int
    identity: str
    image_path: Path
    gallery_sha256: str
    score: float
    per_scale_scores: dict[int, float]
    best_probe_hypothesis: ProbeHypothesis
    best_gallery_hypotheses: tuple[GalleryHypothesis, ...]
    #: Per scale: similarity matrix (probe hypotheses x gallery hypotheses) for heatmaps.
    similarity: dict[int, np.ndarray] = field(default_factory=dict)
    #: Per scale: label of each gallery hypothesis (column of ``similarity``).
    gallery_paths: dict[int, tuple[str, ...]] = field(default_factory=dict)
    #: A recognizer ensemble's members by name, each with its own fused score (``score`` combines them); empty
    #: for a single network.
    member_scores: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class SearchResult:
    """Everything one probe search produced, with what is needed to replay it."""

    probe_path: Path
    probe_sha256: str
    probe_face: FaceDetection
    probe_crop: FaceCrop
    candidates: tuple[Candidate, ...]
    #: Every gallery identity with its fused score, best first (for CMC curves and calibration).
    ranking: tuple[tuple[str, float], ...]
    #: All probe hypotheses, in the row order of the similarity matrices, per scale.
    probe_hypotheses: dict[int, tuple[ProbeHypothesis, ...]]
    #: config JSON, seed, recognizer/upsampler names and weight hashes, software versions.
    provenance: dict[str, Any]

    def to_json(self, top: int | None = None) -> dict[str, Any]:
        """The CLI's ``--json`` record for this probe."""
        candidates = self.candidates if top is None else self.candidates[:top]
        return {
            "probe": str(self.probe_path),
            "sha256": self.probe_sha256,
            "face": {"box": [round(float(v), 2) for v in self.probe_face.box],
                     "score": round(float(self.probe_face.score), 5),
                     "manual": self.probe_face.manual},
            "error": None,
            "candidates": [
                {"rank": c.rank, "identity": c.identity, "image": str(c.image_path), "score": round(c.score, 6),
                 "per_scale_scores": {str(k): round(v, 6) for k, v in c.per_scale_scores.items()},
                 **({"member_scores": {k: round(v, 6) for k, v in c.member_scores.items()}}
                    if c.member_scores else {})}
                for c in candidates
            ],
        }
