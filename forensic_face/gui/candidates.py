"""The ranked candidate list: thumbnail, rank, identity, fused score and per-scale scores."""

from __future__ import annotations

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QIcon
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHeaderView,
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
from forensic_face.engine.results import Candidate, Gallery
from forensic_face.gui.images import to_pixmap

THUMB_PX = 48


class CandidateTable(QTableWidget):
    """Arrow keys / Page Up / Page Down / Home / End move the selection; ``candidate_selected(index)``."""

    candidate_selected = Signal(int)

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
        self.setWordWrap(False)
        header = self.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.Fixed)
        header.setSectionResizeMode(2, QHeaderView.ResizeMode.Stretch)
        header.setSectionResizeMode(3, QHeaderView.ResizeMode.ResizeToContents)
        self.setColumnWidth(1, THUMB_PX + 10)
        self.candidates: tuple[Candidate, ...] = ()
        self.currentCellChanged.connect(self._on_current_changed)

    def set_candidates(self, candidates: tuple[Candidate, ...], gallery: Gallery | None, top_n: int,
                       calibration: Calibration | None = None) -> None:
        """Show the top ``top_n`` candidates; with a ``calibration`` (see
        :func:`forensic_face.calibration.calibration_for_result`) an LR column shows LR and verbal equivalent,
        without one it reads "no calibration"."""
        shown = candidates[:top_n]
        self.candidates = shown
        crops = {e.sha256: e.crop.pixels for e in gallery.entries} if gallery is not None else {}
        scales = sorted({s for c in shown for s in c.per_scale_scores})
        self.blockSignals(True)
        self.clearContents()
        self.setColumnCount(5 + len(scales))
        self.setHorizontalHeaderLabels(["Rank", "", "Identity", "Score", "LR"] + [f"×{s}" for s in scales])
        lr_header = self.horizontalHeaderItem(4)
        lr_header.setToolTip(CALIBRATION_CAVEAT if calibration is not None else
                             "No calibration for these settings: scores are not likelihood ratios.")
        for k in range(4, 5 + len(scales)):
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
            lr = lr_record(calibration, cand.score)
            if lr["lr"] is None:
                lr_item = QTableWidgetItem("no calibration")
                lr_item.setToolTip("No calibration for these settings and face width: no likelihood ratio.")
            else:
                lr_item = QTableWidgetItem(f"{format_lr(lr['lr'])}  {lr['verbal']}")
                lr_item.setToolTip(f"log10 LR {lr['log10_lr']:.2f} ({calibration.band_px} px calibration, "
                                   f"held-out Cllr {calibration.cllr:.3f})\n{CALIBRATION_CAVEAT}")
            for col, item in enumerate((rank, thumb, ident, score, lr_item)):
                self.setItem(row, col, item)
            for k, s in enumerate(scales):
                value = cand.per_scale_scores.get(s)
                cell = QTableWidgetItem("" if value is None else f"{value:.3f}")
                cell.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                self.setItem(row, 5 + k, cell)
        self.blockSignals(False)
        if shown:
            self.setCurrentCell(0, 2)
            self.candidate_selected.emit(0)

    def clear_candidates(self) -> None:
        self.candidates = ()
        self.setRowCount(0)

    def _on_current_changed(self, row: int, _col: int, prev_row: int, _prev_col: int) -> None:
        if row != prev_row and 0 <= row < len(self.candidates):
            self.candidate_selected.emit(row)
