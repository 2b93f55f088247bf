"""Meet-in-the-middle search (paper sections 3.2-3.4): probe hypotheses x degraded, resolution-matched
gallery hypotheses, correlation similarity, fusion, ranking.

:class:`Engine` ties the stages together for the CLI, the GUI worker, the case store and the benchmark. It
holds the models; the work itself is done by the stage functions.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import platform
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

import forensic_face
from forensic_face.engine import degradations
from forensic_face.engine.batching import map_chunks
from forensic_face.engine.cache import TemplateCache, cache_key
from forensic_face.engine.callbacks import Progress, ShouldCancel, check_cancel
from forensic_face.engine.config import EngineConfig, resolve_device
from forensic_face.engine.detect import (
    MtcnnDetector,
    crop_face,
    detection_upsample_factor,
)
from forensic_face.engine.errors import ConfigError, NoFaceDetected
from forensic_face.engine.fusion import (
    SCORE_SCALE,
    FusedScores,
    FusionSpec,
    fuse_scores,
    template_mean,
)
from forensic_face.engine.gallery import enroll_gallery
from forensic_face.engine.imaging import LoadedImage, to_tensor, to_uint8
from forensic_face.engine.matching import (
    GALLERY_CANONICAL_PX,
    effective_scales,
    match_resolution,
    probe_plan,
    resolution_target,
)
from forensic_face.engine.probe import probe_hypotheses, probe_hypothesis
from forensic_face.engine.ranking import build_candidates, rank_identities
from forensic_face.engine.results import (
    Candidate,
    FaceCrop,
    FaceDetection,
    Gallery,
    GalleryEntry,
    ImageDetections,
    ProbeHypothesis,
    SearchResult,
)
from forensic_face.engine.templates import (
    GalleryCrops,
    TemplateStore,
    canonical_crops,
    entry_seed,
    gallery_hypothesis_templates,
    hypothesis_labels,
    probe_template_key,
    render_gallery_hypotheses,
)
from forensic_face.engine.recognizers.base import Recognizer
from forensic_face.engine.upsamplers import create_upsampler
from forensic_face.engine.upsamplers.base import Upsampler

log = logging.getLogger(__name__)


class Engine:
    """The Meet-in-the-middle engine. Models load lazily on first use."""

    def __init__(self, config: EngineConfig | None = None, cache_dir: Path | None = None,
                 degradation_paths: Sequence[degradations.Path] | None = None) -> None:
        """``degradation_paths``: the gallery's paths as a stored search recorded them (a replay), instead of
        those the budget selects in this version; a budget's selection may change between versions."""
        self.config = config or EngineConfig()
        self.device = resolve_device(self.config.device)
        self.fusion = FusionSpec.parse(self.config.fusion)
        if degradation_paths is not None:
            self.degradation_paths = [tuple(p) for p in degradation_paths]
        else:
            self.degradation_paths = degradations.select_paths(self.config.budget, self.config.seed)
        if cache_dir is None:
            from forensic_face.paths import cache_dir as default_cache_dir

            cache_dir = default_cache_dir() / "templates"
        self.templates = TemplateStore(cache_dir)
        self._detector: MtcnnDetector | None = None
        self._recognizer: Recognizer | None = None
        self._upsampler: Upsampler | None = None
        self._settings_digests: dict[int, str] = {}

    @property
    def cache(self) -> TemplateCache:
        """The on-disk template cache (hit and miss counts for provenance and tests)."""
        return self.templates.disk

    # -- models -------------------------------------------------------------------------------------------
    @property
    def detector(self) -> MtcnnDetector:
        if self._detector is None:
            self._detector = MtcnnDetector(self.device, self.config.detector)
        return self._detector

    @property
    def recognizer(self) -> Recognizer:
        if self._recognizer is None:
            from forensic_face.engine.recognizers import create_recognizer

            recognizer = create_recognizer(
                self.config.recognizer, device=self.device, batch_size=self.config.batch_size,
                model_path=self.config.recognizer_model_path, precision=self.config.precision,
                flip_test=self.config.flip_test,
            )
            flips = self.config.ensemble_flip_test
            if flips:
                members = getattr(recognizer, "members", ())
                if len(flips) != len(members):
                    raise ConfigError(f"ensemble_flip_test names {len(flips)} members but the recognizer "
                                      f"{self.config.recognizer!r} has {len(members) or 1}; give one on/off per "
                                      "ensemble member, or none")
                for member, flip in zip(members, flips):
                    member.flip_test = bool(flip)
            self._recognizer = recognizer
        return self._recognizer

    @property
    def upsampler(self) -> Upsampler:
        if self._upsampler is None:
            self._upsampler = create_upsampler(self.config.upsampler, self.device, self.config.batch_size)
        return self._upsampler

    @property
    def member_names(self) -> tuple[str, ...]:
        """The networks of a recognizer ensemble in template-block order; empty for a single network."""
        members = getattr(self.recognizer, "members", ())
        return tuple(m.name for m in members)

    @property
    def member_dims(self) -> tuple[int, ...] | None:
        """Each ensemble member's template width (the blocks :func:`fuse_scores` scores one by one), or None."""
        return getattr(self.recognizer, "member_dims", None)

    def provenance(self) -> dict[str, Any]:
        """What a report or a replay needs to know about how results were made."""
        from forensic_face.engine.recognizers.base import chip_geometry

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
            "recognizer": {"name": rec.name, "weights_sha256": rec.weights_sha256, "flip_test": rec.flip_test,
                           "precision": rec.precision,
                           **({"chips": chip_geometry(rec)} if not self.member_names else {}),
                           **({"members": [{"name": m.name, "weights_sha256": m.weights_sha256,
                                            "flip_test": m.flip_test, "chips": chip_geometry(m)}
                                           for m in rec.members],
                               "rule": self.config.ensemble_rule,
                               "weights": list(self.config.ensemble_weights) or [1.0] * len(rec.members)}
                              if self.member_names else {})},
            "upsampler": {"name": ups.name, "weights_sha256": {str(k): v for k, v in ups.weights_sha256.items()}},
            "detector": {"name": "mtcnn (facenet-pytorch 2.6.0 weights, forensic_face cascade)", "weights_sha256": self.detector.weights_sha256()},
            "degradation_paths": [degradations.path_label(p) for p in self.degradation_paths],
        }

    # -- detection and enrollment ---------------------------------------------------------------------------
    def detect(self, image: LoadedImage) -> ImageDetections:
        faces = self.detector.detect([image.pixels])[0]
        factor = detection_upsample_factor(image.height, image.width, self.config.detector)
        return ImageDetections(source=str(image.path), sha256=image.sha256, width=image.width,
                               height=image.height, faces=faces, upsample_factor=factor)

    def enroll(self, folder: Path, progress: Progress = None, should_cancel: ShouldCancel = None) -> Gallery:
        return enroll_gallery(Path(folder), self.detector, crop_enlarge=self.config.detector.crop_enlarge,
                              min_face_px=self.config.detector.gallery_min_face_px,
                              progress=progress, should_cancel=should_cancel)

    # -- embeddings ---------------------------------------------------------------------------------------
    def embed(self, images: torch.Tensor, landmarks: torch.Tensor, recognizer: Recognizer | None = None
              ) -> torch.Tensor:
        """Align/resize for the recognizer (or ``recognizer``, e.g. some members of an ensemble) and embed,
        chunked, shrinking chunks on GPU out-of-memory."""
        rec = self.recognizer if recognizer is None else recognizer
        return map_chunks(rec.embed_faces, (images, landmarks), self.config.batch_size)

    def face_templates(self, image: LoadedImage, faces: Sequence[FaceDetection]) -> np.ndarray:
        """The recognizer's template ``(n, D)`` of each face of ``image`` as it is (1.3x crop, aligned by its
        landmarks, no super-resolution): the appearance that links a video's faces into tracks. One call per
        face: the crops differ in size, and a frame holds a few faces."""
        templates = []
        with torch.inference_mode():
            for face in faces:
                crop = crop_face(image.pixels, face, self.config.detector.crop_enlarge)
                landmarks = torch.from_numpy(crop.landmarks).to(self.device).float()[None]
                templates.append(self.embed(to_tensor(crop.pixels, self.device), landmarks)[0].float().cpu().numpy())
        return np.stack(templates) if templates else np.zeros((0, 0), np.float32)

    def gallery_crops(self, entries: Sequence[GalleryEntry]) -> GalleryCrops:
        return canonical_crops(entries, self.device)

    @property
    def members(self) -> tuple[Recognizer, ...]:
        """The networks that embed every face: a recognizer ensemble's members, or the one recognizer. Each
        keeps its own templates in the cache, so an ensemble reuses what its members computed alone."""
        rec = self.recognizer
        return tuple(getattr(rec, "members", (rec,)))

    def template_settings_digest(self, member: Recognizer | None = None) -> str:
        """What every cached gallery template of ``member`` (default: the recognizer) depends on besides its
        image: the network, degradations, seed."""
        rec = self.recognizer if member is None else member
        # Memoised per network: a search asks once per portrait and scale.
        if id(rec) not in self._settings_digests:
            self._settings_digests[id(rec)] = cache_key(
                recognizer=self.recognizer_digest(rec),
                paths=[degradations.path_label(p) for p in self.degradation_paths], seed=self.config.seed,
            )
        return self._settings_digests[id(rec)]

    def recognizer_digest(self, member: Recognizer | None = None) -> str:
        """What a probe's templates by ``member`` (default: the recognizer) depend on besides its crop and
        upsampler: the network and the canonical crop. Not the gallery's degradations or seed: changing the
        budget must not re-run super-resolution."""
        from forensic_face.engine.recognizers.base import chip_geometry, template_family

        rec = self.recognizer if member is None else member
        # An ensemble is keyed by its members (each caches its own templates), so it has no chips of its own.
        chips = chip_geometry(rec) if not getattr(rec, "members", None) else None
        return cache_key(recognizer=template_family(rec), recognizer_sha256=rec.weights_sha256,
                         canonical_px=GALLERY_CANONICAL_PX, chips=chips)

    def gallery_cache_key(self, entry: GalleryEntry, target_px: int | None) -> tuple[str, ...]:
        """One cache key per member (:attr:`members`) for this portrait's gallery hypotheses at ``target_px``."""
        return tuple(self.templates.gallery_key(entry, target_px, self.template_settings_digest(m))
                     for m in self.members)

    def probe_cache_key(self, crop_pixels: np.ndarray, crop_landmarks: np.ndarray, scale: int) -> tuple[str, ...]:
        """One cache key per member for a probe crop's hypothesis templates at ``scale``."""
        cfg = self.config
        return tuple(probe_template_key(crop_pixels, crop_landmarks, scale, cfg.num_blur_hypotheses,
                                        cfg.max_blur_sigma, self.upsampler.name,
                                        self.upsampler.weights_sha256.get(scale, ""), self.recognizer_digest(m))
                     for m in self.members)

    def _member_embed(self, members: Sequence[int]) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
        """:meth:`embed` by the members numbered ``members`` only (their blocks side by side)."""
        from forensic_face.engine.recognizers.ensemble import RecognizerEnsemble

        chosen = [self.members[m] for m in members]
        if len(chosen) == len(self.members):
            return self.embed
        rec = chosen[0] if len(chosen) == 1 else RecognizerEnsemble(chosen)
        return functools.partial(self.embed, recognizer=rec)

    def _fill_missing(self, parts: list[list[torch.Tensor | None]], keys: Sequence[Sequence[str]],
                      rows: Sequence[int], compute: Callable[[Callable[..., torch.Tensor]], torch.Tensor]) -> None:
        """Fill ``parts[i][m]`` (row ``i``, member ``m``) where missing for ``rows``: ``compute(embed)`` makes the
        rows' templates with an embed function of the missing members only, split into blocks and cached."""
        missing = sorted({m for i in rows for m, part in enumerate(parts[i]) if part is None})
        if not missing:
            return
        fresh = compute(self._member_embed(missing))
        blocks = fresh.split([self.members[m].embedding_dim for m in missing], dim=-1)
        for row, i in enumerate(rows):
            for m, block in zip(missing, blocks):
                if parts[i][m] is None:
                    parts[i][m] = block[row]
                    self.cache.store(keys[i][m], block[row])

    def _joined(self, parts: Sequence[torch.Tensor | None]) -> torch.Tensor:
        """The members' templates of one face (or stack) side by side, on the device."""
        if len(parts) == 1:
            return parts[0].to(self.device)  # type: ignore[union-attr]
        return torch.cat([p.to(self.device) for p in parts], dim=-1)  # type: ignore[union-attr]

    def gallery_templates(
        self, entries: Sequence[GalleryEntry], target_px: int | None,
        progress: Callable[[int], None], should_cancel: ShouldCancel,
    ) -> torch.Tensor:
        """Templates ``(B, 1 + P, D)`` of the undegraded crop and every degradation path matched to
        ``target_px``, cached per entry and member on disk and, stacked, in memory (scales with one target share
        them)."""
        keys = [self.gallery_cache_key(e, target_px) for e in entries]
        flat_keys = tuple(k for entry_keys in keys for k in entry_keys)
        stack = self.templates.stack(flat_keys)
        if stack is not None:
            progress(len(entries))
            return stack
        parts: list[list[torch.Tensor | None]] = [[self.cache.load(k) for k in entry_keys] for entry_keys in keys]
        todo = [i for i, entry_parts in enumerate(parts) if any(p is None for p in entry_parts)]
        chunk = max(1, self.config.batch_size // 4)
        for start in range(0, len(todo), chunk):
            check_cancel(should_cancel)
            idx = todo[start:start + chunk]
            self._fill_missing(parts, keys, idx, lambda embed, idx=idx: gallery_hypothesis_templates(
                self.gallery_crops([entries[i] for i in idx]), self.degradation_paths,
                [entry_seed(entries[i].sha256, self.config.seed) for i in idx], target_px, embed, should_cancel))
            progress(len(idx))
        stack = torch.stack([self._joined(entry_parts) for entry_parts in parts])
        self.templates.remember(flat_keys, stack)
        return stack

    def warm_gallery(self, entries: Sequence[GalleryEntry], size_bins: Sequence[int], progress: Progress = None,
                     should_cancel: ShouldCancel = None) -> int:
        """Compute (and cache) the gallery hypothesis templates that searches of probes in ``size_bins`` will look
        up (their scales and resolution targets, exactly as :meth:`search` plans them), so a first search is
        fast. Returns the number of portrait x target size stacks warmed."""
        targets: list[int | None] = []
        for size_bin in size_bins:
            for scale in effective_scales(size_bin, self.config.scales):
                target = resolution_target(size_bin, scale) if self.config.resolution_matching else None
                if target not in targets:
                    targets.append(target)
        total, done = len(targets) * len(entries), 0
        with torch.inference_mode():
            for target in targets:
                check_cancel(should_cancel)

                def step(n: int, target: int | None = target) -> None:
                    nonlocal done
                    done += n
                    if progress is not None:
                        progress(done, total, f"gallery templates at {target} px")

                self.gallery_templates(entries, target, step, should_cancel)
        return len(targets) * len(entries)

    def cached_probe_parts(self, keys: Sequence[str]) -> list[torch.Tensor | None]:
        """Each member's templates ``(m, D_member)`` stored under :meth:`probe_cache_key`'s keys, None where
        missing."""
        parts = [self.cache.load(k) for k in keys]
        return [p if p is not None and p.shape[0] == self.config.num_blur_hypotheses else None for p in parts]

    def probe_templates(self, crop_pixels: np.ndarray, crop_landmarks: np.ndarray, scale: int,
                        hypotheses: torch.Tensor, parts: list[torch.Tensor | None] | None = None) -> torch.Tensor:
        """Templates ``(m, D)`` of one scale's probe hypotheses, cached per member: re-searching a probe (another
        gallery, another fusion, degradation budget or ensemble) does not embed its hypotheses again. ``parts``:
        :meth:`cached_probe_parts` already looked up."""
        keys = self.probe_cache_key(crop_pixels, crop_landmarks, scale)
        if parts is None:
            parts = self.cached_probe_parts(keys)
        crop_px = crop_pixels.shape[0]
        lms = torch.from_numpy(crop_landmarks).to(self.device).float() * (hypotheses.shape[-1] / crop_px)
        lms = lms[None].expand(hypotheses.shape[0], -1, -1)
        # The hypotheses as the one row of _fill_missing's table: the members' blocks split along the last axis.
        table = [list(parts)]
        self._fill_missing(table, [keys], [0], lambda embed: embed(hypotheses, lms)[None])
        return self._joined(table[0])

    def fuse(self, probe_templates: dict[int, torch.Tensor], gallery_templates: dict[int, torch.Tensor]
             ) -> FusedScores:
        """The configured fusion of one probe's templates against the gallery's, member by member for an
        ensemble. S_add as a mean: the ranking is the paper's, and scores stay on the [-1, 1] correlation scale,
        so probes searched with different numbers of hypotheses or scales stay comparable (and calibratable)."""
        cfg = self.config
        return fuse_scores(probe_templates, gallery_templates, self.fusion, add_as_mean=True,
                           blocks=self.member_dims, block_weights=cfg.ensemble_weights, rule=cfg.ensemble_rule)

    # -- images for the views ----------------------------------------------------------------------------------
    def gallery_hypothesis_image(self, entry: GalleryEntry, path_label: str, target_px: int | None) -> np.ndarray:
        """Re-create one gallery hypothesis (deterministic from the image hash and seed) for display."""
        with torch.inference_mode():
            return render_gallery_hypotheses([(entry, path_label, target_px)], self.config.seed, self.device)[0]

    def with_gallery_images(self, result: SearchResult, gallery: Gallery, top: int | None = None) -> SearchResult:
        """``result`` with the images of its candidates' best gallery hypotheses (the first ``top`` candidates,
        all by default), made in one batch per degradation path. Only views and case records need them."""
        by_sha = {e.sha256: e for e in gallery.entries}
        chosen = result.candidates if top is None else result.candidates[:top]
        requests = [(by_sha[c.gallery_sha256], g.path, g.target_px) for c in chosen
                    for g in c.best_gallery_hypotheses if g.image is None and c.gallery_sha256 in by_sha]
        with torch.inference_mode():
            images = iter(render_gallery_hypotheses(requests, self.config.seed, self.device))
        candidates = tuple(
            dataclasses.replace(c, best_gallery_hypotheses=tuple(
                dataclasses.replace(g, image=next(images)) if g.image is None and c.gallery_sha256 in by_sha
                else g for g in c.best_gallery_hypotheses))
            if k < len(chosen) else c
            for k, c in enumerate(result.candidates))
        return dataclasses.replace(result, candidates=candidates)

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
        """Rank the gallery for one probe face (the best detected face unless ``face`` is given), in the
        paper's order: crop, probe hypotheses, resolution-matched gallery hypotheses, templates, fusion,
        ranking. Candidates name their best gallery hypotheses without their images
        (:meth:`with_gallery_images`).

        ``hypothesis_images=False`` (benchmarks) lets a re-search take the probe's templates from the cache
        without magnifying the probe again; ``SearchResult.probe_hypotheses`` then holds only the scales that
        were magnified (each candidate still carries its best hypothesis)."""
        return self.search_views([(probe, face)], gallery, progress=progress, should_cancel=should_cancel,
                                 hypothesis_images=hypothesis_images)

    def search_views(
        self,
        views: Sequence[tuple[LoadedImage, FaceDetection | None]],
        gallery: Gallery,
        weights: Sequence[float] | None = None,
        progress: Progress = None,
        should_cancel: ShouldCancel = None,
        hypothesis_images: bool = True,
    ) -> SearchResult:
        """:meth:`search` for one face seen several times (the frames of a video track): template-mean fusion.

        Each view's probe hypotheses are embedded as in a single search, at the scales planned for the view of
        highest weight (the *reference*); per scale and hypothesis row the views' templates are averaged
        (``fusion.template_mean``, weighted by ``weights``, e.g. face quality), and the averaged templates meet
        the gallery hypotheses matched to the reference's size, with the configured fusion. The result's probe,
        crop and hypothesis images are the reference view's; ``provenance["views"]`` lists every view. One
        view is exactly :meth:`search`."""
        cfg = self.config
        if not gallery.entries:
            raise ConfigError("the gallery has no enrolled portraits")
        if not views:
            raise ConfigError("no probe views to search")
        w = [1.0] * len(views) if weights is None else [float(x) for x in weights]
        if len(w) != len(views):
            raise ConfigError(f"{len(w)} weights for {len(views)} views")
        ref = int(np.argmax(w))
        faces = [face if face is not None else self.best_face(image) for image, face in views]
        crops = [crop_face(image.pixels, face, cfg.detector.crop_enlarge) for (image, _), face in zip(views, faces)]
        probe, face, crop = views[ref][0], faces[ref], crops[ref]
        size_bin, scales = probe_plan(crop.size_px, cfg.size_bin_px, cfg.scales)
        if scales != tuple(cfg.scales):
            log.info("probe crop is %d px: scales %s used instead of %s", crop.size_px, scales, cfg.scales)
        entries = gallery.entries
        total = len(scales) * (len(views) + len(entries))
        done = 0

        def step(n: int, message: str) -> None:
            nonlocal done
            done += n
            if progress is not None:
                progress(done, total, message)

        crop_t = to_tensor(crop.pixels, self.device)
        with torch.inference_mode():
            view_templates = []
            for k, view_crop in enumerate(crops):
                check_cancel(should_cancel)
                # Only the reference's hypothesis images are shown, so only they must be magnified when cached.
                sigmas_k, hyps_k, templates_k = self.crop_probe_templates(
                    view_crop, scales, hypothesis_images and k == ref)
                if k == ref:
                    sigmas, hyps = sigmas_k, hyps_k
                view_templates.append(templates_k)
                step(len(scales), "probe hypotheses")
            if len(views) == 1:
                probe_templates = view_templates[0]
            else:
                w_t = torch.tensor(w, device=self.device)
                probe_templates = {s: template_mean(torch.stack([t[s] for t in view_templates]), w_t)
                                   for s in scales}
            gallery_templates: dict[int, torch.Tensor] = {}
            targets: dict[int, int | None] = {}
            for scale in scales:
                check_cancel(should_cancel)
                # Gallery side: every portrait undegraded and degraded, matched to this scale's probe size.
                targets[scale] = resolution_target(size_bin, scale) if cfg.resolution_matching else None
                gallery_templates[scale] = self.gallery_templates(
                    entries, targets[scale], lambda n, s=scale: step(n, f"gallery templates {s}x"), should_cancel)
            check_cancel(should_cancel)
            fused = self.fuse(probe_templates, gallery_templates)

        labels = hypothesis_labels(self.degradation_paths)
        if any(t.shape[1] != len(labels) for t in gallery_templates.values()):
            raise RuntimeError("gallery hypothesis labels out of step with templates")
        ranked = rank_identities(fused.scores.float().cpu().numpy(), entries)
        probe_hyp = {
            s: tuple(ProbeHypothesis(scale=s, sigma=round(float(sig), 4), image=to_uint8(img))
                     for sig, img in zip(sigmas.tolist(), imgs))
            for s, imgs in hyps.items()
        }

        def best_hypothesis(scale: int, row: int) -> ProbeHypothesis:
            if scale in probe_hyp:
                return probe_hyp[scale][row]
            with torch.inference_mode():
                image = probe_hypothesis(crop_t, scale, row, self.upsampler, cfg.num_blur_hypotheses,
                                         cfg.max_blur_sigma)[0]
            return ProbeHypothesis(scale=scale, sigma=round(float(sigmas[row]), 4), image=to_uint8(image))

        candidates = build_candidates(ranked, entries, fused, labels, targets, cfg.top_k, best_hypothesis,
                                      self.member_names)
        scores = fused.scores.float().cpu().numpy()
        provenance = self.provenance()
        if self.member_names:
            # Each member's own score of every listed candidate, so a stored search shows them as the live one does.
            provenance["member_scores"] = {c.identity: c.member_scores for c in candidates}
        provenance.update({"probe_crop_px": crop.size_px, "probe_size_bin_px": size_bin, "scales_used": list(scales),
                           "gallery_targets_px": {str(s): t for s, t in targets.items()},
                           "cache": {"hits": self.cache.hits, "misses": self.cache.misses}})
        if len(views) > 1:
            provenance["views"] = {
                "fusion": "template-mean", "reference": ref,
                "views": [{"probe": str(image.path), "sha256": image.sha256, "weight": round(weight, 6),
                           "box": [round(float(v), 2) for v in view_face.box], "crop_px": view_crop.size_px}
                          for (image, _), view_face, view_crop, weight in zip(views, faces, crops, w)]}
        return SearchResult(
            probe_path=probe.path, probe_sha256=probe.sha256, probe_face=face, probe_crop=crop, candidates=candidates,
            ranking=tuple((identity, float(scores[i])) for identity, i in ranked),
            probe_hypotheses=probe_hyp, provenance=provenance,
        )

    def crop_probe_templates(self, crop: FaceCrop, scales: tuple[int, ...], hypothesis_images: bool = True
                              ) -> tuple[torch.Tensor, dict[int, torch.Tensor], dict[int, torch.Tensor]]:
        """The probe side of Figure 1 for one probe crop: its sigmas, hypothesis images (of the scales it
        magnified) and templates per scale, as every search (full, video, shortlist query) makes them.
        Super-resolution is the costly part of a re-search, so without ``hypothesis_images`` the scales whose
        templates are cached are not magnified."""
        cfg = self.config
        parts = {} if hypothesis_images else {
            s: self.cached_probe_parts(self.probe_cache_key(crop.pixels, crop.landmarks, s)) for s in scales}
        magnify = tuple(s for s in scales if s not in parts or any(p is None for p in parts[s]))
        sigmas, hyps = probe_hypotheses(to_tensor(crop.pixels, self.device), magnify, self.upsampler,
                                        cfg.num_blur_hypotheses, cfg.max_blur_sigma)
        templates = {}
        for scale in scales:
            if scale in magnify:
                templates[scale] = self.probe_templates(crop.pixels, crop.landmarks, scale, hyps[scale],
                                                        parts.get(scale))
            else:
                templates[scale] = self._joined(parts[scale])
        return sigmas, hyps, templates

    def provisional_search(self, probe: LoadedImage, gallery: Gallery, face: FaceDetection | None = None
                           ) -> SearchResult:
        """A first ranking in seconds, for the wait before :meth:`search` on a new gallery: one probe hypothesis
        (the smallest scale, no pre-blur) against each portrait's undegraded hypothesis at that scale (the
        first column of the full method's gallery hypotheses). Marked ``provenance["provisional"]``: never
        calibrated, recorded or reported, and replaced by the full search's result."""
        cfg = self.config
        if not gallery.entries:
            raise ConfigError("the gallery has no enrolled portraits")
        face = face if face is not None else self.best_face(probe)
        crop = crop_face(probe.pixels, face, cfg.detector.crop_enlarge)
        size_bin, scales = probe_plan(crop.size_px, cfg.size_bin_px, cfg.scales)
        scale = min(scales)
        target = resolution_target(size_bin, scale) if cfg.resolution_matching else None
        entries = gallery.entries
        with torch.inference_mode():
            image = probe_hypothesis(to_tensor(crop.pixels, self.device), scale, 0, self.upsampler,
                                     cfg.num_blur_hypotheses, cfg.max_blur_sigma)
            lms = torch.from_numpy(crop.landmarks).to(self.device).float()[None] * (image.shape[-1] / crop.size_px)
            probe_template = self.embed(image, lms)
            keys = ("provisional",) + tuple(k for e in entries for k in self.gallery_cache_key(e, target))
            plain = self.templates.stack(keys)
            if plain is None:
                full = self.templates.stack(keys[1:])  # the full method's stack, when it is already in memory
                if full is not None:
                    plain = full[:, 0]
                else:
                    chunks = []
                    for start in range(0, len(entries), cfg.batch_size):
                        crops = self.gallery_crops(entries[start:start + cfg.batch_size])
                        chunks.append(self.embed(*match_resolution(crops.images, crops.landmarks, target)))
                    plain = torch.cat(chunks)
                self.templates.remember(keys, plain)
            # One hypothesis on each side: every fusion is their correlation (per member, for an ensemble).
            scores_t = self.fuse({scale: probe_template}, {scale: plain[:, None]}).scores
        scores = scores_t.float().cpu().numpy()
        ranked = rank_identities(scores, entries)
        hypothesis = ProbeHypothesis(scale=scale, sigma=0.0, image=to_uint8(image[0]))
        candidates = tuple(
            Candidate(rank=rank, identity=identity, image_path=entries[i].image_path,
                      gallery_sha256=entries[i].sha256, score=float(scores[i]),
                      per_scale_scores={scale: float(scores[i])}, best_probe_hypothesis=hypothesis,
                      best_gallery_hypotheses=())
            for rank, (identity, i) in enumerate(ranked[: cfg.top_k], start=1))
        provenance = self.provenance()
        provenance.update({"provisional": True, "probe_crop_px": crop.size_px, "probe_size_bin_px": size_bin,
                           "scales_used": [scale], "gallery_targets_px": {str(scale): target}})
        return SearchResult(
            probe_path=probe.path, probe_sha256=probe.sha256, probe_face=face, probe_crop=crop, candidates=candidates,
            ranking=tuple((identity, float(scores[i])) for identity, i in ranked),
            probe_hypotheses={scale: (hypothesis,)}, provenance=provenance,
        )

    def best_face(self, probe: LoadedImage) -> FaceDetection:
        """The detector's best face on the probe, or :class:`NoFaceDetected` with what the user can do."""
        faces = self.detector.detect([probe.pixels])[0]
        if not faces:
            raise NoFaceDetected(str(probe.path), "draw the face box by hand and search again")
        return faces[0]
