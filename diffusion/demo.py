"""``avatarcine demo``: the whole pipeline with defaults on a fresh machine, in a few minutes on a CPU.

text -> motion (``motion.generate.generate_motion``) -> the default avatar rendered with an orbit
camera (``render.api.render_scene``) -> the ControlNet method -> ``OUT/generation/video.mp4``.

Until a trained embedded model exists, the generator is the tiny random-weight model
(``diffusion/tiny.py``): the run exercises every stage and writes real files, but the frames are
not photoreal; the output says so. With real weights use ``avatarcine generate`` on the passes.
"""

from __future__ import annotations

import os
from pathlib import Path

from motion.errors import UserError

TEXT = "walk forward, then wave"
SECONDS, FPS, SIZE = 2.5, 10.0, 128
PROMPT = "a person in a blue jacket walking in a sunny park, photo"
PASSES = ["skeleton", "depth", "normal", "mask"]


def demo_scene(motion_file: str) -> dict:
    """The scene the demo renders (render/scene_config.py schema)."""
    return {
        "fps": FPS, "resolution": [SIZE, SIZE], "frames": {"seconds": SECONDS},
        "actors": [{"name": "actor", "body": "anny", "motion": motion_file}],
        "camera": {"type": "orbit", "degrees": 90},
        "passes": PASSES,
    }


def run_demo(out: str | os.PathLike, force: bool = False, verbose: bool = False) -> Path:
    """Run the demo into ``out``; print and return the video's path. ``verbose`` shows Blender's own
    output (otherwise in ``OUT/passes/logs/blender.log``)."""
    from diffusion.io.output import VIDEO, write_generation
    from diffusion.io.passes import PassesFolder
    from diffusion.methods.controlnet import METHOD
    from motion.generate import generate_motion
    from render.api import render_scene

    out = Path(out)
    if out.exists() and not force:
        raise UserError(out, "already exists; pass --force to overwrite")
    out.mkdir(parents=True, exist_ok=True)
    print(f"[1/3] motion: {TEXT!r}, {SECONDS} s at {FPS:g} fps")
    motion_file = generate_motion(TEXT, seconds=SECONDS, fps=FPS).save(out / "motion.npz", force=True)
    print("[2/3] rendering the default avatar (anny) with an orbit camera: " + ", ".join(PASSES))
    passes_dir = render_scene(demo_scene(str(Path(motion_file).resolve())), out / "passes", force=True,
                              verbose=verbose)
    print("[3/3] generating with the ControlNet method on the TINY random-weight model "
          "(no trained embedded model yet: the frames show the pipeline working, not photoreal video)")
    settings = METHOD.settings(
        prompt=PROMPT, negative_prompt="blurry, deformed", model="tiny", steps=4, cfg=5.0, seed=0,
        controlnet=["openpose", "stack"], controlnet_scale=[1.0, 0.5],
        attention="window", window=8, overlap=2, shared_noise=1.0, background="first",
    )
    gen = METHOD.run(PassesFolder.open(passes_dir), settings, METHOD.load(settings))
    result = write_generation(gen, out / "generation", force=True)
    video = (result / VIDEO).resolve()
    print(f"passes: {Path(passes_dir).resolve()}\nvideo:  {video}\nside by side: {video.parent / 'side_by_side.mp4'}")
    return video
