"""``avatarcine bench motion``: throughput of the motion layer on the real AMASS sample.

Figures (frames per second of the 601-frame, 120 fps SMPL+H clip): reading it, retargeting it
onto the default Anny avatar, resampling it to 30 and 60 fps, and skinning the Anny mesh with it.
Baking the avatar is timed once (it includes Anny's model build, cached on disk by the anny
package after the first run).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

DEFAULT_SAMPLE = Path(__file__).resolve().parents[2] / "shared" / "data" / "amass_smplh_sample.npz"


def _best_of(fn, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def bench_motion(sample: str | os.PathLike | None = None, repeats: int = 3) -> dict[str, float]:
    """Throughput figures (frames/s, and seconds for the bake) on an AMASS file."""
    from motion.bodies import bake_avatar
    from motion.errors import UserError
    from motion.io import read_motion
    from motion.ops import resample
    from motion.retarget import retarget

    sample = Path(sample or os.environ.get("AVATARCINE_AMASS_SAMPLE", DEFAULT_SAMPLE))
    if not sample.is_file():
        raise UserError(sample, "AMASS sample not found (set AVATARCINE_AMASS_SAMPLE or pass the file)")
    start = time.perf_counter()
    asset = bake_avatar("anny")
    bake_s = time.perf_counter() - start
    motion = read_motion(sample)
    n = motion.n_frames
    retargeted = retarget(motion, asset)
    skin_frames = retargeted.replace(rotations=retargeted.rotations[:60],
                                     root_translation=retargeted.root_translation[:60])
    return {
        "frames": float(n),
        "bake_anny_s": bake_s,
        "read_amass_fps": n / _best_of(lambda: read_motion(sample), repeats),
        "retarget_smplh_to_anny_fps": n / _best_of(lambda: retarget(motion, asset), repeats),
        "resample_120_to_30_fps": n / _best_of(lambda: resample(motion, 30.0), repeats),
        "resample_120_to_60_fps": n / _best_of(lambda: resample(motion, 60.0), repeats),
        "skin_anny_fps": 60 / _best_of(lambda: asset.skin(skin_frames), repeats),
    }


def print_bench_motion(args) -> None:
    """CLI entry: print the figures one per line."""
    for key, value in bench_motion(getattr(args, "sample", None)).items():
        print(f"{key:28s} {value:12.1f}")
