"""Analytic two-bone leg IK with a hinge knee, and the pelvis height that keeps legs reachable.

The knee is a hinge about its local x axis (SMPL rest frame): flexion is a positive rotation that
swings the shin backwards, so the solved knee only ever bends one way. For a hip position H and
an ankle target A, the knee angle follows in closed form from |thigh + Rx(theta) shin| = |A - H|;
the hip rotation then turns the rest leg plane onto the plane spanned by H->A and the knee's
pole (the foot's forward direction, so knees track over the toes). The ankle takes the rotation
that gives the foot its planned world orientation (blended towards a relaxed, slightly pointed
ankle in mid-swing), the toes stay flat on the floor.
"""

from __future__ import annotations

import numpy as np

from motion.generate.body import INDEX, OFFSETS, REST, axis_rotation, forward, frame_from, heading_frame
from motion.generate.gait import FootTracks, foot_rotation
from motion.rotations import matrix_to_quat, quat_slerp, quat_to_matrix

SWING_PLANTARFLEXION = 0.25  # rad, the relaxed ankle of a swinging foot
TOE_CLEARANCE = 0.04  # m the ball of a relaxed swinging foot keeps above the floor (> contact band)
REACH = 0.998  # fraction of the straight-leg length the pelvis may use (knees never lock)


def leg_geometry(side: str) -> tuple[np.ndarray, np.ndarray, float, float, float, float, float]:
    thigh = OFFSETS[INDEX[f"{side}_knee"]]
    shin = OFFSETS[INDEX[f"{side}_ankle"]]
    a = thigh[0] * shin[0]
    b = thigh[1] * shin[1] + thigh[2] * shin[2]
    c = thigh[2] * shin[1] - thigh[1] * shin[2]
    return thigh, shin, a, b, c, float(np.hypot(b, c)), float(np.arctan2(c, b))


def max_reach(side: str) -> float:
    thigh, shin, a, _, _, r, _ = leg_geometry(side)
    return float(np.sqrt(thigh @ thigh + shin @ shin + 2 * (a + r)))


def hip_positions(pelvis_pos: np.ndarray, pelvis_rot: np.ndarray, side: str) -> np.ndarray:
    return pelvis_pos + pelvis_rot @ OFFSETS[INDEX[f"{side}_hip"]]


def reachable_drop(pelvis_pos: np.ndarray, pelvis_rot: np.ndarray, tracks: FootTracks, fps: float) -> np.ndarray:
    """How far (m, <= 0) to move the pelvis down per frame so both ankles stay within REACH of
    the hips; smooth (erosion then a Gaussian no wider than it, so never less than needed)."""
    need = np.zeros(len(pelvis_pos))
    for foot, side in enumerate(("left", "right")):
        hip = hip_positions(pelvis_pos, pelvis_rot, side)
        ankle = tracks.ankle(foot)
        reach = REACH * max_reach(side)
        horizontal = np.linalg.norm(hip[:, :2] - ankle[:, :2], axis=-1)
        allowed = ankle[:, 2] + np.sqrt(np.maximum(reach**2 - horizontal**2, 0.0))
        need = np.minimum(need, allowed - hip[:, 2])
    return smooth_below(need, 0.03 * fps)


def smooth_below(x: np.ndarray, sigma: float) -> np.ndarray:
    """A smooth curve (T,) never above ``x``: a running minimum over +-3 sigma, then a Gaussian of
    that same reach (numpy only, so the generator also runs in Blender's Python)."""
    radius = int(np.ceil(3 * sigma))
    if radius < 1:
        return x
    padded = np.pad(x, radius, mode="edge")
    eroded = np.lib.stride_tricks.sliding_window_view(padded, 2 * radius + 1).min(axis=1)
    kernel = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    return np.convolve(np.pad(eroded, radius, mode="edge"), kernel / kernel.sum(), mode="valid")


def _relax_swing(planned: np.ndarray, relaxed: np.ndarray, ankle: np.ndarray, dangle: np.ndarray, side: str,
                 fps: float) -> np.ndarray:
    """Foot rotations turned from the plan towards the relaxed ankle by ``dangle``, as far as the
    ball of the foot stays TOE_CLEARANCE above the floor (bisection per frame, smoothed below)."""
    qp, qr = matrix_to_quat(planned), matrix_to_quat(relaxed)
    toe = REST[INDEX[f"{side}_foot"]] - REST[INDEX[f"{side}_ankle"]]

    def toe_height(w):
        return ankle[:, 2] + (quat_to_matrix(quat_slerp(qp, qr, w[:, None])) @ toe)[:, 2]

    floor = np.minimum(TOE_CLEARANCE, toe_height(np.zeros(len(dangle))))
    lo, hi = np.zeros_like(dangle), dangle.copy()
    ok = toe_height(hi) >= floor
    lo[ok] = hi[ok]
    for _ in range(8):
        mid = 0.5 * (lo + hi)
        good = toe_height(mid) >= floor
        lo = np.where(good, mid, lo)
        hi = np.where(good, hi, mid)
    w = np.clip(smooth_below(lo, 0.03 * fps), 0.0, None)
    return quat_to_matrix(quat_slerp(qp, qr, w[:, None]))


def solve_leg(side: str, foot: int, pelvis_pos: np.ndarray, pelvis_rot: np.ndarray,
              tracks: FootTracks, fps: float) -> dict[str, np.ndarray]:
    """Local rotations (T, 3, 3) of hip, knee, ankle and toe joint putting the foot on its track."""
    thigh, shin, a, b, c, r, phi = leg_geometry(side)
    hip = hip_positions(pelvis_pos, pelvis_rot, side)
    target = tracks.ankle(foot)
    to_target = target - hip
    dist = np.linalg.norm(to_target, axis=-1)
    k = 0.5 * (dist**2 - thigh @ thigh - shin @ shin)
    knee_angle = phi + np.arccos(np.clip((k - a) / r, -1.0, 1.0))
    knee = axis_rotation("x", knee_angle)
    leg_local = thigh + np.einsum("tij,j->ti", knee, shin)
    foot_rot = foot_rotation(tracks.heading[foot], tracks.pitch[foot])
    pole = forward(tracks.heading[foot])  # knees point where the feet point
    hinge_world = np.cross(pole, to_target)
    hinge_local = np.broadcast_to([1.0, 0.0, 0.0], leg_local.shape)
    hip_global = frame_from(to_target, hinge_world) @ np.swapaxes(frame_from(leg_local, hinge_local), -1, -2)
    knee_global = hip_global @ knee
    relaxed = knee_global @ axis_rotation("x", np.full(len(dist), SWING_PLANTARFLEXION))
    foot_rot = _relax_swing(foot_rot, relaxed, hip + np.einsum("tij,tj->ti", hip_global, leg_local),
                            tracks.dangle[foot], side, fps)
    toe_global = heading_frame(tracks.heading[foot])
    return {
        f"{side}_hip": np.swapaxes(pelvis_rot, -1, -2) @ hip_global,
        f"{side}_knee": knee,
        f"{side}_ankle": np.swapaxes(knee_global, -1, -2) @ foot_rot,
        f"{side}_foot": np.swapaxes(foot_rot, -1, -2) @ toe_global,
    }

