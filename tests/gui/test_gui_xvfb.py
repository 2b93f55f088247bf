"""Smoke test in a real X server: the window opens, shows, and the event loop exits cleanly."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
#: Run as a script in the X server (it sits beside this file).
LAYOUT_CHECK = Path(__file__).resolve().with_name("xvfb_layout_check.py")

SCRIPT = """
import sys
from PySide6.QtCore import QTimer
from PySide6.QtGui import QGuiApplication
from forensic_face.gui.app import create_application
from forensic_face.gui.main_window import MainWindow
from forensic_face.engine.config import EngineConfig
app = create_application(sys.argv)
assert QGuiApplication.platformName() == "xcb", QGuiApplication.platformName()
window = MainWindow(config=EngineConfig(device="cpu"))
window.show()
def check():
    ok = window.isVisible() and window.windowHandle() is not None and window.windowHandle().isExposed()
    print("XVFB_WINDOW_OK" if ok else "XVFB_WINDOW_NOT_EXPOSED", flush=True)
    window.close()
    app.exit(0 if ok else 3)
QTimer.singleShot(1500, check)
sys.exit(app.exec())
"""


def test_window_opens_under_xvfb(tmp_path: Path) -> None:
    if shutil.which("xvfb-run") is None:
        pytest.skip("xvfb-run is missing: apt-get install -y xvfb xauth libxcb-icccm4 libxcb-keysyms1 "
                    "libxcb-cursor0 (make setup does this)")
    env = dict(os.environ)
    env.pop("QT_QPA_PLATFORM", None)
    env["QT_QPA_PLATFORM"] = "xcb"
    env["FORENSIC_FACE_CONFIG_DIR"] = str(tmp_path / "config")
    proc = subprocess.run(["xvfb-run", "-a", "-s", "-screen 0 1600x1000x24", sys.executable, "-c", SCRIPT],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-3000:]
    assert "XVFB_WINDOW_OK" in proc.stdout, output[-3000:]


@pytest.mark.parametrize("screen", ["1366x768", "1600x900", "1920x1080"])
def test_key_views_fit_the_window_at_laptop_sizes(tmp_path: Path, screen: str) -> None:
    """The probe original, the hypothesis and the portrait are fully inside the window and the comparison needs
    no horizontal scrolling; names in the candidate list are readable; the window opens inside the screen.
    Geometry is checked against the viewport, not only that pixels were drawn (tests/gui/xvfb_layout_check.py)."""
    if shutil.which("xvfb-run") is None:
        pytest.skip("xvfb-run is missing (make setup installs it)")
    import json

    env = dict(os.environ)
    env["QT_QPA_PLATFORM"] = "xcb"
    env["FORENSIC_FACE_CONFIG_DIR"] = str(tmp_path / "config")
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.run(["xvfb-run", "-a", "-s", f"-screen 0 {screen}x24", sys.executable,
                           str(LAYOUT_CHECK), str(tmp_path)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-3000:]
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("LAYOUT ")), None)
    assert line is not None, output[-3000:]
    layout = json.loads(line[len("LAYOUT "):])
    assert layout["window_inside_screen"], layout
    assert all(layout["views_inside"].values()), layout
    assert not layout["views_clipped"], layout
    assert layout["comparison_hscroll"] == 0, layout
    assert not layout["identity_cut"], layout
    assert layout["table_inside"], layout
    assert all(min(px) >= 31 for px in layout["views_px"].values()), layout
    # With a clip probe listed and a job running, the status bar (time left, progress, Cancel) is on the
    # screen and whole, and the probe list shows more than one row (issue 33).
    assert layout["status_bar_on_screen"], layout
    assert all(layout["status_job_widgets_inside"].values()), layout
    assert layout["time_left"].endswith("left") and not layout["time_left_elided"], layout
    assert layout["list_rows_visible"]["probes"] >= 2, layout
    # Heatmap tick labels do not run into each other (measured from the label boxes pyqtgraph draws).
    assert layout["heatmap_axes"] == 6 and not any(layout["heatmap_tick_overlaps"].values()), layout
