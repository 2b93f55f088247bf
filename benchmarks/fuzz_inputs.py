"""Fuzz the CLI with hostile input and count how each input ended: accepted, a clean error (exit 1 or 2 with a
message, no traceback) or a traceback (a bug).

Usage:

    .venv/bin/python benchmarks/fuzz_inputs.py [--stills 300] [--videos 3] [--seed 34]

Inputs (all seeded, from ``tests/hostile_inputs.py``, the generators tests/test_faults.py uses on a smaller
scale): mutated PNG/JPEG stills (truncated, bytes flipped, runs zeroed, wrong extension, huge declared size,
empty), valid stills under hostile names (markup, escape sequences, newlines, bidirectional overrides, a leading
'-'), and MP4/AVI clips truncated or with bytes flipped. Each still goes through ``case add-evidence`` (load and
hash) and, all together, ``detect --json``; each clip through ``search-video``. The CLI runs in this process,
so a traceback is an exception escaping ``main``; its type and the input are listed.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
import tempfile
import time
import traceback
from collections import Counter
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from hostile_inputs import hostile_name_images, hostile_videos, mutated_images  # noqa: E402

from forensic_face.cli import main  # noqa: E402
from forensic_face.store import CaseStore  # noqa: E402


def run_main(args: list[str]) -> tuple[str, str, str]:
    """(outcome, stdout, everything printed): outcome is ``ok``, ``clean error``, ``traceback`` or ``raw control
    character`` (user-supplied text reached the terminal unescaped)."""
    out, err = io.StringIO(), io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main(args)
            except SystemExit as exc:
                code = int(exc.code or 0)
    except Exception:  # noqa: BLE001 - counting escapes is the point of this run
        return "traceback", "", traceback.format_exc(limit=3)
    text = out.getvalue() + err.getvalue()
    if "Traceback" in text:
        return "traceback", out.getvalue(), text
    if any(ord(c) < 32 and c not in "\n" or c in "\x7f\u202e" for c in text):
        return "raw control character", out.getvalue(), text
    return ("ok" if code == 0 else "clean error"), out.getvalue(), text


def main_fuzz(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stills", type=int, default=300, help="mutated stills")
    parser.add_argument("--videos", type=int, default=3, help="rounds of damaged clips (10 clips each)")
    parser.add_argument("--seed", type=int, default=34)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    counts: Counter[str] = Counter()
    problems: list[str] = []
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        case = root / "fuzz.ffcase"
        CaseStore.create(case, "FUZZ", "fuzz run", "fuzzer").close()
        stills = mutated_images(root / "stills", rng, args.stills) + hostile_name_images(root / "names", rng)
        for path in stills:
            outcome, _, text = run_main(["case", "add-evidence", str(case), "--", str(path)])
            counts[f"add-evidence: {outcome}"] += 1
            if outcome not in ("ok", "clean error"):
                problems.append(f"add-evidence {path.name!r}: {outcome}\n{text}")
        outcome, out, text = run_main(["detect", "--json", "--device", "cpu", "--", *map(str, stills)])
        counts[f"detect ({len(stills)} stills in one run): {outcome}"] += 1
        if outcome in ("ok", "clean error"):
            records = json.loads(out)
            counts["detect: stills refused with a message"] += sum(1 for r in records if r["error"])
        else:
            problems.append(f"detect: {outcome}\n{text}")
        for round_number in range(args.videos):
            for video in hostile_videos(root / f"videos{round_number}", rng):
                outcome, _, text = run_main(["search-video", "--gallery", str(root / "no-gallery"), "--device",
                                                "cpu", "--stride", "3", "--", str(video)])
                counts[f"search-video: {outcome}"] += 1
                if outcome not in ("ok", "clean error"):
                    problems.append(f"search-video {video.name!r}: {outcome}\n{text}")
    tried = len(stills) + 1 + 10 * args.videos
    print(f"inputs tried: {tried} ({len(stills)} stills, {10 * args.videos} clips) in "
          f"{time.perf_counter() - started:.0f} s")
    for key in sorted(counts):
        print(f"  {key}: {counts[key]}")
    tracebacks = sum(n for k, n in counts.items() if not k.endswith((": ok", ": clean error", "a message")))
    print(f"tracebacks or raw control characters: {tracebacks}")
    for problem in problems:
        print(problem)
    return 1 if tracebacks else 0


if __name__ == "__main__":
    sys.exit(main_fuzz())
