"""Clip operations: resample, retime, trim, loop, concat, mirror, put_on_ground, place, transform, heading."""

from __future__ import annotations

import numpy as np
import pytest
from _motion_io_util import random_motion

from motion.errors import UserError
from motion.io import read_motion
from motion.motion import Motion
from motion.ops import (concat, heading_of, loop, mirror, mirror_joint_name, place, put_on_ground, resample,
                        retime, transform, trim)
from motion.reference_skeleton import reference_offsets
from motion.rotations import Y_UP_TO_Z_UP, axis_angle_to_matrix, matrix_to_axis_angle
from motion.skeletons import skeleton


@pytest.fixture(scope="module")
def amass(amass_sample):
    return read_motion(amass_sample)


def _rz(angle):
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1.0]])


def arc_walk(frames: int, fps: float = 30.0, turn_per_frame: float = 0.02, step: float = 0.03,
             start: int = 0) -> Motion:
    """A body gliding along a circular arc, facing its direction of travel; frames start..start+frames."""
    names, parents = skeleton("humanml3d")
    k = np.arange(start, start + frames)
    heading = turn_per_frame * k  # facing -Y at k = 0, turning left (counter-clockwise)
    forward = np.stack([np.sin(heading), -np.cos(heading), np.zeros_like(heading)], -1)
    root = np.zeros((frames, 3))
    for i, kk in enumerate(k):  # position = sum of steps along the heading so far
        steps = turn_per_frame * np.arange(kk)
        root[i, :2] = step * np.stack([np.sin(steps), -np.cos(steps)], -1).sum(0)
    root[:, 2] = 0.9
    rotations = np.zeros((frames, len(names), 3))
    rotations[:, 0] = matrix_to_axis_angle(np.stack([_rz(h) @ Y_UP_TO_Z_UP for h in heading]))
    rotations[:, 4] = [0.3, 0.0, 0.0]  # a bent knee, constant
    assert np.allclose(np.diff(root[:, :2], axis=0), step * forward[:-1, :2])
    return Motion("humanml3d", names, parents, fps, rotations, root, reference_offsets("humanml3d"))


# --- heading -----------------------------------------------------------------------------------------


def test_heading_zero_faces_minus_y():
    """Independent check from geometry: at heading 0 the toes point to -Y and the left hip to +X."""
    m = arc_walk(1, turn_per_frame=0.0)
    assert heading_of(m)[0] == pytest.approx(0.0, abs=1e-9)
    p = m.joint_positions()[0]
    names = m.joint_names
    toe = p[names.index("left_foot")] - p[names.index("left_ankle")]
    assert toe[1] < -0.05 and abs(toe[0]) < 0.03
    assert p[names.index("left_hip"), 0] > p[names.index("right_hip"), 0]
    turned = place(m, heading_deg=90)  # counter-clockwise from above: now facing +X
    p = turned.joint_positions()[0]
    assert (p[names.index("left_foot")] - p[names.index("left_ankle")])[0] > 0.05


# --- resample and trim -------------------------------------------------------------------------------------


def test_resample_hits_shared_timestamps_exactly(amass):
    to30 = resample(amass, 30)
    assert to30.n_frames == 151 and to30.fps == 30
    np.testing.assert_array_equal(to30.rotations, amass.rotations[::4])
    np.testing.assert_array_equal(to30.root_translation, amass.root_translation[::4])
    down_up = resample(resample(amass, 60), 120)
    np.testing.assert_array_equal(down_up.rotations[::2], amass.rotations[::2])
    to45 = resample(amass, 45)  # 120/45 = 8/3: every 8th source frame is every 3rd output frame
    assert to45.n_frames == 226
    np.testing.assert_array_equal(to45.rotations[::3], amass.rotations[::8])


def test_resample_interpolates_between_frames():
    """Constant-rate rotation about a fixed axis and a sine path: slerp is exact, cubic beats linear."""
    m = arc_walk(30, fps=30, turn_per_frame=0.05)
    t = np.arange(30) / 30
    m = m.replace(root_translation=np.stack([np.sin(4 * t), np.zeros(30), np.full(30, 0.9)], -1))
    r = resample(m, 70)  # not a multiple: most frames fall between source frames
    assert r.n_frames == int(29 * 70 / 30) + 1
    tt = np.arange(r.n_frames) / 70
    heading = np.deg2rad(heading_of(r))
    np.testing.assert_allclose(heading, 0.05 * 30 * tt, atol=1e-9)
    cubic_err = np.abs(r.root_translation[:, 0] - np.sin(4 * tt))[3:-3].max()
    linear_err = np.abs(resample(m, 70, translation="linear").root_translation[:, 0] - np.sin(4 * tt))[3:-3].max()
    assert cubic_err < linear_err / 5
    with pytest.raises(UserError, match="fps"):
        resample(m, 0)


def test_trim_seconds_end_exclusive(amass):
    part = trim(amass, 1.0, 2.0)
    assert part.n_frames == 120
    np.testing.assert_array_equal(part.rotations, amass.rotations[120:240])
    assert trim(amass, end=0.5).n_frames == 60 and trim(amass, start=4.9).n_frames == 13
    with pytest.raises(UserError, match="keeps no frames"):
        trim(amass, 2.0, 1.0)
    with pytest.raises(UserError, match="keeps no frames"):
        trim(amass, start=10.0)


def test_retime_plays_faster_at_the_same_frame_rate(amass):
    fast = retime(amass, 2.0)
    assert (fast.fps, fast.n_frames) == (120.0, 301)
    np.testing.assert_array_equal(fast.rotations, amass.rotations[::2])   # shared timestamps are copied exactly
    slow = retime(amass, 0.5)
    assert slow.n_frames == 1201
    np.testing.assert_array_equal(slow.rotations[::2], amass.rotations)
    with pytest.raises(UserError, match="speed"):
        retime(amass, 0.0)


# --- loop and concat ---------------------------------------------------------------------------------


def test_loop_continues_the_path_like_a_longer_walk():
    one = arc_walk(20)
    long = arc_walk(60)
    looped = loop(one, 3)
    assert looped.n_frames == 60
    np.testing.assert_allclose(looped.joint_positions(), long.joint_positions(), atol=1e-9)
    with pytest.raises(UserError, match="times"):
        loop(one, 0)


def test_concat_without_blend_equals_loop_and_blends_smoothly():
    a = arc_walk(40)
    np.testing.assert_allclose(concat(a, a, 0).joint_positions(), loop(a, 2).joint_positions(), atol=1e-12)
    b = random_motion("humanml3d", frames=50, fps=30, seed=3)
    out = concat(a, b, blend_seconds=0.3)
    n = 9
    assert out.n_frames == 40 + 50 - n
    np.testing.assert_array_equal(out.rotations[:40 - n], a.rotations[:40 - n])
    np.testing.assert_allclose(out.rotations[40:, 1:], b.rotations[n:, 1:])  # b's own pose after the blend
    # b is moved rigidly on the ground: its relative headings are kept
    rel = np.unwrap(np.deg2rad(heading_of(out)[40:]))
    np.testing.assert_allclose(rel - rel[0], np.unwrap(np.deg2rad(heading_of(b)[n:])) - np.deg2rad(heading_of(b)[n]),
                               atol=1e-9)
    # no jump: per-frame joint motion through the transition stays within the clips' own range
    speed = np.linalg.norm(np.diff(out.joint_positions(), axis=0), axis=-1).max(axis=1)
    own = max(np.linalg.norm(np.diff(c.joint_positions(), axis=0), axis=-1).max() for c in (a, b))
    assert speed[40 - n - 1: 40 + 1].max() < 2.0 * own
    with pytest.raises(UserError, match="different skeletons"):
        concat(a, random_motion("smplh"))


def test_concat_resamples_b_to_a_rate():
    a, b = arc_walk(30, fps=30), arc_walk(60, fps=60)
    assert concat(a, b, 0.1).fps == 30


# --- mirror ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name,twin", [("left_hip", "right_hip"), ("LeftUpLeg", "RightUpLeg"), ("lThigh", "rThigh"),
                                       ("RHipJoint", "LHipJoint"), ("hand.L", "hand.R"), ("Spine", "Spine"),
                                       ("LowerBack", "LowerBack"), ("left_eye_smplhf", "right_eye_smplhf")])
def test_mirror_joint_names(name, twin):
    assert mirror_joint_name(name) == twin and mirror_joint_name(twin) == name


def test_mirror_reflects_the_body_and_twice_is_identity(amass):
    clip = place(amass.replace(rotations=amass.rotations[:30], root_translation=amass.root_translation[:30]),
                 heading_deg=35.0)
    once = mirror(clip)
    twice = mirror(once)
    np.testing.assert_allclose(twice.joint_positions(), clip.joint_positions(), atol=1e-9)
    np.testing.assert_allclose(twice.rotations, clip.rotations, atol=1e-9)
    # independent evidence: mirrored joints = original joints reflected across the start sagittal plane
    h = np.deg2rad(heading_of(clip)[0])
    normal = np.array([np.cos(h), np.sin(h), 0.0])
    p = clip.joint_positions()
    pivot = clip.root_translation[0]
    reflected = p - 2 * ((p - pivot) @ normal)[..., None] * normal
    swap = [clip.joint_names.index(mirror_joint_name(n)) for n in clip.joint_names]
    np.testing.assert_allclose(once.joint_positions()[:, swap], reflected, atol=1e-9)
    assert heading_of(once)[0] == pytest.approx(heading_of(clip)[0], abs=1e-6)


def test_mirror_turns_the_other_way():
    walk = arc_walk(30, turn_per_frame=0.02)
    turned = heading_of(mirror(walk))
    np.testing.assert_allclose(np.unwrap(np.deg2rad(turned)), -0.02 * np.arange(30), atol=1e-9)


# --- ground and placement ---------------------------------------------------------------------------------


def test_put_on_ground(amass):
    grounded = put_on_ground(amass)
    assert grounded.joint_positions()[..., 2].min() == pytest.approx(0.0, abs=1e-12)
    lifted = put_on_ground(amass, min_height=0.05)
    assert lifted.joint_positions()[..., 2].min() == pytest.approx(0.05, abs=1e-12)
    np.testing.assert_allclose(np.diff(lifted.root_translation, axis=0), np.diff(amass.root_translation, axis=0))


def test_place_sets_start_position_and_heading(amass):
    placed = place(amass, position=(1.0, 2.0), heading_deg=-120.0)
    assert heading_of(placed)[0] == pytest.approx(-120.0, abs=1e-6)
    np.testing.assert_allclose(placed.root_translation[0], [1.0, 2.0, amass.root_translation[0, 2]])
    # rigid: distances between all joints of all frames are unchanged
    p, q = amass.joint_positions()[::50].reshape(-1, 3), placed.joint_positions()[::50].reshape(-1, 3)
    np.testing.assert_allclose(np.linalg.norm(q[:, None] - q[None], axis=-1),
                               np.linalg.norm(p[:, None] - p[None], axis=-1), atol=1e-9)
    np.testing.assert_allclose(place(amass, position=(0, 0, 3.0)).root_translation[0], [0, 0, 3.0])
    with pytest.raises(UserError, match="position"):
        place(amass, position=(1.0,))


def test_heading_ignores_pitch_and_roll():
    m = arc_walk(1, turn_per_frame=0.0)
    tilt = axis_angle_to_matrix(np.array([0.4, 0.0, 0.0])) @ axis_angle_to_matrix(m.rotations[0, 0])
    tilted = m.replace(rotations=np.concatenate([matrix_to_axis_angle(tilt)[None, None], m.rotations[:, 1:]], 1))
    assert heading_of(tilted)[0] == pytest.approx(0.0, abs=1e-9)


def test_transform_moves_every_joint_rigidly(amass):
    R = axis_angle_to_matrix(np.array([0.3, -0.2, 0.9]))
    matrix = np.eye(4)
    matrix[:3, :3], matrix[:3, 3] = R, [1.0, -2.0, 0.5]
    moved = transform(amass, matrix)
    np.testing.assert_allclose(moved.joint_positions(), amass.joint_positions() @ R.T + matrix[:3, 3], atol=1e-9)
    np.testing.assert_array_equal(moved.rotations[:, 1:], amass.rotations[:, 1:])     # the pose is untouched
    np.testing.assert_allclose(transform(amass, np.eye(4)).joint_positions(), amass.joint_positions(), atol=1e-12)
    scaled = np.diag([2.0, 2.0, 2.0, 1.0])
    with pytest.raises(UserError, match="not a rigid transform"):
        transform(amass, scaled)
    with pytest.raises(UserError, match="not a rigid transform"):
        transform(amass, np.diag([-1.0, 1.0, 1.0, 1.0]))                              # a mirror
