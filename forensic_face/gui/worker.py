"""Run engine calls off the GUI thread.

A :class:`Worker` (a QObject moved onto its own QThread) calls one task with the engine's ``progress`` and
``should_cancel`` callbacks, and reports back only through signals: ``progress(done, total, message)``,
``finished(result)``, ``failed(message)``, ``cancelled(message)`` and ``notice(message)``. Cancel is a
:class:`threading.Event` that the engine polls between chunks; :class:`~forensic_face.engine.errors.Cancelled`
becomes ``cancelled``; any other :class:`~forensic_face.engine.errors.ForensicFaceError` and every failure of the
machine rather than the program (a full disk, a read-only file, too little memory: the CLI's rule,
:func:`forensic_face.faults.describe_failure`) becomes ``failed`` with its plain-language message; unexpected
exceptions (bugs) are logged with their traceback and reported as one readable line. Running out of memory is
retried with a smaller batch, then on the CPU, with a notice each time.

The GUI thread never blocks and never calls ``processEvents()``; it only reacts to signals.
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, QThread, Signal, Slot

from forensic_face.engine import CancelCallback, Cancelled, EngineConfig, ForensicFaceError, ProgressCallback
from forensic_face.faults import describe_failure, is_out_of_memory

log = logging.getLogger(__name__)

#: A job: ``task(engine, progress, should_cancel) -> result dataclass``. Runs on the worker thread.
Task = Callable[[Any, ProgressCallback, CancelCallback], Any]
EngineFactory = Callable[[EngineConfig], Any]

#: Minimum seconds between two progress signals (the engine may report every chunk).
PROGRESS_INTERVAL_S = 0.05


def default_engine_factory(config: EngineConfig) -> Any:
    """Build the real :class:`forensic_face.engine.search.Engine` (imported lazily: it loads torch models)."""
    from forensic_face.engine import Engine

    # The engine's own default template cache, the one the CLI uses: a gallery enrolled in the window is not
    # computed again by `forensic-face search`.
    return Engine(config)


class EngineHolder:
    """Owns the one engine instance. It is built on the worker thread by the first job that needs it."""

    def __init__(self, config: EngineConfig, factory: EngineFactory = default_engine_factory) -> None:
        self._config = config
        self._factory = factory
        self._engine: Any | None = None
        self._lock = threading.Lock()

    @property
    def config(self) -> EngineConfig:
        return self._config

    @property
    def engine(self) -> Any | None:
        """The engine if it was built already (read-only use from the GUI thread: names, device)."""
        return self._engine

    def set_config(self, config: EngineConfig) -> None:
        """Use ``config`` from the next job on; the current engine is dropped if the config changed."""
        with self._lock:
            if config != self._config:
                self._config = config
                self._engine = None

    def get(self) -> Any:
        with self._lock:
            if self._engine is None:
                log.info("building the engine: %s", self._config.to_json())
                self._engine = self._factory(self._config)
            return self._engine


def _free_gpu_memory() -> None:
    gc.collect()
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except ImportError:
        pass


def fallback_configs(config: EngineConfig) -> list[tuple[EngineConfig, str]]:
    """What to try after a GPU out-of-memory error, in order, each with the notice shown to the user."""
    out: list[tuple[EngineConfig, str]] = []
    if config.device != "cpu":
        if config.batch_size > 1:
            smaller = max(1, config.batch_size // 4)
            out.append((config.replace(batch_size=smaller),
                        f"GPU out of memory: retrying with batch size {smaller} (was {config.batch_size})."))
        out.append((config.replace(device="cpu", precision="fp32"),
                    "GPU out of memory: retrying on the CPU (slower). Lower the batch size or the budget in "
                    "Settings to stay on the GPU."))
    return out


class Worker(QObject):
    """Runs one task on a QThread and reports through signals (see the module docstring)."""

    progress = Signal(int, int, str)
    finished = Signal(object)
    failed = Signal(str)
    cancelled = Signal(str)
    notice = Signal(str)
    #: Emitted last, whatever the outcome, so the owner can stop the thread.
    done = Signal()

    def __init__(self, task: Task, holder: EngineHolder, cancel_event: threading.Event,
                 needs_engine: bool = True) -> None:
        super().__init__()
        self._task = task
        self._holder = holder
        self._cancel = cancel_event
        self._needs_engine = needs_engine
        self._last_emit = 0.0

    def _should_cancel(self) -> bool:
        return self._cancel.is_set()

    def _progress(self, done: int, total: int, message: str) -> None:
        now = time.monotonic()
        if done >= total or now - self._last_emit >= PROGRESS_INTERVAL_S:
            self._last_emit = now
            self.progress.emit(int(done), int(total), str(message))

    def _call(self) -> Any:
        if self._cancel.is_set():
            raise Cancelled()
        engine = self._holder.get() if self._needs_engine else None
        return self._task(engine, self._progress, self._should_cancel)

    def _call_with_fallback(self) -> Any:
        try:
            return self._call()
        except Exception as exc:  # noqa: BLE001 - only out-of-memory is handled here; the rest is re-raised
            if not is_out_of_memory(exc):
                raise
            first_error: BaseException = exc
        _free_gpu_memory()
        for config, message in fallback_configs(self._holder.config):
            log.warning("%s", message)
            self.notice.emit(message)
            self._holder.set_config(config)
            try:
                return self._call()
            except Exception as exc:  # noqa: BLE001
                if not is_out_of_memory(exc):
                    raise
                _free_gpu_memory()
        raise first_error

    @Slot()
    def run(self) -> None:
        try:
            result = self._call_with_fallback()
        except Cancelled as exc:
            self.cancelled.emit(str(exc))
        except Exception as exc:  # noqa: BLE001 - the window must show a message, never crash
            message = describe_failure(exc)
            if message is None:
                log.exception("unexpected error in a background job")
                message = f"Unexpected error ({type(exc).__name__}): {exc}. The details are in the log."
            else:
                log.info("job failed: %s", message, exc_info=not isinstance(exc, ForensicFaceError))
            self.failed.emit(message)
        else:
            self.finished.emit(result)
        finally:
            self.done.emit()


class JobRunner(QObject):
    """Starts one background job at a time and relays its signals, tagged with the job's name."""

    started = Signal(str)
    progress = Signal(str, int, int, str)
    finished = Signal(str, object)
    failed = Signal(str, str)
    cancelled = Signal(str, str)
    notice = Signal(str)
    busy_changed = Signal(bool)
    #: ``(job name, value)``: an intermediate result a job shows before it finishes (emitted from the worker).
    partial = Signal(str, object)

    def __init__(self, holder: EngineHolder, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.holder = holder
        self._thread: QThread | None = None
        self._worker: Worker | None = None
        self._cancel = threading.Event()
        self._name = ""

    @property
    def busy(self) -> bool:
        return self._thread is not None

    @property
    def job_name(self) -> str:
        return self._name

    def start(self, name: str, task: Task, needs_engine: bool = True) -> bool:
        """Run ``task`` on a new QThread; returns False (and starts nothing) while another job runs."""
        if self.busy:
            return False
        self._name = name
        self._cancel = threading.Event()
        thread = QThread()
        thread.setObjectName(f"forensic-face-{name}")
        worker = Worker(task, self.holder, self._cancel, needs_engine=needs_engine)
        worker.moveToThread(thread)
        thread.started.connect(worker.run)
        # Bound slots of this GUI-thread object: Qt queues the calls onto the GUI thread.
        worker.progress.connect(self._relay_progress)
        worker.finished.connect(self._relay_finished)
        worker.failed.connect(self._relay_failed)
        worker.cancelled.connect(self._relay_cancelled)
        worker.notice.connect(self._relay_notice)
        worker.done.connect(thread.quit)
        thread.finished.connect(self._on_thread_finished)
        self._thread, self._worker = thread, worker
        self.busy_changed.emit(True)
        self.started.emit(name)
        thread.start()
        return True

    def cancel(self) -> None:
        """Ask the running job to stop; the engine raises Cancelled at its next chunk boundary."""
        if self.busy:
            log.info("cancel requested for %s", self._name)
            self._cancel.set()

    @Slot(int, int, str)
    def _relay_progress(self, done: int, total: int, message: str) -> None:
        self.progress.emit(self._name, done, total, message)

    @Slot(object)
    def _relay_finished(self, result: object) -> None:
        self.finished.emit(self._name, result)

    @Slot(str)
    def _relay_failed(self, message: str) -> None:
        self.failed.emit(self._name, message)

    @Slot(str)
    def _relay_cancelled(self, message: str) -> None:
        self.cancelled.emit(self._name, message)

    @Slot(str)
    def _relay_notice(self, message: str) -> None:
        self.notice.emit(message)

    @Slot()
    def _on_thread_finished(self) -> None:
        thread, worker = self._thread, self._worker
        self._thread = self._worker = None
        if worker is not None:
            worker.deleteLater()
        if thread is not None:
            thread.deleteLater()
        self.busy_changed.emit(False)

    def shutdown(self, timeout_ms: int = 10_000) -> bool:
        """Cancel and wait for the running job (window closing). Returns False if it did not stop in time."""
        thread = self._thread
        if thread is None:
            return True
        self._cancel.set()
        return bool(thread.wait(timeout_ms))


def engine_cache_summary(cache_root: Path) -> str:
    """A short description of the derived-data cache for the status bar (size on disk)."""
    if not cache_root.is_dir():
        return "cache: empty"
    total = 0
    count = 0
    for path in cache_root.rglob("*"):
        if path.is_file():
            total += path.stat().st_size
            count += 1
    return f"cache: {count} files, {total / 1e6:.1f} MB"
