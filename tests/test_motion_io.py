"""Readers and writers: AMASS (real sample), SMPL-X variants, fitter params, BVH, HumanML3D joints."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from motion.errors import UserError
from motion.io import read_motion, write_motion
from motion.io.smplx_params import hand_pca
from motion.ops import heading_of
from motion.reference_skeleton import SMPL_ORIGIN_TO_PELVIS, reference_joints
from motion.rotations import Y_UP_TO_Z_UP
from _motion_io_util import random_motion, same_pose
from _smpl_fixture import write_model

# --- AMASS: the real sample ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def amass(amass_sample):
    return read_motion(amass_sample)


def test_amass_sample_reads_as_smplh(amass, amass_sample):
    raw = np.load(amass_sample)
    assert (amass.skeleton, amass.n_frames, amass.fps, amass.n_joints) == ("smplh", 601, 120.0, 52)
    assert amass.shape["gender"] == "male" and amass.shape["betas"].shape == (16,)
    np.testing.assert_allclose(amass.rotations[:, 1:], raw["poses"].reshape(601, 52, 3)[:, 1:])
    # the pelvis rest offset is added to trans unrotated (SMPL quirk)
    pelvis = reference_joints("smplh")[1][0]
    np.testing.assert_allclose(amass.root_translation, raw["trans"] + pelvis)
    np.testing.assert_allclose(pelvis, SMPL_ORIGIN_TO_PELVIS)


def test_amass_with_model_files_uses_the_shaped_model_joints(amass_sample, tmp_path):
    """The sample is male SMPL+H: read it with a (synthetic, official-layout) male SMPL+H file.

    Betas past the 10th are zeroed here: whether all 16 reach the joints is the body model's
    concern (motion.bodies), not the reader's."""
    model = write_model(tmp_path, "smplh")
    with open(model, "rb") as f:
        arrays = pickle.load(f, encoding="latin1")
    raw = dict(np.load(amass_sample))
    raw["betas"] = np.concatenate([raw["betas"][:10], np.zeros(6)])
    np.savez(tmp_path / "sample.npz", **raw)
    joints = arrays["J_regressor"] @ (arrays["v_template"] + arrays["shapedirs"] @ raw["betas"])
    m = read_motion(tmp_path / "sample.npz", model_path=tmp_path)
    np.testing.assert_allclose(m.root_translation, raw["trans"] + joints[0], atol=1e-6)
    np.testing.assert_allclose(m.rest_offsets[1:], joints[1:] - joints[m.parents[1:]], atol=1e-6)


def test_amass_joints_agree_with_the_mocap_markers(amass, amass_sample):
    """Independent evidence for the frame conventions: the optical markers recorded with the clip."""
    raw = np.load(amass_sample)
    labels = [s.decode() for s in raw["marker_labels"]]
    markers = raw["marker_data"]
    joints = amass.joint_positions()
    names = amass.joint_names

    def marker(label):
        return markers[:, labels.index(label)]

    # markers sit on the skin near their joints (the reference skeleton is not this subject's body)
    for label, joint in [("LFHD", "head"), ("RFHD", "head"), ("LKNE", "left_knee"), ("RKNE", "right_knee"),
                         ("LANK", "left_ankle"), ("RANK", "right_ankle"), ("LELB", "left_elbow"),
                         ("RELB", "right_elbow"), ("LOWR", "left_wrist"), ("ROWR", "right_wrist")]:
        distance = np.linalg.norm(marker(label) - joints[:, names.index(joint)], axis=-1)
        assert distance.max() < 0.15, (label, distance.max())
        # and on the correct side: nearer to this joint than to its mirror twin
        twin = joint.replace("left", "RIGHT").replace("right", "left").replace("RIGHT", "right")
        if twin != joint:
            assert np.all(distance < np.linalg.norm(marker(label) - joints[:, names.index(twin)], axis=-1))
    # up is +Z: head markers above the knees, knees above the ankles
    assert np.all(marker("LFHD")[:, 2] > marker("LKNE")[:, 2]) and np.all(marker("LKNE")[:, 2] > marker("LANK")[:, 2])
    # facing: back-of-head -> front-of-head markers give the heading our convention reports
    face = (marker("LFHD") + marker("RFHD") - marker("LBHD") - marker("RBHD"))[:, :2]
    marker_heading = np.rad2deg(np.arctan2(face[:, 0], -face[:, 1]))
    diff = (heading_of(amass) - marker_heading + 180) % 360 - 180
    assert np.abs(diff).max() < 20


# --- SMPL-X: AMASS variants and fitter parameters ---------------------------------------------------------


def _smplx_pose(frames=6, seed=1):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(frames, 55, 3)) * 0.3, rng.normal(size=(frames, 3))


def test_smplx_amass_poses_and_split_keys_agree(tmp_path):
    pose, trans = _smplx_pose()
    T = len(pose)
    np.savez(tmp_path / "full.npz", poses=pose.reshape(T, 165), trans=trans, betas=np.ones(16),
             gender=np.array("female"), mocap_frame_rate=np.array(60.0))
    np.savez(tmp_path / "split.npz", root_orient=pose[:, 0], pose_body=pose[:, 1:22].reshape(T, 63),
             pose_jaw=pose[:, 22], pose_eye=pose[:, 23:25].reshape(T, 6), pose_hand=pose[:, 25:].reshape(T, 90),
             trans=trans, betas=np.ones(16), gender=np.array(b"female"), mocap_frame_rate=60.0,
             surface_model_type=np.array("smplx"))
    full, split = read_motion(tmp_path / "full.npz"), read_motion(tmp_path / "split.npz")
    assert full.skeleton == split.skeleton == "smplx" and full.n_joints == 55 and full.fps == 60.0
    assert full.shape["gender"] == split.shape["gender"] == "female"
    np.testing.assert_allclose(full.rotations, split.rotations)
    np.testing.assert_allclose(full.root_translation, split.root_translation)
    np.testing.assert_allclose(full.rotations[:, 23], pose[:, 23])  # left eye stays a joint of its own


def test_fitter_params_match_amass_and_frames_rotate_the_body(tmp_path):
    pose, trans = _smplx_pose()
    T = len(pose)
    np.savez(tmp_path / "amass.npz", poses=pose.reshape(T, 165), trans=trans, mocap_framerate=30.0)
    params = dict(global_orient=pose[:, 0], body_pose=pose[:, 1:22],  # (T, 21, 3) variant
                  jaw_pose=pose[:, 22], leye_pose=pose[:, 23], reye_pose=pose[:, 24],
                  left_hand_pose=pose[:, 25:40].reshape(T, 45), right_hand_pose=pose[:, 40:].reshape(T, 45),
                  transl=trans, betas=np.zeros((1, 10)), expression=np.arange(T * 10.0).reshape(T, 10))
    np.savez(tmp_path / "fit.npz", **params)
    with open(tmp_path / "fit.pkl", "wb") as f:
        pickle.dump({k: v.astype(np.float32) for k, v in params.items()}, f)
    reference = read_motion(tmp_path / "amass.npz")
    z_up = read_motion(tmp_path / "fit.npz", frame="z_up")
    assert z_up.fps == 30.0 and z_up.shape["expression"].shape == (T, 10)
    assert same_pose(reference, z_up)
    # default: parameters in SMPL-X's Y-up world -> the whole body turns by Y_UP_TO_Z_UP
    y_up = read_motion(tmp_path / "fit.pkl")
    np.testing.assert_allclose(y_up.joint_positions(), reference.joint_positions() @ Y_UP_TO_Z_UP.T, atol=1e-5)
    # OpenCV camera frame: Y down, Z forward -> upside down relative to Y up
    cam = read_motion(tmp_path / "fit.npz", frame="opencv")
    np.testing.assert_allclose(cam.joint_positions(),
                               reference.joint_positions() @ np.diag([1.0, -1, -1]) @ Y_UP_TO_Z_UP.T, atol=1e-9)


def test_single_frame_fit_broadcasts_and_pca_hands_need_the_model(tmp_path):
    np.savez(tmp_path / "one.npz", global_orient=np.zeros((1, 3)), body_pose=np.zeros((1, 63)),
             transl=np.zeros((1, 3)))
    one = read_motion(tmp_path / "one.npz")
    assert one.n_frames == 1 and one.fps == 30.0
    np.savez(tmp_path / "pca.npz", global_orient=np.zeros((2, 3)), body_pose=np.zeros((2, 63)),
             left_hand_pose=np.ones((2, 12)))
    with pytest.raises(UserError, match="pca.npz.*PCA.*--model-path"):
        read_motion(tmp_path / "pca.npz")


def test_model_path_gives_exact_rest_joints_and_pca_hands(tmp_path):
    """With (synthetic, official-layout) SMPL-X model files: rest joints are the model's regressed
    joints and PCA hand coefficients expand with the model's basis and mean."""
    model = write_model(tmp_path / "models", "smplx")
    arrays = np.load(model, allow_pickle=True)
    betas = np.linspace(-2.0, 2.0, 10)
    joints = arrays["J_regressor"] @ (arrays["v_template"] + arrays["shapedirs"][:, :, :10] @ betas)
    assert np.abs(joints - reference_joints("smplx")[1]).max() > 0.01  # distinguishable from the fallback
    coefficients = np.random.default_rng(1).normal(size=(3, 6))
    np.savez(tmp_path / "fit.npz", global_orient=np.zeros((3, 3)), body_pose=np.zeros((3, 63)), transl=np.ones((3, 3)),
             left_hand_pose=coefficients, right_hand_pose=np.zeros((3, 45)), betas=betas)
    m = read_motion(tmp_path / "fit.npz", model_path=tmp_path / "models", frame="z_up")
    np.testing.assert_allclose(m.root_translation, np.broadcast_to(1.0 + joints[0], (3, 3)), atol=1e-6)
    np.testing.assert_allclose(m.rest_offsets[1:], joints[1:] - joints[m.parents[1:]], atol=1e-6)  # float32 model
    left = m.rotations[:, m.joint_names.index("left_index1"):][:, :15].reshape(3, 45)
    np.testing.assert_allclose(left, coefficients @ arrays["hands_componentsl"][:6] + arrays["hands_meanl"])
    with pytest.raises(UserError, match="female"):
        hand_pca(tmp_path / "models", "female", "left")


# --- avatarcine npz and BVH round trips ---------------------------------------------------------------------


def test_npz_round_trip(tmp_path, amass):
    out = write_motion(amass, tmp_path / "clip.npz")
    back = read_motion(out)
    assert back.skeleton == "smplh" and back.shape["gender"] == "male"
    np.testing.assert_allclose(back.rotations, amass.rotations, atol=1e-6)  # stored as float32
    np.testing.assert_allclose(back.root_translation, amass.root_translation, atol=1e-6)


def test_bvh_round_trip_keeps_skeleton_and_pose(tmp_path, amass):
    clip = amass.replace(rotations=amass.rotations[:40], root_translation=amass.root_translation[:40])
    back = read_motion(write_motion(clip, tmp_path / "clip.bvh"))
    assert (back.skeleton, back.joint_names, back.fps, back.n_frames) == ("smplh", clip.joint_names, 120.0, 40)
    np.testing.assert_array_equal(back.parents, clip.parents)
    np.testing.assert_allclose(back.rest_offsets, clip.rest_offsets, atol=1e-6)
    np.testing.assert_allclose(back.joint_positions(), clip.joint_positions(), atol=2e-5)


def test_bvh_writes_what_independent_euler_maths_reads(tmp_path):
    """Our writer's ZXY channels decode with scipy's intrinsic Euler convention to our rotations."""
    clip = random_motion("humanml3d", frames=5)
    text = write_motion(clip, tmp_path / "c.bvh").read_text()
    values = np.array([line.split() for line in text.split("Frame Time:")[1].splitlines()[1:]], dtype=float)
    spine1 = clip.joint_names.index("spine1")
    # depth-first file order: pelvis, left leg (4 joints), right leg (4), spine1 ...
    angles = values[:, 3 + 3 * 9: 3 + 3 * 10]
    expected = Rotation.from_rotvec(clip.rotations[:, spine1]).as_matrix()
    np.testing.assert_allclose(Rotation.from_euler("ZXY", angles, degrees=True).as_matrix(), expected, atol=1e-5)
    # root position channels are Y up
    np.testing.assert_allclose(values[:, :3], clip.root_translation @ Y_UP_TO_Z_UP, atol=1e-6)


HAND_BVH = """HIERARCHY
ROOT Hips
{
  OFFSET 0 0 0
  CHANNELS 6 Xposition Yposition Zposition Yrotation Xrotation Zrotation
  JOINT Chest
  {
    OFFSET 0 20 0
    CHANNELS 3 Xrotation Zrotation Yrotation
    JOINT LeftArm
    {
      OFFSET 15 0 0
      CHANNELS 6 Zrotation Yposition Xposition Zposition Yrotation Xrotation
      End Site
      {
        OFFSET 25 0 0
      }
    }
    JOINT RightArm
    {
      OFFSET -15 0 0
      CHANNELS 1 Zrotation
      End Site
      {
        OFFSET -25 0 0
      }
    }
  }
  JOINT LeftLeg
  {
    OFFSET 10 -5 0
    CHANNELS 3 Zrotation Xrotation Yrotation
    End Site
    {
      OFFSET 0 -85 0
    }
  }
  JOINT RightLeg
  {
    OFFSET -10 -5 0
    CHANNELS 3 Zrotation Xrotation Yrotation
    End Site
    {
      OFFSET 0 -85 0
    }
  }
}
MOTION
Frames: 2
Frame Time: 0.04
10 90 5 0 0 0   0 0 0   0 0 15 0 0 0   0   0 0 0   0 0 0
10 90 5 90 0 0  0 0 30  90 0 15 0 0 0  45  0 0 0   0 0 0
"""


def test_hand_written_bvh_with_mixed_channels_in_cm(tmp_path):
    path = tmp_path / "hand.bvh"
    path.write_text(HAND_BVH)
    m = read_motion(path)
    assert m.skeleton == "bvh" and m.fps == 25.0 and m.n_frames == 2
    assert m.joint_names == ["Hips", "Chest", "LeftArm", "RightArm", "LeftLeg", "RightLeg"]
    np.testing.assert_array_equal(m.parents, [-1, 0, 1, 1, 0, 0])
    np.testing.assert_allclose(m.rest_offsets[2], [0.15, 0.0, 0.0])  # from its position channels
    p = m.joint_positions()
    # frame 0: rest pose, Y-up cm -> Z-up metres: (x, y, z) -> (x, -z, y) / 100
    np.testing.assert_allclose(p[0, 0], [0.10, -0.05, 0.90])
    np.testing.assert_allclose(p[0, 2], [0.25, -0.05, 1.10])
    # frame 1, by hand: hips turn 90 deg about Y (file X -> file -Z), chest rolls 30 deg about Y
    # (channel Yrotation last), the left arm hangs off a chest turned by 120 deg about Y.
    hips = np.array([10, 90, 5.0])
    chest = hips + [0, 20, 0]
    turn = Rotation.from_euler("Y", 120, degrees=True).as_matrix()
    left_arm = chest + turn @ [15, 0, 0]
    right_arm = chest + turn @ [-15, 0, 0]
    for index, file_point in [(0, hips), (1, chest), (2, left_arm), (3, right_arm)]:
        np.testing.assert_allclose(p[1, index], Y_UP_TO_Z_UP @ file_point / 100, atol=1e-9)


def test_hand_written_bvh_round_trips_through_our_writer(tmp_path):
    path = tmp_path / "hand.bvh"
    path.write_text(HAND_BVH)
    m = read_motion(path)
    back = read_motion(write_motion(m, tmp_path / "again.bvh"))
    assert back.joint_names == m.joint_names and back.fps == m.fps
    np.testing.assert_allclose(back.joint_positions(), m.joint_positions(), atol=1e-6)


def test_bvh_units_and_reference_frame_rate_options(tmp_path):
    path = tmp_path / "hand.bvh"
    path.write_text(HAND_BVH)
    metres = read_motion(path, units="m")
    np.testing.assert_allclose(metres.root_translation[0], [10, -5, 90])
    assert read_motion(path, fps=50).fps == 50.0
    # animated position channels on a non-root joint: a Motion has fixed bones -> median + warning
    stretched = tmp_path / "stretch.bvh"
    stretched.write_text(HAND_BVH.replace("90 0 15 0 0 0  45", "90 0 19 0 0 0  45"))
    with pytest.warns(UserWarning, match="LeftArm.*median"):
        m = read_motion(stretched)
    np.testing.assert_allclose(m.rest_offsets[2], [0.17, 0.0, 0.0])


def _stick_bvh(cm_per_unit: float) -> str:
    """A 1.70 m stick figure (pelvis 1 m up) written in some length unit."""
    def u(*cm):
        return " ".join(f"{c / cm_per_unit:.6f}" for c in cm)

    return f"""HIERARCHY
ROOT Hips
{{
  OFFSET {u(0, 0, 0)}
  CHANNELS 6 Xposition Yposition Zposition Zrotation Xrotation Yrotation
  JOINT Head
  {{
    OFFSET {u(0, 60, 0)}
    CHANNELS 3 Zrotation Xrotation Yrotation
    End Site
    {{
      OFFSET {u(0, 10, 0)}
    }}
  }}
  JOINT LeftFoot
  {{
    OFFSET {u(10, -95, 0)}
    CHANNELS 3 Zrotation Xrotation Yrotation
    End Site
    {{
      OFFSET {u(0, -5, 0)}
    }}
  }}
}}
MOTION
Frames: 1
Frame Time: 0.0333333
{u(20, 100, -30)} 0 0 0 0 0 0 0 0 0
"""


@pytest.mark.parametrize("unit,cm", [("m", 100.0), ("cm", 1.0), ("mm", 0.1), ("inch", 2.54)])
def test_bvh_units_are_guessed_from_the_body_height(tmp_path, unit, cm):
    path = tmp_path / f"{unit}.bvh"
    path.write_text(_stick_bvh(cm))
    m = read_motion(path)
    assert m.fps == 30.0
    np.testing.assert_allclose(m.joint_positions()[0], [[0.2, 0.3, 1.0], [0.2, 0.3, 1.6], [0.3, 0.3, 0.05]],
                               atol=1e-6)


# --- HumanML3D joints ---------------------------------------------------------------------------------


def test_humanml3d_joints_and_mdm_results(tmp_path, amass):
    clip = amass.replace(rotations=amass.rotations[::6], root_translation=amass.root_translation[::6], fps=20.0)
    world = clip.joint_positions()[:, :22]
    y_up = world @ Y_UP_TO_Z_UP  # how HumanML3D stores them
    np.save(tmp_path / "joints.npy", y_up.astype(np.float32))
    m = read_motion(tmp_path / "joints.npy")
    assert (m.skeleton, m.n_joints, m.fps, m.n_frames) == ("humanml3d", 22, 20.0, len(world))
    assert np.abs(m.joint_positions() - world).max() < 1e-3
    motion = np.stack([y_up, y_up[::-1]])  # (N, T, 22, 3) -> MDM's (N, 22, 3, T)
    results = {"motion": np.moveaxis(motion, 1, -1), "lengths": np.array([len(world), 30]), "text": ["a", "b"]}
    np.save(tmp_path / "results.npy", results)
    second = read_motion(tmp_path / "results.npy", sample=1)
    assert second.n_frames == 30
    assert np.abs(second.joint_positions() - world[::-1][:30]).max() < 1e-3
    with pytest.raises(UserError, match="sample 5 out of range"):
        read_motion(tmp_path / "results.npy", sample=5)


# --- bad input: one-line UserError naming the file ---------------------------------------------------------


def _bad_files(tmp):
    ok = dict(poses=np.zeros((3, 156)), trans=np.zeros((3, 3)), mocap_framerate=120.0)
    cases = {
        "missing_trans.npz": {k: v for k, v in ok.items() if k != "trans"},
        "wrong_width.npz": {**ok, "poses": np.zeros((3, 100))},
        "nan.npz": {**ok, "poses": np.full((3, 156), np.nan)},
        "inf_trans.npz": {**ok, "trans": np.full((3, 3), np.inf)},
        "zero_frames.npz": {**ok, "poses": np.zeros((0, 156)), "trans": np.zeros((0, 3))},
        "fps0.npz": {**ok, "mocap_framerate": 0.0},
        "no_rate.npz": {k: v for k, v in ok.items() if k != "mocap_framerate"},
        "trans_frames.npz": {**ok, "trans": np.zeros((4, 3))},
        "unknown_keys.npz": {"foo": np.zeros(3)},
        "fit_no_body.npz": {"global_orient": np.zeros((2, 3))},
        "fit_bad_hand.npz": {"global_orient": np.zeros((2, 3)), "body_pose": np.zeros((2, 63)),
                             "left_hand_pose": np.zeros((2, 48))},
    }
    for name, arrays in cases.items():
        np.savez(tmp / name, **arrays)
    (tmp / "corrupt.npz").write_bytes(b"not a zip")
    (tmp / "notes.txt").write_text("hello")
    (tmp / "joints.npy").write_bytes(b"garbage")
    np.save(tmp / "shape.npy", np.zeros((10, 263)))
    np.save(tmp / "nan_joints.npy", np.full((4, 22, 3), np.nan))
    (tmp / "pickle.pkl").write_bytes(b"\x80\x04garbage")
    bvh = {
        "empty.bvh": "",
        "no_motion.bvh": HAND_BVH.split("MOTION")[0],
        "short.bvh": HAND_BVH.rsplit("\n", 2)[0] + "\n",
        "zero_frames.bvh": HAND_BVH.replace("Frames: 2", "Frames: 0"),
        "frame_time.bvh": HAND_BVH.replace("Frame Time: 0.04", "Frame Time: 0"),
        "bad_channel.bvh": HAND_BVH.replace("CHANNELS 1 Zrotation", "CHANNELS 1 Wrotation"),
        "braces.bvh": HAND_BVH.replace("  }\n}\nMOTION", "}\nMOTION"),
        "text_data.bvh": HAND_BVH.replace("10 90 5 90", "10 90 5 abc"),
        "dup_names.bvh": HAND_BVH.replace("JOINT RightLeg", "JOINT LeftLeg"),
    }
    for name, text in bvh.items():
        (tmp / name).write_text(text)
    return sorted(p.name for p in tmp.iterdir())




@pytest.mark.parametrize("name", [
    "missing_trans.npz", "wrong_width.npz", "nan.npz", "inf_trans.npz", "zero_frames.npz", "fps0.npz", "no_rate.npz",
    "trans_frames.npz", "unknown_keys.npz", "fit_no_body.npz", "fit_bad_hand.npz", "corrupt.npz", "notes.txt",
    "joints.npy", "shape.npy", "nan_joints.npy", "pickle.pkl", "empty.bvh", "no_motion.bvh", "short.bvh",
    "zero_frames.bvh", "frame_time.bvh", "bad_channel.bvh", "braces.bvh", "text_data.bvh", "dup_names.bvh",
    "missing.bvh"])
def test_bad_input_names_the_file(tmp_path_factory, name):
    folder = tmp_path_factory.getbasetemp() / "bad_motion_files"
    if not folder.exists():
        folder.mkdir()
        _bad_files(folder)
    with pytest.raises(UserError) as info:
        read_motion(folder / name)
    assert name in str(info.value) and "\n" not in str(info.value)


def test_writer_refuses_overwrite_and_unknown_formats(tmp_path, amass):
    target = tmp_path / "keep.bvh"
    target.write_text("precious")
    with pytest.raises(UserError, match="already exists"):
        write_motion(amass, target)
    assert target.read_text() == "precious"
    with pytest.raises(UserError, match="cannot write '.fbx'"):
        write_motion(amass, tmp_path / "x.fbx")
    with pytest.raises(UserError, match="no rest skeleton"):
        write_motion(amass.replace(rest_offsets=None), tmp_path / "x.bvh")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.bvh"]  # no temporary left behind
