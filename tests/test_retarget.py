"""Retargeting, checked on the real AMASS sample against its optical mocap markers."""

from __future__ import annotations

import numpy as np
import pytest

from motion.bodies import bake_avatar
from motion.errors import UserError
from motion.io import read_motion
from motion.motion import Motion
from motion.reference_skeleton import reference_offsets
from motion.retarget import Rig, retarget
from motion.rotations import Y_UP_TO_Z_UP, matrix_to_axis_angle
from motion.skeletons import skeleton
from _smpl_fixture import write_model


@pytest.fixture(scope="module")
def anny():
    return bake_avatar("anny")


@pytest.fixture(scope="module")
def amass(amass_sample):
    return read_motion(amass_sample)


@pytest.fixture(scope="module")
def markers(amass_sample):
    data = np.load(amass_sample)
    labels = [label.decode() for label in data["marker_labels"]]
    return labels, data["marker_data"]


@pytest.fixture(scope="module")
def smpl_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("smpl_models")
    for body in ("smplh", "smplx"):
        write_model(root, body)
    return root


def _marker(markers, *names):
    labels, data = markers
    return np.nanmean(data[:, [labels.index(n) for n in names]], axis=1)


def _angle(u, v):
    cos = np.sum(u * v, -1) / np.linalg.norm(u, axis=-1) / np.linalg.norm(v, axis=-1)
    return np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))


def test_amass_to_anny_tracks_the_mocap_markers(amass, anny, markers):
    """Pelvis, trunk and hands of the retargeted Anny follow the markers of the same frames.

    Markers sit on the skin and the bodies differ, so we bound what must stay constant: the
    pelvis offset in the marker pelvis frame (the root path is scaled by the leg ratio, so we
    compare with the scaled marker path), the trunk direction and the hand's change of direction.
    """
    moved = retarget(amass, anny)
    assert moved.joint_names == anny.joint_names and moved.n_frames == amass.n_frames
    _, p = moved.global_transforms()
    scale = Rig.of_asset(anny).leg_length / Rig.of_motion(amass).leg_length
    assert 0.7 < scale < 1.1                                    # Anny (1.63 m) is smaller than the subject
    pelvis = _marker(markers, "LFWT", "RFWT", "LBWT", "RBWT")
    head = _marker(markers, "LFHD", "RFHD", "LBHD", "RBHD")
    # pelvis frame from the waist markers: x to the subject's left, z up
    lf, rf, lb, rb = (_marker(markers, n) for n in ("LFWT", "RFWT", "LBWT", "RBWT"))
    x = (lf + lb - rf - rb) / 2
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    z = np.cross(x, (lf + rf - lb - rb) / 2)
    z /= np.linalg.norm(z, axis=1, keepdims=True)
    frame = np.stack([x, np.cross(z, x), z], -1)
    root, anny_head = p[:, 0], p[:, anny.joint_names.index("head")]
    offset = np.einsum("tji,tj->ti", frame, root - scale * pelvis)
    assert np.linalg.norm(offset.mean(0)) < 0.10               # joint centre vs skin markers
    assert offset.std(0).max() < 0.01                           # ... constant within 1 cm
    trunk = _angle(anny_head - root, head - pelvis)             # pelvis -> head direction
    assert trunk.max() < 12.0 and np.ptp(trunk) < 3.0
    assert np.all(anny_head[:, 2] > root[:, 2] + 0.3)           # head above pelvis every frame
    for side, s in (("L", "L"), ("R", "R")):
        hand = p[:, anny.joint_names.index(f"finger3-3.{s}")] - p[:, anny.joint_names.index(f"wrist.{s}")]
        marker_hand = _marker(markers, f"{side}MTIP") - _marker(markers, f"{side}OWR", f"{side}IWR")
        turned, marker_turned = _angle(hand, hand[:1]), _angle(marker_hand, marker_hand[:1])
        assert marker_turned.max() > 15.0                       # the hands really move in this clip
        assert np.abs(turned - marker_turned).max() < 10.0, side


def test_limb_directions_carry_over(amass, anny, smpl_root):
    """Segments the T-pose aligns (upper arm, forearm, thigh, shin) point the same way in the
    world on source and target, every frame: SMPL-H -> Anny, SMPL-H -> SMPL-X (synthetic model
    files) and back from Anny onto SMPL-H. Without the foot lock, which re-solves the legs on purpose
    (tests/test_footlock.py)."""
    segments = {"left_shoulder": "left_elbow", "left_elbow": "left_wrist", "right_hip": "right_knee",
                "right_knee": "right_ankle"}
    anny_segments = {"left_shoulder": ("upperarm01.L", "lowerarm01.L"), "left_elbow": ("lowerarm01.L", "wrist.L"),
                     "right_hip": ("upperleg01.R", "lowerleg01.R"), "right_knee": ("lowerleg01.R", "foot.R")}
    _, src = amass.global_transforms()
    on_anny = retarget(amass, anny, foot_lock=False)
    smplh = bake_avatar("smplh", model_path=smpl_root, gender="male")
    cases = [(on_anny, anny_segments),
             (retarget(amass, bake_avatar("smplx", model_path=smpl_root), foot_lock=False), {j: (j, c) for j, c in segments.items()}),
             (retarget(on_anny, smplh, foot_lock=False), {j: (j, c) for j, c in segments.items()})]
    for motion, segs in cases:
        _, p = motion.global_transforms()
        for joint, (a, b) in segs.items():
            source_dir = src[:, amass.joint(segments[joint])] - src[:, amass.joint(joint)]
            target_dir = p[:, motion.joint(b)] - p[:, motion.joint(a)]
            assert _angle(source_dir, target_dir).max() < 1e-4, (motion.skeleton, joint)


def test_retarget_onto_the_same_skeleton_is_identity(smpl_root):
    asset = bake_avatar("smplh", model_path=smpl_root, gender="male")
    rng = np.random.default_rng(0)
    m = asset.rest_motion(5).replace(rotations=rng.normal(0, 0.5, (5, 52, 3)),
                                     root_translation=rng.normal(0, 1, (5, 3)))
    out = retarget(m, asset)
    G0, p0 = m.global_transforms()
    G1, p1 = out.global_transforms()
    assert np.abs(G1 - G0).max() < 1e-9 and np.abs(p1 - p0).max() < 1e-9


def test_handless_skeletons_to_anny(anny):
    """SMPL-22 (the text generator's skeleton) has no hands: fingers keep their T-pose relation;
    SMPL-24's hand joint drives Anny's four finger roots."""
    names, parents = skeleton("humanml3d")
    rng = np.random.default_rng(1)
    rot = rng.normal(0, 0.3, (4, 22, 3))
    rot[:, 0] = matrix_to_axis_angle(Y_UP_TO_Z_UP)
    m = Motion("humanml3d", names, parents, 20.0, rot, np.tile([0.0, 0.0, 0.95], (4, 1)))
    out = retarget(m, anny)
    G, p = out.global_transforms()
    wrist, finger = anny.joint_names.index("wrist.L"), anny.joint_names.index("finger3-2.L")
    H = G @ np.swapaxes(Rig.of_asset(anny).tpose, -1, -2)       # rotation relative to the T-pose
    assert np.abs(H[:, finger] - H[:, wrist]).max() < 1e-9        # fingers ride with the hand
    # the root path is the source's, scaled by the leg-length ratio
    assert np.allclose(p[:, 0], m.root_translation * Rig.of_asset(anny).leg_length / Rig.of_motion(m).leg_length)

    names24, parents24 = skeleton("smpl")
    rot24 = np.zeros((4, 24, 3))
    rot24[:, :22] = rot
    rot24[:, 22] = [0.0, 0.0, 0.8]                                # curl the left hand joint
    m24 = Motion("smpl", names24, parents24, 20.0, rot24, m.root_translation, reference_offsets("smpl"))
    G24, _ = retarget(m24, anny).global_transforms()
    H24 = G24 @ np.swapaxes(Rig.of_asset(anny).tpose, -1, -2)
    for f in range(2, 6):
        k = anny.joint_names.index(f"finger{f}-1.L")
        assert np.abs(H24[:, k] - H24[:, anny.joint_names.index("finger3-1.L")]).max() < 1e-9
        assert np.abs(H24[:, k] - H24[:, wrist]).max() > 0.3


def test_unknown_skeleton_is_refused(anny):
    m = Motion("bvh", ["hips", "spine"], [-1, 0], 30.0, np.zeros((2, 2, 3)), np.zeros((2, 3)), np.zeros((2, 3)))
    with pytest.raises(UserError, match="retargeting reads"):
        retarget(m, anny)
