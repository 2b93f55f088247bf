"""The investigator's main window: its layout, the gallery, probes and searches, and the views of a result.

Background work is started with :meth:`MainWindow._start` as a function of :mod:`forensic_face.gui.jobs` with
its arguments bound, together with the handler that shows its value; the case, decision and report actions are
the :class:`~forensic_face.gui.case_actions.CaseActions` mixin.
"""

from __future__ import annotations

import functools
import logging
import platform
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PySide6.QtCore import QByteArray, QEvent, Qt, QTimer, Slot
from PySide6.QtGui import (
    QAction,
    QCloseEvent,
    QGuiApplication,
    QKeySequence,
)
from PySide6.QtWidgets import (
    QDockWidget,
    QFileDialog,
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
from forensic_face.engine import (
    IMAGE_SUFFIXES,
    EngineConfig,
    FaceDetection,
    ForensicFaceError,
    Gallery,
    GalleryEntry,
    LoadedImage,
    SearchResult,
)
from forensic_face.gui import jobs
from forensic_face.gui.candidates import CandidateTable, OpenSetLabel
from forensic_face.gui.case_actions import CaseActions
from forensic_face.gui.case_session import CaseSession, gallery_for_view, gallery_matches
from forensic_face.gui.comparison import ComparisonView
from forensic_face.gui.eta import TimeLeft, format_time_left
from forensic_face.gui.gallery_panel import GalleryPanel
from forensic_face.gui.heatmaps import HeatmapPanel
from forensic_face.gui.history_panel import HistoryPanel
from forensic_face.gui.probe_panel import ProbePanel
from forensic_face.gui.probe_records import ProbeRecord
from forensic_face.gui.settings import WindowState
from forensic_face.gui.settings_dialog import SettingsDialog
from forensic_face.gui.widgets import ElidedLabel, MessageBanner
from forensic_face.gui.worker import (
    EngineFactory,
    EngineHolder,
    JobRunner,
    Task,
    default_engine_factory,
)
from forensic_face.settings import save_settings

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
    "case": "Opening the case",
}

#: Below this available screen height the gallery and probe docks are tabbed instead of stacked.
SHORT_SCREEN_PX = 1000


def _nothing_to_show(_value: Any) -> None:
    """A job whose outcome no view shows (tests start such jobs)."""


@dataclass(frozen=True)
class RunningJob:
    """How the window shows the outcome of the job it started: each job carries its own handlers, so adding a job
    adds none to a switch."""

    name: str
    done: Callable[[Any], None] = _nothing_to_show
    #: Shows the failure's message (and undoes what the job's start showed); None: the message as an error.
    failed: Callable[[str], None] | None = None
    #: Says the job was cancelled (and undoes what its start showed); None: "<job title> cancelled."
    cancelled: Callable[[], None] | None = None
    #: Shows an intermediate value the job hands over while it runs (the provisional ranking of a search).
    partial: Callable[[Any], None] = _nothing_to_show


class MainWindow(CaseActions, QMainWindow):
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
        #: The open case's probe histories (:mod:`forensic_face.gui.case_session`).
        self.case_session = CaseSession()
        #: The case's search shown now (an earlier one of the probe is shown read-only); None: not recorded.
        self._shown_search_id: int | None = None
        #: The case's gallery folder, opened again when the running job ends.
        self._reopen_gallery: Path | None = None
        self._case_offered = False
        self._time_left = TimeLeft()
        self._no_calibration = ""
        #: The running job's handlers (None: no job runs).
        self._job: RunningJob | None = None
        #: Open a written report in the system's PDF viewer (tests turn it off).
        self.open_reports = True

        self.banner = MessageBanner()
        self.gallery_panel = GalleryPanel()
        self.probe_panel = ProbePanel()
        self.candidates = CandidateTable()
        self.open_set = OpenSetLabel()
        self.comparison = ComparisonView()
        self.heatmaps = HeatmapPanel()
        self.history_panel = HistoryPanel()
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
        self.tabs.addTab(self.history_panel, "History")
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
        self.review_action = self._action("Re&view shown search…", lambda: self.choose_review(),
                                          [QKeySequence("Ctrl+Shift+V")],
                                          "Record a second examiner's review (agree / disagree / inconclusive) of "
                                          "the shown search's decisions")
        self.report_choice_action = self._action("Use shown search for the &report",
                                                 lambda: self.choose_report_search(self._shown_search_id),
                                                 tip="The case report shows the shown search for its probe (the "
                                                     "latest by default); the others go to its annex")
        self.history_action = self._action("Search &history", lambda: self.tabs.setCurrentWidget(self.history_panel),
                                           [QKeySequence("Ctrl+H")], "Show the selected probe's searches")

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
        case_menu = self.menuBar().addMenu("&Case")
        for action in (self.history_action, self.report_choice_action, self.review_action):
            case_menu.addAction(action)
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
        self.history_panel.search_selected.connect(self.show_stored_search)
        self.history_panel.report_chosen.connect(self.choose_report_search)
        self.history_panel.review_requested.connect(self.choose_review)

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
            self.case_store = None  # a second close event (the window closed again) finds no case to close
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

    def _apply_status(self, status: jobs.EngineStatus | None) -> None:
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
        shown = self.case_session.history(self._shown_search_id)
        self.review_action.setEnabled(shown is not None)
        self.report_choice_action.setEnabled(shown is not None and shown.chosen().search.id != self._shown_search_id)
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
    def _start(self, name: str, task: Task, *, on_done: Callable[[Any], None] = _nothing_to_show,
               on_failed: Callable[[str], None] | None = None, on_cancelled: Callable[[], None] | None = None,
               on_partial: Callable[[Any], None] = _nothing_to_show, needs_engine: bool = True) -> bool:
        """Run ``task`` (a :mod:`forensic_face.gui.jobs` function with its arguments bound) as the job ``name``;
        ``on_done`` shows its value. A failure is shown as an error and a cancel as such unless ``on_failed`` /
        ``on_cancelled`` say otherwise."""
        if self.runner.busy:
            self.show_message(f"Wait for “{JOB_TITLES.get(self.runner.job_name, self.runner.job_name)}” to finish "
                              "or cancel it (Esc).", "warning")
            return False
        self._job = RunningJob(name, on_done, on_failed, on_cancelled, on_partial)
        return self.runner.start(name, jobs.with_status(task), needs_engine=needs_engine)

    def _handlers(self, name: str) -> RunningJob:
        """The handlers of the job ``name`` that the window started (the defaults for one it did not)."""
        return self._job if self._job is not None and self._job.name == name else RunningJob(name)

    def _show_failure(self, message: str) -> None:
        self.show_message(message, "error")

    def _show_cancelled(self, name: str) -> None:
        self.show_message(f"{JOB_TITLES.get(name, name)} cancelled.", "info")

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
        else:
            self._job = None
        self._update_actions()
        if not busy and self._reopen_gallery is not None:  # first: a pending render waits for the enrollment
            folder, self._reopen_gallery = self._reopen_gallery, None
            self.open_gallery(folder)
            return
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
        (self._handlers(name).failed or self._show_failure)(message)

    @Slot(str, str)
    def _on_cancelled(self, name: str, _message: str) -> None:
        cancelled = self._handlers(name).cancelled
        if cancelled is None:
            self._show_cancelled(name)
        else:
            cancelled()

    @Slot(str, object)
    def _on_partial(self, name: str, value: Any) -> None:
        self._handlers(name).partial(value)

    @Slot(str, object)
    def _on_finished(self, name: str, outcome: jobs.JobResult) -> None:
        self._apply_status(outcome.status)
        self._handlers(name).done(outcome.value)
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
        if not self._start("enroll", functools.partial(jobs.enroll_gallery, folder=folder), on_done=self._enrolled,
                           on_failed=self._enroll_failed, on_cancelled=self._enroll_cancelled):
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
            if record.search_id is None:  # a search recorded in the case stays: it is the case's record
                record.result = None
        current = self.probe_panel.current_record()
        self.show_result(current.result if current is not None else None)
        check = self.case_session.gallery
        if check is not None and check.record is not None and not gallery_matches(gallery, check):
            self.show_message(f"The gallery {gallery.root} is not the one the case's latest search used "
                              f"({check.record.root}, {check.record.num_images} portraits, recorded "
                              f"{check.record.recorded_utc}): the stored searches are shown as they were; new "
                              "searches use the gallery now open.", "warning")
            return
        msg = (f"Enrolled {len(gallery.entries)} portraits from {gallery.root.name}. Search > Prepare gallery "
               "(Ctrl+P) computes their templates for small probes now, so first searches are fast.")
        if gallery.problems:
            msg += f" {len(gallery.problems)} image(s) could not be enrolled; see the Problems list."
        self.show_message(msg, "warning" if gallery.problems else "info")

    def _enroll_failed(self, message: str) -> None:
        self.gallery_panel.summary.setText("Enrollment failed — see the message above")
        self._show_failure(message)

    def _enroll_cancelled(self) -> None:
        self.gallery_panel.summary.setText("Enrollment cancelled" if self.gallery is None
                                           else self.gallery_panel.summary.text())
        if self.gallery is not None:
            self.gallery_panel.set_gallery(self.gallery)
        self._show_cancelled("enroll")

    def gallery_entry(self, sha256: str) -> GalleryEntry | None:
        """The open gallery's portrait, else the crop stored with the case's searches (None: neither)."""
        for entry in self.gallery.entries if self.gallery is not None else ():
            if entry.sha256 == sha256:
                return entry
        return self.case_session.gallery_entries.get(sha256)

    # Probes -------------------------------------------------------------------------------------------------
    @Slot()
    def choose_probes(self) -> None:
        from forensic_face.engine import VIDEO_SUFFIXES

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
        return self._start("probes", functools.partial(jobs.load_probes, paths=new), on_done=self._probes_loaded)

    def _probes_loaded(self, records: list[ProbeRecord]) -> None:
        self.probe_panel.add_records(records)
        self.probe_dock.raise_()  # tabbed on a short screen: show the probes just added
        failed = [r for r in records if r.error]
        no_face = [r for r in records if not r.error and not r.faces]
        if failed:
            self.show_message(f"{len(failed)} probe(s) could not be loaded: " + failed[0].error, "warning")
        elif no_face:
            self.show_message(f"No face found in {', '.join(r.path.name for r in no_face[:3])}: drag on the "
                              "image to draw the face box.", "warning")

    @Slot(int, tuple)
    def refine_box(self, index: int, box: tuple[float, float, float, float]) -> bool:
        record = self.probe_panel.records[index]
        if record.image is None:
            return False
        if record.video is not None:
            return self.track_drawn_face(index, box)
        return self._start("manual", functools.partial(jobs.refine_drawn_box, pixels=record.image.pixels, box=box),
                           on_done=functools.partial(self._face_refined, index))

    def _face_refined(self, index: int, face: FaceDetection) -> None:
        if 0 <= index < len(self.probe_panel.records):
            record = self.probe_panel.records[index]
            record.manual_face = face
            record.face_index = -1
            record.result = None
            self.probe_panel.update_record(index)
            self._on_probe_changed(index)

    def track_drawn_face(self, index: int, box: tuple[float, float, float, float]) -> bool:
        """A box drawn on a video frame starts a track there (``engine.video.track_from_box``), followed backwards
        and forwards by detections and by the face patch; it becomes a probe of its own (or the clip's first
        track)."""
        record = self.probe_panel.records[index]
        used = {r.track.id for r in self.probe_panel.records if r.path == record.path and r.track is not None}
        task = functools.partial(jobs.track_drawn_face, path=record.path, video=record.video,
                                 frame_index=record.video_frame, box=box, track_id=max(used, default=0) + 1)
        return self._start("video-track", task, on_done=functools.partial(self._track_followed, index))

    def _track_followed(self, index: int, new: ProbeRecord) -> None:
        records = self.probe_panel.records
        if 0 <= index < len(records) and records[index].track is None and records[index].path == new.path:
            records[index] = new  # the clip had no track: the drawn one replaces it
            self.probe_panel.update_record(index)
            self._on_probe_changed(index)
        else:
            self.probe_panel.add_records([new])
        self.show_message(f"Track {new.track.id}: {jobs.drawn_track_text(new.track)}.", "info")

    @Slot(int, int)
    def show_video_frame(self, index: int, frame_index: int) -> bool:
        """Decode frame ``frame_index`` of the video probe ``index`` and show it (to draw on)."""
        record = self.probe_panel.records[index]
        if record.video is None:
            return False
        return self._start("frame", functools.partial(jobs.decode_video_frame, video=record.video,
                                                      frame_index=frame_index),
                           on_done=functools.partial(self._frame_decoded, index, frame_index))

    def _frame_decoded(self, index: int, frame_index: int, image: LoadedImage) -> None:
        if 0 <= index < len(self.probe_panel.records):
            record = self.probe_panel.records[index]
            faces = tuple(f.face for f in (record.track.faces if record.track is not None else ())
                          if f.frame_index == frame_index)
            record.image, record.video_frame = image, frame_index
            record.detections = jobs.frame_detections(record.path, image, faces)
            record.face_index = 0
            self.probe_panel.update_record(index)

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
        probe = jobs.ProbeSearch(self.probe_panel.current_index(), record.image, record.chosen_face,
                                 record.video_track)
        task = functools.partial(jobs.search_probe, probe=probe, gallery=self.gallery, case_store=self.case_store,
                                 show_provisional=functools.partial(self.runner.partial.emit, "search"))
        return self._start("search", task, on_done=self._searched, on_failed=self._search_failed,
                           on_partial=self._show_provisional)

    def _searched(self, outcome: jobs.SearchOutcome) -> None:
        self._apply_search(outcome)
        if outcome.warning:
            self.show_message(outcome.warning, "warning")

    def _search_failed(self, message: str) -> None:
        hint = " Drag on the probe image to draw the face box, then search again." if "no face" in message.lower() \
            else ""
        self._show_failure(message + hint)

    def _show_provisional(self, value: tuple[int, SearchResult]) -> None:
        index, result = value
        if index == self.probe_panel.current_index():
            self.show_result(result)

    @Slot()
    def warm_gallery(self) -> bool:
        """Compute the gallery hypothesis templates a search of a small probe needs, as a background job."""
        if self.gallery is None:
            self.show_message("Open a gallery first (Ctrl+G).", "warning")
            return False
        return self._start("warm", functools.partial(jobs.warm_gallery, entries=self.gallery.entries),
                           on_done=self._gallery_warmed)

    def _gallery_warmed(self, num_stacks: int) -> None:
        self.show_message(f"Gallery prepared: {num_stacks} portrait x size template stacks for 15-30 px faces; "
                          "searches of such probes now start from the cache.", "info")

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
        probes = tuple(jobs.ProbeSearch(k, records[k].image, records[k].chosen_face,
                                        records[k].video_track if records[k].track is not None else None)
                       for k in indices)
        self._offer_case()
        task = functools.partial(jobs.search_probes, probes=probes, gallery=self.gallery, case_store=self.case_store)
        return self._start("search-all", task, on_done=self._batch_searched)

    def _batch_searched(self, batch: jobs.BatchOutcome) -> None:
        for outcome in batch.searches:
            self._apply_search(outcome)
        warnings = [o.warning for o in batch.searches if o.warning]
        searched = sum(o.result is not None for o in batch.searches)
        text = (f"Searched {searched} of {batch.total} probes" + (" before the cancel" if batch.cancelled else "")
                + "." + (f" {len(warnings)} problem(s): {warnings[0]}" if warnings else ""))
        self.show_message(text, "warning" if warnings or batch.cancelled else "info")

    def _apply_search(self, outcome: jobs.SearchOutcome) -> None:
        if not 0 <= outcome.index < len(self.probe_panel.records) or outcome.result is None:
            return
        record = self.probe_panel.records[outcome.index]
        record.result, record.search_id = outcome.result, outcome.search_id
        if outcome.history is not None:
            self.case_session.update(outcome.history)
        self.probe_panel.update_record(outcome.index)
        if outcome.index == self.probe_panel.current_index():
            self.show_result(outcome.result)

    # Result views ------------------------------------------------------------------------------------------
    def current_result(self) -> SearchResult | None:
        return self._result

    def show_result(self, result: SearchResult | None, search_id: int | None = None) -> None:
        """Show ``result``: the selected probe's search (``search_id`` None) or, read-only, the case's search
        ``search_id``."""
        self._result = result
        self._calibration = None
        if result is None:
            self.candidates.clear_candidates()
            self.open_set.clear_cue()
            self.comparison.clear()
            self.heatmaps.clear()
            self.candidates_title.setText("Candidates")
            record = self.probe_panel.current_record()
            self._show_decisions(None)
            self.history_panel.set_history(self.case_session.history(record.search_id if record else None))
            return
        top_n = self.holder.config.top_k
        if result.provenance.get("provisional"):
            self.candidates_title.setText(f"Provisional ranking for {result.probe_path.name}: one hypothesis against "
                                          "the undegraded portraits; the full method is refining it…")
        else:
            self.candidates_title.setText(f"Candidates for {result.probe_path.name} "
                                          f"(top {min(top_n, len(result.candidates))})")
        self.open_set.show_result(result)
        record = self.probe_panel.current_record()
        if search_id is None and record is not None and record.result is result:
            search_id = record.search_id
        self._calibration, self._no_calibration = self._calibration_of(result, search_id)
        self.candidates.set_candidates(result.candidates, gallery_for_view(self.gallery,
                                                                           self.case_session.gallery_entries),
                                       top_n, calibration=self._calibration,
                                       no_calibration_reason=self._no_calibration)
        if record is not None and search_id is not None and search_id != record.search_id:
            self.candidates_title.setText(f"Earlier search #{search_id} of {result.probe_path.name} (read-only; "
                                          f"the latest is #{record.search_id})")
        self._show_decisions(search_id)
        # Focus stays where the examiner put it: moving it to the candidates here (on every probe change) made
        # the next arrow key or L/X/I land on a candidate instead of the probe list.

    def _calibration_of(self, result: SearchResult, search_id: int | None) -> tuple[Calibration | None, str]:
        """The calibration that turns ``result``'s scores into likelihood ratios, and why there is none: a search
        of the case keeps the one recorded with it; a new result gets the shipped one that matches its settings
        and face width."""
        entry = self.case_session.search(search_id) if search_id is not None else None
        if entry is not None and entry.search.calibration is not None:
            return Calibration.from_json(entry.search.calibration), ""
        try:
            # A recorded search without a calibration had none then: say why, do not look for one now.
            calibration = None if entry is not None else calibration_for_result(result)
            return calibration, why_no_calibration(result) if calibration is None else ""
        except ForensicFaceError as exc:
            return None, str(exc)

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
        task = functools.partial(jobs.render_gallery_hypothesis, entry=entry, label=label,
                                 target_px=result.provenance.get("gallery_targets_px", {}).get(str(scale)))
        self._start("render", task, on_done=functools.partial(self.heatmaps.set_gallery_image, scale, label),
                    on_failed=self._render_failed,
                    on_cancelled=functools.partial(self.heatmaps.fail_render, "cancelled"))

    def _render_failed(self, message: str) -> None:
        self.heatmaps.fail_render("could not render this hypothesis")
        self._show_failure(message)

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
            self._start("about", jobs.read_provenance, on_done=self._show_about_text)

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
