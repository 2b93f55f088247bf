"""Export-report dialog: which searches of the open case, who signs, how many candidates with images, where to
save. The report itself is :func:`forensic_face.report.pdf.write_case_report`, run on the worker thread."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)


class ReportDialog(QDialog):
    def __init__(self, store: Any, default_folder: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Export case report")
        info = store.info()
        self.searches = QListWidget()
        self.searches.setObjectName("reportSearches")
        for search_id in store.search_ids():
            stored = store.search(search_id)
            top = stored.candidates[0].candidate.identity.replace("_", " ") if stored.candidates else "-"
            item = QListWidgetItem(f"#{search_id}  {stored.created_utc}  {stored.probe.path.name}  (first: {top})")
            item.setData(Qt.ItemDataRole.UserRole, search_id)
            item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
            item.setCheckState(Qt.CheckState.Checked)
            self.searches.addItem(item)
        self.examiner_edit = QLineEdit(info.examiner)
        self.top_spin = QSpinBox()
        self.top_spin.setRange(0, 50)
        self.top_spin.setValue(5)
        self.top_spin.setToolTip("Candidates per search shown with their images and heatmaps")
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in info.case_number) or "case"
        self.file = QLineEdit(str(Path(default_folder) / f"{safe}-report.pdf"))
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse)
        row = QHBoxLayout()
        row.addWidget(self.file, 1)
        row.addWidget(browse)
        form = QFormLayout()
        form.addRow("Searches", self.searches)
        form.addRow("Examiner", self.examiner_edit)
        form.addRow("Candidates with images", self.top_spin)
        form.addRow("Save as", row)
        self.error = QLabel()
        self.error.setObjectName("errorLabel")
        self.error.hide()
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.error)
        layout.addWidget(buttons)

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
            self.error.setText("Choose at least one search.")
            self.error.show()
            return
        if not self.file.text().strip():
            self.error.setText("Choose where to save the report.")
            self.error.show()
            return
        super().accept()
