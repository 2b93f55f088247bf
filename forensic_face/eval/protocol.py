"""LFW-XRes: a cross-resolution identification protocol built from LFW's development test people.

The split
    People of ``peopleDevTest.txt`` with at least two images (496 people, 2,493 images). The first image (by
    number) of each person is the gallery portrait, used at full resolution; every other image (1,997) is a
    probe. ``peopleDevTest`` and ``peopleDevTrain`` are disjoint in identity, so nothing the face
    super-resolution network was trained on is ever evaluated.

The probes
    The WHOLE 250x250 image is degraded by the project's surveillance-camera simulation
    (:func:`forensic_face.surveillance.degrade_to_scale`) by the factor that makes the face ``W`` px wide,
    ``W`` in {16, 24, 32} (24 px by default, close to SCFace's d1 distance). "Face width" is the width of the
    MTCNN box found on the original image (the detection nearest the image centre; measured once and cached),
    the same measure the engine reports as :attr:`FaceDetection.width_px`. When MTCNN finds no face in the
    original, the nominal box of :func:`nominal_face` is used instead (counted in the run's report). MTCNN boxes
    on the deep-funneled images are narrower than the 100-115 px quoted for the whole face: the median over
    the 1,997 probe originals is 92.6 px, which is :data:`NOMINAL_FACE_WIDTH_PX`; MTCNN found a face in all.

    Each probe's noise (and, with ``camera="sampled"``, its camera setting) is seeded from
    ``(protocol seed, image name)``, so a probe is byte-identical on every run and machine with the same
    library versions. Probes are written as PNG (lossless, so what is hashed is what is analysed) into a cache
    folder and then loaded through :func:`forensic_face.engine.imaging.load_image`, like any user's still.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from PIL import Image

from forensic_face.engine import ConfigError, GalleryError
from forensic_face.surveillance import (
    DEFAULT_SURVEILLANCE,
    SurveillanceParams,
    degrade_to_scale,
    sample_surveillance_params,
)
from forensic_face.paths import atomic_write

log = logging.getLogger(__name__)

PROTOCOL_NAME = "lfw-xres"
PROBE_WIDTHS_PX: tuple[int, ...] = (16, 24, 32)
DEFAULT_PROBE_WIDTH_PX = 24
#: Median MTCNN box width on LFW deep-funneled originals (all 1,997 LFW-XRes probe originals, measured with the
#: engine's portrait detector: 92.6 px, mean 93.0). Used only where MTCNN finds no face in an original.
NOMINAL_FACE_WIDTH_PX = 92.6
#: Nominal box height / width of an MTCNN face box on LFW (boxes are a little taller than wide).
NOMINAL_FACE_ASPECT = 1.2
LFW_IMAGE_SIZE_PX = 250

CameraMode = Literal["fixed", "sampled", "clean"]
FaceWidthSource = Literal["mtcnn", "nominal"]


@dataclass(frozen=True)
class LfwImage:
    """One LFW image of the protocol."""

    identity: str
    number: int
    path: Path

    @property
    def name(self) -> str:
        """``Name_0002``: the image's stable identifier (seeds its probe)."""
        return f"{self.identity}_{self.number:04d}"


@dataclass(frozen=True)
class XResSplit:
    """Gallery portraits (one per identity, in people-list order) and probes (all other images)."""

    gallery: tuple[LfwImage, ...]
    probes: tuple[LfwImage, ...]
    people_list: str

    @property
    def identities(self) -> tuple[str, ...]:
        return tuple(g.identity for g in self.gallery)

    def digest(self) -> str:
        """SHA-256 over the ordered image names: keys caches of this exact split."""
        names = [g.name for g in self.gallery] + ["|"] + [p.name for p in self.probes]
        return hashlib.sha256("\n".join(names).encode()).hexdigest()


def read_people_list(path: str | Path) -> list[tuple[str, int]]:
    """``(name, image count)`` rows of an LFW ``people*.txt`` file (first line: number of people)."""
    path = Path(path)
    if not path.is_file():
        raise GalleryError(f"{path}: LFW people list not found (set FORENSIC_FACE_DATA to the folder holding lfw/)")
    lines = [line for line in path.read_text().splitlines() if line.strip()]
    rows: list[tuple[str, int]] = []
    for line in lines[1:]:
        name, count = line.split("\t")
        rows.append((name, int(count)))
    return rows


def lfw_xres_split(
    lfw_root: str | Path,
    subset: int | None = None,
    people_list: str = "peopleDevTest.txt",
    min_images: int = 2,
) -> XResSplit:
    """Build the LFW-XRes split from ``lfw_root`` (holding ``images_deepfunneled/`` and the people lists).

    ``subset`` keeps the first N eligible people (in list order) for quick runs.
    """
    root = Path(lfw_root)
    image_root = root / "images_deepfunneled"
    if not image_root.is_dir():
        raise GalleryError(f"{image_root}: LFW deep-funneled images not found")
    if subset is not None and subset < 1:
        raise ConfigError(f"subset must be >= 1, got {subset}")
    people = [(name, count) for name, count in read_people_list(root / people_list) if count >= min_images]
    if subset is not None:
        people = people[:subset]
    gallery: list[LfwImage] = []
    probes: list[LfwImage] = []
    for name, count in people:
        images = [LfwImage(name, n, image_root / name / f"{name}_{n:04d}.jpg") for n in range(1, count + 1)]
        missing = [im.path for im in images if not im.path.is_file()]
        if missing:
            raise GalleryError(f"{missing[0]}: listed in {people_list} but missing ({len(missing)} missing)")
        gallery.append(images[0])
        probes.extend(images[1:])
    return XResSplit(gallery=tuple(gallery), probes=tuple(probes), people_list=people_list)


def probe_seed(protocol_seed: int, image_name: str) -> int:
    """A 63-bit seed from ``(protocol seed, image name)``; independent of run order and subset."""
    digest = hashlib.sha256(f"{PROTOCOL_NAME}:{protocol_seed}:{image_name}".encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1


@dataclass(frozen=True)
class KnownFace:
    """Where the face is in an ORIGINAL image: box ``(4,)`` xyxy and landmarks ``(5,2)`` pixels."""

    box: np.ndarray
    landmarks: np.ndarray | None
    source: str  # "mtcnn" or "nominal"

    @property
    def width_px(self) -> float:
        return float(self.box[2] - self.box[0])

    def to_json(self) -> dict[str, Any]:
        return {
            "box": [float(v) for v in self.box],
            "landmarks": None if self.landmarks is None else [[float(x), float(y)] for x, y in self.landmarks],
            "source": self.source,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> KnownFace:
        landmarks = data.get("landmarks")
        return cls(
            box=np.asarray(data["box"], dtype=np.float64),
            landmarks=None if landmarks is None else np.asarray(landmarks, dtype=np.float64),
            source=str(data["source"]),
        )


def nominal_face(height: int = LFW_IMAGE_SIZE_PX, width: int = LFW_IMAGE_SIZE_PX) -> KnownFace:
    """The nominal face box of a deep-funneled LFW image: centred, :data:`NOMINAL_FACE_WIDTH_PX` wide."""
    half_w = NOMINAL_FACE_WIDTH_PX / 2.0
    half_h = NOMINAL_FACE_WIDTH_PX * NOMINAL_FACE_ASPECT / 2.0
    cx, cy = width / 2.0, height / 2.0
    box = np.array([cx - half_w, cy - half_h, cx + half_w, cy + half_h], dtype=np.float64)
    return KnownFace(box=box, landmarks=None, source="nominal")


def most_central(boxes: np.ndarray, height: int, width: int) -> int:
    """Index of the box ``(N,4)`` whose centre is nearest the image centre (LFW's subject is centred)."""
    centres = (boxes[:, :2] + boxes[:, 2:]) / 2.0
    dist = ((centres - np.array([width / 2.0, height / 2.0])) ** 2).sum(axis=1)
    return int(np.argmin(dist))


#: original image path -> faces as (boxes (N,4), landmarks (N,5,2)) in its pixels; the runner passes the engine's
#: detector.
DetectFn = Callable[[Path], tuple[np.ndarray, np.ndarray]]


class KnownFaceCache:
    """MTCNN boxes on the ORIGINAL images, measured once and kept in a JSON file keyed by image name."""

    def __init__(self, path: Path, detector_digest: str) -> None:
        self.path = path
        self.detector_digest = detector_digest
        self._data: dict[str, Any] = {}
        if path.is_file():
            loaded = json.loads(path.read_text())
            if loaded.get("detector") == detector_digest:
                self._data = dict(loaded.get("faces", {}))
            else:
                log.info("%s was made with another detector setting; re-measuring", path)

    def get(self, image: LfwImage, detect: DetectFn | None) -> KnownFace:
        """The known face of ``image``; MTCNN (via ``detect``) when possible, the nominal box otherwise."""
        entry = self._data.get(image.name)
        if entry is None and detect is not None:
            boxes, landmarks = detect(image.path)
            if len(boxes):
                i = most_central(boxes, LFW_IMAGE_SIZE_PX, LFW_IMAGE_SIZE_PX)
                entry = KnownFace(boxes[i].astype(np.float64), landmarks[i].astype(np.float64), "mtcnn").to_json()
            else:
                entry = {"none": True}
            self._data[image.name] = entry
        if entry is None or entry.get("none"):
            return nominal_face()
        return KnownFace.from_json(entry)

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(self.path) as tmp:
            tmp.write_text(json.dumps({"detector": self.detector_digest, "faces": self._data}, sort_keys=True))


@dataclass(frozen=True)
class ProbeSpec:
    """How probes are made. Part of every cache key and of the run's record."""

    width_px: int = DEFAULT_PROBE_WIDTH_PX
    seed: int = 0
    camera: CameraMode = "fixed"
    face_width_source: FaceWidthSource = "mtcnn"

    def __post_init__(self) -> None:
        if self.width_px < 4:
            raise ConfigError(f"probe face width must be >= 4 px, got {self.width_px}")
        if self.camera not in ("fixed", "sampled", "clean"):
            raise ConfigError(f"camera must be fixed, sampled or clean, got {self.camera!r}")
        if self.face_width_source not in ("mtcnn", "nominal"):
            raise ConfigError(f"face_width_source must be mtcnn or nominal, got {self.face_width_source!r}")

    def digest(self) -> str:
        data = asdict(self) | {"protocol": PROTOCOL_NAME, "camera_params": asdict(DEFAULT_SURVEILLANCE)}
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


#: The oracle camera of the error decomposition: area downsampling only (no blur, noise, colour error or JPEG),
#: so what is lost is the pixel count alone.
CLEAN_CAMERA = SurveillanceParams(optical_blur_sigma=0.0, noise_sigma=0.0, jpeg_quality=None,
                                  colour_gain=(1.0, 1.0, 1.0), downsample="area")


def camera_params(spec: ProbeSpec, image_name: str) -> SurveillanceParams:
    """The camera setting of one probe: the benchmark's fixed setting, one drawn from the probe's seed, or the
    clean oracle camera (:data:`CLEAN_CAMERA`)."""
    if spec.camera == "fixed":
        return DEFAULT_SURVEILLANCE
    if spec.camera == "clean":
        return CLEAN_CAMERA
    rng = np.random.default_rng(probe_seed(spec.seed, image_name + ":camera"))
    return sample_surveillance_params(rng)


@dataclass(frozen=True)
class DegradedProbe:
    """A surveillance-quality probe and where its face is (box/landmarks in probe pixels)."""

    pixels: np.ndarray
    factor: float
    face: KnownFace
    params: SurveillanceParams
    seed: int

    @property
    def face_width_px(self) -> float:
        return self.face.width_px


def degrade_probe(
    pixels: np.ndarray, known: KnownFace, width_px: float, params: SurveillanceParams, seed: int
) -> DegradedProbe:
    """Degrade a whole image so the face of ``known`` is ``width_px`` wide; the face box is scaled with it.

    Args:
        pixels: uint8 ``(H, W, 3)`` RGB original.
        known: the face in the original.
        width_px: the wanted face width in the probe.
        params: the camera setting.
        seed: seeds the sensor noise.
    """
    if known.width_px <= 0:
        raise ConfigError(f"known face width must be positive, got {known.width_px}")
    factor = float(width_px) / known.width_px
    out = degrade_to_scale(pixels, factor, params, seed)
    sy = out.shape[0] / pixels.shape[0]
    sx = out.shape[1] / pixels.shape[1]
    box = known.box * np.array([sx, sy, sx, sy])
    landmarks = None if known.landmarks is None else known.landmarks * np.array([sx, sy])
    return DegradedProbe(out, factor, KnownFace(box, landmarks, known.source), params, seed)


@dataclass(frozen=True)
class ProbeRecord:
    """One probe as written to disk: the PNG, its hash, the true identity and the known face position."""

    image: LfwImage
    path: Path
    face: KnownFace
    factor: float
    seed: int
    params: dict[str, Any]


def materialize_probes(
    split: XResSplit,
    spec: ProbeSpec,
    out_dir: Path,
    known_faces: KnownFaceCache | None,
    detect: DetectFn | None = None,
    progress: Callable[[int, int, str], None] | None = None,
) -> list[ProbeRecord]:
    """Make (or reuse) the PNG probes of ``split`` in ``out_dir``; deterministic for a given ``spec``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    records: list[ProbeRecord] = []
    total = len(split.probes)
    for i, image in enumerate(split.probes):
        if spec.face_width_source == "mtcnn" and known_faces is not None:
            known = known_faces.get(image, detect)
        else:
            known = nominal_face()
        seed = probe_seed(spec.seed, image.name)
        params = camera_params(spec, image.name)
        path = out_dir / f"{image.name}.png"
        if not path.is_file():
            with Image.open(image.path) as im:
                original = np.asarray(im.convert("RGB"))
            probe = degrade_probe(original, known, spec.width_px, params, seed)
            with atomic_write(path) as tmp:
                Image.fromarray(probe.pixels).save(tmp, format="PNG")
            face, factor = probe.face, probe.factor
        else:
            # Same geometry as degrade_probe without redoing the pixels.
            factor = float(spec.width_px) / known.width_px
            with Image.open(path) as im:
                w, h = im.size
            s = np.array([w / LFW_IMAGE_SIZE_PX, h / LFW_IMAGE_SIZE_PX])
            face = KnownFace(known.box * np.tile(s, 2),
                             None if known.landmarks is None else known.landmarks * s, known.source)
        records.append(ProbeRecord(image, path, face, factor, seed, asdict(params)))
        if progress is not None:
            progress(i + 1, total, image.name)
    if known_faces is not None:
        known_faces.save()
    return records


def probe_folder_name(spec: ProbeSpec) -> str:
    """Cache folder of one probe setting, e.g. ``w24-fixed-mtcnn-seed0-<digest>``."""
    return f"w{spec.width_px}-{spec.camera}-{spec.face_width_source}-seed{spec.seed}-{spec.digest()[:12]}"


def split_summary(split: XResSplit) -> dict[str, int]:
    return {"people": len(split.gallery), "images": len(split.gallery) + len(split.probes),
            "gallery": len(split.gallery), "probes": len(split.probes)}


def identities_of(records: Sequence[ProbeRecord]) -> list[str]:
    return [r.image.identity for r in records]
