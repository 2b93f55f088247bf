"""A case as one SQLite file (``.ffcase``): evidence, galleries, searches, results, decisions, audit trail.

Integrity rules:

- Originals are never written. Evidence is hashed from the bytes :func:`forensic_face.engine.imaging.load_image` read.
- Every change runs in one ``BEGIN IMMEDIATE`` transaction together with its audit entry, so a change and its
  log entry are committed together or not at all. WAL journal with ``synchronous=FULL``: killing the process
  at any moment leaves the last committed state, which reopens.
- The schema version is ``PRAGMA user_version``; :data:`MIGRATIONS` brings older case files up to date (each
  migration in its own transaction, logged). ``PRAGMA application_id`` marks the file as a forensic_face case.
- Everything a report needs (probe crop, best hypotheses, degraded gallery variants, similarity matrices) is
  stored as PNG/NPY blobs, so reports need no recomputation; each blob once, keyed by its SHA-256 (``blobs``,
  schema 4), however many searches and candidates show it.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import sqlite3
import threading
import zipfile
import zlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
from PIL import Image

from forensic_face.engine import (
    Candidate,
    CaseStoreError,
    EngineConfig,
    FaceCrop,
    FaceDetection,
    ForensicFaceError,
    Gallery,
    GalleryHypothesis,
    ImageDetections,
    ProbeHypothesis,
    SearchResult,
    load_image,
)
from forensic_face.faults import storage_failure
from forensic_face.store import audit
from forensic_face.store import rows as row_hashes

if TYPE_CHECKING:
    from forensic_face.calibration import Calibration

log = logging.getLogger(__name__)

_Decoded = TypeVar("_Decoded")

CASE_SUFFIX = ".ffcase"
#: PRAGMA application_id of case files: ASCII "FFCE".
APPLICATION_ID = 0x46464345
ROLES = ("probe", "gallery")
DECISIONS = ("not reviewed", "possible lead", "excluded", "inconclusive")

_SCHEMA_V1 = audit.AUDIT_SCHEMA + """
CREATE TABLE case_meta (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    case_number TEXT NOT NULL,
    title TEXT NOT NULL,
    examiner TEXT NOT NULL,
    created_utc TEXT NOT NULL
);
CREATE TABLE evidence (
    id INTEGER PRIMARY KEY,
    path TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    size_bytes INTEGER NOT NULL,
    imported_utc TEXT NOT NULL,
    role TEXT NOT NULL CHECK (role IN ('probe', 'gallery')),
    width INTEGER NOT NULL,
    height INTEGER NOT NULL,
    format TEXT NOT NULL,
    UNIQUE (path, sha256, role)
);
CREATE TRIGGER evidence_immutable BEFORE UPDATE ON evidence
BEGIN SELECT RAISE(ABORT, 'evidence records cannot be changed; import the file again instead'); END;
CREATE TABLE detections (
    id INTEGER PRIMARY KEY,
    evidence_id INTEGER NOT NULL REFERENCES evidence(id),
    utc TEXT NOT NULL,
    detections_json TEXT NOT NULL
);
CREATE TABLE galleries (
    id INTEGER PRIMARY KEY,
    root TEXT NOT NULL,
    digest TEXT NOT NULL,
    recorded_utc TEXT NOT NULL,
    num_identities INTEGER NOT NULL,
    num_images INTEGER NOT NULL,
    UNIQUE (root, digest)
);
CREATE TABLE gallery_images (
    id INTEGER PRIMARY KEY,
    gallery_id INTEGER NOT NULL REFERENCES galleries(id),
    identity TEXT NOT NULL,
    image_path TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    note TEXT NOT NULL,
    face_json TEXT NOT NULL,
    crop_box_json TEXT NOT NULL
);
CREATE INDEX gallery_images_gallery ON gallery_images (gallery_id);
CREATE TABLE gallery_problems (
    id INTEGER PRIMARY KEY,
    gallery_id INTEGER NOT NULL REFERENCES galleries(id),
    image_path TEXT NOT NULL,
    reason TEXT NOT NULL
);
CREATE TABLE searches (
    id INTEGER PRIMARY KEY,
    created_utc TEXT NOT NULL,
    evidence_id INTEGER NOT NULL REFERENCES evidence(id),
    gallery_id INTEGER REFERENCES galleries(id),
    config_json TEXT NOT NULL,
    provenance_json TEXT NOT NULL,
    face_json TEXT NOT NULL,
    face_manual INTEGER NOT NULL,
    seed INTEGER NOT NULL,
    status TEXT NOT NULL,
    ranking_json TEXT NOT NULL,
    calibration_json TEXT,
    probe_crop_png BLOB NOT NULL,
    probe_crop_box_json TEXT NOT NULL,
    probe_hypotheses_npz BLOB NOT NULL
);
CREATE TABLE results (
    id INTEGER PRIMARY KEY,
    search_id INTEGER NOT NULL REFERENCES searches(id),
    rank INTEGER NOT NULL,
    identity TEXT NOT NULL,
    image_path TEXT NOT NULL,
    gallery_sha256 TEXT NOT NULL,
    score REAL NOT NULL,
    per_scale_json TEXT NOT NULL,
    log10_lr REAL,
    best_probe_scale INTEGER NOT NULL,
    best_probe_sigma REAL NOT NULL,
    best_probe_png BLOB NOT NULL,
    gallery_crop_png BLOB,
    UNIQUE (search_id, rank)
);
CREATE TABLE result_variants (
    result_id INTEGER NOT NULL REFERENCES results(id),
    ord INTEGER NOT NULL,
    scale INTEGER NOT NULL,
    path TEXT NOT NULL,
    score REAL NOT NULL,
    png BLOB NOT NULL,
    PRIMARY KEY (result_id, ord)
);
CREATE TABLE result_similarity (
    result_id INTEGER NOT NULL REFERENCES results(id),
    scale INTEGER NOT NULL,
    matrix_npy BLOB NOT NULL,
    gallery_paths_json TEXT NOT NULL,
    PRIMARY KEY (result_id, scale)
);
CREATE TABLE decisions (
    id INTEGER PRIMARY KEY,
    search_id INTEGER NOT NULL REFERENCES searches(id),
    rank INTEGER NOT NULL,
    decision TEXT NOT NULL,
    note TEXT NOT NULL,
    examiner TEXT NOT NULL,
    utc TEXT NOT NULL
);
CREATE TABLE enrollments (
    id INTEGER PRIMARY KEY,
    root TEXT NOT NULL,
    config_digest TEXT NOT NULL,
    started_utc TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('running', 'done')),
    total INTEGER NOT NULL,
    gallery_id INTEGER REFERENCES galleries(id)
);
CREATE TABLE enrollment_items (
    enrollment_id INTEGER NOT NULL REFERENCES enrollments(id),
    image_path TEXT NOT NULL,
    identity TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('done', 'problem')),
    face_json TEXT,
    crop_box_json TEXT,
    reason TEXT NOT NULL,
    utc TEXT NOT NULL,
    PRIMARY KEY (enrollment_id, image_path)
);
"""

#: Version 2: rows the program never changes refuse UPDATE and DELETE (evidence already refused UPDATE), so an
#: edit has to drop a trigger first; and from this version on every write records its rows' hashes in its audit
#: entry (:mod:`forensic_face.store.rows`). Migrating an older case hashes the rows it holds at that moment.
_SCHEMA_V2 = "".join(
    f"CREATE TRIGGER {table}_no_update BEFORE UPDATE ON {table}\n"
    f"BEGIN SELECT RAISE(ABORT, '{table} rows cannot be changed; record a new one instead'); END;\n"
    f"CREATE TRIGGER {table}_no_delete BEFORE DELETE ON {table}\n"
    f"BEGIN SELECT RAISE(ABORT, '{table} rows cannot be deleted'); END;\n"
    for table in ("case_meta", "searches", "results", "result_variants", "result_similarity", "decisions",
                  "galleries", "gallery_images", "gallery_problems", "detections")
) + """CREATE TRIGGER evidence_no_delete BEFORE DELETE ON evidence
BEGIN SELECT RAISE(ABORT, 'evidence records cannot be deleted'); END;
"""

#: Version 3: decisions carried forward from an earlier search of the same probe (the search they were made on,
#: and that search's rank; NULL for a decision made on this search), and reviews by a second examiner.
_SCHEMA_V3 = """ALTER TABLE decisions ADD COLUMN carried_from_search_id INTEGER REFERENCES searches(id);
ALTER TABLE decisions ADD COLUMN carried_from_rank INTEGER;
CREATE TABLE reviews (
    id INTEGER PRIMARY KEY,
    search_id INTEGER NOT NULL REFERENCES searches(id),
    reviewer TEXT NOT NULL,
    verdict TEXT NOT NULL CHECK (verdict IN ('agree', 'disagree', 'inconclusive')),
    note TEXT NOT NULL,
    decisions_json TEXT NOT NULL,
    utc TEXT NOT NULL
);
CREATE TRIGGER reviews_no_update BEFORE UPDATE ON reviews
BEGIN SELECT RAISE(ABORT, 'reviews rows cannot be changed; record a new one instead'); END;
CREATE TRIGGER reviews_no_delete BEFORE DELETE ON reviews
BEGIN SELECT RAISE(ABORT, 'reviews rows cannot be deleted'); END;
"""

#: Version 4: stored images and matrices are content-addressed. Each is one row of ``blobs``, keyed by the SHA-256
#: of its bytes, so an image shared by several searches (a gallery portrait, a probe's hypotheses searched again,
#: the best hypothesis of many candidates) is stored once; the columns of :data:`BLOB_COLUMNS` hold that SHA-256
#: (TEXT). Rows written before keep their values in those columns (image bytes as BLOB, the similarity matrices'
#: column labels as JSON text): they are read as they are and never rewritten, so migrating changes no stored row
#: and no row hash.
_SCHEMA_V4 = """CREATE TABLE blobs (
    sha256 TEXT PRIMARY KEY CHECK (length(sha256) = 64),
    format TEXT NOT NULL,
    data BLOB NOT NULL
);
CREATE TRIGGER blobs_no_update BEFORE UPDATE ON blobs
BEGIN SELECT RAISE(ABORT, 'blobs rows cannot be changed; record a new one instead'); END;
CREATE TRIGGER blobs_no_delete BEFORE DELETE ON blobs
BEGIN SELECT RAISE(ABORT, 'blobs rows cannot be deleted'); END;
"""

#: Selects the rows of a search's candidates (result_variants, result_similarity) for row hashing.
_RESULTS_OF_SEARCH = "result_id IN (SELECT id FROM results WHERE search_id = ?)"

#: Schema migrations; ``PRAGMA user_version`` = number applied. Append, never edit, released entries.
MIGRATIONS: tuple[str, ...] = (_SCHEMA_V1, _SCHEMA_V2, _SCHEMA_V3, _SCHEMA_V4)
#: The columns whose values are stored once in ``blobs``: the stored images and matrices, and the similarity
#: matrices' column labels (the gallery degradation paths, the same list for every candidate of a search). A value
#: is the SHA-256 of a ``blobs`` row (:func:`is_blob_reference`; schema 4 on), or in rows written before, the value
#: itself.
BLOB_COLUMNS: dict[str, tuple[str, ...]] = {
    "searches": ("probe_crop_png", "probe_hypotheses_npz"),
    "results": ("best_probe_png", "gallery_crop_png"),
    "result_variants": ("png",),
    "result_similarity": ("matrix_npy", "gallery_paths_json"),
}
#: Digests bound to one ``IN (...)`` selection when a write hashes the blobs rows it added (SQLite's limit on
#: bound parameters is 999 in older builds).
_DIGESTS_PER_SELECTION = 500
#: Tables whose rows a migration changes (a new column enters every row hash): its migrate entry records their
#: new hashes, or verify would report every such row as edited.
REHASHED_BY_MIGRATION: dict[int, tuple[str, ...]] = {3: ("decisions",)}
VERDICTS = ("agree", "disagree", "inconclusive")
#: The actor of a migration of a case opened with no examiner's name known (neither given nor in the case).
MIGRATION_ACTOR = "forensic_face (schema migration)"
#: Two searches are of the same probe when they use the same probe evidence and face boxes that overlap by at
#: least this intersection over union: a box drawn again by hand, or found again by the detector with other
#: settings, still counts; a different face in the same still does not.
SAME_PROBE_MIN_IOU = 0.8
#: The first schema whose writes record row hashes.
ROW_HASHES_SINCE_SCHEMA = 2
SCHEMA_VERSION = len(MIGRATIONS)


# ----------------------------------------------------------------------------------------------- data types
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


# --------------------------------------------------------------------------------------------- (de)coding
def encode_png(pixels: np.ndarray) -> bytes:
    arr = np.ascontiguousarray(pixels)
    if arr.dtype != np.uint8:
        arr = np.clip(arr.astype(np.float32) * (255.0 if arr.max() <= 1.0 else 1.0) + 0.5, 0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(arr).save(buffer, format="PNG")
    return buffer.getvalue()


def decode_png(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as image:
        return np.asarray(image.convert("RGB")).copy()


def encode_npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.asarray(array), allow_pickle=False)
    return buffer.getvalue()


def decode_npy(data: bytes) -> np.ndarray:
    return np.load(io.BytesIO(data), allow_pickle=False)


def _encode_hypotheses(hyps: dict[int, tuple[ProbeHypothesis, ...]]) -> bytes:
    """A search's probe hypotheses: each image as a PNG (``png_<scale>_<index>``, lossless, less than half the
    size of the deflated arrays older cases hold as ``images_<scale>``) and the blur sigmas of each scale, in an
    uncompressed NPZ. The same hypotheses give the same bytes, so a probe searched again stores them once."""
    arrays: dict[str, np.ndarray] = {}
    for scale, items in hyps.items():
        if not items:
            continue
        for index, hyp in enumerate(items):
            png = encode_png(np.asarray(hyp.image, dtype=np.uint8))
            arrays[f"png_{scale}_{index:03d}"] = np.frombuffer(png, dtype=np.uint8)
        arrays[f"sigmas_{scale}"] = np.asarray([h.sigma for h in items], dtype=np.float64)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def _decode_hypotheses(data: bytes) -> dict[int, tuple[ProbeHypothesis, ...]]:
    """:func:`_encode_hypotheses`'s record, or the stacked arrays of a search recorded before schema 4."""
    out: dict[int, tuple[ProbeHypothesis, ...]] = {}
    with np.load(io.BytesIO(data), allow_pickle=False) as npz:
        for key in npz.files:
            if not key.startswith("sigmas_"):
                continue
            scale = int(key.split("_", 1)[1])
            sigmas = npz[key]
            if f"images_{scale}" in npz.files:
                images = list(npz[f"images_{scale}"])
            else:
                images = [decode_png(npz[f"png_{scale}_{index:03d}"].tobytes()) for index in range(len(sigmas))]
            out[scale] = tuple(ProbeHypothesis(scale, float(s), img) for s, img in zip(sigmas, images))
    return dict(sorted(out.items()))


def _decode_labels(data: bytes) -> tuple[str, ...]:
    """A similarity matrix's column labels (JSON list of gallery degradation paths)."""
    return tuple(str(label) for label in json.loads(data))


def is_blob_reference(value: Any) -> bool:
    """Whether a :data:`BLOB_COLUMNS` value names a ``blobs`` row (64 lowercase hex digits) rather than holding
    the value itself (bytes, or JSON text, which never looks like that)."""
    return isinstance(value, str) and len(value) == 64 and all(c in "0123456789abcdef" for c in value)


def _blob_selections(digests: set[str]) -> list[tuple[str, str, tuple[str, ...]]]:
    """Row-hash selections (:func:`rows.hash_rows`) of the ``blobs`` rows with these digests."""
    ordered = sorted(digests)
    chunks = [tuple(ordered[k:k + _DIGESTS_PER_SELECTION]) for k in range(0, len(ordered), _DIGESTS_PER_SELECTION)]
    return [("blobs", f"sha256 IN ({', '.join('?' * len(chunk))})", chunk) for chunk in chunks]


def _jsonable(value: Any) -> Any:
    """Make provenance-like values JSON-safe (paths, numpy scalars, tuples)."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value


def box_iou(first: Sequence[float], second: Sequence[float]) -> float:
    """Intersection over union of two xyxy boxes (0 when either is empty)."""
    ax1, ay1, ax2, ay2 = (float(v) for v in first)
    bx1, by1, bx2, by2 = (float(v) for v in second)
    inter = max(0.0, min(ax2, bx2) - max(ax1, bx1)) * max(0.0, min(ay2, by2) - max(ay1, by1))
    union = (ax2 - ax1) * (ay2 - ay1) + (bx2 - bx1) * (by2 - by1) - inter
    return inter / union if union > 0 else 0.0


def same_probe_face(first_box: Sequence[float], second_box: Sequence[float]) -> bool:
    """Whether two face boxes in the same evidence still are the same probe (:data:`SAME_PROBE_MIN_IOU`)."""
    return box_iou(first_box, second_box) >= SAME_PROBE_MIN_IOU


def absolute_path(path: str | Path) -> str:
    """How a file path is recorded: absolute, so the case reads the same from any working folder."""
    return str(Path(path).resolve())


def gallery_digest(gallery: Gallery) -> str:
    items = sorted((e.identity, absolute_path(e.image_path), e.sha256) for e in gallery.entries)
    return hashlib.sha256(audit.canonical_json(items).encode()).hexdigest()


def default_case_path(name: str) -> Path:
    """``data_dir()/cases/<name>.ffcase``."""
    from forensic_face.paths import data_dir

    folder = data_dir() / "cases"
    folder.mkdir(parents=True, exist_ok=True)
    return folder / (name if name.endswith(CASE_SUFFIX) else name + CASE_SUFFIX)


def _split_statements(script: str) -> list[str]:
    statements, current = [], ""
    for line in script.splitlines(keepends=True):
        current += line
        if sqlite3.complete_statement(current):
            if current.strip():
                statements.append(current.strip())
            current = ""
    if current.strip():
        raise CaseStoreError(f"incomplete SQL statement in a migration: {current[:80]!r}")
    return statements


def _decode_text(data: bytes) -> str:
    """TEXT read from a case. Bytes that are not UTF-8 (a damaged or edited file) read as U+FFFD instead of
    stopping every read with a decoder traceback; the row then no longer matches its hash, so verify names it."""
    return data.decode("utf-8", errors="replace")


# ------------------------------------------------------------------------------------------------- store
class CaseStore:
    """An open case file. Use :meth:`create` or :meth:`open`; close with :meth:`close` (or ``with``)."""

    def __init__(self, path: Path, conn: sqlite3.Connection, examiner: str = "") -> None:
        self.path = path
        self._conn = conn
        self._lock = threading.RLock()
        #: Who works on the case now: the actor of every audit entry this store appends (see :meth:`open`).
        self.examiner = examiner

    def _append(self, conn: sqlite3.Connection, action: str, details: dict[str, Any],
                actor: str | None = None) -> audit.AuditEntry:
        """One audit entry by :attr:`examiner`. The operating-system account is kept beside it as ``os_user``:
        on a shared or container account it says little about who worked, so it is never the actor."""
        who = actor or self.examiner
        if not who.strip():
            raise CaseStoreError(f"{self.path}: no examiner is named, so the change cannot be attributed; give "
                                 "the examiner's name (--examiner NAME, or 'examiner' in settings.toml)")
        return audit.append_entry(conn, action, {**details, "os_user": audit.current_actor()}, actor=who)

    # ---- lifecycle
    @staticmethod
    def _connect(path: Path) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False, timeout=30.0)
            conn.text_factory = _decode_text
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("PRAGMA foreign_keys=ON")
        except (sqlite3.DatabaseError, UnicodeDecodeError) as exc:  # a damaged schema has undecodable text too
            raise CaseStoreError(storage_failure(exc, path, "cannot be opened as a case file")
                                 or f"{path}: cannot be opened as a case file, it is damaged ({exc}); work from a "
                                 "backup copy of the case") from None
        return conn

    @classmethod
    def create(cls, path: str | Path, case_number: str, title: str, examiner: str) -> CaseStore:
        """Create a new case file; refuses to overwrite an existing file."""
        path = Path(path)
        if path.exists():
            raise CaseStoreError(f"{path} already exists; open it or choose another file name")
        if not case_number.strip():
            raise CaseStoreError("a case needs a case number")
        if not examiner.strip():
            raise CaseStoreError("a case needs an examiner's name (the actor of its audit trail)")
        path.parent.mkdir(parents=True, exist_ok=True)
        store = cls(path, cls._connect(path), examiner)
        store._migrate()
        with store._transaction():
            store._conn.execute(f"PRAGMA application_id={APPLICATION_ID}")
            store._conn.execute(
                "INSERT INTO case_meta (id, case_number, title, examiner, created_utc) VALUES (1, ?, ?, ?, ?)",
                (case_number, title, examiner, audit.utc_now()))
            store._append(store._conn, "create", {
                "case_number": case_number, "title": title, "examiner": examiner, "schema_version": SCHEMA_VERSION,
                row_hashes.ROWS_KEY: row_hashes.hash_rows(store._conn, [("case_meta", "id = 1", ())])})
        log.info("created case %s (%s)", path, case_number)
        return store

    @classmethod
    def open(cls, path: str | Path, examiner: str | None = None) -> CaseStore:
        """Open an existing case file, migrating an older schema. Raises :class:`CaseStoreError`.

        ``examiner``: who works on the case now, the actor of the audit entries this store appends; without
        one, the case's examiner (``case_meta``), never the operating-system user."""
        path = Path(path)
        if not path.is_file():
            raise CaseStoreError(f"{path}: no such case file")
        with open(path, "rb") as fh:
            header = fh.read(16)
        if header != b"SQLite format 3\x00":
            raise CaseStoreError(f"{path}: is not a forensic_face case file (not an SQLite database)")
        store = cls(path, cls._connect(path))
        try:
            app_id = store._conn.execute("PRAGMA application_id").fetchone()[0]
            version = store._conn.execute("PRAGMA user_version").fetchone()[0]
            if app_id != APPLICATION_ID:
                raise CaseStoreError(f"{path}: is an SQLite file but not a forensic_face case "
                                     "(or its creation was interrupted before it was committed)")
            if version > SCHEMA_VERSION:
                raise CaseStoreError(f"{path}: was written by a newer forensic_face (schema {version}, this "
                                     f"version reads up to {SCHEMA_VERSION}); update forensic_face")
            store.examiner = examiner or store._case_examiner()
            store._migrate()
        except (sqlite3.DatabaseError, UnicodeDecodeError) as exc:
            store._conn.close()
            raise CaseStoreError(storage_failure(exc, path, "cannot be opened")
                                 or f"{path}: the case file is damaged ({exc})") from None
        except CaseStoreError:
            store._conn.close()
            raise
        return store

    def _case_examiner(self) -> str:
        row = self._conn.execute("SELECT examiner FROM case_meta WHERE id = 1").fetchone()
        return "" if row is None else str(row[0])

    def close(self) -> None:
        with self._lock:
            try:
                self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            except sqlite3.DatabaseError as exc:
                log.warning("%s: WAL checkpoint on close failed (%s)", self.path, exc)
            self._conn.close()

    def __enter__(self) -> CaseStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            try:
                self._conn.execute("BEGIN IMMEDIATE")
            except sqlite3.DatabaseError as exc:
                raise CaseStoreError(storage_failure(exc, self.path, "cannot write to the case")
                                     or f"{self.path}: cannot write to the case ({exc})") from None
            committing = False
            try:
                yield self._conn
                committing = True
                self._conn.execute("COMMIT")
            except BaseException as exc:
                # After a full disk or an I/O error SQLite has already rolled the transaction back itself; a
                # second ROLLBACK would fail ("no transaction is active") and hide the real cause.
                if self._conn.in_transaction:
                    try:
                        self._conn.execute("ROLLBACK")
                    except sqlite3.DatabaseError as rollback_exc:
                        log.warning("%s: rollback after %s failed too (%s)", self.path, exc, rollback_exc)
                message = storage_failure(exc, self.path, "nothing was saved") if isinstance(
                    exc, sqlite3.DatabaseError) else None
                if message is None and committing and isinstance(exc, sqlite3.DatabaseError):
                    message = f"{self.path}: could not save the change ({exc})"
                if message is not None:
                    raise CaseStoreError(message) from None
                raise

    def _migrate(self) -> None:
        version = self._conn.execute("PRAGMA user_version").fetchone()[0]
        for number in range(version + 1, SCHEMA_VERSION + 1):
            try:
                with self._transaction():
                    for statement in _split_statements(MIGRATIONS[number - 1]):
                        self._conn.execute(statement)
                    self._conn.execute(f"PRAGMA user_version={number}")
                    if version > 0:  # an existing case is upgraded (a new one is built from version 0 silently)
                        details: dict[str, Any] = {"from": number - 1, "to": number}
                        if number == ROW_HASHES_SINCE_SCHEMA:
                            # Rows written before row hashing are covered from here on, not from their writing.
                            details[row_hashes.ROWS_KEY] = row_hashes.hash_all_rows(self._conn)
                        elif number in REHASHED_BY_MIGRATION:
                            details[row_hashes.ROWS_KEY] = row_hashes.hash_rows(
                                self._conn, [(t, "", ()) for t in REHASHED_BY_MIGRATION[number]])
                        # A migration is the program's step, not an examiner's: an old case without an
                        # examiner's name (the window once allowed none) must still open, to be read or verified.
                        self._append(self._conn, "migrate", details, actor=self.examiner or MIGRATION_ACTOR)
            except sqlite3.DatabaseError as exc:
                raise CaseStoreError(f"{self.path}: schema migration to version {number} failed ({exc})") from None

    # ---- raw access for verification and reports
    @property
    def connection(self) -> sqlite3.Connection:
        """The SQLite connection (read it; write only through this class)."""
        return self._conn

    def log_action(self, action: str, details: dict[str, Any]) -> audit.AuditEntry:
        """Append an audit entry for a step that changes nothing else in the case (export, verify, replay)."""
        with self._transaction():
            return self._append(self._conn, action, _jsonable(details))

    def audit_entries(self) -> list[audit.AuditEntry]:
        with self._lock:
            return audit.read_entries(self._conn)

    def locate_recorded_file(self, recorded: str | Path) -> tuple[Path, str]:
        """Where a file path recorded in the case points, and a note when it had to be interpreted.

        Paths are recorded absolute (:func:`absolute_path`). Cases written before that may hold gallery image
        paths relative to the working folder of the program that recorded them, which nobody knows any more:
        such a path is looked up beside the case file first, then from the current folder, and the note says so.
        """
        path = Path(recorded)
        if path.is_absolute():
            return path, ""
        beside = (self.path.parent / path).resolve()
        if beside.exists():
            return beside, f"recorded as the relative path {recorded}; found relative to the case file's folder"
        return path.resolve(), (f"recorded as the relative path {recorded}; not found relative to the case file's "
                                "folder, so looked up from the current folder")

    # ---- case metadata
    def info(self) -> CaseInfo:
        with self._lock:
            row = self._conn.execute(
                "SELECT case_number, title, examiner, created_utc FROM case_meta WHERE id = 1").fetchone()
            version = self._conn.execute("PRAGMA user_version").fetchone()[0]
        if row is None:
            raise CaseStoreError(f"{self.path}: case metadata is missing")
        return CaseInfo(self.path, row[0], row[1], row[2], row[3], int(version))

    # ---- evidence
    def add_evidence(self, path: str | Path, role: str) -> EvidenceItem:
        """Import an evidence image: read it once read-only, hash the original bytes, record it.

        Importing the same file (same path and hash) again returns the existing record.
        """
        if role not in ROLES:
            raise CaseStoreError(f"evidence role must be one of {ROLES}, got {role!r}")
        from forensic_face.engine import is_video_path, open_video

        if is_video_path(path):
            # A video is hashed as a file like a still; width and height are its frames', format "video".
            video = open_video(path)
            image = SimpleNamespace(sha256=video.sha256, size_bytes=video.size_bytes, width=video.width,
                                    height=video.height, format="video", exif_orientation=1)
        else:
            image = load_image(path)
        resolved = absolute_path(path)
        with self._transaction() as conn:
            row = conn.execute("SELECT id FROM evidence WHERE path = ? AND sha256 = ? AND role = ?",
                               (resolved, image.sha256, role)).fetchone()
            if row is not None:
                return self._evidence_by_id(int(row[0]))
            now = audit.utc_now()
            cursor = conn.execute(
                "INSERT INTO evidence (path, sha256, size_bytes, imported_utc, role, width, height, format) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (resolved, image.sha256, image.size_bytes, now, role, image.width, image.height, image.format))
            evidence_id = int(cursor.lastrowid or 0)
            self._append(conn, "import", {
                "evidence_id": evidence_id, "path": resolved, "sha256": image.sha256,
                "size_bytes": image.size_bytes, "role": role, "width": image.width, "height": image.height,
                "format": image.format, "exif_orientation": image.exif_orientation,
                row_hashes.ROWS_KEY: row_hashes.hash_rows(conn, [("evidence", "id = ?", (evidence_id,))])})
        log.info("imported %s as %s evidence (sha256 %s)", resolved, role, image.sha256)
        return self._evidence_by_id(evidence_id)

    def _evidence_by_id(self, evidence_id: int) -> EvidenceItem:
        row = self._conn.execute(
            "SELECT id, path, sha256, size_bytes, imported_utc, role, width, height, format FROM evidence "
            "WHERE id = ?", (evidence_id,)).fetchone()
        if row is None:
            raise CaseStoreError(f"{self.path}: no evidence item {evidence_id}")
        return EvidenceItem(int(row[0]), Path(row[1]), row[2], int(row[3]), row[4], row[5], int(row[6]),
                            int(row[7]), row[8])

    def evidence(self, evidence_id: int) -> EvidenceItem:
        with self._lock:
            return self._evidence_by_id(evidence_id)

    def evidence_items(self) -> list[EvidenceItem]:
        with self._lock:
            ids = [int(r[0]) for r in self._conn.execute("SELECT id FROM evidence ORDER BY id")]
            return [self._evidence_by_id(i) for i in ids]

    def record_detection(self, evidence_id: int, detections: ImageDetections) -> None:
        """Log an automatic face detection on an evidence image."""
        item = self.evidence(evidence_id)
        if detections.sha256 != item.sha256:
            raise CaseStoreError(f"detections were computed on a file with SHA-256 {detections.sha256}, but "
                                 f"evidence {evidence_id} has {item.sha256}")
        data = detections.to_json()
        with self._transaction() as conn:
            cursor = conn.execute("INSERT INTO detections (evidence_id, utc, detections_json) VALUES (?, ?, ?)",
                                  (evidence_id, audit.utc_now(), audit.canonical_json(data)))
            self._append(conn, "detect", {
                "evidence_id": evidence_id, **data,
                row_hashes.ROWS_KEY: row_hashes.hash_rows(conn, [("detections", "id = ?", (cursor.lastrowid,))])})

    def record_manual_box(self, evidence_id: int, face: FaceDetection) -> None:
        """Log a face box the examiner drew by hand."""
        self.evidence(evidence_id)
        with self._transaction() as conn:
            self._append(conn, "manual_box", {"evidence_id": evidence_id, "face": face.to_json()})

    # ---- galleries
    def _record_gallery(self, conn: sqlite3.Connection, gallery: Gallery) -> int:
        digest = gallery_digest(gallery)
        root = absolute_path(gallery.root)
        row = conn.execute("SELECT id FROM galleries WHERE root = ? AND digest = ?", (root, digest)).fetchone()
        if row is not None:
            return int(row[0])
        identities = sorted({e.identity for e in gallery.entries})
        cursor = conn.execute(
            "INSERT INTO galleries (root, digest, recorded_utc, num_identities, num_images) VALUES (?, ?, ?, ?, ?)",
            (root, digest, audit.utc_now(), len(identities), len(gallery.entries)))
        gallery_id = int(cursor.lastrowid or 0)
        conn.executemany(
            "INSERT INTO gallery_images (gallery_id, identity, image_path, sha256, note, face_json, crop_box_json) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            [(gallery_id, e.identity, absolute_path(e.image_path), e.sha256, e.note,
              audit.canonical_json(e.crop.face.to_json()),
              json.dumps([float(v) for v in e.crop.crop_box])) for e in gallery.entries])
        conn.executemany("INSERT INTO gallery_problems (gallery_id, image_path, reason) VALUES (?, ?, ?)",
                         [(gallery_id, absolute_path(p.image_path), p.reason) for p in gallery.problems])
        self._append(conn, "gallery", {
            "gallery_id": gallery_id, "root": root, "digest": digest, "num_identities": len(identities),
            "num_images": len(gallery.entries), "num_problems": len(gallery.problems),
            "images": [[e.identity, absolute_path(e.image_path), e.sha256] for e in gallery.entries],
            "problems": [[absolute_path(p.image_path), p.reason] for p in gallery.problems],
            row_hashes.ROWS_KEY: row_hashes.hash_rows(conn, [
                ("galleries", "id = ?", (gallery_id,)), ("gallery_images", "gallery_id = ?", (gallery_id,)),
                ("gallery_problems", "gallery_id = ?", (gallery_id,))])})
        return gallery_id

    def record_gallery(self, gallery: Gallery) -> int:
        """Record an enrolled gallery (root, identities, per-image SHA-256, problems); returns its id.

        Recording the same gallery (same root, same images and hashes) again returns the existing id.
        """
        with self._transaction() as conn:
            return self._record_gallery(conn, gallery)

    def gallery(self, gallery_id: int) -> GalleryRecord:
        with self._lock:
            row = self._conn.execute("SELECT id, root, digest, recorded_utc, num_identities, num_images FROM "
                                     "galleries WHERE id = ?", (gallery_id,)).fetchone()
            if row is None:
                raise CaseStoreError(f"{self.path}: no gallery {gallery_id}")
            images = tuple((r[0], Path(r[1]), r[2]) for r in self._conn.execute(
                "SELECT identity, image_path, sha256 FROM gallery_images WHERE gallery_id = ? ORDER BY id",
                (gallery_id,)))
            problems = tuple((Path(r[0]), r[1]) for r in self._conn.execute(
                "SELECT image_path, reason FROM gallery_problems WHERE gallery_id = ? ORDER BY id", (gallery_id,)))
        return GalleryRecord(int(row[0]), Path(row[1]), row[2], row[3], int(row[4]), int(row[5]), images, problems)

    def galleries(self) -> list[GalleryRecord]:
        with self._lock:
            ids = [int(r[0]) for r in self._conn.execute("SELECT id FROM galleries ORDER BY id")]
        return [self.gallery(i) for i in ids]

    # ---- searches
    def _probe_evidence(self, conn: sqlite3.Connection, result: SearchResult) -> int:
        resolved = absolute_path(result.probe_path)
        row = conn.execute("SELECT id FROM evidence WHERE sha256 = ? AND role = 'probe' ORDER BY (path = ?) DESC, id "
                           "LIMIT 1", (result.probe_sha256, resolved)).fetchone()
        if row is None:
            raise CaseStoreError(f"the probe {result.probe_path} (SHA-256 {result.probe_sha256}) is not evidence "
                                 "in this case; import it first")
        return int(row[0])

    def record_search(self, result: SearchResult, config: EngineConfig, gallery: Gallery | None = None,
                      calibration: Calibration | None = None, status: str = "complete") -> int:
        """Store a finished search with everything needed to review, report and replay it; returns its id.

        The probe must already be evidence (imported by :meth:`add_evidence`; if not, it is imported here and
        its hash must still match the one the search used). ``gallery``: the searched gallery, recorded too, and
        the source of each candidate's gallery crop. ``calibration``: the band that converts this search's scores
        to likelihood ratios, chosen by the calibration module's one rule (``calibration_for_result``). Gallery variants are stored with the images they carry
        (:meth:`Engine.with_gallery_images` renders them); a variant without its image is not stored.
        """
        if result.provenance.get("provisional"):
            raise CaseStoreError("a provisional ranking is not a search result; record the full search")
        with self._lock:
            try:
                with self._transaction() as conn:
                    evidence_id = self._probe_evidence(conn, result)
            except CaseStoreError:
                item = self.add_evidence(result.probe_path, "probe")
                if item.sha256 != result.probe_sha256:
                    raise CaseStoreError(
                        f"{result.probe_path} now hashes to {item.sha256} but the search used a file hashing to "
                        f"{result.probe_sha256}: the file changed after the search; search again") from None
            cal = calibration
            crops = ({absolute_path(e.image_path): e.crop.pixels for e in gallery.entries}
                     if gallery is not None else {})
            with self._transaction() as conn:
                evidence_id = self._probe_evidence(conn, result)
                gallery_id = self._record_gallery(conn, gallery) if gallery is not None else None
                provenance = _jsonable(result.provenance)
                added: set[str] = set()  # digests of the blobs this search adds (the others are stored already)

                def blob(data: bytes, fmt: str) -> str:
                    return self._store_blob(conn, data, fmt, added)

                cursor = conn.execute(
                    "INSERT INTO searches (created_utc, evidence_id, gallery_id, config_json, provenance_json, "
                    "face_json, face_manual, seed, status, ranking_json, calibration_json, probe_crop_png, "
                    "probe_crop_box_json, probe_hypotheses_npz) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (audit.utc_now(), evidence_id, gallery_id, config.to_json(), audit.canonical_json(provenance),
                     audit.canonical_json(result.probe_face.to_json()), int(result.probe_face.manual), config.seed,
                     status, json.dumps([[i, float(s)] for i, s in result.ranking]),
                     None if cal is None else json.dumps(cal.to_json(), sort_keys=True),
                     blob(encode_png(result.probe_crop.pixels), "png"),
                     json.dumps([float(v) for v in result.probe_crop.crop_box]),
                     blob(_encode_hypotheses(result.probe_hypotheses), "hypotheses-npz")))
                search_id = int(cursor.lastrowid or 0)
                lrs = cal.log10_lr([c.score for c in result.candidates]) if cal is not None else None
                for index, cand in enumerate(result.candidates):
                    crop = crops.get(absolute_path(cand.image_path))
                    cursor = conn.execute(
                        "INSERT INTO results (search_id, rank, identity, image_path, gallery_sha256, score, "
                        "per_scale_json, log10_lr, best_probe_scale, best_probe_sigma, best_probe_png, "
                        "gallery_crop_png) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        (search_id, cand.rank, cand.identity, absolute_path(cand.image_path), cand.gallery_sha256,
                         float(cand.score), json.dumps({str(k): float(v) for k, v in cand.per_scale_scores.items()}),
                         None if lrs is None else float(lrs[index]), cand.best_probe_hypothesis.scale,
                         float(cand.best_probe_hypothesis.sigma),
                         blob(encode_png(cand.best_probe_hypothesis.image), "png"),
                         None if crop is None else blob(encode_png(crop), "png")))
                    result_id = int(cursor.lastrowid or 0)
                    conn.executemany(
                        "INSERT INTO result_variants (result_id, ord, scale, path, score, png) VALUES (?, ?, ?, ?, ?, ?)",
                        [(result_id, k, g.scale, g.path, float(g.score), blob(encode_png(g.image), "png"))
                         for k, g in enumerate(cand.best_gallery_hypotheses) if g.image is not None])
                    conn.executemany(
                        "INSERT INTO result_similarity (result_id, scale, matrix_npy, gallery_paths_json) "
                        "VALUES (?, ?, ?, ?)",
                        [(result_id, int(scale), blob(encode_npy(np.asarray(matrix, dtype=np.float32)), "npy"),
                          blob(json.dumps(list(cand.gallery_paths.get(scale, ()))).encode("utf-8"), "json"))
                         for scale, matrix in cand.similarity.items()])
                carried = self._carry_decisions(conn, search_id, evidence_id, result)
                self._append(conn, "search", {
                    "search_id": search_id, "probe_evidence_id": evidence_id, "probe_sha256": result.probe_sha256,
                    "gallery_id": gallery_id, "face": result.probe_face.to_json(), "config": config.to_dict(),
                    "config_digest": config.digest(), "provenance": provenance, "seed": config.seed,
                    "calibration_band_px": None if cal is None else cal.band_px,
                    "candidates": [[c.rank, c.identity, c.gallery_sha256, round(float(c.score), 6)]
                                   for c in result.candidates],
                    "carried_decisions": carried.to_json(),
                    row_hashes.ROWS_KEY: row_hashes.hash_rows(conn, [
                        ("searches", "id = ?", (search_id,)), ("results", "search_id = ?", (search_id,)),
                        ("result_variants", _RESULTS_OF_SEARCH, (search_id,)),
                        ("result_similarity", _RESULTS_OF_SEARCH, (search_id,)),
                        ("decisions", "search_id = ?", (search_id,)), *_blob_selections(added)])})
        log.info("stored search %d (%d candidates, %d new stored images)", search_id, len(result.candidates),
                 len(added))
        return search_id

    @staticmethod
    def _store_blob(conn: sqlite3.Connection, data: bytes, fmt: str, added: set[str]) -> str:
        """Store ``data`` once (:data:`BLOB_COLUMNS`); its SHA-256, which the referring column holds. A digest new
        to the case goes into ``added``, so the write's audit entry records that ``blobs`` row's hash."""
        digest = hashlib.sha256(data).hexdigest()
        cursor = conn.execute("INSERT OR IGNORE INTO blobs (sha256, format, data) VALUES (?, ?, ?)",
                              (digest, fmt, data))
        if cursor.rowcount:
            added.add(digest)
        return digest

    def _carry_decisions(self, conn: sqlite3.Connection, search_id: int, evidence_id: int,
                         result: SearchResult) -> CarriedDecisions:
        """Carry the decisions of earlier searches of the same probe (:data:`SAME_PROBE_MIN_IOU`) to this one.

        Per identity the latest decision made on any of them counts; each is recorded on this search's candidate
        of that identity with the search and rank it was made on and its original examiner and time, so a
        re-search never silently drops the examiner's work. A decision whose identity is not among the new
        candidates is listed as not carried. "not reviewed" is nothing to carry.
        """
        box = result.probe_face.to_json()["box"]
        earlier = [int(r[0]) for r in conn.execute(
            "SELECT id, face_json FROM searches WHERE evidence_id = ? AND id < ? ORDER BY id",
            (evidence_id, search_id)) if same_probe_face(json.loads(r[1])["box"], box)]
        if not earlier:
            return CarriedDecisions()
        latest: dict[str, tuple[Any, ...]] = {}
        for row in conn.execute(
                "SELECT d.search_id, d.rank, r.identity, d.decision, d.note, d.examiner, d.utc FROM decisions d "
                "JOIN results r ON r.search_id = d.search_id AND r.rank = d.rank WHERE d.search_id IN "
                f"({', '.join('?' * len(earlier))}) ORDER BY d.id", earlier):
            latest[str(row[2])] = row
        new_rank: dict[str, int] = {}
        for cand in result.candidates:
            new_rank.setdefault(cand.identity, cand.rank)
        carried: list[dict[str, Any]] = []
        not_carried: list[dict[str, Any]] = []
        for identity, (from_search, from_rank, _, decision, note, examiner, utc) in sorted(latest.items()):
            if decision == "not reviewed":
                continue
            record = {"identity": identity, "decision": decision, "note": note, "examiner": examiner,
                      "decided_utc": utc, "from_search_id": int(from_search), "from_rank": int(from_rank)}
            if identity not in new_rank:
                not_carried.append(record)
                continue
            conn.execute("INSERT INTO decisions (search_id, rank, decision, note, examiner, utc, "
                         "carried_from_search_id, carried_from_rank) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                         (search_id, new_rank[identity], decision, note, examiner, utc, int(from_search),
                          int(from_rank)))
            carried.append({**record, "rank": new_rank[identity]})
        carried.sort(key=lambda c: c["rank"])
        return CarriedDecisions(tuple(carried), tuple(not_carried))

    def carried_decisions(self, search_id: int) -> CarriedDecisions:
        """What recording ``search_id`` carried from earlier searches of its probe, as its audit entry says."""
        for entry in self.audit_entries():
            if entry.action == "search" and entry.details.get("search_id") == search_id:
                return CarriedDecisions.from_entry(entry)
        return CarriedDecisions()

    def search_ids(self) -> list[int]:
        with self._lock:
            return [int(r[0]) for r in self._conn.execute("SELECT id FROM searches ORDER BY id")]

    def search_faces(self) -> list[tuple[int, int, tuple[float, ...]]]:
        """(search id, probe evidence id, face box) of every search, oldest first: what tells the searches of one
        probe apart (:func:`same_probe_face`), read without loading any image."""
        with self._lock:
            rows = self._conn.execute("SELECT id, evidence_id, face_json FROM searches ORDER BY id").fetchall()
        return [(int(r[0]), int(r[1]), tuple(float(v) for v in json.loads(r[2])["box"])) for r in rows]

    def search_summaries(self) -> list[SearchSummary]:
        """Each stored search's number, time, probe file and first-ranked identity, without loading its
        candidates' images and matrices (for lists of searches)."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT s.id, s.created_utc, e.path, (SELECT identity FROM results r WHERE r.search_id = s.id "
                "ORDER BY rank LIMIT 1) FROM searches s JOIN evidence e ON e.id = s.evidence_id ORDER BY s.id"
            ).fetchall()
        return [SearchSummary(int(r[0]), r[1], Path(r[2]), r[3] or "") for r in rows]

    def decisions(self, search_id: int) -> dict[int, Decision]:
        """The latest decision on each rank of a search (ranks never decided are absent)."""
        out: dict[int, Decision] = {}
        with self._lock:
            rows = self._conn.execute(
                "SELECT rank, decision, note, examiner, utc, carried_from_search_id, carried_from_rank FROM decisions "
                "WHERE search_id = ? ORDER BY id", (search_id,)).fetchall()
        for rank, decision, note, examiner, utc, from_search, from_rank in rows:
            out[int(rank)] = Decision(decision, note, examiner, utc, None if from_search is None else int(from_search),
                                      None if from_rank is None else int(from_rank))
        return out

    def search(self, search_id: int) -> StoredSearch:
        """Load a stored search with its candidates, images, matrices and the latest decisions."""
        with self._lock:
            row = self._conn.execute(
                "SELECT id, created_utc, status, config_json, provenance_json, evidence_id, face_json, seed, "
                "probe_crop_png, probe_crop_box_json, probe_hypotheses_npz, ranking_json, gallery_id, "
                "calibration_json FROM searches WHERE id = ?", (search_id,)).fetchone()
            if row is None:
                raise CaseStoreError(f"{self.path}: no search {search_id}; known: {self.search_ids()}")
            decisions = self.decisions(search_id)

            def stored(what: str, data: Any, decode: Callable[[Any], _Decoded]) -> _Decoded:
                return self._decode_stored(f"search {search_id}'s {what}", data, decode)

            member_scores = json.loads(row[4]).get("member_scores", {})  # a recognizer ensemble's, per identity
            candidates = []
            for res in self._conn.execute(
                    "SELECT id, rank, identity, image_path, gallery_sha256, score, per_scale_json, log10_lr, "
                    "best_probe_scale, best_probe_sigma, best_probe_png, gallery_crop_png FROM results "
                    "WHERE search_id = ? ORDER BY rank", (search_id,)).fetchall():
                variant_rows = self._conn.execute("SELECT ord, scale, path, score, png FROM result_variants WHERE "
                                                  "result_id = ? ORDER BY ord", (res[0],)).fetchall()
                variants = tuple(GalleryHypothesis(int(v[1]), v[2], float(v[3]), stored(
                    f"degraded gallery image {v[0]} of rank {res[1]} (result_variants)", v[4], decode_png))
                    for v in variant_rows)
                similarity: dict[int, np.ndarray] = {}
                gallery_paths: dict[int, tuple[str, ...]] = {}
                for scale, matrix, paths in self._conn.execute(
                        "SELECT scale, matrix_npy, gallery_paths_json FROM result_similarity WHERE result_id = ? "
                        "ORDER BY scale", (res[0],)):
                    similarity[int(scale)] = stored(f"similarity matrix x{scale} of rank {res[1]} (result_similarity)",
                                                    matrix, decode_npy)
                    gallery_paths[int(scale)] = stored(f"gallery hypothesis labels x{scale} of rank {res[1]} "
                                                       "(result_similarity)", paths, _decode_labels)
                candidate = Candidate(
                    rank=int(res[1]), identity=res[2], image_path=Path(res[3]), gallery_sha256=res[4],
                    score=float(res[5]), per_scale_scores={int(k): float(v) for k, v in json.loads(res[6]).items()},
                    best_probe_hypothesis=ProbeHypothesis(int(res[8]), float(res[9]), stored(
                        f"best probe hypothesis of rank {res[1]} (results)", res[10], decode_png)),
                    best_gallery_hypotheses=variants, similarity=similarity, gallery_paths=gallery_paths,
                    member_scores={str(k): float(v) for k, v in member_scores.get(res[2], {}).items()})
                candidates.append(StoredCandidate(candidate, None if res[7] is None else float(res[7]),
                                                  None if res[11] is None else stored(
                                                      f"gallery crop of rank {res[1]} (results)", res[11], decode_png),
                                                  decisions.get(int(res[1]), Decision())))
            probe = self._evidence_by_id(int(row[5]))
            probe_crop = stored("probe crop (searches)", row[8], decode_png)
            probe_hypotheses = stored("probe hypotheses (searches)", row[10], _decode_hypotheses)
        return StoredSearch(
            id=int(row[0]), created_utc=row[1], status=row[2], config=EngineConfig.from_record(json.loads(row[3])),
            provenance=json.loads(row[4]), probe=probe, face=FaceDetection.from_json(json.loads(row[6])),
            seed=int(row[7]),
            probe_crop=probe_crop, probe_crop_box=np.asarray(json.loads(row[9]), dtype=np.float32),
            probe_hypotheses=probe_hypotheses,
            ranking=tuple((str(i), float(s)) for i, s in json.loads(row[11])), candidates=tuple(candidates),
            gallery_id=None if row[12] is None else int(row[12]),
            calibration=None if row[13] is None else json.loads(row[13]))

    def _stored_bytes(self, value: Any) -> bytes:
        """The bytes of a :data:`BLOB_COLUMNS` value: the ``blobs`` row its SHA-256 names, or the value a row
        written before schema 4 holds itself (text as UTF-8)."""
        if not is_blob_reference(value):
            return value.encode("utf-8") if isinstance(value, str) else bytes(value)
        row = self._conn.execute("SELECT data FROM blobs WHERE sha256 = ?", (value,)).fetchone()
        if row is None:
            raise ValueError(f"its stored bytes (SHA-256 {value}) are missing from the case's blobs table")
        return bytes(row[0])

    def _decode_stored(self, what: str, data: Any, decode: Callable[[Any], _Decoded]) -> _Decoded:
        """A stored image or matrix (:meth:`_stored_bytes`), decoded; a damaged or missing one is named (which
        search, which image) instead of surfacing as a decoder traceback."""
        try:
            return decode(self._stored_bytes(data))
        except (OSError, ValueError, TypeError, EOFError, KeyError, zipfile.BadZipFile, zlib.error) as exc:
            raise CaseStoreError(
                f"{self.path}: {what} cannot be decoded ({type(exc).__name__}: {exc}): the case file was damaged or "
                f"edited outside forensic_face. Run 'forensic-face verify {self.path}' to see which rows changed, "
                "and work from a backup copy of the case") from None

    # ---- decisions
    def set_decision(self, search_id: int, rank: int, decision: str, note: str = "",
                     examiner: str | None = None) -> None:
        """Record the examiner's decision on a candidate (history is kept; the latest counts)."""
        if decision not in DECISIONS:
            raise CaseStoreError(f"decision must be one of {DECISIONS}, got {decision!r}")
        who = examiner or self.examiner
        with self._transaction() as conn:
            row = conn.execute("SELECT identity, gallery_sha256 FROM results WHERE search_id = ? AND rank = ?",
                               (search_id, rank)).fetchone()
            if row is None:
                raise CaseStoreError(f"search {search_id} has no candidate at rank {rank}")
            cursor = conn.execute("INSERT INTO decisions (search_id, rank, decision, note, examiner, utc) "
                                  "VALUES (?, ?, ?, ?, ?, ?)", (search_id, rank, decision, note, who, audit.utc_now()))
            self._append(conn, "decision", {
                "search_id": search_id, "rank": rank, "identity": row[0], "gallery_sha256": row[1],
                "decision": decision, "note": note, "examiner": who,
                row_hashes.ROWS_KEY: row_hashes.hash_rows(conn, [("decisions", "id = ?", (cursor.lastrowid,))])},
                actor=who)

    # ---- reviews
    def record_review(self, search_id: int, reviewer: str, verdict: str, note: str = "") -> Review:
        """Record a second examiner's verification of a search's decisions (ACE-V's verification step).

        The reviewer must be someone other than every examiner whose decision stands on the search (carried
        ones included) and than the examiner who ran it: an examiner cannot verify their own work. The decisions
        reviewed are stored with the review, so a later change of a decision does not silently change what was
        verified.
        """
        if verdict not in VERDICTS:
            raise CaseStoreError(f"a review's verdict must be one of {VERDICTS}, got {verdict!r}")
        if not reviewer.strip():
            raise CaseStoreError("a review needs the reviewer's name (--examiner NAME)")
        with self._transaction() as conn:
            decisions = {rank: d for rank, d in self.decisions(search_id).items() if d.decision != "not reviewed"}
            if conn.execute("SELECT 1 FROM searches WHERE id = ?", (search_id,)).fetchone() is None:
                raise CaseStoreError(f"{self.path}: no search {search_id}; known: {self.search_ids()}")
            if not decisions:
                raise CaseStoreError(f"search {search_id} has no decisions to review: the examiner decides on its "
                                     "candidates first ('forensic-face decide')")
            examiners = sorted({d.examiner for d in decisions.values()})
            if reviewer.strip().casefold() in {e.strip().casefold() for e in examiners}:
                raise CaseStoreError(
                    f"{reviewer} made decisions on search {search_id} and cannot review them: a review is the "
                    f"verification by a second examiner; it must be recorded by someone other than "
                    f"{', '.join(examiners)}")
            searched_by = next((e.actor for e in audit.read_entries(conn)
                                if e.action == "search" and e.details.get("search_id") == search_id), "")
            if reviewer.strip().casefold() == searched_by.strip().casefold():
                raise CaseStoreError(
                    f"{reviewer} ran search {search_id} and cannot review it: a review is the verification by a "
                    "second examiner, someone other than the one who searched and decided")
            reviewed = {str(rank): d.to_json() for rank, d in sorted(decisions.items())}
            utc = audit.utc_now()
            cursor = conn.execute(
                "INSERT INTO reviews (search_id, reviewer, verdict, note, decisions_json, utc) VALUES (?, ?, ?, ?, ?, ?)",
                (search_id, reviewer, verdict, note, audit.canonical_json(reviewed), utc))
            review_id = int(cursor.lastrowid or 0)
            self._append(conn, "review", {
                "review_id": review_id, "search_id": search_id, "reviewer": reviewer, "verdict": verdict,
                "note": note, "decisions": reviewed,
                row_hashes.ROWS_KEY: row_hashes.hash_rows(conn, [("reviews", "id = ?", (review_id,))])},
                actor=reviewer)
        return Review(review_id, search_id, reviewer, verdict, note, utc, reviewed)

    def reviews(self, search_id: int | None = None) -> list[Review]:
        """Reviews, oldest first; of one search with ``search_id``."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT id, search_id, reviewer, verdict, note, utc, decisions_json FROM reviews"
                + ("" if search_id is None else " WHERE search_id = ?") + " ORDER BY id",
                () if search_id is None else (search_id,)).fetchall()
        return [Review(int(r[0]), int(r[1]), r[2], r[3], r[4], r[5], json.loads(r[6])) for r in rows]

    # ---- enrollment progress
    def begin_enrollment(self, root: str | Path, config_digest: str, total: int) -> EnrollmentState:
        """Start an enrollment of ``root`` or resume the unfinished one with the same root and config digest."""
        resolved = absolute_path(root)
        with self._transaction() as conn:
            row = conn.execute("SELECT id FROM enrollments WHERE root = ? AND config_digest = ? AND status = "
                               "'running' ORDER BY id DESC LIMIT 1", (resolved, config_digest)).fetchone()
            if row is not None:
                enrollment_id = int(row[0])
                done = conn.execute("SELECT COUNT(*) FROM enrollment_items WHERE enrollment_id = ?",
                                    (enrollment_id,)).fetchone()[0]
                self._append(conn, "enroll", {"event": "resume", "enrollment_id": enrollment_id,
                                                    "root": resolved, "config_digest": config_digest,
                                                    "done": int(done), "total": total})
            else:
                cursor = conn.execute("INSERT INTO enrollments (root, config_digest, started_utc, status, total) "
                                      "VALUES (?, ?, ?, 'running', ?)", (resolved, config_digest, audit.utc_now(), total))
                enrollment_id = int(cursor.lastrowid or 0)
                self._append(conn, "enroll", {
                    "event": "start", "enrollment_id": enrollment_id, "root": resolved, "config_digest": config_digest,
                    "total": total,
                    row_hashes.ROWS_KEY: row_hashes.hash_rows(conn, [("enrollments", "id = ?", (enrollment_id,))])})
        return self.enrollment(enrollment_id)

    def record_enrollment_items(self, enrollment_id: int, items: Sequence[EnrollmentItem]) -> None:
        """Mark a chunk of gallery images as handled, atomically (all of the chunk or none)."""
        if not items:
            return
        for item in items:
            if item.status not in ("done", "problem"):
                raise CaseStoreError(f"enrollment item status must be 'done' or 'problem', got {item.status!r}")
        now = audit.utc_now()
        with self._transaction() as conn:
            row = conn.execute("SELECT status FROM enrollments WHERE id = ?", (enrollment_id,)).fetchone()
            if row is None:
                raise CaseStoreError(f"{self.path}: no enrollment {enrollment_id}")
            if row[0] != "running":
                raise CaseStoreError(f"enrollment {enrollment_id} is already finished")
            conn.executemany(
                "INSERT OR REPLACE INTO enrollment_items (enrollment_id, image_path, identity, sha256, status, "
                "face_json, crop_box_json, reason, utc) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [(enrollment_id, str(i.image_path), i.identity, i.sha256, i.status,
                  None if i.face is None else audit.canonical_json(i.face.to_json()),
                  None if i.crop_box is None else json.dumps([float(v) for v in i.crop_box]), i.reason, now)
                 for i in items])
            self._append(conn, "enroll_progress", {
                "enrollment_id": enrollment_id,
                "items": [[str(i.image_path), i.sha256, i.status, i.reason] for i in items],
                # The chunk's rows are the ones stamped with this transaction's time (no list of paths, which
                # could pass SQLite's limit on bound parameters for a large chunk).
                row_hashes.ROWS_KEY: row_hashes.hash_rows(conn, [
                    ("enrollment_items", "enrollment_id = ? AND utc = ?", (enrollment_id, now))])})

    def enrollment(self, enrollment_id: int) -> EnrollmentState:
        with self._lock:
            row = self._conn.execute("SELECT id, root, config_digest, status, total FROM enrollments WHERE id = ?",
                                     (enrollment_id,)).fetchone()
            if row is None:
                raise CaseStoreError(f"{self.path}: no enrollment {enrollment_id}")
            items = tuple(
                EnrollmentItem(Path(r[0]), r[1], r[2], r[3],
                               None if r[4] is None else FaceDetection.from_json(json.loads(r[4])),
                               None if r[5] is None else np.asarray(json.loads(r[5]), dtype=np.float32), r[6])
                for r in self._conn.execute(
                    "SELECT image_path, identity, sha256, status, face_json, crop_box_json, reason FROM "
                    "enrollment_items WHERE enrollment_id = ? ORDER BY rowid", (enrollment_id,)))
        return EnrollmentState(int(row[0]), Path(row[1]), row[2], row[3], int(row[4]), items)

    def unfinished_enrollments(self) -> list[EnrollmentState]:
        with self._lock:
            ids = [int(r[0]) for r in self._conn.execute("SELECT id FROM enrollments WHERE status = 'running' "
                                                         "ORDER BY id")]
        return [self.enrollment(i) for i in ids]

    def finish_enrollment(self, enrollment_id: int, gallery: Gallery | None = None) -> int | None:
        """Mark an enrollment finished; with ``gallery``, record it too and return the gallery id."""
        with self._transaction() as conn:
            row = conn.execute("SELECT status FROM enrollments WHERE id = ?", (enrollment_id,)).fetchone()
            if row is None:
                raise CaseStoreError(f"{self.path}: no enrollment {enrollment_id}")
            gallery_id = self._record_gallery(conn, gallery) if gallery is not None else None
            conn.execute("UPDATE enrollments SET status = 'done', gallery_id = ? WHERE id = ?",
                         (gallery_id, enrollment_id))
            self._append(conn, "enroll", {
                "event": "finish", "enrollment_id": enrollment_id, "gallery_id": gallery_id,
                row_hashes.ROWS_KEY: row_hashes.hash_rows(conn, [("enrollments", "id = ?", (enrollment_id,))])})
        return gallery_id


def open_case(path: str | Path, examiner: str | None = None) -> CaseStore:
    """:meth:`CaseStore.open`, turning unexpected SQLite failures into :class:`CaseStoreError`."""
    try:
        return CaseStore.open(path, examiner)
    except ForensicFaceError:
        raise
    except (sqlite3.DatabaseError, UnicodeDecodeError) as exc:
        raise CaseStoreError(f"{path}: cannot be read as a case file ({exc})") from None
