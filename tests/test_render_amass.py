"""Real data: the AMASS SMPL+H sample on Anny (``body: anny`` baked, retargeted and placed by
``motion.actors``), rendered through the ``blender -b`` entry from a YAML scene (which prepares the
actors with the avatarcine command); the head stays above the pelvis in every frame, in 3D and in
the projected keypoints, and the body stays in frame."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

pytest.importorskip("bpy")
pytest.importorskip("anny")

from render.meta import read_meta  # noqa: E402

pytestmark = [pytest.mark.blender, pytest.mark.slow]
REPO = Path(__file__).resolve().parents[1]


def test_amass_on_anny_head_above_pelvis(amass_sample, tmp_path):
    scene = {"fps": 8, "resolution": [48, 48], "camera": {"type": "orbit", "degrees": 90},
             "actors": [{"name": "anny", "body": "anny", "motion": str(amass_sample), "position": [0.5, 0.0],
                         "heading_deg": 30}],
             "passes": ["mask", "skeleton"]}
    (tmp_path / "scene.yaml").write_text(yaml.safe_dump(scene))
    cli = Path(sys.executable).with_name("avatarcine")
    env = {**os.environ, "AVATARCINE": str(cli)}
    run = subprocess.run([sys.executable, str(REPO / "render" / "blender_entry.py"), "--", "scene.yaml", "-o", "out",
                          "--no-previews"], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-2000:]
    meta = read_meta(tmp_path / "out")
    assert len(meta["frames"]) == 41                          # 601 frames at 120 fps = 5 s -> 8 fps
    names = meta["joint_names"]["anny"]
    head, root = names.index("head"), names.index("root")
    first = np.array(meta["frames"][0]["actors"]["anny"]["joints3d"])
    assert np.allclose(first[root, :2], [0.5, 0.0], atol=1e-4)  # placed where the scene says
    for frame in meta["frames"]:
        joints = np.array(frame["actors"]["anny"]["joints3d"])
        assert joints[head, 2] > joints[root, 2] + 0.3
        kp = np.array(frame["actors"]["anny"]["keypoints2d"]["openpose18"])
        nose, hips = kp[0], kp[[8, 11]]
        assert nose[1] < hips[:, 1].min()                       # image y points down
        assert kp[:, 2].sum() >= 8                              # most keypoints visible
        assert ((kp[:, :2] >= 0) & (kp[:, :2] < 48)).all()
