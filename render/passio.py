"""Picking the planes of a float EXR pass by the names its meta.json entry gives (numpy only).

A pass entry names its EXR channels in order with ``exr_channels`` (render/meta.py; flow writes
``["R", "G"]`` = (dx, dy), depth ``["Y"]``). Channel names are never guessed by sorting: sorted
``R, G`` is ``G, R``, which would swap dx and dy. A file with a single channel needs no name.
"""

from __future__ import annotations

import numpy as np

from motion.errors import UserError


def pick_channels(channels: dict[str, np.ndarray], names: list[str] | None, where: object) -> np.ndarray:
    """(H, W, C) float32 of ``names`` in order (a name matches a full channel name or its last dotted
    part); without ``names``, the only channel. UserError naming ``where`` otherwise."""
    if not names:
        if len(channels) != 1:
            raise UserError(where, f"pass entry lacks exr_channels to pick among channels {sorted(channels)}")
        names = list(channels)
    by_short = {n.rsplit(".", 1)[-1]: n for n in channels}
    picked = []
    for name in names:
        full = name if name in channels else by_short.get(name)
        if full is None:
            raise UserError(where, f"has no channel {name!r} (channels: {', '.join(sorted(channels))})")
        picked.append(np.asarray(channels[full], dtype=np.float32))
    return np.stack(picked, axis=-1)
