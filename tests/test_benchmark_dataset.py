"""The synthetic benchmark dataset: splits, seeded identities, byte-identical rebuilds, painted clothes."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

from diffusion.benchmark.dataset import SIZES, SPLITS, make_plan
from diffusion.benchmark.identities import draw_identity
from motion.bodies.appearance import Identity, write_identity
from _benchmark_util import run_cli, smoke_dataset


def _pairs(plan: dict, split: str) -> set[tuple[str, str]]:
    return {(c["motion_id"], c["camera_id"]) for c in plan["splits"][split]}


@pytest.mark.parametrize("size", sorted(SIZES))
def test_splits_share_no_motion_camera_pair_and_no_identity(size):
    plan = make_plan(size, seed=3)
    train = plan["splits"]["train"]
    assert all(len(plan["splits"][s]) == n for s, n in zip(SPLITS, SIZES[size].clips))
    assert not _pairs(plan, "heldout") & _pairs(plan, "train")
    # documented: held-out motion ids and camera ids are each disjoint from train's
    assert not {c["motion_id"] for c in plan["splits"]["heldout"]} & {c["motion_id"] for c in train}
    assert not {c["camera_id"] for c in plan["splits"]["heldout"]} & {c["camera_id"] for c in train}
    unseen = {c["identity_id"] for c in plan["splits"]["heldout_identity"]}
    assert bool(unseen) == (SIZES[size].identities[1] > 0)   # default-avatar: one identity, nobody unseen
    assert not unseen & {c["identity_id"] for c in train}
    assert not unseen & {c["identity_id"] for c in plan["splits"]["heldout"]}
    # only the person changes in heldout_identity: its (motion, camera) pairs were seen in training
    assert _pairs(plan, "heldout_identity") <= _pairs(plan, "train")
    ids = [c["id"] for s in SPLITS for c in plan["splits"][s]]
    assert len(ids) == len(set(ids))


def test_plan_is_a_function_of_the_seed():
    assert make_plan("small", 5) == make_plan("small", 5)
    a, b = make_plan("small", 5), make_plan("small", 6)
    assert [i["phenotypes"] for i in a["identities"]] != [i["phenotypes"] for i in b["identities"]]
    assert {i.skin for i in map(Identity.from_json, a["identities"])} != \
        {i.skin for i in map(Identity.from_json, b["identities"])}
    assert draw_identity(5, 2) == draw_identity(5, 2) != draw_identity(5, 3)
    assert json.loads(json.dumps(a)) == a     # the manifest is plain JSON


@pytest.mark.parametrize("state", [".plan.json", "manifest.json"])
def test_corrupt_state_file_is_a_one_line_error(state, tmp_path):
    from diffusion.benchmark.dataset import build_dataset
    from motion.errors import UserError

    (tmp_path / state).write_text('{"size": "smo')                  # cut short by a killed build
    with pytest.raises(UserError, match="unreadable JSON") as err:
        build_dataset(tmp_path, "smoke")
    assert err.value.where == str(tmp_path / state)


def test_motion_files_feed_motions(amass_sample):
    plan = make_plan("smoke", 0, [str(amass_sample)])
    kinds = ["file" if "file" in m else "generate" for m in plan["motions"]]
    assert "file" in kinds and "generate" in kinds
    windows = {m["first_frame"] for m in plan["motions"] if "file" in m}
    assert len(windows) == kinds.count("file")             # distinct windows: distinct motions


def _digests(root) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*.png"))}


@pytest.fixture(scope="module")
def smoke():
    return smoke_dataset(0)


def test_same_seed_gives_byte_identical_images(smoke, tmp_path, monkeypatch):
    assert run_cli(monkeypatch, "bench", "dataset", "--size", "smoke", "--seed", "0", "-o", tmp_path / "b") == 0
    first, second = _digests(smoke), _digests(tmp_path / "b")
    assert len(first) > 0 and first == second
    assert {p.split("/")[2] for p in first} >= {"rgb", "skeleton", "normal", "semantic", "mask", "mesh", "depth_png"}
    assert (smoke / "manifest.json").read_bytes() == (tmp_path / "b" / "manifest.json").read_bytes()
    rgb = [p for p in first if "/rgb/" in p]
    assert len(rgb) == sum(SIZES["smoke"].clips) * SIZES["smoke"].frames
    assert len(set(first[p] for p in rgb)) == len(rgb)     # moving people: no two frames alike


def test_existing_dataset_needs_force(smoke, monkeypatch, capsys):
    assert run_cli(monkeypatch, "bench", "dataset", "--size", "smoke", "--seed", "1", "-o", smoke) == 2
    assert "--force" in capsys.readouterr().err
    before = _digests(smoke)
    assert run_cli(monkeypatch, "bench", "dataset", "--size", "smoke", "--seed", "0", "-o", smoke) == 0
    assert _digests(smoke) == before                         # already built: nothing redone


@pytest.mark.slow
def test_a_killed_build_resumes_to_the_same_dataset_without_temporaries(smoke, tmp_path):
    """kill -9 in the middle of a clip's render, then the same command again: the finished dataset is
    byte-identical to an uninterrupted one and holds no temporaries, locks or temp folders."""
    import os
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    from motion.fileio import TEMP_FILE, TEMP_FOLDER

    repo = Path(__file__).resolve().parents[1]
    out, systmp = tmp_path / "data", tmp_path / "systmp"
    systmp.mkdir()
    env = {**os.environ, "TMPDIR": str(systmp), "PYTHONPATH": str(repo), "AVATARCINE_QUIET": "1"}
    cmd = [sys.executable, "-m", "motion.cli", "bench", "dataset", "--size", "smoke", "--seed", "0", "-o", str(out)]
    log = tmp_path / "build.log"
    with open(log, "w") as err:
        build = subprocess.Popen(cmd, cwd=repo, env=env, stdout=subprocess.DEVNULL, stderr=err)
        while build.poll() is None and not list(out.glob("clips/*/.frames/0*.json")):
            time.sleep(0.005)
        build.send_signal(signal.SIGKILL)
    assert build.wait() == -signal.SIGKILL, log.read_text()[-2000:]       # killed mid-build, not finished
    log.unlink()
    assert not (out / "manifest.json").exists() and (tmp_path / ".data.lock").exists()
    assert subprocess.run(cmd, cwd=repo, env=env, capture_output=True).returncode == 0
    left = [p for p in tmp_path.rglob("*") if TEMP_FILE.match(p.name) or TEMP_FOLDER.match(p.name)
            or p.name.endswith(".lock")]
    assert left == [] and list(systmp.iterdir()) == []
    assert _digests(out) == _digests(smoke)
    assert (out / "manifest.json").read_bytes() == (smoke / "manifest.json").read_bytes()


def test_rendered_clothes_have_the_painted_colours(tmp_path):
    """Blender's rgb render (independent of our painting code) shows the identity's garments where the
    semantic pass says the torso and thighs are, and skin on the face."""
    from diffusion.io.passes import PassesFolder
    from motion.asset import AvatarAsset
    from render.api import render_scene

    identity = Identity(id="t", phenotypes={}, skin=(200, 150, 120), top="t_shirt", top_colour=(210, 30, 30),
                        bottom="trousers", bottom_colour=(30, 40, 200), shoe_colour=(20, 20, 20))
    write_identity(identity, tmp_path / "t.avatar.npz")
    AvatarAsset.load(tmp_path / "t.avatar.npz").rest_motion(1).save(tmp_path / "rest.npz")
    render_scene({"resolution": [64, 64], "actors": [{"avatar": "t.avatar.npz", "motion": "rest.npz"}],
                  "camera": {"type": "static", "azimuth_deg": 0, "elevation_deg": 5},
                  "passes": ["semantic", "rgb"], "engine": {"rgb_samples": 8}},
                 tmp_path / "out", base_dir=tmp_path, previews=False)
    folder = PassesFolder.open(tmp_path / "out")
    rgb, sem = folder.read("rgb", 0) * 255, folder.read("semantic", 0) * 255
    palette = folder.meta["passes"]["semantic"]["palette"]

    def mean(part):
        pixels = rgb[np.abs(sem - np.array(palette[part])).max(-1) < 1]
        assert len(pixels) > 10, part
        return pixels.mean(0)
    torso, thigh, head = mean("torso"), mean("left_upper_leg"), mean("head")
    assert torso[0] > 1.5 * max(torso[1:])                   # red top
    assert thigh[2] > 1.5 * max(thigh[:2])                   # blue trousers
    assert head[0] > head[1] > head[2]                       # skin
