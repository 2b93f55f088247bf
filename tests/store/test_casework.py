"""Issue 33, the case as work that lasts: decisions carried to a re-search of the same probe, the examiner as the
audit actor, a second examiner's review, old case files, and the report's per-probe layout."""

from __future__ import annotations

import dataclasses
import json
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from tests.store.test_integrity import _downgrade, tamper, verify_cli
from tests.store.test_store import make_gallery, make_search_result, write_image

from forensic_face.cli import main
from forensic_face.engine.config import EngineConfig
from forensic_face.engine.errors import CaseStoreError
from forensic_face.engine.results import FaceDetection
from forensic_face.store import CaseStore


@pytest.fixture()
def researched(tmp_path: Path) -> tuple[Path, int, int]:
    """Search 1 of a probe with decisions on Alice (rank 1, possible lead) and Bob (rank 2, excluded), then
    search 2 of the same probe and face against a gallery without Bob, in which Alice is rank 2."""
    probe = write_image(tmp_path / "probe.png")
    first = make_gallery(tmp_path / "g1")
    second = make_gallery(tmp_path / "g2", ("Carol_C", "Alice_A", "Eve_E"))
    path = tmp_path / "c.ffcase"
    with CaseStore.create(path, "C-1", "Re-search", "Ann Examiner") as store:
        store.add_evidence(probe, "probe")
        one = store.record_search(make_search_result(probe, first), EngineConfig(), gallery=first)
        store.set_decision(one, 1, "possible lead", "ears match")
        store.set_decision(one, 2, "excluded", "scar")
        two = store.record_search(make_search_result(probe, second), EngineConfig(), gallery=second)
    return path, one, two


def test_decisions_are_carried_to_a_re_search_and_absent_identities_reported(
        researched: tuple[Path, int, int]) -> None:
    path, one, two = researched
    with CaseStore.open(path) as store:
        first = store.search(one).candidates[0].decision
        alice = store.search(two).candidates[1]
        assert alice.candidate.identity == "Alice_A"
        assert (alice.decision.decision, alice.decision.note, alice.decision.examiner) == (
            "possible lead", "ears match", "Ann Examiner")
        assert (alice.decision.carried_from_search, alice.decision.carried_from_rank) == (one, 1)
        assert alice.decision.utc == first.utc  # the original decision's time, not the re-search's
        assert [c.decision.decision for c in store.search(two).candidates] == ["not reviewed", "possible lead",
                                                                              "not reviewed"]
        carried = store.carried_decisions(two)
        assert [(c["identity"], c["rank"], c["from_search_id"]) for c in carried.carried] == [("Alice_A", 2, one)]
        assert [(c["identity"], c["decision"]) for c in carried.not_carried] == [("Bob_B", "excluded")]
        # A decision made on the new search counts over the carried one, and is not marked carried.
        store.set_decision(two, 2, "inconclusive", "second look")
        assert not store.search(two).candidates[1].decision.carried


def test_another_face_in_the_same_still_is_not_the_same_probe(tmp_path: Path) -> None:
    probe = write_image(tmp_path / "probe.png", size=64)
    gallery = make_gallery(tmp_path / "g")
    result = make_search_result(probe, gallery)
    other_face = FaceDetection(box=np.array([40.0, 40.0, 49.0, 49.0], np.float32), score=0.9,
                               landmarks=result.probe_face.landmarks + 38.0)
    with CaseStore.create(tmp_path / "c.ffcase", "C-2", "T", "Ann Examiner") as store:
        store.add_evidence(probe, "probe")
        one = store.record_search(result, EngineConfig(), gallery=gallery)
        store.set_decision(one, 1, "possible lead")
        two = store.record_search(dataclasses.replace(result, probe_face=other_face), EngineConfig(), gallery=gallery)
        assert store.decisions(two) == {} and store.carried_decisions(two).carried == ()


def test_carried_decisions_verify_and_an_edited_one_is_caught(researched: tuple[Path, int, int],
                                                              capsys: pytest.CaptureFixture) -> None:
    path, _, two = researched
    code, text = verify_cli(path, capsys)
    assert code == 0, text
    tamper(path, f"UPDATE decisions SET decision = 'excluded' WHERE search_id = {two}")
    code, text = verify_cli(path, capsys)
    assert code == 1
    assert "decisions row id=3 differs from what audit entry" in text
    assert f"(search {two}, rank 2: 'excluded') matches no decision entry" in text


def test_case_of_schema_2_opens_migrates_and_verifies(researched: tuple[Path, int, int], tmp_path: Path,
                                                      capsys: pytest.CaptureFixture) -> None:
    """A case as main wrote it before carried decisions and reviews (schema 2: its decisions have no carried
    columns) opens, is migrated (the decisions' new row hashes in the migrate entry) and verifies intact."""
    path, one, _ = researched
    with CaseStore.create(tmp_path / "plain.ffcase", "P", "T", "Ann Examiner") as store:
        probe = write_image(tmp_path / "p.png")
        gallery = make_gallery(tmp_path / "g3")
        store.add_evidence(probe, "probe")
        search = store.record_search(make_search_result(probe, gallery), EngineConfig(), gallery=gallery)
        store.set_decision(search, 1, "possible lead", "ears")
    old = tmp_path / "old.ffcase"
    _downgrade(tmp_path / "plain.ffcase", old, 2)
    raw = sqlite3.connect(old)
    assert raw.execute("PRAGMA user_version").fetchone()[0] == 2
    assert "carried_from_search_id" not in {r[1] for r in raw.execute("PRAGMA table_info(decisions)")}
    raw.close()
    code, text = verify_cli(old, capsys)
    assert code == 0, text
    with CaseStore.open(old) as store:
        migrate = [e for e in store.audit_entries() if e.action == "migrate"]
        assert [(e.details["from"], e.details["to"]) for e in migrate] == [(2, 3), (3, 4)]
        assert list(migrate[0].details["rows"]) == ["decisions"]
        assert store.search(1).candidates[0].decision.decision == "possible lead"


def test_the_examiner_is_the_audit_actor_never_the_os_user(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                           capsys: pytest.CaptureFixture) -> None:
    from forensic_face.settings import load_examiner, save_examiner

    monkeypatch.setenv("FORENSIC_FACE_CONFIG_DIR", str(tmp_path / "config"))
    (tmp_path / "config").mkdir()
    monkeypatch.setattr("forensic_face.store.audit.current_actor", lambda: "root")
    probe = write_image(tmp_path / "probe.png")
    gallery = make_gallery(tmp_path / "g")
    path = tmp_path / "c.ffcase"
    assert main(["case", "new", str(path), "--number", "E-1"]) == 2  # no name anywhere: refused, not "root"
    save_examiner("Ann Examiner")
    assert load_examiner() == "Ann Examiner"
    assert main(["case", "new", str(path), "--number", "E-1"]) == 0
    with CaseStore.open(path) as store:
        search = store.record_search(make_search_result(probe, gallery), EngineConfig(), gallery=gallery)
    assert main(["decide", str(path), str(search), "1", "excluded"]) == 0
    assert main(["decide", str(path), str(search), "2", "excluded", "--examiner", "Ben Other"]) == 0
    with CaseStore.open(path) as store:
        entries = store.audit_entries()
    assert {e.actor for e in entries[:-1]} == {"Ann Examiner"} and entries[-1].actor == "Ben Other"
    assert all(e.details["os_user"] == "root" for e in entries)  # kept beside the actor only
    assert [d["examiner"] for d in (e.details for e in entries if e.action == "decision")] == ["Ann Examiner",
                                                                                               "Ben Other"]


def test_review_is_recorded_chained_and_refused_to_the_deciding_examiner(
        researched: tuple[Path, int, int], capsys: pytest.CaptureFixture) -> None:
    path, one, two = researched
    capsys.readouterr()
    assert main(["review", str(path), str(two), "--examiner", "ann examiner", "--verdict", "agree"]) == 2
    err = capsys.readouterr().err
    assert "made decisions on search" in err and "cannot review them" in err and "Ann Examiner" in err
    assert main(["review", str(path), str(two), "--examiner", "Rita Reviewer", "--verdict", "disagree",
                 "--note", "Alice's ear differs"]) == 0
    assert "reviewed by Rita Reviewer: disagree" in capsys.readouterr().out
    with CaseStore.open(path) as store:
        (review,) = store.reviews(two)
        assert (review.reviewer, review.verdict, review.note) == ("Rita Reviewer", "disagree", "Alice's ear differs")
        assert review.decisions["2"]["carried_from_search"] == one
        entry = store.audit_entries()[-1]
        assert (entry.action, entry.actor, entry.details["verdict"]) == ("review", "Rita Reviewer", "disagree")
        with pytest.raises(CaseStoreError, match="no decisions to review"):
            store.record_review(store.record_search(*_plain_search(path.parent)), "Rita Reviewer", "agree")
    assert verify_cli(path, capsys)[0] == 0
    tamper(path, "UPDATE reviews SET verdict = 'agree'")
    code, text = verify_cli(path, capsys)
    assert code == 1 and "reviews row id=1 differs" in text


def _plain_search(folder: Path) -> tuple:  # type: ignore[type-arg]
    probe = write_image(folder / "other-probe.png", seed=5)
    gallery = make_gallery(folder / "g4")
    return make_search_result(probe, gallery), EngineConfig(), gallery



def test_window_shows_carried_decisions_and_asks_the_examiner_once(
        researched: tuple[Path, int, int], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        qtbot) -> None:  # type: ignore[no-untyped-def]
    from forensic_face.gui.main_window import MainWindow
    from forensic_face.gui.settings import WindowState
    from forensic_face.settings import load_examiner

    monkeypatch.setenv("FORENSIC_FACE_CONFIG_DIR", str(tmp_path / "config"))
    (tmp_path / "config").mkdir()
    path, one, two = researched
    from tests.gui.test_case_window import FolderEngine

    # The opened case's gallery folder is enrolled again: by an engine that loads no models.
    window = MainWindow(config=EngineConfig(device="cpu"), state=WindowState(tmp_path / "state.ini"),
                        engine_factory=lambda _config: FolderEngine())
    qtbot.addWidget(window)
    assert window.open_case(path)
    assert window.examiner_dialog.isVisible()  # no name saved: asked, without blocking the window
    assert window.case_store.examiner == "Ann Examiner"  # until answered: the case's examiner
    window.examiner_dialog.setTextValue("Rita Reviewer")
    window.examiner_dialog.accept()
    assert load_examiner() == "Rita Reviewer" and window.case_store.examiner == "Rita Reviewer"
    stored = window.case_store.search(two)
    window.candidates.set_candidates(tuple(c.candidate for c in stored.candidates), None, 5)
    window._show_decisions(two)
    from forensic_face.gui.candidates import DECISION_COLUMN as decision_column
    assert window.candidates.item(1, decision_column).text() == "possible lead (carried)"
    assert f"carried from search #{one}, rank 1" in window.candidates.item(1, decision_column).toolTip()
    assert window.candidates.item(0, decision_column).text() == ""
    again = MainWindow(config=EngineConfig(device="cpu"), state=WindowState(tmp_path / "state.ini"),
                       engine_factory=lambda _config: FolderEngine())
    qtbot.addWidget(again)
    assert again.open_case(path) and not hasattr(again, "examiner_dialog")  # asked once, kept
    assert again.case_store.examiner == "Rita Reviewer"


def test_case_show_lists_each_probes_searches_with_carried_decisions(
        researched: tuple[Path, int, int], capsys: pytest.CaptureFixture) -> None:
    path, one, two = researched
    capsys.readouterr()
    assert main(["case", "show", str(path), "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    (probe,) = shown["probes"]
    assert [s["id"] for s in probe["searches"]] == [two, one]  # latest first
    latest = probe["searches"][0]
    assert latest["examiner"] == "Ann Examiner" and latest["settings_digest"]
    assert latest["carried_decisions"]["not_carried"][0]["identity"] == "Bob_B"
    alice = latest["candidates"][1]
    assert alice["identity"] == "Alice_A" and alice["decision"]["carried_from_search"] == one
    assert "Bob_B" in latest["top5_change"]["left"] and "Eve_E" in latest["top5_change"]["entered"]
    assert main(["case", "show", str(path)]) == 0
    text = capsys.readouterr().out
    assert f"#{two}" in text and "carried from #1" in text and "left the top 5: Bob_B" in text


@pytest.mark.skipif(__import__("shutil").which("pdftotext") is None, reason="poppler-utils (pdftotext) missing")
def test_report_has_a_leads_summary_one_section_per_probe_and_an_annex(researched: tuple[Path, int, int],
                                                                        tmp_path: Path) -> None:
    import subprocess

    from forensic_face.report.pdf import write_case_report

    path, one, two = researched
    with CaseStore.open(path) as store:
        three = store.record_search(*_plain_search(tmp_path))
        store.set_decision(three, 3, "possible lead", "chin")
        store.record_review(two, "Rita Reviewer", "agree", "ears checked")

    def text(out: Path) -> str:
        return " ".join(subprocess.run(["pdftotext", "-layout", str(out), "-"], check=True, capture_output=True,
                                       text=True).stdout.split())

    report = text(write_case_report(path, tmp_path / "r.pdf").path)
    assert "3. Summary of leads per probe" in report
    assert f"4. Probe probe.png: search #{two}" in report and f"5. Probe other-probe.png: search #{three}" in report
    assert "6. Method" in report and "7. Limitations" in report and "9. Conclusion and sign-off" in report
    assert report.count("Ranked candidates") == 2 and f"Search #{one}" not in report
    assert "rank 2 Alice_A (carried)" in report and "Rita Reviewer: agree" in report
    assert f"search #{one}, rank 1; Ann" in report and "no longer among the candidates" in report  # carried from
    annex = report[report.index("Annex A. Superseded searches"):]
    assert f"#{one}" in annex and "1. Alice_A (possible lead)" in annex and "2. Bob_B (excluded)" in annex
    chosen = text(write_case_report(path, tmp_path / "first.pdf", search_ids=[one]).path)
    assert f"4. Probe probe.png: search #{one}" in chosen and "Probe other-probe.png" not in chosen
    with pytest.raises(CaseStoreError, match="no search #99"):
        write_case_report(path, tmp_path / "none.pdf", search_ids=[99])


def test_old_case_without_an_examiner_opens_and_asks_for_a_name_only_to_write(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    """The window once allowed a case without an examiner's name: such a case still opens (its migration is
    the program's step), but a change is refused until someone is named."""
    monkeypatch.setenv("FORENSIC_FACE_CONFIG_DIR", str(tmp_path / "config"))
    plain = tmp_path / "plain.ffcase"
    CaseStore.create(plain, "P", "T", "Ann Examiner").close()
    old = tmp_path / "old.ffcase"
    _downgrade(plain, old, 1)
    raw = sqlite3.connect(old)
    raw.execute("UPDATE case_meta SET examiner = ''")
    raw.commit()
    raw.close()
    assert main(["case", "show", str(old)]) == 0
    with CaseStore.open(old) as store:
        assert {e.actor for e in store.audit_entries() if e.action == "migrate"} == {
            "forensic_face (schema migration)"}
    probe = write_image(tmp_path / "p.png")
    capsys.readouterr()
    assert main(["case", "add-evidence", str(old), str(probe)]) == 2
    assert "no examiner is named" in capsys.readouterr().err
    assert main(["case", "add-evidence", str(old), str(probe), "--examiner", "Ann Examiner"]) == 0
