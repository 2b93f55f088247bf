"""Issue 34 (part A): tampering with the case's tables, stored images or the trail's end is caught; outputs never
overwrite evidence or a case; seals; long notes and titles; old case files; relative gallery paths.

Each tampering is what an adversary with ``sqlite3`` can do: drop the write-once triggers of schema 2 (the audit
trail's own triggers stay, so the chain check alone would say INTACT) and edit, insert or delete rows.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import stat
import subprocess
from pathlib import Path

import numpy as np
import pytest
from tests.store.test_store import make_gallery, make_search_result, write_image

from forensic_face.cli import main
from forensic_face.engine.config import EngineConfig
from forensic_face.engine.errors import OutputPathError
from forensic_face.report.pdf import write_case_report
from forensic_face.store import CaseStore, verify_case
from forensic_face.store import rows as row_hashes
from forensic_face.store.audit import canonical_json, entry_hash
from forensic_face.store.blobs import BLOB_COLUMNS
from forensic_face.store.schema import MIGRATIONS

needs_pdftotext = pytest.mark.skipif(shutil.which("pdftotext") is None, reason="poppler-utils (pdftotext) missing")


@pytest.fixture()
def populated(tmp_path: Path) -> tuple[Path, Path, Path]:
    """A case with one probe, a gallery, a search and decisions on ranks 1 and 2. Returns (case, probe, gallery)."""
    probe = write_image(tmp_path / "probe.png")
    gallery = make_gallery(tmp_path / "gallery")
    path = tmp_path / "m.ffcase"
    with CaseStore.create(path, "M1", "Test", "Examiner") as store:
        store.add_evidence(probe, "probe")
        search_id = store.record_search(make_search_result(probe, gallery), EngineConfig(), gallery=gallery)
        store.set_decision(search_id, 1, "possible lead", "ears")
        store.set_decision(search_id, 2, "excluded", "hairline")
    return path, probe, gallery.root


def tamper(path: Path, *statements: str, params: tuple = ()) -> None:
    """Edit the case as an adversary would: drop every trigger except the audit trail's, then run SQL."""
    raw = sqlite3.connect(path)
    for (name,) in raw.execute("SELECT name FROM sqlite_master WHERE type = 'trigger' AND name NOT LIKE 'audit_%'"
                               ).fetchall():
        raw.execute(f"DROP TRIGGER {name}")
    for statement in statements:
        raw.execute(statement, params if "?" in statement else ())
    raw.commit()
    raw.close()


def verify_cli(path: Path, capsys: pytest.CaptureFixture, *extra: str) -> tuple[int, str]:
    capsys.readouterr()
    code = main(["verify", str(path), "--no-record", *extra])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


# ---------------------------------------------------------------------------------------- item 2: the tables
@pytest.mark.parametrize(("statements", "expected"), [
    (["UPDATE decisions SET decision = 'possible lead', note = 'forged' WHERE rank = 2"], "decisions row id=2"),
    (["INSERT INTO decisions (search_id, rank, decision, note, examiner, utc) VALUES "
      "(1, 3, 'possible lead', 'forged', 'Examiner', '2026-01-01T00:00:00Z')"], "decisions row id=3"),
    (["UPDATE results SET identity = 'Mallory_M', score = 0.999 WHERE rank = 3"], "results row id=3"),
    (["UPDATE case_meta SET title = 'Another case', examiner = 'Mallory'"], "case_meta row id=1"),
    (["DELETE FROM result_variants", "DELETE FROM result_similarity", "DELETE FROM decisions",
      "DELETE FROM results", "DELETE FROM searches"], "searches row id=1"),
    (["UPDATE searches SET ranking_json = '[]'"], "searches row id=1"),
])
def test_edited_inserted_or_deleted_rows_fail_verification(populated: tuple[Path, Path, Path], statements: list[str],
                                                           expected: str, capsys: pytest.CaptureFixture) -> None:
    path, _, _ = populated
    tamper(path, *statements)
    code, text = verify_cli(path, capsys)
    assert code == 1 and "NOT INTACT" in text
    assert expected in text, text
    assert "hash chain intact" in text  # the trail itself is untouched: the tables are what changed


def test_forged_decision_is_reported_not_verified(populated: tuple[Path, Path, Path], tmp_path: Path) -> None:
    path, _, _ = populated
    tamper(path, "UPDATE decisions SET decision = 'possible lead', note = 'forged' WHERE rank = 2")
    outcome = write_case_report(path, tmp_path / "r.pdf", check_galleries=False)
    assert not outcome.verification.ok
    assert any("decisions row id=2" in p for p in outcome.verification.rows.problems)


def test_unknown_table_is_reported(populated: tuple[Path, Path, Path], capsys: pytest.CaptureFixture) -> None:
    path, _, _ = populated
    tamper(path, "CREATE TABLE notes_of_mallory (x TEXT)")
    code, text = verify_cli(path, capsys)
    assert code == 1 and "notes_of_mallory" in text


def test_intact_case_prints_head_hash_and_row_count(populated: tuple[Path, Path, Path],
                                                     capsys: pytest.CaptureFixture) -> None:
    path, _, _ = populated
    with CaseStore.open(path) as store:
        head = store.audit_entries()[-1].entry_hash
    code, text = verify_cli(path, capsys)
    assert code == 0 and f"Head hash: {head}" in text and "rows match" in text
    assert "no seal was given" in text  # what the file alone cannot show is said


# ------------------------------------------------------------------------------------ item 3: stored images
def _stored(path: Path, query: str) -> tuple[str, bytes]:
    """The SHA-256 a column of the first row of ``query`` holds and the stored bytes it names."""
    raw = sqlite3.connect(path)
    digest = raw.execute(query).fetchone()[0]
    blob = raw.execute("SELECT data FROM blobs WHERE sha256 = ?", (digest,)).fetchone()[0]
    raw.close()
    return digest, blob


def _zeroed(blob: bytes, start: int, length: int) -> bytes:
    return blob[:start] + bytes(length) + blob[start + length:]


def test_zeroed_stored_probe_hypotheses_fail_verification_and_give_clear_errors(
        populated: tuple[Path, Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    path, _, _ = populated
    digest, blob = _stored(path, "SELECT probe_hypotheses_npz FROM searches WHERE id = 1")
    tamper(path, f"UPDATE blobs SET data = ? WHERE sha256 = '{digest}'", params=(_zeroed(blob, 0, 40),))
    code, text = verify_cli(path, capsys)
    assert code == 1 and f"blobs row sha256='{digest}' differs" in text
    assert f"stored image {digest} now holds bytes hashing to" in text
    for argv in (["case", "show", str(path)], ["report", str(path), "--out", str(tmp_path / "r.pdf")],
                 ["replay", str(path), "1"]):
        capsys.readouterr()
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert "probe hypotheses (searches) cannot be decoded" in err and "verify" in err
        assert "Traceback" not in err
    assert not list(tmp_path.glob(".r.pdf.*"))


def test_byte_flips_inside_the_case_file_fail_verification(populated: tuple[Path, Path, Path],
                                                           capsys: pytest.CaptureFixture) -> None:
    """200 flipped bytes in the middle of a stored PNG (found in the file's pages): SQLite's own checks pass."""
    path, _, _ = populated
    _, blob = _stored(path, "SELECT best_probe_png FROM results WHERE rank = 1")
    data = bytearray(path.read_bytes())
    chunk = blob[len(blob) // 2 - 100: len(blob) // 2 + 100]
    offset = data.find(chunk)
    assert offset > 0  # (the same PNG is also inside the search's hypotheses record: either may be hit)
    rng = np.random.default_rng(0)
    for k in range(200):
        data[offset + k] ^= int(rng.integers(1, 256))
    path.write_bytes(bytes(data))
    code, text = verify_cli(path, capsys)
    assert code == 1 and "blobs row sha256=" in text and "edited outside the program" in text, text


@pytest.mark.parametrize("seed", range(4))
def test_random_byte_flips_never_verify_intact_nor_crash(populated: tuple[Path, Path, Path], seed: int,
                                                         capsys: pytest.CaptureFixture) -> None:
    """200 bytes flipped anywhere (headers, schema, pages): verify, show and report refuse with a message."""
    path, _, _ = populated
    data = bytearray(path.read_bytes())
    rng = np.random.default_rng(seed)
    for position in rng.integers(100, len(data), 200):
        data[position] ^= int(rng.integers(1, 256))
    path.write_bytes(bytes(data))
    for argv in (["verify", str(path), "--no-record"], ["case", "show", str(path)],
                 ["report", str(path), "--out", str(path.parent / "r.pdf")]):
        capsys.readouterr()
        code = main(argv)
        captured = capsys.readouterr()
        assert code in (1, 2) and "Traceback" not in captured.err, argv
        assert ": INTACT" not in captured.out, argv


# --------------------------------------------------------------------------- item 4: the trail's end, seals
@pytest.fixture()
def examiner_key(tmp_path: Path, capsys: pytest.CaptureFixture) -> tuple[Path, Path]:
    key = tmp_path / "keys" / "examiner.key"
    key.parent.mkdir()
    assert main(["case", "keygen", str(key)]) == 0
    assert "SHA256:" in capsys.readouterr().out
    return key, key.with_name("examiner.key.pub")


def test_keygen_writes_a_private_key_0600_and_never_overwrites(examiner_key: tuple[Path, Path],
                                                               capsys: pytest.CaptureFixture) -> None:
    key, public = examiner_key
    assert stat.S_IMODE(key.stat().st_mode) == 0o600 and public.is_file()
    before = key.read_bytes()
    assert main(["case", "keygen", str(key)]) == 2
    assert "never overwritten" in capsys.readouterr().err and key.read_bytes() == before


def _rewrite_chain_from(path: Path, seq: int, edit: dict) -> None:
    """What only a forger with the file can do: change entry ``seq``'s details and recompute every later hash."""
    raw = sqlite3.connect(path)
    raw.execute("DROP TRIGGER audit_no_update")
    rows = raw.execute("SELECT seq, utc, actor, action, software, details_json, prev_hash FROM audit "
                       "WHERE seq >= ? ORDER BY seq", (seq,)).fetchall()
    prev = rows[0][6]
    for number, utc, actor, action, software, details_json, _ in rows:
        details = json.loads(details_json)
        if number == seq:
            details.update(edit)
        digest = entry_hash(prev, number, utc, actor, action, software, details)
        raw.execute("UPDATE audit SET details_json = ?, prev_hash = ?, entry_hash = ? WHERE seq = ?",
                    (canonical_json(details), prev, digest, number))
        prev = digest
    raw.executescript("CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit BEGIN SELECT RAISE(ABORT, "
                      "'the audit trail is append-only: entries cannot be changed'); END;")
    raw.commit()
    raw.close()


def test_truncated_trail_passes_alone_but_not_with_a_seal(populated: tuple[Path, Path, Path],
                                                          examiner_key: tuple[Path, Path], tmp_path: Path,
                                                          capsys: pytest.CaptureFixture) -> None:
    path, _, _ = populated
    key, public = examiner_key
    assert verify_case(path).ok  # appends a verify entry: the one the forger will remove
    seal = tmp_path / "m.seal"
    assert main(["case", "seal", str(path), "--key", str(key), "--out", str(seal)]) == 0
    sealed_head = json.loads(seal.read_text())["payload"]["head_seq"]
    raw = sqlite3.connect(path)
    raw.execute("DROP TRIGGER audit_no_delete")
    raw.execute("DELETE FROM audit WHERE seq >= ?", (sealed_head,))
    raw.executescript("CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit BEGIN SELECT RAISE(ABORT, "
                      "'the audit trail is append-only: entries cannot be deleted'); END;")
    raw.commit()
    raw.close()
    code, text = verify_cli(path, capsys)
    assert code == 0, text  # documented: the file alone cannot show a trail cut short at its end
    code, text = verify_cli(path, capsys, "--seal", str(seal), "--public-key", str(public))
    assert code == 1 and "cut short" in text and f"covers {sealed_head} audit entries" in text


def test_rewritten_chain_passes_alone_but_not_with_a_seal(populated: tuple[Path, Path, Path],
                                                          examiner_key: tuple[Path, Path], tmp_path: Path,
                                                          capsys: pytest.CaptureFixture) -> None:
    path, _, _ = populated
    key, public = examiner_key
    seal = tmp_path / "m.seal"
    assert main(["case", "seal", str(path), "--key", str(key), "--out", str(seal)]) == 0
    assert verify_cli(path, capsys, "--seal", str(seal), "--public-key", str(public))[0] == 0
    with CaseStore.open(path) as store:
        create = store.audit_entries()[0]
    assert create.action == "create"
    # Change the case's title in the table and in its create entry, with consistent row and entry hashes.
    tamper(path, "UPDATE case_meta SET title = 'Forged title'")
    from forensic_face.store.rows import hash_rows

    raw = sqlite3.connect(path)
    row_record = hash_rows(raw, [("case_meta", "id = 1", ())])
    raw.close()
    _rewrite_chain_from(path, create.seq, {"title": "Forged title", "rows": row_record})
    code, text = verify_cli(path, capsys)
    assert code == 0, text  # the forgery is consistent inside the file
    code, text = verify_cli(path, capsys, "--seal", str(seal))
    assert code == 1 and "was rewritten" in text and "SEAL PROBLEM" in text


def test_seal_signature_and_key_are_checked(populated: tuple[Path, Path, Path], examiner_key: tuple[Path, Path],
                                            tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    path, _, _ = populated
    key, public = examiner_key
    seal = tmp_path / "m.seal"
    assert main(["case", "seal", str(path), "--key", str(key), "--out", str(seal)]) == 0
    assert main(["case", "seal", str(path), "--key", str(key), "--out", str(seal)]) == 2  # never overwritten
    other = tmp_path / "other.key"
    assert main(["case", "keygen", str(other)]) == 0
    code, text = verify_cli(path, capsys, "--seal", str(seal), "--public-key", f"{other}.pub")
    assert code == 1 and "not with the public key" in text
    document = json.loads(seal.read_text())
    document["payload"]["head_seq"] = 1
    forged = tmp_path / "forged.seal"
    forged.write_text(json.dumps(document))
    code, text = verify_cli(path, capsys, "--seal", str(forged))
    assert code == 1 and "signature does not match" in text
    tamper(path, "UPDATE decisions SET note = 'x'")
    capsys.readouterr()
    assert main(["case", "seal", str(path), "--key", str(key), "--out", str(tmp_path / "late.seal")]) == 2
    assert "not intact" in capsys.readouterr().err and not (tmp_path / "late.seal").exists()


# ------------------------------------------------------------------------ items 1, 10, 15: report --out
def test_report_refuses_to_overwrite_evidence_the_case_or_its_companions(
        populated: tuple[Path, Path, Path], capsys: pytest.CaptureFixture) -> None:
    path, probe, gallery_root = populated
    gallery_image = next(gallery_root.rglob("*.png"))
    wal = Path(f"{path}-wal")
    wal.write_bytes(b"")  # as SQLite leaves it while the case is open elsewhere
    for target, says in ((probe, "evidence #1"), (path, "the case file itself"), (wal, "wal file"),
                         (Path(f"{path}-shm"), "shm file"), (gallery_image, "gallery image")):
        before = target.read_bytes() if target.exists() else None
        capsys.readouterr()
        assert main(["report", str(path), "--out", str(target), "--force"]) == 2, target
        err = capsys.readouterr().err
        assert str(target) in err and says in err and "Choose another file name" in err
        assert (target.read_bytes() if target.exists() else None) == before
    assert verify_case(path, record=False).ok


def test_report_refuses_existing_file_folder_and_unwritable_location(populated: tuple[Path, Path, Path],
                                                                     tmp_path: Path,
                                                                     capsys: pytest.CaptureFixture) -> None:
    path, probe, _ = populated
    existing = tmp_path / "notes.txt"
    existing.write_text("keep me")
    folder = tmp_path / "reports"
    folder.mkdir()
    for target, says in ((existing, "--force"), (folder, "is a folder"), (probe / "r.pdf", "is a file, not a folder"),
                         (tmp_path / "other.ffcase", "case file")):
        if target.name == "other.ffcase":
            CaseStore.create(target, "X", "", "E").close()
        capsys.readouterr()
        assert main(["report", str(path), "--out", str(target)]) == 2, target
        err = capsys.readouterr().err
        assert says in err and "Traceback" not in err, err
    assert existing.read_text() == "keep me"
    assert main(["report", str(path), "--out", str(existing), "--force"]) == 0
    assert existing.read_bytes().startswith(b"%PDF")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders; the path-under-a-file case "
                                              "above covers an unwritable location")
def test_report_in_read_only_folder(populated: tuple[Path, Path, Path], tmp_path: Path,
                                    capsys: pytest.CaptureFixture) -> None:
    path, _, _ = populated
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        assert main(["report", str(path), "--out", str(locked / "r.pdf")]) == 2
        assert "cannot be written to" in capsys.readouterr().err
    finally:
        locked.chmod(0o700)


def test_report_mode_follows_umask_and_failures_leave_no_temporary_file(
        populated: tuple[Path, Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path, _, _ = populated
    out = tmp_path / "out" / "r.pdf"
    previous = os.umask(0o022)
    try:
        write_case_report(path, out, check_galleries=False)
    finally:
        os.umask(previous)
    assert stat.S_IMODE(out.stat().st_mode) == 0o644
    from forensic_face.report import pdf

    def interrupted(self: object, target: Path) -> int:
        target.write_bytes(b"%PDF-partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(pdf._ReportBuilder, "build", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_case_report(path, tmp_path / "out" / "second.pdf", check_galleries=False)
    assert sorted(p.name for p in out.parent.iterdir()) == ["r.pdf"]


def test_report_removes_its_temporary_file_on_sigterm(populated: tuple[Path, Path, Path], tmp_path: Path) -> None:
    """A report killed with SIGTERM while writing leaves neither the target nor a temporary file."""
    import signal
    import sys

    path, _, _ = populated
    out = tmp_path / "killed" / "r.pdf"
    script = (
        "import os, signal, sys\n"
        "from forensic_face.report import pdf\n"
        "def build(self, target):\n"
        "    target.write_bytes(b'%PDF-partial')\n"
        "    os.kill(os.getpid(), signal.SIGTERM)\n"
        "    return 1\n"
        "pdf._ReportBuilder.build = build\n"
        f"pdf.write_case_report({str(path)!r}, {str(out)!r}, check_galleries=False)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert done.returncode == 128 + signal.SIGTERM, done.stderr
    assert list(out.parent.iterdir()) == []


def test_output_check_allows_a_new_file(populated: tuple[Path, Path, Path], tmp_path: Path) -> None:
    from forensic_face.store.output import check_output_path

    path, _, _ = populated
    with CaseStore.open(path) as store:
        assert check_output_path(tmp_path / "new" / "r.pdf", store=store) == tmp_path / "new" / "r.pdf"
        with pytest.raises(OutputPathError, match="evidence #1"):
            check_output_path(Path(os.path.relpath(tmp_path / "probe.png")), store=store, force=True)


# ------------------------------------------------------------------------------ item 6: long notes, titles
@needs_pdftotext
def test_long_note_and_long_title_render(tmp_path: Path) -> None:
    probe = write_image(tmp_path / "probe.png")
    gallery = make_gallery(tmp_path / "gallery")
    title = "Armed robbery of the savings bank at the corner of Main Street and Station Road " * 6 + "TITLE-END"
    note = " ".join(f"word{k}" for k in range(400)) + " NOTE-END"  # about 3,300 characters
    path = tmp_path / "long.ffcase"
    with CaseStore.create(path, "L-1", title, "Examiner") as store:
        store.add_evidence(probe, "probe")
        search_id = store.record_search(make_search_result(probe, gallery), EngineConfig(), gallery=gallery)
        store.set_decision(search_id, 2, "inconclusive", note)
    out = tmp_path / "long.pdf"
    write_case_report(path, out, check_galleries=False)
    text = subprocess.run(["pdftotext", str(out), "-"], check=True, capture_output=True, text=True).stdout
    squashed = " ".join(text.split())
    assert "TITLE-END" in squashed and "NOTE-END" in squashed and "word399" in squashed
    header = next(line for line in text.splitlines() if line.startswith("Case L-1:"))
    assert "…" in header and "TITLE-END" not in header


# ---------------------------------------------------------------------------- item 14: relative gallery paths
def test_relative_gallery_paths_are_recorded_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture) -> None:
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    probe = write_image(Path("probe.png"))
    gallery = make_gallery(Path("gallery"))
    assert not gallery.entries[0].image_path.is_absolute()
    path = Path("case.ffcase")
    with CaseStore.create(path, "R-1", "", "E") as store:
        store.add_evidence(probe, "probe")
        store.record_search(make_search_result(probe, gallery), EngineConfig(), gallery=gallery)
        images = store.galleries()[0].images
        stored = store.search(1)
    assert all(p.is_absolute() for _, p, _ in images)
    assert all(c.candidate.image_path.is_absolute() for c in stored.candidates)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    code, text = verify_cli(work / "case.ffcase", capsys)
    assert code == 0 and "4 of 4 match" in text, text


# --------------------------------------------------------------------------------------- old case files
def _downgrade(new: Path, old: Path, schema: int, relative_gallery_to: Path | None = None) -> None:
    """Write ``old`` as the program at ``schema`` would have: its tables and columns only; at schema 1 no row
    hashes in the audit details, at schema 2 the row hashes of those columns (and, with ``relative_gallery_to``,
    gallery image paths relative to that folder, as a relative gallery argument gave); before schema 4 every
    stored image in its row, not in ``blobs``."""
    source = sqlite3.connect(new)
    target = sqlite3.connect(old)
    for script in MIGRATIONS[:schema]:
        target.executescript(script)
    target.execute("PRAGMA application_id = 1179009861")
    target.execute(f"PRAGMA user_version = {schema}")
    tables = {r[0] for r in target.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND name != 'audit'")}
    blobs = {digest: data.decode() if kind == "json" else data  # labels were JSON text, images bytes
             for digest, kind, data in source.execute("SELECT sha256, format, data FROM blobs")
             } if "blobs" not in tables else {}
    for table in sorted(tables):
        columns = [r[1] for r in target.execute(f"PRAGMA table_info({table})")]
        rows = source.execute(f"SELECT {', '.join(columns)} FROM {table}").fetchall()
        if blobs:
            inline = [k for k, c in enumerate(columns) if c in BLOB_COLUMNS.get(table, ())]
            rows = [tuple(blobs[v] if k in inline and isinstance(v, str) else v for k, v in enumerate(row))
                    for row in rows]
        if rows:
            target.executemany(f"INSERT INTO {table} VALUES ({', '.join('?' * len(columns))})", rows)
    if relative_gallery_to is not None:
        for row_id, image_path in target.execute("SELECT id, image_path FROM gallery_images").fetchall():
            target.execute("UPDATE gallery_images SET image_path = ? WHERE id = ?",
                           (os.path.relpath(image_path, relative_gallery_to), row_id))
    current = {table: row_hashes._hash_selected(target, table) for table in tables}
    prev = "0" * 64
    for seq, utc, actor, action, software, details_json in source.execute(
            "SELECT seq, utc, actor, action, software, details_json FROM audit ORDER BY seq"):
        details = json.loads(details_json)
        for added_later in ("os_user", "carried_decisions"):
            details.pop(added_later, None)
        recorded = details.pop("rows", None)
        if schema >= 2 and recorded is not None:
            details["rows"] = {table: {key: current[table][key] for key in keys} for table, keys in recorded.items()
                               if table in tables}
        digest = entry_hash(prev, seq, utc, actor, action, software, details)
        target.execute("INSERT INTO audit VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                       (seq, utc, actor, action, software, canonical_json(details), prev, digest))
        prev = digest
    target.commit()
    target.close()
    source.close()


def test_old_case_verifies_and_says_what_it_lacks(populated: tuple[Path, Path, Path], tmp_path: Path,
                                                  capsys: pytest.CaptureFixture) -> None:
    path, _, _ = populated
    old = tmp_path / "cases" / "old.ffcase"
    old.parent.mkdir()
    _downgrade(path, old, 1, relative_gallery_to=old.parent)
    code, text = verify_cli(old, capsys)
    assert code == 0, text
    assert "written before row hashing" in text and "hashed when it was migrated" in text
    assert "relative to an unknown working folder" in text
    with CaseStore.open(old) as store:
        migrate = [e for e in store.audit_entries() if e.action == "migrate"]
    assert [e.details["to"] for e in migrate] == [2, 3, 4] and migrate[0].details["rows"]["decisions"]


def test_old_case_forged_before_migration_is_caught_for_decisions_and_candidates(
        populated: tuple[Path, Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    path, _, _ = populated
    old = tmp_path / "old.ffcase"
    _downgrade(path, old, 1)
    tamper(old, "UPDATE decisions SET decision = 'possible lead', note = 'forged' WHERE rank = 2",
           "UPDATE results SET identity = 'Mallory_M' WHERE rank = 3")
    code, text = verify_cli(old, capsys)  # opening migrates it: the forged rows are hashed as they are now
    assert code == 1
    assert "decisions row id=2 (search 1, rank 2: 'possible lead') matches no decision entry" in text
    assert "search 1, rank 3 (Mallory_M" in text


def test_report_dialog_asks_before_replacing_an_existing_file(populated: tuple[Path, Path, Path], tmp_path: Path,
                                                              qtbot) -> None:  # type: ignore[no-untyped-def]
    from forensic_face.gui.report_dialog import ReportDialog

    path, _, _ = populated
    existing = tmp_path / "old-report.pdf"
    existing.write_bytes(b"%PDF-old")
    with CaseStore.open(path) as store:
        dialog = ReportDialog(store, str(tmp_path))
    qtbot.addWidget(dialog)
    dialog.file.setText(str(existing))
    dialog.accept()
    assert dialog.result() == 0 and "already exists" in dialog.error.text() and not dialog.replace_existing()
    dialog.accept()
    assert dialog.result() == 1 and dialog.replace_existing()
