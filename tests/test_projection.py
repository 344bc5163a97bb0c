"""Camera maths vs hand-computed pinhole cases and vs Blender's own world_to_camera_view."""

from __future__ import annotations

import math

import numpy as np
import pytest

from motion.errors import UserError
from render.projection import (FACE_TOLERANCE, OWN_SURFACE_DEPTH, camera_to_world_blender, intrinsics_from_blender,
                               intrinsics_from_camera, own_parts, project, surface_visibility, visibility,
                               world_to_camera_cv)


def _rot_x(deg):
    c, s = math.cos(math.radians(deg)), math.sin(math.radians(deg))
    m = np.eye(4)
    m[1:3, 1:3] = [[c, -s], [s, c]]
    return m


def _camera_looking_along_world_y():
    """Blender camera at (0, -5, 1), rotated 90 deg about X: looks at +Y, its +Y is world +Z."""
    m = _rot_x(90)
    m[:3, 3] = [0, -5, 1]
    return m


def test_intrinsics_hand_computed():
    K = intrinsics_from_blender(50, 36, 24, "AUTO", 1920, 1080)
    assert np.allclose(K, [[50 * 1920 / 36, 0, 960], [0, 50 * 1920 / 36, 540], [0, 0, 1]])
    K = intrinsics_from_blender(50, 36, 24, "AUTO", 1080, 1920)          # portrait: width fits height
    assert np.allclose(K[0, 0], 50 * 1920 / 36) and np.allclose(K[:2, 2], [540, 960])
    K = intrinsics_from_blender(50, 36, 24, "VERTICAL", 1920, 1080)
    assert np.allclose(K[0, 0], 50 * 1080 / 24)
    K = intrinsics_from_blender(35, 36, 24, "HORIZONTAL", 1000, 2000, shift_x=0.1, shift_y=-0.2)
    assert np.allclose(K, [[35 * 1000 / 36, 0, 500 - 100], [0, 35 * 1000 / 36, 1000 - 200], [0, 0, 1]])
    with pytest.raises(UserError):
        intrinsics_from_blender(50, 36, 24, "DIAGONAL", 10, 10)


def test_project_hand_computed():
    K = intrinsics_from_blender(50, 36, 24, "AUTO", 1920, 1080)
    f = K[0, 0]
    E = world_to_camera_cv(_camera_looking_along_world_y())
    pts = np.array([[0, 0, 1], [1, 0, 1], [0, 0, 2], [0, 5, 1.5], [0, -6, 1]], float)
    uv, z = project(K, E, pts)
    assert np.allclose(z[:4], [5, 5, 5, 10]) and z[4] < 0
    assert np.allclose(uv[0], [960, 540])
    assert np.allclose(uv[1], [960 + f / 5, 540])                      # world +X is image right
    assert np.allclose(uv[2], [960, 540 - f / 5])                      # world +Z (up) is image up
    assert np.allclose(uv[3], [960, 540 - f * 0.5 / 10])
    assert np.all(np.isnan(uv[4]))                                     # behind the camera


def test_extrinsics_round_trip_and_scale():
    rng = np.random.default_rng(0)
    for _ in range(5):
        q = rng.normal(size=4)
        q /= np.linalg.norm(q)
        w, x, y, z = q
        R = np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                      [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                      [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]])
        M = np.eye(4)
        M[:3, :3], M[:3, 3] = R, rng.normal(size=3)
        E = world_to_camera_cv(M)
        assert np.allclose(camera_to_world_blender(E), M)
        assert np.allclose(E[:3, :3] @ E[:3, :3].T, np.eye(3))
        scaled = M.copy()
        scaled[:3, :3] *= 3.0
        assert np.allclose(world_to_camera_cv(scaled), E)              # scale ignored, like Blender
        # a point one metre along the Blender camera's -Z is straight ahead at depth 1
        ahead = M[:3, 3] - M[:3, 2]
        assert np.allclose((E @ np.append(ahead, 1))[:3], [0, 0, 1])


def test_visibility_against_depth_buffer():
    buf = np.full((100, 100), 2.0)
    buf[40:60, 40:60] = 1.0                                   # an occluder 1 m in front of the body
    buf[:, 90:] = np.inf                                      # background
    px = np.array([[20.5, 20.5], [50.5, 50.5], [41.0, 50.5], [95.5, 10.5], [-1, 5], [50, 100.2], [20.5, 20.5]])
    z = np.array([2.1, 2.1, 2.1, 30.0, 2.0, 2.0, 2.3])
    vis = visibility(px, z, buf, tol=0.15, radius=2)
    # inside body behind its own surface / fully occluded / window reaches past the occluder's edge /
    # on background / out of frame (x<0) / out of frame (y>=H) / deeper than the tolerance
    assert vis.tolist() == [1, 0, 1, 1, 0, 0, 0]
    assert visibility(px[:1], np.array([-1.0]), buf).tolist() == [0]       # behind the camera
    assert visibility(px[:2], z[:2], np.where(buf == 2.0, 0.0, buf)).tolist() == [1, 0]   # 0 = background


def test_joints_are_hidden_only_by_other_parts_or_actors():
    buf = np.full((60, 60), 2.0)
    ids = np.full((60, 60), 1003)                             # actor 1, part 3 everywhere ...
    buf[:, :30], ids[:, :30] = 1.8, 1004                      # ... a nearer surface of part 4 on the left
    buf[40:, :], ids[40:, :] = 2.0 - OWN_SURFACE_DEPTH - 0.05, 1004   # ... and part 4 far in front at the bottom
    px = np.array([[10.5, 10.5], [10.5, 10.5], [45.5, 10.5], [10.5, 50.5], [10.5, 10.5]])
    z = np.full(5, 2.0)
    own = [{1004}, {1003}, {1004}, {1004}, set()]
    # behind its own part 4 (20 cm) / behind part 4, not its own / behind its own surface 0 cm / own part 4
    # but more than OWN_SURFACE_DEPTH in front / behind part 4 of another joint's
    assert visibility(px, z, buf, surface_ids=ids, own_ids=own).tolist() == [1, 0, 1, 0, 0]
    assert visibility(px[:1], z[:1], buf).tolist() == [0]     # without surface ids every surface occludes
    other_actor = np.where(ids == 1004, 2004, ids)            # the same surface, but another actor's
    assert visibility(px[:1], z[:1], buf, surface_ids=other_actor, own_ids=own[:1]).tolist() == [0]


def test_face_points_follow_their_surface_vertices():
    buf = np.full((40, 40), 3.0)
    buf[:, 20:] = 2.0                                          # the right half is 1 m nearer (the back of a head)
    focal = 100.0
    px = np.array([[[5.5, 5.5], [6.5, 5.5], [25.5, 5.5]], [[25.5, 5.5], [26.5, 5.5], [5.5, 5.5]]])
    z = np.array([[3.0, 3.0 + FACE_TOLERANCE / 2, 3.0], [3.0, 3.0, 3.0]])
    w = np.array([[0.4, 0.3, 0.3], [0.5, 0.3, 0.2]])
    # point 0: 70 % of its weight on the seen surface; point 1: 20 %, the rest behind the nearer half
    assert surface_visibility(px, z, w, buf, focal).tolist() == [1, 0]
    assert surface_visibility(px, z + 0.5, w, buf, focal).tolist() == [0, 0]   # everything 0.5 m behind


def test_own_parts_are_the_parts_holding_a_share_of_the_regressor():
    vertex_parts = np.array([0, 1, 1, 2, 3])
    ids = np.array([[1, 2, 3, 4], [0, 1, 4, 4]])
    weights = np.array([[0.5, 0.3, 0.19, 0.01], [0.99, 0.01, 0.0, 0.0]])
    assert own_parts(ids, weights, vertex_parts) == [{1, 2}, {0}]


def test_matches_blender_world_to_camera_view():
    bpy = pytest.importorskip("bpy")
    from bpy_extras.object_utils import world_to_camera_view
    from mathutils import Matrix, Vector

    scene = bpy.data.scenes.new("projection_test")
    cam_data = bpy.data.cameras.new("projection_test")
    cam = bpy.data.objects.new("projection_test", cam_data)
    try:
        rng = np.random.default_rng(1)
        cases = [("AUTO", 640, 480, 100, 0.0, 0.0), ("AUTO", 480, 640, 50, 0.1, -0.05),
                 ("HORIZONTAL", 320, 400, 100, -0.2, 0.1), ("VERTICAL", 500, 300, 100, 0.05, 0.2)]
        for fit, W, H, percent, sx, sy in cases:
            scene.render.resolution_x, scene.render.resolution_y = W, H
            scene.render.resolution_percentage = percent
            cam_data.lens, cam_data.sensor_width, cam_data.sensor_height = 42.0, 36.0, 20.0
            cam_data.sensor_fit, cam_data.shift_x, cam_data.shift_y = fit, sx, sy
            M = _camera_looking_along_world_y() @ _rot_x(rng.uniform(-10, 10))
            cam.matrix_world = Matrix(M.tolist())
            K = intrinsics_from_camera(cam_data, scene.render)
            W, H = W * percent // 100, H * percent // 100
            pts = rng.uniform([-2, 0, -1], [2, 6, 3], size=(20, 3))
            uv, z = project(K, world_to_camera_cv(np.array(cam.matrix_world)), pts)
            for p, (u, v), d in zip(pts, uv, z):
                ndc = world_to_camera_view(scene, cam, Vector(p.tolist()))
                assert np.allclose([u, v, d], [ndc.x * W, (1 - ndc.y) * H, ndc.z], atol=1e-3), (fit, p)
    finally:
        bpy.data.objects.remove(cam)
        bpy.data.cameras.remove(cam_data)
        bpy.data.scenes.remove(scene)
