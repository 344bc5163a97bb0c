"""Reading image files (PNG, or any format OpenCV reads) into numpy arrays, for the readers of a
passes folder (previews here, diffusion and evaluation downstream).

OpenCV is imported when a file is read, not with this module: a stock Blender (numpy + bpy) imports
``render`` freely and never reads images back (its previews are skipped, see ``render.previews``).
"""

from __future__ import annotations

import os

import numpy as np

from motion.errors import UserError


def read_image(path: str | os.PathLike, what: str = "image") -> np.ndarray:
    """(H, W, C) image file (PNG, or any format OpenCV reads) in RGB/RGBA channel order, dtype as
    stored (uint8/uint16), C = 1, 3 or 4; UserError if missing or unreadable."""
    import cv2

    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise UserError(path, f"missing or unreadable {what}")
    if image.ndim == 2:
        return image[:, :, None]
    if image.shape[2] >= 3:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2RGBA if image.shape[2] == 4 else cv2.COLOR_BGR2RGB)
    return image


def read_rgb(path: str | os.PathLike, what: str = "image") -> np.ndarray:
    """(H, W, 3) float64 RGB in [0, 1] of an 8/16-bit grey, RGB or RGBA image (alpha dropped)."""
    image = read_image(path, what)
    scale = 65535.0 if image.dtype == np.uint16 else 255.0
    rgb = image[..., :3] if image.shape[2] >= 3 else np.repeat(image[..., :1], 3, axis=2)
    return rgb.astype(np.float64) / scale
