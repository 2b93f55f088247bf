"""The SQL schema of a case file and its migrations.

The schema version is ``PRAGMA user_version``, the number of applied entries of :data:`MIGRATIONS`; opening an
older case applies the rest, each in its own transaction with a ``migrate`` audit entry
(:meth:`forensic_face.store.case_store.CaseStore.open`). ``PRAGMA application_id`` marks the file as a
forensic_face case. Released migrations are never edited: a case written by them must open, verify and replay
as it did.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from forensic_face.engine import CaseStoreError
from forensic_face.store import audit
from forensic_face.store import rows as row_hashes

#: PRAGMA application_id of case files: ASCII "FFCE".
APPLICATION_ID = 0x46464345

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
#: the best hypothesis of many candidates) is stored once; the columns of
#: :data:`forensic_face.store.blobs.BLOB_COLUMNS` hold that SHA-256 (TEXT). Rows written before keep their values
#: in those columns (image bytes as BLOB, the similarity matrices' column labels as JSON text): they are read as
#: they are and never rewritten, so migrating changes no stored row and no row hash.
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

#: Schema migrations; ``PRAGMA user_version`` = number applied. Append, never edit, released entries.
MIGRATIONS: tuple[str, ...] = (_SCHEMA_V1, _SCHEMA_V2, _SCHEMA_V3, _SCHEMA_V4)
SCHEMA_VERSION = len(MIGRATIONS)
#: The first schema whose writes record row hashes.
ROW_HASHES_SINCE_SCHEMA = 2
#: Tables whose rows a migration changes (a new column enters every row hash): its migrate entry records their
#: new hashes, or verify would report every such row as edited.
REHASHED_BY_MIGRATION: dict[int, tuple[str, ...]] = {3: ("decisions",)}
#: The actor of a migration of a case opened with no examiner's name known (neither given nor in the case).
MIGRATION_ACTOR = "forensic_face (schema migration)"


def split_statements(script: str) -> list[str]:
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


def apply_migration(conn: sqlite3.Connection, number: int) -> None:
    """Bring the schema from version ``number - 1`` to ``number`` (inside the caller's transaction)."""
    for statement in split_statements(MIGRATIONS[number - 1]):
        conn.execute(statement)
    conn.execute(f"PRAGMA user_version={number}")


def migration_details(conn: sqlite3.Connection, number: int) -> dict[str, Any]:
    """The ``migrate`` audit entry's details of an existing case brought to version ``number``: with the row
    hashes of the rows it covers from now on (all of them when row hashing begins, the changed ones after)."""
    details: dict[str, Any] = {"from": number - 1, "to": number}
    if number == ROW_HASHES_SINCE_SCHEMA:
        # Rows written before row hashing are covered from here on, not from their writing.
        details[row_hashes.ROWS_KEY] = row_hashes.hash_all_rows(conn)
    elif number in REHASHED_BY_MIGRATION:
        details[row_hashes.ROWS_KEY] = row_hashes.hash_rows(conn, [(t, "", ()) for t in REHASHED_BY_MIGRATION[number]])
    return details
