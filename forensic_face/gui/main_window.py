"""The investigator's main window."""

from __future__ import annotations

import logging
import platform
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PySide6.QtCore import QByteArray, QEvent, Qt, QTimer, QUrl, Slot
from PySide6.QtGui import (
    QAction,
    QCloseEvent,
    QDesktopServices,
    QGuiApplication,
    QKeySequence,
)
from PySide6.QtWidgets import (
    QDockWidget,
    QFileDialog,
    QInputDialog,
    QLabel,
    QMainWindow,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QSplitter,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

import forensic_face
from forensic_face.calibration import Calibration, calibration_for_result, why_no_calibration
from forensic_face.engine.config import EngineConfig
from forensic_face.engine.errors import Cancelled, ForensicFaceError
from forensic_face.engine.imaging import IMAGE_SUFFIXES, load_image
from forensic_face.engine.results import Gallery, GalleryEntry, SearchResult
from forensic_face.gui.candidates import CandidateTable, OpenSetLabel
from forensic_face.gui.comparison import ComparisonView
from forensic_face.gui.eta import TimeLeft, format_time_left
from forensic_face.gui.gallery_panel import GalleryPanel
from forensic_face.gui.heatmaps import HeatmapPanel
from forensic_face.gui.probe_panel import ProbePanel, ProbeRecord
from forensic_face.gui.settings import WindowState
from forensic_face.gui.settings_dialog import SettingsDialog
from forensic_face.gui.widgets import ElidedLabel, MessageBanner
from forensic_face.gui.worker import (
    EngineFactory,
    EngineHolder,
    JobRunner,
    default_engine_factory,
)
from forensic_face.settings import load_examiner, save_examiner, save_settings

log = logging.getLogger(__name__)

JOB_TITLES = {
    "enroll": "Enrolling gallery",
    "probes": "Detecting faces in probes",
    "manual": "Refining the drawn face box",
    "search": "Searching",
    "about": "Loading models",
    "render": "Rendering a gallery hypothesis",
    "search-all": "Searching all probes",
    "report": "Writing the case report",
    "warm": "Preparing the gallery for small probes",
    "frame": "Decoding a video frame",
    "video-track": "Following the drawn face through the video",
}

#: Every how many frames a video is sampled for tracks (detected, or started from a drawn box).
VIDEO_STRIDE = 5

#: Below this available screen height the gallery and probe docks are tabbed instead of stacked.
SHORT_SCREEN_PX = 1000

#: Probe crop size bins prepared by "Prepare gallery": 1.3x crops of faces about 15-31 px wide.
WARM_SIZE_BINS = (20, 24, 28, 32, 36, 40)


@dataclass(frozen=True)
class SearchOutcome:
    """One probe's search as the worker hands it back: where it goes, the result, and its case record."""

    index: int
    result: SearchResult | None
    warning: str
    search_id: int | None


@dataclass(frozen=True)
class BatchOutcome:
    """A "search all probes" job: the searches done (all of them unless it was cancelled)."""

    searches: tuple[SearchOutcome, ...]
    total: int
    cancelled: bool


@dataclass(frozen=True)
class EngineStatus:
    """What the status bar shows about the engine; computed on the worker thread."""

    device: str
    model: str
    cache: str


@dataclass(frozen=True)
class JobResult:
    value: Any
    status: EngineStatus | None


def engine_status(engine: Any) -> EngineStatus:
    """Read the engine's device, models and cache state (may touch the disk: call it off the GUI thread)."""
    device = str(getattr(engine, "device", "?"))
    # The configured names: touching engine.recognizer here would load the model as a side effect.
    recognizer, upsampler = engine.config.recognizer, engine.config.upsampler
    cache = getattr(engine, "cache", None)
    try:
        cache_text = cache.describe() if cache is not None and hasattr(cache, "describe") else "template cache: n/a"
    except OSError as exc:
        cache_text = f"template cache unreadable ({exc.strerror or exc})"
    return EngineStatus(device=device, model=f"{recognizer} · {upsampler}", cache=cache_text)


def _with_status(fn: Any) -> Any:
    def task(engine: Any, progress: Any, should_cancel: Any) -> JobResult:
        value = fn(engine, progress, should_cancel)
        return JobResult(value=value, status=engine_status(engine) if engine is not None else None)

    return task


#: Tracks of a video listed as probes (longest first); how many best frames a search fuses is a setting
#: (``EngineConfig.video_frames``).
MAX_VIDEO_TRACKS = 5


def load_video_probes(path: Path, engine: Any, progress: Any, should_cancel: Any) -> list[ProbeRecord]:
    """A video becomes one probe per face track (``forensic_face.engine.video``): its image is the track's best
    frame and its face that frame's; a search of it fuses the track's best frames."""
    from forensic_face.engine.errors import NoFaceDetected
    from forensic_face.engine.video import find_tracks, frame_image, open_video

    record = ProbeRecord(path=path)
    try:
        video = open_video(path)
        tracks = find_tracks(video, lambda image: engine.detector.detect([image.pixels])[0], VIDEO_STRIDE,
                             progress=lambda d, t, m: progress(d, t, f"Following faces in {path.name}: {m}"),
                             should_cancel=should_cancel, embed=engine.face_templates)
    except Cancelled:
        raise
    except NoFaceDetected:
        # Not an error: the examiner scrubs to a frame and draws the face the detector missed.
        image = frame_image(video, 0)
        return [ProbeRecord(path=path, image=image, video_track=(video, None), video_frame=0,
                            detections=_frame_detections(path, image, ()))]
    except ForensicFaceError as exc:
        record.error = str(exc)
        return [record]
    return [video_track_record(path, video, track) for track in tracks[:MAX_VIDEO_TRACKS]]


def _frame_detections(path: Path, image: Any, faces: tuple[Any, ...]) -> Any:
    from forensic_face.engine.results import ImageDetections

    return ImageDetections(source=str(path), sha256=image.sha256, width=image.width, height=image.height,
                           faces=faces, upsample_factor=1.0)


def video_track_record(path: Path, video: Any, track: Any) -> ProbeRecord:
    """The probe of one track: shown by its best frame, with that frame's face."""
    from forensic_face.engine.video import frame_image

    best = track.best(1)[0]
    image = frame_image(video, best.frame_index, best.frame_sha256)
    return ProbeRecord(path=path, image=image, video_track=(video, track), video_frame=best.frame_index,
                       detections=_frame_detections(path, image, (best.face,)))


def drawn_track_text(track: Any) -> str:
    """What following a drawn face gave, counted as it is (one frame is one frame)."""
    first, last = track.faces[0].frame_index, track.last.frame_index
    if len(track.faces) == 1:
        return f"the drawn face was found on 1 sampled frame only (frame {first}): nothing to fuse it with"
    return f"the drawn face followed on {len(track.faces)} sampled frames (frames {first}–{last})"


def load_probes(paths: list[Path], engine: Any, progress: Any, should_cancel: Any) -> list[ProbeRecord]:
    """Load each still (hashing its bytes) and detect its faces, or follow the faces of each video; per-file
    problems go into the record."""
    from forensic_face.engine.video import is_video_path

    records = []
    total = len(paths)
    for i, path in enumerate(paths):
        if should_cancel():
            raise Cancelled()
        if is_video_path(path):
            records.extend(load_video_probes(path, engine, progress, should_cancel))
            continue
        progress(i, total, f"Detecting faces in {path.name}")
        record = ProbeRecord(path=path)
        try:
            record.image = load_image(path)
            record.detections = engine.detect(record.image)
        except Cancelled:
            raise
        except ForensicFaceError as exc:
            record.error = str(exc)
        records.append(record)
    progress(total, total, "Faces detected")
    return records


class MainWindow(QMainWindow):
    """Gallery and probe panels (docks), the ranked candidates, the comparison view and the heatmaps."""

    def __init__(self, config: EngineConfig | None = None, engine_factory: EngineFactory = default_engine_factory,
                 state: WindowState | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("mainWindow")
        self.setWindowTitle("forensic_face — cross-resolution face search")
        self.state = state or WindowState()
        self.config = config or EngineConfig()
        self.holder = EngineHolder(self.config, engine_factory)
        self.runner = JobRunner(self.holder, self)
        self.gallery: Gallery | None = None
        self._pending_gallery: Path | None = None
        self._result: SearchResult | None = None
        self._calibration: Calibration | None = None
        self.case_store: Any | None = None
        self._case_offered = False
        self._time_left = TimeLeft()
        self._no_calibration = ""
        #: Open a written report in the system's PDF viewer (tests turn it off).
        self.open_reports = True

        self.banner = MessageBanner()
        self.gallery_panel = GalleryPanel()
        self.probe_panel = ProbePanel()
        self.candidates = CandidateTable()
        self.open_set = OpenSetLabel()
        self.comparison = ComparisonView()
        self.heatmaps = HeatmapPanel()
        self._build_central()
        self._build_docks()
        self._build_actions()
        self._build_status_bar()
        self._connect()
        self.resize(1500, 940)
        self._restore_window()
        self.fit_to_screen()
        self._update_actions()

    # Construction -----------------------------------------------------------------------------------------
    def _build_central(self) -> None:
        self.tabs = QTabWidget()
        self.tabs.setObjectName("resultTabs")
        self.tabs.addTab(self.comparison, "Comparison")
        self.tabs.addTab(self.heatmaps, "Score heatmaps")
        self.candidates_title = QLabel("Candidates")
        self.candidates_title.setWordWrap(True)
        self.candidates_title.setObjectName("sectionLabel")
        left = QWidget()
        ll = QVBoxLayout(left)
        ll.setContentsMargins(6, 6, 0, 6)
        ll.addWidget(self.candidates_title)
        ll.addWidget(self.open_set)
        ll.addWidget(self.candidates, 1)
        self.splitter = QSplitter(Qt.Orientation.Horizontal)
        self.splitter.setObjectName("centralSplitter")
        self.splitter.addWidget(left)
        self.splitter.addWidget(self.tabs)
        self.splitter.setStretchFactor(0, 2)
        self.splitter.setStretchFactor(1, 5)
        self.splitter.setSizes([430, 900])
        central = QWidget()
        layout = QVBoxLayout(central)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addWidget(self.banner)
        layout.addWidget(self.splitter, 1)
        self.setCentralWidget(central)

    def _build_docks(self) -> None:
        self.gallery_dock = QDockWidget("Gallery", self)
        self.gallery_dock.setObjectName("galleryDock")
        self.gallery_dock.setWidget(self.gallery_panel)
        self.probe_dock = QDockWidget("Probes", self)
        self.probe_dock.setObjectName("probeDock")
        self.probe_dock.setWidget(self.probe_panel)
        for dock in (self.gallery_dock, self.probe_dock):
            dock.setFeatures(QDockWidget.DockWidgetFeature.DockWidgetMovable
                             | QDockWidget.DockWidgetFeature.DockWidgetFloatable)
            self.addDockWidget(Qt.DockWidgetArea.LeftDockWidgetArea, dock)
        self.resizeDocks([self.gallery_dock], [400], Qt.Orientation.Horizontal)

    def _action(self, text: str, slot: Any, shortcuts: list[QKeySequence] | None = None, tip: str = "") -> QAction:
        action = QAction(text, self)
        if shortcuts:
            action.setShortcuts(shortcuts)
            action.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
        keys = ", ".join(s.toString(QKeySequence.SequenceFormat.NativeText) for s in (shortcuts or []))
        action.setToolTip(f"{tip or text.replace('…', '')}" + (f" ({keys})" if keys else ""))
        action.triggered.connect(slot)
        self.addAction(action)
        return action

    def _build_actions(self) -> None:
        self.open_gallery_action = self._action("Open &gallery…", self.choose_gallery,
                                                [QKeySequence("Ctrl+G")], "Open a gallery folder")
        self.add_probe_action = self._action("Add &probes…", self.choose_probes,
                                             [QKeySequence("Ctrl+O")], "Add probe stills")
        self.search_action = self._action("&Search", self.search_current,
                                          [QKeySequence("Ctrl+R"), QKeySequence("F5")],
                                          "Search the gallery with the selected probe face")
        self.cancel_action = self._action("Cancel", self.cancel_job, [QKeySequence("Esc")],
                                          "Cancel the running job")
        self.search_all_action = self._action("Search &all probes", self.search_all,
                                              [QKeySequence("Ctrl+Shift+R")],
                                              "Search the gallery with every probe that has a face, one after another")
        self.search_faces_action = self._action("Search every &face of this probe", self.search_all_faces,
                                                [QKeySequence("Ctrl+Alt+R")],
                                                "Search the gallery with each face found in the selected still, "
                                                "one probe per face, one after another")
        self.warm_action = self._action("&Prepare gallery for small probes", self.warm_gallery,
                                        [QKeySequence("Ctrl+P")],
                                        "Compute the gallery's templates for 15-30 px faces now, so first searches "
                                        "are fast (cancellable; kept in the template cache)")
        self.export_report_action = self._action("&Export report…", self.choose_report,
                                                 [QKeySequence("Ctrl+E")],
                                                 "Write the case report (PDF) of the open case's searches")
        self.settings_action = self._action("Se&ttings…", self.open_settings,
                                            [QKeySequence("Ctrl+,"), QKeySequence(QKeySequence.StandardKey.Preferences)])
        self.quit_action = self._action("&Quit", self.close, [QKeySequence(QKeySequence.StandardKey.Quit)])
        self.about_action = self._action("&About forensic_face", self.show_about)
        self.new_case_action = self._action("&New case…", self.new_case, [QKeySequence("Ctrl+N")],
                                            "Create a case file: searches, decisions and the report are kept in it")
        self.open_case_action = self._action("Open &case…", self.choose_case, [QKeySequence("Ctrl+Shift+O")],
                                             "Open a case file")

        menu = self.menuBar().addMenu("&File")
        menu.addAction(self.open_gallery_action)
        self.recent_galleries_menu = menu.addMenu("Recent galleries")
        menu.addAction(self.add_probe_action)
        menu.addSeparator()
        menu.addAction(self.new_case_action)
        menu.addAction(self.open_case_action)
        self.recent_cases_menu = menu.addMenu("Recent cases")
        menu.addAction(self.export_report_action)
        menu.addSeparator()
        menu.addAction(self.settings_action)
        menu.addSeparator()
        menu.addAction(self.quit_action)
        search_menu = self.menuBar().addMenu("&Search")
        search_menu.addAction(self.search_action)
        search_menu.addAction(self.search_all_action)
        search_menu.addAction(self.search_faces_action)
        search_menu.addAction(self.warm_action)
        search_menu.addAction(self.cancel_action)
        view_menu = self.menuBar().addMenu("&View")
        view_menu.addAction(self.gallery_dock.toggleViewAction())
        view_menu.addAction(self.probe_dock.toggleViewAction())
        help_menu = self.menuBar().addMenu("&Help")
        help_menu.addAction(self.about_action)
        self._rebuild_recent_menus()

        toolbar = self.addToolBar("Main")
        toolbar.setObjectName("mainToolbar")
        toolbar.setMovable(False)
        toolbar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
        for action in (self.open_gallery_action, self.add_probe_action, self.search_action, self.cancel_action,
                       self.settings_action):
            toolbar.addAction(action)

    def _build_status_bar(self) -> None:
        bar = self.statusBar()
        # The job's message gives way (elided) to the time left, the progress bar and Cancel, which always show
        # whole: at 1366 px the message and the engine fields together are wider than the screen.
        self.job_label = ElidedLabel()
        self.time_left_label = QLabel()
        self.time_left_label.setObjectName("timeLeft")
        self.progress = QProgressBar()
        self.progress.setObjectName("jobProgress")
        self.progress.setMaximumWidth(200)
        self.progress.setTextVisible(True)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setObjectName("cancelButton")
        self.cancel_button.clicked.connect(self.cancel_job)
        bar.addWidget(self.job_label, 1)
        for w in (self.time_left_label, self.progress, self.cancel_button):
            bar.addWidget(w)
        for w in (self.job_label, self.time_left_label, self.progress, self.cancel_button):
            w.hide()
        self.device_label = QLabel()
        self.model_label = ElidedLabel()
        self.cache_label = ElidedLabel()
        for w, width in ((self.device_label, 0), (self.model_label, 220), (self.cache_label, 200)):
            w.setObjectName("statusField")
            if width:
                # Elided within these widths while a job shares the bar; the full text is in the tooltip.
                w.setMinimumWidth(width // 2)
                w.setMaximumWidth(width)
            bar.addPermanentWidget(w)
        self._show_config_status()

    def _connect(self) -> None:
        self.runner.progress.connect(self._on_progress)
        self.runner.finished.connect(self._on_finished)
        self.runner.failed.connect(self._on_failed)
        self.runner.cancelled.connect(self._on_cancelled)
        self.runner.notice.connect(lambda text: self.show_message(text, "warning"))
        self.runner.busy_changed.connect(self._on_busy_changed)
        self.open_gallery_action.enabledChanged.connect(self.gallery_panel.open_button.setEnabled)
        self.add_probe_action.enabledChanged.connect(self.probe_panel.add_button.setEnabled)
        self.gallery_panel.folder_chosen.connect(self.open_gallery)
        self.gallery_panel.open_requested.connect(self.choose_gallery)
        self.gallery_panel.message.connect(self.show_message)
        self.probe_panel.paths_dropped.connect(self.add_probes)
        self.probe_panel.open_requested.connect(self.choose_probes)
        self.probe_panel.message.connect(self.show_message)
        self.probe_panel.current_changed.connect(self._on_probe_changed)
        self.probe_panel.face_chosen.connect(lambda _i, _f: self._on_probe_changed(self.probe_panel.current_index()))
        self.probe_panel.box_drawn.connect(self.refine_box)
        self.probe_panel.frame_requested.connect(self.show_video_frame)
        self.candidates.candidate_selected.connect(self._on_candidate_selected)
        self.candidates.decision_requested.connect(self._on_decision_requested)
        self.runner.partial.connect(self._on_partial)
        self.heatmaps.render_requested.connect(self.render_gallery_hypothesis)

    # Window state -------------------------------------------------------------------------------------------
    def fit_to_screen(self) -> None:
        """Keep the window inside the screen's available area (a restored or default size may be larger than
        a laptop screen), with the docks and the candidate list in proportion to it."""
        screen = self.screen() or QGuiApplication.primaryScreen()
        if screen is None:
            return
        if screen.availableGeometry().height() < SHORT_SCREEN_PX:
            self._tab_docks()
        width = self._clamp_to_screen()
        if width < 1700:
            # Narrow screens: docks a sixth of the width, the candidates 45 % of the rest.
            self.resizeDocks([self.gallery_dock, self.probe_dock], [width // 6] * 2, Qt.Orientation.Horizontal)
            rest = width - width // 6
            self.splitter.setSizes([rest * 45 // 100, rest - rest * 45 // 100])

    def _clamp_to_screen(self) -> int:
        """Shrink and move the window into the screen's available area; returns its width."""
        screen = self.screen() or QGuiApplication.primaryScreen()
        if screen is None:
            return self.width()
        available = screen.availableGeometry()
        # The frame (title bar, borders) is outside the client size: leave room for it.
        frame_w = max(0, self.frameGeometry().width() - self.width()) or 16
        frame_h = max(0, self.frameGeometry().height() - self.height()) or 40
        width = min(self.width(), available.width() - frame_w)
        height = min(self.height(), available.height() - frame_h)
        if (width, height) != (self.width(), self.height()):
            self.resize(width, height)
        x = min(max(self.x(), available.x()), available.right() - width - frame_w + 1)
        y = min(max(self.y(), available.y()), available.bottom() - height - frame_h + 1)
        self.move(max(available.x(), x), max(available.y(), y))
        return width

    def _tab_docks(self) -> None:
        """Stacked, the two docks need more height than a laptop screen has (a clip's filmstrip, timeline and
        frame slider grew the window past the screen, the status bar off it, and left each list one row): as
        tabs, each gets the dock area's whole height."""
        if self.tabifiedDockWidgets(self.gallery_dock):
            return
        self.tabifyDockWidget(self.gallery_dock, self.probe_dock)
        self.probe_dock.raise_() if self.probe_panel.records else self.gallery_dock.raise_()

    def event(self, event: QEvent) -> bool:
        if event.type() == QEvent.Type.LayoutRequest:
            # Before the layout grows the window to its new minimum size (e.g. a clip's track widgets shown).
            self.keep_docks_on_screen()
        return super().event(event)

    def keep_docks_on_screen(self) -> None:
        """Tab the docks when what they show would make the window taller than the screen."""
        screen = self.screen() or QGuiApplication.primaryScreen()
        if screen is None:
            return
        frame_h = max(0, self.frameGeometry().height() - self.height())
        if self.minimumSizeHint().height() + frame_h > screen.availableGeometry().height() \
                and not self.tabifiedDockWidgets(self.gallery_dock):
            self._tab_docks()
            # The layout may already have grown the window in this event: shrink it back once it has.
            QTimer.singleShot(0, self._clamp_to_screen)

    def _restore_window(self) -> None:
        geometry = self.state.value("window/geometry")
        if isinstance(geometry, QByteArray) and not geometry.isEmpty():
            self.restoreGeometry(geometry)
        window_state = self.state.value("window/state")
        if isinstance(window_state, QByteArray) and not window_state.isEmpty():
            self.restoreState(window_state)
        splitter = self.state.value("window/splitter")
        if isinstance(splitter, QByteArray) and not splitter.isEmpty():
            self.splitter.restoreState(splitter)

    def save_window_state(self) -> None:
        self.state.set_value("window/geometry", self.saveGeometry())
        self.state.set_value("window/state", self.saveState())
        self.state.set_value("window/splitter", self.splitter.saveState())

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 - Qt override
        self.save_window_state()
        if not self.runner.shutdown(timeout_ms=10_000):
            log.warning("the background job did not stop within 10 s of closing the window")
        if self.case_store is not None and hasattr(self.case_store, "close"):
            self.case_store.close()
        super().closeEvent(event)

    def _rebuild_recent_menus(self) -> None:
        self.recent_galleries_menu.clear()
        for folder in self.state.recent_galleries():
            action = self.recent_galleries_menu.addAction(folder)
            action.triggered.connect(lambda _=False, f=folder: self.open_gallery(Path(f)))
        self.recent_galleries_menu.setEnabled(bool(self.state.recent_galleries()) and not self.runner.busy)
        self.recent_cases_menu.clear()
        for case in self.state.recent_cases():
            action = self.recent_cases_menu.addAction(case)
            action.triggered.connect(lambda _=False, c=case: self.open_case(Path(c)))
        self.recent_cases_menu.setEnabled(bool(self.state.recent_cases()) and not self.runner.busy)

    # Messages and status -----------------------------------------------------------------------------------
    @Slot(str, str)
    def show_message(self, text: str, level: str = "info") -> None:
        log.log(logging.ERROR if level == "error" else logging.INFO, "%s", text)
        self.banner.show_message(text, level)

    def _show_config_status(self) -> None:
        engine = self.holder.engine
        self.device_label.setText(f"device: {engine.device if engine is not None else self.config.device}")
        if engine is None:
            self.model_label.setText(f"model: {self.config.recognizer} · {self.config.upsampler} (not loaded)")
        self.cache_label.setText(self.cache_label.full_text() or "template cache: —")

    def _apply_status(self, status: EngineStatus | None) -> None:
        if status is None:
            return
        self.device_label.setText(f"device: {status.device}")
        self.model_label.setText(f"model: {status.model}")
        self.cache_label.setText(status.cache)

    def _update_actions(self) -> None:
        busy = self.runner.busy
        record = self.probe_panel.current_record()
        self.search_action.setEnabled(not busy and self.gallery is not None and record is not None
                                      and record.searchable)
        self.search_faces_action.setEnabled(not busy and self.gallery is not None and record is not None
                                            and record.video is None and len(record.faces) > 1)
        self.search_all_action.setEnabled(not busy and self.gallery is not None and any(
            r.searchable for r in self.probe_panel.records))
        self.export_report_action.setEnabled(not busy and self.case_store is not None)
        self.warm_action.setEnabled(not busy and self.gallery is not None)
        self.cancel_action.setEnabled(busy)
        # A job holds indices into the probe list and records into the open case: while it runs, no other job
        # can start and neither the probes nor the case may change under it. The panels' buttons follow these
        # actions (see _connect), so a control that cannot be used is disabled everywhere, not refused later.
        for action in (self.open_gallery_action, self.add_probe_action, self.new_case_action,
                       self.open_case_action):
            action.setEnabled(not busy)
        self.probe_panel.set_editable(not busy)
        self._rebuild_recent_menus()

    # Jobs ---------------------------------------------------------------------------------------------------
    def _start(self, name: str, task: Any) -> bool:
        if self.runner.busy:
            self.show_message(f"Wait for “{JOB_TITLES.get(self.runner.job_name, self.runner.job_name)}” to finish "
                              "or cancel it (Esc).", "warning")
            return False
        return self.runner.start(name, _with_status(task))

    @Slot(bool)
    def _on_busy_changed(self, busy: bool) -> None:
        for w in (self.job_label, self.time_left_label, self.progress, self.cancel_button):
            w.setVisible(busy)
        if busy:
            self._time_left = TimeLeft()
            self.time_left_label.setText("")
            self.job_label.setText(JOB_TITLES.get(self.runner.job_name, self.runner.job_name) + "…")
            self.progress.setRange(0, 0)
            self.cancel_button.setEnabled(True)
        self._update_actions()
        pending = self.heatmaps.pending_render()
        if not busy and pending is not None:
            self.render_gallery_hypothesis(*pending)

    @Slot(str, int, int, str)
    def _on_progress(self, name: str, done: int, total: int, message: str) -> None:
        if total > 0:
            self.progress.setRange(0, total)
            self.progress.setValue(min(done, total))
            self.progress.setFormat("%v / %m")
        self.time_left_label.setText(format_time_left(self._time_left.update(done, total)) if total > 0 else "")
        self.job_label.setText(f"{JOB_TITLES.get(name, name)}: {message}" if message else JOB_TITLES.get(name, name))

    @Slot(str, str)
    def _on_failed(self, name: str, message: str) -> None:
        if name == "render":
            self.heatmaps.fail_render("could not render this hypothesis")
        if name == "enroll":
            self.gallery_panel.summary.setText("Enrollment failed — see the message above")
        hint = ""
        if name == "search" and "no face" in message.lower():
            hint = " Drag on the probe image to draw the face box, then search again."
        self.show_message(message + hint, "error")

    @Slot(str, str)
    def _on_cancelled(self, name: str, message: str) -> None:
        if name == "render":
            self.heatmaps.fail_render("cancelled")
            return
        if name == "enroll":
            self.gallery_panel.summary.setText("Enrollment cancelled" if self.gallery is None
                                               else self.gallery_panel.summary.text())
            if self.gallery is not None:
                self.gallery_panel.set_gallery(self.gallery)
        self.show_message(f"{JOB_TITLES.get(name, name)} cancelled.", "info")

    @Slot(str, object)
    def _on_finished(self, name: str, outcome: JobResult) -> None:
        self._apply_status(outcome.status)
        value = outcome.value
        if name == "enroll":
            self._enrolled(value)
        elif name == "probes":
            self.probe_panel.add_records(value)
            self.probe_dock.raise_()  # tabbed on a short screen: show the probes just added
            failed = [r for r in value if r.error]
            no_face = [r for r in value if not r.error and not r.faces]
            if failed:
                self.show_message(f"{len(failed)} probe(s) could not be loaded: " + failed[0].error, "warning")
            elif no_face:
                self.show_message(f"No face found in {', '.join(r.path.name for r in no_face[:3])}: drag on the "
                                  "image to draw the face box.", "warning")
        elif name == "manual":
            index, face = value
            if 0 <= index < len(self.probe_panel.records):
                record = self.probe_panel.records[index]
                record.manual_face = face
                record.face_index = -1
                record.result = None
                self.probe_panel.update_record(index)
                self._on_probe_changed(index)
        elif name == "frame":
            index, frame_index, image = value
            if 0 <= index < len(self.probe_panel.records):
                record = self.probe_panel.records[index]
                faces = tuple(f.face for f in (record.track.faces if record.track is not None else ())
                              if f.frame_index == frame_index)
                record.image, record.video_frame = image, frame_index
                record.detections = _frame_detections(record.path, image, faces)
                record.face_index = 0
                self.probe_panel.update_record(index)
        elif name == "video-track":
            index, new = value
            records = self.probe_panel.records
            if 0 <= index < len(records) and records[index].track is None and records[index].path == new.path:
                records[index] = new  # the clip had no track: the drawn one replaces it
                self.probe_panel.update_record(index)
                self._on_probe_changed(index)
            else:
                self.probe_panel.add_records([new])
            self.show_message(f"Track {new.track.id}: {drawn_track_text(new.track)}.", "info")
        elif name == "search":
            self._apply_search(value)
            if value.warning:
                self.show_message(value.warning, "warning")
        elif name == "search-all":
            for outcome in value.searches:
                self._apply_search(outcome)
            warnings = [o.warning for o in value.searches if o.warning]
            searched = sum(o.result is not None for o in value.searches)
            text = (f"Searched {searched} of {value.total} probes" + (" before the cancel" if value.cancelled else "")
                    + "." + (f" {len(warnings)} problem(s): {warnings[0]}" if warnings else ""))
            self.show_message(text, "warning" if warnings or value.cancelled else "info")
        elif name == "warm":
            self.show_message(f"Gallery prepared: {value} portrait x size template stacks for 15-30 px faces; "
                              "searches of such probes now start from the cache.", "info")
        elif name == "report":
            self.show_message(f"Report written: {value.path} ({value.num_pages} pages, SHA-256 "
                              f"{value.sha256[:16]}…); case verification "
                              f"{'intact' if value.verification.ok else 'NOT INTACT'}.",
                              "info" if value.verification.ok else "warning")
            if self.open_reports and not QDesktopServices.openUrl(QUrl.fromLocalFile(str(value.path))):
                self.show_message(f"Report written to {value.path}, but no PDF viewer could be opened for it; "
                                  "open the file with a PDF viewer of your choice.", "warning")
        elif name == "render":
            scale, label, pixels = value
            self.heatmaps.set_gallery_image(scale, label, pixels)
        elif name == "about":
            self._show_about_text(value)
        self._update_actions()

    @Slot()
    def cancel_job(self) -> None:
        if self.runner.busy:
            self.cancel_button.setEnabled(False)
            self.job_label.setText("Cancelling…")
            self.runner.cancel()

    # Gallery ------------------------------------------------------------------------------------------------
    @Slot()
    def choose_gallery(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Open gallery folder", self._last_dir("gallery"))
        if folder:
            self.open_gallery(Path(folder))

    def _last_dir(self, kind: str) -> str:
        return str(self.state.value(f"dirs/{kind}", str(Path.home())))

    @Slot(Path)
    def open_gallery(self, folder: Path) -> bool:
        folder = Path(folder)
        if not folder.is_dir():
            self.show_message(f"The gallery folder {folder} does not exist or is not a folder.", "error")
            return False
        if not self._start("enroll", lambda eng, p, c: eng.enroll(folder, progress=p, should_cancel=c)):
            return False
        self._pending_gallery = folder
        self.gallery_panel.set_enrolling(folder)
        self.state.set_value("dirs/gallery", str(folder.parent))
        return True

    def _enrolled(self, gallery: Gallery) -> None:
        self.gallery = gallery
        self.gallery_panel.set_gallery(gallery)
        self.state.add_recent_gallery(gallery.root)
        self._rebuild_recent_menus()
        for record in self.probe_panel.records:
            record.result = None
        self.show_result(None)
        msg = (f"Enrolled {len(gallery.entries)} portraits from {gallery.root.name}. Search > Prepare gallery "
               "(Ctrl+P) computes their templates for small probes now, so first searches are fast.")
        if gallery.problems:
            msg += f" {len(gallery.problems)} image(s) could not be enrolled; see the Problems list."
        self.show_message(msg, "warning" if gallery.problems else "info")

    def gallery_entry(self, sha256: str) -> GalleryEntry | None:
        if self.gallery is None:
            return None
        for entry in self.gallery.entries:
            if entry.sha256 == sha256:
                return entry
        return None

    # Probes -------------------------------------------------------------------------------------------------
    @Slot()
    def choose_probes(self) -> None:
        from forensic_face.engine.video import VIDEO_SUFFIXES

        patterns = " ".join(f"*{s}" for s in sorted(IMAGE_SUFFIXES))
        videos = " ".join(f"*{s}" for s in sorted(VIDEO_SUFFIXES))
        files, _ = QFileDialog.getOpenFileNames(self, "Add probe stills or videos", self._last_dir("probes"),
                                                f"Images ({patterns});;Videos ({videos});;All files (*)")
        if files:
            self.add_probes([Path(f) for f in files])

    @Slot(list)
    def add_probes(self, paths: list[Path]) -> bool:
        known = {r.path for r in self.probe_panel.records}  # a video counts once, whatever its tracks
        new = [Path(p) for p in paths if Path(p) not in known]
        if not new:
            return False
        self.state.set_value("dirs/probes", str(new[0].parent))
        return self._start("probes", lambda eng, p, c: load_probes(new, eng, p, c))

    @Slot(int, tuple)
    def refine_box(self, index: int, box: tuple[float, float, float, float]) -> bool:
        record = self.probe_panel.records[index]
        if record.image is None:
            return False
        if record.video is not None:
            return self.track_drawn_face(index, box)
        pixels = record.image.pixels

        def task(engine: Any, _progress: Any, _cancel: Any) -> tuple[int, Any]:
            from forensic_face.engine.detect import manual_face

            return index, manual_face(pixels, box, engine.detector)

        return self._start("manual", task)

    def track_drawn_face(self, index: int, box: tuple[float, float, float, float]) -> bool:
        """A box drawn on a video frame starts a track there (``engine.video.track_from_box``), followed backwards
        and forwards by detections and by the face patch; it becomes a probe of its own (or the clip's first
        track)."""
        record = self.probe_panel.records[index]
        video, frame_index = record.video, record.video_frame
        used = {r.track.id for r in self.probe_panel.records if r.path == record.path and r.track is not None}
        track_id = max(used, default=0) + 1

        def task(engine: Any, progress: Any, cancel: Any) -> tuple[int, ProbeRecord]:
            from forensic_face.engine.detect import manual_face
            from forensic_face.engine.video import track_from_box

            track = track_from_box(video, frame_index, box, lambda pixels, b: manual_face(pixels, b, engine.detector),
                                   detect=lambda image: engine.detector.detect([image.pixels])[0],
                                   stride=VIDEO_STRIDE, track_id=track_id, progress=progress, should_cancel=cancel)
            return index, video_track_record(record.path, video, track)

        return self._start("video-track", task)

    @Slot(int, int)
    def show_video_frame(self, index: int, frame_index: int) -> bool:
        """Decode frame ``frame_index`` of the video probe ``index`` and show it (to draw on)."""
        record = self.probe_panel.records[index]
        video = record.video
        if video is None:
            return False

        def task(_engine: Any, _progress: Any, _cancel: Any) -> tuple[int, int, Any]:
            from forensic_face.engine.video import frame_image

            return index, frame_index, frame_image(video, frame_index)

        return self._start("frame", task)

    @Slot(int)
    def _on_probe_changed(self, index: int) -> None:
        record = self.probe_panel.records[index] if 0 <= index < len(self.probe_panel.records) else None
        self.show_result(record.result if record is not None else None)
        self._update_actions()

    # Search -------------------------------------------------------------------------------------------------
    @Slot()
    def search_current(self) -> bool:
        record = self.probe_panel.current_record()
        if self.gallery is None:
            self.show_message("Open a gallery first (Ctrl+G).", "warning")
            return False
        if record is None or record.image is None:
            self.show_message("Add a probe still first (Ctrl+O).", "warning")
            return False
        if not record.searchable:
            self.show_message(f"No face in {record.path.name}: drag on the image to draw the face box first.",
                              "warning")
            return False
        self._offer_case()
        index = self.probe_panel.current_index()
        image, gallery, face, video_track = record.image, self.gallery, record.chosen_face, record.video_track
        video, track = record.video, record.track

        def task(engine: Any, progress: Any, cancel: Any) -> SearchOutcome:
            # A first ranking within seconds; the full method then refines it (minutes on a new gallery).
            progress(0, 1, "provisional ranking")
            try:
                first_image, first_face = image, face
                if track is not None:  # the track's best frame, whatever frame is shown
                    from forensic_face.engine.video import frame_image

                    best = track.best(1)[0]
                    first_image, first_face = frame_image(video, best.frame_index, best.frame_sha256), best.face
                self.runner.partial.emit("search", (index, engine.provisional_search(first_image, gallery,
                                                                                      first_face)))
            except ForensicFaceError as exc:
                log.warning("no provisional ranking: %s", exc)
            return self._search_one(engine, index, image, gallery, face, progress, cancel, video_track)

        return self._start("search", task)

    def _search_one(self, engine: Any, index: int, image: Any, gallery: Gallery, face: Any, progress: Any,
                    cancel: Any, video_track: Any = None) -> SearchOutcome:
        """One probe's search on the worker thread, its gallery variants rendered for the views (one batch per
        degradation path) and recorded in the open case. A video track's best frames are searched and fused."""
        if video_track is not None:
            from forensic_face.engine.video import fused_search_result, search_track

            video, track = video_track
            fused = search_track(engine, video, track, gallery, progress=progress, should_cancel=cancel)
            result = fused_search_result(fused, gallery, engine.config.top_k)
        else:
            result = engine.search(image, gallery, face=face, progress=progress, should_cancel=cancel)
        result = engine.with_gallery_images(result, gallery)
        warning, search_id = self.record_in_case(result, engine.config, gallery)
        return SearchOutcome(index, result, warning, search_id)

    @Slot()
    def warm_gallery(self) -> bool:
        """Compute the gallery hypothesis templates a search of a small probe needs, as a background job."""
        if self.gallery is None:
            self.show_message("Open a gallery first (Ctrl+G).", "warning")
            return False
        entries = self.gallery.entries

        def task(engine: Any, progress: Any, cancel: Any) -> int:
            return engine.warm_gallery(entries, WARM_SIZE_BINS, progress=progress, should_cancel=cancel)

        return self._start("warm", task)

    @Slot()
    def search_all(self) -> bool:
        """Search every probe that has a face, as one job: per-probe progress, cancel between and within probes;
        the probes finished before a cancel keep their results (and case records)."""
        if self.gallery is None:
            self.show_message("Open a gallery first (Ctrl+G).", "warning")
            return False
        indices = [k for k, r in enumerate(self.probe_panel.records) if r.searchable]
        if not indices:
            self.show_message("No probe with a face to search: add probes (Ctrl+O) or draw a face box.", "warning")
            return False
        return self._search_batch(indices)

    @Slot()
    def search_all_faces(self) -> bool:
        """Every face of the selected still becomes a probe of its own (listed under it) and all of them are
        searched as one job, like *Search all probes*."""
        index = self.probe_panel.current_index()
        record = self.probe_panel.current_record()
        if self.gallery is None:
            self.show_message("Open a gallery first (Ctrl+G).", "warning")
            return False
        if record is None or record.video is not None or len(record.faces) < 2:
            self.show_message("The selected probe has fewer than two detected faces; use Search (F5).", "warning")
            return False
        indices = [index] + self.probe_panel.add_face_records(index)
        return self._search_batch(indices)

    def _search_batch(self, indices: list[int]) -> bool:
        """Search the probes ``indices`` as one queued job (see :meth:`search_all`)."""
        records = self.probe_panel.records
        todo = [(k, records[k].image, records[k].chosen_face,
                 records[k].video_track if records[k].track is not None else None) for k in indices]
        self._offer_case()
        gallery = self.gallery

        def task(engine: Any, progress: Any, cancel: Any) -> BatchOutcome:
            done: list[SearchOutcome] = []
            for n, (index, image, face, video_track) in enumerate(todo, start=1):
                name = image.path.name

                def probe_progress(d: int, t: int, message: str, n: int = n, name: str = name) -> None:
                    progress(d, t, f"probe {n}/{len(todo)} ({name}): {message}")

                try:
                    done.append(self._search_one(engine, index, image, gallery, face, probe_progress, cancel,
                                                 video_track))
                except Cancelled:
                    return BatchOutcome(tuple(done), len(todo), cancelled=True)
                except ForensicFaceError as exc:
                    done.append(SearchOutcome(index, None, f"{name}: {exc}", None))
            return BatchOutcome(tuple(done), len(todo), cancelled=False)

        return self._start("search-all", task)

    def _apply_search(self, outcome: SearchOutcome) -> None:
        if not 0 <= outcome.index < len(self.probe_panel.records) or outcome.result is None:
            return
        record = self.probe_panel.records[outcome.index]
        record.result, record.search_id = outcome.result, outcome.search_id
        self.probe_panel.update_record(outcome.index)
        if outcome.index == self.probe_panel.current_index():
            self.show_result(outcome.result)

    @Slot(str, object)
    def _on_partial(self, name: str, value: Any) -> None:
        if name != "search":
            return
        index, result = value
        if index == self.probe_panel.current_index():
            self.show_result(result)

    def _offer_case(self) -> None:
        if self.case_store is None and not self._case_offered:
            self._case_offered = True
            self.show_message("No case is open, so this search is not recorded: create one (Ctrl+N) or open one "
                              "to keep searches, decisions and the report.", "info")

    # Decisions --------------------------------------------------------------------------------------------------
    @Slot(int, str, bool)
    def _on_decision_requested(self, row: int, decision: str, with_note: bool) -> None:
        note = ""
        if with_note:
            text, ok = QInputDialog.getText(self, "Examiner's note", f"{decision.capitalize()}: why?")
            if not ok:
                return
            note = text
        self.decide(row, decision, note)

    def decide(self, row: int, decision: str, note: str = "") -> bool:
        """Record the examiner's decision on the candidate in ``row`` of the shown search, in the open case."""
        record = self.probe_panel.current_record()
        if self._result is not None and self._result.provenance.get("provisional"):
            self.show_message("This is the provisional ranking: decide on the full search's candidates when it "
                              "finishes.", "info")
            return False
        if not 0 <= row < len(self.candidates.candidates) or record is None or record.result is None:
            return False
        if self.case_store is None or record.search_id is None:
            self.show_message("Decisions are kept in a case: create or open a case (Ctrl+N) and search again, "
                              "so the decision is recorded with the search it is about.", "warning")
            return False
        candidate = self.candidates.candidates[row]
        try:
            self.case_store.set_decision(record.search_id, candidate.rank, decision, note)
        except ForensicFaceError as exc:
            self.show_message(str(exc), "error")
            return False
        self._show_decisions(record.search_id)
        return True

    def _show_decisions(self, search_id: int | None) -> None:
        if self.case_store is None or search_id is None:
            self.candidates.set_decisions({})
            return
        self.candidates.set_decisions({
            rank: (d.decision, d.note, "" if not d.carried else
                   f"carried from search #{d.carried_from_search}, rank {d.carried_from_rank} "
                   f"({d.examiner}, {d.utc})")
            for rank, d in self.case_store.decisions(search_id).items()})

    # Report -----------------------------------------------------------------------------------------------------
    @Slot()
    def choose_report(self) -> None:
        if self.case_store is None:
            self.show_message("Open a case first: the report is the case's record.", "warning")
            return
        searches = self.case_store.search_ids()
        if not searches:
            self.show_message("The case has no searches yet: search a probe first.", "warning")
            return
        from forensic_face.gui.report_dialog import ReportDialog

        dialog = ReportDialog(self.case_store, self._last_dir("reports"), self)
        dialog.setModal(True)
        dialog.accepted.connect(lambda: self.export_report(dialog.out_path(), dialog.search_ids(),
                                                           dialog.examiner(), dialog.top(),
                                                           force=dialog.replace_existing()))
        dialog.open()
        self.report_dialog = dialog

    def export_report(self, out: Path, search_ids: list[int] | None = None, examiner: str | None = None,
                      top: int = 5, force: bool = False) -> bool:
        """Write the case report on the worker thread; the PDF opens when done (unless
        :attr:`open_reports` is off). ``force``: replace an existing file the examiner confirmed."""
        if self.case_store is None:
            self.show_message("Open a case first: the report is the case's record.", "warning")
            return False
        case_path = Path(self.case_store.path)
        self.state.set_value("dirs/reports", str(Path(out).parent))

        def task(_engine: Any, progress: Any, _cancel: Any) -> Any:
            from forensic_face.report.pdf import write_case_report

            progress(0, 1, "verifying the case and writing the report")
            outcome = write_case_report(case_path, out, search_ids=search_ids or None, top=top, examiner=examiner,
                                        force=force)
            progress(1, 1, "report written")
            return outcome

        return self._start("report", task)

    def current_result(self) -> SearchResult | None:
        return self._result

    def show_result(self, result: SearchResult | None) -> None:
        self._result = result
        self._calibration = None
        if result is None:
            self.candidates.clear_candidates()
            self.open_set.clear_cue()
            self.comparison.clear()
            self.heatmaps.clear()
            self.candidates_title.setText("Candidates")
            return
        top_n = self.holder.config.top_k
        if result.provenance.get("provisional"):
            self.candidates_title.setText(f"Provisional ranking for {result.probe_path.name}: one hypothesis against "
                                          "the undegraded portraits; the full method is refining it…")
        else:
            self.candidates_title.setText(f"Candidates for {result.probe_path.name} "
                                          f"(top {min(top_n, len(result.candidates))})")
        # Likelihood ratios only where a shipped calibration matches these settings and face width.
        self._calibration = calibration_for_result(result)
        self._no_calibration = why_no_calibration(result) if self._calibration is None else ""
        self.candidates.set_candidates(result.candidates, self.gallery, top_n, calibration=self._calibration,
                                       no_calibration_reason=self._no_calibration)
        self.open_set.show_result(result)
        record = self.probe_panel.current_record()
        self._show_decisions(record.search_id if record is not None and record.result is result else None)
        # Focus stays where the examiner put it: moving it to the candidates here (on every probe change) made
        # the next arrow key or L/X/I land on a candidate instead of the probe list.

    @Slot(int)
    def _on_candidate_selected(self, row: int) -> None:
        if self._result is None or not (0 <= row < len(self.candidates.candidates)):
            return
        candidate = self.candidates.candidates[row]
        self.comparison.show_candidate(self._result, candidate, self.gallery_entry(candidate.gallery_sha256),
                                       calibration=self._calibration, no_calibration_reason=self._no_calibration)
        self.heatmaps.set_candidate(self._result, candidate)

    @Slot(int, str)
    def render_gallery_hypothesis(self, scale: int, label: str) -> None:
        """Ask the engine to re-create one gallery hypothesis image for the heatmap's clicked cell."""
        candidate, result = self.heatmaps.current_candidate(), self._result
        entry = self.gallery_entry(candidate.gallery_sha256) if candidate is not None else None
        if result is None or entry is None:
            self.heatmaps.set_gallery_image(scale, label, None, "portrait not in the open gallery")
            return
        if self.runner.busy:
            # The engine runs one job at a time: the cell's image is rendered when the running job ends
            # (_on_busy_changed), the latest clicked cell only.
            self.heatmaps.wait_render("rendered when the running job ends")
            return
        target = result.provenance.get("gallery_targets_px", {}).get(str(scale))

        def task(engine: Any, _p: Any, _c: Any) -> tuple[int, str, Any]:
            return scale, label, engine.gallery_hypothesis_image(entry, label, target)

        self.runner.start("render", _with_status(task))

    # Settings and About -------------------------------------------------------------------------------------
    @Slot()
    def open_settings(self) -> None:
        dialog = SettingsDialog(self.holder.config, self)
        dialog.setModal(True)
        dialog.finished.connect(lambda code: self._settings_closed(dialog, code))
        dialog.open()
        self.settings_dialog = dialog

    def _settings_closed(self, dialog: SettingsDialog, code: int) -> None:
        if code == int(SettingsDialog.DialogCode.Accepted):
            self.apply_config(dialog.config())

    def apply_config(self, config: EngineConfig) -> None:
        """Use ``config`` from the next job on and persist it in settings.toml."""
        changed = config != self.holder.config
        self.config = config
        self.holder.set_config(config)
        try:
            path = save_settings(config)
        except OSError as exc:
            self.show_message(f"Settings are in use but could not be saved ({exc}).", "warning")
        else:
            log.info("settings saved to %s", path)
        self._show_config_status()
        if changed:
            self.show_message("Settings saved; they apply from the next job.", "info")
        if self._result is not None:
            self.show_result(self._result)

    @Slot()
    def show_about(self) -> None:
        if self.holder.engine is not None:
            self._show_about_text(self.holder.engine.provenance())
        else:
            self._start("about", lambda eng, _p, _c: eng.provenance())

    def about_text(self, provenance: dict[str, Any]) -> str:
        import numpy
        import pyqtgraph
        import PySide6

        lines = [f"<h3>forensic_face {forensic_face.__version__}</h3>",
                 "<p>Cross-resolution face search (Meet-in-the-middle). Results are investigative leads for human "
                 "review, not identifications.</p>",
                 f"<p>Python {platform.python_version()} · PySide6 {PySide6.__version__} · pyqtgraph "
                 f"{pyqtgraph.__version__} · numpy {numpy.__version__}</p>", "<table>"]
        for key, value in _flatten(provenance):
            if key.endswith("config") or key.endswith("config_json"):
                continue
            lines.append(f"<tr><td><b>{key}</b></td><td><code>{value}</code></td></tr>")
        lines.append("</table>")
        return "".join(lines)

    def _show_about_text(self, provenance: dict[str, Any]) -> None:
        box = QMessageBox(self)
        box.setWindowTitle("About forensic_face")
        box.setTextFormat(Qt.TextFormat.RichText)
        box.setText(self.about_text(provenance))
        box.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        box.setModal(True)
        box.open()
        self.about_box = box

    # Case store (optional) ----------------------------------------------------------------------------------
    @Slot()
    def new_case(self) -> None:
        try:
            from forensic_face.store.case_store import CASE_SUFFIX, default_case_path
        except ImportError as exc:
            self.show_message(f"Case files are not available in this installation ({exc}).", "warning")
            return
        from forensic_face.gui.case_dialog import NewCaseDialog

        dialog = NewCaseDialog(default_case_path("x").parent, CASE_SUFFIX, self)
        dialog.examiner.setText(self._saved_examiner())
        dialog.finished.connect(lambda code: self._new_case_closed(dialog, code))
        dialog.open()
        self.case_dialog = dialog

    def _new_case_closed(self, dialog: Any, code: int) -> None:
        if code != 1:
            return
        path, number, title, examiner = dialog.values()
        self.create_case(path, number, title, examiner)

    def create_case(self, path: Path, case_number: str, title: str, examiner: str) -> bool:
        from forensic_face.store.case_store import CaseStore

        try:
            store = CaseStore.create(path, case_number, title, examiner)
            if not self._saved_examiner():
                save_examiner(examiner)  # asked once: the New case dialog's examiner is who works here
        except (ForensicFaceError, OSError) as exc:
            self.show_message(str(exc), "error")
            return False
        self._set_case(store)
        return True

    def _saved_examiner(self) -> str:
        """The examiner's name in settings.toml ("" when none is saved, or it cannot be read: said once)."""
        try:
            return load_examiner()
        except ForensicFaceError as exc:
            self.show_message(str(exc), "error")
            return ""

    def _ask_examiner(self) -> None:
        """Ask, without blocking the window, who works on the open case; the answer is kept in settings.toml and
        names the actor of every audit entry written from then on (until then: the case's examiner)."""
        dialog = QInputDialog(self)
        dialog.setWindowTitle("Examiner")
        dialog.setLabelText("Your name, as the audit trail of every case you work on should record it:")
        dialog.textValueSelected.connect(self.set_examiner)
        dialog.open()
        self.examiner_dialog = dialog

    def set_examiner(self, name: str) -> bool:
        """Work as ``name`` from now on (saved in settings.toml; the open case's audit actor)."""
        try:
            save_examiner(name)
        except (ForensicFaceError, OSError) as exc:
            self.show_message(str(exc), "error")
            return False
        if self.case_store is not None:
            self.case_store.examiner = name.strip()
        return True

    @Slot()
    def choose_case(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open case", self._last_dir("cases"),
                                              "Cases (*.ffcase);;All files (*)")
        if path:
            self.open_case(Path(path))

    def open_case(self, path: Path) -> bool:
        try:
            from forensic_face.store.case_store import open_case
        except ImportError as exc:
            self.show_message(f"Case files are not available in this installation ({exc}).", "warning")
            return False
        examiner = self._saved_examiner()
        try:
            store = open_case(path, examiner or None)
        except ForensicFaceError as exc:
            self.show_message(str(exc), "error")
            return False
        self._set_case(store)
        if not examiner:
            self._ask_examiner()
        return True

    def _set_case(self, store: Any) -> None:
        if self.case_store is not None:
            self.case_store.close()
        self.case_store = store
        info = store.info()
        self.state.add_recent_case(store.path)
        self.state.set_value("dirs/cases", str(Path(store.path).parent))
        self._rebuild_recent_menus()
        self.setWindowTitle(f"forensic_face — case {info.case_number}" + (f": {info.title}" if info.title else ""))
        self.show_message(f"Case {info.case_number} open; every search is recorded in {Path(store.path).name}.",
                          "info")

    def record_in_case(self, result: SearchResult, config: EngineConfig, gallery: Gallery) -> tuple[str, int | None]:
        """Store a finished search in the open case (called on the worker thread); returns ``(warning or "",
        search id or None)``."""
        store = self.case_store
        if store is None:
            return "", None
        try:
            search_id = store.record_search(result, config, gallery=gallery,
                                            calibration=calibration_for_result(result))
        except ForensicFaceError as exc:
            return f"The search finished but could not be recorded in the case: {exc}", None
        log.info("search recorded in %s as #%s", store.path, search_id)
        return "", search_id


def _flatten(data: Any, prefix: str = "") -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    if isinstance(data, dict):
        for key, value in data.items():
            out.extend(_flatten(value, f"{prefix}{key}" if not prefix else f"{prefix}.{key}"))
    elif isinstance(data, (list, tuple)):
        out.append((prefix, ", ".join(str(v) for v in data)))
    else:
        out.append((prefix, str(data)))
    return out
