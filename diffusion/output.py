"""Writing a generation: PNG frames, H.264 mp4 at the clip's fps, condition|result side-by-side, run record.

Layout of ``OUT/``: ``frames/<index:06d>.png``, ``video.mp4``, ``side_by_side.mp4``, ``run.json``.
Everything is written into a temporary folder beside ``OUT`` and renamed into place at the end,
so an interrupted run leaves no half-written output; an existing ``OUT`` needs ``force``.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import imageio.v2 as imageio
import numpy as np

from diffusion.registry import Generation
from motion.errors import UserError

VIDEO = "video.mp4"
SIDE_BY_SIDE = "side_by_side.mp4"
RECORD = "run.json"


def write_video(path: Path, frames: np.ndarray, fps: float) -> None:
    """H.264 (libx264, yuv420p) mp4; sizes must be even (ours are multiples of 8)."""
    with imageio.get_writer(path, fps=fps, codec="libx264", pixelformat="yuv420p", macro_block_size=2,
                            ffmpeg_log_level="error") as writer:
        for frame in frames:
            writer.append_data(frame)


def side_by_side(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """(N, H, W, 3) x2 -> (N, H, 2W, 3)."""
    return np.concatenate([left, right], axis=2)


def write_generation(gen: Generation, out: str | os.PathLike, force: bool = False) -> Path:
    """Write ``gen`` to ``out`` (see module doc); return ``out``."""
    out = Path(out)
    if out.exists() and not force:
        raise UserError(out, "already exists; pass --force to overwrite")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        (tmp / "frames").mkdir()
        for index, frame in zip(gen.indices, gen.frames):
            imageio.imwrite(tmp / "frames" / f"{index:06d}.png", frame)
        write_video(tmp / VIDEO, gen.frames, gen.fps)
        write_video(tmp / SIDE_BY_SIDE, side_by_side(gen.condition_preview, gen.frames), gen.fps)
        record = {**gen.record, "fps": gen.fps, "outputs": {"frames": "frames/", "video": VIDEO,
                                                            "side_by_side": SIDE_BY_SIDE}}
        (tmp / RECORD).write_text(json.dumps(record, indent=1, default=str) + "\n")
        if out.exists():
            old = out.with_name(f".{out.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(out, old)
            os.replace(tmp, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out
