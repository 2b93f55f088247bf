"""Entry point of the frozen desktop build (PyInstaller). One program, two executables in one folder:

* ``forensic-face-gui`` (windowed) opens the investigator's window; ``forensic-face-gui --smoke-test`` builds the
  window with the saved settings, runs the Qt event loop once and exits 0, so an installation can be checked
  without a person (``QT_QPA_PLATFORM=offscreen`` where there is no display);
* ``forensic-face`` (console) is the command line (``forensic_face.cli``).

The executable's own name picks which; both share the bundled Python, libraries, weights and resources.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

GUI_SUFFIX = "-gui"
SMOKE_TEST_FLAG = "--smoke-test"


def gui_smoke_test() -> int:
    """Open the main window exactly as ``forensic-face-gui`` does, let Qt paint it once, close it."""
    import logging

    from PySide6.QtCore import QTimer

    from forensic_face.gui.app import create_application, startup_config
    from forensic_face.gui.main_window import MainWindow

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    app = create_application([sys.argv[0]])
    config, problem = startup_config()
    window = MainWindow(config=config)
    window.show()
    QTimer.singleShot(500, window.close)
    QTimer.singleShot(600, app.quit)
    code = int(app.exec())
    print(f"smoke test: window {window.windowTitle()!r} opened and closed; settings problem: {problem or 'none'}",
          file=sys.stderr)
    return code


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if Path(sys.executable).stem.endswith(GUI_SUFFIX):
        if SMOKE_TEST_FLAG in args:
            return gui_smoke_test()
        from forensic_face.gui.app import main as gui_main

        return gui_main([sys.argv[0], *args])
    from forensic_face.cli import main as cli_main

    return cli_main(args)


if __name__ == "__main__":
    sys.exit(main())
