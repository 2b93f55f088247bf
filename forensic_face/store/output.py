"""Files the program writes for a case (reports, seals, keys): never over evidence, a case or a folder.

:func:`check_output_path` refuses, with which file, what is wrong and what to do, a target that is a registered
evidence or gallery file of the case, the case file or its SQLite companions (``-wal``, ``-shm``, ``-journal``),
any other forensic_face case file, a folder or special file, or an existing file unless the caller was told to
replace it. :func:`atomic_output` writes beside the target under a hidden temporary name, removes that file on
any failure (SIGTERM and Ctrl+C included) and renames it into place in one step, with the ordinary file mode
(0666 minus the umask, e.g. 0644) rather than the 0600 of :func:`tempfile.mkstemp`.
"""

from __future__ import annotations

import os
import signal
import stat
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

from forensic_face.engine import OutputPathError
from forensic_face.paths import atomic_write

if TYPE_CHECKING:
    from forensic_face.store.case_store import CaseStore

#: Files SQLite keeps beside a database while it is open or was not closed cleanly.
SQLITE_COMPANION_SUFFIXES = ("-wal", "-shm", "-journal")
_SQLITE_HEADER = b"SQLite format 3\x00"


def _is_case_file(path: Path) -> bool:
    """A forensic_face case: an SQLite file whose application id (bytes 68-71 of the header) is ``FFCE``."""
    from forensic_face.store.schema import APPLICATION_ID

    try:
        with open(path, "rb") as handle:
            header = handle.read(72)
    except OSError:
        return False
    return header[:16] == _SQLITE_HEADER and int.from_bytes(header[68:72], "big") == APPLICATION_ID


def protected_files(store: CaseStore) -> list[tuple[Path, str]]:
    """What an output of this case must never replace, each with what it is (for the message)."""
    out = [(store.path, "the case file itself")]
    out += [(Path(f"{store.path}{suffix}"), f"the case file's SQLite {suffix[1:]} file")
            for suffix in SQLITE_COMPANION_SUFFIXES]
    out += [(item.path, f"evidence #{item.id} ({item.role}) of this case") for item in store.evidence_items()]
    for gallery in store.galleries():
        for identity, path, _ in gallery.images:
            out.append((store.locate_recorded_file(path)[0], f"a gallery image of this case ({identity})"))
    return out


def _same_file(a: Path, b: Path) -> bool:
    if os.path.abspath(a) == os.path.abspath(b) or a.resolve() == b.resolve():
        return True
    try:
        return os.path.samefile(a, b)  # hard links and symbolic links to the same file
    except OSError:
        return False


def check_output_path(target: str | Path, store: CaseStore | None = None, force: bool = False,
                      what: str = "output") -> Path:
    """``target`` as an absolute path if writing ``what`` there destroys nothing; else :class:`OutputPathError`.

    ``force``: replace an existing ordinary file (never evidence, a case, a folder or a special file).
    """
    path = Path(os.path.abspath(target))
    if path.is_dir():
        raise OutputPathError(f"{path} is a folder; give the {what} a file name, e.g. {path / 'report.pdf'}")
    if store is not None:
        for protected, description in protected_files(store):
            if _same_file(path, protected):
                raise OutputPathError(f"{path} is {description}; writing the {what} there would destroy it. "
                                      "Choose another file name")
    for suffix in SQLITE_COMPANION_SUFFIXES:
        if path.name.endswith(suffix) and _is_case_file(path.with_name(path.name[: -len(suffix)])):
            raise OutputPathError(f"{path} belongs to the case file {path.name[: -len(suffix)]} (its SQLite "
                                  f"{suffix[1:]} file); choose another file name")
    if path.exists() or path.is_symlink():
        if _is_case_file(path):
            raise OutputPathError(f"{path} is a forensic_face case file; it is never overwritten, not even with "
                                  "--force. Choose another file name")
        mode = path.stat().st_mode if path.exists() else 0
        if path.exists() and not stat.S_ISREG(mode):
            raise OutputPathError(f"{path} exists and is not an ordinary file (a device, pipe or socket); choose "
                                  "another file name")
        if not force:
            raise OutputPathError(f"{path} already exists; choose another file name, or pass --force to replace it")
    parent = path.parent
    if parent.exists() and not parent.is_dir():
        raise OutputPathError(f"cannot write {path}: {parent} is a file, not a folder; choose another location")
    return path


@contextmanager
def _removed_on_sigterm() -> Iterator[None]:
    """Turn SIGTERM into SystemExit while a temporary file exists, so the cleanup below runs (main thread only:
    Python delivers signals there; the window's worker threads are stopped by their own cancel flag)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def terminate(signum: int, frame: FrameType | None) -> None:
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextmanager
def atomic_output(target: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``target`` to write; on success rename it to ``target`` in one step, on any
    failure or interruption (SIGTERM too) remove it (:func:`forensic_face.paths.atomic_write`), with a message
    naming the file when the folder cannot be written or the rename fails. Call :func:`check_output_path`
    first."""
    stage = "create"
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with _removed_on_sigterm(), atomic_write(target) as temp:
            stage = "write"
            yield temp
            stage = "rename"
    except OSError as exc:
        if stage == "create":
            raise OutputPathError(f"cannot write {target}: the folder {target.parent} cannot be written to "
                                  f"({exc.strerror or exc}); choose a folder you can write to") from None
        if stage == "rename":
            raise OutputPathError(f"cannot write {target} ({exc.strerror or exc}); choose another file name "
                                  "or folder") from None
        raise


def write_new_file(target: Path, data: bytes, mode: int = 0o666) -> None:
    """Create ``target`` with ``data``; never replaces anything (``O_EXCL``). ``mode`` before the umask, except
    that a private mode (no group or other bits) is enforced exactly."""
    try:
        handle = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    except FileExistsError:
        raise OutputPathError(f"{target} already exists and is never overwritten; choose another file name") from None
    except OSError as exc:
        raise OutputPathError(f"cannot create {target} ({exc.strerror or exc}); choose a folder you can write "
                              "to") from None
    try:
        if mode & 0o077 == 0:
            os.fchmod(handle, mode)
        with os.fdopen(handle, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
    except BaseException:
        target.unlink(missing_ok=True)
        raise
