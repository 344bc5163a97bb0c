"""``avatarcine render`` and the ``blender -b`` entry script give identical files; bad scenes get one
line naming the problem."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from _render_util import tube_avatar, wave_motion, write_actor
from motion.errors import UserError
from render.scene_config import validate_scene

REPO = Path(__file__).resolve().parents[1]
AVATARCINE = [sys.executable, "-m", "motion.cli"]


def _scene(folder: Path) -> Path:
    asset = tube_avatar()
    actor = write_actor(folder, "bob", asset, wave_motion(asset, 2, walk=0.4))
    scene = {"fps": 30, "resolution": [32, 24], "actors": [actor], "camera": {"type": "orbit", "degrees": 30},
             "passes": ["mesh", "normal", "depth", "semantic", "mask", "skeleton", "flow"]}
    path = folder / "scene.json"
    path.write_text(json.dumps(scene))
    return path


@pytest.mark.blender
def test_blender_entry_and_cli_write_identical_files(tmp_path):
    pytest.importorskip("bpy")
    scene = _scene(tmp_path)
    cli = subprocess.run(AVATARCINE + ["render", str(scene), "-o", str(tmp_path / "a"), "--no-previews"],
                         cwd=REPO, capture_output=True, text=True)
    assert cli.returncode == 0, cli.stderr[-2000:]
    # what `blender -b -P render/blender_entry.py -- SCENE -o OUT` runs, here in the bpy-wheel Python
    entry = subprocess.run([sys.executable, str(REPO / "render" / "blender_entry.py"), "--", str(scene),
                            "-o", str(tmp_path / "b"), "--no-previews"], cwd=tmp_path, capture_output=True, text=True)
    assert entry.returncode == 0, entry.stderr[-2000:]
    files_a = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*") if p.is_file())
    files_b = sorted(p.relative_to(tmp_path / "b") for p in (tmp_path / "b").rglob("*") if p.is_file())
    assert files_a == files_b and len(files_a) > 14
    for rel in [r for r in files_a if r.parts[0] != "logs"]:     # Blender's log holds timings
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes(), rel


def test_unknown_keys_are_named():
    base = {"actors": [{"avatar": "a.npz", "motion": "m.npz"}]}
    with pytest.raises(UserError, match="unknown key 'colour'"):
        validate_scene({**base, "colour": 1})
    with pytest.raises(UserError, match="actors\\[0\\].*unknown key 'speed'"):
        validate_scene({"actors": [{"avatar": "a.npz", "motion": "m.npz", "speed": 2}]})
    with pytest.raises(UserError, match="camera.*unknown key 'radius'"):
        validate_scene({**base, "camera": {"type": "static", "radius": 2}})
    with pytest.raises(UserError, match="unknown pass"):
        validate_scene({**base, "passes": ["mesh", "xray"]})
    scene = validate_scene({**base, "frames": {"seconds": 2}})
    assert scene["passes"][0] == "mesh" and scene["camera"]["type"] == "orbit"


def test_cli_bad_scene_is_one_line_exit_2(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"actors": [{"avatar": "a.npz", "motion": "m.npz"}], "resolution": [0, 5]}))
    run = subprocess.run(AVATARCINE + ["render", str(bad), "-o", str(tmp_path / "o")], cwd=REPO,
                         capture_output=True, text=True)
    assert run.returncode == 2
    assert run.stderr.strip().count("\n") == 0 and "resolution" in run.stderr
    missing = tmp_path / "missing.json"
    missing.write_text(json.dumps({"actors": [{"avatar": "nope.npz", "motion": "m.npz"}]}))
    run = subprocess.run(AVATARCINE + ["render", str(missing), "-o", str(tmp_path / "o")], cwd=REPO,
                         capture_output=True, text=True)
    assert run.returncode == 2 and "nope.npz" in run.stderr
