"""Galleries recorded in a case: the root, each enrolled image with its SHA-256 and face, and the images that
could not be enrolled. A gallery is recorded once per root and content (:func:`gallery_digest`); searching it
again refers to the same record."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path

from forensic_face.engine import CaseStoreError, Gallery
from forensic_face.store import audit
from forensic_face.store import rows as row_hashes
from forensic_face.store.codecs import absolute_path
from forensic_face.store.records import GalleryRecord


def gallery_digest(gallery: Gallery) -> str:
    items = sorted((e.identity, absolute_path(e.image_path), e.sha256) for e in gallery.entries)
    return hashlib.sha256(audit.canonical_json(items).encode()).hexdigest()


def insert_gallery(conn: sqlite3.Connection, append: audit.AppendEntry, gallery: Gallery) -> int:
    """Record ``gallery`` with its ``gallery`` audit entry (inside the caller's transaction); its id. The same
    gallery (same root, same images and hashes) recorded before: that record's id, and nothing is written."""
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
    append(conn, "gallery", {
        "gallery_id": gallery_id, "root": root, "digest": digest, "num_identities": len(identities),
        "num_images": len(gallery.entries), "num_problems": len(gallery.problems),
        "images": [[e.identity, absolute_path(e.image_path), e.sha256] for e in gallery.entries],
        "problems": [[absolute_path(p.image_path), p.reason] for p in gallery.problems],
        row_hashes.ROWS_KEY: row_hashes.hash_rows(conn, [
            ("galleries", "id = ?", (gallery_id,)), ("gallery_images", "gallery_id = ?", (gallery_id,)),
            ("gallery_problems", "gallery_id = ?", (gallery_id,))])})
    return gallery_id


def load_gallery(conn: sqlite3.Connection, case_path: Path, gallery_id: int) -> GalleryRecord:
    row = conn.execute("SELECT id, root, digest, recorded_utc, num_identities, num_images FROM "
                       "galleries WHERE id = ?", (gallery_id,)).fetchone()
    if row is None:
        raise CaseStoreError(f"{case_path}: no gallery {gallery_id}")
    images = tuple((r[0], Path(r[1]), r[2]) for r in conn.execute(
        "SELECT identity, image_path, sha256 FROM gallery_images WHERE gallery_id = ? ORDER BY id",
        (gallery_id,)))
    problems = tuple((Path(r[0]), r[1]) for r in conn.execute(
        "SELECT image_path, reason FROM gallery_problems WHERE gallery_id = ? ORDER BY id", (gallery_id,)))
    return GalleryRecord(int(row[0]), Path(row[1]), row[2], row[3], int(row[4]), int(row[5]), images, problems)


def load_galleries(conn: sqlite3.Connection, case_path: Path) -> list[GalleryRecord]:
    """Every gallery of the case, oldest first."""
    ids = [int(r[0]) for r in conn.execute("SELECT id FROM galleries ORDER BY id")]
    return [load_gallery(conn, case_path, i) for i in ids]
