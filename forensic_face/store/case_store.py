"""A case as one SQLite file (``.ffcase``): :class:`CaseStore`, its connection and transactions, and the writes
and reads of evidence, galleries, searches, decisions and reviews.

Integrity rules:

- Originals are never written. Evidence is hashed from the bytes :func:`forensic_face.engine.imaging.load_image` read.
- Every change runs in one ``BEGIN IMMEDIATE`` transaction together with its audit entry, so a change and its
  log entry are committed together or not at all. WAL journal with ``synchronous=FULL``: killing the process
  at any moment leaves the last committed state, which reopens.
- The schema version is ``PRAGMA user_version``; :data:`forensic_face.store.schema.MIGRATIONS` brings older case
  files up to date (each migration in its own transaction, logged). ``PRAGMA application_id`` marks the file as
  a forensic_face case.
- Everything a report needs (probe crop, best hypotheses, degraded gallery variants, similarity matrices) is
  stored as PNG/NPY blobs, so reports need no recomputation; each blob once, keyed by its SHA-256 (``blobs``,
  schema 4), however many searches and candidates show it.

The topics the store is made of, one module each: the records it hands out (:mod:`~forensic_face.store.records`),
how values are encoded (:mod:`~forensic_face.store.codecs`), the content-addressed images
(:mod:`~forensic_face.store.blobs`), the SQL schema and migrations (:mod:`~forensic_face.store.schema`), galleries
(:mod:`~forensic_face.store.galleries`), enrollment progress (:mod:`~forensic_face.store.enrollment`), decisions
carried to a new search of the same probe (:mod:`~forensic_face.store.carry`), the audit chain
(:mod:`~forensic_face.store.audit`) and the row hashes it records (:mod:`~forensic_face.store.rows`).
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from forensic_face.engine import (
    Candidate,
    CaseStoreError,
    EngineConfig,
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
from forensic_face.store.blobs import blob_selections, decode_stored, store_blob
from forensic_face.store.carry import carry_decisions
from forensic_face.store.codecs import (
    absolute_path,
    decode_hypotheses,
    decode_labels,
    decode_npy,
    decode_png,
    decode_text,
    encode_hypotheses,
    encode_npy,
    encode_png,
    jsonable,
)
from forensic_face.store.enrollment import (
    load_enrollment,
    load_unfinished,
    mark_finished,
    mark_items_handled,
    start_or_resume,
)
from forensic_face.store.galleries import insert_gallery, load_galleries, load_gallery
from forensic_face.store.records import (
    DECISIONS,
    ROLES,
    VERDICTS,
    CarriedDecisions,
    CaseInfo,
    Decision,
    EnrollmentItem,
    EnrollmentState,
    EvidenceItem,
    GalleryRecord,
    Review,
    SearchSummary,
    StoredCandidate,
    StoredSearch,
)
from forensic_face.store.schema import (
    APPLICATION_ID,
    MIGRATION_ACTOR,
    SCHEMA_VERSION,
    apply_migration,
    migration_details,
)

if TYPE_CHECKING:
    from forensic_face.calibration import Calibration

log = logging.getLogger(__name__)

_Decoded = TypeVar("_Decoded")

CASE_SUFFIX = ".ffcase"
#: Selects the rows of a search's candidates (result_variants, result_similarity) for row hashing.
_RESULTS_OF_SEARCH = "result_id IN (SELECT id FROM results WHERE search_id = ?)"


def default_case_path(name: str) -> Path:
    """``data_dir()/cases/<name>.ffcase``."""
    from forensic_face.paths import data_dir

    folder = data_dir() / "cases"
    folder.mkdir(parents=True, exist_ok=True)
    return folder / (name if name.endswith(CASE_SUFFIX) else name + CASE_SUFFIX)


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
            conn.text_factory = decode_text
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
                with self._transaction() as conn:
                    apply_migration(conn, number)
                    if version > 0:  # an existing case is upgraded (a new one is built from version 0 silently)
                        # A migration is the program's step, not an examiner's: an old case without an
                        # examiner's name (the window once allowed none) must still open, to be read or verified.
                        self._append(conn, "migrate", migration_details(conn, number),
                                     actor=self.examiner or MIGRATION_ACTOR)
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
            return self._append(self._conn, action, jsonable(details))

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
    def record_gallery(self, gallery: Gallery) -> int:
        """Record an enrolled gallery (root, identities, per-image SHA-256, problems); returns its id.

        Recording the same gallery (same root, same images and hashes) again returns the existing id.
        """
        with self._transaction() as conn:
            return insert_gallery(conn, self._append, gallery)

    def gallery(self, gallery_id: int) -> GalleryRecord:
        with self._lock:
            return load_gallery(self._conn, self.path, gallery_id)

    def galleries(self) -> list[GalleryRecord]:
        with self._lock:
            return load_galleries(self._conn, self.path)

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
        to likelihood ratios, chosen by the calibration module's one rule (``calibration_for_result``). Gallery
        variants are stored with the images they carry (:meth:`Engine.with_gallery_images` renders them); a
        variant without its image is not stored.
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
                gallery_id = insert_gallery(conn, self._append, gallery) if gallery is not None else None
                provenance = jsonable(result.provenance)
                added: set[str] = set()  # digests of the blobs this search adds (the others are stored already)

                def blob(data: bytes, fmt: str) -> str:
                    return store_blob(conn, data, fmt, added)

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
                     blob(encode_hypotheses(result.probe_hypotheses), "hypotheses-npz")))
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
                carried = carry_decisions(conn, search_id, evidence_id, result)
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
                        ("decisions", "search_id = ?", (search_id,)), *blob_selections(added)])})
        log.info("stored search %d (%d candidates, %d new stored images)", search_id, len(result.candidates),
                 len(added))
        return search_id

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
                return decode_stored(self._conn, self.path, f"search {search_id}'s {what}", data, decode)

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
                                                       "(result_similarity)", paths, decode_labels)
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
            probe_hypotheses = stored("probe hypotheses (searches)", row[10], decode_hypotheses)
        return StoredSearch(
            id=int(row[0]), created_utc=row[1], status=row[2], config=EngineConfig.from_record(json.loads(row[3])),
            provenance=json.loads(row[4]), probe=probe, face=FaceDetection.from_json(json.loads(row[6])),
            seed=int(row[7]),
            probe_crop=probe_crop, probe_crop_box=np.asarray(json.loads(row[9]), dtype=np.float32),
            probe_hypotheses=probe_hypotheses,
            ranking=tuple((str(i), float(s)) for i, s in json.loads(row[11])), candidates=tuple(candidates),
            gallery_id=None if row[12] is None else int(row[12]),
            calibration=None if row[13] is None else json.loads(row[13]))

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
        with self._transaction() as conn:
            enrollment_id = start_or_resume(conn, self._append, root, config_digest, total)
        return self.enrollment(enrollment_id)

    def record_enrollment_items(self, enrollment_id: int, items: Sequence[EnrollmentItem]) -> None:
        """Mark a chunk of gallery images as handled, atomically (all of the chunk or none)."""
        if not items:
            return
        with self._transaction() as conn:
            mark_items_handled(conn, self._append, self.path, enrollment_id, items)

    def enrollment(self, enrollment_id: int) -> EnrollmentState:
        with self._lock:
            return load_enrollment(self._conn, self.path, enrollment_id)

    def unfinished_enrollments(self) -> list[EnrollmentState]:
        with self._lock:
            return load_unfinished(self._conn, self.path)

    def finish_enrollment(self, enrollment_id: int, gallery: Gallery | None = None) -> int | None:
        """Mark an enrollment finished; with ``gallery``, record it too and return the gallery id."""
        with self._transaction() as conn:
            return mark_finished(conn, self._append, self.path, enrollment_id, gallery)


def open_case(path: str | Path, examiner: str | None = None) -> CaseStore:
    """:meth:`CaseStore.open`, turning unexpected SQLite failures into :class:`CaseStoreError`."""
    try:
        return CaseStore.open(path, examiner)
    except ForensicFaceError:
        raise
    except (sqlite3.DatabaseError, UnicodeDecodeError) as exc:
        raise CaseStoreError(f"{path}: cannot be read as a case file ({exc})") from None
