"""Writing measured tables into the documentation: a block between two marker comments is replaced in place,
so a tool can regenerate its own table without touching the prose around it."""

from __future__ import annotations

import re
from pathlib import Path


def replace_marked_block(doc: Path, marker: str, text: str) -> None:
    """Replace the text between ``<!-- {marker}:begin -->`` and ``<!-- {marker}:end -->`` in ``doc`` (the block is
    appended when absent; the file is created when missing).

    >>> import tempfile
    >>> path = Path(tempfile.mkdtemp()) / "doc.md"
    >>> replace_marked_block(path, "t", "one"); replace_marked_block(path, "t", "two")
    >>> path.read_text().count("two"), "one" in path.read_text()
    (1, False)
    """
    begin, end = f"<!-- {marker}:begin -->", f"<!-- {marker}:end -->"
    content = doc.read_text(encoding="utf-8") if doc.is_file() else ""
    block = f"{begin}\n{text}\n{end}"
    if begin in content and end in content:
        content = re.sub(re.escape(begin) + ".*?" + re.escape(end), lambda _m: block, content, flags=re.S)
    else:
        content = content.rstrip() + ("\n\n" if content.strip() else "") + block + "\n"
    doc.parent.mkdir(parents=True, exist_ok=True)
    doc.write_text(content, encoding="utf-8")
