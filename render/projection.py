"""Pinhole camera maths shared by the renderer and the passes contract (numpy only, no bpy).

Conventions (``render.meta``):

- OpenCV camera frame: x right, y down, z forward (into the scene); ``world_to_camera_cv`` maps
  world points (Blender world, Z up, metres) into it.
- Blender camera frame: the camera looks down its local -Z with +Y up; ``camera_to_world_blender`` is
  the camera object's ``matrix_world`` without scale. The two frames differ by a flip of y and z:
  ``camera_to_world_cv = camera_to_world_blender @ diag(1, -1, -1, 1)``.
- Pixels: x right, y down, origin at the top-left corner of the top-left pixel, so the image centre
  is (W / 2, H / 2) and pixel (i, j) covers [j, j + 1) x [i, i + 1). ``K`` maps camera coordinates
  to these continuous pixel coordinates: ``u = fx x / z + cx``, ``v = fy y / z + cy``.
- Depth: planar camera depth z (metres along the optical axis), as Blender's Z pass stores it.
"""

from __future__ import annotations

import numpy as np

from motion.errors import UserError

CV_FROM_BLENDER_CAMERA = np.diag([1.0, -1.0, -1.0, 1.0])   # flips y and z; its own inverse


def _rigid(matrix: np.ndarray) -> np.ndarray:
    """A 4x4 transform with its scale (column norms of the 3x3 block) removed."""
    m = np.array(matrix, dtype=np.float64).reshape(4, 4)
    m[:3, :3] /= np.linalg.norm(m[:3, :3], axis=0)
    return m


def world_to_camera_cv(camera_to_world_blender: np.ndarray) -> np.ndarray:
    """Blender camera ``matrix_world`` (scale ignored, as Blender's own projection does) -> OpenCV
    world-to-camera extrinsics (4x4)."""
    return CV_FROM_BLENDER_CAMERA @ np.linalg.inv(_rigid(camera_to_world_blender))


def camera_to_world_blender(world_to_camera_cv: np.ndarray) -> np.ndarray:
    """OpenCV world-to-camera extrinsics -> the Blender camera's (unscaled) ``matrix_world``."""
    return np.linalg.inv(np.asarray(world_to_camera_cv, dtype=np.float64)) @ CV_FROM_BLENDER_CAMERA


def intrinsics_from_blender(lens: float, sensor_width: float, sensor_height: float, sensor_fit: str,
                            width: int, height: int, shift_x: float = 0.0, shift_y: float = 0.0) -> np.ndarray:
    """K (3x3) of a perspective Blender camera rendering ``width`` x ``height`` square pixels.

    Blender (``BKE_camera_params_compute_viewplane``): the fitted sensor dimension spans ``viewfac``
    pixels, ``viewfac = width`` for HORIZONTAL fit, ``height`` for VERTICAL, and for AUTO the larger
    of the two with ``sensor_width`` as its size; shifts are fractions of ``viewfac``. Hence
    ``f = lens * viewfac / sensor``, ``cx = W / 2 - shift_x * viewfac``, ``cy = H / 2 + shift_y * viewfac``
    (image y points down, Blender's shift_y up). ``width``/``height`` are the final pixel counts
    (resolution times percentage).
    """
    fit = sensor_fit.upper()
    if fit == "AUTO":
        horizontal, sensor = width >= height, sensor_width
    elif fit == "HORIZONTAL":
        horizontal, sensor = True, sensor_width
    elif fit == "VERTICAL":
        horizontal, sensor = False, sensor_height
    else:
        raise UserError("sensor_fit", f"unknown sensor fit {sensor_fit!r} (AUTO, HORIZONTAL or VERTICAL)")
    if lens <= 0 or sensor <= 0 or width <= 0 or height <= 0:
        raise UserError("camera", f"lens {lens}, sensor {sensor}, resolution {width}x{height} must be positive")
    viewfac = float(width if horizontal else height)
    f = lens * viewfac / sensor
    return np.array([[f, 0.0, width / 2.0 - shift_x * viewfac],
                     [0.0, f, height / 2.0 + shift_y * viewfac],
                     [0.0, 0.0, 1.0]])


def intrinsics_from_camera(camera_data, render) -> np.ndarray:
    """K from a ``bpy.types.Camera`` and ``scene.render`` (duck-typed: only attributes are read)."""
    if camera_data.type != "PERSP":
        raise UserError(getattr(camera_data, "name", "camera"),
                        f"camera type {camera_data.type} is not supported (use PERSP)")
    if render.pixel_aspect_x != render.pixel_aspect_y:
        raise UserError("render.pixel_aspect", "non-square pixels are not supported")
    scale = render.resolution_percentage / 100.0
    width, height = int(render.resolution_x * scale), int(render.resolution_y * scale)
    return intrinsics_from_blender(camera_data.lens, camera_data.sensor_width, camera_data.sensor_height,
                                   camera_data.sensor_fit, width, height, camera_data.shift_x, camera_data.shift_y)


def project(K: np.ndarray, world_to_camera: np.ndarray, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """World points (..., 3) -> (pixels (..., 2) [x right, y down], camera depth z (...)).

    Points behind the camera (z <= 0) get NaN pixels; their depth is returned as is.
    """
    p = np.asarray(points, dtype=np.float64)
    E = np.asarray(world_to_camera, dtype=np.float64)
    cam = p @ E[:3, :3].T + E[:3, 3]
    z = cam[..., 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        uv = (cam @ np.asarray(K, dtype=np.float64).T)[..., :2] / z[..., None]
    uv[z <= 0] = np.nan
    return uv, z


def visibility(pixels: np.ndarray, depth: np.ndarray, depth_buffer: np.ndarray, tol: float = 0.15,
               radius: int = 2) -> np.ndarray:
    """1 where a point is in the frame and not occluded, else 0 (uint8, shape of ``depth``).

    Joints lie inside the body, behind the surface the depth buffer sees at their pixel, by up to
    the half-thickness of the body part (~0.05 m at a wrist, ~0.12 m at a hip). So a point at depth z
    is visible when some surface within ``radius`` pixels of it is no more than ``tol`` in front of
    it: ``z <= max(buffer[window]) + tol``. Taking the farthest surface in the window keeps joints
    on a silhouette edge (window reaches the background) and under thin occluders visible, while a
    limb or another person crossing in front (surface nearer by more than ``tol`` over the whole
    window) hides it. Default ``tol`` 0.15 m: a torso's half-thickness plus margin.
    ``depth_buffer`` is (H, W) planar depth; background may be inf, NaN or <= 0 (no surface).
    """
    px = np.asarray(pixels, dtype=np.float64).reshape(-1, 2)
    z = np.asarray(depth, dtype=np.float64).reshape(-1)
    buf = np.asarray(depth_buffer, dtype=np.float64)
    H, W = buf.shape
    buf = np.where(np.isfinite(buf) & (buf > 0), buf, np.inf)
    out = np.zeros(len(z), np.uint8)
    finite = np.all(np.isfinite(px), axis=1) & np.isfinite(z)
    ok = finite & (z > 0)
    ok[finite] &= (px[finite, 0] >= 0) & (px[finite, 0] < W) & (px[finite, 1] >= 0) & (px[finite, 1] < H)
    for k in np.flatnonzero(ok):
        j, i = int(px[k, 0]), int(px[k, 1])
        window = buf[max(i - radius, 0):i + radius + 1, max(j - radius, 0):j + radius + 1]
        out[k] = z[k] <= window.max() + tol
    return out.reshape(np.shape(depth))
