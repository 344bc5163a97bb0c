"""`avatarcine generate` / `methods` end to end with the tiny models; outputs and reproducibility."""

from __future__ import annotations

import json

import imageio.v2 as imageio
import numpy as np
import pytest

from _diffusion_util import one_thread, tiny_dir  # noqa: F401  (fixtures)
from diffusion.io.synthetic_passes import write_passes

pytestmark = pytest.mark.usefixtures("one_thread")
from motion.cli import main


@pytest.fixture()
def tiny_cache(tiny_dir, monkeypatch):
    monkeypatch.setenv("AVATARCINE_CACHE", str(tiny_dir.parent))
    return tiny_dir


def _generate(passes, out, *extra):
    return main(["generate", str(passes), "--model", "tiny", "--prompt", "a dancer", "--steps", "2", "--cfg", "4",
                 "--controlnet", "openpose", "stack", "--controlnet-scale", "1.0", "0.5", "--window", "2",
                 "--overlap", "1", "--seed", "5", "--background", "first", "-o", str(out), *extra])


def test_generate_writes_frames_videos_and_a_record_that_reproduces_the_run(tmp_path, tiny_cache, capsys):
    passes = write_passes(tmp_path / "passes", frames=3, size=(80, 64), fps=12.0)
    out = tmp_path / "out"
    assert _generate(passes, out, "--width", "64", "--height", "64") == 0
    assert str(out / "video.mp4") in capsys.readouterr().out
    frames = [imageio.imread(out / "frames" / f"{i:06d}.png") for i in range(3)]
    assert all(f.shape == (64, 64, 3) for f in frames)
    reader = imageio.get_reader(out / "video.mp4")
    meta = reader.get_meta_data()
    assert meta["codec"] == "h264" and meta["fps"] == pytest.approx(12.0) and meta["size"] == (64, 64)
    assert sum(1 for _ in reader) == 3
    side = imageio.get_reader(out / "side_by_side.mp4")
    assert side.get_meta_data()["size"] == (128, 64)
    record = json.loads((out / "run.json").read_text())
    assert record["settings"]["seed"] == 5 and record["settings"]["window"] == 2
    assert record["settings"]["controlnet"] == ["openpose", "stack"]
    assert record["controlnets"][1]["passes"] == ["depth_png", "normal", "mask"]
    assert record["models"]["controlnet:stack"].endswith("controlnet-stack")
    assert record["sampling"]["windows"] == [[0, 2], [1, 3]]
    # The record alone reproduces the frames bit for bit.
    again = tmp_path / "again"
    assert main(["generate", "--from-record", str(out / "run.json"), "-o", str(again)]) == 0
    for i in range(3):
        np.testing.assert_array_equal(imageio.imread(again / "frames" / f"{i:06d}.png"), frames[i])
    # A different seed changes them.
    other = tmp_path / "other"
    assert main(["generate", "--from-record", str(out / "run.json"), "--seed", "6", "-o", str(other)]) == 0
    assert not np.array_equal(imageio.imread(other / "frames" / "000001.png"), frames[1])


def test_generate_refuses_to_overwrite_and_reports_bad_input_in_one_line(tmp_path, tiny_cache, capsys):
    passes = write_passes(tmp_path / "passes", frames=1)
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    assert _generate(passes, out) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "already exists" in err
    assert (out / "keep.txt").read_text() == "mine"
    assert _generate(tmp_path / "nowhere", tmp_path / "o2") == 2
    assert "not a passes folder" in capsys.readouterr().err
    assert main(["generate", str(passes), "--model", "tiny", "--prompt", "x", "--controlnet", "normal",
                 "--controlnet-scale", "1", "2", "-o", str(tmp_path / "o3")]) == 2
    assert "--controlnet-scale" in capsys.readouterr().err
    assert main(["generate", str(passes), "--model", "tiny", "--prompt", "x", "--controlnet", "flow",
                 "-o", str(tmp_path / "o4")]) == 2
    assert "say which passes" in capsys.readouterr().err
    assert main(["generate", str(passes), "--model", "tiny", "--prompt", "x", "--window", "4", "--overlap", "4",
                 "-o", str(tmp_path / "o5")]) == 2
    assert "--overlap" in capsys.readouterr().err
    assert not any((tmp_path / f"o{i}").exists() for i in (2, 3, 4, 5))


def test_methods_lists_the_registry(capsys):
    assert main(["methods", "--json"]) == 0
    table = json.loads(capsys.readouterr().out)
    assert "controlnet" in table
    assert any(s["name"] == "overlap" and s["default"] == 4 for s in table["controlnet"]["settings"])


def test_demo_scene_is_a_valid_render_scene():
    from diffusion.demo import PASSES, demo_scene
    from render.scene_config import validate_scene

    scene = validate_scene(demo_scene("motion.npz"), "demo")
    assert scene["camera"]["type"] == "orbit" and scene["passes"] == PASSES
