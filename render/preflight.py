"""Checks a render passes before Blender starts (numpy only): the camera sees the actors from
outside them, and one frame's buffers fit in memory and on disk.

- Camera inside an actor's body in any frame: refused (the passes would show the inside of the mesh).
- No actor in view in any frame: refused (every pass would be empty). In view in only some frames:
  a warning, which the render prints and records in ``meta.json`` (``warnings``).
- Buffers: one frame's flat render, the EXR that carries it and our decoded arrays, estimated from
  the resolution and the passes, against the memory available and the free disk space.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np

from motion.errors import UserError
from render import pass_table
from render.meta import frame_ranges

NEAR = 0.01                      # the camera's clip_start (render.stage)
# float32 channels of the flat render (render.engines): Depth 1, Normal 3, Object Index 1, semantic AOV 3
# Bytes per pixel per float channel: Cycles' render buffer and Blender's render result, the EXR file
# and our decoded copy of it, and the float64 arrays the passes are computed with.
BYTES_PER_CHANNEL = 4 * 4 + 8 * 3


def winding_number(point: np.ndarray, vertices: np.ndarray, faces: np.ndarray) -> float:
    """Generalised winding number of ``point`` w.r.t. a triangle mesh (about 1 inside a closed
    surface, 0 outside; sum of signed solid angles over 4 pi, Van Oosterom & Strackee 1983)."""
    a, b, c = (vertices[faces[:, k]] - point for k in range(3))
    la, lb, lc = (np.linalg.norm(x, axis=1) for x in (a, b, c))
    det = np.einsum("ij,ij->i", a, np.cross(b, c))
    div = (la * lb * lc + np.einsum("ij,ij->i", a, b) * lc + np.einsum("ij,ij->i", a, c) * lb
           + np.einsum("ij,ij->i", b, c) * la)
    return float(np.sum(2.0 * np.arctan2(det, div)) / (4.0 * np.pi))


def camera_inside(eyes: np.ndarray, posed: dict[str, np.ndarray], faces: dict[str, np.ndarray],
                  frames: np.ndarray) -> None:
    """Refuse a camera inside an actor: eyes (T, 3); posed name -> (T, V, 3); faces name -> (F, 3)."""
    for name, verts in posed.items():
        lo, hi = verts.min(1), verts.max(1)
        near = np.flatnonzero(np.all((eyes >= lo) & (eyes <= hi), axis=1))
        for t in near:
            if abs(winding_number(eyes[t], verts[t], faces[name])) > 0.5:
                raise UserError("camera", f"is inside actor {name!r} at frame {int(frames[t])}; move it out "
                                          "(distance, position or radius)")


def frames_without_actors(posed: list[np.ndarray], K: np.ndarray, E: np.ndarray, width: int, height: int,
                          frames: np.ndarray) -> list[str]:
    """Refuse a camera that sees no actor in any frame; a warning (one line) naming the frames where
    it sees none. ``posed``: each actor's vertices (T, V, 3); K (T, 3, 3), E (T, 4, 4)."""
    seen = np.zeros(len(frames), bool)
    for verts in posed:
        cam = np.einsum("tij,tnj->tni", E[:, :3, :3], verts) + E[:, None, :3, 3]
        z = cam[..., 2]
        with np.errstate(divide="ignore", invalid="ignore"):
            u = K[:, None, 0, 0] * cam[..., 0] / z + K[:, None, 0, 2]
            v = K[:, None, 1, 1] * cam[..., 1] / z + K[:, None, 1, 2]
        seen |= ((z > NEAR) & (u >= 0) & (u < width) & (v >= 0) & (v < height)).any(1)
    if not seen.any():
        raise UserError("camera", "sees no actor in any frame (every pass would be empty); aim it at the "
                                  "actors (look_at, target, azimuth_deg) or leave its placement to the framing")
    if seen.all():
        return []
    return [f"camera: no actor in view in frames {frame_ranges(frames[~seen])} (empty passes there)"]


def available_memory() -> int | None:
    """Bytes of memory this process may still use (MemAvailable, capped by a cgroup v2 limit), or None."""
    try:
        with open("/proc/meminfo") as f:
            free = next(int(line.split()[1]) * 1024 for line in f if line.startswith("MemAvailable:"))
    except (OSError, StopIteration, ValueError):
        return None
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        if limit != "max":
            free = min(free, int(limit) - int(Path("/sys/fs/cgroup/memory.current").read_text()))
    except (OSError, ValueError):
        pass
    return free


def _size(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.1f} {unit}"
        n /= 1000


def check_buffers(width: int, height: int, passes: list[str], out: Path, temp: Path | None = None) -> None:
    """Refuse a resolution whose one frame cannot fit: render buffers in memory, the flat EXR in the
    temp folder, the frame's files in the output folder (its nearest existing parent)."""
    pixels = float(width) * float(height)
    channels = pass_table.FLAT_CHANNELS + sum(pass_table.get(p).render_channels for p in passes)
    need = pixels * channels * BYTES_PER_CHANNEL
    free = available_memory()
    if free is not None and need > free:
        raise UserError("resolution", f"{width}x{height} needs about {_size(need)} of memory per frame "
                                      f"({', '.join(passes)}); {_size(free)} is available")
    place = next(p for p in [out.absolute(), *out.absolute().parents] if p.exists())
    for folder, need in ((temp, pixels * channels * 4),
                         (place, pixels * sum(o.bytes_per_pixel for o in pass_table.outputs(passes)))):
        if folder is not None and os.path.isdir(folder):
            free = shutil.disk_usage(folder).free
            if need > free:
                raise UserError("resolution", f"{width}x{height} needs about {_size(need)} of disk per frame in "
                                              f"{folder}; {_size(free)} is free")
