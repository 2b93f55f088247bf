"""An opened case as the window shows it: its probes, each probe's searches and decisions, and its gallery.

Plain dataclasses and functions that read the store (no widgets). :func:`restore_case` runs on the worker thread
when a case is opened and builds what the views show from the stored records; nothing is searched again. The
searches of one probe are grouped by the store's rule (:func:`forensic_face.store.history.probe_groups`); the
window shows the latest of each probe, and :class:`CaseSession` keeps every probe's history for the History tab.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from forensic_face.engine import (
    FaceCrop,
    FaceDetection,
    ForensicFaceError,
    Gallery,
    GalleryEntry,
    ImageDetections,
    LoadedImage,
    load_image,
    sha256_file,
)
from forensic_face.gui.probe_records import ProbeRecord
from forensic_face.store.carry import same_probe_face
from forensic_face.store.case_store import CaseStore
from forensic_face.store.galleries import gallery_digest
from forensic_face.store.history import ProbeHistory, SearchHistory, case_history
from forensic_face.store.records import EvidenceItem, GalleryRecord, StoredSearch

log = logging.getLogger(__name__)


# ------------------------------------------------------------------------------------------------ gallery
@dataclass(frozen=True)
class GalleryCheck:
    """The case's gallery (the one its latest search used) against its recorded folder.

    ``status``: ``ok`` (every recorded portrait is there with its recorded SHA-256: the folder can be opened
    again), ``missing`` (no such folder), ``changed`` (portraits missing or different), ``none`` (no gallery
    recorded yet)."""

    record: GalleryRecord | None
    status: str
    detail: str = ""

    @property
    def reopenable(self) -> bool:
        return self.status == "ok"

    def describe(self) -> str:
        """What the gallery panel says about the case's gallery."""
        if self.record is None:
            return "The case records no gallery yet: open the gallery folder to search (Ctrl+G)."
        name = self.record.root.name or str(self.record.root)
        if self.status == "ok":
            return f"Case gallery {name}: folder found and unchanged; opening it again."
        return (f"Case gallery {name} ({self.record.num_identities} identities, recorded "
                f"{self.record.recorded_utc}): {self.detail}. The stored searches and their portrait crops are "
                "shown; open the original gallery folder to search again.")


def check_recorded_gallery(store: CaseStore, record: GalleryRecord | None) -> GalleryCheck:
    """Re-hash the recorded portraits of ``record`` (reads each file once; run it off the GUI thread)."""
    if record is None:
        return GalleryCheck(None, "none")
    root, _ = store.locate_recorded_file(record.root)
    if not root.is_dir():
        return GalleryCheck(record, "missing", f"the folder {root} is missing")
    missing, changed = [], []
    for _identity, recorded, sha in record.images:
        path, _ = store.locate_recorded_file(recorded)
        try:
            if sha256_file(path) != sha:
                changed.append(path.name)
        except OSError:
            missing.append(path.name)
    if missing or changed:
        parts = ([f"{len(missing)} portrait(s) missing (e.g. {missing[0]})"] if missing else []) + (
            [f"{len(changed)} portrait(s) changed since the searches (e.g. {changed[0]})"] if changed else [])
        return GalleryCheck(record, "changed", f"the folder {root} differs from the recorded gallery: "
                            + "; ".join(parts))
    return GalleryCheck(record, "ok")


def gallery_matches(gallery: Gallery, check: GalleryCheck | None) -> bool:
    """Whether an enrolled ``gallery`` is the case's recorded one (same portraits, paths and hashes)."""
    return check is not None and check.record is not None and gallery_digest(gallery) == check.record.digest


def stored_gallery_entries(searches: Iterable[StoredSearch]) -> dict[str, GalleryEntry]:
    """The portrait crops stored with the searches' candidates, by SHA-256: what the views show of a candidate
    when the gallery folder is not open (missing, changed, or not opened yet)."""
    entries: dict[str, GalleryEntry] = {}
    for search in searches:
        for stored in search.candidates:
            cand = stored.candidate
            if stored.gallery_crop is None or cand.gallery_sha256 in entries:
                continue
            height, width = stored.gallery_crop.shape[:2]
            box = np.array([0.0, 0.0, float(width), float(height)], np.float32)
            face = FaceDetection(box=box, score=1.0, landmarks=np.zeros((5, 2), np.float32))
            entries[cand.gallery_sha256] = GalleryEntry(
                cand.identity, cand.image_path, cand.gallery_sha256,
                FaceCrop(pixels=stored.gallery_crop, landmarks=np.zeros((5, 2), np.float32), crop_box=box, face=face),
                note="portrait crop stored in the case")
    return entries


def gallery_for_view(open_gallery: Gallery | None, stored: dict[str, GalleryEntry]) -> Gallery | None:
    """The open gallery, with the case's stored crops for the portraits it does not hold (none open: those)."""
    if open_gallery is None:
        return Gallery(root=Path(), entries=tuple(stored.values())) if stored else None
    held = {e.sha256 for e in open_gallery.entries}
    extra = tuple(e for sha, e in stored.items() if sha not in held)
    return replace(open_gallery, entries=open_gallery.entries + extra) if extra else open_gallery


# ------------------------------------------------------------------------------------------------- probes
#: Why a restored clip cannot be searched again as it is.
RESTORED_VIDEO_NOTE = "a clip: its searches are shown; add the clip again (Ctrl+O) to follow and search it again"


@dataclass(frozen=True)
class RestoredCase:
    """What the window shows of an opened case: one probe record per probe (its latest search shown) with its
    history, the gallery check, and the portrait crops stored with the searches."""

    records: tuple[ProbeRecord, ...]
    histories: tuple[ProbeHistory, ...]
    gallery: GalleryCheck
    gallery_entries: dict[str, GalleryEntry]


def _evidence_image(store: CaseStore, evidence: EvidenceItem,
                    search: StoredSearch) -> tuple[LoadedImage | None, str]:
    """The probe's image as imported (or, for a clip, the frame its search used), or None and why not."""
    path, _ = store.locate_recorded_file(evidence.path)
    try:
        if evidence.format == "video":
            from forensic_face.engine import frame_image, open_video

            frames = (search.provenance.get("video") or {}).get("frames") or [{}]
            video = open_video(path)
            if video.sha256 != evidence.sha256:
                return None, f"the clip {path} changed since it was imported; its stored searches are shown"
            return frame_image(video, int(frames[0].get("index", 0)), str(frames[0].get("frame_sha256", ""))), \
                RESTORED_VIDEO_NOTE
        image = load_image(path)
    except ForensicFaceError as exc:
        return None, f"the probe file cannot be read ({exc}); its stored searches are shown"
    if image.sha256 != evidence.sha256:
        return None, (f"the probe file {path} changed since it was imported (SHA-256 {image.sha256[:12]}…, "
                      f"recorded {evidence.sha256[:12]}…); its stored searches are shown")
    return image, ""


def probe_records(store: CaseStore, histories: Iterable[ProbeHistory]) -> list[ProbeRecord]:
    """One probe record per probe, showing its latest search: a still with every face searched in it (a face
    drawn by hand as the manual box), so the boxes are drawn as they were searched."""
    by_evidence: dict[int, list[ProbeHistory]] = {}
    for history in histories:
        by_evidence.setdefault(history.evidence.id, []).append(history)
    records = []
    for group in by_evidence.values():
        detected: list[FaceDetection] = []
        for history in group:
            face = history.latest.search.face
            if not face.manual and not any(same_probe_face(f.box, face.box) for f in detected):
                detected.append(face)
        evidence = group[0].evidence
        image, note = _evidence_image(store, evidence, group[0].latest.search)
        detections = None if image is None else ImageDetections(
            source=str(evidence.path), sha256=image.sha256, width=image.width, height=image.height,
            faces=tuple(detected))
        for history in group:
            latest = history.latest.search
            face = latest.face
            index = -1 if face.manual else next(k for k, f in enumerate(detected) if same_probe_face(f.box, face.box))
            records.append(ProbeRecord(
                path=evidence.path, image=image, detections=detections, error=note, face_index=index,
                manual_face=face if face.manual else None, result=latest.to_search_result(), search_id=latest.id,
                face_of=index if len(group) > 1 and index >= 0 else None))
    return records


def restore_case(store: CaseStore) -> RestoredCase:
    """Read the whole case back (every search, decision, review and report choice) for the window; runs on the
    worker thread (it decodes the stored images and re-hashes the probe files and the gallery's portraits)."""
    histories = case_history(store)
    searches = [h.search for p in histories for h in p.searches]
    latest = max(searches, key=lambda s: s.id, default=None)
    gallery_id = latest.gallery_id if latest is not None else None
    if gallery_id is None and store.galleries():
        gallery_id = store.galleries()[-1].id
    gallery = check_recorded_gallery(store, store.gallery(gallery_id) if gallery_id is not None else None)
    return RestoredCase(tuple(probe_records(store, histories)), tuple(histories), gallery,
                        stored_gallery_entries(searches))


# ---------------------------------------------------------------------------------------------- histories
class CaseSession:
    """The open case's probe histories, found by any of their search ids (the window's record of a probe holds
    the id of the search it shows)."""

    def __init__(self, histories: Iterable[ProbeHistory] = (), gallery: GalleryCheck | None = None,
                 gallery_entries: dict[str, GalleryEntry] | None = None) -> None:
        self._by_search: dict[int, ProbeHistory] = {}
        self.gallery = gallery
        self.gallery_entries: dict[str, GalleryEntry] = dict(gallery_entries or {})
        for history in histories:
            self.update(history)

    def update(self, history: ProbeHistory) -> None:
        """Take a probe's history as it is now (after a new search, review or report choice)."""
        for h in history.searches:
            self._by_search[h.search.id] = history
        self.gallery_entries.update({sha: e for sha, e in stored_gallery_entries([history.latest.search]).items()
                                     if sha not in self.gallery_entries})

    def history(self, search_id: int | None) -> ProbeHistory | None:
        return None if search_id is None else self._by_search.get(search_id)

    def search(self, search_id: int) -> SearchHistory | None:
        history = self.history(search_id)
        return None if history is None else next(h for h in history.searches if h.search.id == search_id)


def _first(search: StoredSearch) -> str:
    return search.candidates[0].candidate.identity if search.candidates else "-"


def search_line(history: ProbeHistory, entry: SearchHistory) -> str:
    """One line of the History list: number, time, examiner, settings, rank 1 (and what it was before), and
    whether it is the latest and the one reported."""
    k = history.searches.index(entry)
    first = _first(entry.search)
    if k > 0:
        before = _first(history.searches[k - 1].search)
        first += " (unchanged)" if before == first else f" (was {before})"
    marks = [m for m, on in (("latest", entry is history.latest),
                             ("reported", entry.search.id == history.chosen().search.id)) if on]
    return (f"#{entry.search.id}  {entry.search.created_utc}  {entry.examiner}  settings "
            f"{entry.settings_digest[:8]}  rank 1: {first}" + (f"  [{', '.join(marks)}]" if marks else ""))


def search_details(history: ProbeHistory, entry: SearchHistory) -> str:
    """What the History tab says about one search: the change from the previous one, decisions carried or not,
    reviews."""
    lines = [f"Search #{entry.search.id} of {history.evidence.path.name} by {entry.examiner}, "
             f"{entry.search.created_utc}; settings digest {entry.settings_digest[:12]}."]
    lines.append("First search of this probe." if entry.change is None
                 else f"Against the previous search: {entry.change.describe()}.")
    carried = entry.carried.carried
    if carried:
        lines.append("Decisions carried forward: " + "; ".join(
            f"{c['identity']} {c['decision']} (search #{c['from_search_id']}, rank {c['from_rank']} → rank "
            f"{c['rank']})" for c in carried) + ".")
    for c in entry.carried.not_carried:
        lines.append(f"Not carried (no longer a candidate): {c['identity']}, {c['decision']} on search "
                     f"#{c['from_search_id']}.")
    lines += [f"Review by {r.reviewer}, {r.utc}: {r.verdict}" + (f" — {r.note}" if r.note else "") + "."
              for r in entry.reviews] or ["Not reviewed by a second examiner."]
    return "\n".join(lines)
