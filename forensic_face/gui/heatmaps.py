"""Per-scale score heatmaps (probe hypotheses x gallery hypotheses) for the selected candidate."""

from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QFontMetricsF
from PySide6.QtWidgets import QHBoxLayout, QLabel, QSplitter, QVBoxLayout, QWidget

from forensic_face.engine.degradations import describe_path
from forensic_face.engine import Candidate, GalleryHypothesis, ProbeHypothesis, SearchResult
from forensic_face.gui.widgets import ImageTile

COLORMAP = "viridis"


#: What the readout says before a cell is hovered.
READOUT_HINT = "Hover a cell to see the pair and its score; click it to show both images."

class HeatmapImage(pg.ImageItem):
    """An ImageItem that reports the hovered and clicked cell as (row, col); (-1, -1) when the mouse leaves."""

    hovered = Signal(int, int)
    clicked = Signal(int, int)

    def __init__(self) -> None:
        super().__init__(axisOrder="row-major")
        self.setAcceptHoverEvents(True)

    def cell_at(self, x: float, y: float) -> tuple[int, int] | None:
        if self.image is None:
            return None
        rows, cols = self.image.shape[:2]
        col, row = int(math.floor(x)), int(math.floor(y))
        if 0 <= row < rows and 0 <= col < cols:
            return row, col
        return None

    def hoverEvent(self, ev) -> None:  # type: ignore[no-untyped-def]  # noqa: N802 - pyqtgraph override
        if ev.isExit():
            self.hovered.emit(-1, -1)
            return
        cell = self.cell_at(ev.pos().x(), ev.pos().y())
        self.hovered.emit(*(cell or (-1, -1)))

    def mouseClickEvent(self, ev) -> None:  # type: ignore[no-untyped-def]  # noqa: N802 - pyqtgraph override
        if ev.button() != Qt.MouseButton.LeftButton:
            return
        cell = self.cell_at(ev.pos().x(), ev.pos().y())
        if cell is not None:
            ev.accept()
            self.clicked.emit(*cell)


class CellAxis(pg.AxisItem):
    """An axis labelling heatmap cells (one label per row or column, at the cell's centre) that shows only as
    many labels as fit: every ``step``-th cell, ``step`` chosen from the axis' length in pixels and the widest
    (or, upright, the tallest) label. Fixed ticks (``setTicks``) ran together at laptop sizes ("12243648")."""

    #: Free space between two neighbouring labels, in pixels.
    GAP_PX = 8

    def __init__(self, orientation: str) -> None:
        super().__init__(orientation)
        # The first and last cells' labels reach half a label past the axis' ends: show them anyway (pyqtgraph
        # hides such labels, which dropped row 0 and column 0).
        self.setStyle(hideOverlappingLabels=False)
        self.labels: list[str] = []

    def set_labels(self, labels: list[str]) -> None:
        self.labels = list(labels)
        self.picture = None  # pyqtgraph caches the drawing: redraw with the new labels
        self.update()

    def _label_extent_px(self) -> float:
        metrics = QFontMetricsF(self.style["tickFont"] or self.font())
        if self.orientation in ("left", "right"):
            return metrics.height()
        return max((metrics.horizontalAdvance(text) for text in self.labels), default=0.0)

    def tickValues(self, minVal: float, maxVal: float, size: float) -> list[tuple[float, list[float]]]:  # noqa: N802,N803 - pyqtgraph override
        lo, hi = sorted((minVal, maxVal))  # an inverted axis (rows top-down) passes its range reversed
        if not self.labels or size <= 0 or hi <= lo:
            return []
        cell_px = size / (hi - lo)
        step = max(1, math.ceil((self._label_extent_px() + self.GAP_PX) / max(cell_px, 1e-6)))
        return [(float(step), [k + 0.5 for k in range(0, len(self.labels), step) if lo <= k + 0.5 <= hi])]

    def tickStrings(self, values: list[float], scale: float, spacing: float) -> list[str]:  # noqa: N802 - pyqtgraph override
        return [self.labels[int(v)] if 0 <= int(v) < len(self.labels) else "" for v in values]


def shared_levels(similarity: dict[int, np.ndarray]) -> tuple[float, float]:
    """One colour scale for all scales of a candidate so colours compare across scales."""
    finite = [m[np.isfinite(m)] for m in similarity.values() if m.size]
    values = np.concatenate(finite) if finite else np.zeros(1)
    if values.size == 0:
        return 0.0, 1.0
    lo, hi = float(values.min()), float(values.max())
    if hi - lo < 1e-6:
        lo, hi = lo - 0.05, hi + 0.05
    return lo, hi


class HeatmapPanel(QWidget):
    """One pyqtgraph ImageItem per scale with a shared colour bar, a hover read-out, and the clicked pair."""

    cell_selected = Signal(int, int, int)  # scale, row, col
    #: The candidate does not carry this gallery hypothesis image: (scale, path label) to render on request.
    render_requested = Signal(int, str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("heatmapPanel")
        self.plots = pg.GraphicsLayoutWidget()
        self.plots.setBackground("#1e2227")
        self.images: dict[int, HeatmapImage] = {}
        self.levels: tuple[float, float] = (0.0, 1.0)
        self.colorbar: pg.ColorBarItem | None = None
        self._result: SearchResult | None = None
        self._candidate: Candidate | None = None
        self._marker: dict[int, pg.PlotDataItem] = {}
        self._pending: tuple[int, str] | None = None
        self.readout = QLabel(READOUT_HINT)
        self.readout.setObjectName("heatmapReadout")
        self.readout.setWordWrap(True)
        self.probe_tile = ImageTile("Probe hypothesis")
        self.gallery_tile = ImageTile("Gallery hypothesis")
        pair = QWidget()
        pl = QHBoxLayout(pair)
        pl.setContentsMargins(0, 0, 0, 0)
        pl.addWidget(self.probe_tile)
        pl.addWidget(self.gallery_tile)
        split = QSplitter(Qt.Orientation.Vertical)
        split.addWidget(self.plots)
        split.addWidget(pair)
        split.setStretchFactor(0, 3)
        split.setStretchFactor(1, 2)
        split.setSizes([500, 260])
        pair.setMinimumHeight(200)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(split, 1)
        layout.addWidget(self.readout)

    def clear(self) -> None:
        self.plots.clear()
        self.images = {}
        self._marker = {}
        self.colorbar = None
        self._result = self._candidate = None
        self._pending = None
        self.probe_tile.clear()
        self.gallery_tile.clear()
        # A new candidate or probe starts without the previous one's pair in the caption.
        self.readout.setText(READOUT_HINT)

    def set_candidate(self, result: SearchResult, candidate: Candidate) -> None:
        self.clear()
        self._result, self._candidate = result, candidate
        if not candidate.similarity:
            self.readout.setText("This candidate carries no per-scale similarity matrices.")
            return
        self.levels = shared_levels(candidate.similarity)
        cmap = pg.colormap.get(COLORMAP)
        lut = cmap.getLookupTable(nPts=256)
        scales = sorted(candidate.similarity)
        for col, scale in enumerate(scales):
            matrix = np.asarray(candidate.similarity[scale], dtype=np.float32)
            left, bottom = CellAxis("left"), CellAxis("bottom")
            plot = self.plots.addPlot(row=0, col=col, title=f"×{scale}",
                                      axisItems={"left": left, "bottom": bottom})
            plot.invertY(True)
            plot.setMenuEnabled(False)
            plot.setMouseEnabled(x=False, y=False)
            plot.hideButtons()
            # The axes mean the same in every heatmap: titled once (left of the first, below all), so that
            # three narrow heatmaps' titles do not run into each other.
            if col == 0:
                plot.setLabel("left", "probe pre-blur σ")
            image = HeatmapImage()
            image.setLookupTable(lut)
            image.setImage(matrix, levels=self.levels, autoLevels=False)
            plot.addItem(image)
            plot.setRange(xRange=(0, matrix.shape[1]), yRange=(0, matrix.shape[0]), padding=0)
            # Labels at cell centres: sigma for the rows, the column index for the gallery hypotheses.
            probes = result.probe_hypotheses.get(scale, ())
            left.set_labels([f"{probes[r].sigma:.2f}" if r < len(probes) else str(r) for r in range(matrix.shape[0])])
            bottom.set_labels([str(c) for c in range(matrix.shape[1])])
            image.hovered.connect(lambda r, c, s=scale: self._on_hover(s, r, c))
            image.clicked.connect(lambda r, c, s=scale: self.select_cell(s, r, c))
            self.images[scale] = image
            marker = pg.PlotDataItem(pen=pg.mkPen("#ff4d4d", width=2))
            plot.addItem(marker)
            self._marker[scale] = marker
        self.colorbar = pg.ColorBarItem(values=self.levels, colorMap=cmap, interactive=False, label="similarity")
        self.colorbar.setImageItem(list(self.images.values()))
        self.plots.addItem(self.colorbar, row=0, col=len(scales))
        self.axis_title = self.plots.addLabel("gallery hypothesis (column; 0 = original)", row=1, col=0,
                                              colspan=len(scales))
        best = candidate.best_probe_hypothesis
        if best.scale in candidate.similarity:
            m = candidate.similarity[best.scale]
            row, col = np.unravel_index(int(np.nanargmax(m)), m.shape)
            self.select_cell(best.scale, int(row), int(col))

    # Labels -------------------------------------------------------------------------------------------------
    def probe_hypothesis(self, scale: int, row: int) -> ProbeHypothesis | None:
        if self._result is None:
            return None
        hyps = self._result.probe_hypotheses.get(scale, ())
        return hyps[row] if 0 <= row < len(hyps) else None

    def gallery_label(self, scale: int, col: int) -> str:
        if self._candidate is None:
            return ""
        labels = self._candidate.gallery_paths.get(scale, ())
        return labels[col] if 0 <= col < len(labels) else f"#{col}"

    def gallery_hypothesis(self, scale: int, col: int) -> GalleryHypothesis | None:
        """The gallery hypothesis image if the candidate carries it (the engine keeps the best few)."""
        if self._candidate is None:
            return None
        label = self.gallery_label(scale, col)
        for hyp in self._candidate.best_gallery_hypotheses:
            if hyp.scale == scale and hyp.path == label:
                return hyp
        return None

    def set_gallery_image(self, scale: int, label: str, pixels: np.ndarray | None, note: str = "") -> None:
        """Show a rendered gallery hypothesis if it is still the one asked for (else ignore it)."""
        if self._pending != (scale, label):
            return
        self._pending = None
        caption = self.gallery_tile.caption.text()
        if pixels is None:
            self.gallery_tile.clear(note or "image not available")
        else:
            self.gallery_tile.set_image(pixels, max_side=180, nearest=True)
        self.gallery_tile.caption.setText(caption)

    def pending_render(self) -> tuple[int, str] | None:
        """The ``(scale, path label)`` whose gallery image was asked for and not shown yet."""
        return self._pending

    def wait_render(self, note: str) -> None:
        """Say why the asked-for gallery image is not shown yet, still waiting for it."""
        if self._pending is not None:
            self.gallery_tile.image.clear_source(note)

    def fail_render(self, note: str) -> None:
        if self._pending is not None:
            self.set_gallery_image(*self._pending, None, note)

    def current_candidate(self) -> Candidate | None:
        return self._candidate

    def describe(self, scale: int, row: int, col: int) -> str:
        if self._candidate is None:
            return ""
        score = float(self._candidate.similarity[scale][row, col])
        probe = self.probe_hypothesis(scale, row)
        sigma = f"σ = {probe.sigma:.3f}" if probe is not None else f"row {row}"
        return (f"×{scale}: probe hypothesis {row} ({sigma}) vs gallery hypothesis {col} "
                f"({describe_path(self.gallery_label(scale, col))}) — similarity {score:.4f}")

    def _on_hover(self, scale: int, row: int, col: int) -> None:
        if row < 0 or self._candidate is None:
            return
        text = self.describe(scale, row, col)
        self.readout.setText(text)
        self.images[scale].setToolTip(text)

    def select_cell(self, scale: int, row: int, col: int) -> None:
        """Show the pair of images of a cell (the gallery image only if the candidate carries it)."""
        if self._candidate is None or scale not in self._candidate.similarity:
            return
        for s, marker in self._marker.items():
            if s == scale:
                marker.setData([col, col + 1, col + 1, col, col], [row, row, row + 1, row + 1, row])
            else:
                marker.setData([], [])
        score = float(self._candidate.similarity[scale][row, col])
        probe = self.probe_hypothesis(scale, row)
        if probe is not None:
            self.probe_tile.set_image(probe.image, max_side=180, nearest=True,
                                      caption=f"×{scale}, σ = {probe.sigma:.3f} (enhanced: investigative lead only)")
        else:
            self.probe_tile.clear("probe hypothesis image not available")
        label = self.gallery_label(scale, col)
        gallery = self.gallery_hypothesis(scale, col)
        if gallery is not None:
            self.gallery_tile.set_image(gallery.image, max_side=180, nearest=True,
                                        caption=f"×{scale} {label}\nscore {score:.4f}")
        else:
            self.gallery_tile.clear("rendering…")
            self.gallery_tile.caption.setText(f"×{scale} {label}\nscore {score:.4f}")
            self._pending = (scale, label)
            self.render_requested.emit(scale, label)
        self.readout.setText(self.describe(scale, row, col))
        self.cell_selected.emit(scale, row, col)
