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


# Visibility of keypoints (``visible`` in meta.json), decided per keypoint from the surface it belongs to.
JOINT_TOLERANCE = 0.05     # m: another body part or actor hides a joint only when nearer than this in front of it
OWN_SURFACE_DEPTH = 0.30   # m: a joint's own body parts are its surface up to this far in front of it (a thigh)
FACE_TOLERANCE = 0.02      # m (+ 1.5 px at the vertex's depth): a face vertex this near the seen surface is on it
FACE_VISIBLE_SHARE = 1 / 3  # a face point is visible when this share of its vertices' weight is on the seen surface
OWN_PART_SHARE = 0.02      # a body part holding this share of a joint's regressor weights is one of its own


def _in_frame(px: np.ndarray, z: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    H, W = shape
    ok = np.all(np.isfinite(px), axis=-1) & np.isfinite(z) & (z > 0)
    with np.errstate(invalid="ignore"):
        return ok & (px[..., 0] >= 0) & (px[..., 0] < W) & (px[..., 1] >= 0) & (px[..., 1] < H)


def _buffer(depth_buffer: np.ndarray) -> np.ndarray:
    buf = np.asarray(depth_buffer, dtype=np.float64)
    return np.where(np.isfinite(buf) & (buf > 0), buf, np.inf)


def _window(a: np.ndarray, px: np.ndarray, radius: int) -> np.ndarray:
    j, i = int(px[0]), int(px[1])
    return a[max(i - radius, 0):i + radius + 1, max(j - radius, 0):j + radius + 1]


def visibility(pixels: np.ndarray, depth: np.ndarray, depth_buffer: np.ndarray, tol: float = JOINT_TOLERANCE,
               radius: int = 2, surface_ids: np.ndarray | None = None, own_ids: list | None = None) -> np.ndarray:
    """1 where a joint is in the frame and not occluded, else 0 (uint8, shape of ``depth``).

    A joint lies inside the body, behind the surface seen at its pixel. It is hidden only by another
    body part or another actor: when over the whole window of ``radius`` pixels around it the seen
    surface is more than ``tol`` in front of it and is not one of its own parts. ``surface_ids``
    (H, W) names the surface at each pixel (e.g. actor * 1000 + part, -1 background) and
    ``own_ids[k]`` the ids that are joint k's own (a hip's: pelvis and thigh); own surfaces count up to
    ``OWN_SURFACE_DEPTH`` in front. Without ``surface_ids`` every surface is another's. Taking any
    pixel of the window keeps joints on a silhouette edge visible. ``depth_buffer`` is (H, W)
    planar depth; background may be inf, NaN or <= 0 (no surface).
    """
    px = np.asarray(pixels, dtype=np.float64).reshape(-1, 2)
    z = np.asarray(depth, dtype=np.float64).reshape(-1)
    buf = _buffer(depth_buffer)
    out = np.zeros(len(z), np.uint8)
    for k in np.flatnonzero(_in_frame(px, z, buf.shape)):
        near = _window(buf, px[k], radius)
        seen = near >= z[k] - tol
        if surface_ids is not None and own_ids is not None:
            seen |= np.isin(_window(surface_ids, px[k], radius), list(own_ids[k])) & (near >= z[k] - OWN_SURFACE_DEPTH)
        out[k] = seen.any()
    return out.reshape(np.shape(depth))


def surface_visibility(pixels: np.ndarray, depth: np.ndarray, weights: np.ndarray, depth_buffer: np.ndarray,
                       focal: float) -> np.ndarray:
    """1 for each face point whose own surface is the surface seen, else 0 (uint8, (K,)).

    Face points (nose, eyes, ears, face landmarks) are regressed from surface vertices: ``pixels``
    (K, N, 2) and ``depth`` (K, N) of those vertices, ``weights`` (K, N) their regressor weights. A
    vertex is on the seen surface when the depth buffer at its pixel is no nearer than
    ``FACE_TOLERANCE`` plus 1.5 pixel footprints (``focal`` in pixels) in front of it; the point is
    visible when vertices holding ``FACE_VISIBLE_SHARE`` of its weight are. So a nose seen through
    the back of the head is hidden, whatever the depth of the head, and the far eye of a profile is
    hidden behind the nose bridge.
    """
    px = np.asarray(pixels, dtype=np.float64)
    z = np.asarray(depth, dtype=np.float64)
    w = np.abs(np.asarray(weights, dtype=np.float64))
    buf = _buffer(depth_buffer)
    ok = _in_frame(px, z, buf.shape) & (w > 0)
    on = np.zeros(z.shape, bool)
    seen = buf[px[ok][:, 1].astype(int), px[ok][:, 0].astype(int)]
    on[ok] = seen >= z[ok] - FACE_TOLERANCE - 1.5 * z[ok] / focal
    share = (w * on).sum(1) / np.maximum(w.sum(1), 1e-12)
    return (share >= FACE_VISIBLE_SHARE).astype(np.uint8)


def own_parts(vertex_ids: np.ndarray, weights: np.ndarray, vertex_parts: np.ndarray) -> list[set[int]]:
    """Per keypoint, the body parts holding at least ``OWN_PART_SHARE`` of its regressor weights."""
    out = []
    for ids, w in zip(vertex_ids, np.abs(weights)):
        share = np.bincount(vertex_parts[ids], weights=w, minlength=int(vertex_parts.max()) + 1) / max(w.sum(), 1e-12)
        out.append({int(p) for p in np.flatnonzero(share >= OWN_PART_SHARE)})
    return out
