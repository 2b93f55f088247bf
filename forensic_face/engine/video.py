"""Probes from CCTV video: sample frames, follow each face across them (tracks), pick the best frames of a track
and fuse their searches. Every frame adds evidence about the same person; fusing the best few is the surest way
past one tiny face's information limit (multi-frame aggregation as in IJB-S / YouTube Faces protocols).

The video file is evidence: it is hashed (SHA-256 of its bytes) and opened read-only by OpenCV's FFmpeg backend;
frames are addressed by index and timestamp in every result. Decoding is a generator, so memory stays bounded
whatever the length of the file.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from forensic_face.engine.callbacks import Progress, ShouldCancel, check_cancel
from forensic_face.engine.config import VIDEO_FUSIONS, EngineConfig
from forensic_face.engine.errors import ConfigError, ImageLoadError, NoFaceDetected
from forensic_face.engine.imaging import LoadedImage, open_regular_file, sha256_file
from forensic_face.engine.results import Candidate, FaceDetection, Gallery, SearchResult

#: Height of the face thumbnails kept per track face (a two-hour clip sampled every 5th frame keeps ~1 MB/1000).
THUMBNAIL_PX = 48

VIDEO_SUFFIXES = frozenset({".mp4", ".avi", ".mkv", ".mov", ".m4v", ".mpg", ".mpeg", ".wmv", ".webm"})


def is_video_path(path: str | Path) -> bool:
    """True when the file name has a video suffix we open."""
    return Path(path).suffix.lower() in VIDEO_SUFFIXES


@dataclass(frozen=True)
class VideoEvidence:
    """An evidence video: what identifies the file and what its container says about it."""

    path: Path
    sha256: str
    size_bytes: int
    fps: float
    frame_count: int
    width: int
    height: int

    @property
    def duration_s(self) -> float:
        return self.frame_count / self.fps if self.fps > 0 else 0.0


def _capture(path: Path):  # type: ignore[no-untyped-def]
    import cv2

    capture = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    if not capture.isOpened():
        capture.release()
        capture = cv2.VideoCapture(str(path))
    return capture


def open_video(path: str | Path) -> VideoEvidence:
    """Hash the file and read its container facts; :class:`ImageLoadError` with the file and the reason when it
    is missing, empty, not a video, in a codec this installation cannot decode, or has no readable frame."""
    path = Path(path)
    if not path.exists():
        raise ImageLoadError(path, "does not exist", "check the path")
    open_regular_file(path).close()  # a FIFO or a device is refused before it is hashed
    size = path.stat().st_size
    if size == 0:
        raise ImageLoadError(path, "is empty (0 bytes)", "use the original export of the recording")
    sha = sha256_file(path)
    capture = _capture(path)
    try:
        if not capture.isOpened():
            raise ImageLoadError(path, "cannot be opened as a video (unknown container or codec)",
                                 "convert it with ffmpeg to MP4 (H.264) or AVI (MJPEG), keeping the original")
        ok, frame = capture.read()
        if not ok or frame is None:
            raise ImageLoadError(path, "has no decodable frame (truncated, corrupt, or a codec not supported here)",
                                 "convert it with ffmpeg to MP4 (H.264) or AVI (MJPEG), keeping the original")
        import cv2

        fps = float(capture.get(cv2.CAP_PROP_FPS) or 0.0)
        count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        return VideoEvidence(path=path, sha256=sha, size_bytes=size, fps=fps if fps > 0 else 25.0,
                             frame_count=max(count, 1), width=int(frame.shape[1]), height=int(frame.shape[0]))
    finally:
        capture.release()


@dataclass(frozen=True)
class VideoFrame:
    """One decoded frame: its index and time in the video, and the pixels as a probe image. ``image.sha256``
    is the SHA-256 of the decoded RGB pixels (the file's own hash is the video's)."""

    index: int
    time_s: float
    image: LoadedImage


def iter_frames(video: VideoEvidence, stride: int = 5, start_s: float = 0.0, end_s: float | None = None,
                max_frames: int = 2000, should_cancel: ShouldCancel = None) -> Iterator[VideoFrame]:
    """Every ``stride``-th frame between ``start_s`` and ``end_s`` (at most ``max_frames``), decoded one at a
    time. A file that ends early (truncated) simply stops; decoding errors after the first frame end the
    sampling there."""
    import cv2

    if stride < 1:
        raise ValueError(f"stride must be >= 1, got {stride}")
    capture = _capture(video.path)
    try:
        first = int(round(start_s * video.fps))
        if first > 0:
            capture.set(cv2.CAP_PROP_POS_FRAMES, first)
        last = None if end_s is None else int(round(end_s * video.fps))
        index, emitted = first, 0
        while emitted < max_frames and (last is None or index <= last):
            check_cancel(should_cancel, "video sampling cancelled by the user")
            if (index - first) % stride == 0:
                ok, frame = capture.read()
                if not ok or frame is None:
                    return
                rgb = np.ascontiguousarray(frame[:, :, ::-1])
                image = LoadedImage(path=video.path, pixels=rgb, sha256=hashlib.sha256(rgb.tobytes()).hexdigest(),
                                    size_bytes=int(rgb.nbytes), format="video-frame", original_mode="RGB",
                                    exif_orientation=1)
                yield VideoFrame(index=index, time_s=index / video.fps, image=image)
                emitted += 1
            elif not capture.grab():
                return
            index += 1
    finally:
        capture.release()


# -- tracks -----------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TrackFace:
    """A face of a track on one frame, with its quality score."""

    frame_index: int
    time_s: float
    face: FaceDetection
    quality: float
    #: SHA-256 of the frame's decoded pixels: a frame decoded again must hash the same.
    frame_sha256: str = ""
    #: A small picture of the face (uint8, at most :data:`THUMBNAIL_PX` high) for filmstrips; not compared.
    thumbnail: np.ndarray | None = field(default=None, compare=False, repr=False)
    #: The recognizer's template of the face as sampled (for linking by appearance); not compared.
    template: np.ndarray | None = field(default=None, compare=False, repr=False)


@dataclass
class Track:
    """One person followed across frames (faces in frame order)."""

    id: int
    faces: list[TrackFace] = field(default_factory=list)

    @property
    def last(self) -> TrackFace:
        return self.faces[-1]

    def appearance(self, recent: int = 5) -> np.ndarray | None:
        """Mean template of the track's last ``recent`` faces that have one (what it looks like now)."""
        templates = [f.template for f in self.faces[-recent:] if f.template is not None]
        return np.mean(templates, axis=0) if templates else None

    def best(self, k: int) -> list[TrackFace]:
        """The ``k`` faces of highest quality, in frame order."""
        chosen = sorted(self.faces, key=lambda f: -f.quality)[:k]
        return sorted(chosen, key=lambda f: f.frame_index)


def box_iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two ``[x1, y1, x2, y2]`` boxes.

    >>> box_iou(np.array([0, 0, 10, 10]), np.array([5, 0, 15, 10]))
    0.3333333333333333
    """
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


def face_quality(pixels: np.ndarray, face: FaceDetection) -> float:
    """How much a face can tell: its width (pixels carry identity), its sharpness (variance of the Laplacian of
    the face region, relative) and the detector's confidence; in [0, inf), higher is better."""
    import cv2

    x1, y1, x2, y2 = (int(round(v)) for v in face.box)
    h, w = pixels.shape[:2]
    region = pixels[max(0, y1):min(h, y2), max(0, x1):min(w, x2)]
    if region.size == 0:
        return 0.0
    grey = cv2.cvtColor(np.ascontiguousarray(region), cv2.COLOR_RGB2GRAY).astype(np.float32)
    sharpness = float(cv2.Laplacian(grey, cv2.CV_32F).var())
    return float(face.width_px * np.log1p(sharpness) * face.score)


def link_affinity(a: FaceDetection, b: FaceDetection, min_iou: float = 0.2, max_shift: float = 1.5) -> float:
    """How likely two boxes on nearby sampled frames are the same face: their IoU when it is at least
    ``min_iou``; otherwise, for a face that moved further than its own size between samples (a 20 px face
    walking across a frame), a small positive value when the centres are within ``max_shift`` face widths and
    the sizes within 1.5x of each other; 0 when neither.

    >>> link_affinity(_box(0, 0, 20), _box(2, 0, 20)) > 0.8, 0 < link_affinity(_box(0, 0, 20), _box(25, 0, 20)) < 0.2
    (True, True)
    >>> link_affinity(_box(0, 0, 20), _box(60, 0, 20)), link_affinity(_box(0, 0, 20), _box(5, 0, 60))
    (0.0, 0.0)
    """
    iou = box_iou(np.asarray(a.box), np.asarray(b.box))
    if iou >= min_iou:
        return iou
    wa, wb = float(a.box[2] - a.box[0]), float(b.box[2] - b.box[0])
    if min(wa, wb) <= 0 or max(wa, wb) / min(wa, wb) > 1.5:
        return 0.0
    ca = np.array([(a.box[0] + a.box[2]) / 2, (a.box[1] + a.box[3]) / 2])
    cb = np.array([(b.box[0] + b.box[2]) / 2, (b.box[1] + b.box[3]) / 2])
    shift = float(np.linalg.norm(ca - cb)) / ((wa + wb) / 2)
    return 0.0 if shift > max_shift else min_iou * 0.5 * (1.0 - shift / max_shift) + 1e-6


def _box(x: float, y: float, w: float) -> FaceDetection:
    return FaceDetection(box=np.array([x, y, x + w, y + w], np.float32), score=1.0, landmarks=np.zeros((5, 2)))


def face_thumbnail(pixels: np.ndarray, face: FaceDetection, size: int = THUMBNAIL_PX) -> np.ndarray:
    """The face box (enlarged 1.3x) of a frame at ``size`` px, for filmstrips."""
    import cv2

    cx, cy = (face.box[0] + face.box[2]) / 2, (face.box[1] + face.box[3]) / 2
    half = 0.65 * max(face.box[2] - face.box[0], face.box[3] - face.box[1], 1.0)
    h, w = pixels.shape[:2]
    x1, y1 = int(max(0, cx - half)), int(max(0, cy - half))
    x2, y2 = int(min(w, cx + half)), int(min(h, cy + half))
    region = pixels[y1:max(y2, y1 + 1), x1:max(x2, x1 + 1)]
    return cv2.resize(np.ascontiguousarray(region), (size, size), interpolation=cv2.INTER_NEAREST)


def template_similarity(a: np.ndarray, b: np.ndarray) -> float:
    """Correlation of two templates (eq. 3, :func:`~forensic_face.engine.fusion.correlation_similarity`, as the
    search compares them), in [-1, 1]."""
    import torch

    from forensic_face.engine.fusion import correlation_similarity

    return float(correlation_similarity(torch.as_tensor(a, dtype=torch.float32)[None],
                                        torch.as_tensor(b, dtype=torch.float32)[None])[0, 0])


def link_tracks(frames: Sequence[tuple[int, float, Sequence[FaceDetection], Sequence[float], str]],
                min_iou: float = 0.2, max_gap_frames: int = 30,
                thumbnails: Sequence[Sequence[np.ndarray | None]] | None = None,
                templates: Sequence[Sequence[np.ndarray | None]] | None = None,
                min_similarity: float = 0.2, similarity_weight: float = 0.5) -> list[Track]:
    """Greedy linking of detections into tracks: each face joins the open track (last seen at most
    ``max_gap_frames`` frames back) whose last face it matches best, otherwise starts a track. ``frames``:
    ``(frame index, time, faces, quality of each face, frame pixels' SHA-256)`` in frame order.

    The match is the box affinity (:func:`link_affinity`); with ``templates`` (the recognizer's template of each
    face) also the appearance: a face whose template correlates under ``min_similarity`` with the track's recent
    templates (:meth:`Track.appearance`) is not linked to it (two people crossing), and among the others
    ``similarity_weight`` x the correlation is added to the affinity."""
    tracks: list[Track] = []
    for n_frame, (index, time_s, faces, qualities, frame_sha) in enumerate(frames):
        frame_templates = templates[n_frame] if templates is not None else [None] * len(faces)
        taken: set[int] = set()
        pairs = []
        for f, face in enumerate(faces):
            for t, track in enumerate(tracks):
                if index - track.last.frame_index > max_gap_frames or track.last.frame_index == index:
                    continue
                affinity = link_affinity(face, track.last.face, min_iou)
                if affinity <= 0:
                    continue
                appearance = track.appearance()
                if frame_templates[f] is not None and appearance is not None:
                    similarity = template_similarity(frame_templates[f], appearance)
                    if similarity < min_similarity:
                        continue
                    affinity += similarity_weight * similarity
                pairs.append((affinity, f, t))
        assigned: dict[int, int] = {}
        for _, f, t in sorted(pairs, reverse=True):
            if f in assigned or t in taken:
                continue
            assigned[f] = t
            taken.add(t)
        for f, face in enumerate(faces):
            thumb = thumbnails[n_frame][f] if thumbnails is not None else None
            item = TrackFace(index, time_s, face, float(qualities[f]), frame_sha, thumb, frame_templates[f])
            if f in assigned:
                tracks[assigned[f]].faces.append(item)
            else:
                tracks.append(Track(id=len(tracks) + 1, faces=[item]))
    return tracks


def find_tracks(video: VideoEvidence, detect: Callable[[LoadedImage], Sequence[FaceDetection]], stride: int = 5,
                start_s: float = 0.0, end_s: float | None = None, max_frames: int = 2000,
                progress: Progress = None, should_cancel: ShouldCancel = None,
                embed: Callable[[LoadedImage, Sequence[FaceDetection]], np.ndarray] | None = None) -> list[Track]:
    """Detect faces on the sampled frames and link them into tracks (box overlap, and appearance when ``embed``
    gives each face's template, e.g. ``Engine.face_templates``), longest (then best) first.
    :class:`NoFaceDetected` when no sampled frame shows a face."""
    expected = max(1, min(max_frames, (video.frame_count - int(start_s * video.fps)) // stride + 1))
    observations, thumbnails, templates = [], [], []
    for n, frame in enumerate(iter_frames(video, stride, start_s, end_s, max_frames, should_cancel), start=1):
        faces = list(detect(frame.image))
        observations.append((frame.index, frame.time_s, faces, [face_quality(frame.image.pixels, f) for f in faces],
                             frame.image.sha256))
        thumbnails.append([face_thumbnail(frame.image.pixels, f) for f in faces])
        templates.append(list(embed(frame.image, faces)) if embed is not None and faces else [None] * len(faces))
        if progress is not None:
            progress(min(n, expected), expected, f"frame {frame.index} ({frame.time_s:.1f} s)")
    tracks = link_tracks(observations, max_gap_frames=3 * stride, thumbnails=thumbnails, templates=templates)
    if not tracks:
        raise NoFaceDetected(str(video.path), f"no face on {len(observations)} sampled frames (every {stride}th); "
                             "sample more densely (a smaller stride) or draw a box on a frame")
    tracks.sort(key=lambda t: (-len(t.faces), -max(f.quality for f in t.faces)))
    for k, track in enumerate(tracks, start=1):
        track.id = k
    return tracks


def follow_box(previous: np.ndarray, current: np.ndarray, box: np.ndarray, search_widths: float = 1.0
               ) -> tuple[np.ndarray, float]:
    """Where the face in ``box`` of frame ``previous`` went in frame ``current`` (both RGB ``(H,W,3)``): the
    best normalised cross-correlation of the face patch within ``search_widths`` face widths around it. Returns
    the moved box and the correlation in [-1, 1] (how alike the patches are).

    >>> rng = np.random.default_rng(0); a = rng.integers(0, 255, (80, 120, 3), dtype=np.uint8)
    >>> moved, score = follow_box(a, np.roll(a, 7, axis=1), np.array([40., 20., 70., 50.]))
    >>> moved.tolist(), round(score, 3)
    ([47.0, 20.0, 77.0, 50.0], 1.0)
    """
    import cv2

    h, w = previous.shape[:2]
    x1, y1, x2, y2 = (int(round(v)) for v in box)
    x1, y1, x2, y2 = max(0, x1), max(0, y1), min(w, x2), min(h, y2)
    if x2 - x1 < 4 or y2 - y1 < 4:
        return np.asarray(box, np.float32), -1.0
    grey_prev = cv2.cvtColor(np.ascontiguousarray(previous), cv2.COLOR_RGB2GRAY)
    grey_cur = cv2.cvtColor(np.ascontiguousarray(current), cv2.COLOR_RGB2GRAY)
    patch = grey_prev[y1:y2, x1:x2]
    margin = int(round(search_widths * (x2 - x1)))
    sx1, sy1 = max(0, x1 - margin), max(0, y1 - margin)
    sx2, sy2 = min(w, x2 + margin), min(h, y2 + margin)
    region = grey_cur[sy1:sy2, sx1:sx2]
    if region.shape[0] < patch.shape[0] or region.shape[1] < patch.shape[1]:
        return np.asarray(box, np.float32), -1.0
    response = cv2.matchTemplate(region, patch, cv2.TM_CCOEFF_NORMED)
    _, score, _, (mx, my) = cv2.minMaxLoc(response)
    dx, dy = sx1 + mx - x1, sy1 + my - y1
    return (np.asarray(box, np.float32) + np.array([dx, dy, dx, dy], np.float32)), float(score)


def track_from_box(video: VideoEvidence, frame_index: int, box: Sequence[float],
                   refine: Callable[[np.ndarray, Sequence[float]], FaceDetection],
                   detect: Callable[[LoadedImage], Sequence[FaceDetection]] | None = None, stride: int = 5,
                   max_frames: int = 400, min_correlation: float = 0.5, track_id: int = 1,
                   progress: Progress = None, should_cancel: ShouldCancel = None) -> Track:
    """A track started from a box the examiner drew on frame ``frame_index`` (for a face the detector missed):
    followed forward over every ``stride``-th frame, on each frame by the detected face that links to it
    (:func:`link_affinity`) or else by the face patch's best cross-correlation (:func:`follow_box`), until the
    face is lost (correlation under ``min_correlation``), the clip ends or ``max_frames`` frames were sampled.
    ``refine(pixels, box)`` makes the face of a box (``engine.detect.manual_face``: landmarks inside it)."""
    seed = frame_image(video, frame_index)
    face = refine(seed.pixels, box)
    previous = seed.pixels
    faces = [TrackFace(frame_index, frame_index / video.fps, face, face_quality(seed.pixels, face), seed.sha256,
                       face_thumbnail(seed.pixels, face))]
    expected = max(1, min(max_frames, (video.frame_count - frame_index - 1) // stride))
    for n, frame in enumerate(iter_frames(video, stride, (frame_index + stride) / video.fps, None, max_frames,
                                          should_cancel), start=1):
        pixels = frame.image.pixels
        last = faces[-1].face
        linked = [(link_affinity(f, last), f) for f in (detect(frame.image) if detect is not None else ())]
        linked = [(a, f) for a, f in linked if a > 0]
        if linked:
            face = max(linked, key=lambda af: af[0])[1]
        else:
            moved, correlation = follow_box(previous, pixels, np.asarray(last.box, np.float32))
            if correlation < min_correlation:
                break
            face = refine(pixels, moved.tolist())
        faces.append(TrackFace(frame.index, frame.time_s, face, face_quality(pixels, face), frame.image.sha256,
                               face_thumbnail(pixels, face)))
        previous = pixels
        if progress is not None:
            progress(min(n, expected), expected, f"following the drawn face: frame {frame.index}")
    return Track(id=track_id, faces=faces)


def frame_image(video: VideoEvidence, index: int, expected_sha256: str = "") -> LoadedImage:
    """Decode frame ``index`` again. With ``expected_sha256`` (the hash recorded when it was sampled) the pixels
    must hash the same: a container whose seeking is inexact is then decoded from the start instead, and a
    frame that still differs is an error, never silently another frame."""
    def matches(frame: VideoFrame | None) -> bool:
        return frame is not None and (not expected_sha256 or frame.image.sha256 == expected_sha256)

    frame = next(iter_frames(video, stride=1, start_s=index / video.fps, max_frames=1), None)
    if not matches(frame) and index > 0:
        # Inexact seeking (keyframe containers): read from the start, frames 0 and ``index``, without seeking.
        frame = next((f for f in iter_frames(video, stride=index, max_frames=2) if f.index == index), None)
    if matches(frame):
        return frame.image  # type: ignore[union-attr]
    raise ImageLoadError(video.path, f"frame {index} cannot be decoded again as it was sampled",
                         "the file may have changed or be truncated; check its SHA-256")


# -- fusion -----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FusedVideoResult:
    """A track searched with several of its frames: the frames used, the searches (one per frame for
    ``score-mean``, one over all frames for ``template-mean``) and the fused ranking (identity, score) best
    first."""

    video: VideoEvidence
    track_id: int
    frames: tuple[TrackFace, ...]
    results: tuple[SearchResult, ...]
    ranking: tuple[tuple[str, float], ...]
    fusion: str = "score-mean"

    def frame_sha256s(self) -> list[str]:
        """SHA-256 of each used frame's decoded pixels, as searched."""
        if self.fusion == "template-mean":
            return [v["sha256"] for v in self.results[0].provenance["views"]["views"]] if len(self.frames) > 1 \
                else [self.results[0].probe_sha256]
        return [r.probe_sha256 for r in self.results]

    def to_json(self, top: int = 20) -> dict[str, object]:
        return {
            "video": str(self.video.path), "sha256": self.video.sha256, "track": self.track_id,
            "fusion": self.fusion,
            # Exactly what each frame's search used (box, landmarks, quality weight), so it can be replayed.
            "frames": [{"index": f.frame_index, "time_s": round(f.time_s, 6), "quality": float(f.quality),
                        "frame_sha256": sha, "box": [float(v) for v in f.face.box],
                        "landmarks": np.asarray(f.face.landmarks, np.float64).tolist(),
                        "score": float(f.face.score), "manual": bool(f.face.manual)}
                       for f, sha in zip(self.frames, self.frame_sha256s())],
            "ranking": [{"rank": k, "identity": i, "score": round(s, 6)}
                        for k, (i, s) in enumerate(self.ranking[:top], start=1)],
        }


def fuse_rankings(results: Sequence[SearchResult], weights: Sequence[float] | None = None
                  ) -> tuple[tuple[str, float], ...]:
    """Each identity's weighted mean score over the frames' searches (every search ranks every identity),
    best first; ties break by identity.

    >>> from types import SimpleNamespace as R
    >>> fuse_rankings([R(ranking=(("a", 0.2), ("b", 0.4))), R(ranking=(("a", 0.6), ("b", 0.1)))], [1.0, 3.0])
    (('a', 0.5), ('b', 0.175))
    """
    if not results:
        raise ValueError("no frame results to fuse")
    w = np.ones(len(results)) if weights is None else np.asarray(weights, dtype=np.float64)
    if w.sum() <= 0:
        w = np.ones(len(results))
    totals: dict[str, float] = {}
    for weight, result in zip(w, results):
        for identity, score in result.ranking:
            totals[identity] = totals.get(identity, 0.0) + float(weight) * float(score)
    fused = {identity: total / float(w.sum()) for identity, total in totals.items()}
    return tuple(sorted(((i, round(s, 12)) for i, s in fused.items()), key=lambda kv: (-kv[1], kv[0])))


def search_track(engine: object, video: VideoEvidence, track: Track, gallery: object, num_frames: int | None = None,
                 progress: Progress = None, should_cancel: ShouldCancel = None,
                 fusion: str | None = None) -> FusedVideoResult:
    """Search the ``num_frames`` best faces of ``track`` with the full method and fuse them, quality-weighted,
    by ``fusion`` (one of :data:`~forensic_face.engine.config.VIDEO_FUSIONS`); both default to the engine's
    configuration (``video_frames``, ``video_fusion``)."""
    config: EngineConfig = engine.config  # type: ignore[attr-defined]
    num_frames = num_frames or config.video_frames
    fusion = fusion or config.video_fusion
    if fusion not in VIDEO_FUSIONS:
        raise ConfigError(f"video fusion must be one of {', '.join(VIDEO_FUSIONS)}, got {fusion!r}")
    chosen = track.best(num_frames)
    qualities = [f.quality for f in chosen]
    images = []
    for item in chosen:
        check_cancel(should_cancel)
        images.append(frame_image(video, item.frame_index, item.frame_sha256))
    if fusion == "template-mean":
        result = engine.search_views([(image, item.face) for image, item in zip(images, chosen)],  # type: ignore[attr-defined]
                                     gallery, weights=qualities, progress=progress, should_cancel=should_cancel)
        return FusedVideoResult(video=video, track_id=track.id, frames=tuple(chosen), results=(result,),
                                ranking=result.ranking, fusion=fusion)
    results = []
    for n, (item, image) in enumerate(zip(chosen, images), start=1):

        def frame_progress(done: int, total: int, message: str, n: int = n, item: TrackFace = item) -> None:
            if progress is not None:
                progress(done, total, f"frame {n}/{len(chosen)} (#{item.frame_index}): {message}")

        results.append(engine.search(image, gallery, face=item.face, progress=frame_progress,  # type: ignore[attr-defined]
                                     should_cancel=should_cancel))
    return FusedVideoResult(video=video, track_id=track.id, frames=tuple(chosen), results=tuple(results),
                            ranking=fuse_rankings(results, qualities), fusion=fusion)


def fused_search_result(fused: FusedVideoResult, gallery: Gallery, top_k: int) -> SearchResult:
    """The fused video search as a :class:`SearchResult` that the window, the case store and the report show like
    any other: the probe is the VIDEO file (its path and SHA-256), its face and crop those of the best frame; the
    ranking is the fused one; each candidate keeps the images of its search on the best frame that listed it;
    ``provenance["video"]`` names the track, the frames used (index, time, quality, pixel SHA-256) and the
    fusion. Scores are fused over frames: no calibration applies to them (``calibration_for_result``)."""
    best = int(np.argmax([f.quality for f in fused.frames]))
    # score-mean: one search per frame, best frame first; template-mean: one search, whose probe is the best frame.
    order = [0] if fused.fusion == "template-mean" else sorted(range(len(fused.results)),
                                                                key=lambda k: -fused.frames[k].quality)
    by_identity: dict[str, object] = {}
    for k in order:
        for cand in fused.results[k].candidates:
            by_identity.setdefault(cand.identity, cand)
    entries = {e.identity: e for e in gallery.entries}
    base = fused.results[order[0]]
    fallback_hypothesis = base.candidates[0].best_probe_hypothesis if base.candidates else None
    candidates = []
    for rank, (identity, score) in enumerate(fused.ranking[:top_k], start=1):
        cand = by_identity.get(identity)
        if cand is not None:
            candidates.append(dataclasses.replace(cand, rank=rank, score=float(score)))  # type: ignore[arg-type]
        elif identity in entries and fallback_hypothesis is not None:
            entry = entries[identity]
            candidates.append(Candidate(rank=rank, identity=identity, image_path=entry.image_path,
                                        gallery_sha256=entry.sha256, score=float(score), per_scale_scores={},
                                        best_probe_hypothesis=fallback_hypothesis, best_gallery_hypotheses=()))
    provenance = dict(base.provenance)
    provenance["video"] = {**fused.to_json(top=0), "frame_count": fused.video.frame_count, "fps": fused.video.fps}
    return SearchResult(probe_path=fused.video.path, probe_sha256=fused.video.sha256,
                        probe_face=fused.frames[best].face, probe_crop=base.probe_crop, candidates=tuple(candidates),
                        ranking=fused.ranking, probe_hypotheses=base.probe_hypotheses, provenance=provenance)


__all__ = ["FusedVideoResult", "Track", "TrackFace", "VideoEvidence", "VideoFrame", "box_iou", "face_quality",
           "find_tracks", "follow_box", "frame_image", "fuse_rankings", "fused_search_result", "is_video_path", "iter_frames", "link_tracks", "template_similarity",
           "open_video", "search_track", "track_from_box"]
