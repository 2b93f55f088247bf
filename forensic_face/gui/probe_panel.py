"""Probe panel: the list of probe stills and clips with their detected faces, and the canvas
(:class:`~forensic_face.gui.probe_canvas.FaceBoxView`) to pick, draw or adjust a box."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QColor, QIcon
from PySide6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QMessageBox,
    QPushButton,
    QSlider,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from forensic_face.gui.drops import (
    DroppedPaths,
    FileDropTarget,
    images_in_folder,
    paths_from_mime,
)
from forensic_face.gui.images import to_pixmap
from forensic_face.gui.probe_canvas import FaceBoxView
from forensic_face.gui.probe_records import ProbeRecord

THUMB_PX = 40
#: A drawn box narrower or lower than this (image pixels) is unlikely to hold a face a search can use.
MIN_BOX_PX = 8
#: A drawn box whose luminance varies less than this (standard deviation, 0-255) shows no detail at all.
MIN_BOX_DETAIL = 4.0


def implausible_box_reason(box: tuple[float, float, float, float], pixels: np.ndarray) -> str:
    """Why a drawn box is unlikely to frame a usable face ("" when nothing is wrong with it): too small to
    hold one, more than half the frame, or a region with no detail (flat: nothing face-like in it)."""
    x1, y1, x2, y2 = box
    height, width = pixels.shape[:2]
    w, h = x2 - x1, y2 - y1
    if w < MIN_BOX_PX or h < MIN_BOX_PX:
        return f"the box is {w:.0f}×{h:.0f} px, smaller than {MIN_BOX_PX} px: too small to hold a face"
    if w > width / 2 or h > height / 2:
        return f"the box is {w:.0f}×{h:.0f} px, more than half of the {width}×{height} px frame"
    crop = pixels[int(y1):int(np.ceil(y2)), int(x1):int(np.ceil(x2))]
    if crop.size and float(crop.astype(np.float32).mean(axis=-1).std()) < MIN_BOX_DETAIL:
        return "the region in the box is almost uniform: it shows no face-like detail"
    return ""


class ProbePanel(FileDropTarget, QWidget):
    """Lists probe stills; shows the current one in a :class:`FaceBoxView`."""

    paths_dropped = Signal(list)  # list[Path] of image files to load
    open_requested = Signal()
    current_changed = Signal(int)
    face_chosen = Signal(int, int)  # probe index, face index (-1 = manual)
    box_drawn = Signal(int, tuple)  # probe index, (x1, y1, x2, y2)
    frame_requested = Signal(int, int)  # probe index, frame index of its video to show
    message = Signal(str, str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("probePanel")
        self.setAcceptDrops(True)
        self.records: list[ProbeRecord] = []

        self.add_button = QPushButton("Add probes…")
        self.add_button.setToolTip("Add probe stills (Ctrl+O); you can also drop images or a folder here")
        self.add_button.clicked.connect(self.open_requested)
        self.remove_button = QPushButton("Remove")
        self.remove_button.clicked.connect(self.remove_current)
        top = QHBoxLayout()
        self.summary = QLabel("Drop probe stills or a folder here")
        self.summary.setObjectName("panelSummary")
        top.addWidget(self.summary, 1)
        top.addWidget(self.add_button)
        top.addWidget(self.remove_button)

        self.list = QListWidget()
        self.list.setObjectName("probeList")
        self.list.setIconSize(QSize(THUMB_PX, THUMB_PX))
        self.list.setAcceptDrops(False)
        self.list.currentRowChanged.connect(self._on_row_changed)
        # Three probes (thumbnail beside two lines of text) at least, so the list is a list at 1366x768.
        row_px = max(THUMB_PX, 2 * self.list.fontMetrics().lineSpacing()) + 8
        self.list.setMinimumHeight(3 * row_px + 2 * self.list.frameWidth())

        self.face_combo = QComboBox()
        self.face_combo.setToolTip("Which face of the probe to search with")
        self.face_combo.activated.connect(self._on_face_combo)
        hint = QLabel("Drag on the image to draw a box · drag the green box to move it, its corner to resize · "
                      "wheel or +/- zooms, 0 fits, Shift-drag pans")
        hint.setObjectName("hintLabel")
        hint.setWordWrap(True)
        self.view = FaceBoxView()
        self.view.box_drawn.connect(self._on_box_drawn)
        self.view.face_clicked.connect(self._on_face_clicked)

        viewer = QWidget()
        vl = QVBoxLayout(viewer)
        vl.setContentsMargins(0, 0, 0, 0)
        row = QHBoxLayout()
        row.addWidget(QLabel("Face:"))
        row.addWidget(self.face_combo, 1)
        vl.addLayout(row)
        vl.addWidget(self.view, 1)
        vl.addWidget(hint)
        # Display only: a dark CCTV frame is easier to look at brighter; the evidence is never changed.
        self.brightness = self._display_slider("brightness", -100, 100, 0)
        self.contrast = self._display_slider("contrast (×0.25–4)", -100, 100, 0)
        self.gamma = self._display_slider("gamma (0.25–4)", -100, 100, 0)
        self.display_reset = QPushButton("Reset")
        self.display_reset.setToolTip("Show the probe as it is")
        self.display_reset.clicked.connect(self.reset_display)
        display_row = QHBoxLayout()
        display_row.setSpacing(4)
        display_label = QLabel("Display:")
        display_label.setToolTip("Brightness, contrast, gamma of the view only; never written to the evidence, "
                                 "searches and reports use the original pixels")
        display_row.addWidget(display_label)
        for short, slider in (("B", self.brightness), ("C", self.contrast), ("γ", self.gamma)):
            label = QLabel(short)
            label.setToolTip(slider.toolTip())
            display_row.addWidget(label)
            display_row.addWidget(slider, 1)
        display_row.addWidget(self.display_reset)
        vl.addLayout(display_row)
        #: The confirmation asked for an implausible drawn box (None: none open).
        self.box_dialog: QMessageBox | None = None
        # A video track's faces, frame by frame: a filmstrip and a timeline over it; the frames the last search
        # fused are highlighted.
        self.track_strip = QListWidget()
        self.track_strip.setObjectName("trackStrip")
        self.track_strip.setViewMode(QListWidget.ViewMode.IconMode)
        self.track_strip.setFlow(QListWidget.Flow.LeftToRight)
        self.track_strip.setWrapping(False)
        self.track_strip.setIconSize(QSize(48, 48))
        self.track_strip.setFixedHeight(96)
        self.timeline = QSlider(Qt.Orientation.Horizontal)
        self.timeline.setObjectName("trackTimeline")
        self.timeline_label = QLabel()
        self.timeline.valueChanged.connect(self._on_timeline)
        self.track_strip.currentRowChanged.connect(self.timeline.setValue)
        for w in (self.track_strip, self.timeline, self.timeline_label):
            vl.addWidget(w)
            w.hide()
        # Every frame of a clip: scrub to the one to show (and draw a box on to start a track of a face the
        # detector missed). The frame is decoded when the slider is released.
        self.frame_slider = QSlider(Qt.Orientation.Horizontal)
        self.frame_slider.setObjectName("frameSlider")
        self.frame_slider.setTracking(False)
        self.frame_slider.setToolTip("Scrub through every frame of the clip; draw a box on a face to follow it")
        self.frame_label = QLabel()
        self.frame_label.setObjectName("frameLabel")
        self.frame_slider.sliderMoved.connect(self._on_frame_moved)
        self.frame_slider.valueChanged.connect(self._on_frame_chosen)
        frame_row = QHBoxLayout()
        frame_row.addWidget(QLabel("Frame:"))
        frame_row.addWidget(self.frame_slider, 1)
        frame_row.addWidget(self.frame_label)
        self.frame_row = QWidget()
        self.frame_row.setLayout(frame_row)
        frame_row.setContentsMargins(0, 0, 0, 0)
        vl.addWidget(self.frame_row)
        self.frame_row.hide()

        split = QSplitter(Qt.Orientation.Vertical)
        split.addWidget(self.list)
        split.addWidget(viewer)
        split.setStretchFactor(0, 1)
        split.setStretchFactor(1, 3)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.addLayout(top)
        layout.addWidget(split, 1)

    def _display_slider(self, name: str, low: int, high: int, value: int) -> QSlider:
        slider = QSlider(Qt.Orientation.Horizontal)
        slider.setObjectName(name.split()[0] + "Slider")
        slider.setRange(low, high)
        slider.setValue(value)
        slider.setToolTip(f"Display {name} (view only)")
        slider.setMinimumWidth(40)
        slider.valueChanged.connect(self._apply_display)
        return slider

    def display_settings(self) -> tuple[float, float, float]:
        """(brightness -1..1, contrast ×0.25..4, gamma 0.25..4) from the sliders (at 0: unchanged)."""
        return (self.brightness.value() / 200.0, 4.0 ** (self.contrast.value() / 100.0),
                4.0 ** (self.gamma.value() / 100.0))

    def _apply_display(self) -> None:
        self.view.set_display(*self.display_settings())

    def reset_display(self) -> None:
        for slider in (self.brightness, self.contrast, self.gamma):
            slider.blockSignals(True)
            slider.setValue(0)
            slider.blockSignals(False)
        self._apply_display()

    def set_editable(self, editable: bool) -> None:
        """Allow removing probes and scrubbing a clip's frames (each of which changes what a running job's probe
        indices point at, or starts a job) only while no job runs."""
        self.remove_button.setEnabled(editable)
        self.frame_slider.setEnabled(editable)

    # Records ----------------------------------------------------------------------------------------------
    def current_index(self) -> int:
        return self.list.currentRow()

    def current_record(self) -> ProbeRecord | None:
        i = self.current_index()
        return self.records[i] if 0 <= i < len(self.records) else None

    @staticmethod
    def _key(record: ProbeRecord) -> tuple[Path, int | None, int | None]:
        # A video gives one record per track (the same path, different tracks); a still split by face gives one
        # record per face (``face_of``).
        return record.path, None if record.track is None else record.track.id, record.face_of

    def add_face_records(self, index: int) -> list[int]:
        """One record per further detected face of the still ``index`` (its own record keeps the face it has),
        inserted after it; returns the indices of those records (existing ones are reused)."""
        record = self.records[index]
        if record.face_of is None:
            record.face_of = max(record.face_index, 0)
            record.face_index = record.face_of
        others = [f for f in range(len(record.faces)) if f != record.face_of]
        for face_index in others:
            if not any(self._key(r) == (record.path, None, face_index) for r in self.records):
                at = index + 1 + sum(1 for r in self.records[index + 1:] if r.path == record.path)
                self.records.insert(at, ProbeRecord(path=record.path, image=record.image,
                                                    detections=record.detections, face_index=face_index,
                                                    face_of=face_index))
                self.list.insertItem(at, QListWidgetItem())
        for k in range(len(self.records)):
            self._refresh_item(k)
        self._update_summary()
        return [next(k for k, r in enumerate(self.records) if self._key(r) == (record.path, None, f)) for f in others]

    def add_records(self, records: list[ProbeRecord]) -> None:
        known = {self._key(r) for r in self.records}
        added = 0
        for record in records:
            if self._key(record) in known:
                continue
            self.records.append(record)
            self.list.addItem(QListWidgetItem())
            self._refresh_item(len(self.records) - 1)
            added += 1
        self._update_summary()
        if added:
            self.list.setCurrentRow(len(self.records) - added)

    def set_records(self, records: list[ProbeRecord]) -> None:
        """Show ``records`` instead of the probes listed now (an opened case's probes)."""
        self.records.clear()
        self.list.clear()
        self.view.clear_image()
        self.face_combo.clear()
        self.add_records(records)
        if records:
            self.list.setCurrentRow(0)

    def update_record(self, index: int) -> None:
        self._refresh_item(index)
        self._update_summary()
        if index == self.current_index():
            self._show(index)

    def remove_current(self) -> None:
        i = self.current_index()
        if 0 <= i < len(self.records):
            del self.records[i]
            self.list.takeItem(i)
            self._update_summary()
            if not self.records:
                self.view.clear_image()
                self.face_combo.clear()
            self.current_changed.emit(self.current_index())

    def _refresh_item(self, index: int) -> None:
        record = self.records[index]
        item = self.list.item(index)
        item.setText(f"{record.path.name}\n{record.status_text()}")
        item.setToolTip(str(record.path) + (f"\nSHA-256 {record.image.sha256}" if record.image else ""))
        if record.image is not None:
            item.setIcon(QIcon(to_pixmap(record.image.pixels, THUMB_PX)))
        if record.error or (record.image is not None and not record.searchable):
            item.setForeground(QColor("#e67e22"))
        else:
            item.setData(Qt.ItemDataRole.ForegroundRole, None)

    def _update_summary(self) -> None:
        n = len(self.records)
        no_face = sum(1 for r in self.records if r.image is not None and not r.searchable)
        text = f"{n} probe(s)" if n else "Drop probe stills or a folder here"
        if no_face:
            text += f", {no_face} without a face"
        self.summary.setText(text)

    def _on_row_changed(self, row: int) -> None:
        self._show(row)
        self.current_changed.emit(row)

    def _show_frame_slider(self, record: ProbeRecord | None) -> None:
        video = record.video if record is not None else None
        self.frame_row.setVisible(video is not None)
        if video is None:
            return
        self.frame_slider.blockSignals(True)
        self.frame_slider.setRange(0, max(0, video.frame_count - 1))
        self.frame_slider.setValue(record.video_frame)  # type: ignore[union-attr]
        self.frame_slider.blockSignals(False)
        self._on_frame_moved(record.video_frame)  # type: ignore[union-attr]

    def _on_frame_moved(self, value: int) -> None:
        record = self.current_record()
        if record is not None and record.video is not None:
            self.frame_label.setText(f"{value} / {record.video.frame_count - 1} ({value / record.video.fps:.2f} s)")

    def _on_frame_chosen(self, value: int) -> None:
        i = self.current_index()
        record = self.current_record()
        if record is not None and record.video is not None and value != record.video_frame:
            self._on_frame_moved(value)
            self.frame_requested.emit(i, value)

    def _show_track(self, record: ProbeRecord | None) -> None:
        self.track_strip.clear()
        self._show_frame_slider(record)
        video_track = record.video_track if record is not None and record.track is not None else None
        for w in (self.track_strip, self.timeline, self.timeline_label):
            w.setVisible(video_track is not None)
        if video_track is None:
            return
        video, track = video_track
        used = set()
        if record.result is not None and isinstance(record.result.provenance.get("video"), dict):
            used = {f["index"] for f in record.result.provenance["video"].get("frames", [])}
        for face in track.faces:
            item = QListWidgetItem(f"#{face.frame_index}\n{face.time_s:.1f} s")
            if face.thumbnail is not None:
                item.setIcon(QIcon(to_pixmap(face.thumbnail, 48, nearest=True)))
            item.setToolTip(f"frame {face.frame_index} at {face.time_s:.2f} s, quality {face.quality:.1f}"
                            + (f"\nused by the search{' (fused)' if len(used) > 1 else ''}" if face.frame_index in used
                               else ""))
            if face.frame_index in used:
                item.setBackground(QColor("#2e7d32"))
            item.setData(Qt.ItemDataRole.UserRole, face.frame_index)
            self.track_strip.addItem(item)
        self.timeline.setRange(0, max(0, len(track.faces) - 1))
        self.timeline.setValue(0)
        self._on_timeline(0)

    def _on_timeline(self, value: int) -> None:
        record = self.current_record()
        if record is None or record.track is None or not 0 <= value < self.track_strip.count():
            return
        video, track = record.video_track
        face = track.faces[value]
        self.track_strip.setCurrentRow(value)
        used = self.track_strip.item(value).background().color().name() == "#2e7d32"
        self.timeline_label.setText(f"track {track.id}: frame {face.frame_index} of {video.frame_count} at "
                                    f"{face.time_s:.2f} s, quality {face.quality:.1f}" + (", used" if used else ""))

    def used_frames(self) -> list[int]:
        """Frame indices highlighted as used by the shown track's last search."""
        return [int(self.track_strip.item(k).data(Qt.ItemDataRole.UserRole)) for k in range(self.track_strip.count())
                if self.track_strip.item(k).background().color().name() == "#2e7d32"]

    def _show(self, index: int) -> None:
        self._show_track(self.records[index] if 0 <= index < len(self.records) else None)
        self.face_combo.clear()
        if not (0 <= index < len(self.records)):
            self.view.clear_image()
            return
        record = self.records[index]
        if record.image is None:
            self.view.clear_image()
            return
        for i, face in enumerate(record.faces):
            self.face_combo.addItem(f"#{i + 1}: {face.width_px:.0f} px wide, detector score {face.score:.3f}", i)
        if record.manual_face is not None:
            self.face_combo.addItem(f"manual box: {record.manual_face.width_px:.0f} px wide", -1)
        if self.face_combo.count() == 0:
            self.face_combo.addItem("no face found — drag on the image to draw a box", None)
        else:
            pos = self.face_combo.findData(record.face_index)
            self.face_combo.setCurrentIndex(max(pos, 0))
        self.view.set_probe(record.image.pixels, record.faces, record.face_index, record.manual_face)

    def _on_face_combo(self, pos: int) -> None:
        data = self.face_combo.itemData(pos)
        if data is not None:
            self._choose_face(int(data))

    def _on_face_clicked(self, box_index: int) -> None:
        record = self.current_record()
        if record is None:
            return
        self._choose_face(-1 if box_index >= len(record.faces) else box_index)

    def _choose_face(self, face_index: int) -> None:
        i = self.current_index()
        record = self.current_record()
        if record is None or record.face_index == face_index:
            return
        record.face_index = face_index
        record.result = None
        self.update_record(i)
        self.face_chosen.emit(i, face_index)

    def _on_box_drawn(self, x1: float, y1: float, x2: float, y2: float) -> None:
        i = self.current_index()
        record = self.current_record()
        if record is None or record.image is None:
            return
        box = (x1, y1, x2, y2)
        reason = implausible_box_reason(box, record.image.pixels)
        if not reason:
            self.box_drawn.emit(i, box)
            return
        # Asked, not refused: a face may really be that small or large; a slip of the mouse should not cost a
        # refinement job (or a new track) without a second look. Non-blocking, like every dialog here.
        dialog = QMessageBox(QMessageBox.Icon.Question, "Use this box?",
                             f"Use this box as the face anyway? {reason[0].upper()}{reason[1:]}.",
                             QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No, self)
        dialog.setDefaultButton(QMessageBox.StandardButton.No)
        dialog.finished.connect(lambda code: self._box_confirmed(i, box, code))
        self.box_dialog = dialog
        dialog.open()

    def _box_confirmed(self, index: int, box: tuple[float, float, float, float], code: int) -> None:
        self.box_dialog = None
        if code == int(QMessageBox.StandardButton.Yes) and index == self.current_index():
            self.box_drawn.emit(index, box)

    # Drag and drop ----------------------------------------------------------------------------------------
    def handle_drop(self, mime) -> DroppedPaths:  # type: ignore[no-untyped-def]
        """Queue the dropped images (and the images directly inside dropped folders) for loading."""
        dropped = paths_from_mime(mime)
        images = list(dropped.images)
        for folder in dropped.folders:
            found = images_in_folder(folder)
            if not found:
                dropped.rejected.append(folder)
            images.extend(found)
        if dropped.rejected:
            self.message.emit(dropped.rejection_message(), "warning")
        if images:
            self.paths_dropped.emit(images)
        return dropped
