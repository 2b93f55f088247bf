"""Append-only, hash-chained audit trail of a case.

Every processing step (import, detect, manual_box, enroll, search, decision, export, verify, replay...) appends
one entry::

    entry_hash = SHA-256(prev_hash + canonical JSON of {seq, utc, actor, action, software, details})

where ``prev_hash`` is the previous entry's ``entry_hash`` (64 zeros for the first). Editing, inserting or
deleting an entry breaks the chain at that point; SQLite triggers abort UPDATE and DELETE on the table so the
program itself can only append. Someone who removes the triggers and rewrites every later hash can forge a
consistent chain, which is why reports and ``verify`` print the head hash: record it outside the case file
(case notes, an e-mail, a signed report) to anchor the chain.
"""

from __future__ import annotations

import getpass
import hashlib
import json
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import forensic_face

GENESIS_HASH = "0" * 64

ACTIONS = frozenset({
    "create", "migrate", "import", "detect", "manual_box", "enroll", "enroll_progress", "gallery", "search",
    "decision", "review", "calibration", "export", "verify", "replay", "note", "seal",
    "report_choice",
})

AUDIT_SCHEMA = """
CREATE TABLE audit (
    seq INTEGER PRIMARY KEY,
    utc TEXT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    software TEXT NOT NULL,
    details_json TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    entry_hash TEXT NOT NULL UNIQUE
);
CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only: entries cannot be changed'); END;
CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only: entries cannot be deleted'); END;
"""

AUDIT_TRIGGERS = ("audit_no_update", "audit_no_delete")


def utc_now() -> str:
    """ISO 8601 UTC timestamp with microseconds, e.g. ``2026-11-28T04:14:23.123456Z``."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def current_actor() -> str:
    """The operating-system user running the program."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry / no login name (containers)
        return "unknown"


def canonical_json(value: Any) -> str:
    """Deterministic JSON: sorted keys, no whitespace, UTF-8 text. What the hash is computed over."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def entry_hash(prev_hash: str, seq: int, utc: str, actor: str, action: str, software: str,
               details: dict[str, Any]) -> str:
    body = canonical_json({"seq": seq, "utc": utc, "actor": actor, "action": action, "software": software,
                           "details": details})
    return hashlib.sha256((prev_hash + body).encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class AuditEntry:
    seq: int
    utc: str
    actor: str
    action: str
    software: str
    details: dict[str, Any]
    prev_hash: str
    entry_hash: str


@dataclass(frozen=True)
class ChainCheck:
    """Outcome of walking the chain. ``first_broken_seq`` is None when intact."""

    ok: bool
    num_entries: int
    head_hash: str
    first_broken_seq: int | None = None
    reason: str = ""
    triggers_present: bool = True

    def to_json(self) -> dict[str, Any]:
        return {"ok": self.ok, "num_entries": self.num_entries, "head_hash": self.head_hash,
                "first_broken_seq": self.first_broken_seq, "reason": self.reason,
                "triggers_present": self.triggers_present}


def append_entry(conn: sqlite3.Connection, action: str, details: dict[str, Any], actor: str | None = None) -> AuditEntry:
    """Append one entry. Call inside the write transaction of the change it records (same commit or none)."""
    if action not in ACTIONS:
        raise ValueError(f"unknown audit action {action!r}; known: {sorted(ACTIONS)}")
    row = conn.execute("SELECT seq, entry_hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
    seq, prev = (1, GENESIS_HASH) if row is None else (int(row[0]) + 1, str(row[1]))
    utc = utc_now()
    who = actor or current_actor()
    software = f"forensic_face {forensic_face.__version__}"
    # Round-trip through canonical JSON so what is hashed is exactly what is stored and read back.
    details_text = canonical_json(details)
    stored_details = json.loads(details_text)
    digest = entry_hash(prev, seq, utc, who, action, software, stored_details)
    conn.execute(
        "INSERT INTO audit (seq, utc, actor, action, software, details_json, prev_hash, entry_hash) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (seq, utc, who, action, software, details_text, prev, digest),
    )
    return AuditEntry(seq, utc, who, action, software, stored_details, prev, digest)


#: How the store's topic modules (galleries, enrollment) log a change: ``append(conn, action, details)`` appends
#: an entry attributed to the examiner working on the case, inside the transaction of the change
#: (``CaseStore._append`` in :mod:`forensic_face.store.case_store`).
AppendEntry = Callable[[sqlite3.Connection, str, dict[str, Any]], AuditEntry]


def read_entries(conn: sqlite3.Connection) -> list[AuditEntry]:
    rows = conn.execute(
        "SELECT seq, utc, actor, action, software, details_json, prev_hash, entry_hash FROM audit ORDER BY seq"
    ).fetchall()
    out = []
    for seq, utc, actor, action, software, details_json, prev, digest in rows:
        try:
            details = json.loads(details_json)
        except (TypeError, json.JSONDecodeError):
            details = {"unparseable_details": str(details_json)}
        out.append(AuditEntry(int(seq), str(utc), str(actor), str(action), str(software), details, str(prev),
                              str(digest)))
    return out


def check_chain(conn: sqlite3.Connection) -> ChainCheck:
    """Walk the chain from the first entry; report the first entry that breaks it and why."""
    triggers = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'")}
    triggers_present = all(t in triggers for t in AUDIT_TRIGGERS)
    rows = conn.execute(
        "SELECT seq, utc, actor, action, software, details_json, prev_hash, entry_hash FROM audit ORDER BY seq"
    ).fetchall()
    prev = GENESIS_HASH
    expected_seq = 1
    for seq, utc, actor, action, software, details_json, prev_hash, digest in rows:
        broken = None
        if seq != expected_seq:
            if seq > expected_seq:
                broken = (expected_seq, f"entries {expected_seq}..{seq - 1} are missing (deleted)")
            else:
                broken = (seq, f"entry {seq} is out of sequence (expected {expected_seq})")
        elif prev_hash != prev:
            broken = (seq, f"entry {seq}'s prev_hash {str(prev_hash)[:16]}... does not match entry {seq - 1}'s "
                           f"hash {prev[:16]}... (an entry before it was removed, inserted or rewritten)")
        else:
            try:
                details = json.loads(details_json)
                recomputed = entry_hash(str(prev_hash), int(seq), str(utc), str(actor), str(action), str(software),
                                        details)
            except (TypeError, ValueError):
                recomputed = ""
            if recomputed != digest:
                broken = (seq, f"entry {seq} ({action}) was edited: its content hashes to "
                               f"{recomputed[:16] or 'nothing (unparseable)'}... but it records {str(digest)[:16]}...")
        if broken is not None:
            return ChainCheck(False, len(rows), str(rows[-1][7]), broken[0], broken[1], triggers_present)
        prev = str(digest)
        expected_seq += 1
    if not triggers_present:
        return ChainCheck(False, len(rows), prev, None,
                          "the append-only triggers on the audit table were removed; entries could have been "
                          "rewritten consistently", False)
    return ChainCheck(True, len(rows), prev)
