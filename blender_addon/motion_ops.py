"""Motion on the selected avatar: import a file (AMASS / SMPL-X npz, BVH, our clips) or generate one
from text with the backend Python (``motion convert --avatar``: resampled to the scene's fps and
retargeted onto the avatar), and retime / loop / trim it here with ``motion.ops``. Each result is
a new motion file (earlier ones stay, so undo works) keyed on the avatar's bones by ``render.avatar``."""

from __future__ import annotations

from pathlib import Path

import bpy
import numpy as np
from bpy.props import FloatProperty, IntProperty, StringProperty

from motion.asset import AvatarAsset
from motion.errors import UserError
from motion.motion import Motion
from motion.ops import loop, resample, retime, trim
from render.avatar import key_motion

from .avatar_ops import AVATAR_KEY, MOTION_KEY, actor_of, avatar_of, scene_avatars
from .jobs import Job
from .operators import JobOperator, reporting
from .preferences import backend, smpl_dir, unique_path, work_dir

FRAMES_KEY = "avatarcine_frames"      # armature custom property: frames of its motion


def scene_fps(scene) -> float:
    return scene.render.fps / scene.render.fps_base


def active_avatar(context) -> bpy.types.Object | None:
    return avatar_of(context.active_object)


def apply_motion(context, arm, motion: Motion, path: Path) -> None:
    """Key ``motion`` (resampled to the scene's fps if needed) on avatar ``arm`` from frame 0 and keep
    its file; the scene's frame range then covers the longest motion of the scene's avatars."""
    scene = context.scene
    fps = scene_fps(scene)
    if abs(motion.fps - fps) > 1e-9:
        motion = resample(motion, fps)
        path = unique_path(Path(path).parent, Path(path).stem + f"-{fps:g}fps", ".npz")
        motion.save(path)
    key_motion(actor_of(arm), AvatarAsset.load(arm[AVATAR_KEY]), motion, np.arange(motion.n_frames))
    arm[MOTION_KEY] = str(Path(path).resolve())
    arm[FRAMES_KEY] = motion.n_frames
    scene.frame_start = 0
    scene.frame_end = max(int(a.get(FRAMES_KEY, 1)) for a in scene_avatars(scene) + [arm]) - 1
    scene.frame_set(scene.frame_current)


def _motion_file(context, arm, what: str) -> Path:
    return unique_path(work_dir(context) / "motions", f"{arm.name}-{what}", ".npz")


class _OnAvatar(JobOperator):
    @classmethod
    def ready(cls, context):
        return active_avatar(context) is not None

    def finish(self, context, job):
        arm = avatar_of(bpy.data.objects.get(self.avatar))
        if arm is None:
            raise UserError(self.avatar, f"the avatar is gone; its motion is in {self.output}")
        apply_motion(context, arm, Motion.load(self.output), self.output)
        self.report({"INFO"}, f"{arm.name}: {job.label} done")

    def _convert(self, context, source, arm) -> list[str]:
        """The backend command writing ``source`` onto ``arm``'s avatar at the scene fps."""
        self.avatar, self.output = arm.name, _motion_file(context, arm, Path(source).stem.removesuffix(".source"))
        folder = smpl_dir(context)
        return backend(context) + ["motion", "convert", source, self.output, "--fps", f"{scene_fps(context.scene):g}",
                                   "--avatar", arm[AVATAR_KEY]] + (["--model-path", folder] if folder else [])


class AVATARCINE_OT_motion_import(_OnAvatar, bpy.types.Operator):
    """Import a motion file onto the selected avatar (retargeted, resampled to the scene's fps)"""
    bl_idname = "avatarcine.motion_import"
    bl_label = "Import Motion"
    job_kind = "motion"

    filepath: StringProperty(name="Motion file", subtype="FILE_PATH",
                             description="AMASS / SMPL-X .npz or .pkl, BVH, HumanML3D .npy, avatarcine .npz")

    def make_job(self, context):
        source = bpy.path.abspath(self.filepath or context.scene.avatarcine.motion_file)
        return Job([self._convert(context, source, active_avatar(context))], f"import {Path(source).name}")


class AVATARCINE_OT_motion_generate(_OnAvatar, bpy.types.Operator):
    """Generate a motion from the text prompt with the backend Python onto the selected avatar"""
    bl_idname = "avatarcine.motion_generate"
    bl_label = "Generate Motion"
    job_kind = "motion"

    def make_job(self, context):
        s, arm = context.scene.avatarcine, active_avatar(context)
        source = _motion_file(context, arm, "text.source")
        generate = backend(context) + ["motion", "generate", s.prompt, "--fps", f"{scene_fps(context.scene):g}",
                                       "--seed", str(s.seed), "-o", source]
        if s.seconds > 0:
            generate += ["--seconds", f"{s.seconds:g}"]
        return Job([generate, self._convert(context, source, arm)], "generate motion")


class _EditMotion:
    """Edit the active avatar's motion in place with a ``motion.ops`` operation (fast: no job)."""
    bl_options = {"REGISTER", "UNDO"}

    @classmethod
    def poll(cls, context):
        arm = active_avatar(context)
        return context.mode == "OBJECT" and arm is not None and bool(arm.get(MOTION_KEY))

    @reporting
    def execute(self, context):
        arm = active_avatar(context)
        motion = self.edit(Motion.load(arm[MOTION_KEY]))
        path = _motion_file(context, arm, self.bl_label.lower())
        motion.save(path)
        apply_motion(context, arm, motion, path)
        return {"FINISHED"}


class AVATARCINE_OT_motion_retime(_EditMotion, bpy.types.Operator):
    """Play the avatar's motion faster or slower"""
    bl_idname = "avatarcine.motion_retime"
    bl_label = "Retime"

    speed: FloatProperty(name="Speed", default=1.0, min=0.05, max=20.0, description="2 = twice as fast")

    def edit(self, motion):
        return retime(motion, self.speed)


class AVATARCINE_OT_motion_loop(_EditMotion, bpy.types.Operator):
    """Repeat the avatar's motion, each repetition continuing where the last ended"""
    bl_idname = "avatarcine.motion_loop"
    bl_label = "Loop"

    times: IntProperty(name="Times", default=2, min=1, max=100)

    def edit(self, motion):
        return loop(motion, self.times)


class AVATARCINE_OT_motion_trim(_EditMotion, bpy.types.Operator):
    """Keep the part of the avatar's motion between two times"""
    bl_idname = "avatarcine.motion_trim"
    bl_label = "Trim"

    start: FloatProperty(name="Start", default=0.0, min=0.0, unit="TIME_ABSOLUTE", description="first second kept")
    end: FloatProperty(name="End", default=0.0, min=0.0, unit="TIME_ABSOLUTE",
                       description="seconds kept until (exclusive); 0 = to the end")

    def edit(self, motion):
        return trim(motion, self.start, self.end or None)


CLASSES = (AVATARCINE_OT_motion_import, AVATARCINE_OT_motion_generate, AVATARCINE_OT_motion_retime,
           AVATARCINE_OT_motion_loop, AVATARCINE_OT_motion_trim)
