"""Scripted cameras (orbit, dolly, zoom, follow, handheld, static) made into ordinary keyframed Blender
cameras: ``render.api.scene_camera`` computes the path the renderer would use for the scene's avatars
and frames, ``render.stage.add_camera`` keys it. The artist may then edit the camera like any other;
``blender_addon.scene_export`` renders what it has become."""

from __future__ import annotations

import json

import bpy
import numpy as np

from render.api import scene_camera
from render.stage import add_camera

from .avatar_ops import scene_avatars
from .operators import reporting
from .preferences import work_dir
from .scene_export import CAMERA_KEY, scene_without_camera

CAMERA_TYPES = ("orbit", "dolly", "zoom", "follow", "handheld", "static")


def _as_typed(value):
    """A float setting as the artist typed it: Blender keeps float32, 0.85 reads back as 0.8500000238;
    the shortest decimal of that float32 is 0.85 again."""
    return float(str(np.float32(value))) if isinstance(value, float) else value


def camera_spec(s) -> dict:
    """The ``camera:`` entry of the panel's camera settings ``s`` (every value explicit)."""
    spec = _camera_spec(s)
    return {k: ({kk: _as_typed(vv) for kk, vv in v.items()} if isinstance(v, dict) else _as_typed(v))
            for k, v in spec.items()}


def _camera_spec(s) -> dict:
    framing = {"focal_mm": s.focal_mm, "fill": s.fill, "elevation_deg": s.elevation_deg}
    if s.distance > 0:
        framing["distance"] = s.distance
    kind = s.camera_type
    if kind == "orbit":
        return {"type": kind, **framing, "degrees": s.orbit_degrees, "direction": s.orbit_direction,
                "start_deg": s.azimuth_deg}
    if kind == "dolly":
        return {"type": kind, **framing, "azimuth_deg": s.azimuth_deg, "ratio": s.dolly_ratio,
                "towards": s.dolly_towards}
    if kind == "zoom":
        del framing["focal_mm"]
        return {"type": kind, **framing, "azimuth_deg": s.azimuth_deg, "focal_start_mm": s.zoom_start_mm,
                "focal_end_mm": s.zoom_end_mm}
    if kind == "follow":
        target = {"target": s.follow_target} if s.follow_target else {}    # default: the first avatar
        return {"type": kind, **framing, "azimuth_deg": s.azimuth_deg, **target, "smoothing_s": s.follow_smoothing}
    base = {"type": "static", **framing, "azimuth_deg": s.azimuth_deg}
    if kind == "handheld":
        return {"type": kind, "base": base, "seed": s.handheld_seed, "amplitude_deg": s.handheld_degrees,
                "amplitude_m": s.handheld_metres, "frequency_hz": s.handheld_hz}
    return base


def _free_name(stem: str) -> str:
    name, n = stem, 0
    while name in bpy.data.objects or name in bpy.data.cameras:
        n += 1
        name = f"{stem}.{n:03d}"
    return name


class AVATARCINE_OT_camera_add(bpy.types.Operator):
    """Create a keyframed camera of the chosen type framing the scene's avatars over its frame range"""
    bl_idname = "avatarcine.camera_add"
    bl_label = "Create Camera"
    bl_options = {"REGISTER", "UNDO"}

    @classmethod
    def poll(cls, context):
        return context.mode == "OBJECT" and bool(scene_avatars(context.scene))

    @reporting
    def execute(self, context):
        spec = camera_spec(context.scene.avatarcine)
        frames, path = scene_camera({**scene_without_camera(context, work_dir(context) / "scene"), "camera": spec})
        camera = add_camera(context.scene, path, frames, name=_free_name(f"{spec['type']}_camera"))
        camera[CAMERA_KEY] = json.dumps(spec)
        for obj in context.view_layer.objects.selected:
            obj.select_set(False)
        camera.select_set(True)
        context.view_layer.objects.active = camera
        self.report({"INFO"}, f"{camera.name}: {len(frames)} keyed frames")
        return {"FINISHED"}


CLASSES = (AVATARCINE_OT_camera_add,)
