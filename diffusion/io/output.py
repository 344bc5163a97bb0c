"""A generation and how it is written: PNG frames, H.264 mp4, condition|result side by side, run record.

Layout of ``OUT/``: ``frames/<index:06d>.png``, ``video.mp4``, ``side_by_side.mp4``, ``run.json``.
Everything is written into a temporary folder beside ``OUT`` (``.OUT.~<pid>~<random>``, the naming
of ``motion.fileio``) and renamed into place at the end, so an interrupted run leaves no half-written
output; the next write removes such temporaries whose process is gone and says so. An existing
``OUT`` is replaced only with ``force``; ``run.json`` is strict JSON (no NaN). Callers hold
``motion.fileio.output_lock(OUT)`` around the whole run (``avatarcine generate`` does).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import imageio.v2 as imageio
import numpy as np

from motion.errors import UserError
from motion.fileio import sweep_stale_temps

VIDEO = "video.mp4"
SIDE_BY_SIDE = "side_by_side.mp4"
RECORD = "run.json"


@dataclass
class Generation:
    """What a method returns: frames (N, H, W, 3) uint8, a picture of the condition per frame,
    the video's fps, the source frame indices and a record of every setting/model/seed used."""

    frames: np.ndarray
    condition_preview: np.ndarray
    fps: float
    indices: list[int]
    record: dict = field(default_factory=dict)
    latents: object = None  # final (N, C, h, w) latents on CPU, for chaining and checks
    side_by_side: bool = True


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
    for path in sweep_stale_temps(out.parent):
        print(f"avatarcine: removed {path.name}, left by an interrupted run", file=sys.stderr)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.~{os.getpid()}~", dir=out.parent))
    try:
        (tmp / "frames").mkdir()
        for index, frame in zip(gen.indices, gen.frames):
            imageio.imwrite(tmp / "frames" / f"{index:06d}.png", frame)
        write_video(tmp / VIDEO, gen.frames, gen.fps)
        outputs = {"frames": "frames/", "video": VIDEO}
        if gen.side_by_side:
            write_video(tmp / SIDE_BY_SIDE, side_by_side(gen.condition_preview, gen.frames), gen.fps)
            outputs["side_by_side"] = SIDE_BY_SIDE
        record = {**gen.record, "fps": gen.fps, "outputs": outputs}
        (tmp / RECORD).write_text(json.dumps(record, indent=1, default=str, allow_nan=False) + "\n")
        os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes 0700; give the folder the usual permissions
        if out.exists():
            if not force:
                raise UserError(out, "appeared while this run was writing; kept it (pass --force to overwrite)")
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}.~{os.getpid()}~", dir=out.parent))
            os.rmdir(old)
            os.replace(out, old)
            os.replace(tmp, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
