"""The investigator's window (PySide6 + pyqtgraph).

The GUI only ever sees the engine's result dataclasses (numpy images, floats, paths); every call into the
engine runs on a worker thread (:mod:`forensic_face.gui.worker`) so the window never freezes.
"""
