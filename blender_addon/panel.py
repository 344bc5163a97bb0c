"""The extension's panel, its settings and operators (needs bpy; loaded by ``register``), and the
scene it renders."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

from motion.fileio import save_json
from render import pass_table

from . import ROOT

try:
    import bpy
    from bpy.props import (BoolProperty, EnumProperty, FloatProperty, IntProperty, PointerProperty,
                           StringProperty)
except ImportError:   # the scene helpers below also run outside Blender
    bpy = None

PASS_NAMES = pass_table.names()
CAMERAS = ("orbit", "static", "dolly", "zoom", "follow", "handheld")
SCENE_FILE = "avatarcine_scene.json"
BLEND_FILE = "scene.blend"


def scene_from_settings(s) -> dict:
    """The scene mapping (``render.scene_config``) for the panel's settings ``s``."""
    actor = {"name": "actor", "motion": bpy.path.abspath(s.motion) if bpy else s.motion}
    if s.use_baked_avatar:
        actor["avatar"] = bpy.path.abspath(s.avatar) if bpy else s.avatar
    else:
        actor["body"] = {"type": s.body, **({"model": s.model_path} if s.model_path else {})}
    if s.generate_text:
        actor["motion"] = {"generate": s.generate_text, "seconds": s.seconds}
    camera = {"type": s.camera}
    if s.camera == "orbit":
        camera["degrees"] = s.orbit_degrees
    return {"fps": s.fps, "resolution": [s.width, s.height], "actors": [actor], "camera": camera,
            "passes": [p for p in PASS_NAMES if getattr(s, f"pass_{p}")]}


def holds_other_render(out_dir: Path, scene: dict) -> bool:
    """Whether ``out_dir`` already holds a render (passes or saved .blend) that the panel did not
    make from ``scene`` (its ``avatarcine_scene.json`` missing or different)."""
    out_dir = Path(out_dir)
    rendered = any((out_dir / name).exists() for name in ("meta.json", ".frames", BLEND_FILE))
    if not rendered:
        return False
    try:
        return json.loads((out_dir / SCENE_FILE).read_text()) != json.loads(json.dumps(scene))
    except (OSError, ValueError):
        return True


def render_command(scene_json: Path, out_dir: Path, blend: Path | None = None, force: bool = False) -> list[str]:
    """The background render: this Blender (or, inside the bpy module, this Python) runs the entry.
    ``force`` replaces what ``out_dir`` and ``blend`` hold (the entry refuses otherwise)."""
    entry = ROOT / "render" / "blender_entry.py"
    binary = getattr(bpy.app, "binary_path", "") if bpy else ""
    head = [binary, "-b", "--factory-startup", "-P", str(entry), "--"] if binary else [sys.executable, str(entry), "--"]
    tail = (["--save-blend", str(blend)] if blend else []) + (["--force"] if force else [])
    return head + [str(scene_json), "-o", str(out_dir)] + tail


if bpy is not None:
    class AVATARCINE_Settings(bpy.types.PropertyGroup):
        use_baked_avatar: BoolProperty(name="Baked avatar file", default=True)
        avatar: StringProperty(name="Avatar", subtype="FILE_PATH", description="avatar .npz (avatarcine avatar bake)")
        body: EnumProperty(name="Body", items=[(b, b, "") for b in ("anny", "smpl", "smplh", "smplx")])
        model_path: StringProperty(name="Model files", subtype="DIR_PATH")
        motion: StringProperty(name="Motion", subtype="FILE_PATH", description="motion file (npz, AMASS, BVH)")
        generate_text: StringProperty(name="Or generate", description="text prompt instead of a motion file")
        seconds: FloatProperty(name="Seconds", default=3.0, min=0.1)
        camera: EnumProperty(name="Camera", items=[(c, c, "") for c in CAMERAS])
        orbit_degrees: FloatProperty(name="Degrees", default=90.0)
        fps: IntProperty(name="FPS", default=30, min=1)
        width: IntProperty(name="Width", default=512, min=16)
        height: IntProperty(name="Height", default=512, min=16)
        output: StringProperty(name="Output", subtype="DIR_PATH", default="//avatarcine_passes")
        overwrite: BoolProperty(name="Overwrite", default=False,
                                description="replace a different render already in the output folder")
        __annotations__.update({f"pass_{p}": BoolProperty(name=p, default=p in pass_table.default_passes(),
                                                          description=pass_table.get(p).summary)
                                for p in PASS_NAMES})

    class AVATARCINE_OT_render(bpy.types.Operator):
        """Render the passes in a background Blender"""
        bl_idname = "avatarcine.render"
        bl_label = "Render passes"
        _proc = None
        _timer = None
        _stderr = None

        def execute(self, context):
            s = context.scene.avatarcine
            out = Path(bpy.path.abspath(s.output))
            scene = scene_from_settings(s)
            if holds_other_render(out, scene) and not s.overwrite:
                self.report({"ERROR"}, f"{out} holds a different render; tick Overwrite or choose another folder")
                return {"CANCELLED"}
            out.mkdir(parents=True, exist_ok=True)
            scene_json = save_json(out / SCENE_FILE, scene, force=True)
            # stderr into a file, read at the end: a pipe read only after exit can fill and block the child.
            # force: the folder is empty, this panel's own render of the same scene, or Overwrite is ticked.
            self._stderr = tempfile.TemporaryFile("w+")
            self._proc = subprocess.Popen(render_command(scene_json, out, out / BLEND_FILE, force=True),
                                          stderr=self._stderr, text=True)
            self._timer = context.window_manager.event_timer_add(0.5, window=context.window)
            context.window_manager.modal_handler_add(self)
            self.report({"INFO"}, f"avatarcine: rendering into {out}")
            return {"RUNNING_MODAL"}

        def modal(self, context, event):
            if event.type != "TIMER" or self._proc.poll() is None:
                return {"PASS_THROUGH"}
            context.window_manager.event_timer_remove(self._timer)
            self._stderr.seek(0)
            err = self._stderr.read().strip().splitlines()
            self._stderr.close()
            if self._proc.returncode:
                self.report({"ERROR"}, err[-1] if err else f"render failed ({self._proc.returncode})")
                return {"CANCELLED"}
            self.report({"INFO"}, "avatarcine: passes written")
            return {"FINISHED"}

    class AVATARCINE_OT_open_result(bpy.types.Operator):
        """Open the .blend saved with the last render (armature, keyed motion, camera) for editing"""
        bl_idname = "avatarcine.open_result"
        bl_label = "Open result"

        def execute(self, context):
            blend = Path(bpy.path.abspath(context.scene.avatarcine.output)) / BLEND_FILE
            if not blend.is_file():
                self.report({"ERROR"}, f"{blend}: no rendered scene yet")
                return {"CANCELLED"}
            bpy.ops.wm.open_mainfile(filepath=str(blend))
            return {"FINISHED"}

    class AVATARCINE_PT_panel(bpy.types.Panel):
        bl_label = "avatarcine"
        bl_space_type = "VIEW_3D"
        bl_region_type = "UI"
        bl_category = "avatarcine"

        def draw(self, context):
            s, col = context.scene.avatarcine, self.layout.column()
            col.prop(s, "use_baked_avatar")
            if s.use_baked_avatar:
                col.prop(s, "avatar")
            else:
                col.prop(s, "body")
                col.prop(s, "model_path")
            col.prop(s, "motion")
            col.prop(s, "generate_text")
            if s.generate_text:
                col.prop(s, "seconds")
            col.prop(s, "camera")
            if s.camera == "orbit":
                col.prop(s, "orbit_degrees")
            row = col.row(align=True)
            for name in ("fps", "width", "height"):
                row.prop(s, name)
            grid = col.grid_flow(columns=4, align=True)
            for p in PASS_NAMES:
                grid.prop(s, f"pass_{p}", toggle=True)
            col.prop(s, "output")
            col.prop(s, "overwrite")
            col.operator("avatarcine.render", icon="RENDER_ANIMATION")
            col.operator("avatarcine.open_result", icon="FILE_BLEND")

    CLASSES = (AVATARCINE_Settings, AVATARCINE_OT_render, AVATARCINE_OT_open_result, AVATARCINE_PT_panel)


def register():
    for cls in CLASSES:
        bpy.utils.register_class(cls)
    bpy.types.Scene.avatarcine = PointerProperty(type=AVATARCINE_Settings)


def unregister():
    del bpy.types.Scene.avatarcine
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)
