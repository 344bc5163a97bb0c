"""``avatarcine demo``: the whole pipeline with what ships in the package, in under a minute on a CPU.

text -> motion (``motion.generate.generate_motion``) -> the shipped default avatar rendered with an
orbit camera (``render.api.render_scene``: the ``mesh`` pass Make-Your-Anchor reads, ``mask``, and
``plate``, the scene without the avatar) -> Make-Your-Anchor on the embedded model
(``diffusion.embedded``: trained on our renders of that avatar, 128 px), composited onto the plate
(``--background plate``: the model cannot tell the scene from the body's mesh; the plate is the
scene, rendered) -> ``OUT/generation/video.mp4`` and ``side_by_side.mp4`` (mesh | frames).

Sampling: DDIM ``STEPS`` steps, no classifier-free guidance (the embedded model was trained without
reference dropout, so its unconditional branch is untrained), the ControlNet at the scale it was
trained at (1), windows of 16 overlapping by 4 with the same initial noise for every frame.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from motion.errors import UserError

TEXT = "walk forward, then wave"
SECONDS, FPS, SIZE = 2.5, 10.0, 128
PASSES = ["mesh", "mask", "plate"]
STEPS, SEED = 10, 0   # 10 DDIM steps: within 1/255 on average of 20 on the demo clip, half the time


def demo_scene(motion_file: str) -> dict:
    """The scene the demo renders (render/scene_config.py schema)."""
    return {
        "fps": FPS, "resolution": [SIZE, SIZE], "frames": {"seconds": SECONDS},
        "actors": [{"name": "actor", "body": "anny", "motion": motion_file}],
        "camera": {"type": "orbit", "degrees": 90},
        "passes": PASSES,
    }


def demo_settings(model: str = "embedded"):
    """The Make-Your-Anchor settings of the demo (see the module doc)."""
    from diffusion.methods.make_your_anchor import METHOD
    from diffusion.sampling.settings import PLATE

    return METHOD.settings(model=model, steps=STEPS, cfg=1.0, seed=SEED, controlnet_scale=1.0, condition=("mesh",),
                           window=16, overlap=4, shared_noise=1.0, background=PLATE)


def run_demo(out: str | os.PathLike, force: bool = False, verbose: bool = False) -> Path:
    """Run the demo into ``out``; print and return the video's path. ``verbose`` shows Blender's own
    output (otherwise in ``OUT/passes/logs/blender.log``)."""
    from diffusion.io.output import VIDEO, write_generation
    from diffusion.io.passes import PassesFolder
    from diffusion.methods.make_your_anchor import METHOD
    from motion.generate import generate_motion
    from render.api import render_scene

    out = Path(out)
    if out.exists() and not force:
        raise UserError(out, "already exists; pass --force to overwrite")
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    elapsed = lambda: f"{time.perf_counter() - start:.1f} s"  # noqa: E731
    print(f"[1/3] motion: {TEXT!r}, {SECONDS} s at {FPS:g} fps")
    motion_file = generate_motion(TEXT, seconds=SECONDS, fps=FPS).save(out / "motion.npz", force=True)
    print(f"[2/3] rendering the default avatar with an orbit camera: {', '.join(PASSES)} ({elapsed()})")
    passes_dir = render_scene(demo_scene(str(Path(motion_file).resolve())), out / "passes", force=True,
                              verbose=verbose)
    print(f"[3/3] Make-Your-Anchor on the embedded model (trained on renders of the default avatar) ({elapsed()})")
    settings = demo_settings()
    gen = METHOD.run(PassesFolder.open(passes_dir), settings, METHOD.load(settings))
    result = write_generation(gen, out / "generation", force=True)
    video = (result / VIDEO).resolve()
    print(f"done in {elapsed()}\npasses: {Path(passes_dir).resolve()}\nvideo:  {video}\n"
          f"side by side: {video.parent / 'side_by_side.mp4'}")
    return video
