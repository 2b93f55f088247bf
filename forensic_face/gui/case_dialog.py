"""New-case dialog (case number, title, examiner, file). The case store itself lives in forensic_face.store."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)


class NewCaseDialog(QDialog):
    def __init__(self, default_folder: Path, suffix: str = ".ffcase", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("New case")
        self._folder = default_folder
        self._suffix = suffix
        self.case_number = QLineEdit()
        self.case_number.setPlaceholderText("e.g. 2024-0173")
        self.title = QLineEdit()
        self.examiner = QLineEdit()
        self.file = QLineEdit()
        self.case_number.textChanged.connect(self._suggest_file)
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse)
        row = QHBoxLayout()
        row.addWidget(self.file, 1)
        row.addWidget(browse)
        form = QFormLayout()
        form.addRow("Case number", self.case_number)
        form.addRow("Title", self.title)
        form.addRow("Examiner", self.examiner)
        form.addRow("Case file", row)
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

    def _suggest_file(self, text: str) -> None:
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in text.strip()) or "case"
        self.file.setText(str(self._folder / f"{safe}{self._suffix}"))

    def _browse(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Case file", self.file.text(), f"Cases (*{self._suffix})")
        if path:
            self.file.setText(path if path.endswith(self._suffix) else path + self._suffix)

    def accept(self) -> None:
        if not self.case_number.text().strip():
            self.error.setText("A case needs a case number.")
            self.error.show()
            return
        if not self.file.text().strip():
            self.error.setText("Choose where to save the case file.")
            self.error.show()
            return
        super().accept()

    def values(self) -> tuple[Path, str, str, str]:
        return (Path(self.file.text().strip()), self.case_number.text().strip(), self.title.text().strip(),
                self.examiner.text().strip())
