"""Export-report dialog: which searches of the open case, who signs, how many candidates with images, where to
save. The report itself is :func:`forensic_face.report.pdf.write_case_report`, run on the worker thread."""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QFileDialog,
    QFormLayout,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QSpinBox,
    QWidget,
)

from forensic_face.gui.case_dialog import FormDialog, safe_file_stem


#: The search list's widest: the dialog must fit a 1366 px screen with its labels.
MAX_LIST_PX = 1000


class ReportDialog(FormDialog):
    """``reported``: the search the report uses per probe (``forensic_face.store.history.reported_search_ids``):
    those are checked, a probe's other searches are listed unchecked (the report's annex lists them anyway);
    None checks every search."""

    def __init__(self, store: Any, default_folder: str, parent: QWidget | None = None,
                 reported: Collection[int] | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Export case report")
        info = store.info()
        self.searches = QListWidget()
        self.searches.setObjectName("reportSearches")
        for summary in store.search_summaries():
            shown = reported is None or summary.id in reported
            item = QListWidgetItem(f"#{summary.id}  {summary.created_utc}  {summary.probe_path.name}  "
                                   f"(first: {summary.first_identity.replace('_', ' ') or '-'})"
                                   + ("" if shown else "  — earlier search, in the annex"))
            item.setData(Qt.ItemDataRole.UserRole, summary.id)
            item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
            item.setCheckState(Qt.CheckState.Checked if shown else Qt.CheckState.Unchecked)
            self.searches.addItem(item)
        # Wide enough for the longest entry (clip names carry camera, date and time), within a laptop screen; a
        # longer one scrolls sideways rather than being cut.
        needed = (self.searches.sizeHintForColumn(0) + 2 * self.searches.frameWidth()
                  + self.searches.verticalScrollBar().sizeHint().width())
        self.searches.setMinimumWidth(min(needed, MAX_LIST_PX))
        self.examiner_edit = QLineEdit(info.examiner)
        self.top_spin = QSpinBox()
        self.top_spin.setRange(0, 50)
        self.top_spin.setValue(5)
        self.top_spin.setToolTip("Candidates per search shown with their images and heatmaps")
        self.file = QLineEdit(str(Path(default_folder) / f"{safe_file_stem(info.case_number)}-report.pdf"))
        self._asked_replace: Path | None = None
        self._confirmed_replace: Path | None = None
        form = QFormLayout()
        form.addRow("Searches", self.searches)
        form.addRow("Examiner", self.examiner_edit)
        form.addRow("Candidates with images", self.top_spin)
        form.addRow("Save as", self._file_row(self.file))
        self._finish(form)

    def _browse(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Save report", self.file.text(), "PDF (*.pdf)")
        if path:
            self.file.setText(path if path.lower().endswith(".pdf") else path + ".pdf")

    def search_ids(self) -> list[int]:
        return [int(self.searches.item(k).data(Qt.ItemDataRole.UserRole)) for k in range(self.searches.count())
                if self.searches.item(k).checkState() == Qt.CheckState.Checked]

    def examiner(self) -> str:
        return self.examiner_edit.text().strip()

    def top(self) -> int:
        return self.top_spin.value()

    def out_path(self) -> Path:
        return Path(self.file.text().strip())

    def accept(self) -> None:
        if not self.search_ids():
            self._refuse("Choose at least one search.")
            return
        if not self.file.text().strip():
            self._refuse("Choose where to save the report.")
            return
        out = self.out_path()
        if out.is_file():
            # Replacing a file takes a second press; evidence and case files are refused by the report itself.
            if self._asked_replace != out:
                self._asked_replace = out
                self._refuse(f"{out.name} already exists. Press OK again to replace it, or choose another name.")
                return
            self._confirmed_replace = out
        super().accept()

    def replace_existing(self) -> bool:
        """Whether the examiner confirmed replacing an existing file at :meth:`out_path`."""
        return self._confirmed_replace == self.out_path()
