"""The two callbacks every long-running stage accepts: progress reports and cancellation checks."""

from __future__ import annotations

from collections.abc import Callable

from forensic_face.engine.errors import Cancelled

#: ``progress(done, total, message)``.
ProgressCallback = Callable[[int, int, str], None]
#: ``should_cancel()`` is polled between chunks of work; True stops the stage with :class:`Cancelled`.
CancelCallback = Callable[[], bool]
#: What stages accept: a callback or None (report nothing / never cancel).
Progress = ProgressCallback | None
ShouldCancel = CancelCallback | None


def check_cancel(should_cancel: ShouldCancel, message: str | None = None) -> None:
    """Raise :class:`Cancelled` (with ``message`` when given) when the caller asked to stop."""
    if should_cancel is not None and should_cancel():
        raise Cancelled(*(() if message is None else (message,)))
