"""The History tab: the searches of the selected probe, latest first, to look at an earlier one (read-only), choose
the one the report uses, and record a second examiner's review. The texts come from
:mod:`forensic_face.gui.case_session`; the window does the storing."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from forensic_face.gui.case_session import search_details, search_line
from forensic_face.store.history import ProbeHistory


class HistoryPanel(QWidget):
    """``search_selected(id)``: show that search; ``report_chosen(id)``: the report uses it for its probe;
    ``review_requested(id)``: record a review of it."""

    search_selected = Signal(int)
    report_chosen = Signal(int)
    review_requested = Signal(int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("historyPanel")
        self.history: ProbeHistory | None = None
        self.title = QLabel("Open a case and select a searched probe to see its searches.")
        self.title.setWordWrap(True)
        self.searches = QListWidget()
        self.searches.setObjectName("historySearches")
        self.searches.setToolTip("Every search of the selected probe, latest first; select one to show it "
                                 "(earlier searches are read-only)")
        self.details = QLabel()
        self.details.setObjectName("historyDetails")
        self.details.setWordWrap(True)
        self.details.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.details.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        self.report_button = QPushButton("Use for the report")
        self.report_button.setObjectName("historyReportButton")
        self.report_button.setToolTip("The case report shows this search for the probe (the others go to its "
                                      "annex); recorded in the case's audit trail")
        self.review_button = QPushButton("Review…")
        self.review_button.setObjectName("historyReviewButton")
        self.review_button.setToolTip("Record a second examiner's review of this search's decisions")
        buttons = QHBoxLayout()
        buttons.addWidget(self.report_button)
        buttons.addWidget(self.review_button)
        buttons.addStretch(1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.addWidget(self.title)
        layout.addWidget(self.searches, 2)
        layout.addLayout(buttons)
        layout.addWidget(self.details, 1)
        self.searches.currentRowChanged.connect(self._on_row)
        self.report_button.clicked.connect(lambda: self._emit(self.report_chosen))
        self.review_button.clicked.connect(lambda: self._emit(self.review_requested))
        self.set_history(None)

    def selected_search(self) -> int | None:
        item = self.searches.currentItem()
        return None if item is None else int(item.data(Qt.ItemDataRole.UserRole))

    def _emit(self, signal: Signal) -> None:
        search_id = self.selected_search()
        if search_id is not None:
            signal.emit(search_id)  # type: ignore[attr-defined]

    def set_history(self, history: ProbeHistory | None, shown: int | None = None) -> None:
        """List ``history``'s searches (latest first) with ``shown`` selected, without emitting a selection."""
        self.history = history
        self.searches.blockSignals(True)
        self.searches.clear()
        if history is None:
            self.title.setText("Open a case and select a searched probe to see its searches.")
        else:
            self.title.setText(f"Searches of {history.evidence.path.name} ({len(history.searches)}), latest "
                               "first; select one to show it.")
            for entry in reversed(history.searches):
                item = QListWidgetItem(search_line(history, entry))
                item.setData(Qt.ItemDataRole.UserRole, entry.search.id)
                item.setToolTip(search_details(history, entry))
                self.searches.addItem(item)
                if entry.search.id == shown:
                    self.searches.setCurrentItem(item)
        self.searches.blockSignals(False)
        self._show_details()

    def _on_row(self, _row: int) -> None:
        self._show_details()
        self._emit(self.search_selected)

    def _show_details(self) -> None:
        search_id = self.selected_search()
        entry = None if self.history is None or search_id is None else next(
            (h for h in self.history.searches if h.search.id == search_id), None)
        self.details.setText("" if entry is None or self.history is None else search_details(self.history, entry))
        self.report_button.setEnabled(entry is not None and self.history is not None
                                      and self.history.chosen().search.id != entry.search.id)
        self.review_button.setEnabled(entry is not None)
