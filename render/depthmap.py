"""Depth PNGs for ControlNet-style consumers: near is bright, normalised once per clip.

Per-frame normalisation makes the brightness of a still body pump as other things move; so the
range is the min/max foreground depth over ALL frames of the clip (two passes over the float depth:
:class:`DepthRange` accumulates, :func:`encode_depth` maps). Encoding (``bits`` 8 or 16,
``top = 2**bits - 1``), for planar camera depth z in metres:

    value = round(1 + (top - 1) * (far - z) / (far - near))   foreground (near -> top, far -> 1)
    value = 0                                                  background (no surface)

so the foreground mask survives (value > 0) and ``z = far - (value - 1) * (far - near) / (top - 1)``
inverts it (:func:`decode_depth`). Background is NaN, inf, <= 0 or >= ``BACKGROUND_DEPTH``
(Blender's Z pass writes 1e10 where no surface is hit).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from motion.errors import UserError
from render.passio import pick_channels

BACKGROUND_DEPTH = 1e9


def foreground(z: np.ndarray) -> np.ndarray:
    """Mask of pixels that hold a surface depth."""
    z = np.asarray(z)
    return np.isfinite(z) & (z > 0) & (z < BACKGROUND_DEPTH)


class DepthRange:
    """Running min/max of foreground depth over a clip."""

    def __init__(self) -> None:
        self.near = np.inf
        self.far = -np.inf

    def update(self, z: np.ndarray) -> "DepthRange":
        fg = np.asarray(z, dtype=np.float64)[foreground(z)]
        if fg.size:
            self.near = min(self.near, float(fg.min()))
            self.far = max(self.far, float(fg.max()))
        return self

    @property
    def empty(self) -> bool:
        return self.near > self.far


def depth_range(depths: Iterable[np.ndarray]) -> tuple[float, float]:
    """(near, far) over all frames; UserError when no frame has any foreground."""
    r = DepthRange()
    for z in depths:
        r.update(z)
    if r.empty:
        raise UserError("depth", "no foreground pixel in any frame (nothing in front of the camera?)")
    return r.near, r.far


def meta_depth_range(meta: dict, name: str) -> tuple[float, float] | None:
    """(near, far) that meta.json gives for depth pass ``name``: its own entry's, else those of the clip's
    depth PNG pass (kind ``depth``: render/ encodes it with the clip's range); None when it has none."""
    passes = meta["passes"]
    for info in [passes[name]] + [p for p in passes.values() if p.get("kind") == "depth"]:
        if info.get("near") is not None and info.get("far") is not None:
            return float(info["near"]), float(info["far"])
    return None


def encode_depth(z: np.ndarray, near: float, far: float, bits: int = 8) -> np.ndarray:
    """Planar depth (H, W) -> uint8/uint16 (H, W) by the module's encoding."""
    if bits not in (8, 16):
        raise ValueError(f"bits must be 8 or 16, not {bits}")
    top = 2 ** bits - 1
    z = np.asarray(z, dtype=np.float64)
    fg = foreground(z)
    span = far - near
    t = np.clip((far - z) / span, 0.0, 1.0) if span > 0 else np.ones_like(z)
    value = np.where(fg, np.rint(1 + (top - 1) * np.where(fg, t, 0.0)), 0)
    return value.astype(np.uint8 if bits == 8 else np.uint16)


def decode_depth(value: np.ndarray, near: float, far: float, bits: int = 8) -> np.ndarray:
    """Inverse of :func:`encode_depth` (to quantisation): metres, NaN on background."""
    top = 2 ** bits - 1
    v = np.asarray(value, dtype=np.float64)
    return np.where(v > 0, far - (v - 1) * (far - near) / (top - 1), np.nan)


def encoding_sentence(bits: int) -> str:
    """The meta.json ``encoding`` of a depth PNG pass."""
    top = 2 ** bits - 1
    return (f"value = round(1 + {top - 1} * (far - z) / (far - near)) for planar camera depth z in metres "
            f"(near -> {top}, far -> 1), 0 = background; near/far are the min/max foreground depth over "
            f"the whole clip")


def depth_channel(channels: dict[str, np.ndarray], channel: str | None, where: object) -> np.ndarray:
    """The depth plane of an EXR: ``channel`` if named, else the only channel or the one called Z/Depth."""
    if channel is None and len(channels) > 1:
        named = [n for n in channels if n.split(".")[-1] in ("Z", "Depth", "depth")]
        if len(named) != 1:
            raise UserError(where, f"cannot tell which channel is depth among {sorted(channels)}; name it")
        channel = named[0]
    return pick_channels(channels, [channel] if channel else None, where)[..., 0]


def write_depth_pngs(exr_paths: Sequence[str | os.PathLike], png_paths: Sequence[str | os.PathLike],
                     bits: int = 8, channel: str | None = None, force: bool = False) -> dict:
    """Read float depth EXRs twice (range, then encode; one frame in memory at a time) and write the
    PNGs atomically. Returns the meta extras ``{"near", "far", "bits"}`` of the pass."""
    from render.exr import read_exr
    from render.png import write_png

    if len(exr_paths) != len(png_paths):
        raise ValueError("one PNG path per EXR path")
    for p in png_paths:
        if Path(p).exists() and not force:
            raise UserError(p, "already exists; pass --force to overwrite")
    near, far = depth_range(depth_channel(read_exr(p), channel, p) for p in exr_paths)
    for src, dst in zip(exr_paths, png_paths):
        write_png(dst, encode_depth(depth_channel(read_exr(src), channel, src), near, far, bits), force=True)
    return {"near": near, "far": far, "bits": bits}
