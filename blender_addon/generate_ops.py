"""Video generation from a passes folder: the backend Python runs ``avatarcine generate`` with the chosen
method and the settings of its controls (``blender_addon.method_settings``), and the result comes back
as a movie strip in the sequencer plus an image plane or the active camera's background."""

from __future__ import annotations

import json
from pathlib import Path

import bpy
from mathutils import Vector

from motion.errors import UserError

from . import method_settings
from .jobs import Job
from .operators import JobOperator
from .preferences import backend, unique_path, work_dir

VIDEO = "video.mp4"
PLANE_HEIGHT = 2.0                     # metres: the height of a standing person, so it reads at scale


class AVATARCINE_OT_methods_refresh(JobOperator, bpy.types.Operator):
    """Ask the backend Python for its diffusion methods and their settings (avatarcine methods --json)"""
    bl_idname = "avatarcine.methods_refresh"
    bl_label = "Refresh Methods"
    job_kind = "methods"
    bl_options = {"REGISTER"}

    def make_job(self, context):
        return Job([backend(context) + ["methods", "--json"]], "list methods")

    def finish(self, context, job):
        method_settings.set_methods(job.stdout)
        names = sorted(method_settings.METHODS)
        s = context.scene.avatarcine
        if names and s.method not in names:
            s.method = names[0]
        self.report({"INFO"}, f"methods: {', '.join(names)}")


def first_frame(passes: Path) -> int:
    """The first frame of a passes folder (where the generated video starts on the timeline)."""
    try:
        return int(json.loads((passes / "meta.json").read_text())["frames_range"][0])
    except (OSError, ValueError, KeyError, IndexError, TypeError):
        raise UserError(passes / "meta.json", "not a passes folder (render passes first)") from None


def _movie(path: Path) -> bpy.types.Image:
    image = bpy.data.images.load(str(path), check_existing=True)
    if image.source != "MOVIE" or image.frame_duration < 1:
        raise UserError(path, "Blender cannot read this video")
    return image


def _play(user, image: bpy.types.Image, start: int) -> None:
    user.frame_start, user.frame_duration, user.use_auto_refresh = start, image.frame_duration, True


def add_strip(scene, path: Path, start: int):
    editor = scene.sequence_editor or scene.sequence_editor_create()
    strips = editor.strips if hasattr(editor, "strips") else editor.sequences     # Blender 4.4+ / 4.2
    channel = 1 + max((s.channel for s in strips), default=0)
    return strips.new_movie(name=path.parent.name, filepath=str(path), channel=channel, frame_start=start)


def add_plane(context, image: bpy.types.Image, start: int) -> bpy.types.Object:
    """A plane at the 3D cursor facing -Y (Blender's front view) showing the video, unlit."""
    w, h = image.size
    half_w, half_h = PLANE_HEIGHT * w / h / 2, PLANE_HEIGHT / 2
    mesh = bpy.data.meshes.new(image.name)
    mesh.from_pydata([(-half_w, 0, -half_h), (half_w, 0, -half_h), (half_w, 0, half_h), (-half_w, 0, half_h)], [],
                     [(0, 1, 2, 3)])
    mesh.uv_layers.new(name="UVMap").data.foreach_set("uv", [0, 0, 1, 0, 1, 1, 0, 1])
    material = bpy.data.materials.new(image.name)
    material.use_nodes = True
    nodes, links = material.node_tree.nodes, material.node_tree.links
    nodes.clear()
    texture, emission, output = (nodes.new(t) for t in ("ShaderNodeTexImage", "ShaderNodeEmission",
                                                        "ShaderNodeOutputMaterial"))
    texture.image = image
    _play(texture.image_user, image, start)
    links.new(texture.outputs["Color"], emission.inputs["Color"])
    links.new(emission.outputs["Emission"], output.inputs["Surface"])
    mesh.materials.append(material)
    plane = bpy.data.objects.new(image.name, mesh)
    plane.location = context.scene.cursor.location + Vector((0.0, 0.0, half_h))   # standing on the cursor
    context.collection.objects.link(plane)
    return plane


def add_background(scene, image: bpy.types.Image, start: int) -> None:
    camera = scene.camera
    if camera is None or camera.type != "CAMERA":
        raise UserError("Camera", "the scene has no active camera to show the video behind")
    background = camera.data.background_images.new()
    background.source = "IMAGE"
    background.image = image
    _play(background.image_user, image, start)
    camera.data.show_background_images = True


class AVATARCINE_OT_generate_video(JobOperator, bpy.types.Operator):
    """Generate a video from the passes folder with the chosen method in the backend Python, then load it"""
    bl_idname = "avatarcine.generate_video"
    bl_label = "Generate Video"
    job_kind = "generate"

    @classmethod
    def ready(cls, context):
        return context.scene.avatarcine.method in method_settings.METHODS

    def make_job(self, context):
        s = context.scene.avatarcine
        passes = Path(bpy.path.abspath(s.generate_passes))
        self.start = first_frame(passes)
        self.output = unique_path(work_dir(context) / "videos", s.method, "")
        flags = method_settings.command_flags(getattr(context.scene, method_settings.scene_attribute(s.method)),
                                              s.method)
        command = backend(context) + ["generate", passes, "--method", s.method, *flags, "-o", self.output]
        return Job([command], f"generate {s.method}")

    def finish(self, context, job):
        video = self.output / VIDEO
        image = _movie(video)
        show = context.scene.avatarcine.show_video
        if show == "CAMERA":
            add_background(context.scene, image, self.start)
        add_strip(context.scene, video, self.start)
        if show == "PLANE":
            add_plane(context, image, self.start)
        self.report({"INFO"}, f"video: {video}")


CLASSES = (AVATARCINE_OT_methods_refresh, AVATARCINE_OT_generate_video)
