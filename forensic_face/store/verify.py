"""Case verification: re-hash every evidence file and walk the audit chain.

:func:`verify_case` answers "is this case intact?" with precise findings: which evidence file is missing or
changed (expected vs actual SHA-256), whether the evidence table still agrees with what the audit trail recorded
at import, which audit entry first breaks the hash chain and why, and SQLite's own integrity checks.
"""

from __future__ import annotations

import logging
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from forensic_face.engine.errors import CaseStoreError
from forensic_face.engine.imaging import sha256_file
from forensic_face.store import audit
from forensic_face.store.case_store import CaseStore, open_case

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FileCheck:
    """One re-hashed file. ``status``: ok | missing | changed | unreadable."""

    kind: str
    ref: str
    path: str
    expected_sha256: str
    actual_sha256: str | None
    status: str
    detail: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "ref": self.ref, "path": self.path, "expected_sha256": self.expected_sha256,
                "actual_sha256": self.actual_sha256, "status": self.status, "detail": self.detail}


@dataclass(frozen=True)
class VerificationReport:
    case_path: Path
    files: tuple[FileCheck, ...]
    chain: audit.ChainCheck
    #: Disagreements between tables and the audit trail, and SQLite integrity problems.
    problems: tuple[str, ...] = field(default=())
    utc: str = ""

    @property
    def evidence_ok(self) -> bool:
        return all(f.status == "ok" for f in self.files)

    @property
    def ok(self) -> bool:
        return self.evidence_ok and self.chain.ok and not self.problems

    def to_json(self) -> dict[str, Any]:
        return {"case": str(self.case_path), "utc": self.utc, "ok": self.ok, "evidence_ok": self.evidence_ok,
                "files": [f.to_json() for f in self.files], "audit_chain": self.chain.to_json(),
                "problems": list(self.problems)}

    def summary_lines(self) -> list[str]:
        """Human-readable outcome, one finding per line."""
        lines = [f"Case {self.case_path}: {'INTACT' if self.ok else 'NOT INTACT'} (checked {self.utc})"]
        num_ok = sum(f.status == "ok" for f in self.files)
        lines.append(f"Files: {num_ok} of {len(self.files)} match their recorded SHA-256")
        for f in self.files:
            if f.status == "missing":
                lines.append(f"  MISSING {f.kind} {f.ref}: {f.path} (expected SHA-256 {f.expected_sha256})")
            elif f.status == "changed":
                lines.append(f"  CHANGED {f.kind} {f.ref}: {f.path}\n"
                             f"          expected SHA-256 {f.expected_sha256}\n"
                             f"          actual   SHA-256 {f.actual_sha256}")
            elif f.status != "ok":
                lines.append(f"  UNREADABLE {f.kind} {f.ref}: {f.path} ({f.detail})")
        if self.chain.ok:
            lines.append(f"Audit trail: {self.chain.num_entries} entries, hash chain intact; "
                         f"head hash {self.chain.head_hash}")
        else:
            where = f" at entry {self.chain.first_broken_seq}" if self.chain.first_broken_seq is not None else ""
            lines.append(f"Audit trail: BROKEN{where}: {self.chain.reason}")
        for problem in self.problems:
            lines.append(f"Problem: {problem}")
        return lines


def _check_file(kind: str, ref: str, path: str, expected: str) -> FileCheck:
    p = Path(path)
    if not p.exists():
        return FileCheck(kind, ref, path, expected, None, "missing", "file not found")
    try:
        actual = sha256_file(p)
    except OSError as exc:
        return FileCheck(kind, ref, path, expected, None, "unreadable", str(exc.strerror or exc))
    return FileCheck(kind, ref, path, expected, actual, "ok" if actual == expected else "changed")


def _cross_check_imports(conn: sqlite3.Connection) -> list[str]:
    """The evidence table must agree with the import entries of the audit trail."""
    imported: dict[int, tuple[str, str]] = {}
    for entry in audit.read_entries(conn):
        if entry.action == "import" and "evidence_id" in entry.details:
            imported[int(entry.details["evidence_id"])] = (str(entry.details.get("path")),
                                                           str(entry.details.get("sha256")))
    problems = []
    rows = conn.execute("SELECT id, path, sha256 FROM evidence ORDER BY id").fetchall()
    for evidence_id, path, sha in rows:
        logged = imported.pop(int(evidence_id), None)
        if logged is None:
            problems.append(f"evidence {evidence_id} ({path}) has no import entry in the audit trail")
        elif logged != (path, sha):
            problems.append(f"evidence {evidence_id} differs from its import entry: table says {path} / {sha}, "
                            f"audit trail says {logged[0]} / {logged[1]}")
    for evidence_id, (path, _) in sorted(imported.items()):
        problems.append(f"evidence {evidence_id} ({path}) was logged as imported but is missing from the case")
    return problems


def verify_store(store: CaseStore, check_galleries: bool = True) -> VerificationReport:
    """Verify an open case (see :func:`verify_case`)."""
    conn = store.connection
    files = [_check_file("evidence", f"#{item.id} ({item.role})", str(item.path), item.sha256)
             for item in store.evidence_items()]
    if check_galleries:
        seen: set[tuple[str, str]] = set()
        for gallery in store.galleries():
            for identity, path, sha in gallery.images:
                key = (str(path), sha)
                if key not in seen:
                    seen.add(key)
                    files.append(_check_file("gallery image", f"gallery {gallery.id}, {identity}", str(path), sha))
    problems: list[str] = []
    try:
        integrity = [r[0] for r in conn.execute("PRAGMA integrity_check")]
        if integrity != ["ok"]:
            problems.append("SQLite integrity check failed: " + "; ".join(integrity[:5]))
        fk = conn.execute("PRAGMA foreign_key_check").fetchall()
        if fk:
            problems.append(f"{len(fk)} rows reference missing records (first: table {fk[0][0]}, row {fk[0][1]})")
        chain = audit.check_chain(conn)
        problems.extend(_cross_check_imports(conn))
    except sqlite3.DatabaseError as exc:
        raise CaseStoreError(f"{store.path}: cannot be verified, the file is damaged ({exc})") from None
    return VerificationReport(store.path, tuple(files), chain, tuple(problems), audit.utc_now())


def verify_case(path: str | Path, check_galleries: bool = True, record: bool = True) -> VerificationReport:
    """Re-hash every evidence (and gallery) file from its original path and walk the audit chain.

    ``record``: append a ``verify`` entry with the outcome to the audit trail (after checking).
    """
    with open_case(path) as store:
        report = verify_store(store, check_galleries=check_galleries)
        if record:
            store.log_action("verify", {
                "ok": report.ok, "num_files": len(report.files),
                "files_not_ok": [f.to_json() for f in report.files if f.status != "ok"],
                "chain_ok": report.chain.ok, "chain_entries": report.chain.num_entries,
                "first_broken_seq": report.chain.first_broken_seq, "head_hash": report.chain.head_hash,
                "problems": list(report.problems)})
    log.info("verified %s: %s", path, "intact" if report.ok else "NOT intact")
    return report
