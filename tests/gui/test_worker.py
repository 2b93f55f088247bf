"""The job runner: one engine (with the CLI's template cache), jobs off the GUI thread, typed errors, and the
fallbacks after running out of GPU memory (the engine's own out-of-memory error recognised)."""

from __future__ import annotations

import threading

from forensic_face.engine.batching import OutOfMemory
from forensic_face.engine.config import EngineConfig
from forensic_face.engine.errors import Cancelled, GalleryError
from forensic_face.gui.worker import EngineHolder, JobRunner, fallback_configs


def test_fallback_configs_after_gpu_oom() -> None:
    steps = fallback_configs(EngineConfig(device="cuda", batch_size=64))
    assert [(c.device, c.batch_size) for c, _ in steps] == [("cuda", 16), ("cpu", 64)]
    assert "batch size 16" in steps[0][1] and "CPU" in steps[1][1]
    assert fallback_configs(EngineConfig(device="cpu")) == []


def test_worker_reports_errors_and_retries_gpu_oom(qtbot, app) -> None:  # type: ignore[no-untyped-def]
    import torch

    # The "engine" here is the config it was built from, so the test sees which config each attempt used.
    holder = EngineHolder(EngineConfig(device="cuda", batch_size=8), factory=lambda config: config)
    runner = JobRunner(holder)
    used: list[tuple[str, int]] = []

    def oom_twice(engine, progress, cancel):  # type: ignore[no-untyped-def]
        used.append((engine.device, engine.batch_size))
        if len(used) < 3:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return "done on " + engine.device

    notices: list[str] = []
    runner.notice.connect(notices.append)
    with qtbot.waitSignal(runner.finished, timeout=5000) as blocker:
        assert runner.start("search", oom_twice)
    assert blocker.args == ["search", "done on cpu"]
    assert used == [("cuda", 8), ("cuda", 2), ("cpu", 8)]
    assert len(notices) == 2 and "CPU" in notices[1]
    qtbot.waitUntil(lambda: not runner.busy)

    def typed_error(engine, progress, cancel):  # type: ignore[no-untyped-def]
        raise GalleryError("/cases/gallery: no usable faces")

    with qtbot.waitSignal(runner.failed, timeout=5000) as blocker:
        runner.start("enroll", typed_error)
    assert blocker.args == ["enroll", "/cases/gallery: no usable faces"]
    qtbot.waitUntil(lambda: not runner.busy)

    def bug(engine, progress, cancel):  # type: ignore[no-untyped-def]
        return {}["missing"]

    with qtbot.waitSignal(runner.failed, timeout=5000) as blocker:
        runner.start("search", bug)
    assert "Unexpected error (KeyError)" in blocker.args[1] and "Traceback" not in blocker.args[1]
    qtbot.waitUntil(lambda: not runner.busy)


def test_worker_runs_off_the_gui_thread(qtbot, app) -> None:  # type: ignore[no-untyped-def]
    holder = EngineHolder(EngineConfig(), factory=lambda config: config)
    runner = JobRunner(holder)
    seen: dict[str, object] = {}

    def task(engine, progress, cancel):  # type: ignore[no-untyped-def]
        seen["thread"] = threading.current_thread()
        progress(1, 2, "half")
        if cancel():
            raise Cancelled()
        return 42

    with qtbot.waitSignal(runner.finished, timeout=5000):
        runner.start("probes", task)
    assert seen["thread"] is not threading.main_thread()
    qtbot.waitUntil(lambda: not runner.busy)
    assert runner.start("x", task) and not runner.start("y", task)  # one job at a time
    qtbot.waitUntil(lambda: not runner.busy)


def test_gui_worker_recognises_the_engines_out_of_memory() -> None:
    from forensic_face.gui.worker import is_out_of_memory

    assert is_out_of_memory(OutOfMemory("the GPU ran out of memory even one image at a time"))
    assert is_out_of_memory(RuntimeError("CUDA out of memory. Tried to allocate 2 GiB"))
    assert not is_out_of_memory(ValueError("out of memory"))


def test_gui_engine_shares_the_cli_template_cache() -> None:
    from forensic_face.engine import Engine
    from forensic_face.gui.worker import default_engine_factory

    gui_engine = default_engine_factory(EngineConfig(device="cpu"))
    assert gui_engine.cache.root == Engine(EngineConfig(device="cpu")).cache.root
