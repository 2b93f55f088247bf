"""Seeded hostile inputs for the fault tests (tests/test_faults.py) and the longer fuzz run
(benchmarks/fuzz_inputs.py): mutated stills, truncated and damaged videos, file names made to fool a terminal."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

#: File names meant to fool whoever reads the output: markup, terminal escape sequences, a newline that forges
#: an output line, a bidirectional override, a leading '-' that looks like an option.
HOSTILE_NAMES = (
    "<b>bold<i>&amp;&lt;.png",
    "\x1b]0;owned\x07\x1b[31mred.png",
    "evil\nprobe.png: face 1: box [1.0, 2.0, 3.0, 4.0] score 0.999.png",
    "tab\there\rcarriage.png",
    "gpj.\u202eexe.png",
    "-x.png",
)


def face_like_image(rng: np.random.Generator, size: int = 64) -> np.ndarray:
    """Smooth random RGB pixels (compress like a photo, unlike noise)."""
    coarse = rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)
    return np.asarray(Image.fromarray(coarse).resize((size, size), Image.Resampling.BICUBIC))


def encoded(pixels: np.ndarray, fmt: str) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format=fmt)
    return buffer.getvalue()


def png_declaring(width: int, height: int) -> bytes:
    """A PNG whose header (with a valid CRC) declares ``width`` x ``height`` but holds one tiny data chunk."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\x00" * 16))
            + chunk(b"IEND", b""))


def mutated_images(folder: Path, rng: np.random.Generator, count: int) -> list[Path]:
    """``count`` damaged stills, each a seeded mutation of a valid PNG or JPEG: truncated, bytes flipped, a run of
    bytes zeroed, the wrong extension, an impossible declared size, empty."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for k in range(count):
        fmt = ("PNG", "JPEG")[k % 2]
        data = bytearray(encoded(face_like_image(rng), fmt))
        kind = ("truncate", "flip", "zero-run", "wrong-extension", "huge", "empty")[k % 6]
        suffix = ".png" if fmt == "PNG" else ".jpg"
        if kind == "truncate":
            data = data[:int(rng.integers(1, len(data)))]
        elif kind == "flip":
            for position in rng.integers(0, len(data), int(rng.integers(1, 16))):
                data[position] ^= int(rng.integers(1, 256))
        elif kind == "zero-run":
            start, length = int(rng.integers(0, len(data) - 1)), int(rng.integers(1, 64))
            data[start:start + length] = bytes(len(data[start:start + length]))
        elif kind == "wrong-extension":
            suffix = ".jpg" if fmt == "PNG" else ".png"
        elif kind == "huge":
            data = bytearray(png_declaring(int(rng.integers(20_000, 70_000)), int(rng.integers(20_000, 70_000))))
            suffix = ".png"
        else:
            data = bytearray()
        path = folder / f"{k:03d}-{kind}{suffix}"
        path.write_bytes(bytes(data))
        paths.append(path)
    return paths


def hostile_name_images(folder: Path, rng: np.random.Generator) -> list[Path]:
    """A valid PNG under each of :data:`HOSTILE_NAMES`."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name in HOSTILE_NAMES:
        path = folder / name
        path.write_bytes(encoded(face_like_image(rng), "PNG"))
        paths.append(path)
    return paths


def hostile_videos(folder: Path, rng: np.random.Generator, num_frames: int = 12) -> list[Path]:
    """Short MP4 (mp4v) and AVI (MJPG) clips written by cv2.VideoWriter, then truncated at 5, 50 and 95 % and
    with bytes flipped in the middle, plus an empty file and a still image named .mp4."""
    import cv2

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for suffix, codec in ((".mp4", "mp4v"), (".avi", "MJPG")):
        source = folder / f"clip{suffix}"
        writer = cv2.VideoWriter(str(source), cv2.VideoWriter_fourcc(*codec), 10.0, (64, 64))
        for _ in range(num_frames):
            writer.write(np.ascontiguousarray(face_like_image(rng)[:, :, ::-1]))
        writer.release()
        data = source.read_bytes()
        for percent in (5, 50, 95):
            path = folder / f"truncated-{percent}{suffix}"
            path.write_bytes(data[:max(1, len(data) * percent // 100)])
            paths.append(path)
        flipped = bytearray(data)
        for position in rng.integers(len(data) // 4, 3 * len(data) // 4, 32):
            flipped[position] ^= 0xFF
        path = folder / f"flipped{suffix}"
        path.write_bytes(bytes(flipped))
        paths.append(path)
    (folder / "empty.mp4").write_bytes(b"")
    (folder / "still.mp4").write_bytes(encoded(face_like_image(rng), "PNG"))
    return paths + [folder / "empty.mp4", folder / "still.mp4"]
