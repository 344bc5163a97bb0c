"""PNG writing in plain numpy + zlib, so both the ``bpy`` wheel and a stock Blender write
byte-identical files (no colour management, no dithering: the array is the file)."""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path

import numpy as np

from motion.fileio import atomic_path

_COLOUR_TYPE = {1: 0, 2: 4, 3: 2, 4: 6}      # channels -> grey, grey+alpha, RGB, RGBA


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def encode_png(image: np.ndarray) -> bytes:
    """(H, W) or (H, W, C) uint8/uint16 array -> PNG bytes (filter 0, zlib level 6)."""
    image = np.asarray(image)
    if image.dtype not in (np.uint8, np.uint16):
        raise TypeError(f"PNG needs uint8 or uint16 pixels, got {image.dtype}")
    if image.ndim == 2:
        image = image[..., None]
    H, W, C = image.shape
    depth = 8 * image.dtype.itemsize
    rows = np.ascontiguousarray(image.astype(image.dtype.newbyteorder(">"))).reshape(H, -1).view(np.uint8)
    raw = np.concatenate([np.zeros((H, 1), np.uint8), rows], 1).tobytes()
    header = struct.pack(">IIBBBBB", W, H, depth, _COLOUR_TYPE[C], 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", zlib.compress(raw, 6))
            + _chunk(b"IEND", b""))


def write_png(path: str | os.PathLike, image: np.ndarray, force: bool = True) -> Path:
    """Write ``image`` as PNG atomically (temp file + rename)."""
    data = encode_png(image)
    with atomic_path(path, force) as tmp:
        tmp.write_bytes(data)
    return Path(path)
