"""What the user is told when the machine, not the program, stops a job: a full disk, a read-only file, a
permission, too little memory, a file that is not what its name says, text that is not UTF-8.

:func:`describe_failure` is the one error boundary's rule, used by every CLI command
(:func:`forensic_face.cli.main`) and every window job (:mod:`forensic_face.gui.worker`): an expected failure
becomes one plain line naming the cause and the file; anything else is a bug and keeps its traceback.
:func:`storage_failure` words an SQLite or OS write failure for the file being written (the case store raises it
as a :class:`~forensic_face.engine.errors.CaseStoreError`). :func:`printable` is how user-supplied text (file
names, notes) reaches a terminal.

SQLite errors are recognised by their ``sqlite_errorname`` (Python 3.11), so this module needs no sqlite3.
"""

from __future__ import annotations

import errno
import os
import shutil
import unicodedata
from pathlib import Path

from forensic_face.engine import ForensicFaceError

try:
    import resource
except ImportError:  # Windows: no per-process file size limit to report
    resource = None  # type: ignore[assignment]

#: OS error numbers that mean "no room to write": a full drive, a quota, a file size limit (``ulimit -f``).
_NO_SPACE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})
#: Messages of out-of-memory errors that arrive as RuntimeError (PyTorch's CPU allocator, CUDA).
_OUT_OF_MEMORY_WORDS = ("out of memory", "can't allocate memory", "cannot allocate memory",
                        "defaultcpuallocator", "std::bad_alloc")
#: Below this many free bytes an I/O error on a drive is reported as the drive being full.
_NEARLY_FULL_BYTES = 1 << 20
#: Unicode format characters that reorder how a line is shown (bidirectional overrides and isolates).
_BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f")


def printable(text: object) -> str:
    r"""``text`` as one safe terminal line: C0/C1 control characters (newline, ESC, DEL, ...), line and
    paragraph separators, bidirectional overrides and undecodable bytes of file names (surrogate escapes) are
    written as ``\xNN``/``\uNNNN``, so a file name or a note can neither start a fake output line nor send
    escape sequences to the terminal. Backslashes are kept (Windows paths stay readable).

    >>> print(printable("probe\nsearch #1: \x1b[2Jmatch\u202e.png"))
    probe\nsearch #1: \x1b[2Jmatch\u202e.png
    """
    out = []
    for char in str(text):
        code = ord(char)
        if 0xDC80 <= code <= 0xDCFF:  # a byte of a non-UTF-8 file name (os.fsdecode's surrogateescape)
            out.append(f"\\x{code - 0xDC00:02x}")
        elif unicodedata.category(char) in ("Cc", "Cs", "Zl", "Zp") or char in _BIDI_CONTROLS:
            out.append(repr(char)[1:-1] if code < 0x100 else f"\\u{code:04x}")
        else:
            out.append(char)
    return "".join(out)


def free_space_note(path: str | Path) -> str:
    """Why writing under ``path`` may have failed, as a clause for a message: the drive's free space when it is
    nearly full, a file size limit set for this process, or "" when neither applies."""
    notes = []
    folder = Path(path)
    while not folder.is_dir() and folder != folder.parent:
        folder = folder.parent
    try:
        free = shutil.disk_usage(folder).free
        if free < _NEARLY_FULL_BYTES:
            notes.append(f"the drive holding {folder} has only {free // 1024} KB free")
    except OSError:
        pass
    soft_limit = resource.getrlimit(resource.RLIMIT_FSIZE)[0] if resource is not None else -1
    if resource is not None and soft_limit != resource.RLIM_INFINITY:
        notes.append(f"this process may write files of at most {soft_limit:,} bytes (ulimit -f)")
    return "; ".join(notes)


def _sqlite_error_name(exc: BaseException) -> str:
    return str(getattr(exc, "sqlite_errorname", "") or "")


def storage_failure(exc: BaseException, path: str | Path, action: str) -> str | None:
    """A write to ``path`` failed with ``exc`` (an SQLite or OS error): the message for the user, saying that
    nothing was saved and why; None when ``exc`` is not a storage failure. ``action`` is what was attempted
    ("could not save the change")."""
    name = _sqlite_error_name(exc)
    number = exc.errno if isinstance(exc, OSError) else None
    note = free_space_note(path)
    if name.startswith("SQLITE_FULL") or number in _NO_SPACE_ERRNOS:
        return (f"{path}: {action}: no space left to write ({exc}){'; ' + note if note else ''}; free space on "
                "the drive and try again")
    if name.startswith("SQLITE_READONLY") or number == errno.EROFS:
        return (f"{path}: {action}: the file is read-only ({exc}); make it writable, or work on a copy "
                "(verify --no-record checks a read-only case without writing to it)")
    if name.startswith("SQLITE_IOERR") or name.startswith("SQLITE_CANTOPEN") or number == errno.EIO:
        return (f"{path}: {action}: the drive reported an error ({exc})"
                + (f"; {note}" if note else "; the drive may be full, removed or failing"))
    if name.startswith("SQLITE_BUSY") or name.startswith("SQLITE_LOCKED"):
        return f"{path}: {action}: the case is being written by another program ({exc}); close it and try again"
    if isinstance(exc, PermissionError):
        return f"{path}: {action}: permission denied ({exc.strerror}); ask for write access or work on a copy"
    return None


def is_out_of_memory(exc: BaseException) -> bool:
    """True when memory ran out: MemoryError, the engine's :class:`~forensic_face.engine.batching.OutOfMemory`
    (what ``map_chunks`` raises once even single items do not fit on the GPU), and the RuntimeErrors an
    allocator raises (torch.cuda.OutOfMemoryError among them), on the CPU or the GPU."""
    from forensic_face.engine import OutOfMemory

    if isinstance(exc, (MemoryError, OutOfMemory)):
        return True
    return isinstance(exc, RuntimeError) and any(word in str(exc).lower() for word in _OUT_OF_MEMORY_WORDS)


def describe_failure(exc: BaseException) -> str | None:
    """The one-line message for an expected failure, None for a bug (which keeps its traceback).

    Expected: every :class:`ForensicFaceError` (its message already names the file and the fix); a full
    disk, a read-only or unwritable file or folder, any other OS error on a named file; running out of memory;
    text that is not valid UTF-8 (or not encodable); an SQLite failure that is not a programming error."""
    if isinstance(exc, ForensicFaceError):
        return str(exc)
    if is_out_of_memory(exc):
        detail = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        return (f"not enough memory to finish ({detail}); close other programs, use smaller images or a smaller "
                "batch size (Settings / --batch-size)")
    if isinstance(exc, OSError):
        filename = exc.filename if exc.filename is not None else ""
        where = os.fsdecode(filename) if filename != "" else "a file"
        return storage_failure(exc, where, "cannot be used") or (
            f"{where}: {exc.strerror or exc}" if filename != "" else f"a file operation failed: {exc}")
    if isinstance(exc, UnicodeError):
        return (f"text that is not valid UTF-8 cannot be used here ({exc}); retype it, or rename the file with "
                "UTF-8 characters")
    name = _sqlite_error_name(exc)
    if name and not name.startswith(("SQLITE_ERROR", "SQLITE_MISUSE", "SQLITE_RANGE", "SQLITE_CONSTRAINT")):
        return storage_failure(exc, "the case file", "cannot be used") or f"the case file cannot be used ({exc})"
    return None
