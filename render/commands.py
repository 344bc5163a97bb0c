"""``avatarcine render SCENE -o OUT`` and ``avatarcine bench render``."""

from __future__ import annotations

import argparse
from pathlib import Path

from motion.cluster import add_arguments
from motion.errors import UserError, number_arg


def _frames(text: str) -> tuple[int, int]:
    try:
        a, b = (int(v) for v in text.split(":"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected A:B (inclusive frame numbers), got {text!r}") from None
    if b < a:
        raise argparse.ArgumentTypeError(f"{text}: B must not be before A")
    return a, b


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("render", help="render a scene file (YAML/JSON) into a passes folder with Blender")
    p.add_argument("scenes", nargs="+", metavar="SCENE",
                   help="scene file (see README: fps, resolution, frames, actors, camera, passes, engine); "
                        "several: each into OUT/<scene file stem>/")
    p.add_argument("-o", "--output", required=True, help="passes folder to write (several scenes: their parent)")
    p.add_argument("--frames", type=_frames, help="render only frames A:B (inclusive)")
    p.add_argument("--force", action="store_true", help="re-render frames already done / replace another render")
    p.add_argument("--no-resume", dest="resume", action="store_false",
                   help="re-render frames already complete (resume is the default)")
    p.add_argument("--save-blend", metavar="FILE", help="also save the Blender scene (.blend) for editing")
    p.add_argument("--export-meshes", action="store_true", help="also write OUT/meshes/<frame>.npz posed meshes")
    p.add_argument("--no-previews", dest="previews", action="store_false", help="skip preview videos")
    p.add_argument("--verbose", action="store_true", help="show Blender's own output (default: OUT/logs/blender.log)")
    p.add_argument("--prepare-only", action="store_true",
                   help="bake/retarget/generate the actors into OUT/.prepared/scene.json and stop "
                        "(used by the blender -b entry)")
    add_arguments(p)
    p.set_defaults(func=cmd_render)


def cmd_render(args) -> int:
    outputs = scene_outputs(args.scenes, args.output)
    if len(outputs) > 1 and (args.prepare_only or args.save_blend):
        raise UserError("--prepare-only" if args.prepare_only else "--save-blend", "takes one scene")
    if args.prepare_only:
        from motion.fileio import check_writable
        from render.cast import prepare
        from render.scene_config import load_scene_file, validate_scene

        scene = validate_scene(load_scene_file(args.scenes[0]), args.scenes[0])
        out = check_writable(args.output, force=True, folder=True)
        print(prepare(scene, out, Path(args.scenes[0]).resolve().parent))
        return 0
    from motion.cluster import Task, run_tasks
    from render.scene_config import load_scene_file, validate_scene

    for scene in outputs:                          # every scene file read and checked before any work
        validate_scene(load_scene_file(scene), scene)
    options = dict(frames=args.frames, force=args.force, resume=args.resume, save_blend=args.save_blend,
                   export_meshes=args.export_meshes, previews=args.previews, verbose=args.verbose)
    if len(outputs) == 1 and not args.ray:         # one scene here: its errors as they are
        render_task(args.scenes[0], outputs[args.scenes[0]], options)
    else:
        run_tasks([Task(scene, render_task, (str(Path(scene).resolve()), str(out.resolve()), options))
                   for scene, out in outputs.items()], args.ray, args.retries, desc="scenes")
    for out in outputs.values():
        print(out)
    return 0


def scene_outputs(scenes: list[str], output: str) -> dict[str, Path]:
    """The passes folder of each scene: ``output`` for one scene, ``output/<stem>`` for several (each
    checked writable before any work)."""
    from motion.fileio import check_writable

    if len(scenes) == 1:
        return {scenes[0]: check_writable(output, force=True, folder=True)}
    outputs: dict[str, Path] = {}
    for scene in scenes:
        out = check_writable(Path(output) / Path(scene).stem, force=True, folder=True)
        if out in outputs.values():
            raise UserError(scene, f"another scene file also has the stem {out.name!r} (both would go to {out})")
        outputs[scene] = out
    return outputs


def render_task(scene: str, out: str, options: dict) -> str:
    """One scene into its passes folder (locally, or as a Ray task: ``motion.cluster``)."""
    from render.api import render_scene

    return str(render_scene(scene, out, **options))


def register_bench(bench_sub: argparse._SubParsersAction) -> None:
    p = bench_sub.add_parser("render", help="condition passes fps: ours vs the peer way (Cycles, view layer per pass)")
    p.add_argument("--resolution", type=number_arg(minimum=16, maximum=4096, integer=True), default=512)
    p.add_argument("--frames", type=number_arg(minimum=2, maximum=1000, integer=True), default=8)
    p.add_argument("--avatar", help="baked avatar .npz (default: Anny, baked now)")
    p.add_argument("-o", "--output", help="write the figures as JSON here")
    p.add_argument("--verbose", action="store_true", help="show Blender's own output (default: logs/blender.log)")
    p.set_defaults(func=cmd_bench)


def cmd_bench(args) -> int:
    from motion.fileio import check_writable
    from render.bench import run_benchmark

    if args.output:
        check_writable(args.output, force=True, suffixes=(".json",))
    run_benchmark(args.resolution, args.frames, args.avatar, args.output, args.verbose)
    return 0
