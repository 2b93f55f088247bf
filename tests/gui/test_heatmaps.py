"""The heatmaps: a cell clicked while a job runs is rendered when the job ends."""

from __future__ import annotations

from tests.gui.helpers import Blocking, synthetic_window


def test_heatmap_cell_clicked_during_a_job_is_rendered_after_it(qtbot, app, tmp_path) -> None:  # type: ignore[no-untyped-def]
    window, result, _ = synthetic_window(qtbot, tmp_path)
    rendered = window.holder.engine.rendered
    blocking = Blocking()
    assert window._start("probes", blocking)
    window.show_result(result)
    heatmaps = window.heatmaps
    heatmaps.select_cell(2, 3, 5)  # the synthetic candidate carries no image for this path: to be rendered
    note = heatmaps.gallery_tile.image.text()
    assert "when the running job ends" in note and heatmaps.pending_render() is not None
    blocking.release.set()
    qtbot.waitUntil(lambda: heatmaps.pending_render() is None and not window.runner.busy, timeout=10_000)
    assert rendered and not heatmaps.gallery_tile.image.pixmap().isNull()
