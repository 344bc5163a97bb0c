"""Avatars in the artist's scene: an armature + skinned mesh built by ``render.avatar`` from an avatar
asset file (added from disk, or baked by the backend Python: bodies need torch). The armature keeps
the asset's path (and later its motion's) as custom properties; its object transform is the avatar's
placement, edited with Blender's own tools."""

from __future__ import annotations

from pathlib import Path

import bpy
from bpy.props import StringProperty
from bpy_extras.io_utils import ImportHelper

from motion.asset import AvatarAsset
from render.avatar import BlenderActor, build_actor

from .jobs import Job
from .operators import JobOperator, reporting
from .preferences import backend, smpl_dir, unique_path, work_dir

AVATAR_KEY = "avatarcine_avatar"      # armature custom property: the avatar asset file
MOTION_KEY = "avatarcine_motion"      # armature custom property: its motion file (on its skeleton)
ANNY_SHAPE = ("gender", "age", "muscle", "weight", "height", "proportions")
BETAS = 10


def avatar_of(obj) -> bpy.types.Object | None:
    """The avatar armature ``obj`` is (or whose body mesh it is), else None."""
    for candidate in (obj, getattr(obj, "parent", None)):
        if candidate is not None and candidate.type == "ARMATURE" and AVATAR_KEY in candidate:
            return candidate
    return None


def scene_avatars(scene) -> list[bpy.types.Object]:
    """The scene's avatars that render (hidden from render: left out), by name."""
    return sorted((o for o in scene.objects if avatar_of(o) is o and not o.hide_render), key=lambda o: o.name)


def body_mesh(arm) -> bpy.types.Object:
    return next(c for c in arm.children if c.type == "MESH")


def actor_of(arm) -> BlenderActor:
    return BlenderActor(arm.name, arm, body_mesh(arm), body_mesh(arm).pass_index)


def add_avatar(context, asset_path: str | Path) -> bpy.types.Object:
    """Build the avatar of ``asset_path`` at the 3D cursor; make it the active object."""
    path = Path(asset_path).resolve()
    asset = AvatarAsset.load(path)                       # a bad file fails here, before the scene changes
    stem = path.name.removesuffix(".npz").removesuffix(".avatar")
    actor = build_actor(_free_name(stem), asset, instance_id=len(scene_avatars(context.scene)) + 1,
                        collection=context.collection)
    arm = actor.armature
    arm[AVATAR_KEY] = str(path)
    arm.location = context.scene.cursor.location
    for obj in context.view_layer.objects.selected:
        obj.select_set(False)
    arm.select_set(True)
    context.view_layer.objects.active = arm
    return arm


def _free_name(stem: str) -> str:
    """``stem``, or ``stem.001``... so that the armature and its ``_body`` mesh keep matching names."""
    name, n = stem, 0
    while name in bpy.data.objects or f"{name}_body" in bpy.data.objects:
        n += 1
        name = f"{stem}.{n:03d}"
    return name


class AVATARCINE_OT_avatar_add(bpy.types.Operator, ImportHelper):
    """Add an avatar from an avatar asset file (avatarcine avatar bake) at the 3D cursor"""
    bl_idname = "avatarcine.avatar_add"
    bl_label = "Add Avatar File"
    bl_options = {"REGISTER", "UNDO"}

    filename_ext = ".npz"
    filter_glob: StringProperty(default="*.npz", options={"HIDDEN"})

    @classmethod
    def poll(cls, context):
        return context.mode == "OBJECT"

    @reporting
    def execute(self, context):
        arm = add_avatar(context, self.filepath)
        self.report({"INFO"}, f"added avatar {arm.name}")
        return {"FINISHED"}


def bake_arguments(s, model_folder: str) -> list[str]:
    """``avatar bake`` arguments for the panel's body settings ``s``."""
    args = ["--body", s.body]
    if s.body == "anny":
        args += ["--shape"] + [f"{k}={getattr(s, f'anny_{k}'):g}" for k in ANNY_SHAPE]
    else:
        if model_folder:
            args += ["--model-path", model_folder]
        args += ["--gender", s.gender]
        betas = [f"beta{i}={v:g}" for i, v in enumerate(s.betas) if v != 0.0]
        if betas:
            args += ["--shape"] + betas
    return args


class AVATARCINE_OT_avatar_bake(JobOperator, bpy.types.Operator):
    """Bake an avatar of the chosen body and shape with the backend Python, then add it at the 3D cursor"""
    bl_idname = "avatarcine.avatar_bake"
    bl_label = "Bake Avatar"
    job_kind = "bake"

    def make_job(self, context):
        s = context.scene.avatarcine
        self.output = unique_path(work_dir(context) / "avatars", s.body, ".avatar.npz")
        command = backend(context) + ["avatar", "bake", *bake_arguments(s, smpl_dir(context)), "-o", self.output]
        return Job([command], f"bake {s.body}")

    def finish(self, context, job):
        arm = add_avatar(context, self.output)
        self.report({"INFO"}, f"baked avatar {arm.name}")


CLASSES = (AVATARCINE_OT_avatar_add, AVATARCINE_OT_avatar_bake)
