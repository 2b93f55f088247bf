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
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from forensic_face.engine.callbacks import Progress, ShouldCancel, check_cancel
from forensic_face.engine.config import VIDEO_FUSIONS
from forensic_face.engine.errors import ConfigError, ImageLoadError, NoFaceDetected
from forensic_face.engine.imaging import LoadedImage, open_regular_file, sha256_file
from forensic_face.engine.results import Candidate, FaceDetection, Gallery, SearchResult

if TYPE_CHECKING:  # the engine calls into this module; only the type is needed here
    from forensic_face.engine.search import Engine

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
                max_frames: int = 2000, should_cancel: ShouldCancel = None,
                only: Collection[int] | None = None) -> Iterator[VideoFrame]:
    """Every ``stride``-th frame between ``start_s`` and ``end_s`` (at most ``max_frames``), decoded one at a
    time; with ``only``, the frames of those indices instead (read in order from ``start_s`` as the sampling
    read them, not seeked one by one: seeking is inexact in some containers). A file that ends early (truncated)
    simply stops; decoding errors after the first frame end the sampling there."""
    import cv2

    if stride < 1:
        raise ValueError(f"stride must be >= 1, got {stride}")
    capture = _capture(video.path)
    try:
        first = int(round(start_s * video.fps))
        if first > 0:
            capture.set(cv2.CAP_PROP_POS_FRAMES, first)
        last = None if end_s is None else int(round(end_s * video.fps))
        wanted = frozenset(only) if only is not None else frozenset()
        if only is not None:  # stop after the last frame wanted
            last = max(wanted, default=first - 1) if last is None else min(last, max(wanted, default=first - 1))
        index, emitted = first, 0
        while emitted < max_frames and (last is None or index <= last):
            check_cancel(should_cancel, "video sampling cancelled by the user")
            if (index in wanted) if only is not None else (index - first) % stride == 0:
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


@dataclass(frozen=True)
class LinkGates:
    """When a face may continue a track, and how well it does. The face is compared with the track's box
    predicted for its frame (:func:`predict_box`): its centre must lie within a distance of the prediction and
    its width within a ratio of the predicted width. Both gates widen with the frames elapsed since the track's
    last face (the person moves and turns between samples), more for a track of one face, whose motion is not
    known yet: a face walking towards the camera may grow several-fold between two samples, and one whose motion
    is known may still skip a missed sample or two. Per frame, so that the same gates hold whatever the stride.
    """

    #: Centre distance from the prediction, in predicted face widths: at no elapsed frame, per elapsed frame
    #: with a known motion, per elapsed frame without one, and never more than ``max_distance``.
    distance: float = 0.5
    distance_per_frame: float = 0.1
    distance_per_frame_unknown_motion: float = 0.3
    max_distance: float = 3.0
    #: |log(width / predicted width)|, likewise (log 1.25 at once; 1.6x after 5 frames with known motion, 3x
    #: without; never more than 4x).
    log_scale: float = 0.22
    log_scale_per_frame: float = 0.05
    log_scale_per_frame_unknown_motion: float = 0.18
    max_log_scale: float = 1.39
    #: Both gates also widen by this fraction of the predicted motion (in widths, and in log-width): a velocity
    #: measured from two faces is the less certain the larger it is.
    motion_uncertainty: float = 0.5
    #: Appearance: a face whose template correlates less than this with the track's recent templates is another
    #: person (two people crossing); among the others, this weight x the correlation adds to the box score.
    min_similarity: float = 0.2
    similarity_weight: float = 0.5


def predict_box(faces: Sequence[TrackFace], frame_index: int) -> np.ndarray:
    """Where the face of a track (``faces`` in the order it was followed, forwards or backwards) is expected on
    frame ``frame_index``: its last box moved at constant velocity in centre and in log-width, from its last two
    faces (a face walking towards the camera grows geometrically); the last box itself for a track of one face.

    >>> predict_box([_track_face(0, _box(10, 10, 10)), _track_face(5, _box(20, 10, 20))], 10).tolist()
    [25.0, 5.0, 65.0, 45.0]
    """
    last = np.asarray(faces[-1].face.box, np.float64)
    if len(faces) < 2 or faces[-1].frame_index == faces[-2].frame_index:
        return last
    before = np.asarray(faces[-2].face.box, np.float64)
    elapsed = (frame_index - faces[-1].frame_index) / (faces[-1].frame_index - faces[-2].frame_index)
    centre, before_centre = (last[:2] + last[2:]) / 2, (before[:2] + before[2:]) / 2
    size, before_size = np.maximum(last[2:] - last[:2], 1e-6), np.maximum(before[2:] - before[:2], 1e-6)
    centre = centre + elapsed * (centre - before_centre)
    size = size * np.exp(elapsed * np.log(size / before_size))
    return np.concatenate([centre - size / 2, centre + size / 2])


def link_score(faces: Sequence[TrackFace], face: FaceDetection, frame_index: int,
               gates: LinkGates = LinkGates()) -> float:
    """How well ``face`` on frame ``frame_index`` continues a track (its ``faces`` in the order followed), against
    the track's predicted box (:func:`predict_box`): 0 outside the gates of :class:`LinkGates`, else in (0, 2],
    the closer in place and size, the higher.

    >>> track = [_track_face(0, _box(0, 0, 20))]
    >>> link_score(track, _box(2, 0, 20), 5) > 1.5, link_score(track, _box(0, 0, 50), 5) > 0
    (True, True)
    >>> link_score(track, _box(70, 0, 20), 5), link_score(track, _box(0, 0, 70), 5)
    (0.0, 0.0)
    """
    predicted = predict_box(faces, frame_index)
    last = np.asarray(faces[-1].face.box, np.float64)
    box = np.asarray(face.box, np.float64)
    elapsed = abs(frame_index - faces[-1].frame_index)
    motion_known = len(faces) > 1
    distance_rate = gates.distance_per_frame if motion_known else gates.distance_per_frame_unknown_motion
    scale_rate = gates.log_scale_per_frame if motion_known else gates.log_scale_per_frame_unknown_motion
    predicted_width = max(float(predicted[2] - predicted[0]), 1e-6)
    width = float(box[2] - box[0])
    if width <= 0:
        return 0.0

    def widths_apart(a: np.ndarray, b: np.ndarray) -> float:
        return float(np.linalg.norm((a[:2] + a[2:]) / 2 - (b[:2] + b[2:]) / 2)) / predicted_width

    moved = widths_apart(predicted, last)
    grown = abs(float(np.log(predicted_width / max(float(last[2] - last[0]), 1e-6))))
    max_distance = min(gates.max_distance,
                       gates.distance + distance_rate * elapsed + gates.motion_uncertainty * moved)
    max_log_scale = min(gates.max_log_scale,
                        gates.log_scale + scale_rate * elapsed + gates.motion_uncertainty * grown)
    distance = widths_apart(box, predicted)
    log_scale = abs(float(np.log(width / predicted_width)))
    if distance > max_distance or log_scale > max_log_scale:
        return 0.0
    return (1.0 - distance / max_distance) + (1.0 - log_scale / max_log_scale) + 1e-6


def _box(x: float, y: float, w: float) -> FaceDetection:
    return FaceDetection(box=np.array([x, y, x + w, y + w], np.float32), score=1.0, landmarks=np.zeros((5, 2)))


def _track_face(frame_index: int, face: FaceDetection) -> TrackFace:
    return TrackFace(frame_index, 0.0, face, 1.0)


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


Observation = tuple[int, float, Sequence[FaceDetection], Sequence[float], str]


def link_tracks(frames: Sequence[Observation], max_gap_frames: int = 30,
                thumbnails: Sequence[Sequence[np.ndarray | None]] | None = None,
                templates: Sequence[Sequence[np.ndarray | None]] | None = None,
                gates: LinkGates = LinkGates()) -> list[Track]:
    """Greedy linking of detections into tracks: each face joins the open track (last seen at most
    ``max_gap_frames`` frames back: a track survives missed samples) it continues best, otherwise starts a track.
    ``frames``: ``(frame index, time, faces, quality of each face, frame pixels' SHA-256)`` in frame order.

    A face continues a track by :func:`link_score` against the track's predicted box (:func:`predict_box`), and,
    with ``templates`` (the recognizer's template of each face), by appearance: a face whose template correlates
    under ``gates.min_similarity`` with the track's recent templates (:meth:`Track.appearance`) is not linked to
    it (two people crossing), and among the others ``gates.similarity_weight`` x the correlation is added."""
    tracks: list[Track] = []
    for n_frame, (index, time_s, faces, qualities, frame_sha) in enumerate(frames):
        frame_templates = templates[n_frame] if templates is not None else [None] * len(faces)
        pairs = []
        for t, track in enumerate(tracks):
            elapsed = index - track.last.frame_index
            if elapsed > max_gap_frames or elapsed <= 0:
                continue
            appearance = track.appearance()
            for f, face in enumerate(faces):
                score = link_score(track.faces, face, index, gates)
                if score <= 0:
                    continue
                if frame_templates[f] is not None and appearance is not None:
                    similarity = template_similarity(frame_templates[f], appearance)
                    if similarity < gates.min_similarity:
                        continue
                    score += gates.similarity_weight * similarity
                pairs.append((score, f, t))
        assigned: dict[int, int] = {}
        taken: set[int] = set()
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


def dense_frame_indices(tracks: Sequence[Track], sampled: Collection[int], stride: int, first_index: int,
                        last_index: int, min_track_faces: int = 3, max_frames: int = 240) -> list[int]:
    """Frames to detect on besides the sampled ones, where a track is thin (fewer than ``min_track_faces``
    faces: a face that moved or grew too fast between samples to be linked, or was seen briefly): every
    ``stride // 2``-th frame (every frame for a stride under 4) from a stride before the track's first face to a
    stride after its last, within the sampled frames ``first_index`` to ``last_index``; at most ``max_frames`` in
    all, the thinnest tracks first.

    >>> dense_frame_indices([Track(1, [_track_face(10, _box(0, 0, 9))])], {0, 5, 10, 15, 20}, 5, 0, 30)
    [6, 8, 12, 14]
    """
    step = max(1, stride // 2) if stride >= 4 else 1
    wanted: list[int] = []
    seen = set(sampled)
    for track in sorted((t for t in tracks if len(t.faces) < min_track_faces), key=lambda t: len(t.faces)):
        first, last = track.faces[0].frame_index, track.last.frame_index
        for index in range(max(first_index, first - stride + 1), min(last_index, last + stride - 1) + 1):
            if index % step == 0 and index not in seen and len(wanted) < max_frames:
                wanted.append(index)
                seen.add(index)
    return sorted(wanted)


def find_tracks(video: VideoEvidence, detect: Callable[[LoadedImage], Sequence[FaceDetection]], stride: int = 5,
                start_s: float = 0.0, end_s: float | None = None, max_frames: int = 2000,
                progress: Progress = None, should_cancel: ShouldCancel = None,
                embed: Callable[[LoadedImage, Sequence[FaceDetection]], np.ndarray] | None = None,
                max_missed_samples: int = 2, min_track_faces: int = 3, max_dense_frames: int = 240,
                gates: LinkGates = LinkGates()) -> list[Track]:
    """Detect faces on the sampled frames and link them into tracks (:func:`link_tracks`: predicted box, and
    appearance when ``embed`` gives each face's template, e.g. ``Engine.face_templates``); a track survives
    ``max_missed_samples`` samples without its face. Where a track has fewer than ``min_track_faces`` faces the
    frames around it are sampled more densely (:func:`dense_frame_indices`, at most ``max_dense_frames``) and all
    faces linked again. Tracks are listed longest (then best) first. :class:`NoFaceDetected` when no sampled
    frame shows a face."""
    expected = max(1, min(max_frames, (video.frame_count - int(start_s * video.fps)) // stride + 1))
    observed: dict[int, tuple[Observation, list[np.ndarray | None], list[np.ndarray | None]]] = {}

    def observe(frames: Iterable[VideoFrame], done: int, total: int, what: str) -> None:
        for n, frame in enumerate(frames, start=done + 1):
            faces = list(detect(frame.image))
            observed[frame.index] = (
                (frame.index, frame.time_s, faces, [face_quality(frame.image.pixels, f) for f in faces],
                 frame.image.sha256),
                [face_thumbnail(frame.image.pixels, f) for f in faces],
                list(embed(frame.image, faces)) if embed is not None and faces else [None] * len(faces))
            if progress is not None:
                progress(min(n, total), total, f"{what} {frame.index} ({frame.time_s:.1f} s)")

    def link() -> list[Track]:
        ordered = [observed[i] for i in sorted(observed)]
        return link_tracks([o for o, _, _ in ordered], max_gap_frames=(max_missed_samples + 1) * stride,
                           thumbnails=[t for _, t, _ in ordered], templates=[e for _, _, e in ordered], gates=gates)

    observe(iter_frames(video, stride, start_s, end_s, max_frames, should_cancel), 0, expected, "frame")
    tracks = link()
    if not tracks:
        raise NoFaceDetected(str(video.path), f"no face on {len(observed)} sampled frames (every {stride}th); "
                             "sample more densely (a smaller stride) or draw a box on a frame")
    dense = dense_frame_indices(tracks, observed.keys(), stride, min(observed), max(observed), min_track_faces,
                                max_dense_frames)
    if dense:
        observe(iter_frames(video, 1, start_s, end_s, should_cancel=should_cancel, only=dense), len(observed),
                len(observed) + len(dense), "thin track: frame")
        tracks = link()
    tracks.sort(key=lambda t: (-len(t.faces), -max(f.quality for f in t.faces)))
    for k, track in enumerate(tracks, start=1):
        track.id = k
    return tracks


def follow_box(previous: np.ndarray, current: np.ndarray, box: np.ndarray, search_widths: float = 1.0,
               around: np.ndarray | None = None) -> tuple[np.ndarray, float]:
    """Where the face in ``box`` of frame ``previous`` went in frame ``current`` (both RGB ``(H,W,3)``): the
    best normalised cross-correlation of the face patch within ``search_widths`` face widths around the box (or
    around ``around``, where the face is expected). Returns the moved box and the correlation in [-1, 1] (how
    alike the patches are).

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
    # The search window is centred where the face is expected, the patch's own size plus the margin around it.
    cx, cy = ((x1 + x2) / 2, (y1 + y2) / 2) if around is None else ((around[0] + around[2]) / 2,
                                                                    (around[1] + around[3]) / 2)
    margin = int(round(search_widths * (x2 - x1)))
    half_w, half_h = (x2 - x1) / 2 + margin, (y2 - y1) / 2 + margin
    sx1, sy1 = max(0, int(round(cx - half_w))), max(0, int(round(cy - half_h)))
    sx2, sy2 = min(w, int(round(cx + half_w))), min(h, int(round(cy + half_h)))
    region = grey_cur[sy1:sy2, sx1:sx2]
    if region.shape[0] < patch.shape[0] or region.shape[1] < patch.shape[1]:
        return np.asarray(box, np.float32), -1.0
    response = cv2.matchTemplate(region, patch, cv2.TM_CCOEFF_NORMED)
    _, score, _, (mx, my) = cv2.minMaxLoc(response)
    dx, dy = sx1 + mx - x1, sy1 + my - y1
    return (np.asarray(box, np.float32) + np.array([dx, dy, dx, dy], np.float32)), float(score)


def follow_face(start: Sequence[TrackFace], frames: Iterable[VideoFrame], first_pixels: np.ndarray,
                refine: Callable[[np.ndarray, Sequence[float]], FaceDetection],
                detect: Callable[[LoadedImage], Sequence[FaceDetection]] | None = None,
                min_correlation: float = 0.5, gates: LinkGates = LinkGates(),
                on_frame: Callable[[VideoFrame], None] | None = None) -> list[TrackFace]:
    """Follow a face from ``start`` (its faces so far, in the order followed, the last on the frame whose pixels
    are ``first_pixels``) over ``frames`` (forwards or backwards in time): on each frame by the detected face that
    continues it best (:func:`link_score` against :func:`predict_box`), or else by the best cross-correlation of
    its last patch around the predicted box (:func:`follow_box`), at the predicted size; until the correlation falls under
    ``min_correlation`` (the face left or was hidden). Returns the faces found, in the order followed."""
    faces = list(start)
    previous = first_pixels
    for frame in frames:
        if on_frame is not None:
            on_frame(frame)
        pixels = frame.image.pixels
        scored = [(link_score(faces, f, frame.index, gates), f)
                  for f in (detect(frame.image) if detect is not None else ())]
        scored = [(score, f) for score, f in scored if score > 0]
        if scored:
            face = max(scored, key=lambda sf: sf[0])[1]
        else:
            predicted = predict_box(faces, frame.index)
            moved, correlation = follow_box(previous, pixels, np.asarray(faces[-1].face.box, np.float32),
                                            around=predicted)
            if correlation < min_correlation:
                break
            # The patch says where the face went; its size goes on changing as predicted (the patch is matched at
            # its last size), so a face coming nearer keeps growing while no detection is linked.
            centre, half = (moved[:2] + moved[2:]) / 2, (predicted[2:] - predicted[:2]) / 2
            face = refine(pixels, np.concatenate([centre - half, centre + half]).tolist())
        faces.append(TrackFace(frame.index, frame.time_s, face, face_quality(pixels, face), frame.image.sha256,
                               face_thumbnail(pixels, face)))
        previous = pixels
    return faces[len(start):]


def _frames_backwards(video: VideoEvidence, frame_index: int, stride: int, max_frames: int,
                      should_cancel: ShouldCancel, chunk: int = 16) -> Iterator[VideoFrame]:
    """Every ``stride``-th frame before ``frame_index``, nearest first, decoded ``chunk`` frames at a time
    (memory stays bounded), at most ``max_frames``."""
    emitted = 0
    end = frame_index - stride
    while end >= 0 and emitted < max_frames:
        first = max(end - (chunk - 1) * stride, end % stride)
        decoded = list(iter_frames(video, stride, first / video.fps, end / video.fps, chunk, should_cancel))
        for frame in reversed(decoded):
            if emitted >= max_frames:
                return
            yield frame
            emitted += 1
        if not decoded:
            return
        end = first - stride


def track_from_box(video: VideoEvidence, frame_index: int, box: Sequence[float],
                   refine: Callable[[np.ndarray, Sequence[float]], FaceDetection],
                   detect: Callable[[LoadedImage], Sequence[FaceDetection]] | None = None, stride: int = 5,
                   max_frames: int = 400, min_correlation: float = 0.5, track_id: int = 1,
                   progress: Progress = None, should_cancel: ShouldCancel = None,
                   gates: LinkGates = LinkGates()) -> Track:
    """A track started from a box the examiner drew on frame ``frame_index`` (for a face the detector missed):
    followed backwards and forwards over every ``stride``-th frame by :func:`follow_face` (the detected face that
    continues it, else its patch), each way until the face is lost, the clip ends or ``max_frames`` frames were
    sampled; so a box drawn on any frame of a person's appearance gives the whole appearance. ``refine(pixels,
    box)`` makes the face of a box (``engine.detect.manual_face``: landmarks inside it)."""
    seed = frame_image(video, frame_index)
    face = refine(seed.pixels, box)
    drawn = TrackFace(frame_index, frame_index / video.fps, face, face_quality(seed.pixels, face), seed.sha256,
                      face_thumbnail(seed.pixels, face))
    expected = max(1, min(max_frames, (video.frame_count - frame_index - 1) // stride)
                   + min(max_frames, frame_index // stride))
    done = 0

    def step(frame: VideoFrame) -> None:
        nonlocal done
        done += 1
        if progress is not None:
            progress(min(done, expected), expected, f"following the drawn face: frame {frame.index}")

    backwards = follow_face([drawn], _frames_backwards(video, frame_index, stride, max_frames, should_cancel),
                            seed.pixels, refine, detect, min_correlation, gates, step)
    forwards = follow_face([drawn], iter_frames(video, stride, (frame_index + stride) / video.fps, None, max_frames,
                                                should_cancel), seed.pixels, refine, detect, min_correlation, gates,
                           step)
    return Track(id=track_id, faces=[*reversed(backwards), drawn, *forwards])


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
                        "frame_sha256": sha, **f.face.to_json()}
                       for f, sha in zip(self.frames, self.frame_sha256s())],
            "ranking": [{"rank": k, "identity": i, "score": round(s, 6)}
                        for k, (i, s) in enumerate(self.ranking[:top], start=1)],
        }


def frames_searched_text(num_frames: int) -> str:
    """How many frames a video search used, in words that never speak of fusion where one frame was searched
    (a short track, or ``--frames 1``).

    >>> frames_searched_text(1), frames_searched_text(3)
    ('1 video frame searched (none fused with it)', '3 video frames searched and fused')
    """
    return ("1 video frame searched (none fused with it)" if num_frames == 1
            else f"{num_frames} video frames searched and fused")


def video_no_calibration_reason(num_frames: int) -> str:
    """Why a video search has no likelihood ratios, naming the frames it used."""
    return f"a video track's scores ({frames_searched_text(num_frames)}) have no calibration yet"


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


def search_track(engine: Engine, video: VideoEvidence, track: Track, gallery: Gallery, num_frames: int | None = None,
                 progress: Progress = None, should_cancel: ShouldCancel = None,
                 fusion: str | None = None) -> FusedVideoResult:
    """Search the ``num_frames`` best faces of ``track`` with the full method and fuse them, quality-weighted,
    by ``fusion`` (one of :data:`~forensic_face.engine.config.VIDEO_FUSIONS`); both default to the engine's
    configuration (``video_frames``, ``video_fusion``)."""
    config = engine.config
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
        result = engine.search_views([(image, item.face) for image, item in zip(images, chosen)],
                                     gallery, weights=qualities, progress=progress, should_cancel=should_cancel)
        return FusedVideoResult(video=video, track_id=track.id, frames=tuple(chosen), results=(result,),
                                ranking=result.ranking, fusion=fusion)
    results = []
    for n, (item, image) in enumerate(zip(chosen, images), start=1):

        def frame_progress(done: int, total: int, message: str, n: int = n, item: TrackFace = item) -> None:
            if progress is not None:
                progress(done, total, f"frame {n}/{len(chosen)} (#{item.frame_index}): {message}")

        results.append(engine.search(image, gallery, face=item.face, progress=frame_progress,
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


__all__ = ["FusedVideoResult", "LinkGates", "Track", "TrackFace", "VideoEvidence", "VideoFrame", "box_iou",
           "dense_frame_indices", "face_quality", "find_tracks", "frames_searched_text", "follow_box", "follow_face", "frame_image",
           "fuse_rankings", "fused_search_result", "is_video_path", "iter_frames", "link_score", "link_tracks",
           "open_video", "predict_box", "search_track", "template_similarity", "track_from_box",
           "video_no_calibration_reason"]
