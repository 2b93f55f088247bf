"""Stored images and matrices, each kept once: the ``blobs`` table (schema 4), keyed by the SHA-256 of its bytes.

An image shared by several searches (a gallery portrait, a probe's hypotheses searched again, the best hypothesis
of many candidates) is one ``blobs`` row; the columns of :data:`BLOB_COLUMNS` hold its SHA-256. Rows written
before schema 4 hold the value itself in those columns and are read as they are. A write that adds ``blobs`` rows
records their row hashes in its audit entry (:func:`blob_selections`), like any other row it writes.
"""

from __future__ import annotations

import hashlib
import sqlite3
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from forensic_face.engine import CaseStoreError

_Decoded = TypeVar("_Decoded")

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


def is_blob_reference(value: Any) -> bool:
    """Whether a :data:`BLOB_COLUMNS` value names a ``blobs`` row (64 lowercase hex digits) rather than holding
    the value itself (bytes, or JSON text, which never looks like that)."""
    return isinstance(value, str) and len(value) == 64 and all(c in "0123456789abcdef" for c in value)


def store_blob(conn: sqlite3.Connection, data: bytes, fmt: str, added: set[str]) -> str:
    """Store ``data`` once (:data:`BLOB_COLUMNS`); its SHA-256, which the referring column holds. A digest new
    to the case goes into ``added``, so the write's audit entry records that ``blobs`` row's hash."""
    digest = hashlib.sha256(data).hexdigest()
    cursor = conn.execute("INSERT OR IGNORE INTO blobs (sha256, format, data) VALUES (?, ?, ?)",
                          (digest, fmt, data))
    if cursor.rowcount:
        added.add(digest)
    return digest


def blob_selections(digests: set[str]) -> list[tuple[str, str, tuple[str, ...]]]:
    """Row-hash selections (:func:`rows.hash_rows`) of the ``blobs`` rows with these digests."""
    ordered = sorted(digests)
    chunks = [tuple(ordered[k:k + _DIGESTS_PER_SELECTION]) for k in range(0, len(ordered), _DIGESTS_PER_SELECTION)]
    return [("blobs", f"sha256 IN ({', '.join('?' * len(chunk))})", chunk) for chunk in chunks]


def stored_bytes(conn: sqlite3.Connection, value: Any) -> bytes:
    """The bytes of a :data:`BLOB_COLUMNS` value: the ``blobs`` row its SHA-256 names, or the value a row
    written before schema 4 holds itself (text as UTF-8)."""
    if not is_blob_reference(value):
        return value.encode("utf-8") if isinstance(value, str) else bytes(value)
    row = conn.execute("SELECT data FROM blobs WHERE sha256 = ?", (value,)).fetchone()
    if row is None:
        raise ValueError(f"its stored bytes (SHA-256 {value}) are missing from the case's blobs table")
    return bytes(row[0])


def decode_stored(conn: sqlite3.Connection, case_path: Path, what: str, value: Any,
                  decode: Callable[[Any], _Decoded]) -> _Decoded:
    """A stored image or matrix (:func:`stored_bytes`), decoded; a damaged or missing one is named (which
    search, which image) instead of surfacing as a decoder traceback."""
    try:
        return decode(stored_bytes(conn, value))
    except (OSError, ValueError, TypeError, EOFError, KeyError, zipfile.BadZipFile, zlib.error) as exc:
        raise CaseStoreError(
            f"{case_path}: {what} cannot be decoded ({type(exc).__name__}: {exc}): the case file was damaged or "
            f"edited outside forensic_face. Run 'forensic-face verify {case_path}' to see which rows changed, "
            "and work from a backup copy of the case") from None
