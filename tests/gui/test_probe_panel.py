"""The probe panel: one probe per video track, display adjustments that never touch the evidence, and a
question before using an implausible drawn box."""

from __future__ import annotations

import numpy as np
import pytest

from forensic_face.gui.probe_panel import ProbePanel
from forensic_face.gui.probe_records import ProbeRecord


def test_each_track_of_a_video_is_its_own_probe(qtbot, app, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from forensic_face.engine.video import Track, VideoEvidence

    video = VideoEvidence(tmp_path / "clip.mp4", "ab" * 32, 10, 25.0, 100, 320, 180)
    panel = ProbePanel()
    qtbot.addWidget(panel)
    records = [ProbeRecord(path=video.path, video_track=(video, Track(id=k))) for k in (1, 2)]
    panel.add_records(records)
    panel.add_records(records[:1])  # the same track again: not added twice
    assert len(panel.records) == 2


def test_display_adjustments_never_touch_the_evidence(qtbot, app, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from forensic_face.engine.imaging import LoadedImage

    pixels = np.random.default_rng(0).integers(0, 120, (60, 80, 3), dtype=np.uint8)
    original = pixels.copy()
    panel = ProbePanel()
    qtbot.addWidget(panel)
    panel.add_records([ProbeRecord(path=tmp_path / "dark.png",
                                   image=LoadedImage(tmp_path / "dark.png", pixels, "0" * 64, 1, "PNG", "RGB", 1))])
    shown_before = panel.view._pixmap_item.pixmap().toImage().pixelColor(10, 10).red()
    panel.brightness.setValue(60)
    panel.gamma.setValue(50)
    shown_after = panel.view._pixmap_item.pixmap().toImage().pixelColor(10, 10).red()
    assert shown_after > shown_before  # the screen shows it brighter…
    assert np.array_equal(panel.records[0].image.pixels, original)  # …the evidence is as it was
    panel.reset_display()
    assert panel.view._pixmap_item.pixmap().toImage().pixelColor(10, 10).red() == shown_before


@pytest.mark.parametrize("box, why", [((10, 10, 15, 40), "too small"), ((0, 0, 70, 50), "more than half"),
                                      ((40, 5, 70, 35), "no face-like detail")])
def test_implausible_drawn_box_asks_first(qtbot, app, tmp_path, box, why) -> None:  # type: ignore[no-untyped-def]
    from forensic_face.engine.imaging import LoadedImage

    pixels = np.zeros((100, 120, 3), np.uint8)
    pixels[:, :40] = np.random.default_rng(1).integers(0, 255, (100, 40, 3), dtype=np.uint8)  # detail on the left
    panel = ProbePanel()
    qtbot.addWidget(panel)
    panel.add_records([ProbeRecord(path=tmp_path / "p.png",
                                   image=LoadedImage(tmp_path / "p.png", pixels, "0" * 64, 1, "PNG", "RGB", 1))])
    drawn: list[tuple[int, tuple]] = []
    panel.box_drawn.connect(lambda i, b: drawn.append((i, b)))
    panel.view.box_drawn.emit(*map(float, box))
    assert drawn == [] and panel.box_dialog is not None and why in panel.box_dialog.text()
    panel.box_dialog.done(int(panel.box_dialog.StandardButton.No))
    assert drawn == []
    panel.view.box_drawn.emit(*map(float, box))
    panel.box_dialog.done(int(panel.box_dialog.StandardButton.Yes))
    assert drawn == [(0, tuple(map(float, box)))]
    panel.view.box_drawn.emit(5.0, 20.0, 35.0, 48.0)  # a plausible box: no question
    assert drawn[-1] == (0, (5.0, 20.0, 35.0, 48.0)) and panel.box_dialog is None
