"""The Blender scene of one render: actors (armature + skinned mesh + materials), the keyed camera,
ground and lights (seen by the ``rgb`` render only), and the flat-pass settings."""

from __future__ import annotations

import dataclasses

import bpy
import numpy as np

from motion.asset import AvatarAsset
from motion.motion import Motion
from motion.rotations import matrix_to_quat
from render.avatar import PART_ATTRIBUTE, BlenderActor, add_actor
from render.cameras import CameraPath
from render.engines import SEMANTIC_AOV, configure_flat
from render.keyframes import key_property

SKIN_TONE = (0.80, 0.60, 0.50, 1.0)


@dataclasses.dataclass
class Stage:
    scene: bpy.types.Scene
    actors: list[BlenderActor]
    camera: bpy.types.Object
    rgb_only: list[bpy.types.Object]       # ground + lights: hidden from the flat render
    motion_vectors: bool = False


def _material(name: str, asset: AvatarAsset) -> bpy.types.Material:
    """Textured principled skin for ``rgb``; the part colour attribute into the semantic AOV."""
    mat = bpy.data.materials.new(f"{name}_skin")
    mat.use_nodes = True
    nodes, links = mat.node_tree.nodes, mat.node_tree.links
    bsdf = next(n for n in nodes if n.type == "BSDF_PRINCIPLED")
    bsdf.inputs["Roughness"].default_value = 0.6
    if asset.texture is not None and asset.uvs is not None:
        H, W = asset.texture.shape[:2]
        image = bpy.data.images.new(f"{name}_albedo", W, H, alpha=True)
        rgba = np.ones((H, W, 4), np.float32)
        rgba[..., :3] = asset.texture[::-1] / 255.0          # Blender images start at the bottom row
        image.pixels.foreach_set(rgba.ravel())
        image.pack()
        tex = nodes.new("ShaderNodeTexImage")
        tex.image = image
        links.new(tex.outputs["Color"], bsdf.inputs["Base Color"])
    else:
        bsdf.inputs["Base Color"].default_value = SKIN_TONE
    attr = nodes.new("ShaderNodeAttribute")
    attr.attribute_type = "GEOMETRY"
    attr.attribute_name = PART_ATTRIBUTE
    aov = nodes.new("ShaderNodeOutputAOV")
    aov.aov_name = SEMANTIC_AOV
    links.new(attr.outputs["Color"], aov.inputs["Color"])
    return mat


def add_camera(scene, path: CameraPath, frames: np.ndarray, name: str = "camera") -> bpy.types.Object:
    """An ordinary Blender camera keyed with ``path`` at ``frames`` (pose, lens, shift), made the
    scene's active camera."""
    data = bpy.data.cameras.new(name)
    data.sensor_fit = "HORIZONTAL"
    data.sensor_width = path.sensor_mm
    data.clip_start, data.clip_end = 0.01, 1000.0
    cam = bpy.data.objects.new(name, data)
    scene.collection.objects.link(cam)
    scene.camera = cam
    cam.rotation_mode = "QUATERNION"
    key_property(cam, "location", frames, path.camera_to_world[:, :3, 3], f"{name}_motion")
    quats = matrix_to_quat(path.camera_to_world[:, :3, :3])
    for t in range(1, len(quats)):
        if np.dot(quats[t], quats[t - 1]) < 0:
            quats[t] = -quats[t]
    key_property(cam, "rotation_quaternion", frames, quats, f"{name}_motion")
    key_property(data, "lens", frames, path.focal_mm, f"{name}_lens")
    key_property(data, "shift_x", frames, path.shift[:, 0], f"{name}_lens")
    key_property(data, "shift_y", frames, path.shift[:, 1], f"{name}_lens")
    return cam


def _ground_and_light(scene, z: float) -> list:
    mesh = bpy.data.meshes.new("ground")
    s = 50.0
    mesh.from_pydata([(-s, -s, z), (s, -s, z), (s, s, z), (-s, s, z)], [], [(0, 1, 2, 3)])
    ground = bpy.data.objects.new("ground", mesh)
    mat = bpy.data.materials.new("ground")
    mat.use_nodes = True
    next(n for n in mat.node_tree.nodes if n.type == "BSDF_PRINCIPLED").inputs["Base Color"].default_value = (
        0.35, 0.35, 0.33, 1.0)
    mesh.materials.append(mat)
    sun = bpy.data.objects.new("sun", bpy.data.lights.new("sun", "SUN"))
    sun.data.energy = 3.0
    sun.data.angle = np.deg2rad(10.0)
    sun.rotation_euler = (np.deg2rad(40.0), np.deg2rad(10.0), np.deg2rad(-30.0))
    for obj in (ground, sun):
        scene.collection.objects.link(obj)
    world = bpy.data.worlds.new("sky")
    world.use_nodes = True
    background = next(n for n in world.node_tree.nodes if n.type == "BACKGROUND")
    background.inputs["Color"].default_value = (0.55, 0.65, 0.80, 1.0)
    background.inputs["Strength"].default_value = 0.8
    scene.world = world
    return [ground, sun]


def build_stage(actors: list[tuple[str, AvatarAsset, Motion]], camera: CameraPath, frames: np.ndarray,
                fps: float, width: int, height: int, floor_z: float = 0.0, motion_vectors: bool = False) -> Stage:
    """A fresh Blender scene with everything keyed at ``frames`` (Blender frame number = our index)."""
    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    scene.render.fps, scene.render.fps_base = _fps_fraction(fps)
    scene.render.resolution_x, scene.render.resolution_y = width, height
    scene.render.resolution_percentage = 100
    scene.frame_start, scene.frame_end = int(frames[0]), int(frames[-1])
    built = []
    for i, (name, asset, motion) in enumerate(actors):
        actor = add_actor(name, asset, motion, frames, instance_id=i + 1)
        actor.mesh.data.materials.append(_material(name, asset))
        built.append(actor)
    cam = add_camera(scene, camera, frames)
    rgb_only = _ground_and_light(scene, floor_z)
    configure_flat(scene, motion_vectors)
    return Stage(scene, built, cam, rgb_only, motion_vectors)


def _fps_fraction(fps: float) -> tuple[int, float]:
    whole = int(round(fps))
    return whole, whole / fps


def show_rgb_only(stage: Stage, visible: bool) -> None:
    for obj in stage.rgb_only:
        obj.hide_render = not visible


def show_actors(stage: Stage, visible: bool) -> None:
    """The avatars seen by the camera or not; hidden, they still cast shadows and bounce light."""
    for actor in stage.actors:
        actor.mesh.visible_camera = visible


def show_ground(stage: Stage, visible: bool) -> None:
    """The ground seen by the camera or not; hidden, it still casts shadows and bounces light."""
    for obj in stage.rgb_only:
        if obj.type == "MESH":
            obj.visible_camera = visible
