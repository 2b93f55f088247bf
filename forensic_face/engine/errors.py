"""Typed errors. Every error a user can meet says which file, what is wrong and what to do."""

from __future__ import annotations

from pathlib import Path


class ForensicFaceError(Exception):
    """Base class of every error forensic_face raises on purpose."""


class ImageLoadError(ForensicFaceError):
    """An image could not be loaded. Carries the path and a plain-language reason."""

    def __init__(self, path: str | Path, reason: str, hint: str = "") -> None:
        self.path = Path(path)
        self.reason = reason
        self.hint = hint
        message = f"{self.path}: {reason}"
        if hint:
            message += f" ({hint})"
        super().__init__(message)


class NoFaceDetected(ForensicFaceError):
    """The detector found no face. The user can draw a box instead."""

    def __init__(self, source: str, hint: str = "draw the face box by hand") -> None:
        self.source = source
        super().__init__(f"{source}: no face detected ({hint})")


class ShapeError(ForensicFaceError, ValueError):
    """A tensor does not have the documented shape."""


class WeightsIntegrityError(ForensicFaceError):
    """A model file is missing, corrupt, or its SHA-256 differs from the manifest."""


class ModelFileError(ForensicFaceError):
    """A user-supplied model file cannot be read in the expected format."""


class Cancelled(ForensicFaceError):
    """The user cancelled a long job; raised between chunks of work."""

    def __init__(self, message: str = "cancelled by the user") -> None:
        super().__init__(message)


class GalleryError(ForensicFaceError):
    """A gallery folder cannot be enrolled (missing, empty, no usable faces)."""


class CaseStoreError(ForensicFaceError):
    """The case store is unreadable, inconsistent or fails verification."""


class ConfigError(ForensicFaceError, ValueError):
    """A setting has an invalid value."""


class OutputPathError(ForensicFaceError):
    """A file the program was asked to write would overwrite evidence, a case, another file or a folder, or its
    folder cannot be written."""


class SealError(ForensicFaceError):
    """A case seal or an examiner's key cannot be made or read."""
