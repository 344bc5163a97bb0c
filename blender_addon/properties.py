"""The panel's settings, stored on the scene (``scene.avatarcine``) and saved with the .blend file.
Resolution, frame range and fps are Blender's own render settings."""

from __future__ import annotations

import bpy
from bpy.props import BoolProperty, EnumProperty, FloatProperty, FloatVectorProperty, IntProperty, StringProperty

from render import pass_table
from render.scene_config import BODIES

from .avatar_ops import ANNY_SHAPE, BETAS
from .camera_ops import CAMERA_TYPES
from .method_settings import method_items


def _items(names) -> list[tuple[str, str, str]]:
    return [(n, n.replace("_", " ").capitalize(), "") for n in names]


class AVATARCINE_Settings(bpy.types.PropertyGroup):
    # Avatars: the body to bake
    body: EnumProperty(name="Body", items=_items(BODIES),
                       description="Anny ships with its data; the SMPL family needs your model files")
    gender: EnumProperty(name="Gender", items=_items(("neutral", "male", "female")))
    __annotations__.update({f"anny_{k}": FloatProperty(name=k.capitalize(), default=0.5, min=0.0, max=1.0,
                                                       description=f"Anny phenotype {k} (0..1)")
                            for k in ANNY_SHAPE})
    betas: FloatVectorProperty(name="Betas", size=BETAS, default=(0.0,) * BETAS, soft_min=-3.0, soft_max=3.0,
                               description="SMPL shape coefficients")
    # Motion
    motion_file: StringProperty(name="Motion file", subtype="FILE_PATH",
                                description="AMASS / SMPL-X .npz or .pkl, BVH, HumanML3D .npy, avatarcine .npz")
    prompt: StringProperty(name="Text", default="walk forward, then wave",
                           description="e.g. 'walk forward 3 steps, turn left 90 degrees, then wave'")
    seconds: FloatProperty(name="Seconds", default=0.0, min=0.0, description="total length; 0: its natural length")
    seed: IntProperty(name="Seed", default=0, min=0)
    retime_speed: FloatProperty(name="Speed", default=1.0, min=0.05, max=20.0, description="2 = twice as fast")
    loop_times: IntProperty(name="Times", default=2, min=1, max=100)
    trim_start: FloatProperty(name="From", default=0.0, min=0.0, description="first second kept")
    trim_end: FloatProperty(name="To", default=0.0, min=0.0, description="seconds kept until; 0 = the end")
    # Cameras (defaults: the renderer's)
    camera_type: EnumProperty(name="Camera", items=_items(CAMERA_TYPES))
    focal_mm: FloatProperty(name="Focal length", default=50.0, min=1.0, max=500.0, description="mm (36 mm sensor)")
    fill: FloatProperty(name="Fill", default=0.85, min=0.1, max=1.0,
                        description="share of the frame the avatars may fill (sets the distance)")
    distance: FloatProperty(name="Distance", default=0.0, min=0.0, unit="LENGTH",
                            description="fixed distance to the avatars; 0: the tightest that frames them all")
    azimuth_deg: FloatProperty(name="Azimuth", default=0.0, description="degrees around the first avatar; 0 = in front")
    elevation_deg: FloatProperty(name="Elevation", default=10.0, min=-89.0, max=89.0, description="degrees above")
    orbit_degrees: FloatProperty(name="Degrees", default=90.0, description="how far the orbit turns over the clip")
    orbit_direction: EnumProperty(name="Direction", items=[("ccw", "Counter-clockwise", ""), ("cw", "Clockwise", "")])
    dolly_ratio: FloatProperty(name="Ratio", default=1.6, min=1.0, max=10.0, description="far distance / near distance")
    dolly_towards: BoolProperty(name="Towards", default=True, description="move in (off: move out)")
    zoom_start_mm: FloatProperty(name="From (mm)", default=35.0, min=1.0, max=500.0)
    zoom_end_mm: FloatProperty(name="To (mm)", default=70.0, min=1.0, max=500.0)
    follow_target: StringProperty(name="Target", description="avatar to follow (empty: the first)")
    follow_smoothing: FloatProperty(name="Smoothing", default=0.5, min=0.0, max=10.0, description="seconds")
    handheld_seed: IntProperty(name="Seed", default=0, min=0)
    handheld_degrees: FloatProperty(name="Shake (°)", default=0.8, min=0.0, max=20.0)
    handheld_metres: FloatProperty(name="Shake (m)", default=0.01, min=0.0, max=1.0)
    handheld_hz: FloatProperty(name="Frequency", default=0.8, min=0.01, max=20.0, description="Hz")
    # Passes
    __annotations__.update({f"pass_{p.name}": BoolProperty(name=p.name, default=p.default, description=p.summary)
                            for p in pass_table.PASSES})
    passes_dir: StringProperty(name="Output", subtype="DIR_PATH",
                               description="passes folder; empty: 'passes' in the default output folder")
    overwrite: BoolProperty(name="Overwrite", default=False,
                            description="replace a render of another scene already in the output folder")
    # Generate
    method: EnumProperty(name="Method", items=method_items)
    generate_passes: StringProperty(name="Passes", subtype="DIR_PATH", description="passes folder to generate from")
    show_video: EnumProperty(name="Show as", items=[("PLANE", "Image plane", "a plane showing the video"),
                                                    ("CAMERA", "Camera background", "behind the active camera's view"),
                                                    ("STRIP", "Strip only", "only the sequencer strip")])


CLASSES = (AVATARCINE_Settings,)


def register_scene_settings() -> None:
    bpy.types.Scene.avatarcine = bpy.props.PointerProperty(type=AVATARCINE_Settings)


def unregister_scene_settings() -> None:
    del bpy.types.Scene.avatarcine
