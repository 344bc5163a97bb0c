"""Several scenes / passes folders in one command, without Ray: each into its own output, finished ones
skipped on rerun, failures named at the end (exit 2) with the others kept."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from _diffusion_util import one_thread, tiny_dir  # noqa: F401  (fixtures)
from _render_util import tube_avatar, wave_motion, write_actor
from diffusion.io.synthetic_passes import write_passes
from motion.cli import main
from motion.errors import UserError


@pytest.fixture()
def tiny_cache(tiny_dir, monkeypatch):
    monkeypatch.setenv("AVATARCINE_CACHE", str(tiny_dir.parent))
    return tiny_dir


@pytest.mark.usefixtures("one_thread")
def test_generate_several_folders_skips_finished_and_refuses_other_settings(tmp_path, tiny_cache, capsys):
    for name, size in (("a", (64, 64)), ("b", (80, 64))):
        write_passes(tmp_path / name, frames=2, size=size)
    common = ["--model", "tiny", "--prompt", "a person", "--steps", "2", "--no-side-by-side"]
    out = tmp_path / "out"
    assert main(["generate", str(tmp_path / "a"), str(tmp_path / "b"), "-o", str(out), "--seed", "1", *common]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["a", "b"]
    frames = {n: (out / n / "frames" / "000000.png").stat().st_mtime_ns for n in "ab"}
    capsys.readouterr()
    assert main(["generate", str(tmp_path / "a"), str(tmp_path / "b"), "-o", str(out), "--seed", "1", *common]) == 0
    assert capsys.readouterr().out.count("done before, skipped") == 2
    assert {n: (out / n / "frames" / "000000.png").stat().st_mtime_ns for n in "ab"} == frames
    # another seed: both refused by name, one line, exit 2, nothing replaced; --force regenerates
    assert main(["generate", str(tmp_path / "a"), str(tmp_path / "b"), "-o", str(out), "--seed", "2", *common]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("avatarcine: error: generate: 2 of 2 tasks failed after 1 attempt: ")
    assert err[0].count("holds a generation of other settings or passes; pass --force") == 2
    assert {n: (out / n / "frames" / "000000.png").stat().st_mtime_ns for n in "ab"} == frames
    assert main(["generate", str(tmp_path / "a"), "-o", str(tmp_path / "one"), "--seed", "2", *common]) == 0
    assert main(["generate", str(tmp_path / "a"), str(tmp_path / "b"), "-o", str(out), "--seed", "2", "--force",
                 *common]) == 0
    assert json.loads((out / "a" / "run.json").read_text())["settings"]["seed"] == 2
    assert (out / "a" / "frames" / "000000.png").read_bytes() == (tmp_path / "one" / "frames" / "000000.png").read_bytes()


def test_folders_of_one_name_are_refused(tmp_path, capsys):
    for folder in ("x/clip", "y/clip"):
        write_passes(tmp_path / folder, frames=1)
    assert main(["generate", str(tmp_path / "x/clip"), str(tmp_path / "y/clip"), "--prompt", "p",
                 "-o", str(tmp_path / "out")]) == 2
    assert "another passes folder of this run has the name 'clip'" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def _scene(folder: Path, name: str) -> Path:
    asset = tube_avatar()
    actor = write_actor(folder, name, asset, wave_motion(asset, 3))
    path = folder / f"{name}.json"
    path.write_text(json.dumps({"fps": 30, "resolution": [32, 24], "actors": [actor],
                                "camera": {"type": "orbit", "degrees": 30}, "passes": ["mask"]}))
    return path


@pytest.mark.blender
def test_render_several_scenes_names_the_broken_one_and_keeps_the_rest(tmp_path, capsys):
    pytest.importorskip("bpy")
    good, broken = _scene(tmp_path, "ann"), _scene(tmp_path, "eve")
    (tmp_path / "eve.motion.npz").write_bytes(b"not an npz")
    assert main(["render", str(good), str(broken), "-o", str(tmp_path / "out"), "--no-previews"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"scenes: 1 of 2 tasks failed after 1 attempt: {broken} (" in err[0]
    assert len(list((tmp_path / "out" / "ann" / "mask").glob("*.png"))) == 3
    assert not (tmp_path / "out" / "eve" / "meta.json").exists()


def test_scenes_of_one_stem_are_refused(tmp_path):
    from render.commands import scene_outputs

    with pytest.raises(UserError, match="also has the stem 'walk'"):
        scene_outputs(["a/walk.yaml", "b/walk.json"], str(tmp_path / "out"))
    assert scene_outputs(["a/walk.yaml"], str(tmp_path / "out")) == {"a/walk.yaml": tmp_path / "out"}
