"""Render the ticked passes of the Blender scene into a passes folder: the scene is written as a scene
file (``blender_addon.scene_export``, into ``OUT/scene/``) and rendered by ``render.api.render_scene``
in a background Blender (``render/blender_entry.py``), the same function ``avatarcine render`` runs,
so the folder has the same layout and files. The open file stays untouched and the UI responsive;
the render resumes where a cancelled one stopped."""

from __future__ import annotations

import sys
from pathlib import Path

import bpy

from motion.errors import UserError
from render import pass_table

from . import ROOT
from .avatar_ops import scene_avatars
from .jobs import Job
from .operators import JobOperator
from .preferences import work_dir
from .scene_export import camera_entry, scene_without_camera, write_scene

SCENE_DIR = "scene"


def passes_dir(context) -> Path:
    s = context.scene.avatarcine
    return Path(bpy.path.abspath(s.passes_dir)) if s.passes_dir else work_dir(context) / "passes"


def render_command(scene_json: Path, out_dir: Path, force: bool = False) -> list[str]:
    """The background render: this Blender (or, inside the bpy module, this Python) runs the entry.
    ``force`` replaces another render in ``out_dir`` (the entry refuses otherwise)."""
    entry = ROOT / "render" / "blender_entry.py"
    binary = bpy.app.binary_path
    head = [binary, "-b", "--factory-startup", "-P", str(entry), "--"] if binary else [sys.executable, str(entry), "--"]
    return head + [str(scene_json), "-o", str(out_dir)] + (["--force"] if force else [])


def passes_scene(context, folder: Path) -> dict:
    """The scene description the Render button renders (inputs written into ``folder``)."""
    s = context.scene.avatarcine
    passes = [p for p in pass_table.names() if getattr(s, f"pass_{p}")]
    if not passes:
        raise UserError("Passes", "tick at least one pass")
    scene = scene_without_camera(context, folder)
    return {**scene, "camera": camera_entry(context, scene, folder), "passes": passes}


class AVATARCINE_OT_render_passes(JobOperator, bpy.types.Operator):
    """Render the ticked passes of the scene's avatars through its active camera into the output folder"""
    bl_idname = "avatarcine.render_passes"
    bl_label = "Render Passes"
    job_kind = "render"
    bl_options = {"REGISTER"}

    @classmethod
    def ready(cls, context):
        return bool(scene_avatars(context.scene))

    def make_job(self, context):
        self.output = passes_dir(context)
        scene_json = write_scene(passes_scene(context, self.output / SCENE_DIR), self.output / SCENE_DIR)
        return Job([render_command(scene_json, self.output, context.scene.avatarcine.overwrite)], "render passes")

    def explain(self, error):
        return error.replace("pass --force", "tick Overwrite")           # the command line's --force is that box

    def finish(self, context, job):
        context.scene.avatarcine.generate_passes = str(self.output)
        self.report({"INFO"}, f"passes written to {self.output}")


CLASSES = (AVATARCINE_OT_render_passes,)
