"""Templates (paper section 3.3): the gallery hypotheses (each portrait undegraded and along every degradation
path, resolution-matched to a probe scale) and the probe hypotheses, embedded by the recognizer, keyed by what
they depend on and kept on disk and in memory so a gallery is embedded once per probe size.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from forensic_face.engine import degradations
from forensic_face.engine.cache import TemplateCache, cache_key
from forensic_face.engine.degradations import ORIGINAL_PATH
from forensic_face.engine.callbacks import ShouldCancel
from forensic_face.engine.imaging import to_uint8
from forensic_face.engine.matching import GALLERY_CANONICAL_PX, match_resolution
from forensic_face.engine.results import GalleryEntry

#: Gallery template stacks kept in memory per engine (a stack is one gallery at one scale and probe size; 496
#: portraits x 67 hypotheses x 128-D is 17 MB), so consecutive searches of similar probes skip the disk cache.
GALLERY_MEMORY_BYTES = 1 << 30

#: ``embed(images (B,3,S,S), landmarks (B,5,2)) -> templates (B,D)``: the recognizer, chunked on the device.
Embed = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def entry_seed(sha256: str, seed: int) -> int:
    """Per-portrait seed for degradation parameters: the image's SHA-256 and the run seed, nothing else."""
    return int.from_bytes(hashlib.sha256(f"{sha256}:{seed}".encode()).digest()[:8], "big") & (2**63 - 1)


def hypothesis_labels(paths: Sequence[degradations.Path]) -> tuple[str, ...]:
    """Label of each gallery hypothesis column: the undegraded crop, then the paths in configured order."""
    return (ORIGINAL_PATH,) + tuple(degradations.path_label(p) for p in paths)


@dataclass(frozen=True)
class GalleryCrops:
    """Canonical gallery crops ``(B,3,C,C)`` and their landmarks ``(B,5,2)`` on the device."""

    images: torch.Tensor
    landmarks: torch.Tensor


def canonical_crops(entries: Sequence[GalleryEntry], device: torch.device) -> GalleryCrops:
    """The enrolled crops brought to :data:`GALLERY_CANONICAL_PX` (area when shrinking, bicubic when
    enlarging), the starting point of every gallery hypothesis."""
    size = GALLERY_CANONICAL_PX
    images, landmarks = [], []
    for entry in entries:
        pixels = entry.crop.pixels
        factor = size / pixels.shape[0]
        interpolation = cv2.INTER_AREA if factor < 1 else cv2.INTER_CUBIC
        images.append(cv2.resize(pixels, (size, size), interpolation=interpolation))
        landmarks.append(entry.crop.landmarks * factor)
    batch = torch.from_numpy(np.stack(images)).to(device).permute(0, 3, 1, 2).float().div_(255.0)
    lms = torch.from_numpy(np.stack(landmarks)).to(device).float()
    return GalleryCrops(batch, lms)


def gallery_hypothesis_templates(
    crops: GalleryCrops, paths: Sequence[degradations.Path], seeds: Sequence[int], target_px: int | None,
    embed: Embed, should_cancel: ShouldCancel = None,
) -> torch.Tensor:
    """Templates ``(B, 1 + P, D)``: each crop undegraded, then along every path (in the order of ``paths``),
    each brought to ``target_px`` before embedding. Paths sharing a prefix share its computation."""
    per_path = [embed(*match_resolution(crops.images, crops.landmarks, target_px))]
    if not paths:
        return per_path[0][:, None]
    lms_unit = crops.landmarks / GALLERY_CANONICAL_PX
    degraded_templates: dict[degradations.Path, torch.Tensor] = {}
    for degraded in degradations.iter_degraded(crops.images, paths, seeds, should_cancel=should_cancel):
        images = degraded.images
        degraded_templates[degraded.path] = embed(*match_resolution(images, lms_unit * images.shape[-1], target_px))
    # iter_degraded yields depth-first; the columns follow the configured path order.
    return torch.stack(per_path + [degraded_templates[tuple(p)] for p in paths], dim=1)


def render_gallery_hypotheses(
    requests: Sequence[tuple[GalleryEntry, str, int | None]], seed: int, device: torch.device,
) -> list[np.ndarray]:
    """Images (uint8 ``(S,S,3)``) of gallery hypotheses ``(entry, path label, target px)`` for display, one
    batch per distinct path: they are re-created (deterministic from each image's hash and ``seed``) only for
    the views that show them, never in the search itself."""
    out: list[np.ndarray | None] = [None] * len(requests)
    by_label: dict[str, list[int]] = {}
    for k, (_, label, _) in enumerate(requests):
        by_label.setdefault(label, []).append(k)
    for label, ks in by_label.items():
        entries = [requests[k][0] for k in ks]
        crops = canonical_crops(entries, device)
        if label == ORIGINAL_PATH:
            images = crops.images
        else:
            path = degradations.parse_path_label(label)
            images = degradations.degrade_gallery(crops.images, [path], [entry_seed(e.sha256, seed) for e in entries]
                                                  )[0].images
        for target in dict.fromkeys(requests[k][2] for k in ks):
            rows = [row for row, k in enumerate(ks) if requests[k][2] == target]
            matched, _ = match_resolution(images[rows], crops.landmarks[rows], target)
            for image, row in zip(matched, rows):
                out[ks[row]] = to_uint8(image)
    return out  # type: ignore[return-value]


class TemplateStore:
    """Where templates are kept: on disk by content key (:class:`TemplateCache`) and, stacked per gallery,
    in memory (least recently used first out beyond :data:`GALLERY_MEMORY_BYTES`)."""

    def __init__(self, cache_dir: Path | None, memory_bytes: int = GALLERY_MEMORY_BYTES) -> None:
        self.disk = TemplateCache(cache_dir)
        self.memory_bytes = memory_bytes
        self._stacks: OrderedDict[tuple[str, ...], torch.Tensor] = OrderedDict()
        self._key_memo: dict[tuple[object, ...], str] = {}

    def gallery_key(self, entry: GalleryEntry, target_px: int | None, settings_digest: str) -> str:
        """Key of one portrait's gallery hypothesis templates at one target size. Not the probe's scale: two
        scales with the same target (4x and 8x both capped at the canonical size) share one computation."""
        # Memoised: a search needs one key per portrait and scale, and hashing JSON for 496 x 3 of them per
        # probe would cost more than the fusion itself.
        memo = (entry.sha256, entry.crop.crop_box.tobytes(), entry.crop.landmarks.tobytes(), target_px,
                settings_digest)
        key = self._key_memo.get(memo)
        if key is None:
            key = cache_key(
                kind="gallery-templates-v2", sha256=entry.sha256, target_px=target_px,
                crop=np.round(entry.crop.crop_box, 1).tolist(), landmarks=np.round(entry.crop.landmarks, 1).tolist(),
                settings=settings_digest,
            )
            self._key_memo[memo] = key
        return key

    def stack(self, keys: tuple[str, ...]) -> torch.Tensor | None:
        """The in-memory stack of these gallery keys, or None."""
        stack = self._stacks.get(keys)
        if stack is not None:
            self._stacks.move_to_end(keys)
        return stack

    def remember(self, keys: tuple[str, ...], stack: torch.Tensor) -> None:
        self._stacks[keys] = stack
        self._stacks.move_to_end(keys)
        total = sum(t.numel() * t.element_size() for t in self._stacks.values())
        while len(self._stacks) > 1 and total > self.memory_bytes:
            _, dropped = self._stacks.popitem(last=False)
            total -= dropped.numel() * dropped.element_size()


def probe_template_key(crop_pixels: np.ndarray, crop_landmarks: np.ndarray, scale: int, num_hypotheses: int,
                       max_sigma: float, upsampler_name: str, upsampler_sha256: str, recognizer_digest: str) -> str:
    """Probe hypothesis templates depend on the crop's pixels and landmarks and on how they are magnified."""
    return cache_key(
        kind="probe-templates", crop_sha256=hashlib.sha256(np.ascontiguousarray(crop_pixels).tobytes()).hexdigest(),
        shape=list(crop_pixels.shape), landmarks=np.round(crop_landmarks, 3).tolist(), scale=scale,
        hypotheses=num_hypotheses, max_sigma=max_sigma, upsampler=upsampler_name,
        upsampler_sha256=upsampler_sha256, recognizer=recognizer_digest,
    )
