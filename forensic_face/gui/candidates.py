"""The ranked candidate list: thumbnail, rank, identity, the examiner's decision, fused score, LR and
per-scale scores. Decisions are asked for from the keyboard (L, X, I, U) or the context menu."""

from __future__ import annotations

from PySide6.QtCore import QPoint, QSize, Qt, Signal
from PySide6.QtGui import QContextMenuEvent, QIcon, QKeyEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHeaderView,
    QLabel,
    QMenu,
    QTableWidget,
    QTableWidgetItem,
    QWidget,
)

from forensic_face.calibration import (
    CALIBRATION_CAVEAT,
    Calibration,
    format_lr,
    lr_record,
)
from forensic_face.calibration.open_set import OPEN_SET_CAVEAT, OpenSetCue, open_set_cue
from forensic_face.engine import Candidate, Gallery, SearchResult
from forensic_face.gui.images import to_pixmap

THUMB_PX = 48
#: Column of the examiner's decision; the LR follows it, then one column per scale.
DECISION_COLUMN = 4
#: Keys that record a decision on the selected candidate, and the decisions of the case store.
DECISION_KEYS = {Qt.Key.Key_L: "possible lead", Qt.Key.Key_X: "excluded", Qt.Key.Key_I: "inconclusive",
                 Qt.Key.Key_U: "not reviewed"}


class CandidateTable(QTableWidget):
    """Arrow keys / Page Up / Page Down / Home / End move the selection; ``candidate_selected(index)``.
    L / X / I / U (or the context menu) ask for a decision on the selected row: ``decision_requested(row,
    decision, with_note)``."""

    candidate_selected = Signal(int)
    decision_requested = Signal(int, str, bool)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(0, 4, parent)
        self.setObjectName("candidateTable")
        self.setHorizontalHeaderLabels(["Rank", "", "Identity", "Score"])
        self.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.setIconSize(QSize(THUMB_PX, THUMB_PX))
        self.verticalHeader().setVisible(False)
        self.verticalHeader().setDefaultSectionSize(THUMB_PX + 6)
        self.setAlternatingRowColors(True)
        self.setShowGrid(False)
        # Long names wrap onto a second line of the thumbnail-high row instead of being cut.
        self.setWordWrap(True)
        header = self.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.Fixed)
        header.setSectionResizeMode(2, QHeaderView.ResizeMode.Stretch)
        header.setSectionResizeMode(3, QHeaderView.ResizeMode.ResizeToContents)
        self.setColumnWidth(1, THUMB_PX + 10)
        self.candidates: tuple[Candidate, ...] = ()
        self.decisions: dict[int, tuple[str, str]] = {}
        self.currentCellChanged.connect(self._on_current_changed)

    def set_candidates(self, candidates: tuple[Candidate, ...], gallery: Gallery | None, top_n: int,
                       calibration: Calibration | None = None, no_calibration_reason: str = "") -> None:
        """Show the top ``top_n`` candidates; with a ``calibration`` (see
        :func:`forensic_face.calibration.calibration_for_result`) the LR column shows the likelihood ratio (its
        verbal equivalent in the tooltip and the comparison view), without one it reads "none". Per-scale scores
        are in the score's tooltip: the list must fit beside the comparison on a laptop screen."""
        shown = candidates[:top_n]
        self.candidates = shown
        crops = {e.sha256: e.crop.pixels for e in gallery.entries} if gallery is not None else {}
        self.blockSignals(True)
        self.clearContents()
        self.setColumnCount(DECISION_COLUMN + 2)
        self.setHorizontalHeaderLabels(["#", "", "Identity", "Score", "Decision", "LR"])
        self.horizontalHeaderItem(0).setToolTip("Rank")
        self.horizontalHeaderItem(DECISION_COLUMN).setToolTip(
            "The examiner's decision: L possible lead, X excluded, I inconclusive, U not reviewed "
            "(right-click to add a note). Recorded in the open case with its audit entry.")
        lr_header = self.horizontalHeaderItem(DECISION_COLUMN + 1)
        lr_header.setToolTip(CALIBRATION_CAVEAT if calibration is not None else
                             f"No likelihood ratios: {no_calibration_reason or 'no calibration for these settings'}.")
        for k in range(DECISION_COLUMN, DECISION_COLUMN + 2):
            self.horizontalHeader().setSectionResizeMode(k, QHeaderView.ResizeMode.ResizeToContents)
        self.setRowCount(len(shown))
        for row, cand in enumerate(shown):
            rank = QTableWidgetItem(str(cand.rank))
            rank.setTextAlignment(Qt.AlignmentFlag.AlignCenter)
            thumb = QTableWidgetItem()
            pixels = crops.get(cand.gallery_sha256)
            if pixels is not None:
                thumb.setIcon(QIcon(to_pixmap(pixels, THUMB_PX)))
            ident = QTableWidgetItem(cand.identity.replace("_", " "))
            ident.setToolTip(f"{cand.identity}\n{cand.image_path}")
            score = QTableWidgetItem(f"{cand.score:.4f}")
            score.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            score.setToolTip("per scale: " + ", ".join(f"×{s} {v:.3f}" for s, v in
                                                       sorted(cand.per_scale_scores.items()))
                             + "".join(f"\n{name}: {v:.3f}" for name, v in cand.member_scores.items()))
            lr = lr_record(calibration, cand.score)
            if lr["lr"] is None:
                lr_item = QTableWidgetItem("none")
                lr_item.setToolTip(f"No likelihood ratio: {no_calibration_reason or 'no calibration for these settings'}.")
            else:
                lr_item = QTableWidgetItem(format_lr(lr["lr"]))
                lr_item.setToolTip(f"{lr['verbal']}\nlog10 LR {lr['log10_lr']:.2f} ({calibration.band_px} px "
                                   f"calibration, held-out Cllr {calibration.cllr:.3f})\n{CALIBRATION_CAVEAT}")
            for col, item in enumerate((rank, thumb, ident, score, QTableWidgetItem(), lr_item)):
                self.setItem(row, col, item)
        self.set_decisions({})  # the window shows the decisions of this search once it knows its case record
        self.blockSignals(False)
        if shown:
            self.setCurrentCell(0, 2)
            self.candidate_selected.emit(0)

    def set_decisions(self, decisions: dict[int, tuple[str, str, str]]) -> None:
        """Show ``{rank: (decision, note, carried)}`` in the decision column (ranks not given: not reviewed);
        ``carried`` says where a decision carried from an earlier search of the probe was made ("" if here)."""
        self.decisions = dict(decisions)
        for row, cand in enumerate(self.candidates):
            decision, note, carried = self.decisions.get(cand.rank, ("not reviewed", "", ""))
            item = self.item(row, DECISION_COLUMN)
            if item is None:
                continue
            item.setText("" if decision == "not reviewed" else decision + (" (carried)" if carried else ""))
            item.setToolTip(f"{decision}" + (f": {note}" if note else "") + (f"\n{carried}" if carried else ""))

    def clear_candidates(self) -> None:
        self.candidates = ()
        self.decisions = {}
        self.setRowCount(0)

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802 - Qt override
        decision = DECISION_KEYS.get(Qt.Key(event.key()))
        if decision is not None and event.modifiers() == Qt.KeyboardModifier.NoModifier \
                and 0 <= self.currentRow() < len(self.candidates):
            self.decision_requested.emit(self.currentRow(), decision, False)
            return
        super().keyPressEvent(event)

    def decision_menu(self, row: int) -> QMenu:
        """The context menu of a row: each decision, with or without a note."""
        menu = QMenu(self)
        keys = {d: k for k, d in DECISION_KEYS.items()}
        for decision in ("possible lead", "excluded", "inconclusive", "not reviewed"):
            action = menu.addAction(f"{decision.capitalize()}\t{chr(keys[decision].value)}")
            action.triggered.connect(lambda _=False, d=decision: self.decision_requested.emit(row, d, False))
        menu.addSeparator()
        for decision in ("possible lead", "excluded", "inconclusive"):
            action = menu.addAction(f"{decision.capitalize()}, with a note…")
            action.triggered.connect(lambda _=False, d=decision: self.decision_requested.emit(row, d, True))
        return menu

    def contextMenuEvent(self, event: QContextMenuEvent) -> None:  # noqa: N802 - Qt override
        row = self.rowAt(event.pos().y())
        if 0 <= row < len(self.candidates):
            self.selectRow(row)
            self.decision_menu(row).exec(self.viewport().mapToGlobal(QPoint(event.pos())))

    def _on_current_changed(self, row: int, _col: int, prev_row: int, _prev_col: int) -> None:
        if row != prev_row and 0 <= row < len(self.candidates):
            self.candidate_selected.emit(row)


class OpenSetLabel(QLabel):
    """One or two lines above the candidates: does the top of the ranking support that the person is in the
    gallery, or may the person not be in it (:func:`~forensic_face.calibration.open_set.open_set_cue`)? Without
    a matching open-set calibration it says there is no cue; the full statement, its calibration and caveat are
    in the tooltip."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("openSetCue")
        self.setWordWrap(True)
        self.cue: OpenSetCue | None = None
        self.clear_cue()

    def show_result(self, result: SearchResult) -> None:
        self.show_cue(open_set_cue(result))

    def show_cue(self, cue: OpenSetCue) -> None:
        self.cue = cue
        self.setVisible(True)
        if not cue.available or cue.lr is None or cue.calibration is None:
            self.setText("No open-set cue: nothing here says whether the person is in the gallery.")
            self.setStyleSheet("color: palette(mid);")
            self.setToolTip(cue.text)
            return
        phrase = (cue.verbal or "").split(" for ")[0]  # the ENFSI level, without the proposition's name
        if cue.may_be_absent:
            self.setText(f"\u26a0 The person may not be in the gallery: open-set LR {format_lr(cue.lr)}, {phrase} "
                         "that they are not.")
            self.setStyleSheet("color: #b35900; font-weight: bold;")
        else:
            self.setText(f"Open set: LR {format_lr(cue.lr)}, {phrase} that the person is in the gallery (not "
                         "which candidate).")
            self.setStyleSheet("")
        cal = cue.calibration
        self.setToolTip(f"{cue.text}\n\nStatistic {cue.statistic} = {cue.value:.4g} over "
                        f"{cue.num_gallery_identities} gallery identities; {cal.band_px} px open-set calibration, "
                        f"held-out Cllr {cal.cllr:.3f}.\n{cal.conditions}\n{OPEN_SET_CAVEAT}")

    def clear_cue(self) -> None:
        self.cue = None
        self.setText("")
        self.setToolTip("")
        self.setVisible(False)
