"""The sidebar panel (3D View > Sidebar > avatarcine): Avatars, Motion, Cameras, Passes, Generate, in
the order an artist goes from an empty scene to a video."""

from __future__ import annotations

import os

import bpy

from render import pass_table

from . import method_settings
from .avatar_ops import ANNY_SHAPE, AVATAR_KEY, MOTION_KEY, AVATARCINE_OT_avatar_bake, scene_avatars
from .generate_ops import AVATARCINE_OT_generate_video, AVATARCINE_OT_methods_refresh
from .motion_ops import FRAMES_KEY, active_avatar
from .operators import draw_job, job_button
from .render_ops import AVATARCINE_OT_render_passes
from .preferences import ENV_PYTHON, preferences


class _Section:
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "avatarcine"


class AVATARCINE_PT_main(_Section, bpy.types.Panel):
    bl_label = "avatarcine"

    def draw(self, context):
        prefs = preferences(context)
        if prefs is not None and not (prefs.backend_python or os.environ.get(ENV_PYTHON)):
            self.layout.label(text="Set the backend Python in the add-on preferences", icon="INFO")


class _Sub(_Section):
    bl_parent_id = "AVATARCINE_PT_main"

    def draw(self, context):
        self.section(self.layout.column(), context.scene.avatarcine, context)


class AVATARCINE_PT_avatars(_Sub, bpy.types.Panel):
    bl_label = "Avatars"

    def section(self, col, s, context):
        for arm in scene_avatars(context.scene):
            col.label(text=f"{arm.name}: {bpy.path.basename(arm[AVATAR_KEY])}", icon="ARMATURE_DATA")
        col.operator("avatarcine.avatar_add", icon="FILE_FOLDER")
        box = col.box().column()
        box.prop(s, "body")
        if s.body == "anny":
            for k in ANNY_SHAPE:
                box.prop(s, f"anny_{k}", slider=True)
        else:
            prefs = preferences(context)
            if prefs is not None:
                box.prop(prefs, "smpl_dir")
            for name in ("gender", "betas"):
                box.prop(s, name)
        job_button(box, AVATARCINE_OT_avatar_bake, icon="OUTLINER_OB_ARMATURE")


class AVATARCINE_PT_motion(_Sub, bpy.types.Panel):
    bl_label = "Motion"

    def section(self, col, s, context):
        arm = active_avatar(context)
        if arm is None:
            col.label(text="Select an avatar", icon="INFO")
        else:
            motion = bpy.path.basename(arm.get(MOTION_KEY, "")) or "rest pose"
            col.label(text=f"{arm.name}: {motion} ({arm.get(FRAMES_KEY, 1)} frames)", icon="ACTION")
        if draw_job(col, "motion"):
            return
        box = col.box().column()
        box.prop(s, "motion_file")
        box.operator("avatarcine.motion_import", icon="IMPORT").filepath = s.motion_file
        box = col.box().column()
        box.prop(s, "prompt")
        row = box.row(align=True)
        row.prop(s, "seconds")
        row.prop(s, "seed")
        box.operator("avatarcine.motion_generate", icon="OUTLINER_OB_FONT")
        box = col.box().column(align=True)
        row = box.row(align=True)
        row.prop(s, "retime_speed")
        row.operator("avatarcine.motion_retime").speed = s.retime_speed
        row = box.row(align=True)
        row.prop(s, "loop_times")
        row.operator("avatarcine.motion_loop").times = s.loop_times
        row = box.row(align=True)
        row.prop(s, "trim_start")
        row.prop(s, "trim_end")
        op = row.operator("avatarcine.motion_trim")
        op.start, op.end = s.trim_start, s.trim_end


_CAMERA_FIELDS = {
    "orbit": ("orbit_degrees", "orbit_direction", "azimuth_deg"),
    "dolly": ("azimuth_deg", "dolly_ratio", "dolly_towards"),
    "zoom": ("azimuth_deg", "zoom_start_mm", "zoom_end_mm"),
    "follow": ("azimuth_deg", "follow_smoothing"),
    "handheld": ("azimuth_deg", "handheld_seed", "handheld_degrees", "handheld_metres", "handheld_hz"),
    "static": ("azimuth_deg",),
}


class AVATARCINE_PT_cameras(_Sub, bpy.types.Panel):
    bl_label = "Cameras"

    def section(self, col, s, context):
        col.prop(s, "camera_type")
        if s.camera_type == "follow":
            col.prop_search(s, "follow_target", context.scene, "objects")
        for name in _CAMERA_FIELDS[s.camera_type]:
            col.prop(s, name)
        for name in (("elevation_deg", "fill", "distance") if s.camera_type == "zoom"
                     else ("focal_mm", "elevation_deg", "fill", "distance")):
            col.prop(s, name)
        col.operator("avatarcine.camera_add", icon="OUTLINER_OB_CAMERA")
        camera = context.scene.camera
        col.label(text=f"Renders through: {camera.name if camera else 'no active camera'}", icon="CAMERA_DATA")


class AVATARCINE_PT_passes(_Sub, bpy.types.Panel):
    bl_label = "Passes"

    def section(self, col, s, context):
        scene = context.scene
        grid = col.grid_flow(columns=4, align=True)
        for p in pass_table.names():
            grid.prop(s, f"pass_{p}", toggle=True)
        row = col.row(align=True)
        row.prop(scene.render, "resolution_x", text="W")
        row.prop(scene.render, "resolution_y", text="H")
        row.prop(scene.render, "resolution_percentage", text="%")
        row = col.row(align=True)
        row.prop(scene, "frame_start", text="Start")
        row.prop(scene, "frame_end", text="End")
        row.prop(scene.render, "fps")
        col.prop(s, "passes_dir")
        col.prop(s, "overwrite")
        job_button(col, AVATARCINE_OT_render_passes, icon="RENDER_ANIMATION")


class AVATARCINE_PT_generate(_Sub, bpy.types.Panel):
    bl_label = "Generate"

    def section(self, col, s, context):
        row = col.row(align=True)
        row.prop(s, "method")
        job_button(row, AVATARCINE_OT_methods_refresh, text="", icon="FILE_REFRESH")
        col.prop(s, "generate_passes")
        if s.method in method_settings.METHODS:
            method_settings.draw(col, context.scene, s.method)
        col.prop(s, "show_video")
        job_button(col, AVATARCINE_OT_generate_video, icon="SEQUENCE")


CLASSES = (AVATARCINE_PT_main, AVATARCINE_PT_avatars, AVATARCINE_PT_motion, AVATARCINE_PT_cameras,
           AVATARCINE_PT_passes, AVATARCINE_PT_generate)
