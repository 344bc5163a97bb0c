"""Body models baked into avatar assets, checked against the body models' own forward passes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from motion.asset import AvatarAsset
from motion.bodies import bake_avatar
from motion.errors import UserError
from motion.rotations import Y_UP_TO_Z_UP, axis_angle_to_matrix, matrix_to_axis_angle
from render.meta import OPENPOSE18
from _smpl_fixture import write_model

PHENO = {"gender": 0.2, "age": 0.7, "muscle": 0.8, "weight": 0.3, "height": 0.9, "proportions": 0.4}


@pytest.fixture(scope="module")
def anny_asset() -> AvatarAsset:
    return bake_avatar("anny", shape=PHENO)


@pytest.fixture(scope="module")
def smpl_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("smpl_models")
    for body in ("smpl", "smplh", "smplx"):
        write_model(root, body)
    return root


def random_motion(asset: AvatarAsset, frames: int, scale: float, seed: int):
    rng = np.random.default_rng(seed)
    m = asset.rest_motion(frames)
    rot = rng.normal(0.0, scale, m.rotations.shape)
    rot[:, 0] = matrix_to_axis_angle(axis_angle_to_matrix(rot[:, 0]) @ asset.model_to_world)
    return m.replace(rotations=rot, root_translation=rng.normal(0.0, 1.0, (frames, 3)))


# --- Anny ---------------------------------------------------------------------------------------

def test_anny_skinning_equals_anny_forward(anny_asset):
    """Our numpy skinning of a Motion == Anny's own forward pass with the converted pose parameters."""
    from motion.bodies.anny_body import anny_model, anny_pose_parameters

    motion = random_motion(anny_asset, 3, 0.5, seed=1)
    with torch.no_grad():
        out = anny_model()(pose_parameters=anny_pose_parameters(motion, anny_asset), phenotype_kwargs=PHENO)
    theirs = out["vertices"].numpy() + anny_asset.shape["model_origin"]
    ours = anny_asset.skin(motion)
    assert np.abs(ours - theirs).max() < 1e-9
    # and the pose really moved the mesh far from rest
    assert np.abs(ours - anny_asset.rest_vertices).max() > 0.3


def test_anny_frames_and_rest(anny_asset):
    a = anny_asset
    assert np.array_equal(a.model_to_world, np.eye(3))
    assert abs(a.rest_vertices[:, 2].min()) < 1e-9                      # feet on the floor
    assert np.allclose(a.rest_joints[0, :2], 0.0)                       # root above the origin
    kp = dict(zip(a.keypoint_names, a.keypoints(a.rest_vertices[None])[0]))
    assert kp["nose"][1] < a.rest_joints[0, 1] - 0.05                   # faces -Y
    assert kp["left_wrist"][0] > 0.3 and kp["right_wrist"][0] < -0.3    # subject's left at +X
    assert kp["nose"][2] > 1.3 and kp["nose"][2] > kp["neck"][2] > kp["left_hip"][2] > kp["left_knee"][2]
    assert len(a.joint_names) == 104 and a.faces.shape[1] == 3
    assert a.uvs.shape == (len(a.faces), 3, 2) and 0 <= a.uvs.min() and a.uvs.max() <= 1
    assert a.texture.shape == (1024, 1024, 3) and a.texture.dtype == np.uint8
    assert a.shape["height"] == PHENO["height"]


def test_anny_phenotypes_change_the_body():
    tall = bake_avatar("anny", shape={"height": 1.0})
    short = bake_avatar("anny", shape={"height": 0.0})
    assert tall.rest_vertices[:, 2].max() - short.rest_vertices[:, 2].max() > 0.2


@pytest.mark.parametrize("shape, message", [({"heigth": 0.5}, "valid: gender, age"),
                                            ({"age": 1.5}, "outside 0..1")])
def test_anny_bad_phenotypes(shape, message):
    with pytest.raises(UserError, match=message):
        bake_avatar("anny", shape=shape)


def test_anny_save_load_roundtrip(anny_asset, tmp_path):
    path = anny_asset.save(tmp_path / "anny.npz")
    back = AvatarAsset.load(path)
    assert back.joint_names == anny_asset.joint_names and np.array_equal(back.faces, anny_asset.faces)
    assert np.allclose(back.shape["model_origin"], anny_asset.shape["model_origin"])
    with pytest.raises(UserError, match="already exists"):
        anny_asset.save(path)


def test_anny_parts_follow_the_rig(anny_asset):
    a = anny_asset
    assert a.part_names[0] == "background" and tuple(a.part_palette[0]) == (0, 0, 0)
    assert len({tuple(c) for c in a.part_palette}) == len(a.part_palette)
    assert set(np.unique(a.vertex_parts)) == set(range(1, len(a.part_names)))
    # independent check: the mesh points nearest to the middle of a segment carry its part
    kp = dict(zip(a.keypoint_names, a.keypoints(a.rest_vertices[None])[0]))
    for ends, part in ((("nose", "nose"), "head"), (("left_hand_middle4", "left_hand_middle4"), "left_hand"),
                       (("right_knee", "right_ankle"), "right_lower_leg"), (("left_hip", "left_knee"), "left_upper_leg"),
                       (("left_elbow", "left_wrist"), "left_lower_arm"), (("right_shoulder", "right_elbow"), "right_upper_arm")):
        middle = 0.5 * (kp[ends[0]] + kp[ends[1]])
        near = np.argsort(np.linalg.norm(a.rest_vertices - middle, axis=1))[:5]
        assert np.all(a.vertex_parts[near] == a.part_names.index(part)), part
    # left and right mirror each other (x -> -x)
    left, right = a.part_names.index("left_upper_arm"), a.part_names.index("right_upper_arm")
    assert np.allclose(np.sort(a.rest_vertices[a.vertex_parts == left, 0]),
                       np.sort(-a.rest_vertices[a.vertex_parts == right, 0]), atol=1e-6)


def test_anny_keypoints_match_annys_coco_regressor(anny_asset):
    """OpenPose body keypoints on a posed mesh == anny's COCO regressor (neck = shoulders' mean);
    hand keypoints follow the posed finger joints."""
    import anny
    from motion.bodies.anny_body import anny_model, anny_pose_parameters

    a = anny_asset
    assert a.keypoint_names[:18] == OPENPOSE18 and len(a.keypoint_names) == 18 + 42
    motion = random_motion(a, 2, 0.3, seed=2)
    with torch.no_grad():
        out = anny_model()(pose_parameters=anny_pose_parameters(motion, a), phenotype_kwargs=PHENO)
        coco = anny.KeypointsRegressor.coco(anny_model())
        theirs = dict(zip(coco.labels, np.moveaxis(coco(out).numpy() + a.shape["model_origin"], 1, 0)))
    ours = dict(zip(a.keypoint_names, np.moveaxis(a.keypoints(a.skin(motion)), 1, 0)))
    for name in OPENPOSE18:
        expected = 0.5 * (theirs["left_shoulder"] + theirs["right_shoulder"]) if name == "neck" else theirs[name]
        assert np.abs(ours[name] - expected).max() < 1e-6, name  # anny: float32 weights, we renormalise
    joints = motion.joint_positions(a.rest_offsets)
    for side, s in (("left", "L"), ("right", "R")):
        for k, finger in enumerate(("thumb", "index", "middle", "ring", "pinky"), start=1):
            for i in (1, 2, 3):
                err = np.linalg.norm(ours[f"{side}_hand_{finger}{i}"] - joints[:, motion.joint(f"finger{k}-{i}.{s}")], axis=1)
                assert err.max() < 0.015, (side, finger, i)  # under a finger's width


def test_anny_gender_option_sets_the_phenotype():
    from motion.bodies.anny_body import phenotypes_with_gender

    assert phenotypes_with_gender({}, "female")["gender"] == 1.0
    assert phenotypes_with_gender({"age": 0.1}, "male") == {**phenotypes_with_gender({}, None), "gender": 0.0,
                                                           "age": 0.1}
    assert phenotypes_with_gender({"gender": 0.3}, "female")["gender"] == 0.3   # --shape wins
    with pytest.raises(UserError, match="not one of male, neutral, female"):
        bake_avatar("anny", gender="other")


# --- SMPL family --------------------------------------------------------------------------------

def _smplx_forward(asset: AvatarAsset, body: str, root, rotations: np.ndarray, transl: np.ndarray, **create):
    """smplx's own forward pass for per-joint axis-angles (T, J, 3) -> (vertices, joints) in our world."""
    from motion.bodies.smpl_family import load_model, model_file

    path = model_file(body, root, asset.shape["gender"])
    model = load_model(body, path, asset.shape["gender"], len(asset.shape["betas"]))
    if create:  # e.g. SMPL-X with its dynamic face contour
        import smplx

        model = smplx.SMPLX(str(path), num_betas=10, use_pca=False, flat_hand_mean=True,
                            dtype=torch.float64, **create)
    t = lambda x: torch.as_tensor(x.reshape(len(x), -1), dtype=torch.float64)  # noqa: E731
    kw = dict(betas=t(np.tile(asset.shape["betas"][:10], (len(rotations), 1))), global_orient=t(rotations[:, 0]),
              transl=t(transl))
    if body == "smpl":
        kw["body_pose"] = t(rotations[:, 1:24])
    else:
        kw["body_pose"] = t(rotations[:, 1:22])
        hands = 22 if body == "smplh" else 25
        kw["left_hand_pose"] = t(rotations[:, hands:hands + 15])
        kw["right_hand_pose"] = t(rotations[:, hands + 15:hands + 30])
    if body == "smplx":
        kw.update(jaw_pose=t(rotations[:, 22]), leye_pose=t(rotations[:, 23]), reye_pose=t(rotations[:, 24]),
                  expression=torch.zeros(len(rotations), 10, dtype=torch.float64))
    with torch.no_grad():
        out = model(**kw)
    M, origin = Y_UP_TO_Z_UP, asset.shape["model_origin"]
    return out.vertices.numpy() @ M.T + origin, out.joints.numpy() @ M.T + origin, model.J_regressor.numpy()


def _params_motion(asset: AvatarAsset, rotations: np.ndarray, transl: np.ndarray):
    """SMPL parameters -> Motion, with the convention of motion.io: root = M R, p0 = M (trans + J0)."""
    M = Y_UP_TO_Z_UP
    rot = rotations.copy()
    rot[:, 0] = matrix_to_axis_angle(M @ axis_angle_to_matrix(rotations[:, 0]))
    j0_model = (asset.rest_joints[0] - asset.shape["model_origin"]) @ M
    return asset.rest_motion(len(rotations)).replace(
        rotations=rot, root_translation=(transl + j0_model) @ M.T + asset.shape["model_origin"])


@pytest.mark.parametrize("body, gender", [("smpl", None), ("smplh", "male"), ("smplx", None)])
def test_smpl_family_skinning_equals_smplx_forward(smpl_root, body, gender):
    """Vertex-by-vertex equality with smplx, pose correctives included; keypoint vertices/joints too."""
    asset = bake_avatar(body, model_path=smpl_root, gender=gender, shape={"beta0": 1.5, "beta3": -1.0})
    rng = np.random.default_rng(3)
    rotations = rng.normal(0.0, 0.4, (2, len(asset.joint_names), 3))
    transl = rng.normal(0.0, 0.5, (2, 3))
    verts, joints, regressor = _smplx_forward(asset, body, smpl_root, rotations, transl)
    motion = _params_motion(asset, rotations, transl)
    ours = asset.skin(motion)
    assert np.abs(ours - verts).max() < 1e-6  # smplx adds 1e-8 to rotation vectors (batch_rodrigues)
    no_correctives = AvatarAsset(**{**asset.__dict__, "corrective_shapes": None, "corrective_names": []})
    assert np.abs(no_correctives.skin(motion) - verts).max() > 1e-3   # the correctives matter
    J = len(asset.joint_names)
    assert np.abs(motion.joint_positions(asset.rest_offsets) - joints[:, :J]).max() < 1e-6
    kp = dict(zip(asset.keypoint_names, np.moveaxis(asset.keypoints(ours), 1, 0)))
    # smplx appends the vertex-selected nose, eyes, ears after the skeleton joints
    for k, name in enumerate(("nose", "right_eye", "left_eye", "right_ear", "left_ear")):
        assert np.abs(kp[name] - joints[:, J + k]).max() < 1e-6, name
    # body and hand joints: the official joint regressor applied to smplx's posed mesh
    regressed = np.einsum("jv,tvd->tjd", regressor, verts)
    assert np.abs(kp["left_elbow"] - regressed[:, motion.joint("left_elbow")]).max() < 1e-6
    if body != "smpl":
        assert np.abs(kp["right_hand_index2"] - regressed[:, motion.joint("right_index2")]).max() < 1e-6
    assert asset.corrective_shapes.shape == (9 * (J - 1), len(asset.rest_vertices), 3)
    assert asset.corrective_names[0] == f"{asset.joint_names[1]}.r00"


def test_smplx_face_landmarks_and_uvs(smpl_root):
    asset = bake_avatar("smplx", model_path=smpl_root)
    faces68 = [n for n in asset.keypoint_names if n.startswith("face_")]
    assert len(faces68) == 68 and asset.uvs.shape == (len(asset.faces), 3, 2)
    rotations = np.zeros((1, len(asset.joint_names), 3))
    rotations[0, 18] = [0.0, 0.0, 1.0]   # the left elbow moves; the head stays frontal
    transl = np.zeros((1, 3))
    _, joints, _ = _smplx_forward(asset, "smplx", smpl_root, rotations, transl, use_face_contour=True)
    kp = asset.keypoints(asset.skin(_params_motion(asset, rotations, transl)))[0]
    lm = kp[[asset.keypoint_names.index(n) for n in faces68]]
    # smplx appends 51 static then 17 contour landmarks; ours are iBUG order (contour first)
    assert np.abs(lm[17:] - joints[0, -68:-17]).max() < 1e-6
    assert np.abs(lm[:17] - joints[0, -17:]).max() < 1e-6


def test_smpl_rest_joints_and_layouts(smpl_root, tmp_path, monkeypatch):
    from motion.bodies.smpl_family import rest_joints

    asset = bake_avatar("smplh", model_path=smpl_root, gender="male", shape={"beta1": 2.0, "beta13": 1.0})
    betas = np.r_[0.0, 2.0, np.zeros(11), 1.0, 0.0, 0.0]
    joints = rest_joints("smplh", smpl_root, "male", betas)
    assert np.allclose(joints @ Y_UP_TO_Z_UP.T + asset.shape["model_origin"], asset.rest_joints)
    # all 16 AMASS betas count (smplx itself keeps 10 of a 16-direction file)
    assert np.abs(rest_joints("smplh", smpl_root, "male", betas * (np.arange(16) < 10)) - joints).max() > 1e-3
    # flat layout, direct file and the environment variable reach the same model
    flat = write_model(tmp_path, "smpl", layout="flat")
    a = bake_avatar("smpl", model_path=tmp_path)
    b = bake_avatar("smpl", model_path=flat)
    monkeypatch.setenv("AVATARCINE_SMPL_DIR", str(smpl_root))
    c = bake_avatar("smpl")
    assert np.allclose(a.rest_vertices, b.rest_vertices) and np.allclose(a.rest_vertices, c.rest_vertices)
    assert np.allclose(a.model_to_world, Y_UP_TO_Z_UP) and abs(a.rest_vertices[:, 2].min()) < 1e-12


def test_smpl_bad_model_paths(smpl_root, tmp_path, monkeypatch):
    monkeypatch.delenv("AVATARCINE_SMPL_DIR", raising=False)
    with pytest.raises(UserError, match="needs the licensed model files"):
        bake_avatar("smplx")
    with pytest.raises(UserError, match="no such file or folder"):
        bake_avatar("smplx", model_path=tmp_path / "nowhere")
    with pytest.raises(UserError, match=r"no female smplh model here; expected one of smplh/SMPLH_FEMALE\.npz"):
        bake_avatar("smplh", model_path=smpl_root, gender="female")
    broken = tmp_path / "SMPLX_NEUTRAL.npz"
    broken.write_bytes(b"not a zip")
    with pytest.raises(UserError, match="not a usable smplx model file|not a readable model file"):
        bake_avatar("smplx", model_path=broken)
    wrong = write_model(tmp_path / "w", "smpl", layout="flat")
    with pytest.raises(UserError, match="not a usable smplh model file"):
        bake_avatar("smplh", model_path=wrong)
    with pytest.raises(UserError, match="has 52 joints; a smpl model has 24"):
        bake_avatar("smpl", model_path=smpl_root / "smplh" / "SMPLH_MALE.pkl")
    with pytest.raises(UserError, match="unknown SMPL shape parameter 'height'"):
        bake_avatar("smpl", model_path=smpl_root, shape={"height": 1.0})
    with pytest.raises(UserError, match="has 10 shape coefficients"):
        bake_avatar("smpl", model_path=smpl_root, shape={"beta12": 1.0})
