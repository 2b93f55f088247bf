"""Side-by-side comparison of the probe and one candidate."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)

from forensic_face.calibration import (
    CALIBRATION_CAVEAT,
    Calibration,
    format_lr,
    lr_record,
)
from forensic_face.engine.degradations import describe_path
from forensic_face.engine import Candidate, GalleryEntry, SearchResult
from forensic_face.gui.images import enlarge_nearest
from forensic_face.gui.widgets import ImageTile

#: Displayed size (px) of the enlarged probe, the enhanced hypothesis and the portrait.
VIEW_PX = 200
ENHANCED_LABEL = "enhanced: investigative lead only"
MAX_VARIANTS = 6


def elide_middle(text: str, max_chars: int = 22) -> str:
    """``text`` shortened in the middle, so a file name without spaces cannot force a wide tile.

    >>> elide_middle("Maria_Soledad_Alvear_Valenzuela_0001.png")
    'Maria_Soled…a_0001.png'
    """
    if len(text) <= max_chars:
        return text
    keep = max_chars - 1
    return text[: (keep + 1) // 2] + "…" + text[-(keep // 2):]


def nearest_factor(size_px: int, target_px: int = VIEW_PX) -> int:
    """The integer enlargement that brings ``size_px`` closest to ``target_px`` without exceeding it (>= 1)."""
    return max(1, target_px // max(size_px, 1))


class ComparisonView(QScrollArea):
    """Original probe (native size and nearest-neighbour enlarged), the chosen enhanced hypothesis, the gallery
    portrait, and the closest degraded gallery variants with their degradation paths."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("comparisonView")
        self.setWidgetResizable(True)
        body = QWidget()
        self.setWidget(body)
        self.header = QLabel("Run a search and select a candidate to compare.")
        self.header.setObjectName("comparisonHeader")
        self.header.setWordWrap(True)
        self.disclaimer = QLabel("Candidates are investigative leads for human review, not identifications.")
        self.disclaimer.setObjectName("disclaimer")
        self.disclaimer.setWordWrap(True)
        self.probe_native = ImageTile("Probe — original pixels (1:1)")
        self.probe_enlarged = ImageTile("Probe — enlarged (nearest neighbour)")
        self.enhanced = ImageTile("Super-resolved hypothesis")
        self.enhanced.setProperty("enhanced", True)
        self.enhanced_badge = QLabel(ENHANCED_LABEL)
        self.enhanced_badge.setObjectName("enhancedBadge")
        self.enhanced_badge.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.enhanced_badge.setWordWrap(True)
        self.enhanced.layout().insertWidget(1, self.enhanced_badge)
        self.portrait = ImageTile("Gallery portrait")
        top = QGridLayout()
        for col, tile in enumerate((self.probe_native, self.probe_enlarged, self.enhanced, self.portrait)):
            top.addWidget(tile, 0, col)
            top.setColumnStretch(col, 1)
        self.variants_label = QLabel("Closest degraded gallery variants")
        self.variants_label.setObjectName("sectionLabel")
        self.variants_row = QHBoxLayout()
        self.variants_row.setSpacing(6)
        self.variant_tiles: list[ImageTile] = []
        layout = QVBoxLayout(body)
        layout.addWidget(self.header)
        layout.addWidget(self.disclaimer)
        layout.addLayout(top)
        layout.addWidget(self.variants_label)
        layout.addLayout(self.variants_row)
        layout.addStretch(1)

    def clear(self) -> None:
        self.header.setText("Run a search and select a candidate to compare.")
        for tile in (self.probe_native, self.probe_enlarged, self.enhanced, self.portrait):
            tile.clear()
        self._set_variants([])

    def _set_variants(self, items: list[tuple[np.ndarray, str]]) -> None:
        while len(self.variant_tiles) < len(items):
            tile = ImageTile()
            self.variant_tiles.append(tile)
            self.variants_row.addWidget(tile)
        for tile, (pixels, caption) in zip(self.variant_tiles, items):
            tile.set_image(pixels, max_side=120, nearest=True, caption=caption)
            tile.show()
        for tile in self.variant_tiles[len(items):]:
            tile.hide()

    def show_candidate(self, result: SearchResult, candidate: Candidate, entry: GalleryEntry | None,
                       calibration: Calibration | None = None, no_calibration_reason: str = "") -> None:
        lr = lr_record(calibration, candidate.score)
        if calibration is None or lr["lr"] is None:
            lr_text = ("<br>No likelihood ratio: " + (no_calibration_reason or "no calibration for these settings")
                       + ". The score ranks candidates; it is not a likelihood ratio.")
        else:
            lr_text = (f"<br>LR {format_lr(lr['lr'])} (log10 LR {lr['log10_lr']:.2f}): {lr['verbal']} "
                       f"({calibration.band_px} px calibration, held-out Cllr {calibration.cllr:.3f})."
                       f"<br><small>{CALIBRATION_CAVEAT}</small>")
        self.header.setText(
            f"<b>Rank {candidate.rank}: {candidate.identity.replace('_', ' ')}</b> — fused score "
            f"{candidate.score:.4f} ({', '.join(f'×{s}: {v:.3f}' for s, v in sorted(candidate.per_scale_scores.items()))})"
            + lr_text)
        crop = result.probe_crop.pixels
        size = crop.shape[0]
        self.probe_native.set_image(crop, caption=f"{crop.shape[1]}×{crop.shape[0]} px from {result.probe_path.name}")
        factor = nearest_factor(size)
        self.probe_enlarged.set_image(enlarge_nearest(crop, factor), max_side=factor * size, nearest=True,
                                      caption=f"×{factor}, no interpolation")
        hyp = candidate.best_probe_hypothesis
        self.enhanced.set_image(hyp.image, max_side=VIEW_PX, nearest=True,
                                caption=f"scale ×{hyp.scale}, pre-blur σ = {hyp.sigma:.3f}")
        if entry is not None:
            self.portrait.set_image(entry.crop.pixels, max_side=VIEW_PX,
                                    caption=f"{elide_middle(entry.image_path.name)}\nSHA-256 {entry.sha256[:12]}…")
            self.portrait.caption.setToolTip(f"{entry.image_path}\nSHA-256 {entry.sha256}")
        else:
            self.portrait.clear("portrait not in the open gallery")
            self.portrait.caption.setText(str(candidate.image_path))
        variants = sorted(candidate.best_gallery_hypotheses, key=lambda h: -h.score)[:MAX_VARIANTS]
        self._set_variants([(h.image, f"×{h.scale}: {describe_path(h.path)}\nscore {h.score:.3f}")
                            for h in variants])
