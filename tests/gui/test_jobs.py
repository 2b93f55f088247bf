"""The window's background jobs (``forensic_face.gui.jobs``) are plain functions of what they are given: they run
with an engine, the gallery, the probes and the open case's store and no window at all, and import nothing of Qt.
No models: the fake engine of the reopened-case tests."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import pytest
from tests.gui.test_case_window import NAMES, FolderEngine
from tests.store.test_store import write_image
from tests.test_architecture import import_graph, module_files

from forensic_face.engine.errors import Cancelled, ForensicFaceError
from forensic_face.engine.imaging import load_image
from forensic_face.gui import jobs


class OneBadProbeEngine(FolderEngine):
    """Fails on the probe named ``bad.png``; raises Cancelled (as the engine does between chunks) when asked to."""

    def search(self, image: Any, gallery: Any, face: Any = None, progress: Any = None,
               should_cancel: Any = None) -> Any:
        if image.path.name == "bad.png":
            raise ForensicFaceError("this probe cannot be searched")
        if should_cancel is not None and should_cancel():
            raise Cancelled()
        return super().search(image, gallery, face, progress, should_cancel)


def _qt_imports(module: str) -> list[str]:
    tree = ast.parse(module_files()[module].read_text(encoding="utf-8"))
    names = [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
    names += [n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
    return [name for name in names if name.split(".")[0] in ("PySide6", "pyqtgraph")]


def test_jobs_reach_no_qt_code() -> None:
    """What runs on the worker thread imports no widget (lazy imports included): it cannot touch the window."""
    graph = import_graph()
    seen, todo = set(), ["forensic_face.gui.jobs"]
    while todo:
        module = todo.pop()
        if module not in seen:
            seen.add(module)
            todo.extend(graph[module])
    assert "forensic_face.gui.case_session" in seen  # the walk follows the imports
    assert not {m: q for m in seen if (q := _qt_imports(m))}


@pytest.fixture()
def searched(tmp_path: Path):  # type: ignore[no-untyped-def]
    from forensic_face.store.case_store import CaseStore

    root = tmp_path / "gallery"
    for k, name in enumerate(NAMES):
        (root / name).mkdir(parents=True)
        write_image(root / name / f"{name}_0001.png", size=64, seed=100 + k)
    engine = OneBadProbeEngine()
    gallery = jobs.enroll_gallery(engine, lambda *_: None, lambda: False, folder=root)
    probes = []
    for k, name in enumerate(("a.png", "bad.png", "c.png")):
        image = load_image(write_image(tmp_path / name, seed=k))
        probes.append(jobs.ProbeSearch(k, image, engine.detect(image).faces[0]))
    store = CaseStore.create(tmp_path / "jobs.ffcase", "J-1", "jobs", "Ann Examiner")
    yield engine, gallery, tuple(probes), store
    store.close()


def test_a_batch_search_records_each_probe_and_reports_the_one_that_failed(searched) -> None:  # type: ignore[no-untyped-def]
    engine, gallery, probes, store = searched
    messages: list[str] = []
    batch = jobs.search_probes(engine, lambda _d, _t, m: messages.append(m), lambda: False, probes=probes,
                               gallery=gallery, case_store=store)
    assert (batch.total, batch.cancelled) == (3, False)
    assert [o.index for o in batch.searches] == [0, 1, 2]
    good = [o for o in batch.searches if o.result is not None]
    assert [o.search_id for o in good] == store.search_ids()  # recorded in the case given, in order
    assert all(o.history is not None and o.history.latest.search.id == o.search_id for o in good)
    bad = batch.searches[1]
    assert bad.result is None and bad.search_id is None and bad.warning == "bad.png: this probe cannot be searched"


def test_a_cancelled_batch_keeps_the_searches_done_before_it(searched) -> None:  # type: ignore[no-untyped-def]
    engine, gallery, probes, store = searched
    batch = jobs.search_probes(engine, lambda *_: None, lambda: bool(store.search_ids()), probes=probes,
                               gallery=gallery, case_store=store)
    assert batch.cancelled and batch.total == 3
    assert len(batch.searches) == 2 and batch.searches[0].search_id == store.search_ids()[0]


def test_a_search_without_a_case_is_not_recorded(searched) -> None:  # type: ignore[no-untyped-def]
    engine, gallery, probes, _store = searched
    shown: list[object] = []
    outcome = jobs.search_probe(engine, lambda *_: None, lambda: False, probe=probes[0], gallery=gallery,
                                case_store=None, show_provisional=shown.append)
    assert outcome.result is not None and outcome.search_id is None and outcome.warning == ""
    assert shown == []  # this engine has no provisional ranking: the full search is the only one
