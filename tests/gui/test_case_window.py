"""Issue 33, the case as the window's document: a case searched, decided and closed opens again in a new window
whole (probes, latest searches, carried decisions, gallery), with each probe's history, the examiner's choice of
reported search kept, and a second examiner's review recorded from the window. No models: a fake engine."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from tests.store.test_store import make_search_result, write_image

from forensic_face.engine.config import EngineConfig
from forensic_face.engine.errors import CaseStoreError, ForensicFaceError
from forensic_face.engine.imaging import sha256_file
from forensic_face.engine.results import FaceCrop, FaceDetection, Gallery, GalleryEntry, ImageDetections

pytest.importorskip("pytestqt")

CONFIG = EngineConfig(device="cpu")
NAMES = ("Alice_A", "Bob_B", "Carol_C")


def _face(box: tuple[float, float, float, float]) -> FaceDetection:
    return FaceDetection(box=np.array(box, np.float32), score=0.98,
                         landmarks=np.array([[6, 8], [12, 8], [9, 11], [7, 14], [11, 14]], np.float32))


class FolderEngine:
    """Enrolls a folder of ``identity/*.png`` as it is (reading, never writing), finds one face per still, and
    ranks the gallery in order, then reversed on every second search: a re-search that changes the ranking."""

    config, device = CONFIG, "cpu"

    def __init__(self) -> None:
        self.num_searches = 0

    def enroll(self, folder: Path, progress: Any = None, should_cancel: Any = None) -> Gallery:
        entries = []
        for k, path in enumerate(sorted(Path(folder).glob("*/*.png"))):
            crop = FaceCrop(pixels=np.full((40, 40, 3), 40 * k, np.uint8), landmarks=np.zeros((5, 2), np.float32),
                            crop_box=np.array([4, 4, 44, 44], np.float32), face=_face((4, 4, 44, 44)))
            entries.append(GalleryEntry(path.parent.name, path, sha256_file(path), crop))
        return Gallery(root=Path(folder), entries=tuple(entries))

    def detect(self, image: Any) -> ImageDetections:
        return ImageDetections(source=str(image.path), sha256=image.sha256, width=image.width, height=image.height,
                               faces=(_face((2.0, 3.0, 11.0, 12.0)),))

    def provisional_search(self, *_args: Any) -> Any:
        raise ForensicFaceError("no provisional ranking in this test")

    def search(self, image: Any, gallery: Gallery, face: Any = None, progress: Any = None,
               should_cancel: Any = None) -> Any:
        self.num_searches += 1
        order = gallery.entries if self.num_searches % 2 else tuple(reversed(gallery.entries))
        result = make_search_result(image.path, dataclasses.replace(gallery, entries=order))
        # As an engine records it: the settings the search ran with (the calibration lookup reads them).
        return dataclasses.replace(result, provenance={
            **result.provenance, "config": CONFIG.to_dict(), "recognizer": {"weights_sha256": "ab" * 32}})

    def with_gallery_images(self, result: Any, _gallery: Gallery) -> Any:
        return result

    def gallery_hypothesis_image(self, *_args: Any) -> np.ndarray:
        return np.zeros((24, 24, 3), np.uint8)


def _window(qtbot, tmp_path: Path, engine: FolderEngine):  # type: ignore[no-untyped-def]
    from forensic_face.gui.main_window import MainWindow
    from forensic_face.gui.settings import WindowState

    window = MainWindow(config=CONFIG, state=WindowState(tmp_path / "state.ini"), engine_factory=lambda _c: engine)
    window.open_reports = False
    qtbot.addWidget(window)
    return window


def _idle(qtbot, window, until=lambda: True) -> None:  # type: ignore[no-untyped-def]
    qtbot.waitUntil(lambda: not window.runner.busy and until(), timeout=20_000)


@pytest.fixture()
def gallery_and_probe(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    monkeypatch.setenv("FORENSIC_FACE_CONFIG_DIR", str(tmp_path / "config"))
    from forensic_face.settings import save_examiner

    save_examiner("Ann Examiner")
    root = tmp_path / "gallery"
    for k, name in enumerate(NAMES):
        (root / name).mkdir(parents=True)
        write_image(root / name / f"{name}_0001.png", size=64, seed=100 + k)
    return root, write_image(tmp_path / "probe.png")


def _searched_and_closed(qtbot, tmp_path: Path, gallery: Path,  # type: ignore[no-untyped-def]
                         probe: Path) -> tuple[Path, int, int]:
    """In one window: a case, the gallery, a probe searched, two decisions, searched again; closed."""
    from forensic_face.gui.candidates import DECISION_COLUMN

    window = _window(qtbot, tmp_path, FolderEngine())
    case = tmp_path / "case.ffcase"
    assert window.create_case(case, "W-1", "Reopen", "Ann Examiner")
    assert window.open_gallery(gallery)
    _idle(qtbot, window, lambda: window.gallery is not None)
    assert window.add_probes([probe])
    _idle(qtbot, window, lambda: bool(window.probe_panel.records))
    assert window.search_current()
    _idle(qtbot, window, lambda: window.probe_panel.records[0].search_id is not None)
    first = window.probe_panel.records[0].search_id
    assert window.decide(0, "possible lead", "ears match") and window.decide(1, "excluded", "scar")
    assert window.search_current()  # the re-search ranks Carol, Bob, Alice
    _idle(qtbot, window, lambda: window.probe_panel.records[0].search_id != first)
    second = window.probe_panel.records[0].search_id
    column = [window.candidates.item(row, DECISION_COLUMN).text() for row in range(3)]
    assert column == ["", "excluded (carried)", "possible lead (carried)"]  # no decision dropped
    window.close()
    return case, first, second


def test_a_reopened_case_shows_its_probes_latest_searches_decisions_and_gallery(
        qtbot, tmp_path: Path, gallery_and_probe: tuple[Path, Path]) -> None:  # type: ignore[no-untyped-def]
    from forensic_face.gui.candidates import DECISION_COLUMN

    gallery, probe = gallery_and_probe
    case, first, second = _searched_and_closed(qtbot, tmp_path, gallery, probe)
    window = _window(qtbot, tmp_path, FolderEngine())
    assert window.open_case(case)
    _idle(qtbot, window, lambda: window.gallery is not None)
    (record,) = window.probe_panel.records
    assert record.path == probe.resolve() and record.search_id == second and record.searchable
    assert [tuple(f.box) for f in record.faces] == [(2.0, 3.0, 11.0, 12.0)]  # the box as it was searched
    assert window.current_result() is record.result
    assert [c.identity for c in window.candidates.candidates] == ["Carol_C", "Bob_B", "Alice_A"]
    decisions = [window.candidates.item(row, DECISION_COLUMN) for row in range(3)]
    assert [d.text() for d in decisions] == ["", "excluded (carried)", "possible lead (carried)"]
    assert f"carried from search #{first}, rank 1" in decisions[2].toolTip()
    assert window.gallery.root == gallery and "different" not in window.banner.text()
    # The history: both searches, latest first, with what changed at rank 1.
    history = window.history_panel.searches
    assert history.count() == 2
    assert history.item(0).text().startswith(f"#{second} ") and "rank 1: Carol_C (was Alice_A)" in \
        history.item(0).text() and "[latest, reported]" in history.item(0).text()
    assert "Ann Examiner" in history.item(1).text()
    # An earlier search is shown read-only: its own decisions, none taken.
    history.setCurrentRow(1)
    assert [c.identity for c in window.candidates.candidates] == ["Alice_A", "Bob_B", "Carol_C"]
    assert window.candidates.item(0, DECISION_COLUMN).text() == "possible lead"
    assert not window.decide(0, "excluded") and "read-only" in window.banner.text()
    assert window.case_store.decisions(first)[1].decision == "possible lead"


def test_the_reported_search_chosen_in_the_window_is_kept_and_a_review_is_recorded(
        qtbot, tmp_path: Path, gallery_and_probe: tuple[Path, Path]) -> None:  # type: ignore[no-untyped-def]
    from forensic_face.gui.report_dialog import ReportDialog
    from forensic_face.report.pdf import choose_reported_probes
    from forensic_face.store.history import case_history, reported_search_ids

    gallery, probe = gallery_and_probe
    case, first, second = _searched_and_closed(qtbot, tmp_path, gallery, probe)
    window = _window(qtbot, tmp_path, FolderEngine())
    assert window.open_case(case)
    _idle(qtbot, window, lambda: window.gallery is not None)
    window.history_panel.searches.setCurrentRow(1)  # the earlier search
    assert window.history_panel.report_button.isEnabled()
    window.history_panel.report_button.click()
    assert reported_search_ids(window.case_store) == [first]
    assert window.case_store.audit_entries()[-1].action == "report_choice"
    # A second examiner's review of the shown search, from the dialog; the examiner who ran it is refused.
    window.review_action.trigger()  # the menu's action: the shown search
    assert window.review_dialog.search_label.text().startswith(f"#{first} ")
    window.review_dialog.reject()
    window.history_panel.review_button.click()  # the History tab's button: the selected search (the same)
    dialog = window.review_dialog
    assert dialog.search_label.text().startswith(f"#{first} ")
    assert dialog.reviewer.text() == ""  # the saved name is the searching examiner's: not offered
    dialog.reviewer.setText("Ann Examiner")
    dialog.accept()
    assert "cannot review" in window.banner.text() and not window.case_store.reviews()
    assert window.record_review(first, "Rita Reviewer", "agree", "ears checked")
    assert "Review by Rita Reviewer" in window.history_panel.details.text()
    window.close()

    again = _window(qtbot, tmp_path, FolderEngine())
    assert again.open_case(case)
    _idle(qtbot, again, lambda: again.gallery is not None)
    items = [again.history_panel.searches.item(k).text() for k in range(2)]
    assert "[latest]" in items[0] and "[reported]" in items[1]
    (review,) = again.case_store.reviews(first)
    assert (review.reviewer, review.verdict, review.note) == ("Rita Reviewer", "agree", "ears checked")
    (probe_history,) = case_history(again.case_store)
    assert [p.chosen.search.id for p in choose_reported_probes([probe_history], None)] == [first]
    dialog = ReportDialog(again.case_store, str(tmp_path), reported=reported_search_ids(again.case_store))
    qtbot.addWidget(dialog)
    assert dialog.search_ids() == [first]  # the examiner's choice, not the latest
    # Back to the latest: a choice like any other, in the audit trail.
    again.history_panel.searches.setCurrentRow(0)
    again.history_panel.report_button.click()
    assert reported_search_ids(again.case_store) == [second]
    from forensic_face.store.verify import verify_store

    assert verify_store(again.case_store, check_galleries=False).chain.ok


def test_a_case_whose_gallery_folder_is_gone_opens_with_its_stored_candidates(
        qtbot, tmp_path: Path, gallery_and_probe: tuple[Path, Path]) -> None:  # type: ignore[no-untyped-def]
    import shutil

    gallery, probe = gallery_and_probe
    case, _, second = _searched_and_closed(qtbot, tmp_path, gallery, probe)
    shutil.rmtree(gallery)
    window = _window(qtbot, tmp_path, FolderEngine())
    assert window.open_case(case)
    _idle(qtbot, window, lambda: bool(window.probe_panel.records))
    assert window.gallery is None
    assert "is missing" in window.gallery_panel.summary.text() and "is missing" in window.banner.text()
    assert window.probe_panel.records[0].search_id == second
    assert [c.identity for c in window.candidates.candidates] == ["Carol_C", "Bob_B", "Alice_A"]
    entry = window.gallery_entry(window.candidates.candidates[0].gallery_sha256)
    assert entry is not None and entry.note == "portrait crop stored in the case"


def test_a_reviewer_may_not_be_the_examiner_who_ran_the_search(tmp_path: Path) -> None:
    from tests.store.test_store import make_gallery

    from forensic_face.store import CaseStore

    probe = write_image(tmp_path / "probe.png")
    gallery = make_gallery(tmp_path / "g")
    with CaseStore.create(tmp_path / "c.ffcase", "R-1", "T", "Ann Examiner") as store:
        search = store.record_search(make_search_result(probe, gallery), EngineConfig(), gallery=gallery)
        store.set_decision(search, 1, "possible lead", examiner="Ben Decider")
        with pytest.raises(CaseStoreError, match="ran search 1 and cannot review it"):
            store.record_review(search, "ann examiner", "agree")
        assert store.record_review(search, "Rita Reviewer", "agree").reviewer == "Rita Reviewer"
