"""The window's record of one probe: the loaded evidence, its detections, the chosen face and its search
(no widgets: the jobs that load probes and the restore of a case build these on the worker thread)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from forensic_face.engine import FaceDetection, ImageDetections, LoadedImage, SearchResult


@dataclass
class ProbeRecord:
    """One probe still in the window: the loaded evidence, its detections, the chosen face, its search."""

    path: Path
    image: LoadedImage | None = None
    detections: ImageDetections | None = None
    error: str = ""
    #: Index into ``detections.faces``; -1 selects ``manual_face``.
    face_index: int = 0
    manual_face: FaceDetection | None = None
    result: SearchResult | None = None
    #: The search's number in the open case (None: not recorded), for decisions and the report.
    search_id: int | None = None
    #: For a video probe: ``(VideoEvidence, Track)``; the image is the track's best frame and a search fuses
    #: the track's best frames (``forensic_face.engine.video``). ``(VideoEvidence, None)``: a clip in which no
    #: face was followed yet; the examiner scrubs to a frame and draws a box to start a track.
    video_track: Any = None
    #: For a video probe: the index of the frame shown (and drawn on).
    video_frame: int = 0
    #: For a still split into one probe per face (*Search every face*): the face this record stands for.
    face_of: int | None = None

    @property
    def video(self) -> Any:
        return self.video_track[0] if self.video_track is not None else None

    @property
    def track(self) -> Any:
        return self.video_track[1] if self.video_track is not None else None

    @property
    def searchable(self) -> bool:
        """A face to search: a video track (whatever frame is shown), or a still's chosen face (not one restored
        from a case with a problem, e.g. a clip shown by the frame its search used)."""
        return self.track is not None or (self.image is not None and self.chosen_face is not None
                                          and not self.error)

    @property
    def faces(self) -> tuple[FaceDetection, ...]:
        return self.detections.faces if self.detections is not None else ()

    @property
    def chosen_face(self) -> FaceDetection | None:
        if self.face_index < 0:
            return self.manual_face
        if 0 <= self.face_index < len(self.faces):
            return self.faces[self.face_index]
        return None

    def status_text(self) -> str:
        if self.error:
            return self.error
        if self.image is None:
            return "loading…"
        size = f"{self.image.width}×{self.image.height} px"
        if self.video is not None and self.track is None:
            return (f"video, {self.video.frame_count} frames: no face followed — scrub to a frame and draw a box "
                    "around the face")
        if self.video_track is not None:
            video, track = self.video_track
            done = f", {len(self.result.candidates)} candidates" if self.result is not None else ""
            return (f"track {track.id}: {len(track.faces)} faces, frames {track.faces[0].frame_index}–"
                    f"{track.last.frame_index} of {video.frame_count}{done}")
        if self.manual_face is not None and self.face_index < 0:
            face = f"manual box {self.manual_face.width_px:.0f} px"
        elif not self.faces:
            face = "no face found — draw a box"
        else:
            face = f"{len(self.faces)} face(s), using #{self.face_index + 1} ({self.faces[self.face_index].width_px:.0f} px)"
        done = f", {len(self.result.candidates)} candidates" if self.result is not None else ""
        if self.face_of is not None:
            face = f"face {self.face_of + 1} of {len(self.faces)} ({self.faces[self.face_of].width_px:.0f} px)"
        return f"{size}, {face}{done}"
