"""Row hashes: every row of every case table is hashed into the audit entry of the change that wrote it.

The audit chain (:mod:`forensic_face.store.audit`) proves the log was not edited; the tables themselves (the
searches, results, decisions and case details a report prints, the stored images replay and the window show)
are a second copy that the chain must also cover. So each write records, in its own audit entry, the SHA-256 of
every row it inserted or changed::

    details["rows"] = {table: {key: row_sha256}}      # key: canonical JSON of the primary-key values

A row's hash covers its table name, every column's name and value, and, for blobs (stored PNG/NPY/NPZ images
and matrices), their SHA-256 and length. From schema 4 a search's rows hold the SHA-256 of each stored image (a
``blobs`` row, hashed by the write that added it) instead of its bytes, so the chain covers the digest and the
``blobs`` row the bytes; verify also re-hashes every ``blobs`` row's bytes against its key.

:func:`check_rows` replays those records (a later entry's hash of the same key replaces an earlier one:
enrollments are updated when they finish) and compares them with the rows the file holds now: a row edited,
inserted or deleted outside the program is named with its table and key.
"""

from __future__ import annotations

import hashlib
import json
import math
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from forensic_face.store import audit

#: Every table of a case except the audit trail itself, with its primary-key columns. A new table must be added
#: here (and its rows recorded by the write that makes them), or verify reports it as unknown.
COVERED_TABLES: dict[str, tuple[str, ...]] = {
    "case_meta": ("id",),
    "evidence": ("id",),
    "detections": ("id",),
    "galleries": ("id",),
    "gallery_images": ("id",),
    "gallery_problems": ("id",),
    "searches": ("id",),
    "results": ("id",),
    "result_variants": ("result_id", "ord"),
    "result_similarity": ("result_id", "scale"),
    "decisions": ("id",),
    "reviews": ("id",),
    "enrollments": ("id",),
    "enrollment_items": ("enrollment_id", "image_path"),
    "blobs": ("sha256",),
}

#: Key of the audit details that holds the row hashes of an entry.
ROWS_KEY = "rows"
#: Findings listed one by one before the rest are counted (a deleted search can take thousands of rows along).
MAX_LISTED_FINDINGS = 25


def _cell(value: Any) -> Any:
    """A column value as hashed: blobs by SHA-256 and length, non-finite floats by name (JSON has none)."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        data = bytes(value)
        return {"blob_sha256": hashlib.sha256(data).hexdigest(), "blob_bytes": len(data)}
    if isinstance(value, float) and not math.isfinite(value):
        return {"float": repr(value)}
    return value


def _columns(conn: sqlite3.Connection, table: str) -> list[str]:
    return [str(r[1]) for r in conn.execute(f"PRAGMA table_info({table})")]


def _hash_selected(conn: sqlite3.Connection, table: str, where: str = "", params: Sequence[Any] = ()
                   ) -> dict[str, str]:
    columns = _columns(conn, table)
    key_columns = COVERED_TABLES[table]
    key_index = [columns.index(c) for c in key_columns]
    quoted = ", ".join(f'"{c}"' for c in columns)
    sql = f"SELECT {quoted} FROM {table}" + (f" WHERE {where}" if where else "")
    out: dict[str, str] = {}
    for row in conn.execute(sql, tuple(params)):
        body = audit.canonical_json({"table": table, "row": {c: _cell(v) for c, v in zip(columns, row)}})
        out[audit.canonical_json([row[i] for i in key_index])] = hashlib.sha256(body.encode("utf-8")).hexdigest()
    return out


def hash_rows(conn: sqlite3.Connection, selections: Iterable[tuple[str, str, Sequence[Any]]]
              ) -> dict[str, dict[str, str]]:
    """The ``rows`` record of an audit entry: ``{table: {key: sha256}}`` for each ``(table, where, params)``.

    Call inside the write transaction, after the writes, so what is hashed is what was committed.
    """
    out: dict[str, dict[str, str]] = {}
    for table, where, params in selections:
        hashed = _hash_selected(conn, table, where, params)
        if hashed:
            out.setdefault(table, {}).update(hashed)
    return out


def hash_all_rows(conn: sqlite3.Connection) -> dict[str, dict[str, str]]:
    """Every row of every covered table (recorded when an older case is migrated to row hashing)."""
    present = _tables(conn)
    return hash_rows(conn, ((t, "", ()) for t in COVERED_TABLES if t in present))


def _tables(conn: sqlite3.Connection) -> set[str]:
    return {str(r[0]) for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def describe_key(table: str, key: str) -> str:
    """``decisions row id=3`` from the stored key ``[3]``."""
    values = json.loads(key)
    return f"{table} row " + ", ".join(f"{c}={v!r}" if isinstance(v, str) else f"{c}={v}"
                                       for c, v in zip(COVERED_TABLES.get(table, ()), values))


@dataclass(frozen=True)
class RowCheck:
    """Outcome of comparing the tables with the row hashes in the audit trail."""

    num_rows: int
    #: The first entry that holds row hashes (None: no entry does).
    first_covered_seq: int | None
    #: The migrate entry that hashed rows written before row hashing existed (None: all rows hashed when written).
    legacy_snapshot_seq: int | None
    legacy_snapshot_utc: str
    problems: tuple[str, ...] = field(default=())

    def to_json(self) -> dict[str, Any]:
        return {"num_rows": self.num_rows, "first_covered_seq": self.first_covered_seq,
                "legacy_snapshot_seq": self.legacy_snapshot_seq, "legacy_snapshot_utc": self.legacy_snapshot_utc,
                "problems": list(self.problems)}


def check_rows(conn: sqlite3.Connection, entries: Sequence[audit.AuditEntry]) -> RowCheck:
    """Compare every row of every table with the hash its last audit entry recorded.

    Findings name the table, the row's key and the entry: a row edited (its hash differs), inserted (no entry
    records it) or deleted (recorded, but gone); also tables the program does not know.
    """
    expected: dict[tuple[str, str], tuple[str, int]] = {}
    first_covered: int | None = None
    legacy_seq: int | None = None
    legacy_utc = ""
    for entry in entries:
        rows = entry.details.get(ROWS_KEY)
        if not isinstance(rows, dict):
            continue
        if first_covered is None:
            first_covered = entry.seq
            if entry.action == "migrate":
                legacy_seq, legacy_utc = entry.seq, entry.utc
        for table, hashed in rows.items():
            if isinstance(hashed, dict):
                for key, digest in hashed.items():
                    expected[(str(table), str(key))] = (str(digest), entry.seq)
    present = _tables(conn)
    actual: dict[tuple[str, str], str] = {}
    for table in COVERED_TABLES:
        if table in present:
            for key, digest in _hash_selected(conn, table).items():
                actual[(table, key)] = digest
    findings: list[str] = []
    for table in sorted(present - set(COVERED_TABLES) - {"audit"} - {t for t in present if t.startswith("sqlite_")}):
        findings.append(f"table {table} is not part of a forensic_face case: it was added outside the program")
    for (table, key), digest in sorted(actual.items()):
        recorded = expected.get((table, key))
        if recorded is None:
            findings.append(f"{describe_key(table, key)} was not written by forensic_face (no audit entry records "
                            "it): inserted or re-keyed outside the program")
        elif recorded[0] != digest:
            findings.append(f"{describe_key(table, key)} differs from what audit entry {recorded[1]} recorded: "
                            "edited outside the program")
    for (table, key), (_, seq) in sorted(expected.items()):
        if (table, key) not in actual:
            findings.append(f"{describe_key(table, key)} (recorded by audit entry {seq}) is missing: deleted "
                            "outside the program")
    if len(findings) > MAX_LISTED_FINDINGS:
        more = len(findings) - MAX_LISTED_FINDINGS
        findings = findings[:MAX_LISTED_FINDINGS] + [f"... and {more} more rows like these"]
    return RowCheck(len(actual), first_covered, legacy_seq, legacy_utc, tuple(findings))
