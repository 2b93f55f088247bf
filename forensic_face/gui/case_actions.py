"""The window's case actions: new and open case, the examiner, decisions, the report, reviews and the History
tab's choices.

:class:`CaseActions` is a mixin of :class:`forensic_face.gui.main_window.MainWindow` (before the Qt base, like
:class:`forensic_face.gui.drops.FileDropTarget`): its methods are the window's, so the menus, panels and tests
call ``window.open_case(...)``, ``window.decide(...)``, ``window.export_report(...)``. What it uses of the window
is listed in the class body; the case's background jobs are functions of :mod:`forensic_face.gui.jobs`.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import replace
from pathlib import Path
from typing import Any

from PySide6.QtCore import QUrl, Slot
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import QDockWidget, QFileDialog, QInputDialog

from forensic_face.engine import ForensicFaceError, Gallery, SearchResult
from forensic_face.gui import jobs
from forensic_face.gui.candidates import CandidateTable
from forensic_face.gui.case_session import CaseSession, RestoredCase, gallery_matches, search_line
from forensic_face.gui.gallery_panel import GalleryPanel
from forensic_face.gui.history_panel import HistoryPanel
from forensic_face.gui.probe_panel import ProbePanel
from forensic_face.gui.settings import WindowState
from forensic_face.gui.worker import JobRunner
from forensic_face.settings import load_examiner, save_examiner

log = logging.getLogger(__name__)


class CaseActions:
    """The open case (``case_store``, None: no case) and what the examiner does with it in the window."""

    # Of the window (MainWindow sets them up): its state, views and the methods show_message, show_result,
    # _start (a background job), _update_actions, _last_dir and _rebuild_recent_menus.
    state: WindowState
    case_store: Any | None
    case_session: CaseSession
    probe_panel: ProbePanel
    gallery_panel: GalleryPanel
    candidates: CandidateTable
    history_panel: HistoryPanel
    probe_dock: QDockWidget
    runner: JobRunner
    gallery: Gallery | None
    open_reports: bool
    _shown_search_id: int | None
    _reopen_gallery: Path | None
    _case_offered: bool
    _result: SearchResult | None

    # Case store (optional) ----------------------------------------------------------------------------------
    @Slot()
    def new_case(self) -> None:
        try:
            from forensic_face.store.case_store import CASE_SUFFIX, default_case_path
        except ImportError as exc:
            self.show_message(f"Case files are not available in this installation ({exc}).", "warning")
            return
        from forensic_face.gui.case_dialog import NewCaseDialog

        dialog = NewCaseDialog(default_case_path("x").parent, CASE_SUFFIX, self)
        dialog.examiner.setText(self._saved_examiner())
        dialog.finished.connect(lambda code: self._new_case_closed(dialog, code))
        dialog.open()
        self.case_dialog = dialog

    def _new_case_closed(self, dialog: Any, code: int) -> None:
        if code != 1:
            return
        path, number, title, examiner = dialog.values()
        self.create_case(path, number, title, examiner)

    def create_case(self, path: Path, case_number: str, title: str, examiner: str) -> bool:
        from forensic_face.store.case_store import CaseStore

        try:
            store = CaseStore.create(path, case_number, title, examiner)
            if not self._saved_examiner():
                save_examiner(examiner)  # asked once: the New case dialog's examiner is who works here
        except (ForensicFaceError, OSError) as exc:
            self.show_message(str(exc), "error")
            return False
        self._set_case(store)
        return True

    def _saved_examiner(self) -> str:
        """The examiner's name in settings.toml ("" when none is saved, or it cannot be read: said once)."""
        try:
            return load_examiner()
        except ForensicFaceError as exc:
            self.show_message(str(exc), "error")
            return ""

    def _ask_examiner(self) -> None:
        """Ask, without blocking the window, who works on the open case; the answer is kept in settings.toml and
        names the actor of every audit entry written from then on (until then: the case's examiner)."""
        dialog = QInputDialog(self)
        dialog.setWindowTitle("Examiner")
        dialog.setLabelText("Your name, as the audit trail of every case you work on should record it:")
        dialog.textValueSelected.connect(self.set_examiner)
        dialog.open()
        self.examiner_dialog = dialog

    def set_examiner(self, name: str) -> bool:
        """Work as ``name`` from now on (saved in settings.toml; the open case's audit actor)."""
        try:
            save_examiner(name)
        except (ForensicFaceError, OSError) as exc:
            self.show_message(str(exc), "error")
            return False
        if self.case_store is not None:
            self.case_store.examiner = name.strip()
        return True

    @Slot()
    def choose_case(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open case", self._last_dir("cases"),
                                              "Cases (*.ffcase);;All files (*)")
        if path:
            self.open_case(Path(path))

    def open_case(self, path: Path) -> bool:
        try:
            from forensic_face.store.case_store import open_case
        except ImportError as exc:
            self.show_message(f"Case files are not available in this installation ({exc}).", "warning")
            return False
        examiner = self._saved_examiner()
        try:
            store = open_case(path, examiner or None)
        except ForensicFaceError as exc:
            self.show_message(str(exc), "error")
            return False
        self._set_case(store)
        if not examiner:
            self._ask_examiner()
        self.restore_case()
        return True

    def restore_case(self) -> bool:
        """Read the open case back into the window on the worker thread (no engine, nothing searched again):
        its probes with their latest searches and decisions, every probe's history, and its gallery."""
        store = self.case_store
        if store is None:
            return False
        if self.runner.busy:
            self.show_message("The case is open, but its probes and searches can be shown only when the running "
                              "job ends: open it again then.", "warning")
            return False
        return self._start("case", functools.partial(jobs.restore_opened_case, store=store),
                           on_done=self._apply_restored_case, needs_engine=False)

    def _apply_restored_case(self, restored: RestoredCase) -> None:
        self.case_session = CaseSession(restored.histories, restored.gallery, restored.gallery_entries)
        self.probe_panel.set_records(list(restored.records))
        self.probe_dock.raise_()
        check = restored.gallery
        if check.reopenable and check.record is not None and not (
                self.gallery is not None and gallery_matches(self.gallery, check)):
            self._reopen_gallery = check.record.root  # enrolled when this job has ended (one job at a time)
        if not check.reopenable:
            self.gallery_panel.summary.setText(check.describe())
        searches = sum(len(h.searches) for h in restored.histories)
        problems = [r for r in restored.records if r.error]
        text = (f"Case restored: {len(restored.histories)} probe(s), {searches} search(es); each probe shows its "
                "latest search, the History tab (Ctrl+H) its earlier ones.")
        if not check.reopenable and check.record is not None:
            text += " " + check.describe()
        if problems:
            text += f" {problems[0].path.name}: {problems[0].error}."
        self.show_message(text, "warning" if problems or not check.reopenable and check.record is not None
                          else "info")

    @Slot(int)
    def show_stored_search(self, search_id: int) -> None:
        """Show the case's search ``search_id`` of the selected probe (read-only when it is an earlier one)."""
        entry = self.case_session.search(search_id)
        if entry is None or search_id == self._shown_search_id:
            return
        record = self.probe_panel.current_record()
        if record is not None and search_id == record.search_id and record.result is not None:
            self.show_result(record.result)
        else:
            self.show_result(entry.search.to_search_result(), search_id)
        self._update_actions()

    @Slot(int)
    def choose_report_search(self, search_id: int | None) -> bool:
        """The report shows ``search_id`` for its probe (recorded in the case's audit trail)."""
        history = self.case_session.history(search_id)
        if self.case_store is None or history is None or search_id is None:
            return False
        from forensic_face.store.history import choose_reported_search

        latest = search_id == history.latest.search.id
        try:
            choose_reported_search(self.case_store, search_id, latest=latest)
        except ForensicFaceError as exc:
            self.show_message(str(exc), "error")
            return False
        self.case_session.update(replace(history, reported=None if latest else search_id))
        self._show_decisions(self._shown_search_id)
        self._update_actions()
        self.show_message(f"The report shows search #{search_id} for {history.evidence.path.name}"
                          + (" (its latest)." if latest else "; its other searches go to the annex."), "info")
        return True

    @Slot(int)
    def choose_review(self, search_id: int | None = None) -> None:
        """Ask a second examiner's review of the shown search (or ``search_id``), without blocking the window."""
        search_id = self._shown_search_id if search_id is None else search_id
        history = self.case_session.history(search_id)
        if history is None or search_id is None:
            self.show_message("Show a search of the open case first: a review is about one recorded search.",
                              "warning")
            return
        from forensic_face.gui.case_dialog import ReviewDialog
        from forensic_face.store.records import VERDICTS

        entry = self.case_session.search(search_id)
        reviewer = self._saved_examiner()
        dialog = ReviewDialog(search_line(history, entry), "" if reviewer == entry.examiner else reviewer,
                              VERDICTS, self)
        dialog.accepted.connect(lambda: self.record_review(search_id, *dialog.values()))
        dialog.open()
        self.review_dialog = dialog

    def record_review(self, search_id: int, reviewer: str, verdict: str, note: str = "") -> bool:
        """Record the review in the case (the store refuses the examiner who ran or decided the search)."""
        if self.case_store is None:
            return False
        from forensic_face.store.history import probe_history

        try:
            review = self.case_store.record_review(search_id, reviewer, verdict, note)
            self.case_session.update(probe_history(self.case_store, search_id))
        except ForensicFaceError as exc:
            self.show_message(str(exc), "error")
            return False
        self._show_decisions(self._shown_search_id)
        self.show_message(f"Review of search #{search_id} by {review.reviewer} recorded: {review.verdict}.", "info")
        return True

    def _set_case(self, store: Any) -> None:
        if self.case_store is not None:
            self.case_store.close()
        self.case_store = store
        self.case_session = CaseSession()
        for record in self.probe_panel.records:
            record.search_id = None  # a search of the case closed now is no search of this one
        self._show_decisions(None)
        info = store.info()
        self.state.add_recent_case(store.path)
        self.state.set_value("dirs/cases", str(Path(store.path).parent))
        self._rebuild_recent_menus()
        self.setWindowTitle(f"forensic_face — case {info.case_number}" + (f": {info.title}" if info.title else ""))
        self.show_message(f"Case {info.case_number} open; every search is recorded in {Path(store.path).name}.",
                          "info")

    def _offer_case(self) -> None:
        if self.case_store is None and not self._case_offered:
            self._case_offered = True
            self.show_message("No case is open, so this search is not recorded: create one (Ctrl+N) or open one "
                              "to keep searches, decisions and the report.", "info")

    # Decisions --------------------------------------------------------------------------------------------------
    @Slot(int, str, bool)
    def _on_decision_requested(self, row: int, decision: str, with_note: bool) -> None:
        note = ""
        if with_note:
            text, ok = QInputDialog.getText(self, "Examiner's note", f"{decision.capitalize()}: why?")
            if not ok:
                return
            note = text
        self.decide(row, decision, note)

    def decide(self, row: int, decision: str, note: str = "") -> bool:
        """Record the examiner's decision on the candidate in ``row`` of the shown search, in the open case."""
        record = self.probe_panel.current_record()
        if self._result is not None and self._result.provenance.get("provisional"):
            self.show_message("This is the provisional ranking: decide on the full search's candidates when it "
                              "finishes.", "info")
            return False
        if not 0 <= row < len(self.candidates.candidates) or record is None or record.result is None:
            return False
        if self.case_store is None or record.search_id is None:
            self.show_message("Decisions are kept in a case: create or open a case (Ctrl+N) and search again, "
                              "so the decision is recorded with the search it is about.", "warning")
            return False
        if self._shown_search_id != record.search_id:
            self.show_message(f"Search #{self._shown_search_id} is an earlier search of this probe, shown read-only: "
                              f"decide on its latest search (#{record.search_id}); decisions carry forward to each "
                              "re-search.", "info")
            return False
        candidate = self.candidates.candidates[row]
        try:
            self.case_store.set_decision(record.search_id, candidate.rank, decision, note)
        except ForensicFaceError as exc:
            self.show_message(str(exc), "error")
            return False
        self._show_decisions(record.search_id)
        return True

    def _show_decisions(self, search_id: int | None) -> None:
        self._shown_search_id = search_id
        self.history_panel.set_history(self.case_session.history(search_id), search_id)
        if self.case_store is None or search_id is None:
            self.candidates.set_decisions({})
            return
        self.candidates.set_decisions({
            rank: (d.decision, d.note, "" if not d.carried else
                   f"carried from search #{d.carried_from_search}, rank {d.carried_from_rank} "
                   f"({d.examiner}, {d.utc})")
            for rank, d in self.case_store.decisions(search_id).items()})

    # Report -----------------------------------------------------------------------------------------------------
    @Slot()
    def choose_report(self) -> None:
        if self.case_store is None:
            self.show_message("Open a case first: the report is the case's record.", "warning")
            return
        searches = self.case_store.search_ids()
        if not searches:
            self.show_message("The case has no searches yet: search a probe first.", "warning")
            return
        from forensic_face.gui.report_dialog import ReportDialog

        from forensic_face.store.history import reported_search_ids

        dialog = ReportDialog(self.case_store, self._last_dir("reports"), self,
                              reported=reported_search_ids(self.case_store))
        dialog.setModal(True)
        dialog.accepted.connect(lambda: self.export_report(dialog.out_path(), dialog.search_ids(),
                                                           dialog.examiner(), dialog.top(),
                                                           force=dialog.replace_existing()))
        dialog.open()
        self.report_dialog = dialog

    def export_report(self, out: Path, search_ids: list[int] | None = None, examiner: str | None = None,
                      top: int = 5, force: bool = False) -> bool:
        """Write the case report on the worker thread; the PDF opens when done (unless
        :attr:`open_reports` is off). ``force``: replace an existing file the examiner confirmed."""
        if self.case_store is None:
            self.show_message("Open a case first: the report is the case's record.", "warning")
            return False
        case_path = Path(self.case_store.path)
        self.state.set_value("dirs/reports", str(Path(out).parent))

        task = functools.partial(jobs.write_report, case_path=case_path, out=out, search_ids=search_ids, top=top,
                                 examiner=examiner, force=force)
        return self._start("report", task, on_done=self.report_written)

    def report_written(self, report: Any) -> None:
        """Say where the report is and whether the case verified intact, and open it in the PDF viewer."""
        self.show_message(f"Report written: {report.path} ({report.num_pages} pages, SHA-256 "
                          f"{report.sha256[:16]}…); case verification "
                          f"{'intact' if report.verification.ok else 'NOT INTACT'}.",
                          "info" if report.verification.ok else "warning")
        if self.open_reports and not QDesktopServices.openUrl(QUrl.fromLocalFile(str(report.path))):
            self.show_message(f"Report written to {report.path}, but no PDF viewer could be opened for it; "
                              "open the file with a PDF viewer of your choice.", "warning")
