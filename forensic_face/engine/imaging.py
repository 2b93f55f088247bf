"""Evidence-safe image loading.

The original file is opened once, read-only, as bytes: the SHA-256 is computed over exactly those bytes and the
pixels are decoded from the in-memory copy, so what was hashed is what was analysed and the file is never written.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import stat
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from forensic_face.engine.errors import ImageLoadError

# One implementation of a file's SHA-256 (chunked, read-only) for evidence and model weights alike.
from forensic_face.engine.weights import sha256_of as sha256_file  # noqa: F401  (re-exported)

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

#: Default cap on decoded pixels (width x height): about a 100 megapixel still. Larger files are refused
#: as possible decompression bombs; callers may raise the cap.
DEFAULT_MAX_PIXELS = 100_000_000

#: Peak memory of detecting faces on a still, in bytes per decoded pixel, above what the loaded models take:
#: measured with ``ru_maxrss`` around ``load_image`` + ``Engine.detect`` on the CPU (random-noise JPEGs;
#: 1500x1500: 166 B/px; the issue's 5000x5000 peaked at 3.8 GB, 152 B/px), rounded up. A still whose declared
#: size needs more than the memory available is refused before it is decoded (:func:`check_memory_for`).
DETECTION_PEAK_BYTES_PER_PIXEL = 170

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif", ".jfif", ".pgm", ".ppm"})


@dataclass(frozen=True)
class LoadedImage:
    """An evidence still: RGB uint8 pixels ``(H, W, 3)`` plus what identifies the original file."""

    path: Path
    pixels: np.ndarray
    sha256: str
    size_bytes: int
    format: str
    original_mode: str
    exif_orientation: int

    @property
    def width(self) -> int:
        return int(self.pixels.shape[1])

    @property
    def height(self) -> int:
        return int(self.pixels.shape[0])


def is_image_path(path: str | Path) -> bool:
    """True when the file name has a still-image suffix we load."""
    return Path(path).suffix.lower() in IMAGE_SUFFIXES


def _file_kind(mode: int) -> str:
    for test, kind in ((stat.S_ISFIFO, "a named pipe (FIFO)"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return kind
    return "not a regular file"


def open_regular_file(path: Path) -> BinaryIO:
    """Open ``path`` read-only, refusing anything that is not a regular file once links are followed (a FIFO
    would block for ever, ``/dev/zero`` never ends) with an :class:`ImageLoadError`. The file is opened without
    blocking and checked by its open descriptor, so it cannot be swapped between the check and the read."""
    if path.is_dir():
        raise ImageLoadError(path, "is a folder, not an image file", "choose an image file")
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            shown = f"{path} -> {path.resolve()}" if path.is_symlink() else str(path)
            raise ImageLoadError(shown, f"is {_file_kind(mode)}, not a regular file",
                                 "copy the evidence into a regular file and open that")
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_original_bytes(path: str | Path) -> bytes:
    """Read a file's bytes read-only, turning every OS failure into an :class:`ImageLoadError`."""
    path = Path(path)
    try:
        with open_regular_file(path) as fh:
            data = fh.read()
    except FileNotFoundError:
        raise ImageLoadError(path, "file does not exist", "check the path or whether the drive is mounted") from None
    except PermissionError:
        raise ImageLoadError(path, "permission denied when reading", "ask for read access to the file") from None
    except IsADirectoryError:
        raise ImageLoadError(path, "is a folder, not an image file", "choose an image file") from None
    except OSError as exc:
        raise ImageLoadError(path, f"cannot be read ({exc.strerror or exc})") from None
    if not data:
        raise ImageLoadError(path, "file is empty (0 bytes)", "the copy may have failed; re-export the evidence")
    return data


def _to_rgb_uint8(image: Image.Image) -> np.ndarray:
    """Convert any Pillow mode to RGB uint8, scaling high bit depths instead of clipping them."""
    mode = image.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        arr = np.asarray(image).astype(np.float64)
        peak = 65535.0 if mode.startswith("I;16") else max(float(arr.max()), 1.0)
        if mode == "F" and arr.max() <= 1.0:
            peak = 1.0
        gray = np.clip(arr / peak * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return np.repeat(gray[:, :, None], 3, axis=2)
    if mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in image.info):
        # Composite on white: investigators expect what a viewer shows, not black where alpha is 0.
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return np.asarray(Image.alpha_composite(background, rgba).convert("RGB"))
    return np.asarray(image.convert("RGB"))


def _decode_16bit_colour(data: bytes, path: Path) -> np.ndarray | None:
    """Pillow cannot open 16-bit-per-channel colour TIFF/PNG; OpenCV can. Returns RGB uint8 or None."""
    import cv2

    buffer = np.frombuffer(data, dtype=np.uint8)
    arr = cv2.imdecode(buffer, cv2.IMREAD_UNCHANGED | cv2.IMREAD_ANYDEPTH | cv2.IMREAD_ANYCOLOR)
    if arr is None:
        return None
    if arr.dtype == np.uint16:
        arr = (arr.astype(np.float32) / 257.0 + 0.5).astype(np.uint8)
    elif arr.dtype != np.uint8:
        arr = np.clip(arr.astype(np.float32) * (255.0 if arr.max() <= 1.0 else 1.0), 0, 255).astype(np.uint8)
    if arr.ndim == 2:
        return np.repeat(arr[:, :, None], 3, axis=2)
    if arr.shape[2] == 4:
        arr = arr[:, :, :3]
    return np.ascontiguousarray(arr[:, :, ::-1])


def decode_image(data: bytes, path: str | Path, max_pixels: int = DEFAULT_MAX_PIXELS) -> tuple[np.ndarray, str, str, int]:
    """Decode bytes to RGB uint8 with EXIF orientation applied. Returns (pixels, format, mode, orientation)."""
    path = Path(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
    except UnidentifiedImageError:
        raw = _decode_16bit_colour(data, path)
        if raw is not None:
            return raw, "unknown", "16-bit", 1
        raise ImageLoadError(path, "is not an image or is in an unsupported format",
                             "supported: JPEG, PNG, BMP, TIFF, WebP") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageLoadError(path, "declares too many pixels (possible decompression bomb)",
                             f"the limit is {max_pixels:,} pixels; raise it in settings if the file is genuine") from None
    except OSError as exc:
        raise ImageLoadError(path, f"cannot be decoded ({exc})", "the file may be corrupt") from None

    width, height = image.size
    if width * height > max_pixels:
        raise ImageLoadError(path, f"declares {width}x{height} = {width * height:,} pixels, more than the limit",
                             f"the limit is {max_pixels:,} pixels; raise it in settings if the file is genuine")
    check_memory_for(path, width, height)
    fmt = image.format or "unknown"
    mode = image.mode
    orientation = 1
    try:
        # Decode everything first: a damaged stream must fail here, before EXIF parsing touches it.
        image.load()
        try:
            orientation = int(image.getexif().get(0x0112, 1) or 1)
        except Exception:  # noqa: BLE001 - a broken EXIF block must not hide the pixels; orientation stays 1
            log.warning("%s: unreadable EXIF block, orientation not applied", path)
            orientation = 1
        image = ImageOps.exif_transpose(image) if orientation != 1 else image
        pixels = _to_rgb_uint8(image)
    except (OSError, SyntaxError, ValueError) as exc:
        message = str(exc)
        if "truncated" in message.lower():
            raise ImageLoadError(path, "file is truncated (incomplete download or copy)",
                                 "obtain a complete copy of the original") from None
        # Only a layout Pillow cannot represent (16-bit colour) goes to OpenCV; a damaged stream must not,
        # because OpenCV would return the partly decoded pixels without complaint.
        unsupported = any(word in message.lower() for word in ("mode", "not supported", "unknown raw"))
        raw = _decode_16bit_colour(data, path) if unsupported and fmt in ("TIFF", "PNG") else None
        if raw is not None:
            return raw, fmt, mode, orientation
        raise ImageLoadError(path, f"is corrupt and cannot be decoded ({message})",
                             "obtain another copy of the original") from None
    if pixels.ndim != 3 or pixels.shape[2] != 3 or pixels.shape[0] == 0 or pixels.shape[1] == 0:
        raise ImageLoadError(path, f"decoded to an unusable array of shape {pixels.shape}")
    return np.ascontiguousarray(pixels), fmt, mode, orientation


def available_memory_bytes() -> int | None:
    """Memory this process can still allocate: the least of the system's available memory
    (``/proc/meminfo`` MemAvailable), the room left under an address-space limit (``ulimit -v``, against this
    process's VmSize) and a cgroup (container) memory limit; None where none of these can be read."""
    candidates: list[int] = []

    def read_kib(file: str, key: str) -> int | None:
        try:
            with open(file, encoding="ascii") as fh:
                for line in fh:
                    if line.startswith(key):
                        return int(line.split()[1]) * 1024
        except (OSError, ValueError, IndexError):
            pass
        return None

    available = read_kib("/proc/meminfo", "MemAvailable:")
    if available is not None:
        candidates.append(available)
    try:
        import resource

        soft_limit = resource.getrlimit(resource.RLIMIT_AS)[0]
        used = read_kib("/proc/self/status", "VmSize:")
        if soft_limit != resource.RLIM_INFINITY and used is not None:
            candidates.append(max(0, soft_limit - used))
    except (ImportError, OSError, ValueError):
        pass
    try:
        limit_text = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        if limit_text != "max":
            current = int(Path("/sys/fs/cgroup/memory.current").read_text().strip())
            candidates.append(max(0, int(limit_text) - current))
    except (OSError, ValueError):
        pass
    return min(candidates) if candidates else None


def check_memory_for(path: Path, width: int, height: int) -> None:
    """Refuse, before decoding, a still whose declared size needs more memory to decode and search for faces
    (:data:`DETECTION_PEAK_BYTES_PER_PIXEL`) than this process has available (:func:`available_memory_bytes`)."""
    needed = width * height * DETECTION_PEAK_BYTES_PER_PIXEL
    available = available_memory_bytes()
    if available is not None and needed > available:
        raise ImageLoadError(
            path, f"is {width}x{height} ({width * height / 1e6:.1f} megapixels): finding faces in it needs about "
                  f"{needed / 2**30:.1f} GiB of memory, only {available / 2**30:.1f} GiB is available",
            "close other programs or use a machine with more memory; or crop the region of the face into a copy "
            "(keep the original) and search the copy")


def load_image(path: str | Path, max_pixels: int = DEFAULT_MAX_PIXELS) -> LoadedImage:
    """Load an evidence still as RGB uint8 with EXIF orientation applied, and the SHA-256 of its original bytes.

    Raises :class:`ImageLoadError` with the path and a plain-language reason for missing, unreadable, empty,
    corrupt, truncated, non-image and oversized files.
    """
    path = Path(os.fspath(path))
    data = read_original_bytes(path)
    sha = hashlib.sha256(data).hexdigest()
    pixels, fmt, mode, orientation = decode_image(data, path, max_pixels=max_pixels)
    return LoadedImage(path=path, pixels=pixels, sha256=sha, size_bytes=len(data), format=fmt,
                       original_mode=mode, exif_orientation=orientation)


def to_tensor(pixels: np.ndarray, device: torch.device) -> torch.Tensor:
    """uint8 ``(H,W,3)`` -> float ``(1,3,H,W)`` in [0,1] on ``device``."""
    import torch

    return torch.from_numpy(np.ascontiguousarray(pixels)).to(device).permute(2, 0, 1)[None].float().div_(255.0)


def to_uint8(image: torch.Tensor) -> np.ndarray:
    """float ``(3,H,W)`` in [0,1] -> uint8 ``(H,W,3)``."""
    return (image.detach().clamp(0, 1).mul(255).round().byte().permute(1, 2, 0).cpu().numpy()).copy()
