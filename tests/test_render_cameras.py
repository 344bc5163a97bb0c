"""Every camera type keeps all actors in frame by default; K reproduces Blender's projection."""

import numpy as np
import pytest

from _render_util import tube_avatar, wave_motion
from render.cameras import camera_path
from render.projection import project


def _clip(T=24):
    asset = tube_avatar()
    motion = wave_motion(asset, T, walk=1.0)
    return asset.skin(motion), motion.joint_positions(asset.rest_offsets)[:, 0]


@pytest.mark.parametrize("spec", [
    {"type": "static"}, {"type": "orbit"}, {"type": "orbit", "degrees": 180, "direction": "cw", "elevation_deg": 30},
    {"type": "dolly"}, {"type": "zoom"}, {"type": "follow"}, {"type": "handheld"},
    {"shots": [{"type": "static", "seconds": 0.3}, {"type": "orbit", "degrees": 45}]},
])
def test_default_cameras_keep_actors_in_frame(spec):
    verts, root = _clip()
    W, H = 96, 64
    path = camera_path(spec, verts[:, ::5], {"bob": root}, 30.0, W, H)
    K, E = path.intrinsics(W, H), path.world_to_camera_cv()
    for t in range(len(verts)):
        uv, z = project(K[t], E[t], verts[t])
        assert (z > 0).all()
        assert (uv[:, 0] >= 0).all() and (uv[:, 0] < W).all() and (uv[:, 1] >= 0).all() and (uv[:, 1] < H).all()
    if "shots" in spec:
        assert path.shot[0] == 0 and path.shot[-1] == 1


def test_from_file_round_trips_opencv_cameras(tmp_path):
    verts, root = _clip(6)
    W, H = 80, 60
    orbit = camera_path({"type": "orbit", "degrees": 40}, verts, {"bob": root}, 30.0, W, H)
    K = orbit.intrinsics(W, H)
    K[:, 0, 2] += 3.0          # an off-centre principal point becomes a lens shift
    np.savez(tmp_path / "cams.npz", K=K, world_to_camera=orbit.world_to_camera_cv())
    back = camera_path({"type": "from_file", "path": "cams.npz"}, verts, {"bob": root}, 30.0, W, H, tmp_path)
    np.testing.assert_allclose(back.intrinsics(W, H), K, atol=1e-9)
    np.testing.assert_allclose(back.world_to_camera_cv(), orbit.world_to_camera_cv(), atol=1e-9)


def test_intrinsics_reproduce_blenders_projection():
    bpy = pytest.importorskip("bpy")
    from bpy_extras.object_utils import world_to_camera_view
    from mathutils import Vector

    from render.stage import add_camera
    verts, root = _clip(4)
    W, H = 120, 80
    spec = {"type": "zoom", "focal_start_mm": 30, "focal_end_mm": 60}
    path = camera_path(spec, verts, {"bob": root}, 30.0, W, H)
    path.shift[:] = [0.05, -0.03]
    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    scene.render.resolution_x, scene.render.resolution_y = W, H
    cam = add_camera(scene, path, np.arange(4))
    K, E = path.intrinsics(W, H), path.world_to_camera_cv()
    for t in range(4):
        scene.frame_set(t)
        uv, _ = project(K[t], E[t], verts[t, ::37])
        ndc = np.array([world_to_camera_view(scene, cam, Vector(v))[:2] for v in verts[t, ::37]])
        blender_px = np.stack([ndc[:, 0] * W, (1 - ndc[:, 1]) * H], 1)
        assert np.abs(uv - blender_px).max() < 1e-3


@pytest.mark.parametrize("heading", [90.0, -150.0])
def test_default_camera_films_the_actor_from_the_front(heading):
    from motion.ops import heading_of, place
    asset = tube_avatar()
    motion = place(wave_motion(asset, 4), heading_deg=heading)
    verts = asset.skin(motion)
    path = camera_path({"type": "static", "elevation_deg": 0}, verts, {"bob": motion.root_translation},
                       30.0, 64, 64, headings={"bob": heading_of(motion)})
    towards_camera = path.camera_to_world[0, :3, 3] - verts[0].mean(0)
    facing = np.array([np.sin(np.deg2rad(heading)), -np.cos(np.deg2rad(heading)), 0.0])
    assert towards_camera @ facing / np.linalg.norm(towards_camera) > 0.95
