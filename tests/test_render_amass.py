"""Real data: the AMASS SMPL+H sample retargeted onto Anny and rendered; the head stays above the
pelvis in every frame, in 3D and in the projected keypoints, and the body is in frame."""

import numpy as np
import pytest

pytest.importorskip("bpy")
pytest.importorskip("anny")

from render.api import render_scene  # noqa: E402
from render.meta import read_meta  # noqa: E402

pytestmark = [pytest.mark.blender, pytest.mark.slow]


def test_amass_on_anny_head_above_pelvis(amass_sample, tmp_path):
    from motion.bodies import bake_avatar
    from motion.io import read_motion
    from motion.ops import resample
    from motion.retarget import retarget

    asset = bake_avatar("anny")
    motion = retarget(resample(read_motion(amass_sample), 10.0), asset)
    asset.save(tmp_path / "anny.npz")
    motion.save(tmp_path / "walk.npz")
    scene = {"fps": 10, "resolution": [48, 48], "camera": {"type": "orbit", "degrees": 90},
             "actors": [{"name": "anny", "avatar": "anny.npz", "motion": "walk.npz"}], "passes": ["mask", "skeleton"]}
    out = render_scene(scene, tmp_path / "out", base_dir=tmp_path, previews=False)
    meta = read_meta(out)
    assert len(meta["frames"]) == motion.n_frames
    names = meta["joint_names"]["anny"]
    head, root = names.index("head"), names.index("root")
    for frame in meta["frames"]:
        joints = np.array(frame["actors"]["anny"]["joints3d"])
        assert joints[head, 2] > joints[root, 2] + 0.3
        kp = np.array(frame["actors"]["anny"]["keypoints2d"]["openpose18"])
        nose, hips = kp[0], kp[[8, 11]]
        assert nose[1] < hips[:, 1].min()                       # image y points down
        assert kp[:, 2].sum() >= 8                              # most keypoints visible
        assert ((kp[:, :2] >= 0) & (kp[:, :2] < 48)).all()
