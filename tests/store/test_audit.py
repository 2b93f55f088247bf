"""Audit trail and verification: append-only triggers, hash chain, tampered evidence and log entries caught."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pytest
from tests.store.test_store import make_gallery, make_search_result, write_image

from forensic_face.engine.config import EngineConfig
from forensic_face.engine.imaging import sha256_file
from forensic_face.store import CaseStore, verify_case
from forensic_face.store.audit import GENESIS_HASH, canonical_json, entry_hash


@pytest.fixture()
def populated(tmp_path: Path) -> tuple[Path, Path, Path]:
    """A case with one imported probe (a copy in tmp), a gallery and a search. Returns (case, probe, gallery root)."""
    probe = write_image(tmp_path / "probe.png")
    gallery = make_gallery(tmp_path / "gallery")
    path = tmp_path / "case.ffcase"
    with CaseStore.create(path, "2026-7", "Test", "Examiner") as store:
        store.add_evidence(probe, "probe")
        search_id = store.record_search(make_search_result(probe, gallery), EngineConfig(), gallery=gallery)
        store.set_decision(search_id, 1, "possible lead", "note")
    return path, probe, gallery.root


def test_chain_links_and_hashes(populated: tuple[Path, Path, Path]) -> None:
    path, _, _ = populated
    with CaseStore.open(path) as store:
        entries = store.audit_entries()
    assert [e.seq for e in entries] == list(range(1, len(entries) + 1))
    assert entries[0].prev_hash == GENESIS_HASH
    for previous, entry in zip(entries, entries[1:]):
        assert entry.prev_hash == previous.entry_hash
    e = entries[1]
    assert e.entry_hash == entry_hash(e.prev_hash, e.seq, e.utc, e.actor, e.action, e.software, e.details)
    assert e.action == "import" and e.utc.endswith("Z") and e.actor and e.software.startswith("forensic_face")


def test_append_only_triggers(populated: tuple[Path, Path, Path]) -> None:
    path, _, _ = populated
    with CaseStore.open(path) as store:
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            store.connection.execute("UPDATE audit SET actor = 'mallory' WHERE seq = 2")
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            store.connection.execute("DELETE FROM audit WHERE seq = 3")
        assert store.audit_entries()[1].actor != "mallory"


def test_intact_case_verifies_and_logs_verification(populated: tuple[Path, Path, Path]) -> None:
    path, _, _ = populated
    report = verify_case(path)
    assert report.ok, report.summary_lines()
    assert len(report.files) == 4  # probe + 3 gallery images
    assert "INTACT" in report.summary_lines()[0]
    with CaseStore.open(path) as store:
        last = store.audit_entries()[-1]
    assert last.action == "verify" and last.details["ok"] is True
    assert last.details["head_hash"] == report.chain.head_hash
    assert verify_case(path).ok  # the verify entry itself keeps the chain intact


def test_modified_evidence_byte_is_reported_precisely(populated: tuple[Path, Path, Path]) -> None:
    path, probe, _ = populated
    expected = sha256_file(probe)
    data = bytearray(probe.read_bytes())
    data[-20] ^= 0x01
    probe.write_bytes(bytes(data))
    report = verify_case(path, record=False)
    assert not report.ok and report.chain.ok
    (bad,) = [f for f in report.files if f.status != "ok"]
    assert bad.status == "changed" and bad.path == str(probe.resolve()) and bad.kind == "evidence"
    assert bad.expected_sha256 == expected and bad.actual_sha256 == sha256_file(probe)
    text = "\n".join(report.summary_lines())
    assert "CHANGED evidence" in text and expected in text and bad.actual_sha256 in text


def test_missing_evidence_and_gallery_image(populated: tuple[Path, Path, Path]) -> None:
    path, probe, gallery_root = populated
    probe.unlink()
    shutil.rmtree(gallery_root / "Bob_B")
    report = verify_case(path, record=False)
    statuses = {(f.kind, Path(f.path).name): f.status for f in report.files}
    assert statuses[("evidence", "probe.png")] == "missing"
    assert statuses[("gallery image", "Bob_B_0001.png")] == "missing"
    assert statuses[("gallery image", "Alice_A_0001.png")] == "ok"
    assert verify_case(path, check_galleries=False, record=False).files[0].status == "missing"


def _drop_triggers_and_edit(path: Path, sql: str, params: tuple = ()) -> None:
    raw = sqlite3.connect(path)
    raw.execute("DROP TRIGGER audit_no_update")
    raw.execute("DROP TRIGGER audit_no_delete")
    raw.execute(sql, params)
    raw.commit()
    raw.close()


def test_edited_log_entry_is_caught_at_its_seq(populated: tuple[Path, Path, Path]) -> None:
    path, _, _ = populated
    with CaseStore.open(path) as store:
        entries = store.audit_entries()
    target = next(e for e in entries if e.action == "decision")
    details = dict(target.details, decision="excluded")
    _drop_triggers_and_edit(path, "UPDATE audit SET details_json = ? WHERE seq = ?",
                            (canonical_json(details), target.seq))
    report = verify_case(path, record=False)
    assert not report.ok and report.evidence_ok
    assert report.chain.first_broken_seq == target.seq
    assert "edited" in report.chain.reason and "decision" in report.chain.reason


def test_rehashed_log_entry_breaks_the_next_link(populated: tuple[Path, Path, Path]) -> None:
    """A forger who also recomputes the edited entry's own hash is caught at the next entry."""
    path, _, _ = populated
    with CaseStore.open(path) as store:
        entries = store.audit_entries()
    e = entries[1]
    details = dict(e.details, sha256="f" * 64)
    forged = entry_hash(e.prev_hash, e.seq, e.utc, e.actor, e.action, e.software, details)
    _drop_triggers_and_edit(path, "UPDATE audit SET details_json = ?, entry_hash = ? WHERE seq = ?",
                            (canonical_json(details), forged, e.seq))
    report = verify_case(path, record=False)
    assert report.chain.first_broken_seq == e.seq + 1 and "prev_hash" in report.chain.reason
    # The evidence table no longer agrees with the (forged) import entry either.
    assert any("differs from its import entry" in p for p in report.problems)


def test_deleted_log_entry_and_removed_triggers(populated: tuple[Path, Path, Path]) -> None:
    path, _, _ = populated
    _drop_triggers_and_edit(path, "DELETE FROM audit WHERE seq = 3")
    report = verify_case(path, record=False)
    assert report.chain.first_broken_seq == 3 and "missing" in report.chain.reason
    assert not report.chain.triggers_present


def test_triggers_removed_without_edits_is_not_intact(populated: tuple[Path, Path, Path]) -> None:
    path, _, _ = populated
    _drop_triggers_and_edit(path, "SELECT 1")
    report = verify_case(path, record=False)
    assert report.chain.first_broken_seq is None and not report.ok and "triggers" in report.chain.reason


def test_verify_cli_exit_codes_and_json(populated: tuple[Path, Path, Path], capsys: pytest.CaptureFixture) -> None:
    import argparse

    from forensic_face.cli.case import VerifyCommand

    path, probe, _ = populated
    command = VerifyCommand()
    parser = argparse.ArgumentParser()
    command.add_arguments(parser)
    assert command.run(parser.parse_args([str(path)])) == 0
    assert "INTACT" in capsys.readouterr().out
    probe.write_bytes(probe.read_bytes() + b"x")
    assert command.run(parser.parse_args([str(path), "--json"])) == 1
    data = json.loads(capsys.readouterr().out)
    assert data["ok"] is False and data["files"][0]["status"] == "changed"
    from forensic_face.cli import main

    assert main(["verify", str(path.parent / "nope.ffcase")]) == 2  # could not run: the one error exit code
