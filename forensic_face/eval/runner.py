"""Run the engine over LFW-XRes: enroll the gallery once, search every probe, score the ranking.

Only the public engine API is used (``Engine.detect``, ``Engine.enroll``, ``Engine.search``,
``Engine.provenance``), so the benchmark measures exactly what an investigator gets.

Caches (all under ``<cache>/eval``; everything can be deleted and recomputed):

* ``known_faces.json``: MTCNN boxes on the ORIGINAL images (sets each probe's degradation factor);
* ``probes/<setting>/``: the degraded probe PNGs;
* ``detections/<setting>.json``: the engine's detections on each probe (they depend only on the detector);
* ``searches/<config>-<gallery>.jsonl``: each probe's scores against every gallery identity, keyed by
  (probe SHA-256, engine-config digest, gallery digest), appended as probes finish, so an interrupted or
  repeated variant only searches the probes it has not done. The engine itself caches gallery hypothesis
  templates on disk.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from forensic_face.engine import (
    SCORE_SCALE,
    EngineConfig,
    FaceDetection,
    Gallery,
    NoFaceDetected,
    Progress,
    cache_key,
    load_image,
    sha256_of,
)
from forensic_face.eval.cmc import (
    cmc_curve,
    mated_ranks,
    plot_cmc,
    rank_k,
    split_scores,
)
from forensic_face.eval.protocol import (
    PROTOCOL_NAME,
    KnownFace,
    KnownFaceCache,
    ProbeRecord,
    ProbeSpec,
    XResSplit,
    lfw_xres_split,
    materialize_probes,
    probe_folder_name,
)
from forensic_face.paths import atomic_write

if TYPE_CHECKING:
    from forensic_face.engine import Engine

log = logging.getLogger(__name__)


#: A detection is the protocol's face when its centre lies within this fraction of the known face's width
#: of the known face's centre (LFW images often show other people too).
MATCH_CENTRE_FRACTION = 0.5

#: The format of the probe detection cache (``<cache>/detections/<detector digest>-v<N>.json``). 2: faces as
#: ``FaceDetection.to_json`` writes them, exact; 1 (no suffix) rounded them to 0.01 px, so its files are left
#: unread rather than mixed with exact faces.
DETECTIONS_CACHE_VERSION = 2


@dataclass(frozen=True)
class EvalSettings:
    """Protocol-side settings of a run (the engine side is an :class:`EngineConfig`)."""

    lfw_root: Path
    cache_dir: Path
    width_px: int = 24
    subset: int | None = None
    seed: int = 0
    camera: str = "fixed"
    face_width_source: str = "mtcnn"
    fallback_known_face: bool = False
    #: Error decomposition: search every probe at its known face position with the full-resolution landmarks
    #: scaled down (no detection, no landmark error) instead of the detector's face.
    oracle_landmarks: bool = False

    @property
    def spec(self) -> ProbeSpec:
        return ProbeSpec(width_px=self.width_px, seed=self.seed, camera=self.camera,  # type: ignore[arg-type]
                         face_width_source=self.face_width_source)  # type: ignore[arg-type]

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["lfw_root"] = str(self.lfw_root)
        data["cache_dir"] = str(self.cache_dir)
        return data


@dataclass
class PreparedProtocol:
    """The split, the probe PNGs, the gallery folder and the enrolled gallery, shared by all variants."""

    settings: EvalSettings
    split: XResSplit
    probes: list[ProbeRecord]
    gallery_dir: Path
    gallery: Gallery
    detector_digest: str
    enroll_s: float
    #: Per probe image name: the engine's detections on the probe (best first).
    detections: dict[str, tuple[FaceDetection, ...]] = field(default_factory=dict)
    num_known_nominal: int = 0

    @property
    def identities(self) -> list[str]:
        return list(self.gallery.identities)

    def gallery_digest(self) -> str:
        rows = sorted(f"{e.identity}\t{e.sha256}" for e in self.gallery.entries)
        return hashlib.sha256("\n".join(rows).encode()).hexdigest()


@dataclass
class RunResult:
    """One variant's outcome over the whole protocol."""

    label: str
    config: EngineConfig
    settings: EvalSettings
    identities: list[str]
    probe_names: list[str]
    mated: np.ndarray  # (P,) gallery column of the truth, -1 = not searchable
    scores: np.ndarray  # (P, G) float32, NaN rows for probes not searched
    probe_face_width_px: np.ndarray  # (P,) width of the face that was searched (NaN when none)
    status: list[str]  # per probe: detected | detected-other | fallback | oracle-landmarks | no-face | not-enrolled
    timing: dict[str, float]
    provenance: dict[str, Any]
    counts: dict[str, int] = field(default_factory=dict)
    #: (P,) how many scales each probe's search used (0 = not searched): a crop too large for a magnification
    #: drops it (engine.search.effective_scales), and calibration keeps only probes searched at every scale.
    probe_num_scales: np.ndarray | None = None

    @property
    def ranks(self) -> np.ndarray:
        filled = np.where(np.isnan(self.scores), -np.inf, self.scores)
        return mated_ranks(filled, self.mated)

    @property
    def curve(self) -> np.ndarray:
        return cmc_curve(self.ranks, max(1, len(self.identities)))

    def rates(self) -> dict[str, float]:
        curve = self.curve
        return {f"rank{k}": rank_k(curve, k) for k in (1, 5, 10)}

    def summary(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "protocol": PROTOCOL_NAME,
            "settings": self.settings.to_json(),
            "config": self.config.to_dict(),
            "config_digest": self.config.digest(),
            "num_probes": len(self.probe_names),
            "num_gallery": len(self.identities),
            **self.rates(),
            "counts": self.counts,
            "timing": self.timing,
            "cmc": [round(float(v), 6) for v in self.curve],
            "provenance": self.provenance,
        }


def detector_digest(config: EngineConfig) -> str:
    return hashlib.sha256(json.dumps(asdict(config.detector), sort_keys=True).encode()).hexdigest()


def _faces_to_arrays(faces: tuple[FaceDetection, ...]) -> tuple[np.ndarray, np.ndarray]:
    if not faces:
        return np.zeros((0, 4)), np.zeros((0, 5, 2))
    return np.stack([f.box for f in faces]), np.stack([f.landmarks for f in faces])


def build_gallery_folder(split: XResSplit, folder: Path) -> Path:
    """A folder of symlinks ``<identity>/<image>.jpg`` to the gallery originals (no image is copied)."""
    for image in split.gallery:
        target = folder / image.identity / image.path.name
        if target.is_symlink() and Path(os.readlink(target)) == image.path.resolve():
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.is_symlink() or target.exists():
            target.unlink()
        target.symlink_to(image.path.resolve())
    return folder


def prepare(engine: Engine, settings: EvalSettings, progress: Progress = None) -> PreparedProtocol:
    """Split, make the probes, detect faces on them (cached) and enroll the gallery once."""
    split = lfw_xres_split(settings.lfw_root, subset=settings.subset)
    root = settings.cache_dir
    det_digest = detector_digest(engine.config)
    spec = settings.spec

    def detect_original(path: Path) -> tuple[np.ndarray, np.ndarray]:
        # The originals are portraits: detected the way the engine enrolls gallery portraits.
        pixels = load_image(path).pixels
        faces = engine.detector.detect([pixels], min_face_px=engine.config.detector.gallery_min_face_px)[0]
        return _faces_to_arrays(faces)

    known = KnownFaceCache(root / "known_faces.json", det_digest)
    folder = root / "probes" / f"{probe_folder_name(spec)}-det{det_digest[:8]}"
    records = materialize_probes(split, spec, folder, known, detect_original, progress=_tagged(progress, "probes"))
    num_nominal = sum(1 for r in records if r.face.source == "nominal")
    if spec.face_width_source == "mtcnn" and num_nominal:
        log.warning("%d originals had no MTCNN face; their probes use the nominal face box", num_nominal)

    gallery_dir = build_gallery_folder(split, root / "galleries" / split.digest()[:16])
    t0 = time.perf_counter()
    gallery = engine.enroll(gallery_dir, progress=_tagged(progress, "enroll"))
    enroll_s = time.perf_counter() - t0
    if gallery.problems:
        log.warning("%d gallery portraits could not be enrolled: %s", len(gallery.problems),
                    "; ".join(f"{p.image_path.name}: {p.reason}" for p in gallery.problems[:5]))
    prepared = PreparedProtocol(settings, split, records, gallery_dir, gallery, det_digest, enroll_s,
                                num_known_nominal=num_nominal)
    _detect_probes(engine, prepared, progress)
    return prepared


def _tagged(progress: Progress, stage: str) -> Progress:
    if progress is None:
        return None
    return lambda done, total, message: progress(done, total, f"{stage}: {message}")


def _detect_probes(engine: Engine, prepared: PreparedProtocol, progress: Progress) -> None:
    """Run the engine's detector on every probe once (cached on disk by probe SHA-256)."""
    path = (prepared.settings.cache_dir / "detections"
            / f"{prepared.detector_digest[:16]}-v{DETECTIONS_CACHE_VERSION}.json")
    cached: dict[str, list[dict[str, Any]]] = json.loads(path.read_text()) if path.is_file() else {}
    changed = False
    for i, record in enumerate(prepared.probes):
        sha = sha256_of(record.path)
        if sha not in cached:
            detections = engine.detect(load_image(record.path))
            cached[sha] = [f.to_json() for f in detections.faces]
            changed = True
        prepared.detections[record.image.name] = tuple(FaceDetection.from_json(f) for f in cached[sha])
        if progress is not None:
            progress(i + 1, len(prepared.probes), f"detect: {record.image.name}")
    if changed:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(path) as tmp:
            tmp.write_text(json.dumps(cached))


def choose_face(
    faces: tuple[FaceDetection, ...], known: KnownFace
) -> tuple[FaceDetection | None, bool]:
    """The detection of the protocol's face (the investigator's face of interest), and whether it was not the
    detector's best. ``(None, False)`` when no detection lies on the known face."""
    centre = (known.box[:2] + known.box[2:]) / 2.0
    limit = MATCH_CENTRE_FRACTION * known.width_px
    for i, face in enumerate(faces):
        fc = (face.box[:2] + face.box[2:]) / 2.0
        if float(np.hypot(*(fc - centre))) <= limit:
            return face, i > 0
    return None, False


def fallback_face(engine: Engine, pixels: np.ndarray, known: KnownFace) -> FaceDetection:
    """The known face position as a hand-drawn box: landmarks scaled from the original's MTCNN detection, or
    refined inside the box by the engine (as for a box the user draws) when only the nominal box is known."""
    if known.landmarks is not None:
        return FaceDetection(box=known.box.copy(), score=0.0, landmarks=known.landmarks.copy(), manual=True)
    from forensic_face.engine import manual_face

    return manual_face(pixels, known.box, engine.detector)


class _SearchCache:
    """Append-only JSONL of per-probe score rows for one (config, gallery) pair."""

    def __init__(self, path: Path, identities: list[str]) -> None:
        self.path = path
        self.identities = identities
        self.rows: dict[str, dict[str, Any]] = {}
        if path.is_file():
            with open(path, encoding="utf-8") as fh:
                header = fh.readline()
                if header and json.loads(header).get("identities") == identities:
                    for line in fh:
                        try:
                            row = json.loads(line)
                        except json.JSONDecodeError:  # a run killed mid-write leaves a partial last line
                            continue
                        self.rows[row["key"]] = row
                else:
                    path.unlink()
        if not path.is_file():
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(path, "w", encoding="utf-8") as fh:
                fh.write(json.dumps({"identities": identities}) + "\n")

    def add(self, row: dict[str, Any]) -> None:
        self.rows[row["key"]] = row
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(row) + "\n")


def evaluate(
    engine: Engine,
    prepared: PreparedProtocol,
    label: str = "",
    progress: Progress = None,
    cached_only: bool = False,
) -> RunResult:
    """Search every probe of ``prepared`` with ``engine`` and score the rankings.

    ``cached_only``: search nothing; score the probes a stopped run of the same variant already searched (its
    cached rows) and leave the others out of the result, so a run too long for one sitting still reports what it
    measured, over the probes it reached (``counts["not-searched"]`` says how many are missing)."""
    settings = prepared.settings
    identities = prepared.identities
    column = {name: j for j, name in enumerate(identities)}
    config = engine.config
    gallery_digest = prepared.gallery_digest()
    # The config names the models and the budget, the provenance their weights and the budget's paths: a
    # retrained upsampler or recognizer under the same name, or a budget that selects other paths, must not be
    # answered with the previous scores.
    provenance = engine.provenance()
    method_digest = cache_key(**{k: provenance.get(k)
                                 for k in ("recognizer", "upsampler", "detector", "degradation_paths")})
    cache = _SearchCache(
        settings.cache_dir / "searches"
        / f"{config.digest()[:16]}-{method_digest[:12]}-{gallery_digest[:12]}-{SCORE_SCALE}.jsonl",
        identities
    )
    num_p, num_g = len(prepared.probes), len(identities)
    scores = np.full((num_p, num_g), np.nan, dtype=np.float32)
    mated = np.full(num_p, -1, dtype=np.int64)
    widths = np.full(num_p, np.nan, dtype=np.float64)
    num_scales = np.zeros(num_p, dtype=np.int64)
    status: list[str] = []
    search_s, num_searched, num_cached = 0.0, 0, 0
    t_start = time.perf_counter()
    for i, record in enumerate(prepared.probes):
        name = record.image.name
        truth = column.get(record.image.identity, -1)
        face, other = choose_face(prepared.detections.get(name, ()), record.face)
        state = "detected-other" if other else "detected"
        if settings.oracle_landmarks:
            face, state = None, "oracle-landmarks"
        if face is None and state != "oracle-landmarks":
            if settings.fallback_known_face:
                state = "fallback"
            else:
                status.append("no-face")
                _tick(progress, i, num_p, name)
                continue
        if truth < 0:
            status.append("not-enrolled")
            _tick(progress, i, num_p, name)
            continue
        sha = sha256_of(record.path)
        key = f"{sha}:{state}"
        row = cache.rows.get(key)
        if row is None and cached_only:
            status.append("not-searched")
            _tick(progress, i, num_p, name)
            continue
        if row is None:
            probe = load_image(record.path)
            if face is None:
                face = fallback_face(engine, probe.pixels, record.face)
            t0 = time.perf_counter()
            try:
                # Only scores are kept: a row whose probe templates are cached need not magnify the probe again.
                result = engine.search(probe, prepared.gallery, face=face, hypothesis_images=False)
            except NoFaceDetected:
                status.append("no-face")
                _tick(progress, i, num_p, name)
                continue
            search_s += time.perf_counter() - t0
            num_searched += 1
            ranked = dict(result.ranking)
            row = {"key": key, "name": name, "width": face.width_px,
                   "num_scales": len(result.provenance["scales_used"]),
                   "scores": [round(float(ranked.get(g, float("nan"))), 6) for g in identities]}
            cache.add(row)
        else:
            num_cached += 1
        scores[i] = np.asarray(row["scores"], dtype=np.float32)
        widths[i] = float(row["width"])
        num_scales[i] = int(row.get("num_scales", 0))
        mated[i] = truth
        status.append(state)
        _tick(progress, i, num_p, name)
    wall_s = time.perf_counter() - t_start
    counts = {s: status.count(s) for s in ("detected", "detected-other", "fallback", "oracle-landmarks", "no-face",
                                         "not-enrolled", "not-searched")}
    counts["gallery_problems"] = len(prepared.gallery.problems)
    counts["known_face_nominal"] = prepared.num_known_nominal
    counts["searched_now"] = num_searched
    counts["from_cache"] = num_cached
    timing = {
        "enroll_s": round(prepared.enroll_s, 3),
        "search_s": round(search_s, 3),
        "search_s_per_probe": round(search_s / num_searched, 4) if num_searched else float("nan"),
        "wall_s": round(wall_s, 3),
    }
    # Probes a cached-only summary did not reach are not part of its result (neither hits nor misses).
    reached = np.array([s != "not-searched" for s in status], dtype=bool)
    names = [r.image.name for r, kept in zip(prepared.probes, reached) if kept]
    return RunResult(label=label or config.digest()[:12], config=config, settings=settings,
                     identities=identities, probe_names=names, mated=mated[reached], scores=scores[reached],
                     probe_face_width_px=widths[reached], status=[s for s in status if s != "not-searched"],
                     timing=timing, provenance=provenance, counts=counts, probe_num_scales=num_scales[reached])


def _tick(progress: Progress, i: int, total: int, name: str) -> None:
    if progress is not None:
        progress(i + 1, total, f"search: {name}")


def write_run(result: RunResult, out_dir: Path) -> dict[str, Path]:
    """``result.json`` (config, versions, model hashes, timing, CMC), ``cmc.png`` and ``scores.npz``.

    ``scores.npz`` holds, per width band ``w<W>``: ``mated_w<W>`` and ``nonmated_w<W>`` (for
    :func:`forensic_face.calibration.fit_calibration`), plus the full score matrix, the truth column of each
    probe (-1 = not searched), the identities, probe names and the searched face widths.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    band = f"w{result.settings.width_px}"
    filled = np.where(np.isnan(result.scores), -np.inf, result.scores)
    mated_scores, nonmated_scores = split_scores(filled, result.mated)
    paths = {
        "json": out_dir / "result.json",
        "cmc": out_dir / "cmc.png",
        "scores": out_dir / "scores.npz",
    }
    paths["json"].write_text(json.dumps(result.summary(), indent=2, default=str))
    plot_cmc([(result.label, result.curve)], paths["cmc"],
             f"LFW-XRes, {result.settings.width_px} px faces, {len(result.probe_names)} probes")
    np.savez_compressed(
        paths["scores"],
        **{f"mated_{band}": mated_scores.astype(np.float32), f"nonmated_{band}": nonmated_scores.astype(np.float32)},
        scores=result.scores,
        mated_index=result.mated,
        identities=np.asarray(result.identities),
        probe_names=np.asarray(result.probe_names),
        probe_face_width_px=result.probe_face_width_px,
        band_px=np.asarray(result.settings.width_px),
        **({} if result.probe_num_scales is None else {"probe_num_scales": result.probe_num_scales}),
    )
    return paths
