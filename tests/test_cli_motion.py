"""``avatarcine motion info`` and ``motion convert`` through the real CLI entry point."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from motion.cli import main
from motion.io import read_motion


def test_info(amass_sample, capsys):
    assert main(["motion", "info", str(amass_sample)]) == 0
    out = capsys.readouterr().out
    for line in ("skeleton  smplh", "joints    52", "frames    601", "fps       120", "duration  5.008 s"):
        assert line in out


def test_convert_trims_resamples_and_writes_bvh(amass_sample, tmp_path, capsys):
    out = tmp_path / "clip.bvh"
    assert main(["motion", "convert", str(amass_sample), str(out), "--fps", "30", "--start", "1", "--end", "3"]) == 0
    assert "60 frames at 30 fps" in capsys.readouterr().out
    clip, source = read_motion(out), read_motion(amass_sample)
    assert (clip.skeleton, clip.n_frames, clip.fps) == ("smplh", 60, 30.0)
    np.testing.assert_allclose(clip.joint_positions(), source.joint_positions()[120:360:4], atol=5e-5)


def test_convert_to_npz_round_trips(amass_sample, tmp_path):
    out = tmp_path / "clip.npz"
    assert main(["motion", "convert", str(amass_sample), str(out)]) == 0
    assert read_motion(out).n_frames == 601


def test_convert_refuses_to_overwrite(amass_sample, tmp_path, capsys):
    out = tmp_path / "clip.npz"
    out.write_bytes(b"keep me")
    assert main(["motion", "convert", str(amass_sample), str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "already exists" in err and "--force" in err
    assert out.read_bytes() == b"keep me"
    assert main(["motion", "convert", str(amass_sample), str(out), "--force", "--end", "1"]) == 0
    assert read_motion(out).n_frames == 120


@pytest.mark.parametrize("args,message", [
    (["motion", "info", "{tmp}/missing.npz"], "no such file"),
    (["motion", "convert", "{tmp}/bad.bvh", "{tmp}/out.npz"], "bad.bvh"),
    (["motion", "convert", "{sample}", "{tmp}/out.npz", "--fps", "-5"], "fps"),
    (["motion", "convert", "{sample}", "{tmp}/out.npz", "--start", "9"], "keeps no frames"),
    (["motion", "convert", "{sample}", "{tmp}/out.fbx"], "output must end in .npz or .bvh"),
])
def test_bad_input_exits_2_with_one_line(amass_sample, tmp_path, capsys, args, message):
    (tmp_path / "bad.bvh").write_text("HIERARCHY\nROOT x\n{\n")
    argv = [a.format(tmp=tmp_path, sample=amass_sample) for a in args]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("avatarcine: error: ") and err.count("\n") == 1 and message in err
    assert not (tmp_path / "out.npz").exists() and not (tmp_path / "out.fbx").exists()


@pytest.mark.skipif(importlib.util.find_spec("motion.retarget") is None, reason="motion.retarget not written yet")
def test_convert_to_a_body(amass_sample, tmp_path):
    out = tmp_path / "anny.npz"
    assert main(["motion", "convert", str(amass_sample), str(out), "--to", "anny", "--end", "0.5"]) == 0
    clip = read_motion(out)
    assert (clip.skeleton, clip.n_frames, clip.fps) == ("anny", 60, 120.0)


def test_convert_onto_a_baked_avatar(amass_sample, tmp_path, capsys):
    """``--avatar``: retargeted onto the avatar's skeleton, or kept as is when already on it."""
    from _render_util import tube_avatar
    from motion.motion import Motion

    avatar = tmp_path / "tube.avatar.npz"
    tube_avatar().save(avatar)
    out = tmp_path / "on_tube.npz"
    assert main(["motion", "convert", str(amass_sample), str(out), "--fps", "30", "--avatar", str(avatar)]) == 0
    clip = Motion.load(out)
    assert (clip.skeleton, clip.n_frames, clip.fps) == ("smpl", 151, 30.0)
    again = tmp_path / "again.npz"
    assert main(["motion", "convert", str(out), str(again), "--avatar", str(avatar)]) == 0
    kept = Motion.load(again)
    np.testing.assert_array_equal(kept.rotations, clip.rotations)
    np.testing.assert_array_equal(kept.root_translation, clip.root_translation)
    # one target: a body or an avatar (an argument error: one line, exit 2)
    assert main(["motion", "convert", str(amass_sample), str(tmp_path / "x.npz"), "--to", "anny",
                 "--avatar", str(avatar)]) == 2
    assert "not allowed with argument" in capsys.readouterr().err
    assert main(["motion", "convert", str(amass_sample), str(tmp_path / "y.npz"), "--avatar",
                 str(tmp_path / "none.npz")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == f"avatarcine: error: {tmp_path / 'none.npz'}: no such file"
    assert not (tmp_path / "y.npz").exists()
