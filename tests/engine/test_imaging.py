"""Evidence-safe loading: every format and colour mode becomes RGB uint8; every bad input has one typed error."""

from __future__ import annotations

import builtins
import hashlib
import io
import os
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from forensic_face.engine.errors import ImageLoadError
from forensic_face.engine.imaging import load_image


def _gradient(h: int = 40, w: int = 60) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([x * 255 // w, y * 255 // h, np.full_like(x, 128)], axis=2).astype(np.uint8)


@pytest.mark.parametrize("suffix,fmt", [(".jpg", "JPEG"), (".png", "PNG"), (".bmp", "BMP"), (".tif", "TIFF"),
                                        (".webp", "WEBP")])
def test_common_formats_load_as_rgb_uint8(tmp_path: Path, suffix: str, fmt: str) -> None:
    path = tmp_path / f"still{suffix}"
    Image.fromarray(_gradient()).save(path, format=fmt)
    image = load_image(path)
    assert image.pixels.dtype == np.uint8
    assert image.pixels.shape == (40, 60, 3)
    assert image.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert image.format == fmt


@pytest.mark.parametrize("mode", ["L", "RGBA", "P", "CMYK", "LA", "1"])
def test_colour_modes_become_rgb(tmp_path: Path, mode: str) -> None:
    path = tmp_path / f"mode_{mode}.{'jpg' if mode == 'CMYK' else 'png'}"
    Image.fromarray(_gradient()).convert(mode).save(path)
    image = load_image(path)
    assert image.pixels.shape == (40, 60, 3)
    assert image.original_mode == mode


def test_16bit_grayscale_tiff_is_scaled_not_clipped(tmp_path: Path) -> None:
    values = (np.linspace(0, 65535, 40 * 60).reshape(40, 60)).astype(np.uint16)
    path = tmp_path / "gray16.tif"
    Image.fromarray(values).save(path)
    pixels = load_image(path).pixels
    assert pixels[0, 0, 0] == 0 and pixels[-1, -1, 0] == 255
    assert 100 < pixels[20, 30, 0] < 156  # mid-range stays mid-range (clipping would give 255)


def test_16bit_colour_tiff(tmp_path: Path) -> None:
    rgb16 = (_gradient().astype(np.uint16) * 257)
    path = tmp_path / "rgb16.tif"
    cv2.imwrite(str(path), rgb16[:, :, ::-1])
    pixels = load_image(path).pixels
    assert pixels.shape == (40, 60, 3)
    np.testing.assert_allclose(pixels.astype(int), _gradient().astype(int), atol=1)


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    path = tmp_path / "rotated.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    Image.fromarray(_gradient(40, 60)).save(path, exif=exif)
    image = load_image(path)
    assert image.exif_orientation == 6
    assert image.pixels.shape == (60, 40, 3)


def test_unicode_and_spaces_in_path(tmp_path: Path) -> None:
    folder = tmp_path / "Überwachung Kamera 3" / "visage été"
    folder.mkdir(parents=True)
    path = folder / "probe 1 – 顔.png"
    Image.fromarray(_gradient()).save(path)
    assert load_image(path).pixels.shape == (40, 60, 3)


def test_original_is_only_opened_for_reading(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "evidence.jpg"
    Image.fromarray(_gradient()).save(path)
    before = (path.read_bytes(), path.stat().st_mtime_ns)
    modes: list[str] = []
    real_open, real_os_open = builtins.open, os.open

    def spy(file, mode="r", *args, **kwargs):  # type: ignore[no-untyped-def]
        if Path(str(file)) == path:
            modes.append(mode)
        return real_open(file, mode, *args, **kwargs)

    def os_spy(file, flags, *args, **kwargs):  # type: ignore[no-untyped-def]
        if Path(str(file)) == path:
            modes.append("rb" if flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND) == 0
                         else f"flags {flags:#o}")
        return real_os_open(file, flags, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", spy)
    monkeypatch.setattr(os, "open", os_spy)
    load_image(path)
    monkeypatch.undo()
    assert modes and all(m == "rb" for m in modes)
    assert (path.read_bytes(), path.stat().st_mtime_ns) == before


def _expect_error(path: Path, fragment: str, **kwargs: int) -> ImageLoadError:
    with pytest.raises(ImageLoadError) as info:
        load_image(path, **kwargs)
    assert info.value.path == path
    assert str(path) in str(info.value)
    assert fragment in str(info.value)
    return info.value


def test_missing_file(tmp_path: Path) -> None:
    _expect_error(tmp_path / "nope.jpg", "does not exist")


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.jpg"
    path.write_bytes(b"")
    _expect_error(path, "empty")


def test_folder_instead_of_file(tmp_path: Path) -> None:
    _expect_error(tmp_path, "folder")


def test_not_an_image(tmp_path: Path) -> None:
    path = tmp_path / "notes.png"
    path.write_text("this is a case note, not a picture")
    _expect_error(path, "not an image")


def test_corrupt_image(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    noise = np.random.default_rng(1).integers(0, 255, (200, 200, 3), dtype=np.uint8)
    Image.fromarray(noise).save(buffer, format="PNG")
    data = bytearray(buffer.getvalue())
    middle = len(data) // 2
    data[middle:middle + 300] = bytes(300)  # zero out part of the compressed stream
    path = tmp_path / "corrupt.png"
    path.write_bytes(bytes(data))
    _expect_error(path, "corrupt")


def test_truncated_jpeg(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (300, 300, 3), dtype=np.uint8)).save(buffer, "JPEG")
    path = tmp_path / "truncated.jpg"
    path.write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    _expect_error(path, "truncated")


def test_decompression_bomb_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "large.png"
    Image.new("L", (2000, 2000)).save(path)
    error = _expect_error(path, "pixels", max_pixels=1_000_000)
    assert "decompression bomb" in str(error) or "limit" in str(error)


def test_permission_denied(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "locked.jpg"
    Image.fromarray(_gradient()).save(path)
    real_open, real_os_open = builtins.open, os.open

    def deny(file, mode="r", *args, **kwargs):  # type: ignore[no-untyped-def]
        if Path(str(file)) == path:
            raise PermissionError(13, "Permission denied", str(file))
        return real_open(file, mode, *args, **kwargs)

    def os_deny(file, flags, *args, **kwargs):  # type: ignore[no-untyped-def]
        if Path(str(file)) == path:
            raise PermissionError(13, "Permission denied", str(file))
        return real_os_open(file, flags, *args, **kwargs)

    # Tests run as root in CI, where chmod 000 does not stop reads, so the OS refusal is simulated.
    monkeypatch.setattr(builtins, "open", deny)
    monkeypatch.setattr(os, "open", os_deny)
    _expect_error(path, "permission denied")
