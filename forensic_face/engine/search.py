"""Meet-in-the-middle search (paper sections 3.2-3.4): probe hypotheses x degraded, resolution-matched
gallery hypotheses, correlation similarity, fusion, ranking.

:class:`Engine` ties the stages together for the CLI, the GUI worker, the case store and the benchmark. It
holds the models; the work itself is done by the stage functions.
"""

from __future__ import annotations

import hashlib
import logging
import platform
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
import torch.nn.functional as F

import forensic_face
from forensic_face.engine import degradations
from forensic_face.engine.batching import map_chunks
from forensic_face.engine.cache import TemplateCache, cache_key
from forensic_face.engine.config import EngineConfig, resolve_device
from forensic_face.engine.detect import MtcnnDetector, crop_face
from forensic_face.engine.errors import Cancelled, ConfigError, NoFaceDetected
from forensic_face.engine.fusion import FusionSpec, fuse_scores
from forensic_face.engine.gallery import enroll_gallery
from forensic_face.engine.probe import probe_hypotheses, probe_hypothesis
from forensic_face.engine.results import (
    Candidate,
    FaceDetection,
    Gallery,
    GalleryEntry,
    GalleryHypothesis,
    ImageDetections,
    ProbeHypothesis,
    SearchResult,
)
from forensic_face.engine.upsamplers import create_upsampler
from forensic_face.imaging import LoadedImage

log = logging.getLogger(__name__)

Progress = Callable[[int, int, str], None] | None
ShouldCancel = Callable[[], bool] | None

#: Gallery crops are brought to this size before degradation, so the pixel parameters of Table 1 (motion
#: window 20, disk radius 5, ...) mean the same thing for every portrait whatever its original resolution.
GALLERY_CANONICAL_PX = 160
#: Label of the undegraded gallery crop, always the first gallery hypothesis.
ORIGINAL_PATH = "original"
#: How fused scores are expressed; part of every provenance record, benchmark cache key and calibration, so
#: scores made under another convention are never mixed with these. "mean": S_add reported as a mean.
SCORE_SCALE = "mean-v1"
#: Largest probe hypothesis side. Magnifying beyond it only adds cost: the recognizer sees at most ~150 px.
#: 320 keeps the paper's 8x for crops up to 40 px (faces up to ~30 px wide).
MAX_HYPOTHESIS_PX = 320
#: How many best degraded gallery variants each candidate carries as images.
NUM_GALLERY_VARIANTS_SHOWN = 4
#: Gallery template stacks kept in memory per engine (a stack is one gallery at one scale and probe size; 496
#: portraits x 67 hypotheses x 128-D is 17 MB), so consecutive searches of similar probes skip the disk cache.
GALLERY_MEMORY_BYTES = 1 << 30


def to_tensor(pixels: np.ndarray, device: torch.device) -> torch.Tensor:
    """uint8 ``(H,W,3)`` -> float ``(1,3,H,W)`` in [0,1] on ``device``."""
    return torch.from_numpy(np.ascontiguousarray(pixels)).to(device).permute(2, 0, 1)[None].float().div_(255.0)


def to_uint8(image: torch.Tensor) -> np.ndarray:
    """float ``(3,H,W)`` in [0,1] -> uint8 ``(H,W,3)``."""
    return (image.detach().clamp(0, 1).mul(255).round().byte().permute(1, 2, 0).cpu().numpy()).copy()


def resize_batch(images: torch.Tensor, size: int) -> torch.Tensor:
    """Square resize with antialiasing when shrinking (area-like), bicubic when enlarging."""
    if images.shape[-1] == size and images.shape[-2] == size:
        return images
    out = F.interpolate(images, size=(size, size), mode="bicubic", align_corners=False,
                        antialias=size < images.shape[-1])
    return out.clamp_(0.0, 1.0)


def probe_size_bin(crop_px: int, bin_px: int) -> int:
    """Probe crop sizes are binned so probes of similar size share gallery templates.

    >>> probe_size_bin(31, 4)
    32
    """
    return max(bin_px, bin_px * round(crop_px / bin_px))


def effective_scales(crop_px: int, scales: Sequence[int]) -> tuple[int, ...]:
    """The configured scales whose hypotheses stay within :data:`MAX_HYPOTHESIS_PX`; a probe too large for
    any of them is not super-resolved at all (scale 1): it already has more pixels than the recognizer uses.

    >>> effective_scales(31, (2, 4, 8)), effective_scales(60, (2, 4, 8)), effective_scales(200, (2, 4, 8))
    ((2, 4, 8), (2, 4), (1,))
    """
    kept = tuple(s for s in scales if crop_px * s <= MAX_HYPOTHESIS_PX)
    return kept or (1,)


def resolution_target(size_bin_px: int, scale: int) -> int:
    """Side to which gallery hypotheses are resized to match a probe hypothesis of ``size_bin_px * scale``.

    Matching removes the detail the probe lacks; a probe hypothesis at least as large as the canonical gallery
    crop lacks none, so the target is capped there. Every such probe then shares one set of gallery templates
    instead of one per size (the recognizer resamples to its own input size either way).

    >>> resolution_target(32, 2), resolution_target(32, 8), resolution_target(48, 4)
    (64, 160, 160)
    """
    return min(size_bin_px * scale, GALLERY_CANONICAL_PX)


def entry_seed(sha256: str, seed: int) -> int:
    """Per-portrait seed for degradation parameters: the image's SHA-256 and the run seed, nothing else."""
    return int.from_bytes(hashlib.sha256(f"{sha256}:{seed}".encode()).digest()[:8], "big") & (2**63 - 1)


@dataclass(frozen=True)
class GalleryCrops:
    """Canonical gallery crops ``(B,3,C,C)`` and their landmarks ``(B,5,2)`` on the device."""

    images: torch.Tensor
    landmarks: torch.Tensor


class Engine:
    """The Meet-in-the-middle engine. Models load lazily on first use."""

    def __init__(self, config: EngineConfig | None = None, cache_dir: Path | None = None) -> None:
        self.config = config or EngineConfig()
        self.device = resolve_device(self.config.device)
        self.fusion = FusionSpec.parse(self.config.fusion)
        self.degradation_paths = [] if self.config.budget == "none" else degradations.select_paths(
            self.config.budget, self.config.seed)
        if cache_dir is None:
            from forensic_face.paths import cache_dir as default_cache_dir

            cache_dir = default_cache_dir() / "templates"
        self.cache = TemplateCache(cache_dir)
        self._detector: MtcnnDetector | None = None
        self._recognizer: Any = None
        self._upsampler: Any = None
        self._settings_digest: str | None = None
        self._key_memo: dict[tuple[Any, ...], str] = {}
        self._stacks: OrderedDict[tuple[str, ...], torch.Tensor] = OrderedDict()

    # -- models -------------------------------------------------------------------------------------------
    @property
    def detector(self) -> MtcnnDetector:
        if self._detector is None:
            self._detector = MtcnnDetector(self.device, self.config.detector)
        return self._detector

    @property
    def recognizer(self) -> Any:
        if self._recognizer is None:
            from forensic_face.engine.recognizers import create_recognizer

            self._recognizer = create_recognizer(
                self.config.recognizer, device=self.device, batch_size=self.config.batch_size,
                model_path=self.config.recognizer_model_path, precision=self.config.precision,
            )
        return self._recognizer

    @property
    def upsampler(self) -> Any:
        if self._upsampler is None:
            self._upsampler = create_upsampler(self.config.upsampler, self.device, self.config.batch_size)
        return self._upsampler

    def provenance(self) -> dict[str, Any]:
        """What a report or a replay needs to know about how results were made."""
        rec = self.recognizer
        ups = self.upsampler
        return {
            "software": {
                "forensic_face": forensic_face.__version__,
                "python": platform.python_version(),
                "torch": torch.__version__,
                "numpy": np.__version__,
                "opencv": cv2.__version__,
                "platform": platform.platform(),
            },
            "device": str(self.device),
            "config": self.config.to_dict(),
            "config_sha256": self.config.digest(),
            "score_scale": SCORE_SCALE,
            "seed": self.config.seed,
            "recognizer": {"name": rec.name, "weights_sha256": rec.weights_sha256},
            "upsampler": {"name": ups.name, "weights_sha256": {str(k): v for k, v in ups.weights_sha256.items()}},
            "detector": {"name": "mtcnn (facenet-pytorch 2.6.0 weights, forensic_face cascade)", "weights_sha256": self.detector.weights_sha256()},
            "degradation_paths": [degradations.path_label(p) for p in self.degradation_paths],
        }

    # -- detection and enrollment ---------------------------------------------------------------------------
    def detect(self, image: LoadedImage) -> ImageDetections:
        faces = self.detector.detect([image.pixels])[0]
        from forensic_face.engine.detect import detection_upsample_factor

        factor = detection_upsample_factor(image.height, image.width, self.config.detector)
        return ImageDetections(source=str(image.path), sha256=image.sha256, width=image.width,
                               height=image.height, faces=faces, upsample_factor=factor)

    def enroll(self, folder: Path, progress: Progress = None, should_cancel: ShouldCancel = None) -> Gallery:
        return enroll_gallery(Path(folder), self.detector, crop_enlarge=self.config.detector.crop_enlarge,
                              min_face_px=self.config.detector.gallery_min_face_px,
                              progress=progress, should_cancel=should_cancel)

    # -- embeddings ---------------------------------------------------------------------------------------
    def embed(self, images: torch.Tensor, landmarks: torch.Tensor) -> torch.Tensor:
        """Align/resize for the recognizer and embed, chunked, shrinking chunks on GPU out-of-memory."""
        rec = self.recognizer
        return map_chunks(lambda imgs, lms: rec.embed(rec.prepare(imgs, lms)), (images, landmarks),
                          self.config.batch_size)

    def gallery_crops(self, entries: Sequence[GalleryEntry]) -> GalleryCrops:
        size = GALLERY_CANONICAL_PX
        images, landmarks = [], []
        for entry in entries:
            pixels = entry.crop.pixels
            factor = size / pixels.shape[0]
            interpolation = cv2.INTER_AREA if factor < 1 else cv2.INTER_CUBIC
            images.append(cv2.resize(pixels, (size, size), interpolation=interpolation))
            landmarks.append(entry.crop.landmarks * factor)
        batch = torch.from_numpy(np.stack(images)).to(self.device).permute(0, 3, 1, 2).float().div_(255.0)
        lms = torch.from_numpy(np.stack(landmarks)).to(self.device).float()
        return GalleryCrops(batch, lms)

    def template_settings_digest(self) -> str:
        """What every cached template depends on besides its image: recognizer, degradations, seed."""
        if self._settings_digest is None:
            rec = self.recognizer
            self._settings_digest = cache_key(
                recognizer=rec.name, recognizer_sha256=rec.weights_sha256, canonical_px=GALLERY_CANONICAL_PX,
                paths=[degradations.path_label(p) for p in self.degradation_paths], seed=self.config.seed,
            )
        return self._settings_digest

    def recognizer_digest(self) -> str:
        """What a probe's templates depend on besides its crop and upsampler: the recognizer and the canonical
        crop. Not the gallery's degradations or seed: changing the budget must not re-run super-resolution."""
        rec = self.recognizer
        return cache_key(recognizer=rec.name, recognizer_sha256=rec.weights_sha256, canonical_px=GALLERY_CANONICAL_PX)

    def gallery_cache_key(self, entry: GalleryEntry, scale: int, target_px: int | None) -> str:
        # Memoised: a search needs one key per portrait and scale, and hashing JSON for 496 x 3 of them per
        # probe would cost more than the fusion itself.
        memo = (entry.sha256, entry.crop.crop_box.tobytes(), entry.crop.landmarks.tobytes(), scale, target_px)
        key = self._key_memo.get(memo)
        if key is None:
            key = cache_key(
                kind="gallery-templates", sha256=entry.sha256, scale=scale, target_px=target_px,
                crop=np.round(entry.crop.crop_box, 1).tolist(), landmarks=np.round(entry.crop.landmarks, 1).tolist(),
                settings=self.template_settings_digest(),
            )
            self._key_memo[memo] = key
        return key

    def probe_cache_key(self, crop_pixels: np.ndarray, crop_landmarks: np.ndarray, scale: int) -> str:
        """Probe hypothesis templates depend on the crop's pixels and landmarks and on how they are magnified."""
        ups = self.upsampler
        cfg = self.config
        return cache_key(
            kind="probe-templates", crop_sha256=hashlib.sha256(np.ascontiguousarray(crop_pixels).tobytes()).hexdigest(),
            shape=list(crop_pixels.shape), landmarks=np.round(crop_landmarks, 3).tolist(), scale=scale,
            hypotheses=cfg.num_blur_hypotheses, max_sigma=cfg.max_blur_sigma, upsampler=ups.name,
            upsampler_sha256=ups.weights_sha256.get(scale, ""), recognizer=self.recognizer_digest(),
        )

    def _remember_stack(self, keys: tuple[str, ...], stack: torch.Tensor) -> None:
        self._stacks[keys] = stack
        self._stacks.move_to_end(keys)
        total = sum(t.numel() * t.element_size() for t in self._stacks.values())
        while len(self._stacks) > 1 and total > GALLERY_MEMORY_BYTES:
            _, dropped = self._stacks.popitem(last=False)
            total -= dropped.numel() * dropped.element_size()

    def _match(self, images: torch.Tensor, landmarks: torch.Tensor, target_px: int | None
               ) -> tuple[torch.Tensor, torch.Tensor]:
        """Resolution matching: bring gallery hypotheses to the probe hypothesis size (landmarks follow)."""
        if target_px is None:
            return images, landmarks
        return resize_batch(images, target_px), landmarks * (target_px / images.shape[-1])

    def gallery_templates(
        self, entries: Sequence[GalleryEntry], scale: int, target_px: int | None,
        progress: Callable[[int], None], should_cancel: ShouldCancel,
    ) -> torch.Tensor:
        """Templates ``(B, 1 + P, D)`` of the undegraded crop and every degradation path, cached per entry on
        disk and, stacked, in memory."""
        keys = tuple(self.gallery_cache_key(e, scale, target_px) for e in entries)
        stack = self._stacks.get(keys)
        if stack is not None:
            self._stacks.move_to_end(keys)
            progress(len(entries))
            return stack
        cached = [self.cache.load(k) for k in keys]
        todo = [i for i, c in enumerate(cached) if c is None]
        chunk = max(1, self.config.batch_size // 4)
        for start in range(0, len(todo), chunk):
            if should_cancel is not None and should_cancel():
                raise Cancelled()
            idx = todo[start:start + chunk]
            crops = self.gallery_crops([entries[i] for i in idx])
            lms_unit = crops.landmarks / GALLERY_CANONICAL_PX
            per_path = [self.embed(*self._match(crops.images, crops.landmarks, target_px))]
            if self.degradation_paths:
                seeds = [entry_seed(entries[i].sha256, self.config.seed) for i in idx]
                for degraded in degradations.iter_degraded(crops.images, self.degradation_paths, seeds,
                                                           should_cancel=should_cancel):
                    images = degraded.images
                    per_path.append((degraded.path, self.embed(
                        *self._match(images, lms_unit * images.shape[-1], target_px))))
                # iter_degraded yields depth-first; restore the configured path order.
                order = {p: k for k, p in enumerate(self.degradation_paths)}
                rest = sorted(per_path[1:], key=lambda item: order[item[0]])
                templates = torch.stack([per_path[0]] + [t for _, t in rest], dim=1)
            else:
                templates = per_path[0][:, None]
            for row, i in enumerate(idx):
                cached[i] = templates[row]
                self.cache.store(keys[i], templates[row])
            progress(len(idx))
        stack = torch.stack([c.to(self.device) for c in cached])  # type: ignore[union-attr]
        self._remember_stack(keys, stack)
        return stack

    def cached_probe_templates(self, key: str) -> torch.Tensor | None:
        """Templates ``(m, D)`` stored under a :meth:`probe_cache_key`, or None."""
        cached = self.cache.load(key)
        if cached is not None and cached.shape[0] == self.config.num_blur_hypotheses:
            return cached.to(self.device)
        return None

    def probe_templates(self, crop_pixels: np.ndarray, crop_landmarks: np.ndarray, scale: int,
                        hypotheses: torch.Tensor, key: str | None = None) -> torch.Tensor:
        """Templates ``(m, D)`` of one scale's probe hypotheses, cached: re-searching a probe (another gallery,
        another fusion or degradation budget) does not embed its hypotheses again. ``key``: an already computed
        :meth:`probe_cache_key` whose cache entry is known to be missing."""
        if key is None:
            key = self.probe_cache_key(crop_pixels, crop_landmarks, scale)
            cached = self.cached_probe_templates(key)
            if cached is not None:
                return cached
        crop_px = crop_pixels.shape[0]
        lms = torch.from_numpy(crop_landmarks).to(self.device).float() * (hypotheses.shape[-1] / crop_px)
        templates = self.embed(hypotheses, lms[None].expand(hypotheses.shape[0], -1, -1))
        self.cache.store(key, templates)
        return templates

    def gallery_hypothesis_image(self, entry: GalleryEntry, path_label: str, target_px: int | None) -> np.ndarray:
        """Re-create one gallery hypothesis (deterministic from the image hash and seed) for display."""
        crops = self.gallery_crops([entry])
        if path_label == ORIGINAL_PATH:
            images = crops.images
        else:
            path = degradations.parse_path_label(path_label)
            seed = entry_seed(entry.sha256, self.config.seed)
            images = degradations.degrade_gallery(crops.images, [path], [seed])[0].images
        images, _ = self._match(images, crops.landmarks, target_px)
        return to_uint8(images[0])

    # -- search -------------------------------------------------------------------------------------------
    def search(
        self,
        probe: LoadedImage,
        gallery: Gallery,
        face: FaceDetection | None = None,
        progress: Progress = None,
        should_cancel: ShouldCancel = None,
        hypothesis_images: bool = True,
    ) -> SearchResult:
        """Rank the gallery for one probe face (the best detected face unless ``face`` is given).

        ``hypothesis_images=False`` (benchmarks) lets a re-search take the probe's templates from the cache
        without magnifying the probe again; ``SearchResult.probe_hypotheses`` then holds only the scales that
        were magnified (each candidate still carries its best hypothesis)."""
        cfg = self.config
        if not gallery.entries:
            raise ConfigError("the gallery has no enrolled portraits")
        if face is None:
            faces = self.detector.detect([probe.pixels])[0]
            if not faces:
                raise NoFaceDetected(str(probe.path), "draw the face box by hand and search again")
            face = faces[0]
        crop = crop_face(probe.pixels, face, cfg.detector.crop_enlarge)
        crop_px = crop.size_px
        size_bin = probe_size_bin(crop_px, cfg.size_bin_px)
        scales = effective_scales(size_bin, cfg.scales)
        if scales != tuple(cfg.scales):
            log.info("probe crop is %d px: scales %s used instead of %s", crop_px, scales, cfg.scales)
        entries = gallery.entries
        num_cols = 1 + len(self.degradation_paths)
        total = len(scales) * (1 + len(entries))
        done = 0

        def step(n: int, message: str) -> None:
            nonlocal done
            done += n
            if progress is not None:
                progress(done, total, message)

        def check_cancel() -> None:
            if should_cancel is not None and should_cancel():
                raise Cancelled()

        crop_t = to_tensor(crop.pixels, self.device)
        with torch.inference_mode():
            probe_templates: dict[int, torch.Tensor] = {}
            missing_keys: dict[int, str] = {}
            if not hypothesis_images:
                # Super-resolution is the costly part of a re-search: skip it for the scales whose templates
                # are cached (the best hypothesis alone is magnified below, for display).
                for scale in scales:
                    key = self.probe_cache_key(crop.pixels, crop.landmarks, scale)
                    cached = self.cached_probe_templates(key)
                    if cached is None:
                        missing_keys[scale] = key
                    else:
                        probe_templates[scale] = cached
            magnify = tuple(s for s in scales if s not in probe_templates)
            sigmas, hyps = probe_hypotheses(crop_t, magnify, self.upsampler,
                                            cfg.num_blur_hypotheses, cfg.max_blur_sigma)
            gallery_templates: dict[int, torch.Tensor] = {}
            targets: dict[int, int | None] = {}
            for scale in scales:
                check_cancel()
                if scale not in probe_templates:
                    probe_templates[scale] = self.probe_templates(crop.pixels, crop.landmarks, scale, hyps[scale],
                                                                  key=missing_keys.get(scale))
                step(1, f"probe hypotheses {scale}x")
                target = resolution_target(size_bin, scale) if cfg.resolution_matching else None
                targets[scale] = target
                gallery_templates[scale] = self.gallery_templates(
                    entries, scale, target, lambda n, s=scale: step(n, f"gallery templates {s}x"), should_cancel)
            check_cancel()
            # S_add as a mean: the ranking is the paper's, and scores stay on the [-1, 1] correlation scale, so
            # probes searched with different numbers of hypotheses or scales stay comparable (and calibratable).
            fused = fuse_scores(probe_templates, gallery_templates, self.fusion, add_as_mean=True)

        labels = (ORIGINAL_PATH,) + tuple(degradations.path_label(p) for p in self.degradation_paths)
        if len(labels) != num_cols:
            raise RuntimeError("gallery hypothesis labels out of step with templates")
        scores = fused.scores.float().cpu().numpy()
        per_scale = fused.per_scale_scores.float().cpu().numpy()
        # An identity may have several portraits: it scores as its best one.
        best_entry: dict[str, int] = {}
        for i, entry in enumerate(entries):
            if entry.identity not in best_entry or scores[i] > scores[best_entry[entry.identity]]:
                best_entry[entry.identity] = i
        ranked = sorted(best_entry.items(), key=lambda kv: (-scores[kv[1]], kv[0]))
        ranking = tuple((identity, float(scores[i])) for identity, i in ranked)

        probe_hyp = {
            s: tuple(ProbeHypothesis(scale=s, sigma=round(float(sig), 4), image=to_uint8(img))
                     for sig, img in zip(sigmas.tolist(), hyps[s]))
            for s in magnify
        }

        def best_hypothesis(scale: int, row: int) -> ProbeHypothesis:
            if scale in probe_hyp:
                return probe_hyp[scale][row]
            with torch.inference_mode():
                image = probe_hypothesis(crop_t, scale, row, self.upsampler, cfg.num_blur_hypotheses,
                                         cfg.max_blur_sigma)[0]
            return ProbeHypothesis(scale=scale, sigma=round(float(sigmas[row]), 4), image=to_uint8(image))
        scale_index = {s: k for k, s in enumerate(scales)}
        candidates = []
        for rank, (identity, i) in enumerate(ranked[: cfg.top_k], start=1):
            entry = entries[i]
            similarity = {s: fused.similarity[s][i].float().cpu().numpy() for s in scales}
            best_scale = int(fused.best_probe_scale[i])
            best_row = int(fused.best_probe_index[i])
            variants = []
            for s in scales:
                row = int(fused.best_probe_per_scale[i, scale_index[s]])
                order = np.argsort(-similarity[s][row], kind="stable")[:NUM_GALLERY_VARIANTS_SHOWN]
                variants.extend((float(similarity[s][row, c]), s, int(c)) for c in order)
            variants.sort(key=lambda v: -v[0])
            shown = tuple(
                GalleryHypothesis(scale=s, path=labels[c], score=score,
                                  image=self.gallery_hypothesis_image(entry, labels[c], targets[s]))
                for score, s, c in variants[:NUM_GALLERY_VARIANTS_SHOWN]
            )
            candidates.append(Candidate(
                rank=rank, identity=identity, image_path=entry.image_path, gallery_sha256=entry.sha256,
                score=float(scores[i]),
                per_scale_scores={s: float(per_scale[i, scale_index[s]]) for s in scales},
                best_probe_hypothesis=best_hypothesis(best_scale, best_row),
                best_gallery_hypotheses=shown,
                similarity=similarity,
                gallery_paths={s: labels for s in scales},
            ))
        provenance = self.provenance()
        provenance.update({"probe_crop_px": crop_px, "probe_size_bin_px": size_bin, "scales_used": list(scales),
                           "gallery_targets_px": {str(s): t for s, t in targets.items()},
                           "cache": {"hits": self.cache.hits, "misses": self.cache.misses}})
        return SearchResult(
            probe_path=probe.path, probe_sha256=probe.sha256, probe_face=face, probe_crop=crop,
            candidates=tuple(candidates), ranking=ranking, probe_hypotheses=probe_hyp, provenance=provenance,
        )
