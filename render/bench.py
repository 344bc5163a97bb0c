"""``avatarcine bench render``: frames per second of all condition passes for one actor, our way vs
the way peers do it, in one run on the same scene.

Peer way (Champ's Blender scripts): Cycles, one sample, a view layer per pass group (shaded mesh,
depth, normal, semantic, mask) so one ``render()`` per frame renders the scene once per layer. Our way: the same
data from one view layer in one render (``render.engines``), mesh and skeleton derived in numpy.
Both produce the passes of ``render.api`` from the EXR; the benchmark checks they agree.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import numpy as np

_GROUPS = {"mesh": (), "depth": ("use_pass_z",), "normal": ("use_pass_normal",), "semantic": (), "mask": ("use_pass_object_index",)}


def _peer_layers(scene) -> None:
    """Replace our single layer by one view layer per pass group, each a new layer with Blender's
    defaults (Combined on) plus its pass, as a peer script creates them."""
    from render.engines import FLAT_LAYER, SEMANTIC_AOV
    base = scene.view_layers[FLAT_LAYER]
    for name, props in _GROUPS.items():
        layer = scene.view_layers.new(name)
        for prop in props:
            setattr(layer, prop, True)
        if name == "semantic":
            aov = layer.aovs.add()
            aov.name, aov.type = SEMANTIC_AOV, "COLOR"
    base.use = False


def _time_frames(scene, frames, tmp: Path) -> tuple[float, dict]:
    import bpy

    from render.exr import read_exr
    scene.render.filepath = str(tmp)
    start = time.perf_counter()
    last = {}
    for f in frames:
        scene.frame_set(int(f))
        bpy.ops.render.render(write_still=True)
        last = read_exr(tmp)
    return time.perf_counter() - start, last


def run_benchmark(resolution: int, n_frames: int, avatar_path: str | None, output: str | None,
                  verbose: bool = False) -> dict:
    """Time both ways; Blender's own output goes to ``logs/blender.log`` beside ``output`` (or the
    working folder) unless ``verbose``."""
    from motion.asset import AvatarAsset
    from render.blender_log import LOG, blender_output_to
    from render.api import _Clip
    from render.stage import build_stage
    from render.engines import FLAT_LAYER

    if avatar_path:
        asset = AvatarAsset.load(avatar_path)
    else:
        from motion.bodies import bake_avatar
        asset = bake_avatar("anny")
    with tempfile.TemporaryDirectory(prefix="avatarcine_bench_") as tmp:
        tmp = Path(tmp)
        motion = asset.rest_motion(n_frames, 30.0)
        asset.save(tmp / "a.npz"), motion.save(tmp / "m.npz")
        scene_cfg = {"fps": 30, "resolution": [resolution, resolution], "camera": {"type": "orbit", "degrees": 60},
                     "actors": [{"name": "actor", "avatar": "a.npz", "motion": "m.npz"}]}
        from render.scene_config import validate_scene
        clip = _Clip(validate_scene(scene_cfg), tmp)
        stage = build_stage(clip.actors, clip.camera, clip.frames, clip.fps, resolution, resolution, clip.floor)
        for obj in stage.rgb_only:
            obj.hide_render = True
        log = None if verbose else (Path(output).parent if output else Path.cwd()) / LOG
        with blender_output_to(log):
            ours, ours_ch = _time_frames(stage.scene, clip.frames, tmp / "ours.exr")
            _peer_layers(stage.scene)
            peer, peer_ch = _time_frames(stage.scene, clip.frames, tmp / "peer.exr")
    same = all(np.array_equal(ours_ch[f"{FLAT_LAYER}.{k}"], peer_ch[f"{g}.{k}"]) for g, k in
               (("depth", "Depth.Z"), ("mask", "Object Index.X"), ("semantic", "semantic.R")))
    result = {"resolution": resolution, "frames": n_frames, "vertices": int(len(asset.rest_vertices)),
              "ours_fps": n_frames / ours, "peer_fps": n_frames / peer, "speedup": peer / ours,
              "identical_passes": bool(same)}
    print(json.dumps(result, indent=1))
    if output:
        from motion.fileio import save_json
        save_json(output, result)
    return result
