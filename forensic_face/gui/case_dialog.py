"""New-case dialog (case number, title, examiner, file) and a second examiner's review dialog. The case store
itself lives in forensic_face.store."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtWidgets import (
    QComboBox,
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


def safe_file_stem(text: str, default: str = "case") -> str:
    """``text`` with every character a file name should not hold replaced by ``_``.

    >>> safe_file_stem("2024/0173 ä"), safe_file_stem("  ")
    ('2024_0173_ä', 'case')
    """
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in text.strip()) or default


class FormDialog(QDialog):
    """A form above an error line and OK/Cancel: what the case and report dialogs share."""

    def _file_row(self, edit: QLineEdit) -> QHBoxLayout:
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse)
        row = QHBoxLayout()
        row.addWidget(edit, 1)
        row.addWidget(browse)
        return row

    def _finish(self, form: QFormLayout) -> None:
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

    def _refuse(self, text: str) -> None:
        self.error.setText(text)
        self.error.show()

    def _browse(self) -> None:
        raise NotImplementedError


class NewCaseDialog(FormDialog):
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
        form = QFormLayout()
        form.addRow("Case number", self.case_number)
        form.addRow("Title", self.title)
        form.addRow("Examiner", self.examiner)
        form.addRow("Case file", self._file_row(self.file))
        self._finish(form)

    def _suggest_file(self, text: str) -> None:
        self.file.setText(str(self._folder / f"{safe_file_stem(text)}{self._suffix}"))

    def _browse(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Case file", self.file.text(), f"Cases (*{self._suffix})")
        if path:
            self.file.setText(path if path.endswith(self._suffix) else path + self._suffix)

    def accept(self) -> None:
        if not self.case_number.text().strip():
            self._refuse("A case needs a case number.")
            return
        if not self.examiner.text().strip():
            self._refuse("A case needs the examiner's name: the audit trail records who did each step.")
            return
        if not self.file.text().strip():
            self._refuse("Choose where to save the case file.")
            return
        super().accept()

    def values(self) -> tuple[Path, str, str, str]:
        return (Path(self.file.text().strip()), self.case_number.text().strip(), self.title.text().strip(),
                self.examiner.text().strip())


class ReviewDialog(FormDialog):
    """A second examiner's review of one search: who reviews, agree / disagree / inconclusive, and a note. The
    store refuses a reviewer who ran the search or made its decisions (``CaseStore.record_review``)."""

    def __init__(self, search_text: str, reviewer: str, verdicts: tuple[str, ...],
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Review search")
        self.reviewer = QLineEdit(reviewer)
        self.reviewer.setPlaceholderText("the second examiner's name")
        self.verdict = QComboBox()
        self.verdict.addItems(list(verdicts))
        self.note = QLineEdit()
        self.note.setPlaceholderText("what was checked, why")
        self.search_label = QLabel(search_text)
        self.search_label.setWordWrap(True)
        form = QFormLayout()
        form.addRow("Search", self.search_label)
        form.addRow("Reviewer", self.reviewer)
        form.addRow("Verdict", self.verdict)
        form.addRow("Note", self.note)
        self._finish(form)

    def accept(self) -> None:
        if not self.reviewer.text().strip():
            self._refuse("A review needs the reviewer's name: the audit trail records who verified the search.")
            return
        super().accept()

    def values(self) -> tuple[str, str, str]:
        return self.reviewer.text().strip(), self.verdict.currentText(), self.note.text().strip()
