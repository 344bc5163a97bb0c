"""The Blender scene as a scene description for ``render.api.render_scene`` (``render.scene_config``):
the render's fps, resolution and frame range, every avatar that renders (its asset file and its motion
moved by the armature's object transform), and the active camera as the artist left it.

The camera. A camera made by the Cameras section keeps its script (``CAMERA_KEY``); while Blender's
camera still is that script's path over the current actors and frames, the script itself goes into
the scene, so the add-on and ``avatarcine render`` of the same scene write the same files. Otherwise
(keys edited, the camera moved, another camera) the camera is sampled at every frame as Blender
evaluates it and goes in as a ``from_file`` camera: what the artist sees is what renders.

Inputs the scene needs beyond the artist's files (moved motions, sampled cameras) are written into a
folder under names made from their content, so a changed input never reuses an old render's frames.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from motion.asset import AvatarAsset
from motion.errors import UserError
from motion.fileio import save_json
from motion.motion import Motion
from motion.ops import transform
from render.api import scene_camera
from render.cameras import CameraPath
from render.projection import intrinsics_from_camera, world_to_camera_cv

from .avatar_ops import AVATAR_KEY, MOTION_KEY, scene_avatars
from .motion_ops import scene_fps

CAMERA_KEY = "avatarcine_camera"      # camera custom property: the camera spec (JSON) it was made from


def _digest(*parts: bytes) -> str:
    h = hashlib.sha1()
    for part in parts:
        h.update(part)
    return h.hexdigest()[:12]


def resolution(scene) -> tuple[int, int]:
    """The rendered size in pixels (resolution times its percentage)."""
    scale = scene.render.resolution_percentage / 100.0
    return int(scene.render.resolution_x * scale), int(scene.render.resolution_y * scale)


def _actor(arm, fps: float, folder: Path) -> dict:
    """The scene entry of avatar ``arm``: its motion file as is at the origin, else moved by the
    armature's world transform into a new file (the rest pose when it has no motion)."""
    matrix = np.array(arm.matrix_world, dtype=np.float64)
    motion_path = arm.get(MOTION_KEY)
    if motion_path and np.array_equal(matrix, np.eye(4)):
        return {"name": arm.name, "avatar": arm[AVATAR_KEY], "motion": motion_path}
    motion = Motion.load(motion_path) if motion_path else AvatarAsset.load(arm[AVATAR_KEY]).rest_motion(1, fps)
    try:
        motion = transform(motion, matrix)
    except UserError as exc:
        raise UserError(arm.name, f"placement is {exc.problem}") from None
    rotations, root = motion.rotations.astype(np.float32), motion.root_translation.astype(np.float32)
    path = folder / f"{arm.name}-{_digest(rotations.tobytes(), root.tobytes(), str(motion.fps).encode())}.motion.npz"
    if not path.is_file():
        motion.save(path)
    return {"name": arm.name, "avatar": arm[AVATAR_KEY], "motion": str(path)}


def scene_without_camera(context, folder: Path) -> dict:
    """fps, resolution, frames and actors of the Blender scene (no camera, no passes yet)."""
    scene = context.scene
    avatars = scene_avatars(scene)
    if not avatars:
        raise UserError("Avatars", "the scene has no avatar that renders: add or bake one first")
    folder.mkdir(parents=True, exist_ok=True)
    context.view_layer.update()                 # object matrices current after edits by scripts
    fps = scene_fps(scene)
    return {"fps": fps, "resolution": list(resolution(scene)),
            "frames": {"start": scene.frame_start, "end": scene.frame_end},
            "actors": [_actor(arm, fps, folder) for arm in avatars]}


def sample_camera(scene, camera, frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(T, 3, 3) K and (T, 4, 4) OpenCV world-to-camera of ``camera`` as Blender evaluates it at ``frames``."""
    current = scene.frame_current
    Ks, Es = [], []
    try:
        for frame in frames:
            scene.frame_set(int(frame))
            Ks.append(intrinsics_from_camera(camera.data, scene.render))
            Es.append(world_to_camera_cv(np.array(camera.matrix_world, dtype=np.float64)))
    finally:
        scene.frame_set(current)
    return np.stack(Ks), np.stack(Es)


def is_path(path: CameraPath, K: np.ndarray, E: np.ndarray, width: int, height: int) -> bool:
    """Whether the sampled camera is ``path``. Keys and Blender's matrices hold float32, so the two
    agree to ~1e-7 relative; 1e-5 passes that and catches any edit an image could show (1e-5 of a
    metre or of a 1000 px focal length is far below a pixel)."""
    return (np.allclose(path.intrinsics(width, height), K, rtol=1e-5, atol=1e-5)
            and np.allclose(path.world_to_camera_cv(), E, rtol=1e-5, atol=1e-5))


def camera_entry(context, scene_dict: dict, folder: Path) -> dict:
    """The scene's ``camera``: the script of an unedited add-on camera, else the sampled camera."""
    scene = context.scene
    camera = scene.camera
    if camera is None or camera.type != "CAMERA":
        raise UserError("Camera", "the scene has no active camera: create one in the Cameras section")
    frames = np.arange(scene.frame_start, scene.frame_end + 1)
    K, E = sample_camera(scene, camera, frames)
    if CAMERA_KEY in camera:
        spec = json.loads(camera[CAMERA_KEY])
        try:
            _, path = scene_camera({**scene_dict, "camera": spec})
        except UserError:                       # the script no longer applies (e.g. its target is gone)
            path = None
        if path is not None and is_path(path, K, E, *resolution(scene)):
            return spec
    data = {"K": K.tolist(), "world_to_camera": E.tolist()}
    file = folder / f"camera-{_digest(json.dumps(data).encode())}.json"
    save_json(file, data)
    return {"type": "from_file", "path": str(file)}


def write_scene(scene_dict: dict, folder: Path) -> Path:
    """``scene_dict`` as ``folder/scene-<digest>.json`` (the file ``avatarcine render`` can render too)."""
    text = json.dumps(scene_dict, indent=1)
    return save_json(folder / f"scene-{_digest(text.encode())}.json", scene_dict)
