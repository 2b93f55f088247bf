"""Entry point of the ``forensic-face-gui`` console script."""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence

from PySide6.QtCore import QCoreApplication
from PySide6.QtGui import QColor, QIcon, QPalette
from PySide6.QtWidgets import QApplication

import forensic_face
from forensic_face.engine import EngineConfig
from forensic_face.faults import describe_failure
from forensic_face.paths import RESOURCES_DIR, keep_matplotlib_in_cache
from forensic_face.settings import load_settings

log = logging.getLogger(__name__)

STYLE_PATH = RESOURCES_DIR / "styles" / "forensic_face.qss"
ICON_PATH = RESOURCES_DIR / "icons" / "forensic_face.svg"


def dark_palette() -> QPalette:
    palette = QPalette()
    colours = {
        QPalette.ColorRole.Window: "#262a30", QPalette.ColorRole.WindowText: "#e6e8eb",
        QPalette.ColorRole.Base: "#1e2227", QPalette.ColorRole.AlternateBase: "#2a2f36",
        QPalette.ColorRole.ToolTipBase: "#30353c", QPalette.ColorRole.ToolTipText: "#e6e8eb",
        QPalette.ColorRole.Text: "#e6e8eb", QPalette.ColorRole.Button: "#30353c",
        QPalette.ColorRole.ButtonText: "#e6e8eb", QPalette.ColorRole.BrightText: "#ff5c5c",
        QPalette.ColorRole.Highlight: "#2d6cdf", QPalette.ColorRole.HighlightedText: "#ffffff",
        QPalette.ColorRole.Link: "#5aa0ff", QPalette.ColorRole.PlaceholderText: "#8a9099",
    }
    for role, colour in colours.items():
        palette.setColor(role, QColor(colour))
    for role in (QPalette.ColorRole.Text, QPalette.ColorRole.ButtonText, QPalette.ColorRole.WindowText):
        palette.setColor(QPalette.ColorGroup.Disabled, role, QColor("#6c727a"))
    return palette


def create_application(argv: Sequence[str] | None = None) -> QCoreApplication:
    """The QApplication with our name, style sheet and icon (reuses a running instance, e.g. under pytest-qt)."""
    app = QApplication.instance()
    if app is None:
        app = QApplication(list(argv if argv is not None else sys.argv))
    QCoreApplication.setOrganizationName("forensic_face")
    QCoreApplication.setApplicationName("forensic_face")
    QCoreApplication.setApplicationVersion(forensic_face.__version__)
    if isinstance(app, QApplication):
        app.setStyle("Fusion")
        app.setPalette(dark_palette())
        if STYLE_PATH.is_file():
            app.setStyleSheet(STYLE_PATH.read_text(encoding="utf-8"))
        if ICON_PATH.is_file():
            app.setWindowIcon(QIcon(str(ICON_PATH)))
    return app


def startup_config() -> tuple[EngineConfig, str]:
    """The saved engine settings, or the defaults plus a message when the saved ones cannot be used."""
    try:
        return load_settings(), ""
    except Exception as exc:  # noqa: BLE001 - a bad settings file or folder must not stop the window opening
        message = describe_failure(exc)
        if message is None:
            raise
        log.error("ignoring unreadable settings: %s", message)
        return EngineConfig(), f"Saved settings could not be used ({message}); the defaults are in use."


def main(argv: Sequence[str] | None = None) -> int:
    """Open the investigator's window; returns the process exit code."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    keep_matplotlib_in_cache()  # the report dialog draws with matplotlib
    app = create_application(argv)
    from forensic_face.gui.main_window import MainWindow

    config, problem = startup_config()
    window = MainWindow(config=config)
    if problem:
        window.show_message(problem, "warning")
    window.show()
    return int(app.exec())


if __name__ == "__main__":
    sys.exit(main())
