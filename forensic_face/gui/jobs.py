"""The window's background jobs, as plain functions.

The worker (:mod:`forensic_face.gui.worker`) calls a job on its own thread as ``job(engine, progress,
should_cancel)``. Everything else a job needs (the gallery, the probe's image and face, the open case's store,
where to write a report...) is a keyword-only argument that the window binds with :func:`functools.partial` when
it starts the job, read from its state on the GUI thread at that moment. A job never touches the window or a
widget: it returns a value (a result dataclass, a probe record, a gallery) that the handler the window started
it with shows. The one exception is the provisional ranking of a search, handed over while the search goes on
through the ``show_provisional`` callback it is given (a signal's ``emit``, queued onto the GUI thread).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from forensic_face.calibration import calibration_for_result
from forensic_face.engine import (
    CancelCallback,
    Cancelled,
    EngineConfig,
    FaceDetection,
    ForensicFaceError,
    Gallery,
    GalleryEntry,
    ImageDetections,
    LoadedImage,
    ProgressCallback,
    SearchResult,
    load_image,
)
from forensic_face.gui.case_session import RestoredCase, restore_case
from forensic_face.gui.probe_records import ProbeRecord

log = logging.getLogger(__name__)

#: Every how many frames a video is sampled for tracks (detected, or started from a drawn box).
VIDEO_STRIDE = 5

#: Tracks of a video listed as probes (longest first); how many best frames a search fuses is a setting
#: (``EngineConfig.video_frames``).
MAX_VIDEO_TRACKS = 5

#: Probe crop size bins prepared by "Prepare gallery": 1.3x crops of faces about 15-31 px wide.
WARM_SIZE_BINS = (20, 24, 28, 32, 36, 40)

Box = tuple[float, float, float, float]


# ---------------------------------------------------------------------------------------------- outcomes
@dataclass(frozen=True)
class SearchOutcome:
    """One probe's search as the worker hands it back: where it goes, the result, and its case record."""

    index: int
    result: SearchResult | None
    warning: str
    search_id: int | None
    #: The probe's searches in the case, this one included (None: not recorded).
    history: Any = None


@dataclass(frozen=True)
class BatchOutcome:
    """A "search all probes" job: the searches done (all of them unless it was cancelled)."""

    searches: tuple[SearchOutcome, ...]
    total: int
    cancelled: bool


@dataclass(frozen=True)
class EngineStatus:
    """What the status bar shows about the engine; computed on the worker thread."""

    device: str
    model: str
    cache: str


@dataclass(frozen=True)
class JobResult:
    """What every job hands back: its value and the engine's status after it (None: the job used no engine)."""

    value: Any
    status: EngineStatus | None


def engine_status(engine: Any) -> EngineStatus:
    """Read the engine's device, models and cache state (may touch the disk: call it off the GUI thread)."""
    device = str(getattr(engine, "device", "?"))
    # The configured names: touching engine.recognizer here would load the model as a side effect.
    recognizer, upsampler = engine.config.recognizer, engine.config.upsampler
    cache = getattr(engine, "cache", None)
    try:
        cache_text = cache.describe() if cache is not None and hasattr(cache, "describe") else "template cache: n/a"
    except OSError as exc:
        cache_text = f"template cache unreadable ({exc.strerror or exc})"
    return EngineStatus(device=device, model=f"{recognizer} · {upsampler}", cache=cache_text)


def with_status(job: Callable[[Any, ProgressCallback, CancelCallback], Any]
                ) -> Callable[[Any, ProgressCallback, CancelCallback], JobResult]:
    """``job`` returning a :class:`JobResult`: its value with the engine's status read after it."""
    def task(engine: Any, progress: ProgressCallback, should_cancel: CancelCallback) -> JobResult:
        value = job(engine, progress, should_cancel)
        return JobResult(value=value, status=engine_status(engine) if engine is not None else None)

    return task


# ------------------------------------------------------------------------------------------------ probes
def frame_detections(path: Path, image: LoadedImage, faces: tuple[FaceDetection, ...]) -> ImageDetections:
    """The detections of one shown video frame: the faces a track has on it (none: the examiner draws one)."""
    return ImageDetections(source=str(path), sha256=image.sha256, width=image.width, height=image.height,
                           faces=faces, upsample_factor=1.0)


def video_track_record(path: Path, video: Any, track: Any) -> ProbeRecord:
    """The probe of one track: shown by its best frame, with that frame's face."""
    from forensic_face.engine import frame_image

    best = track.best(1)[0]
    image = frame_image(video, best.frame_index, best.frame_sha256)
    return ProbeRecord(path=path, image=image, video_track=(video, track), video_frame=best.frame_index,
                       detections=frame_detections(path, image, (best.face,)))


def drawn_track_text(track: Any) -> str:
    """What following a drawn face gave, counted as it is (one frame is one frame)."""
    first, last = track.faces[0].frame_index, track.last.frame_index
    if len(track.faces) == 1:
        return f"the drawn face was found on 1 sampled frame only (frame {first}): nothing to fuse it with"
    return f"the drawn face followed on {len(track.faces)} sampled frames (frames {first}–{last})"


def load_video_probes(engine: Any, progress: ProgressCallback, should_cancel: CancelCallback, *,
                      path: Path) -> list[ProbeRecord]:
    """A video becomes one probe per face track (``forensic_face.engine.video``): its image is the track's best
    frame and its face that frame's; a search of it fuses the track's best frames."""
    from forensic_face.engine import NoFaceDetected, find_tracks, frame_image, open_video

    record = ProbeRecord(path=path)
    try:
        video = open_video(path)
        tracks = find_tracks(video, lambda image: engine.detector.detect([image.pixels])[0], VIDEO_STRIDE,
                             progress=lambda d, t, m: progress(d, t, f"Following faces in {path.name}: {m}"),
                             should_cancel=should_cancel, embed=engine.face_templates)
    except Cancelled:
        raise
    except NoFaceDetected:
        # Not an error: the examiner scrubs to a frame and draws the face the detector missed.
        image = frame_image(video, 0)
        return [ProbeRecord(path=path, image=image, video_track=(video, None), video_frame=0,
                            detections=frame_detections(path, image, ()))]
    except ForensicFaceError as exc:
        record.error = str(exc)
        return [record]
    return [video_track_record(path, video, track) for track in tracks[:MAX_VIDEO_TRACKS]]


def load_probes(engine: Any, progress: ProgressCallback, should_cancel: CancelCallback, *,
                paths: list[Path]) -> list[ProbeRecord]:
    """Load each still (hashing its bytes) and detect its faces, or follow the faces of each video; per-file
    problems go into the record."""
    from forensic_face.engine import is_video_path

    records = []
    total = len(paths)
    for i, path in enumerate(paths):
        if should_cancel():
            raise Cancelled()
        if is_video_path(path):
            records.extend(load_video_probes(engine, progress, should_cancel, path=path))
            continue
        progress(i, total, f"Detecting faces in {path.name}")
        record = ProbeRecord(path=path)
        try:
            record.image = load_image(path)
            record.detections = engine.detect(record.image)
        except Cancelled:
            raise
        except ForensicFaceError as exc:
            record.error = str(exc)
        records.append(record)
    progress(total, total, "Faces detected")
    return records


def refine_drawn_box(engine: Any, _progress: ProgressCallback, _should_cancel: CancelCallback, *,
                     pixels: Any, box: Box) -> FaceDetection:
    """The face in a box drawn on a still: its landmarks found by the detector within the box."""
    from forensic_face.engine import manual_face

    return manual_face(pixels, box, engine.detector)


def track_drawn_face(engine: Any, progress: ProgressCallback, should_cancel: CancelCallback, *, path: Path,
                     video: Any, frame_index: int, box: Box, track_id: int) -> ProbeRecord:
    """A box drawn on a video frame starts a track there (``engine.video.track_from_box``), followed backwards
    and forwards by detections and by the face patch; the probe record of that track."""
    from forensic_face.engine import manual_face, track_from_box

    track = track_from_box(video, frame_index, box, lambda pixels, b: manual_face(pixels, b, engine.detector),
                           detect=lambda image: engine.detector.detect([image.pixels])[0],
                           stride=VIDEO_STRIDE, track_id=track_id, progress=progress, should_cancel=should_cancel)
    return video_track_record(path, video, track)


def decode_video_frame(_engine: Any, _progress: ProgressCallback, _should_cancel: CancelCallback, *, video: Any,
                       frame_index: int) -> LoadedImage:
    """Frame ``frame_index`` of a video probe (to show and draw on)."""
    from forensic_face.engine import frame_image

    return frame_image(video, frame_index)


# ------------------------------------------------------------------------------------------------ gallery
def enroll_gallery(engine: Any, progress: ProgressCallback, should_cancel: CancelCallback, *,
                   folder: Path) -> Gallery:
    """Enroll the gallery folder (detect and align each portrait)."""
    return engine.enroll(folder, progress=progress, should_cancel=should_cancel)


def warm_gallery(engine: Any, progress: ProgressCallback, should_cancel: CancelCallback, *,
                 entries: tuple[GalleryEntry, ...]) -> int:
    """Compute the gallery hypothesis templates a search of a small probe needs (kept in the template cache);
    returns how many portrait x size stacks were prepared."""
    return engine.warm_gallery(entries, WARM_SIZE_BINS, progress=progress,
                               should_cancel=should_cancel)


def render_gallery_hypothesis(engine: Any, _progress: ProgressCallback, _should_cancel: CancelCallback, *,
                              entry: GalleryEntry, label: str, target_px: Any) -> Any:
    """Re-create one gallery hypothesis image (a heatmap cell the result carries no image for)."""
    return engine.gallery_hypothesis_image(entry, label, target_px)


def read_provenance(engine: Any, _progress: ProgressCallback, _should_cancel: CancelCallback) -> dict[str, Any]:
    """The engine's versions, models and weights (the About box); builds the engine if it is not yet."""
    return engine.provenance()


# ------------------------------------------------------------------------------------------------- search
@dataclass(frozen=True)
class ProbeSearch:
    """One probe to search, as the window's record of it was when the job started."""

    #: The probe's row in the probe list (where the outcome is shown).
    index: int
    image: LoadedImage
    face: FaceDetection | None
    #: ``(VideoEvidence, Track)`` for a video track: its best frames are searched and fused. None: a still.
    video_track: Any = None


def record_in_case(store: Any | None, result: SearchResult, config: EngineConfig,
                   gallery: Gallery) -> tuple[str, int | None]:
    """Store a finished search in the open case ``store`` (None: no case); returns ``(warning or "", search id or
    None)``."""
    if store is None:
        return "", None
    try:
        search_id = store.record_search(result, config, gallery=gallery, calibration=calibration_for_result(result))
    except ForensicFaceError as exc:
        return f"The search finished but could not be recorded in the case: {exc}", None
    log.info("search recorded in %s as #%s", store.path, search_id)
    return "", search_id


def search_one(engine: Any, probe: ProbeSearch, gallery: Gallery, case_store: Any | None,
               progress: ProgressCallback, should_cancel: CancelCallback) -> SearchOutcome:
    """One probe's search, its gallery variants rendered for the views (one batch per degradation path) and
    recorded in the open case. A video track's best frames are searched and fused."""
    if probe.video_track is not None:
        from forensic_face.engine import fused_search_result, search_track

        video, track = probe.video_track
        fused = search_track(engine, video, track, gallery, progress=progress, should_cancel=should_cancel)
        result = fused_search_result(fused, gallery, engine.config.top_k)
    else:
        result = engine.search(probe.image, gallery, face=probe.face, progress=progress,
                               should_cancel=should_cancel)
    result = engine.with_gallery_images(result, gallery)
    warning, search_id = record_in_case(case_store, result, engine.config, gallery)
    history = None
    if search_id is not None and case_store is not None:
        from forensic_face.store.history import probe_history

        try:
            history = probe_history(case_store, search_id)
        except ForensicFaceError as exc:
            warning = f"The search was recorded as #{search_id} but its history cannot be read: {exc}"
    return SearchOutcome(probe.index, result, warning, search_id, history)


def search_probe(engine: Any, progress: ProgressCallback, should_cancel: CancelCallback, *, probe: ProbeSearch,
                 gallery: Gallery, case_store: Any | None,
                 show_provisional: Callable[[tuple[int, SearchResult]], None]) -> SearchOutcome:
    """A first ranking within seconds, handed to ``show_provisional`` as ``(probe index, result)``; the full
    method then refines it (minutes on a new gallery), see :func:`search_one`."""
    progress(0, 1, "provisional ranking")
    try:
        first_image, first_face = probe.image, probe.face
        track = probe.video_track[1] if probe.video_track is not None else None
        if track is not None:  # the track's best frame, whatever frame is shown
            from forensic_face.engine import frame_image

            best = track.best(1)[0]
            first_image, first_face = frame_image(probe.video_track[0], best.frame_index, best.frame_sha256), \
                best.face
        show_provisional((probe.index, engine.provisional_search(first_image, gallery, first_face)))
    except ForensicFaceError as exc:
        log.warning("no provisional ranking: %s", exc)
    return search_one(engine, probe, gallery, case_store, progress, should_cancel)


def search_probes(engine: Any, progress: ProgressCallback, should_cancel: CancelCallback, *,
                  probes: tuple[ProbeSearch, ...], gallery: Gallery, case_store: Any | None) -> BatchOutcome:
    """Search ``probes`` one after another: per-probe progress, cancel between and within probes; the probes
    finished before a cancel keep their results (and case records); one probe's failure is a warning."""
    done: list[SearchOutcome] = []
    for n, probe in enumerate(probes, start=1):
        name = probe.image.path.name

        def probe_progress(d: int, t: int, message: str, n: int = n, name: str = name) -> None:
            progress(d, t, f"probe {n}/{len(probes)} ({name}): {message}")

        try:
            done.append(search_one(engine, probe, gallery, case_store, probe_progress, should_cancel))
        except Cancelled:
            return BatchOutcome(tuple(done), len(probes), cancelled=True)
        except ForensicFaceError as exc:
            done.append(SearchOutcome(probe.index, None, f"{name}: {exc}", None))
    return BatchOutcome(tuple(done), len(probes), cancelled=False)


# --------------------------------------------------------------------------------------------------- case
def write_report(_engine: Any, progress: ProgressCallback, _should_cancel: CancelCallback, *, case_path: Path,
                 out: Path, search_ids: list[int] | None, top: int, examiner: str | None, force: bool) -> Any:
    """Verify the case and write its report (PDF) to ``out``; returns the report outcome (pages, hash,
    verification)."""
    from forensic_face.report.pdf import write_case_report

    progress(0, 1, "verifying the case and writing the report")
    outcome = write_case_report(case_path, out, search_ids=search_ids or None, top=top, examiner=examiner,
                                force=force)
    progress(1, 1, "report written")
    return outcome


def restore_opened_case(_engine: Any, _progress: ProgressCallback, _should_cancel: CancelCallback, *,
                        store: Any) -> RestoredCase:
    """Read the opened case back for the views (:func:`forensic_face.gui.case_session.restore_case`)."""
    return restore_case(store)
