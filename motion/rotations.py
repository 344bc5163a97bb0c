"""Rotation maths in plain numpy (Blender's Python has no torch or scipy).

Quaternions are (w, x, y, z), like Blender's ``mathutils.Quaternion``. Axis-angle vectors follow
the SMPL convention: direction = axis, norm = angle in radians. All functions broadcast over
leading dimensions.
"""

from __future__ import annotations

import numpy as np

_EPS = 1e-12


def quat_normalize(q: np.ndarray) -> np.ndarray:
    return q / np.maximum(np.linalg.norm(q, axis=-1, keepdims=True), _EPS)


def quat_continuous(q: np.ndarray) -> np.ndarray:
    """Flip signs along axis 0 so consecutive quaternions (T, ..., 4) are in the same hemisphere
    (interpolating keys then takes the short way)."""
    q = np.array(q, dtype=np.float64, copy=True)
    for t in range(1, len(q)):
        flip = np.sum(q[t] * q[t - 1], axis=-1) < 0
        q[t][flip] *= -1
    return q


def axis_angle_to_quat(aa: np.ndarray) -> np.ndarray:
    aa = np.asarray(aa, dtype=np.float64)
    angle = np.linalg.norm(aa, axis=-1, keepdims=True)
    half = 0.5 * angle
    # sin(half)/angle, with its limit 0.5 near zero
    scale = np.where(angle > 1e-8, np.sin(half) / np.maximum(angle, _EPS), 0.5 - angle**2 / 48.0)
    return np.concatenate([np.cos(half), aa * scale], axis=-1)


def quat_to_axis_angle(q: np.ndarray) -> np.ndarray:
    q = quat_normalize(np.asarray(q, dtype=np.float64))
    q = np.where(q[..., :1] < 0, -q, q)  # shortest rotation: angle in [0, pi]
    xyz = q[..., 1:]
    s = np.linalg.norm(xyz, axis=-1, keepdims=True)
    angle = 2.0 * np.arctan2(s, q[..., :1])
    scale = np.where(s > 1e-8, angle / np.maximum(s, _EPS), 2.0 / np.maximum(q[..., :1], _EPS))
    return xyz * scale


def quat_to_matrix(q: np.ndarray) -> np.ndarray:
    w, x, y, z = np.moveaxis(quat_normalize(np.asarray(q, dtype=np.float64)), -1, 0)
    return np.stack([
        np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)], -1),
        np.stack([2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)], -1),
        np.stack([2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], -1),
    ], -2)


def matrix_to_quat(m: np.ndarray) -> np.ndarray:
    """Rotation matrix -> unit quaternion (Shepperd's method, branch per element)."""
    m = np.asarray(m, dtype=np.float64)
    m00, m11, m22 = m[..., 0, 0], m[..., 1, 1], m[..., 2, 2]
    trace = m00 + m11 + m22
    cands = np.stack([
        np.stack([1 + trace, m[..., 2, 1] - m[..., 1, 2], m[..., 0, 2] - m[..., 2, 0], m[..., 1, 0] - m[..., 0, 1]], -1),
        np.stack([m[..., 2, 1] - m[..., 1, 2], 1 + m00 - m11 - m22, m[..., 0, 1] + m[..., 1, 0], m[..., 0, 2] + m[..., 2, 0]], -1),
        np.stack([m[..., 0, 2] - m[..., 2, 0], m[..., 0, 1] + m[..., 1, 0], 1 - m00 + m11 - m22, m[..., 1, 2] + m[..., 2, 1]], -1),
        np.stack([m[..., 1, 0] - m[..., 0, 1], m[..., 0, 2] + m[..., 2, 0], m[..., 1, 2] + m[..., 2, 1], 1 - m00 - m11 + m22], -1),
    ], -2)
    best = np.argmax(np.stack([trace, m00, m11, m22], -1), axis=-1)
    q = np.take_along_axis(cands, best[..., None, None], axis=-2)[..., 0, :]
    q = quat_normalize(q)
    return np.where(q[..., :1] < 0, -q, q)


def axis_angle_to_matrix(aa: np.ndarray) -> np.ndarray:
    return quat_to_matrix(axis_angle_to_quat(aa))


def matrix_to_axis_angle(m: np.ndarray) -> np.ndarray:
    return quat_to_axis_angle(matrix_to_quat(m))


def quat_slerp(a: np.ndarray, b: np.ndarray, t: np.ndarray | float) -> np.ndarray:
    """Spherical interpolation along the shorter arc; ``t`` broadcasts against ``a[..., :1]``."""
    a = quat_normalize(np.asarray(a, dtype=np.float64))
    b = quat_normalize(np.asarray(b, dtype=np.float64))
    t = np.asarray(t, dtype=np.float64)
    if t.ndim and t.shape[-1] != 1:
        t = t[..., None]
    dot = np.sum(a * b, axis=-1, keepdims=True)
    b = np.where(dot < 0, -b, b)
    dot = np.abs(dot)
    theta = np.arccos(np.clip(dot, -1.0, 1.0))
    sin_theta = np.sin(theta)
    near = sin_theta < 1e-6
    wa = np.where(near, 1.0 - t, np.sin((1.0 - t) * theta) / np.where(near, 1.0, sin_theta))
    wb = np.where(near, t, np.sin(t * theta) / np.where(near, 1.0, sin_theta))
    return quat_normalize(wa * a + wb * b)


def euler_to_matrix(angles_deg: np.ndarray, order: str) -> np.ndarray:
    """Intrinsic rotations in ``order`` (e.g. "ZXY" as BVH channels list them): R = R_a R_b R_c."""
    angles = np.deg2rad(np.asarray(angles_deg, dtype=np.float64))
    out = np.broadcast_to(np.eye(3), angles.shape[:-1] + (3, 3)).copy()
    for i, axis in enumerate(order.upper()):
        out = out @ _axis_matrix(axis, angles[..., i])
    return out


def matrix_to_euler(m: np.ndarray, order: str) -> np.ndarray:
    """Inverse of ``euler_to_matrix`` for a Tait-Bryan ``order`` (degrees)."""
    order = order.upper()
    i, j, k = ("XYZ".index(a) for a in order)
    sign = 1.0 if (j - i) % 3 == 1 else -1.0  # cyclic orders have a positive parity
    m = np.asarray(m, dtype=np.float64)
    b = np.arcsin(np.clip(sign * m[..., i, k], -1.0, 1.0))
    a = np.arctan2(-sign * m[..., j, k], m[..., k, k])
    c = np.arctan2(-sign * m[..., i, j], m[..., i, i])
    return np.rad2deg(np.stack([a, b, c], -1))


def _axis_matrix(axis: str, angle: np.ndarray) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    one, zero = np.ones_like(angle), np.zeros_like(angle)
    rows = {
        "X": [[one, zero, zero], [zero, c, -s], [zero, s, c]],
        "Y": [[c, zero, s], [zero, one, zero], [-s, zero, c]],
        "Z": [[c, -s, zero], [s, c, zero], [zero, zero, one]],
    }[axis]
    return np.stack([np.stack(r, -1) for r in rows], -2)


def rotation_between(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Smallest rotation matrix turning direction ``u`` onto direction ``v``."""
    u = u / np.maximum(np.linalg.norm(u, axis=-1, keepdims=True), _EPS)
    v = v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), _EPS)
    w = 1.0 + np.sum(u * v, axis=-1, keepdims=True)
    axis = np.cross(u, v)
    # opposite vectors: rotate pi about any axis orthogonal to u
    ortho = np.cross(u, np.where(np.abs(u[..., :1]) < 0.9, [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]))
    q = np.where(w < 1e-9, np.concatenate([np.zeros_like(w), ortho], -1), np.concatenate([w, axis], -1))
    return quat_to_matrix(q)


# Frames. SMPL-family bodies are modelled Y up, facing +Z, subject's left = +X. Blender and our
# world are Z up; a character faces -Y. Rx(+90 deg) maps the first onto the second.
Y_UP_TO_Z_UP = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])
