"""Replay a logged search from the original files and compare the ranking with the stored one."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from forensic_face.engine import CaseStoreError, ConfigError, FaceDetection, SearchResult, load_image
from forensic_face.store.case_store import CaseStore
from forensic_face.store.codecs import absolute_path

log = logging.getLogger(__name__)

#: Fused scores that differ by less than this are reported as equal (floating-point noise across devices).
SCORE_TOLERANCE = 1e-5


@dataclass(frozen=True)
class ReplayOutcome:
    search_id: int
    identical: bool
    #: Precise findings: changed inputs, first differing rank, score drift.
    differences: tuple[str, ...]
    stored_ranking: tuple[tuple[str, float], ...]
    replayed_ranking: tuple[tuple[str, float], ...]
    max_score_difference: float
    notes: tuple[str, ...] = field(default=())

    def to_json(self) -> dict[str, Any]:
        return {"search_id": self.search_id, "identical": self.identical, "differences": list(self.differences),
                "max_score_difference": self.max_score_difference, "notes": list(self.notes),
                "stored_ranking": [[i, s] for i, s in self.stored_ranking],
                "replayed_ranking": [[i, s] for i, s in self.replayed_ranking]}

    def summary_lines(self) -> list[str]:
        head = "IDENTICAL ranking" if self.identical else "DIFFERENT ranking"
        lines = [f"Replay of search {self.search_id}: {head} "
                 f"({len(self.replayed_ranking)} identities, max score difference {self.max_score_difference:.2e})"]
        lines += [f"  {d}" for d in self.differences]
        lines += [f"  note: {n}" for n in self.notes]
        return lines


def compare_rankings(stored: tuple[tuple[str, float], ...], replayed: tuple[tuple[str, float], ...],
                     tolerance: float = SCORE_TOLERANCE) -> tuple[list[str], float]:
    """Differences between two rankings (identity order exactly; scores within ``tolerance``)."""
    differences = []
    if len(stored) != len(replayed):
        differences.append(f"the stored ranking has {len(stored)} identities, the replay {len(replayed)}")
    for position, (a, b) in enumerate(zip(stored, replayed), start=1):
        if a[0] != b[0]:
            differences.append(f"first difference at rank {position}: stored {a[0]} ({a[1]:.6f}), "
                               f"replayed {b[0]} ({b[1]:.6f})")
            break
    stored_scores = dict(stored)
    common = [i for i, _ in replayed if i in stored_scores]
    replayed_scores = dict(replayed)
    max_diff = max((abs(stored_scores[i] - replayed_scores[i]) for i in common), default=0.0)
    if max_diff > tolerance:
        worst = max(common, key=lambda i: abs(stored_scores[i] - replayed_scores[i]))
        differences.append(f"scores differ by up to {max_diff:.2e} (largest for {worst}: stored "
                           f"{stored_scores[worst]:.6f}, replayed {replayed_scores[worst]:.6f})")
    return differences, float(max_diff)


def _replay_video(engine: Any, path: Any, sha256: str, record: dict[str, Any], gallery: Any,
                  top_k: int) -> SearchResult:
    """A fused video search again: the same frames of the same file (each must decode to the pixels it had), the
    same faces, qualities and fusion."""
    from forensic_face.engine import Track, TrackFace, frame_image, fused_search_result, open_video, search_track

    clip = open_video(path)
    if clip.sha256 != sha256:
        raise CaseStoreError(f"the video {path} changed since it was imported (SHA-256 {clip.sha256}, recorded "
                             f"{sha256}); the search cannot be replayed from it")
    faces = []
    for frame in record["frames"]:
        image = frame_image(clip, int(frame["index"]), str(frame["frame_sha256"]))
        faces.append(TrackFace(int(frame["index"]), float(frame["time_s"]), _stored_frame_face(engine, image, frame),
                               float(frame["quality"]), image.sha256))
    track = Track(id=int(record["track"]), faces=faces)
    fused = search_track(engine, clip, track, gallery, num_frames=len(faces),
                         fusion=str(record.get("fusion", "score-mean")))
    return fused_search_result(fused, gallery, top_k)


def _stored_frame_face(engine: Any, image: Any, frame: dict[str, Any]) -> FaceDetection:
    """The face a video search used on one frame: as recorded (box and landmarks), or, for records made before
    landmarks were kept, the detection on the frame at the recorded box (a drawn box is refined again)."""
    import numpy as np

    from forensic_face.engine import box_iou, manual_face

    if "landmarks" in frame:
        return FaceDetection.from_json({"score": 1.0, **frame})
    box = np.asarray(frame["box"], np.float32)
    if not frame.get("manual"):
        for face in engine.detector.detect([image.pixels])[0]:
            if box_iou(np.asarray(face.box), box) > 0.9:
                return face
    return manual_face(image.pixels, box.tolist(), engine.detector)


def replay_search(store: CaseStore, search_id: int, device: str | None = None) -> ReplayOutcome:
    """Re-run a stored search from the original files with the stored configuration and face box.

    Re-enrolls the stored gallery root, reloads the probe from its original path (its SHA-256 must still match),
    uses the stored face (a manual box is refined again with the engine's detector), and compares the ranking.
    A fused video search is replayed from the same frames of the video (each must decode to the pixels it had).
    Writes a ``replay`` audit entry with the outcome.
    """
    from forensic_face.engine import Engine, manual_face
    from forensic_face.engine.degradations import parse_path_label, select_paths

    stored = store.search(search_id)
    if stored.gallery_id is None:
        raise CaseStoreError(f"search {search_id} was stored without its gallery; it cannot be replayed")
    gallery_record = store.gallery(stored.gallery_id)
    config = stored.config if device is None else stored.config.replace(device=device)
    video = stored.provenance.get("video")
    probe = None
    if video is None:
        probe = load_image(stored.probe.path)
        if probe.sha256 != stored.probe.sha256:
            raise CaseStoreError(f"the probe {stored.probe.path} changed since it was imported (SHA-256 "
                                 f"{probe.sha256}, recorded {stored.probe.sha256}); the search cannot be replayed "
                                 "from it")
    notes: list[str] = []
    # Replay what was run, not what the budget's name selects today (the "fast" budget changed on 2026-12-06).
    recorded_paths = stored.provenance.get("degradation_paths")
    paths = None
    if recorded_paths is not None:
        try:
            paths = [parse_path_label(label) for label in recorded_paths]
        except ConfigError as error:
            raise CaseStoreError(f"search {search_id} used a gallery degradation this version does not have "
                                 f"({error}); replay it with the version that made it "
                                 f"({stored.provenance.get('software', {}).get('forensic_face', 'unknown')})"
                                 ) from error
        if paths != select_paths(config.budget, config.seed):
            notes.append(f"replayed with the {len(paths)} gallery degradation paths recorded with the search; "
                         f"budget {config.budget!r} selects other paths in this version")
    engine = Engine(config, degradation_paths=paths)
    gallery = engine.enroll(gallery_record.root)
    differences: list[str] = []
    located = [(store.locate_recorded_file(p), sha) for _, p, sha in gallery_record.images]
    relative = [note for (_, note), _ in located if note]
    if relative:
        notes.append(f"{len(relative)} gallery image paths were recorded relative to an unknown working folder "
                     f"(a case written before paths were recorded absolute); for example: {relative[0]}")
    before = {(str(path.resolve()), sha) for (path, _), sha in located}
    after = {(absolute_path(e.image_path), e.sha256) for e in gallery.entries}
    if before != after:
        differences.append(f"the gallery changed: {len(before - after)} recorded images missing or modified, "
                           f"{len(after - before)} new or modified")
    if video is not None:
        result = _replay_video(engine, stored.probe.path, stored.probe.sha256, video, gallery, config.top_k)
    else:
        face: FaceDetection = stored.face
        if stored.face.manual:
            face = manual_face(probe.pixels, stored.face.box, engine.detector)  # type: ignore[union-attr]
        result = engine.search(probe, gallery, face=face)  # type: ignore[arg-type]
    ranking_differences, max_diff = compare_rankings(stored.ranking, tuple(result.ranking))
    differences += ranking_differences
    top = [c.candidate.identity for c in stored.candidates]
    if [c.identity for c in result.candidates[: len(top)]] != top:
        differences.append("the candidate list differs from the stored one")
    if device is not None and device != stored.config.device:
        notes.append(f"replayed on device {device!r}; the search ran with {stored.config.device!r}")
    identical = not any(d.startswith(("first difference", "the stored ranking", "the candidate", "the gallery"))
                        for d in differences)
    outcome = ReplayOutcome(search_id, identical, tuple(differences), stored.ranking, tuple(result.ranking),
                            max_diff, tuple(notes))
    store.log_action("replay", {"search_id": search_id, "identical": identical, "differences": list(differences),
                                "max_score_difference": max_diff, "config_digest": config.digest(),
                                "provenance": result.provenance})
    return outcome
