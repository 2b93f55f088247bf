"""Images for the screen: numpy to QImage, nearest-neighbour enlargement."""

from __future__ import annotations

import numpy as np

from forensic_face.gui.images import enlarge_nearest, to_qimage


def test_image_conversion_and_nearest_enlargement() -> None:
    pixels = np.zeros((3, 5, 3), np.uint8)
    pixels[1, 2] = (255, 0, 0)
    big = enlarge_nearest(pixels, 4)
    assert big.shape == (12, 20, 3)
    assert (big[4:8, 8:12] == (255, 0, 0)).all() and big[3, 8].sum() == 0
    image = to_qimage(pixels)
    assert (image.width(), image.height()) == (5, 3)
    assert image.pixelColor(2, 1).red() == 255 and image.pixelColor(1, 1).red() == 0
