"""Operations on clips: resample, retime, trim, loop, concat, mirror, put on the ground, place, transform.

Heading (defined once, ``heading_of``): the yaw about world Z of the body's lateral axis, i.e.
of the root rotation applied to the rest direction from the right hip to the left hip (the root's
mirror-named children; modelling +X when a skeleton has none). Heading 0 means the body's left
points to world +X, so it faces -Y: it looks at the camera of Blender's front view. Positive
headings turn counter-clockwise seen from above.

``Motion.shape`` entries with two or more dimensions are per-frame (e.g. SMPL-X ``expression``);
the operations cut, resample and blend them with the frames. Everything here is numpy only, so it
also runs inside Blender's Python.
"""

from __future__ import annotations

import re

import numpy as np

from motion.errors import UserError, check_number
from motion.motion import MAX_FPS, Motion
from motion.rotations import (axis_angle_to_matrix, axis_angle_to_quat, matrix_to_axis_angle,
                              quat_slerp, quat_to_axis_angle)

_EPS = 1e-9
_LEFT = re.compile(r"(?i)left|^l(?=[A-Z_.\-])")


# --- heading and rigid placement on the ground plane ------------------------------------------------

def lateral_axis(m: Motion) -> np.ndarray:
    """Unit right-to-left axis of the body in the modelling frame (from the hips when named)."""
    if m.rest_offsets is not None:
        for j in np.flatnonzero(m.parents == 0):
            name = m.joint_names[j]
            other = mirror_joint_name(name)
            if other != name and other in m.joint_names and _LEFT.search(name):
                axis = m.rest_offsets[j] - m.rest_offsets[m.joint_names.index(other)]
                return axis / np.linalg.norm(axis)
    return np.array([1.0, 0.0, 0.0])


def _headings(m: Motion) -> np.ndarray:
    left = axis_angle_to_matrix(m.rotations[:, 0]) @ lateral_axis(m)
    return np.arctan2(left[:, 1], left[:, 0])


def heading_of(m: Motion) -> np.ndarray:
    """Per-frame heading in degrees (-180, 180]: 0 = facing -Y, counter-clockwise positive."""
    return np.rad2deg(_headings(m))


def _planar(m: Motion, frame: int) -> np.ndarray:
    """Frame's root on the ground plane as a 3x3 homogeneous 2D rigid transform."""
    return _rigid2d(_headings(m)[frame], m.root_translation[frame, :2])


def _rigid2d(angle: float, xy: np.ndarray) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, -s, xy[0]], [s, c, xy[1]], [0.0, 0.0, 1.0]])


def _apply2d(m: Motion, transform: np.ndarray) -> Motion:
    """Move the whole clip by a ground-plane rigid transform (rotation about Z, then xy shift)."""
    R = np.eye(3)
    R[:2, :2] = transform[:2, :2]
    return _rigid(m, R, transform[:2, 2])


def _rigid(m: Motion, R: np.ndarray, t: np.ndarray) -> Motion:
    """Rotate the clip by ``R`` about the world origin, then shift it by ``t`` (x, y[, z])."""
    rotations = m.rotations.copy()
    rotations[:, 0] = matrix_to_axis_angle(R @ axis_angle_to_matrix(m.rotations[:, 0]))
    root = m.root_translation @ R.T
    root[:, :len(t)] += t
    return m.replace(rotations=rotations, root_translation=root)


def transform(m: Motion, matrix) -> Motion:
    """Move the whole clip rigidly by the world transform ``matrix`` (4x4: rotation and translation,
    e.g. a Blender object's ``matrix_world``): every posed point p becomes R p + t."""
    matrix = np.asarray(matrix, dtype=np.float64)
    if matrix.shape != (4, 4) or not np.all(np.isfinite(matrix)):
        raise UserError("matrix", f"expected a finite 4x4 transform, got shape {matrix.shape}")
    R, t = matrix[:3, :3], matrix[:3, 3]
    if not np.allclose(R @ R.T, np.eye(3), atol=1e-5) or np.linalg.det(R) < 0:
        scale = np.linalg.norm(R, axis=0).round(4).tolist()
        raise UserError("matrix", f"not a rigid transform (axis scales {scale}); scaled or mirrored bodies "
                                  "cannot be skinned")
    return _rigid(m, R, t).validate()


def place(m: Motion, position=None, heading_deg: float | None = None) -> Motion:
    """Start the clip at ``position`` (x, y[, z]; z kept unless given) facing ``heading_deg``.

    The whole clip turns rigidly about world Z through its start; see the module docstring for
    the heading convention (0 = facing -Y).
    """
    if heading_deg is not None:
        angle = np.deg2rad(float(heading_deg)) - _headings(m)[0]
        start = m.root_translation[0, :2]
        turn = _rigid2d(angle, np.zeros(2))
        turn[:2, 2] = start - turn[:2, :2] @ start
        m = _apply2d(m, turn)
    if position is not None:
        position = np.asarray(position, dtype=np.float64).reshape(-1)
        if position.size not in (2, 3) or not np.all(np.isfinite(position)):
            raise UserError("position", f"expected finite x, y or x, y, z; got {position.tolist()}")
        root = m.root_translation.copy()
        root[:, :position.size] += position - root[0, :position.size]
        m = m.replace(root_translation=root)
    return m.validate()


# --- time --------------------------------------------------------------------------------------------

def resample(m: Motion, fps: float, translation: str = "cubic") -> Motion:
    """Resample to ``fps`` over the same time span: slerp rotations, cubic (Catmull-Rom) or linear
    root translation. Frames at timestamps the source has (e.g. every 4th frame for 120 -> 30)
    are copied exactly."""
    fps = check_number(fps, "fps", above=0, maximum=MAX_FPS)
    if translation not in ("cubic", "linear"):
        raise UserError("translation", f"interpolation must be 'cubic' or 'linear', got {translation!r}")
    T = m.n_frames
    count = int(np.floor((T - 1) * fps / m.fps + _EPS)) + 1
    u = np.arange(count) * (m.fps / fps)  # positions in source frames
    i0 = np.minimum(np.floor(u + _EPS).astype(int), T - 1)
    frac = np.where(np.abs(u - i0) < _EPS, 0.0, u - i0)
    i1 = np.minimum(i0 + 1, T - 1)
    exact = frac == 0.0

    q = axis_angle_to_quat(m.rotations)
    rotations = quat_to_axis_angle(quat_slerp(q[i0], q[i1], frac[:, None, None]))
    rotations[exact] = m.rotations[i0[exact]]
    p = m.root_translation
    if translation == "linear":
        root = _lerp(p[i0], p[i1], frac[:, None])
    else:
        root = _catmull_rom(p[np.maximum(i0 - 1, 0)], p[i0], p[i1], p[np.minimum(i0 + 2, T - 1)], frac[:, None])
    root[exact] = p[i0[exact]]
    shape = {k: _lerp(v[i0], v[i1], frac.reshape((-1,) + (1,) * (v.ndim - 1))) if _per_frame(v) else v
             for k, v in m.shape.items()}
    return m.replace(fps=fps, rotations=rotations, root_translation=root, shape=shape).validate()


def retime(m: Motion, speed: float) -> Motion:
    """Play the clip ``speed`` times as fast (2: half as long), resampled back to its frame rate."""
    speed = float(speed)
    if not np.isfinite(speed) or speed <= 0:
        raise UserError("speed", f"must be a positive number, got {speed:g}")
    return resample(m.replace(fps=m.fps * speed), m.fps)


def _lerp(a: np.ndarray, b: np.ndarray, t: np.ndarray) -> np.ndarray:
    return a + (b - a) * t


def _catmull_rom(p0, p1, p2, p3, t):
    """Cubic through p1 (t=0) and p2 (t=1) with central-difference tangents."""
    t2, t3 = t * t, t * t * t
    return 0.5 * (2 * p1 + (p2 - p0) * t + (2 * p0 - 5 * p1 + 4 * p2 - p3) * t2 + (3 * p1 - p0 - 3 * p2 + p3) * t3)


def _per_frame(value) -> bool:
    return isinstance(value, np.ndarray) and value.ndim >= 2


def _frames(m: Motion, index) -> Motion:
    """The clip restricted to frames ``index`` (a slice or an index array)."""
    shape = {k: v[index] if _per_frame(v) else v for k, v in m.shape.items()}
    return m.replace(rotations=m.rotations[index], root_translation=m.root_translation[index], shape=shape)


def trim(m: Motion, start: float | None = None, end: float | None = None) -> Motion:
    """Keep the frames with ``start <= t < end`` (seconds from the first frame; None = open)."""
    start = 0.0 if start is None else float(start)
    end = m.duration if end is None else float(end)
    if not (np.isfinite(start) and np.isfinite(end)) or start < 0:
        raise UserError("--start/--end", f"need 0 <= start and finite times, got {start:g}..{end:g}")
    first = max(0, int(np.ceil(start * m.fps - _EPS)))
    stop = min(m.n_frames, int(np.ceil(end * m.fps - _EPS)))
    if stop <= first:
        raise UserError("--start/--end", f"{start:g}..{end:g} s keeps no frames of a {m.duration:.3f} s clip")
    return _frames(m, slice(first, stop)).validate()


# --- sequencing --------------------------------------------------------------------------------------

def _step_past_end(m: Motion) -> np.ndarray:
    """Where the frame after the last would be on the ground: the last frame's 2D motion, repeated."""
    last = _planar(m, m.n_frames - 1)
    if m.n_frames == 1:
        return last
    return last @ np.linalg.inv(_planar(m, m.n_frames - 2)) @ last


def loop(m: Motion, times: int) -> Motion:
    """Repeat the clip ``times`` times; each repetition starts where the previous one ended (one
    frame step on), carrying position and heading, so a walk cycle keeps walking."""
    if int(times) != times or times < 1:
        raise UserError("times", f"must be a whole number >= 1, got {times}")
    move = _step_past_end(m) @ np.linalg.inv(_planar(m, 0))
    reps, placement = [], np.eye(3)
    for _ in range(int(times)):
        reps.append(_apply2d(m, placement))
        placement = move @ placement
    return _join(reps).validate()


def _join(clips: list[Motion]) -> Motion:
    first = clips[0]
    shape = {k: np.concatenate([c.shape[k] for c in clips]) if _per_frame(v) else v for k, v in first.shape.items()}
    return first.replace(rotations=np.concatenate([c.rotations for c in clips]),
                         root_translation=np.concatenate([c.root_translation for c in clips]), shape=shape)


def concat(a: Motion, b: Motion, blend_seconds: float = 0.3) -> Motion:
    """``a`` then ``b``, with ``b`` moved on the ground to continue from ``a`` (heading aligned).

    With a blend of n = round(blend_seconds * fps) frames, ``b`` starts where ``a``'s last n
    frames start, and over those frames the pose crossfades from ``a`` to ``b`` (slerp of every
    joint rotation, lerp of the root position, smoothstep weights); the result has
    len(a) + len(b) - n frames. With no blend, ``b`` starts one frame step after ``a`` ends.
    ``b`` is resampled to ``a``'s frame rate first if they differ.
    """
    if a.joint_names != b.joint_names:
        raise UserError("concat", f"clips have different skeletons ({a.skeleton}, {b.skeleton}); retarget first")
    if not np.isfinite(blend_seconds) or blend_seconds < 0:
        raise UserError("blend_seconds", f"must be >= 0, got {blend_seconds}")
    if b.fps != a.fps:
        b = resample(b, a.fps)
    n = min(int(round(blend_seconds * a.fps)), a.n_frames, b.n_frames)
    anchor = _step_past_end(a) if n == 0 else _planar(a, a.n_frames - n)
    b = _apply2d(b, anchor @ np.linalg.inv(_planar(b, 0)))
    if n == 0:
        return _join([a, b.replace(rest_offsets=a.rest_offsets)]).validate()
    k = (np.arange(n) + 1.0) / (n + 1.0)
    w = k * k * (3 - 2 * k)
    tail, head = _frames(a, slice(a.n_frames - n, None)), _frames(b, slice(0, n))
    rotations = quat_to_axis_angle(quat_slerp(axis_angle_to_quat(tail.rotations), axis_angle_to_quat(head.rotations),
                                              w[:, None, None]))
    shape = {key: _lerp(v, head.shape[key], w.reshape((-1,) + (1,) * (v.ndim - 1)))
             if _per_frame(v) and key in head.shape and head.shape[key].shape == v.shape else v
             for key, v in tail.shape.items()}
    blended = tail.replace(rotations=rotations, shape=shape,
                           root_translation=_lerp(tail.root_translation, head.root_translation, w[:, None]))
    return _join([_frames(a, slice(0, a.n_frames - n)), blended,
                  _frames(b, slice(n, None)).replace(rest_offsets=a.rest_offsets)]).validate()


# --- mirror and ground -------------------------------------------------------------------------------

_SIDE_WORDS = (("left", "right"), ("Left", "Right"), ("LEFT", "RIGHT"))
# single-letter sides: l/r as a prefix before a capital or separator (lThigh, L_Hip, l.arm) or as a
# suffix after a separator (arm.L, hip_r)
_SIDE_LETTER = re.compile(r"^([lLrR])(?=[A-Z_.\-])|(?<=[_.\-])([lLrR])$")


def mirror_joint_name(name: str) -> str:
    """The joint on the other side: left_hip <-> right_hip, LeftArm <-> RightArm, lThigh <-> rThigh,
    hand.L <-> hand.R; names without a side map to themselves."""
    for left, right in _SIDE_WORDS:
        if left in name or right in name:
            return re.sub(f"{left}|{right}", lambda x: right if x.group(0) == left else left, name)
    swap = {"l": "r", "r": "l", "L": "R", "R": "L"}
    return _SIDE_LETTER.sub(lambda x: swap[x.group(0)], name)


def mirror(m: Motion) -> Motion:
    """Mirror the clip left/right: swap left and right joints by name and reflect the motion across
    the body's sagittal plane at the start (the vertical plane through the start position along
    the start heading), so it starts in the same place facing the same way and turns the other
    way. Mirroring twice gives the clip back."""
    perm = np.array([m.joint_names.index(mirror_joint_name(n)) if mirror_joint_name(n) in m.joint_names else j
                     for j, n in enumerate(m.joint_names)])
    if np.any(perm[perm] != np.arange(m.n_joints)) or np.any(m.parents[perm[1:]] != perm[m.parents[1:]]):
        raise UserError(m.skeleton, "left and right joint names do not form a symmetric skeleton")
    a = lateral_axis(m)
    M = np.eye(3) - 2.0 * np.outer(a, a)  # modelling-frame reflection
    heading = _headings(m)[0]
    n = np.array([np.cos(heading), np.sin(heading), 0.0])
    W = np.eye(3) - 2.0 * np.outer(n, n)  # world reflection across the start sagittal plane
    local = axis_angle_to_matrix(m.rotations)
    mirrored = np.empty_like(local)
    mirrored[:, perm] = M @ local @ M
    mirrored[:, 0] = W @ local[:, 0] @ M
    pivot = m.root_translation[0]
    offsets = None
    if m.rest_offsets is not None:
        offsets = np.empty_like(m.rest_offsets)
        offsets[perm] = m.rest_offsets @ M.T
    return m.replace(rotations=matrix_to_axis_angle(mirrored), rest_offsets=offsets,
                     root_translation=(m.root_translation - pivot) @ W.T + pivot).validate()


def put_on_ground(m: Motion, min_height: float | None = None) -> Motion:
    """Shift the clip vertically so its lowest joint over the whole clip is at ``min_height``
    (default 0: the joint itself on z = 0). For an avatar pass the height of its foot joints above
    its soles, so the soles rather than the joints touch the floor."""
    lowest = m.joint_positions()[..., 2].min()
    root = m.root_translation.copy()
    root[:, 2] += (0.0 if min_height is None else float(min_height)) - lowest
    return m.replace(root_translation=root).validate()
