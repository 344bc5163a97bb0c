"""Foot locking after retargeting: generated gaits and the AMASS sample onto Anny (and on to SMPL-H)."""

from __future__ import annotations

import numpy as np
import pytest

from motion.bodies import bake_avatar
from motion.contact import skating
from motion.footlock import contact_segments, two_bone_ik
from motion.generate import generate_motion
from motion.io import read_motion
from motion.retarget import retarget
from motion.rotations import axis_angle_to_matrix, matrix_to_axis_angle
from _smpl_fixture import write_model

ANNY_FEET = {side: (f"foot.{s}", f"toe3-1.{s}") for side, s in (("left", "L"), ("right", "R"))}


@pytest.fixture(scope="module")
def anny():
    return bake_avatar("anny")


@pytest.fixture(scope="module")
def gaits(anny):
    """name -> (source, retargeted without lock, retargeted with lock)."""
    out = {}
    for name in ("walk", "run"):
        source = generate_motion(f"{name} forward for 6 seconds", seed=3)
        out[name] = (source, retarget(source, anny, foot_lock=False), retarget(source, anny))
    return out


def _subtree(asset, name):
    inside = [asset.joint_names.index(name)]
    for j, parent in enumerate(asset.parents):
        if parent in inside:
            inside.append(j)
    return inside


@pytest.mark.parametrize("name", ["walk", "run"])
def test_lock_removes_the_skating_retargeting_adds(gaits, name):
    """The generated gaits do not skate (tests/test_generate.py); on Anny's proportions the
    planted feet slide several cm/s without the lock. With it the mean slide stays under
    1 cm/s: half the metric's 2 cm/s "sliding" threshold and a tenth of a drifting foot, what is
    left being the sub-centimetre roll between heel and ball pivots. The contact fraction stays
    the source's, so the lock does not hide slides by lifting feet out of the contact band."""
    source, plain, locked = gaits[name]
    before, after = skating(plain, feet=ANNY_FEET), skating(locked, feet=ANNY_FEET)
    assert skating(source)["mean_slide_cm_s"] < 0.1
    assert before["mean_slide_cm_s"] > 3.0 and before["sliding_fraction"] > 0.5
    assert after["mean_slide_cm_s"] < 1.0 and after["sliding_fraction"] < 0.03
    assert abs(after["contact_fraction"] - skating(source)["contact_fraction"]) < 0.03


@pytest.mark.parametrize("name", ["walk", "run"])
def test_lock_keeps_the_pelvis_and_upper_body_and_adds_no_jumps(gaits, anny, name):
    _, plain, locked = gaits[name]
    p0, p1 = plain.joint_positions(), locked.joint_positions()
    assert np.array_equal(locked.root_translation, plain.root_translation)
    legs = _subtree(anny, "upperleg01.L") + _subtree(anny, "upperleg01.R")
    upper = np.setdiff1d(np.arange(len(anny.joint_names)), legs)
    feet = [anny.joint_names.index(f"foot.{s}") for s in "LR"]
    assert np.abs(p1[:, upper] - p0[:, upper]).max() < 1e-9
    assert 0.005 < np.linalg.norm(p1[:, feet] - p0[:, feet], axis=-1).max() < 0.04  # feet move by centimetres
    # no joint gets faster than without the lock ...
    speed0, speed1 = (np.linalg.norm(np.diff(p, axis=0), axis=-1).max(axis=0) * plain.fps for p in (p0, p1))
    assert np.all(speed1 <= 1.05 * speed0 + 0.01)
    # ... and the feet's correction is eased in, never a pop: at most ~3 cm over a swing or a
    # 0.15 s fade is < 0.3 m/s, where a 2 cm step in one frame would be 0.6 m/s
    correction = p1[:, feet] - p0[:, feet]
    assert np.linalg.norm(np.diff(correction, axis=0), axis=-1).max() * plain.fps < 0.35


def test_knees_bend_forward_and_only_flex(gaits, anny):
    """Every frame, each knee lies in front of its hip-ankle line (forward = where the foot
    points), and the lock changes the knee only by a rotation about the thigh's lateral axis."""
    _, plain, locked = gaits["walk"]
    G0, _ = plain.global_transforms()
    G1, p = locked.global_transforms()
    for s in "LR":
        hip, thigh2, knee, ankle, ball = (anny.joint_names.index(f"{b}.{s}") for b in
                                          ("upperleg01", "upperleg02", "lowerleg01", "foot", "toe3-1"))
        line = p[:, ankle] - p[:, hip]
        off = p[:, knee] - p[:, hip]
        off -= np.sum(off * line, -1, keepdims=True) / np.sum(line * line, -1, keepdims=True) * line
        forward = (p[:, ball] - p[:, ankle]) * [1.0, 1.0, 0.0]
        assert np.all(np.sum(off * forward, -1) / np.linalg.norm(forward, axis=-1) > 0.01), s
        # knee local rotation change, seen from the thigh: a pure rotation about one axis ...
        local0 = np.swapaxes(G0[:, thigh2], -1, -2) @ G0[:, knee]
        local1 = np.swapaxes(G1[:, thigh2], -1, -2) @ G1[:, knee]
        change = matrix_to_axis_angle(local1 @ np.swapaxes(local0, -1, -2))
        angle = np.linalg.norm(change, axis=-1)
        moved = angle > np.radians(0.5)
        axis = change[moved] / angle[moved, None]
        # ... the same one (the hinge) on every frame, in the thigh's frame
        lateral = np.median(axis * np.sign(axis[:, :1]), axis=0)
        assert np.all(np.abs(axis @ (lateral / np.linalg.norm(lateral))) > 0.999), s


def test_two_bone_ik_reaches_with_a_hinge():
    """Random bent legs and reachable targets: forward kinematics of the solved leg puts the
    ankle on the target, keeps bone lengths, and bends the knee about the given hinge only."""
    rng = np.random.default_rng(0)
    n = 200
    hip = rng.normal(0, 1, (n, 3))
    hinge = rng.normal(0, 1, (n, 3))
    hinge /= np.linalg.norm(hinge, axis=-1, keepdims=True)
    down = np.cross(hinge, rng.normal(0, 1, (n, 3)))
    down /= np.linalg.norm(down, axis=-1, keepdims=True)
    thigh_dir = np.einsum("nij,nj->ni", axis_angle_to_matrix(hinge * -0.2), down)
    knee = hip + 0.42 * thigh_dir
    ankle = knee + 0.40 * np.einsum("nij,nj->ni", axis_angle_to_matrix(hinge * rng.uniform(0.1, 1.5, (n, 1))), down)
    toward = rng.normal(0, 1, (n, 3))
    target = hip + toward / np.linalg.norm(toward, axis=-1, keepdims=True) * rng.uniform(0.2, 0.78, (n, 1))
    swing_thigh, swing_shin = two_bone_ik(hip, knee, ankle, target, hinge)
    new_knee = hip + np.einsum("nij,nj->ni", swing_thigh, knee - hip)
    new_ankle = new_knee + np.einsum("nij,nj->ni", swing_shin, ankle - knee)
    assert np.abs(new_ankle - target).max() < 1e-9
    bend = matrix_to_axis_angle(np.swapaxes(swing_thigh, -1, -2) @ swing_shin)
    assert np.abs(np.cross(bend, hinge)).max() < 1e-9                       # about the hinge ...
    carried = np.einsum("nij,nj->ni", swing_thigh, hinge)                   # the hinge moves with the thigh
    flexion = np.arctan2(np.einsum("ni,ni->n", np.cross(new_knee - hip, new_ankle - new_knee), carried),
                         np.einsum("ni,ni->n", new_knee - hip, new_ankle - new_knee))
    assert np.all(flexion > 0)                                               # ... bending one way
    same = two_bone_ik(hip, knee, ankle, ankle, hinge)                       # target = ankle: no change
    assert np.abs(same[0] - np.eye(3)).max() < 1e-6 and np.abs(same[1] - np.eye(3)).max() < 1e-6


def test_contact_segments():
    flags = np.array([1, 1, 0, 0, 1, 0, 1, 1, 1], bool)
    assert contact_segments(flags) == [(0, 2), (4, 5), (6, 9)]
    assert contact_segments(np.zeros(3, bool)) == []


def test_amass_sample_stays_planted(amass_sample, anny):
    """The AMASS sample stands; its retarget keeps the feet where they were (within 2 cm) and
    slides no more than the mocap itself does."""
    amass = read_motion(amass_sample)
    plain, locked = retarget(amass, anny, foot_lock=False), retarget(amass, anny)
    assert skating(locked, feet=ANNY_FEET)["mean_slide_cm_s"] <= skating(amass)["mean_slide_cm_s"]
    assert np.abs(locked.joint_positions() - plain.joint_positions()).max() < 0.02


def test_lock_onto_smplh(gaits, tmp_path):
    """Anny -> SMPL-H (synthetic model file): the lock works on the SMPL-family rig too."""
    write_model(tmp_path, "smplh")
    smplh = bake_avatar("smplh", model_path=tmp_path, gender="male")
    on_anny = gaits["walk"][2]
    plain, locked = retarget(on_anny, smplh, foot_lock=False), retarget(on_anny, smplh)
    assert skating(plain)["mean_slide_cm_s"] > 1.0
    assert skating(locked)["mean_slide_cm_s"] < 1.0


def test_feet_that_other_proportions_lift_are_put_down():
    """A squat (a step out, down and up, a step back) on a tall Anny: the rotations that keep the
    source's feet flat lift the target's ~6 cm off the floor in the deep squat; the lock puts
    them on the clip's floor, where they stand before and after."""
    tall = bake_avatar("anny", shape={"height": 0.9})
    source = generate_motion("squat", seed=1)
    ankle = [tall.joint_names.index(f"foot.{s}") for s in "LR"]
    z = source.joint_positions()[:, [source.joint("left_ankle"), source.joint("right_ankle")], 2]
    planted = np.all(z - z.min(axis=0) < 0.005, axis=1)  # both source feet flat on the floor
    assert planted.mean() > 0.5
    heights = {}
    for lock in (False, True):
        moved = retarget(source, tall, foot_lock=lock)
        heights[lock] = np.ptp(moved.joint_positions()[planted][:, ankle, 2], axis=0)
        assert skating(moved, feet=ANNY_FEET)["mean_slide_cm_s"] < (1.0 if lock else np.inf)
    assert heights[False].min() > 0.04
    assert heights[True].max() < 0.01


def test_swing_keeps_the_source_toe_clearance():
    """A short, long-footed Anny: retargeted swings pass the toes within ~2 cm of the floor and
    the heel-off rolls the ball 2.6 cm into it. Locked, the ball stays on the floor and the swing
    is lifted to the source's (scaled) clearance instead of entering the 3 cm contact band at
    swing speed (without that lift the locked clip measures 13.5 cm/s, worse than unlocked). What
    is left (~1.6 cm/s) is toe-off and heel-strike frames of this foot within the band."""
    short = bake_avatar("anny", shape={"height": 0.1, "proportions": 0.9})
    source = generate_motion("walk forward for 4 seconds", seed=1)
    plain, locked = (skating(retarget(source, short, foot_lock=lock), feet=ANNY_FEET) for lock in (False, True))
    assert locked["mean_slide_cm_s"] < 0.25 * plain["mean_slide_cm_s"]
    assert locked["sliding_fraction"] < 0.1 < 0.5 < plain["sliding_fraction"]
    assert locked["weighted_skate_cm_s"] < 0.5
