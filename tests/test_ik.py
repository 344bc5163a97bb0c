"""IK from joint positions: FK of the result reproduces the input; rotations match the source."""

from __future__ import annotations

import numpy as np
import pytest

from motion.errors import UserError
from motion.ik import positions_to_motion
from motion.io import read_motion
from motion.ops import heading_of, resample
from motion.rotations import axis_angle_to_matrix, axis_angle_to_quat


@pytest.fixture(scope="module")
def source(amass_sample):
    """The real AMASS clip at HumanML3D's 20 fps, restricted to the SMPL-22 body joints."""
    m = resample(read_motion(amass_sample), 20)
    keep = 22
    return m.replace(skeleton="humanml3d", joint_names=m.joint_names[:keep], parents=m.parents[:keep],
                     rotations=m.rotations[:, :keep], rest_offsets=m.rest_offsets[:keep])


def _angle_deg(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    cos = (np.einsum("...ij,...ij->...", a, b) - 1) / 2
    return np.rad2deg(np.arccos(np.clip(cos, -1, 1)))


def test_fk_of_ik_reproduces_real_motion(source):
    joints = source.joint_positions()
    m = positions_to_motion(joints, "humanml3d", 20.0)
    assert (m.skeleton, m.n_joints, m.fps, m.n_frames) == ("humanml3d", 22, 20.0, source.n_frames)
    # Bone lengths are consistent here, so every bone is aimed exactly at its child and the pelvis /
    # spine3 fits are exact (the rest layout is the reference's): only rounding remains (< 0.1 mm).
    error = np.linalg.norm(m.joint_positions() - joints, axis=-1)
    assert error.max() < 1e-4
    np.testing.assert_allclose(m.rest_offsets[1:], source.rest_offsets[1:], atol=1e-9)


def test_ik_recovers_the_observable_rotations(source):
    m = positions_to_motion(source.joint_positions(), "humanml3d", 20.0)
    G_src, _ = source.global_transforms()
    G_ik, _ = m.global_transforms()
    error = _angle_deg(G_src, G_ik).mean(axis=0)
    names = source.joint_names
    # joints whose rotation the positions determine (root, legs, spine; knees are hinges)
    for joint in ("pelvis", "left_hip", "right_hip", "spine1", "spine2", "spine3", "left_knee", "right_knee",
                  "left_ankle"):
        assert error[names.index(joint)] < 5.0, (joint, error[names.index(joint)])
    assert heading_of(m) == pytest.approx(heading_of(source), abs=1.0)


def test_ik_with_noisy_positions_stays_close(source):
    joints = source.joint_positions()
    noisy = joints + np.random.default_rng(0).normal(scale=0.005, size=joints.shape)
    m = positions_to_motion(noisy, "humanml3d", 20.0)
    error = np.linalg.norm(m.joint_positions() - noisy, axis=-1)
    # Bone lengths now vary frame to frame and a fixed skeleton cannot follow that, but each joint
    # is off by its own bone's length mismatch only (bones are aimed from the FK position of their
    # joint), not by the sum along its chain: the mean stays below the noise's own 8 mm.
    assert np.linalg.norm(noisy - joints, axis=-1).mean() > 0.0075
    assert error.mean() < 0.0075


def _twist_steps_deg(m) -> np.ndarray:
    """Mean frame-to-frame change of each single-child joint's local twist about its bone."""
    q = axis_angle_to_quat(m.rotations)
    steps = []
    for j in range(1, m.n_joints):
        kids = np.flatnonzero(m.parents == j)
        if len(kids) == 1:
            axis = m.rest_offsets[kids[0]] / np.linalg.norm(m.rest_offsets[kids[0]])
            twist = 2 * np.arctan2(q[:, j, 1:] @ axis, q[:, j, 0])
            steps.append(np.rad2deg(np.abs(np.angle(np.exp(1j * np.diff(twist))))).mean())
    return np.array(steps)


def test_twist_smoothing_removes_jitter_without_moving_joints(amass_sample):
    joints = read_motion(amass_sample).joint_positions()[:, :22]
    noisy = joints + np.random.default_rng(0).normal(scale=0.005, size=joints.shape)
    raw = positions_to_motion(noisy, "humanml3d", 120.0, smooth_seconds=0.0)
    smooth = positions_to_motion(noisy, "humanml3d", 120.0)
    np.testing.assert_allclose(smooth.joint_positions(), raw.joint_positions(), atol=1e-9)
    smooth_steps, raw_steps = _twist_steps_deg(smooth), _twist_steps_deg(raw)
    assert np.all(smooth_steps < raw_steps) and smooth_steps.mean() < 0.1 * raw_steps.mean()


def test_ik_is_equivariant_to_turning_the_world(source):
    joints = source.joint_positions()
    turn = axis_angle_to_matrix(np.array([0.0, 0.0, np.deg2rad(50.0)]))
    m = positions_to_motion(joints @ turn.T, "humanml3d", 20.0)
    np.testing.assert_allclose(m.joint_positions(), joints @ turn.T, atol=1e-4)
    diff = (heading_of(m) - heading_of(positions_to_motion(joints, "humanml3d", 20.0)) + 180) % 360 - 180
    np.testing.assert_allclose(diff, 50.0, atol=1e-6)


@pytest.mark.parametrize("joints,fps,problem", [
    (np.zeros((5, 21, 3)), 20, "shape"),
    (np.zeros((0, 22, 3)), 20, "zero frames"),
    (np.full((3, 22, 3), np.nan), 20, "NaN"),
    (np.zeros((3, 22, 3)), 20, "zero length"),
    (np.random.default_rng(0).normal(size=(3, 22, 3)), 0, "fps"),
])
def test_ik_bad_input(joints, fps, problem):
    with pytest.raises(UserError, match=problem):
        positions_to_motion(joints, "humanml3d", fps)
    with pytest.raises(UserError, match="SMPL-22"):
        positions_to_motion(np.zeros((2, 52, 3)), "smplh", 20)
