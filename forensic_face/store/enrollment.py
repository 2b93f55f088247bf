"""Enrollment progress kept in the case, so an enrollment interrupted (closed window, crash, power cut) resumes
where it stopped: an ``enrollments`` row per run of a gallery root and engine configuration, and an
``enrollment_items`` row per image handled, written a chunk at a time with the chunk's audit entry."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from forensic_face.engine import CaseStoreError, FaceDetection, Gallery
from forensic_face.store import audit
from forensic_face.store import rows as row_hashes
from forensic_face.store.codecs import absolute_path
from forensic_face.store.galleries import insert_gallery
from forensic_face.store.records import EnrollmentItem, EnrollmentState


def start_or_resume(conn: sqlite3.Connection, append: audit.AppendEntry, root: str | Path, config_digest: str,
                    total: int) -> int:
    """The id of the unfinished enrollment of ``root`` with this config digest (logged as resumed), or of a new
    one (logged as started)."""
    resolved = absolute_path(root)
    row = conn.execute("SELECT id FROM enrollments WHERE root = ? AND config_digest = ? AND status = "
                       "'running' ORDER BY id DESC LIMIT 1", (resolved, config_digest)).fetchone()
    if row is not None:
        enrollment_id = int(row[0])
        done = conn.execute("SELECT COUNT(*) FROM enrollment_items WHERE enrollment_id = ?",
                            (enrollment_id,)).fetchone()[0]
        append(conn, "enroll", {"event": "resume", "enrollment_id": enrollment_id, "root": resolved,
                                "config_digest": config_digest, "done": int(done), "total": total})
        return enrollment_id
    cursor = conn.execute("INSERT INTO enrollments (root, config_digest, started_utc, status, total) "
                          "VALUES (?, ?, ?, 'running', ?)", (resolved, config_digest, audit.utc_now(), total))
    enrollment_id = int(cursor.lastrowid or 0)
    append(conn, "enroll", {
        "event": "start", "enrollment_id": enrollment_id, "root": resolved, "config_digest": config_digest,
        "total": total,
        row_hashes.ROWS_KEY: row_hashes.hash_rows(conn, [("enrollments", "id = ?", (enrollment_id,))])})
    return enrollment_id


def _status(conn: sqlite3.Connection, case_path: Path, enrollment_id: int) -> str:
    row = conn.execute("SELECT status FROM enrollments WHERE id = ?", (enrollment_id,)).fetchone()
    if row is None:
        raise CaseStoreError(f"{case_path}: no enrollment {enrollment_id}")
    return str(row[0])


def mark_items_handled(conn: sqlite3.Connection, append: audit.AppendEntry, case_path: Path, enrollment_id: int,
                       items: Sequence[EnrollmentItem]) -> None:
    """Record a chunk of handled images and its ``enroll_progress`` entry (inside the caller's transaction, so
    all of the chunk or none)."""
    for item in items:
        if item.status not in ("done", "problem"):
            raise CaseStoreError(f"enrollment item status must be 'done' or 'problem', got {item.status!r}")
    now = audit.utc_now()
    if _status(conn, case_path, enrollment_id) != "running":
        raise CaseStoreError(f"enrollment {enrollment_id} is already finished")
    conn.executemany(
        "INSERT OR REPLACE INTO enrollment_items (enrollment_id, image_path, identity, sha256, status, "
        "face_json, crop_box_json, reason, utc) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [(enrollment_id, str(i.image_path), i.identity, i.sha256, i.status,
          None if i.face is None else audit.canonical_json(i.face.to_json()),
          None if i.crop_box is None else json.dumps([float(v) for v in i.crop_box]), i.reason, now)
         for i in items])
    append(conn, "enroll_progress", {
        "enrollment_id": enrollment_id,
        "items": [[str(i.image_path), i.sha256, i.status, i.reason] for i in items],
        # The chunk's rows are the ones stamped with this transaction's time (no list of paths, which
        # could pass SQLite's limit on bound parameters for a large chunk).
        row_hashes.ROWS_KEY: row_hashes.hash_rows(conn, [
            ("enrollment_items", "enrollment_id = ? AND utc = ?", (enrollment_id, now))])})


def mark_finished(conn: sqlite3.Connection, append: audit.AppendEntry, case_path: Path, enrollment_id: int,
                  gallery: Gallery | None) -> int | None:
    """Mark an enrollment finished, recording ``gallery`` too (inside the caller's transaction); the gallery's
    id."""
    _status(conn, case_path, enrollment_id)  # an unknown enrollment is refused before anything is written
    gallery_id = insert_gallery(conn, append, gallery) if gallery is not None else None
    conn.execute("UPDATE enrollments SET status = 'done', gallery_id = ? WHERE id = ?", (gallery_id, enrollment_id))
    append(conn, "enroll", {
        "event": "finish", "enrollment_id": enrollment_id, "gallery_id": gallery_id,
        row_hashes.ROWS_KEY: row_hashes.hash_rows(conn, [("enrollments", "id = ?", (enrollment_id,))])})
    return gallery_id


def load_enrollment(conn: sqlite3.Connection, case_path: Path, enrollment_id: int) -> EnrollmentState:
    row = conn.execute("SELECT id, root, config_digest, status, total FROM enrollments WHERE id = ?",
                       (enrollment_id,)).fetchone()
    if row is None:
        raise CaseStoreError(f"{case_path}: no enrollment {enrollment_id}")
    items = tuple(
        EnrollmentItem(Path(r[0]), r[1], r[2], r[3],
                       None if r[4] is None else FaceDetection.from_json(json.loads(r[4])),
                       None if r[5] is None else np.asarray(json.loads(r[5]), dtype=np.float32), r[6])
        for r in conn.execute(
            "SELECT image_path, identity, sha256, status, face_json, crop_box_json, reason FROM "
            "enrollment_items WHERE enrollment_id = ? ORDER BY rowid", (enrollment_id,)))
    return EnrollmentState(int(row[0]), Path(row[1]), row[2], row[3], int(row[4]), items)


def load_unfinished(conn: sqlite3.Connection, case_path: Path) -> list[EnrollmentState]:
    """The enrollments still running (interrupted ones among them), oldest first."""
    ids = [int(r[0]) for r in conn.execute("SELECT id FROM enrollments WHERE status = 'running' ORDER BY id")]
    return [load_enrollment(conn, case_path, i) for i in ids]
