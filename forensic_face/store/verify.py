"""Case verification: re-hash every evidence file and walk the audit chain.

:func:`verify_case` answers "is this case intact?" with precise findings: which evidence file is missing or
changed (expected vs actual SHA-256), whether the evidence table still agrees with what the audit trail recorded
at import, which audit entry first breaks the hash chain and why, and SQLite's own integrity checks.
"""

from __future__ import annotations

import hashlib
import logging
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from forensic_face.engine import CaseStoreError, SealError, sha256_file
from forensic_face.store import audit
from forensic_face.store.blobs import BLOB_COLUMNS, is_blob_reference
from forensic_face.store.case_store import CaseStore, open_case
from forensic_face.store.rows import COVERED_TABLES, RowCheck, check_rows
from forensic_face.store.seal import SealCheck, check_seal

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
    rows: RowCheck
    #: Disagreements between tables and the audit trail, and SQLite integrity problems.
    problems: tuple[str, ...] = field(default=())
    utc: str = ""
    #: The trail compared with a seal kept outside the file (None: no seal was given).
    seal: SealCheck | None = None
    #: Guarantees this check could not give for this case (old case files, no seal, relative paths).
    notes: tuple[str, ...] = field(default=())

    @property
    def evidence_ok(self) -> bool:
        return all(f.status == "ok" for f in self.files)

    @property
    def tables_ok(self) -> bool:
        """Every table row is what the program wrote (row hashes, decisions, candidates, imports)."""
        return not self.rows.problems and not self.problems

    @property
    def ok(self) -> bool:
        return self.evidence_ok and self.chain.ok and self.tables_ok and (self.seal is None or self.seal.ok)

    def to_json(self) -> dict[str, Any]:
        return {"case": str(self.case_path), "utc": self.utc, "ok": self.ok, "evidence_ok": self.evidence_ok,
                "files": [f.to_json() for f in self.files], "audit_chain": self.chain.to_json(),
                "head_hash": self.chain.head_hash, "rows": self.rows.to_json(), "problems": list(self.problems),
                "seal": None if self.seal is None else self.seal.to_json(), "notes": list(self.notes)}

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
            lines.append(f"Audit trail: {self.chain.num_entries} entries, hash chain intact")
        else:
            where = f" at entry {self.chain.first_broken_seq}" if self.chain.first_broken_seq is not None else ""
            lines.append(f"Audit trail: BROKEN{where}: {self.chain.reason}")
        lines.append(f"Head hash: {self.chain.head_hash} (entry {self.chain.num_entries}; record it outside the "
                     "case file, or seal the case)")
        if self.tables_ok:
            lines.append(f"Tables: all {self.rows.num_rows} rows match the hashes and entries of the audit trail")
        else:
            lines.append(f"Tables: NOT as the program wrote them "
                         f"({len(self.rows.problems) + len(self.problems)} findings)")
        for problem in self.rows.problems + self.problems:
            lines.append(f"Problem: {problem}")
        if self.seal is not None:
            state = "matches" if self.seal.ok else "DOES NOT MATCH"
            lines.append(f"Seal {self.seal.seal_path}: {state} (sealed {self.seal.sealed_utc}, entry "
                         f"{self.seal.head_seq}, key {self.seal.key_fingerprint or 'unknown'})")
            lines += [f"  SEAL PROBLEM: {p}" for p in self.seal.problems]
            lines += [f"  note: {n}" for n in self.seal.notes]
        for note in self.notes:
            lines.append(f"Not guaranteed: {note}")
        return lines


def _check_file(store: CaseStore, kind: str, ref: str, recorded: str, expected: str) -> FileCheck:
    p, note = store.locate_recorded_file(recorded)
    path = str(p)
    if not p.exists():
        return FileCheck(kind, ref, path, expected, None, "missing", "file not found" + (f"; {note}" if note else ""))
    try:
        actual = sha256_file(p)
    except OSError as exc:
        return FileCheck(kind, ref, path, expected, None, "unreadable", str(exc.strerror or exc))
    return FileCheck(kind, ref, path, expected, actual, "ok" if actual == expected else "changed", note)


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


def _cross_check_decisions(conn: sqlite3.Connection, entries: list[audit.AuditEntry]) -> list[str]:
    """Every decisions row must be one the audit trail logged (same search, rank, decision, note, examiner), and
    every logged decision must still be in the table. Holds for cases of every schema: the decision entries
    always carried these fields, so a forged decision is caught even in a case written before row hashing."""
    logged: dict[tuple[Any, ...], list[int]] = {}
    for entry in entries:
        d = entry.details
        if entry.action == "decision":
            key = (d.get("search_id"), d.get("rank"), d.get("decision"), d.get("note"), d.get("examiner"), None)
            logged.setdefault(key, []).append(entry.seq)
        elif entry.action == "search":  # decisions carried forward from earlier searches of the same probe
            for c in (d.get("carried_decisions") or {}).get("carried", []):
                key = (d.get("search_id"), c.get("rank"), c.get("decision"), c.get("note"), c.get("examiner"),
                       c.get("from_search_id"))
                logged.setdefault(key, []).append(entry.seq)
    problems = []
    carried_column = "carried_from_search_id" in {str(r[1]) for r in conn.execute("PRAGMA table_info(decisions)")}
    for row_id, search_id, rank, decision, note, examiner, from_search in conn.execute(
            "SELECT id, search_id, rank, decision, note, examiner, "
            f"{'carried_from_search_id' if carried_column else 'NULL'} FROM decisions ORDER BY id"):
        seqs = logged.get((search_id, rank, decision, note, examiner, from_search))
        if seqs:
            seqs.pop(0)
        else:
            problems.append(f"decisions row id={row_id} (search {search_id}, rank {rank}: {decision!r}) matches no "
                            "decision entry of the audit trail: it was written or edited outside the program")
    for key, seqs in logged.items():
        for seq in seqs:
            problems.append(f"the decision of audit entry {seq} (search {key[0]}, rank {key[1]}: {key[2]!r}) is "
                            "missing from the decisions table: it was deleted or edited outside the program")
    return problems


def _cross_check_candidates(conn: sqlite3.Connection, entries: list[audit.AuditEntry]) -> list[str]:
    """Each search's results must be the candidates its ``search`` entry logged (rank, identity, gallery image
    hash, score to 6 decimals); searches must be the ones logged. Holds for cases of every schema."""
    logged: dict[int, tuple[int, set[tuple[int, str, str, float]]]] = {}
    for entry in entries:
        if entry.action == "search" and "search_id" in entry.details:
            logged[int(entry.details["search_id"])] = (entry.seq, {
                (int(c[0]), str(c[1]), str(c[2]), round(float(c[3]), 6))
                for c in entry.details.get("candidates", [])})
    stored: dict[int, set[tuple[int, str, str, float]]] = {
        int(r[0]): set() for r in conn.execute("SELECT id FROM searches")}
    for search_id, rank, identity, sha, score in conn.execute(
            "SELECT search_id, rank, identity, gallery_sha256, score FROM results"):
        stored.setdefault(int(search_id), set()).add((int(rank), str(identity), str(sha), round(float(score), 6)))
    problems = []
    for search_id, candidates in sorted(stored.items()):
        if search_id not in logged:
            problems.append(f"search {search_id} is in the case but no search entry of the audit trail logged it: "
                            "it was written outside the program")
            continue
        seq, expected = logged.pop(search_id)
        for rank, identity, _, score in sorted(candidates - expected):
            problems.append(f"search {search_id}, rank {rank} ({identity}, score {score}) is not the candidate "
                            f"audit entry {seq} logged: results were edited outside the program")
        for rank, identity, _, _ in sorted(expected - candidates):
            problems.append(f"search {search_id}, rank {rank} ({identity}) logged by audit entry {seq} is missing "
                            "from the results table")
    for search_id, (seq, _) in sorted(logged.items()):
        problems.append(f"search {search_id} logged by audit entry {seq} is missing from the case: it was deleted "
                        "outside the program")
    return problems


def _cross_check_blobs(conn: sqlite3.Connection) -> list[str]:
    """Every stored image's bytes hash to the SHA-256 that keys them, and every reference to one (a
    :data:`BLOB_COLUMNS` value that :func:`is_blob_reference`) finds it. The row hashes already catch an edited
    ``blobs`` row; this names what it means (the image a search shows is no longer the one it recorded) and
    catches a reference left dangling."""
    if "blobs" not in {str(r[0]) for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}:
        return []
    problems = []
    stored: set[str] = set()
    for digest, data in conn.execute("SELECT sha256, data FROM blobs ORDER BY sha256"):
        stored.add(str(digest))
        actual = hashlib.sha256(bytes(data) if data is not None else b"").hexdigest()
        if actual != digest:
            problems.append(f"stored image {digest} now holds bytes hashing to {actual}: it was edited outside the "
                            "program, so the searches that show it no longer show what they recorded")
    for table, columns in BLOB_COLUMNS.items():
        keys = COVERED_TABLES[table]
        for column in columns:
            for *key, value in conn.execute(f"SELECT {', '.join(keys)}, {column} FROM {table} WHERE typeof({column}) "
                                            f"= 'text' ORDER BY {', '.join(keys)}"):
                if is_blob_reference(value) and value not in stored:
                    where = ", ".join(f"{k}={v}" for k, v in zip(keys, key))
                    problems.append(f"{table} row {where}: its {column} is stored image {value}, which is missing "
                                    "from the case: deleted outside the program")
    return problems


def _missing_guarantees(rows: RowCheck, seal: SealCheck | None, files: list[FileCheck]) -> list[str]:
    notes = []
    if rows.first_covered_seq is None:
        notes.append("no audit entry holds row hashes, so edits of the tables are caught only for evidence, "
                     "decisions and candidates (checked against their audit entries)")
    elif rows.legacy_snapshot_seq is not None:
        notes.append(f"this case was written before row hashing: its rows were hashed when it was migrated (audit "
                     f"entry {rows.legacy_snapshot_seq}, {rows.legacy_snapshot_utc}), not when they were written, so "
                     "a change made to them before then is caught only for evidence, decisions and candidates "
                     "(checked against their audit entries), not for other columns or stored images")
    if seal is None:
        notes.append("no seal was given: a trail cut short at its end, or rewritten as a whole with consistent "
                     "hashes, cannot be told from the file alone; compare the head hash with one recorded "
                     "elsewhere, or pass --seal")
    relative = [f for f in files if f.detail.startswith("recorded as the relative path")
                or "; recorded as the relative path" in f.detail]
    if relative:
        notes.append(f"{len(relative)} gallery image paths were recorded relative to an unknown working folder (a "
                     "case written before paths were recorded absolute); they were looked up relative to the case "
                     f"file's folder, e.g. {relative[0].path}")
    return notes


def verify_store(store: CaseStore, check_galleries: bool = True, seal_path: str | Path | None = None,
                 public_key_path: str | Path | None = None) -> VerificationReport:
    """Verify an open case (see :func:`verify_case`)."""
    conn = store.connection
    problems: list[str] = []
    try:
        files = [_check_file(store, "evidence", f"#{item.id} ({item.role})", str(item.path), item.sha256)
                 for item in store.evidence_items()]
        if check_galleries:
            seen: set[tuple[str, str]] = set()
            for gallery in store.galleries():
                for identity, path, sha in gallery.images:
                    key = (str(path), sha)
                    if key not in seen:
                        seen.add(key)
                        files.append(_check_file(store, "gallery image", f"gallery {gallery.id}, {identity}",
                                                 str(path), sha))
        integrity = [r[0] for r in conn.execute("PRAGMA integrity_check")]
        if integrity != ["ok"]:
            problems.append("SQLite integrity check failed: " + "; ".join(integrity[:5]))
        fk = conn.execute("PRAGMA foreign_key_check").fetchall()
        if fk:
            problems.append(f"{len(fk)} rows reference missing records (first: table {fk[0][0]}, row {fk[0][1]})")
        chain = audit.check_chain(conn)
        entries = audit.read_entries(conn)
        rows = check_rows(conn, entries)
        problems.extend(_cross_check_imports(conn))
        problems.extend(_cross_check_decisions(conn, entries))
        problems.extend(_cross_check_candidates(conn, entries))
        problems.extend(_cross_check_blobs(conn))
    except (sqlite3.DatabaseError, ValueError, TypeError) as exc:  # ValueError: unparseable JSON in a damaged row
        raise CaseStoreError(f"{store.path}: cannot be verified, the file is damaged ({exc}); work from a backup "
                             "copy of the case") from None
    seal = None
    if seal_path is not None:
        seal = check_seal(seal_path, store.info().case_number, entries, public_key_path)
    return VerificationReport(store.path, tuple(files), chain, rows, tuple(problems), audit.utc_now(), seal,
                              tuple(_missing_guarantees(rows, seal, files)))


def verify_record(report: VerificationReport, purpose: str = "") -> dict[str, Any]:
    """The details of the ``verify`` audit entry that logs a verification."""
    return {"ok": report.ok, "num_files": len(report.files), **({"purpose": purpose} if purpose else {}),
            "files_not_ok": [f.to_json() for f in report.files if f.status != "ok"],
            "chain_ok": report.chain.ok, "chain_entries": report.chain.num_entries,
            "first_broken_seq": report.chain.first_broken_seq, "head_hash": report.chain.head_hash,
            "problems": list(report.rows.problems + report.problems),
            "seal": None if report.seal is None else report.seal.to_json()}


def verify_case(path: str | Path, check_galleries: bool = True, record: bool = True,
                seal_path: str | Path | None = None, public_key_path: str | Path | None = None,
                examiner: str | None = None) -> VerificationReport:
    """Re-hash every evidence (and gallery) file from its original path, walk the audit chain, compare every
    table row with the audit trail and, with ``seal_path``, the trail with a seal kept outside the file.

    ``record``: append a ``verify`` entry with the outcome to the audit trail (after checking), by ``examiner``
    (default: the case's examiner).
    """
    with open_case(path, examiner) as store:
        report = verify_store(store, check_galleries=check_galleries, seal_path=seal_path,
                              public_key_path=public_key_path)
        if record:
            store.log_action("verify", verify_record(report))
    log.info("verified %s: %s", path, "intact" if report.ok else "NOT intact")
    return report


def seal_case(case_path: str | Path, private_key_path: str | Path, out: str | Path,
              examiner: str | None = None) -> dict[str, Any]:
    """Check the trail and the tables, then write a seal of the trail's head signed with the examiner's key to
    ``out`` (never over an existing file, evidence or the case) and log it. Returns the seal document.

    Evidence files are not re-read: a seal anchors the case file's own record, whatever the files do later.
    """
    import json

    from forensic_face.store.output import atomic_output, check_output_path
    from forensic_face.store.seal import make_seal

    with open_case(case_path, examiner) as store:
        target = check_output_path(out, store=store, what="seal")
        report = verify_store(store, check_galleries=False)
        if not (report.chain.ok and report.tables_ok):
            findings = [report.chain.reason] if not report.chain.ok else []
            findings += list(report.rows.problems + report.problems)
            raise SealError(f"{store.path}: is not intact, so it is not sealed ({findings[0]}); run "
                            f"'forensic-face verify {store.path}' for every finding")
        head = store.audit_entries()[-1]
        document = make_seal(store.info().case_number, Path(store.path).resolve(), head, private_key_path)
        with atomic_output(target) as temp:
            temp.write_text(json.dumps(document, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        payload = document["payload"]
        store.log_action("seal", {"seal_file": str(target), "head_seq": payload["head_seq"],
                                  "head_hash": payload["head_hash"], "key_fingerprint": payload["key_fingerprint"],
                                  "sealed_utc": payload["sealed_utc"]})
    log.info("sealed %s at entry %d", case_path, payload["head_seq"])
    return document
