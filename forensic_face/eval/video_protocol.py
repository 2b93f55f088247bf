"""A video protocol made from LFW: does fusing frames beat the best single frame?

Gallery: the LFW-XRes gallery (first image of each peopleDevTest person with at least two images). Clip: for each
person with at least ``min_images`` probe images, ``frames_per_clip`` frames made from their probe images in turn
(so a clip shows the person with different poses and expressions, as a walk past a camera does), each frame
degraded by the benchmark's camera at its own face width (uniform in ``widths_px``), with its own camera draw
(``--camera sampled``) or the fixed benchmark camera, and moved by a few pixels (motion between frames). All of
it is seeded by the protocol seed and the person's name.

Every frame is searched with the full method at the known face (the video issue is about fusion, not
detection); frames are ordered by :func:`forensic_face.engine.video.face_quality`. Reported: rank-1 of the single
best frame, of a random frame, and of the best 3, 5 and 10 frames fused by both fusions of
:data:`forensic_face.engine.video.VIDEO_FUSIONS` (``fused_N``: quality-weighted score mean; ``tmean_N``:
quality-weighted template mean, :meth:`Engine.search_views`), with McNemar's exact test of each against the single
best frame.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from forensic_face.engine.callbacks import Progress
from forensic_face.engine.imaging import LoadedImage
from forensic_face.engine.results import FaceDetection
from forensic_face.engine.video import face_quality, fuse_rankings
from forensic_face.eval.compare import sign_test_p
from forensic_face.eval.protocol import XResSplit, degrade_probe, nominal_face
from forensic_face.surveillance import DEFAULT_SURVEILLANCE, sample_surveillance_params

FUSED_FRAMES = (3, 5, 10)


@dataclass(frozen=True)
class VideoProtocolSettings:
    frames_per_clip: int = 10
    widths_px: tuple[float, float] = (16.0, 32.0)
    camera: str = "sampled"
    max_shift_px: int = 8
    min_images: int = 2
    seed: int = 0


def _rng(seed: int, *parts: object) -> np.random.Generator:
    digest = hashlib.sha256(":".join(str(p) for p in (seed, *parts)).encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "big"))


@dataclass(frozen=True)
class ClipFrame:
    identity: str
    source: str
    width_px: float
    pixels: np.ndarray
    face: FaceDetection


def make_clips(split: XResSplit, settings: VideoProtocolSettings) -> dict[str, list[ClipFrame]]:
    """``identity -> frames`` for every person with at least ``min_images`` probe images."""
    by_person: dict[str, list[Any]] = {}
    for image in split.probes:
        by_person.setdefault(image.identity, []).append(image)
    clips: dict[str, list[ClipFrame]] = {}
    known = nominal_face()
    for identity, images in sorted(by_person.items()):
        if len(images) < settings.min_images:
            continue
        rng = _rng(settings.seed, "clip", identity)
        frames = []
        for k in range(settings.frames_per_clip):
            image = images[k % len(images)]
            with Image.open(image.path) as im:
                original = np.asarray(im.convert("RGB"))
            dx, dy = rng.integers(-settings.max_shift_px, settings.max_shift_px + 1, size=2)
            moved = np.roll(np.roll(original, int(dy), axis=0), int(dx), axis=1)
            width = float(rng.uniform(*settings.widths_px))
            params = sample_surveillance_params(rng) if settings.camera == "sampled" else DEFAULT_SURVEILLANCE
            probe = degrade_probe(moved, known, width, params, int(rng.integers(0, 2**31)))
            box = probe.face.box + np.array([dx, dy, dx, dy]) * probe.factor
            face = FaceDetection(box=box.astype(np.float32), score=1.0,
                                 landmarks=np.zeros((5, 2), np.float32), manual=True)
            frames.append(ClipFrame(identity, image.name, width, probe.pixels, face))
        clips[identity] = frames
    return clips


def run_video_protocol(engine: Any, gallery: Any, clips: dict[str, list[ClipFrame]], out_dir: Path,
                       progress: Progress = None) -> dict[str, Any]:
    """Search every frame, fuse, and write ``video_protocol.json`` (per clip: the frames, their qualities and
    the rank of the true person for each way of using the clip) into ``out_dir``."""
    from forensic_face.engine.detect import manual_face

    out_dir.mkdir(parents=True, exist_ok=True)
    per_clip = []
    total = sum(len(f) for f in clips.values())
    done = 0
    for identity, frames in clips.items():
        results, qualities, views = [], [], []
        for k, frame in enumerate(frames):
            image = LoadedImage(path=Path(f"{identity}-frame{k}.png"), pixels=frame.pixels,
                                sha256=hashlib.sha256(frame.pixels.tobytes()).hexdigest(),
                                size_bytes=int(frame.pixels.nbytes), format="video-frame", original_mode="RGB",
                                exif_orientation=1)
            # The known box; landmarks found inside it as for a box the examiner draws.
            face = manual_face(frame.pixels, frame.face.box, engine.detector)
            results.append(engine.search(image, gallery, face=face, hypothesis_images=False))
            qualities.append(face_quality(frame.pixels, face))
            views.append((image, face))
            done += 1
            if progress is not None:
                progress(done, total, identity)
        order = sorted(range(len(frames)), key=lambda i: -qualities[i])

        def rank_of(ranking: Sequence[tuple[str, float]], identity: str = identity) -> int:
            return next(r for r, (name, _) in enumerate(ranking, start=1) if name == identity)

        random_frame = int(_rng(0, "random", identity).integers(0, len(frames)))
        ranks = {"single_best": rank_of(results[order[0]].ranking),
                 "random_frame": rank_of(results[random_frame].ranking)}
        for n in FUSED_FRAMES:
            chosen = order[:n]
            ranks[f"fused_{n}"] = rank_of(fuse_rankings([results[i] for i in chosen], [qualities[i] for i in chosen]))
            # The frames' probe templates are cached by the searches above: only the fusion is computed again.
            ranks[f"tmean_{n}"] = rank_of(engine.search_views([views[i] for i in chosen], gallery,
                                                              weights=[qualities[i] for i in chosen],
                                                              hypothesis_images=False).ranking)
        per_clip.append({"identity": identity, "frames": [{"source": f.source, "width_px": round(f.width_px, 2),
                                                           "quality": round(q, 3)} for f, q in zip(frames, qualities)],
                         "ranks": ranks})
    summary: dict[str, Any] = {"clips": len(per_clip), "rank1": {}, "mcnemar_vs_single_best": {}}
    keys = (["single_best", "random_frame"] + [f"fused_{n}" for n in FUSED_FRAMES]
            + [f"tmean_{n}" for n in FUSED_FRAMES])
    hits = {k: np.array([c["ranks"][k] == 1 for c in per_clip]) for k in keys}
    for key in keys:
        summary["rank1"][key] = round(100 * float(hits[key].mean()), 2) if per_clip else float("nan")
        if key != "single_best":
            wins = int((hits[key] & ~hits["single_best"]).sum())
            losses = int((~hits[key] & hits["single_best"]).sum())
            summary["mcnemar_vs_single_best"][key] = {"only_this": wins, "only_single_best": losses,
                                                      "p": round(sign_test_p(wins, losses), 4)}
    (out_dir / "video_protocol.json").write_text(json.dumps({"summary": summary, "clips": per_clip}, indent=2))
    return summary


def settings_json(settings: VideoProtocolSettings) -> dict[str, Any]:
    return asdict(settings)
