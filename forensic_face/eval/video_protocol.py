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

The *walk* clips (:func:`make_walk_clip`, :func:`run_walk_protocol`) test what the stills clips skip: detection and
tracking. Each is a real video file (MJPEG AVI, 3 s at 8 fps) of one person walking towards the camera: the face grows
as seen in perspective (``widths_px``, 12 to 36 px by default) and drifts sideways and down, the person's probe
images in turn (a new one every second: the pose changes), one camera per clip and sensor
noise per frame, over a static textured background. The clip goes through ``find_tracks`` with the engine's
detector and templates exactly as ``search-video`` does; reported are the frames per *true* track (all its faces
are the walking person, IoU >= 0.3 with the known face box) and rank-1 of the full method on track 1 (the longest,
what ``search-video`` searches by default) with its best ``video_frames`` frames fused; and how many frames a
box drawn on the middle sampled frame is followed on (``track_from_box``, as in the window).
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from forensic_face.engine import (
    FaceDetection,
    LoadedImage,
    NoFaceDetected,
    Progress,
    box_iou,
    face_quality,
    find_tracks,
    fuse_rankings,
    manual_face,
    open_video,
    search_track,
    track_from_box,
)
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


@dataclass(frozen=True)
class WalkSettings:
    """A clip of one person walking towards the camera (see the module docstring)."""

    #: 3 s at 8 fps, a common CCTV rate: with the default stride of 5 the tracker sees 5 frames, 0.6 s apart,
    #: the face growing by up to 1.35x between them (1.7x with a stride of 10) and moving by up to two widths.
    num_frames: int = 24
    fps: float = 8.0
    #: Face width at the first and the last frame (perspective in between: 1/width falls linearly in time).
    widths_px: tuple[float, float] = (12.0, 36.0)
    frame_size_px: tuple[int, int] = (320, 240)
    frames_per_image: int = 8
    #: Sampling of the tracker, as ``search-video --stride``.
    stride: int = 5
    #: A detected face is the walking person's when its box overlaps the known one by at least this IoU.
    min_true_iou: float = 0.3
    seed: int = 0


def walk_widths(settings: WalkSettings) -> np.ndarray:
    """Face width ``(num_frames,)`` of a walk towards the camera at constant speed: the distance falls linearly,
    so 1/width does.

    >>> walk_widths(WalkSettings(num_frames=3)).round(1).tolist()
    [12.0, 18.0, 36.0]
    """
    t = np.linspace(0.0, 1.0, settings.num_frames)
    w0, w1 = settings.widths_px
    return 1.0 / (1.0 / w0 + t * (1.0 / w1 - 1.0 / w0))


def make_walk_clip(identity: str, images: Sequence[Any], settings: WalkSettings, path: Path) -> np.ndarray:
    """Write the walk clip of ``identity`` (its probe images ``images``) to ``path`` (MJPEG AVI) and return the
    known face box of every frame ``(num_frames, 4)`` xyxy px."""
    import cv2

    rng = _rng(settings.seed, "walk", identity)
    frame_w, frame_h = settings.frame_size_px
    widths = walk_widths(settings)
    # Sideways: the person's lateral offset (in face widths) changes linearly; in the image it scales with the face.
    offset0 = float(rng.uniform(-3.0, 3.0))
    offset1 = float(np.clip(offset0 + rng.uniform(-3.0, 3.0), -3.0, 3.0))
    params = sample_surveillance_params(rng)
    background = cv2.GaussianBlur(rng.integers(30, 220, (frame_h, frame_w, 3), dtype=np.uint8), (0, 0), 4)
    known = nominal_face()
    originals = {}
    boxes = np.zeros((settings.num_frames, 4), np.float64)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), settings.fps, (frame_w, frame_h))
    if not writer.isOpened():
        raise OSError(f"cannot write {path} (OpenCV has no MJPEG writer)")
    try:
        for k, width in enumerate(widths):
            image = images[(k // settings.frames_per_image) % len(images)]
            if image.path not in originals:
                with Image.open(image.path) as im:
                    originals[image.path] = np.asarray(im.convert("RGB"))
            probe = degrade_probe(originals[image.path], known, float(width), params, int(rng.integers(0, 2**31)))
            t = k / max(settings.num_frames - 1, 1)
            cx = frame_w / 2 + (offset0 + t * (offset1 - offset0)) * width
            cy = 0.3 * frame_h + 1.2 * width
            face = probe.face.box
            dx = int(round(cx - (face[0] + face[2]) / 2))
            dy = int(round(cy - (face[1] + face[3]) / 2))
            frame = background.copy()
            tile = probe.pixels
            x1, y1 = max(0, dx), max(0, dy)
            x2, y2 = min(frame_w, dx + tile.shape[1]), min(frame_h, dy + tile.shape[0])
            frame[y1:y2, x1:x2] = tile[y1 - dy:y2 - dy, x1 - dx:x2 - dx]
            boxes[k] = face + np.array([dx, dy, dx, dy])
            writer.write(np.ascontiguousarray(frame[:, :, ::-1]))
    finally:
        writer.release()
    return boxes


def run_walk_protocol(engine: Any, gallery: Any, split: XResSplit, settings: WalkSettings, out_dir: Path,
                      min_images: int = 2, progress: Progress = None) -> dict[str, Any]:
    """Make a walk clip for every person with at least ``min_images`` probe images, find its tracks as
    ``search-video`` does, search track 1 with the full method, follow the known box drawn on the middle sampled
    frame as the window does (``track_from_box``), and write ``walk_protocol.json`` (per clip: the tracks, which
    are true, the frames fused, the rank of the person, the frames the drawn box was followed on) into
    ``out_dir``. The clips are written
    to a temporary folder and deleted (they are LFW images)."""
    by_person: dict[str, list[Any]] = {}
    for image in split.probes:
        by_person.setdefault(image.identity, []).append(image)
    people = sorted(identity for identity, images in by_person.items() if len(images) >= min_images)
    out_dir.mkdir(parents=True, exist_ok=True)

    def detect(image: LoadedImage) -> list[FaceDetection]:
        return list(engine.detector.detect([image.pixels])[0])

    per_clip = []
    with tempfile.TemporaryDirectory(prefix="walk-clips-") as tmp:
        for n, identity in enumerate(people, start=1):
            path = Path(tmp) / f"{identity}.avi"
            truth = make_walk_clip(identity, by_person[identity], settings, path)
            video = open_video(path)
            try:
                tracks = find_tracks(video, detect, settings.stride, embed=engine.face_templates)
            except NoFaceDetected:
                tracks = []

            def is_true(face: Any) -> bool:
                return box_iou(np.asarray(face.face.box, np.float64), truth[face.frame_index]) >= settings.min_true_iou

            listed = [{"faces": len(t.faces), "frames": [f.frame_index for f in t.faces],
                       "true": all(is_true(f) for f in t.faces)} for t in tracks]
            # The examiner's way in: the known box drawn on the middle sampled frame, followed both ways.
            middle = settings.num_frames // 2 // settings.stride * settings.stride
            drawn = track_from_box(video, middle, truth[middle].tolist(),
                                   lambda pixels, box: manual_face(pixels, box, engine.detector), detect=detect,
                                   stride=settings.stride)
            rank, fused = None, 0
            if tracks:
                result = search_track(engine, video, tracks[0], gallery)
                fused = len(result.frames)
                rank = next(r for r, (name, _) in enumerate(result.ranking, start=1) if name == identity)
            per_clip.append({"identity": identity, "tracks": listed, "track1_true": bool(listed and listed[0]["true"]),
                             "frames_fused": fused, "rank": rank,
                             "drawn": {"frame": middle, "frames": [f.frame_index for f in drawn.faces],
                                       "true": sum(is_true(f) for f in drawn.faces)}})
            if progress is not None:
                progress(n, len(people), identity)
    true_lengths = [t["faces"] for c in per_clip for t in c["tracks"] if t["true"]]
    summary: dict[str, Any] = {
        "clips": len(per_clip),
        "true_tracks": len(true_lengths),
        "true_tracks_per_clip": round(len(true_lengths) / max(len(per_clip), 1), 3),
        "mean_frames_per_true_track": round(float(np.mean(true_lengths)), 3) if true_lengths else 0.0,
        "false_tracks": sum(1 for c in per_clip for t in c["tracks"] if not t["true"]),
        "track1_true": round(100 * float(np.mean([c["track1_true"] for c in per_clip])), 2) if per_clip else 0.0,
        "mean_frames_fused": round(float(np.mean([c["frames_fused"] for c in per_clip])), 3) if per_clip else 0.0,
        "rank1": round(100 * float(np.mean([c["rank"] == 1 for c in per_clip])), 2) if per_clip else 0.0,
        "drawn_box_frames": round(float(np.mean([len(c["drawn"]["frames"]) for c in per_clip])), 3) if per_clip
        else 0.0,
        "drawn_box_true_frames": round(float(np.mean([c["drawn"]["true"] for c in per_clip])), 3) if per_clip
        else 0.0,
    }
    (out_dir / "walk_protocol.json").write_text(json.dumps({"summary": summary, "clips": per_clip}, indent=2))
    return summary


def walk_settings_json(settings: WalkSettings) -> dict[str, Any]:
    return {**asdict(settings), "widths_px": list(settings.widths_px), "frame_size_px": list(settings.frame_size_px)}
