"""Entry script for a stock Blender (4.2+ / 5.0), headless:

    blender -b -P render/blender_entry.py -- SCENE.yaml -o OUT [--frames A:B] [--force] [--save-blend F]

Runs the same ``render.api.render_scene`` as ``avatarcine render``. Stock Blender's Python has numpy
but neither pyyaml nor torch: when the scene is YAML or needs baking/retargeting/generation, this
script first runs ``avatarcine render SCENE -o OUT --prepare-only`` (the ``avatarcine`` on PATH, or
``$AVATARCINE`` if set) and renders the prepared JSON scene it writes. A JSON scene whose actors are
all baked ``avatar:`` + ``motion:`` files renders with Blender alone.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


def _args(argv: list[str]) -> argparse.Namespace:
    from motion.cli import OneLineParser
    from render.commands import _frames
    p = OneLineParser(prog="blender -b -P render/blender_entry.py --")
    p.add_argument("scene")
    p.add_argument("-o", "--output", required=True)
    p.add_argument("--frames", type=_frames)
    p.add_argument("--force", action="store_true")
    p.add_argument("--save-blend")
    p.add_argument("--export-meshes", action="store_true")
    p.add_argument("--no-previews", dest="previews", action="store_false")
    p.add_argument("--verbose", action="store_true")
    return p.parse_args(argv)


class _PrepareFailed(Exception):
    """The prepare step exited non-zero; it already printed its error (one line for bad input)."""

    def __init__(self, returncode: int):
        super().__init__(returncode)
        self.returncode = returncode


def _prepared_scene(scene: Path, out: Path) -> Path:
    exe = os.environ.get("AVATARCINE") or shutil.which("avatarcine")
    if not exe:
        from motion.errors import UserError
        raise UserError(scene, "needs pyyaml/torch to prepare; install avatarcine (or set $AVATARCINE) or give a "
                               "JSON scene of baked avatar: + motion: files")
    done = subprocess.run([exe, "render", str(scene), "-o", str(out), "--prepare-only"])
    if done.returncode:
        raise _PrepareFailed(done.returncode)
    return out / ".prepared" / "scene.json"


def main(argv: list[str]) -> int:
    from motion.cli import one_line_warnings
    from motion.errors import UserError
    from render.api import render_scene
    from render.cast import needs_motion_package
    from render.scene_config import load_scene_file, validate_scene

    one_line_warnings()
    try:
        args = _args(argv)
        scene, out = Path(args.scene), Path(args.output)
        try:
            raw = load_scene_file(scene)
            prepare = any(needs_motion_package(a) for a in validate_scene(raw, str(scene))["actors"])
        except UserError:
            if scene.suffix.lower() == ".json":
                raise
            prepare = True                                  # YAML without pyyaml
        if prepare:
            prepared = _prepared_scene(scene, out)
            render_scene(prepared, out, args.frames, force=args.force, save_blend=args.save_blend,
                         export_meshes=args.export_meshes, previews=args.previews, verbose=args.verbose)
        else:
            render_scene(raw, out, args.frames, force=args.force, base_dir=scene.resolve().parent,
                         save_blend=args.save_blend, export_meshes=args.export_meshes, previews=args.previews,
                         verbose=args.verbose)
    except UserError as exc:
        print(f"avatarcine: error: {exc}", file=sys.stderr)
        return 2
    except _PrepareFailed as exc:
        return exc.returncode
    return 0


if __name__ == "__main__":
    argv = sys.argv[sys.argv.index("--") + 1:] if "--" in sys.argv else sys.argv[1:]
    code = main(argv)
    if code:
        sys.exit(code)
