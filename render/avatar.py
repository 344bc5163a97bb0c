"""An avatar in Blender: an armature with the body's bones, a skinned mesh (one vertex group per
joint, the asset's skin weights), bone rotations keyed from the motion, and SMPL-family pose
correctives as keyed shape keys. An artist can open the saved .blend and edit any of it.

Posing. For a bone with rest matrix ``B_j`` (armature space, read back from Blender after the edit
bones are made from ``rest_joints``/``bone_tails``) and our skinning transform ``v -> A_j (v - J_j) + p_j``
(``motion.asset``), the posed bone matrix is ``P_j = [A_j R_j | p_j]``, since Blender deforms by
``P_j B_j^-1``. The keyed local transform is ``B_j^-1 B_parent P_parent^-1 P_j`` (Blender's pose
chain with inherited rotation and scale), so Blender's evaluated mesh equals ``AvatarAsset.skin``.

Correctives (``motion.asset``): shape ``9 (j - 1) + 3 a + b`` is weighted by ``(R_j - I)[a, b]`` with
``R_j`` joint j's local rotation matrix; Blender applies shape keys before the armature, as
``AvatarAsset.skin`` adds them to the rest mesh before skinning.
"""

from __future__ import annotations

import dataclasses

import bpy
import numpy as np

from motion.asset import AvatarAsset
from motion.motion import Motion
from motion.rotations import axis_angle_to_matrix, matrix_to_quat, quat_continuous
from render.keyframes import key_property

PART_ATTRIBUTE = "avatarcine_part_colour"


@dataclasses.dataclass
class BlenderActor:
    name: str
    armature: bpy.types.Object
    mesh: bpy.types.Object
    instance_id: int


def _has_correctives(asset: AvatarAsset) -> bool:
    return asset.corrective_shapes is not None and len(asset.corrective_shapes) > 0


def corrective_weights(asset: AvatarAsset, motion: Motion) -> np.ndarray | None:
    """(T, S) shape-key values of the pose correctives, or None when the asset has none."""
    if not _has_correctives(asset):
        return None
    R = axis_angle_to_matrix(motion.rotations[:, 1:])                      # (T, J-1, 3, 3)
    feats = (R - np.eye(3)).reshape(motion.n_frames, -1)
    return feats


def _bone_rest_matrices(arm_data: bpy.types.Armature, names: list[str]) -> np.ndarray:
    return np.array([np.array(arm_data.bones[n].matrix_local) for n in names])


def pose_basis(asset: AvatarAsset, motion: Motion, rest: np.ndarray) -> np.ndarray:
    """(T, J, 4, 4) pose-bone ``matrix_basis`` reproducing our skinning (module doc)."""
    G, p = motion.global_transforms(asset.rest_offsets)
    T, J = p.shape[:2]
    P = np.zeros((T, J, 4, 4))
    P[..., :3, :3] = G @ asset.model_to_world.T @ rest[:, :3, :3]
    P[..., :3, 3] = p
    P[..., 3, 3] = 1.0
    rest_inv = np.linalg.inv(rest)
    basis = np.empty_like(P)
    for j in range(J):
        parent = asset.parents[j]
        if parent < 0:
            basis[:, j] = rest_inv[j] @ P[:, j]
        else:
            basis[:, j] = rest_inv[j] @ rest[parent] @ np.linalg.inv(P[:, parent]) @ P[:, j]
    return basis


def _make_armature(name: str, asset: AvatarAsset, collection) -> bpy.types.Object:
    data = bpy.data.armatures.new(f"{name}_skeleton")
    arm = bpy.data.objects.new(name, data)
    collection.objects.link(arm)
    view_layer = bpy.context.view_layer
    previous = view_layer.objects.active
    view_layer.objects.active = arm
    bpy.ops.object.mode_set(mode="EDIT")
    bones = []
    for j, joint in enumerate(asset.joint_names):
        bone = data.edit_bones.new(joint)
        bone.head = asset.rest_joints[j]
        tail = asset.bone_tails[j]
        if np.linalg.norm(tail - asset.rest_joints[j]) < 1e-4:   # Blender drops zero-length bones
            tail = asset.rest_joints[j] + np.array([0.0, 0.0, 0.02])
        bone.tail = tail
        bone.roll = 0.0
        bones.append(bone)
    for j, parent in enumerate(asset.parents):
        if parent >= 0:
            bones[j].parent = bones[parent]
            bones[j].use_connect = False
    bpy.ops.object.mode_set(mode="OBJECT")
    view_layer.objects.active = previous
    return arm


def _make_mesh(name: str, asset: AvatarAsset, arm: bpy.types.Object, collection) -> bpy.types.Object:
    mesh = bpy.data.meshes.new(f"{name}_body")
    V, F = len(asset.rest_vertices), len(asset.faces)
    mesh.vertices.add(V)
    mesh.vertices.foreach_set("co", asset.rest_vertices.astype(np.float32).ravel())
    mesh.loops.add(3 * F)
    mesh.loops.foreach_set("vertex_index", asset.faces.astype(np.int32).ravel())
    mesh.polygons.add(F)
    mesh.polygons.foreach_set("loop_start", np.arange(0, 3 * F, 3, dtype=np.int32))
    mesh.polygons.foreach_set("use_smooth", np.ones(F, dtype=bool))
    mesh.update(calc_edges=True)
    mesh.validate(clean_customdata=False)
    # Semantic colour per face: the part of the face's first vertex (raw palette value, linear floats).
    colour = mesh.color_attributes.new(PART_ATTRIBUTE, "FLOAT_COLOR", "FACE")
    rgba = np.ones((F, 4), np.float32)
    rgba[:, :3] = asset.part_palette[asset.vertex_parts[asset.faces[:, 0]]] / 255.0
    colour.data.foreach_set("color", rgba.ravel())
    if asset.uvs is not None:
        mesh.uv_layers.new(name="UVMap").data.foreach_set("uv", asset.uvs.astype(np.float32).ravel())
    obj = bpy.data.objects.new(f"{name}_body", mesh)
    collection.objects.link(obj)
    for j, joint in enumerate(asset.joint_names):
        obj.vertex_groups.new(name=joint)
    groups = obj.vertex_groups
    for k in range(asset.skin_indices.shape[1]):
        for v, (j, w) in enumerate(zip(asset.skin_indices[:, k].tolist(), asset.skin_weights[:, k].tolist())):
            if w > 0:
                groups[j].add([v], w, "ADD")
    obj.parent = arm
    modifier = obj.modifiers.new("Armature", "ARMATURE")
    modifier.object = arm
    modifier.use_vertex_groups = True
    modifier.use_deform_preserve_volume = False
    return obj


def _add_corrective_shapes(obj: bpy.types.Object, asset: AvatarAsset) -> None:
    obj.shape_key_add(name="Basis", from_mix=False)
    rest = asset.rest_vertices
    for name, shape in zip(asset.corrective_names, asset.corrective_shapes):
        key = obj.shape_key_add(name=name, from_mix=False)
        key.slider_min, key.slider_max = -10.0, 10.0
        key.data.foreach_set("co", (rest + shape).astype(np.float32).ravel())


def build_actor(name: str, asset: AvatarAsset, instance_id: int, collection=None) -> BlenderActor:
    """Armature + skinned mesh for ``asset`` in its rest pose (pose correctives as shape keys)."""
    collection = collection or bpy.context.scene.collection
    arm = _make_armature(name, asset, collection)
    obj = _make_mesh(name, asset, arm, collection)
    obj.pass_index = instance_id
    if _has_correctives(asset):
        _add_corrective_shapes(obj, asset)
    return BlenderActor(name, arm, obj, instance_id)


def key_motion(actor: BlenderActor, asset: AvatarAsset, motion: Motion, frames: np.ndarray) -> None:
    """Key ``motion`` on the actor's bones and corrective shape keys (one pose per entry of
    ``frames``), replacing any motion keyed before."""
    asset.check_motion(motion)
    arm, shape_keys = actor.armature, actor.mesh.data.shape_keys
    for id_data in (arm, shape_keys):
        if id_data is not None and id_data.animation_data is not None:
            id_data.animation_data.action = None
    basis = pose_basis(asset, motion, _bone_rest_matrices(arm.data, asset.joint_names))
    quats = quat_continuous(matrix_to_quat(basis[..., :3, :3]))
    for j, joint in enumerate(asset.joint_names):
        bone = arm.pose.bones[joint]
        bone.rotation_mode = "QUATERNION"
        path = f'pose.bones["{joint}"]'
        key_property(arm, f"{path}.rotation_quaternion", frames, quats[:, j], f"{actor.name}_motion")
        key_property(arm, f"{path}.location", frames, basis[:, j, :3, 3], f"{actor.name}_motion")
    weights = corrective_weights(asset, motion)
    if weights is not None:
        for s, name in enumerate(asset.corrective_names):
            key_property(shape_keys, f'key_blocks["{name}"].value', frames, weights[:, s], f"{actor.name}_correctives")


def add_actor(name: str, asset: AvatarAsset, motion: Motion, frames: np.ndarray, instance_id: int,
              collection=None) -> BlenderActor:
    """Build armature + skinned mesh for ``asset`` and key ``motion`` (one pose per entry of ``frames``)."""
    asset.check_motion(motion)
    actor = build_actor(name, asset, instance_id, collection)
    key_motion(actor, asset, motion, frames)
    return actor


def evaluated_vertices(obj: bpy.types.Object) -> np.ndarray:
    """World-space vertices (V, 3) of ``obj`` as Blender evaluates it at the current frame."""
    depsgraph = bpy.context.evaluated_depsgraph_get()
    evaluated = obj.evaluated_get(depsgraph)
    mesh = evaluated.to_mesh()
    try:
        co = np.empty(len(mesh.vertices) * 3, np.float32)
        mesh.vertices.foreach_get("co", co)
    finally:
        evaluated.to_mesh_clear()
    M = np.array(evaluated.matrix_world)
    return co.reshape(-1, 3) @ M[:3, :3].T + M[:3, 3]
