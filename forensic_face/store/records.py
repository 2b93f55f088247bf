"""What a case holds, as the store hands it out: frozen records of the case, its evidence, galleries, searches,
decisions, reviews and enrollments, and the values a decision, a review's verdict and an evidence role may take.

The store (:mod:`forensic_face.store.case_store`) builds them from the tables; the window, the command line and
the report read them, never the tables.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from forensic_face.engine import (
    Candidate,
    EngineConfig,
    FaceCrop,
    FaceDetection,
    ProbeHypothesis,
    SearchResult,
)
from forensic_face.store import audit

ROLES = ("probe", "gallery")
DECISIONS = ("not reviewed", "possible lead", "excluded", "inconclusive")
VERDICTS = ("agree", "disagree", "inconclusive")


@dataclass(frozen=True)
class CaseInfo:
    path: Path
    case_number: str
    title: str
    examiner: str
    created_utc: str
    schema_version: int


@dataclass(frozen=True)
class EvidenceItem:
    id: int
    path: Path
    sha256: str
    size_bytes: int
    imported_utc: str
    role: str
    width: int
    height: int
    format: str


@dataclass(frozen=True)
class GalleryRecord:
    id: int
    root: Path
    digest: str
    recorded_utc: str
    num_identities: int
    num_images: int
    #: (identity, image path, sha256) of every enrolled image.
    images: tuple[tuple[str, Path, str], ...]
    problems: tuple[tuple[Path, str], ...]


@dataclass(frozen=True)
class Decision:
    decision: str = "not reviewed"
    note: str = ""
    examiner: str = ""
    #: When the examiner decided (for a carried decision: on the earlier search).
    utc: str = ""
    #: A decision carried forward from an earlier search of the same probe: that search and the rank there.
    carried_from_search: int | None = None
    carried_from_rank: int | None = None

    @property
    def carried(self) -> bool:
        return self.carried_from_search is not None

    def to_json(self) -> dict[str, Any]:
        return {"decision": self.decision, "note": self.note, "examiner": self.examiner, "utc": self.utc,
                "carried_from_search": self.carried_from_search, "carried_from_rank": self.carried_from_rank}


@dataclass(frozen=True)
class CarriedDecisions:
    """What recording a search did with the decisions of earlier searches of the same probe (kept in its
    ``search`` audit entry): each one carried to the candidate of the same identity, or not carried because the
    identity is no longer among the candidates. Entries are dicts with identity, decision, note, examiner,
    decided_utc, from_search_id, from_rank and, when carried, rank."""

    carried: tuple[dict[str, Any], ...] = ()
    not_carried: tuple[dict[str, Any], ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {"carried": list(self.carried), "not_carried": list(self.not_carried)}

    @classmethod
    def from_entry(cls, entry: audit.AuditEntry) -> CarriedDecisions:
        """As a ``search`` audit entry recorded them (none in entries written before carrying existed)."""
        data = entry.details.get("carried_decisions") or {}
        return cls(tuple(data.get("carried", ())), tuple(data.get("not_carried", ())))


@dataclass(frozen=True)
class Review:
    """A second examiner's verification of a search's decisions (the V of ACE-V)."""

    id: int
    search_id: int
    reviewer: str
    verdict: str
    note: str
    utc: str
    #: The decisions reviewed, as they stood: ``{rank: {decision, examiner, ...}}``.
    decisions: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "search_id": self.search_id, "reviewer": self.reviewer, "verdict": self.verdict,
                "note": self.note, "utc": self.utc, "decisions": self.decisions}


@dataclass(frozen=True)
class SearchSummary:
    id: int
    created_utc: str
    probe_path: Path
    first_identity: str


@dataclass(frozen=True)
class StoredCandidate:
    candidate: Candidate
    log10_lr: float | None
    gallery_crop: np.ndarray | None
    decision: Decision

    @property
    def lr(self) -> float | None:
        return None if self.log10_lr is None else float(10.0 ** self.log10_lr)


@dataclass(frozen=True)
class StoredSearch:
    id: int
    created_utc: str
    status: str
    config: EngineConfig
    provenance: dict[str, Any]
    probe: EvidenceItem
    face: FaceDetection
    seed: int
    probe_crop: np.ndarray
    probe_crop_box: np.ndarray
    probe_hypotheses: dict[int, tuple[ProbeHypothesis, ...]]
    ranking: tuple[tuple[str, float], ...]
    candidates: tuple[StoredCandidate, ...]
    gallery_id: int | None
    calibration: dict[str, Any] | None

    def to_search_result(self) -> SearchResult:
        crop = FaceCrop(pixels=self.probe_crop, landmarks=np.zeros((5, 2), np.float32),
                        crop_box=self.probe_crop_box, face=self.face)
        return SearchResult(probe_path=self.probe.path, probe_sha256=self.probe.sha256, probe_face=self.face,
                            probe_crop=crop, candidates=tuple(c.candidate for c in self.candidates),
                            ranking=self.ranking, probe_hypotheses=self.probe_hypotheses,
                            provenance=self.provenance)


@dataclass(frozen=True)
class EnrollmentItem:
    """One gallery image handled by an enrollment: ``done`` with its face, or a ``problem`` with a reason."""

    image_path: Path
    identity: str
    sha256: str
    status: str
    face: FaceDetection | None = None
    crop_box: np.ndarray | None = None
    reason: str = ""


@dataclass(frozen=True)
class EnrollmentState:
    id: int
    root: Path
    config_digest: str
    status: str
    total: int
    items: tuple[EnrollmentItem, ...] = field(default=())

    @property
    def done_paths(self) -> frozenset[Path]:
        return frozenset(i.image_path for i in self.items)

    @property
    def num_done(self) -> int:
        return len(self.items)

