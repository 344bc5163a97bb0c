"""A non-editable install works like the editable one: build the wheel from a copy of the sources,
install it into a fresh venv that sees this venv's dependencies (nothing is downloaded) but not its
editable install, and run the command line from outside the checkout."""

import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from _render_util import tube_avatar, wave_motion, write_actor
from blender_addon.commands import build

REPO = Path(__file__).resolve().parents[1]
SOURCES = ("pyproject.toml", "README.md", "motion", "render", "diffusion", "blender_addon")


def _run(cmd: list, cwd: Path, env: dict) -> subprocess.CompletedProcess:
    run = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True)
    assert run.returncode == 0, f"{cmd}: {run.stdout[-1500:]}{run.stderr[-3000:]}"
    return run


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> tuple[Path, dict]:
    """(venv, env) of a fresh venv holding the wheel, this venv's site-packages after its own."""
    tmp = tmp_path_factory.mktemp("wheel")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env.update(AVATARCINE_QUIET="1", HF_HUB_OFFLINE="1")
    src = tmp / "src"          # a copy: building writes build/ and *.egg-info next to the sources
    src.mkdir()
    for name in SOURCES:
        if (REPO / name).is_dir():
            shutil.copytree(REPO / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(REPO / name, src / name)
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q", "-w",
          tmp / "dist", src], tmp, env)
    (wheel,) = (tmp / "dist").glob("avatarcine-*.whl")
    venv = tmp / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", venv], tmp, env)
    _run([sys.executable, "-m", "pip", "--python", venv / "bin" / "python", "install", "--no-deps", "--no-index",
          "-q", wheel], tmp, env)
    # This venv's packages as a plain path entry (after the new venv's own): its .pth files, among them
    # the editable install's finder, are not processed.
    site = Path(_run([venv / "bin" / "python", "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                     tmp, env).stdout.strip())
    (site / "shared_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return venv, env


def test_wheel_install_runs_from_its_own_site_packages(installed, tmp_path):
    venv, env = installed
    bin_ = venv / "bin"
    where = json.loads(_run([bin_ / "python", "-c",
                             "import json, motion, render, diffusion, blender_addon.commands as c; print(json.dumps("
                             "[m.__file__ for m in (motion, render, diffusion, c)] + [str(c.PACKAGES_ROOT)]))"],
                            tmp_path, env).stdout)
    assert all(Path(p).resolve().is_relative_to(venv.resolve()) for p in where), where
    assert "usage: avatarcine" in _run([bin_ / "avatarcine", "--help"], tmp_path, env).stdout
    _run([bin_ / "avatarcine", "motion", "generate", "walk forward", "--seconds", "1", "-o", "x.npz"], tmp_path, env)
    assert re.search(r"^frames +30$", _run([bin_ / "avatarcine", "motion", "info", "x.npz"], tmp_path, env).stdout, re.M)
    _run([bin_ / "avatarcine", "addon", "build", "-o", "ext.zip"], tmp_path, env)
    with zipfile.ZipFile(tmp_path / "ext.zip") as installed_zip, zipfile.ZipFile(build(tmp_path / "tree.zip")) as tree:
        assert sorted(installed_zip.namelist()) == sorted(tree.namelist())
        assert installed_zip.read("blender_manifest.toml") == tree.read("blender_manifest.toml")
    assert "controlnet" in _run([bin_ / "avatarcine", "methods"], tmp_path, env).stdout


@pytest.mark.blender
def test_wheel_install_renders(installed, tmp_path):
    pytest.importorskip("bpy")
    venv, env = installed
    actor = write_actor(tmp_path, "a", tube_avatar(), wave_motion(tube_avatar(), 2))
    (tmp_path / "scene.json").write_text(json.dumps({"fps": 30, "resolution": [24, 24], "actors": [actor],
                                                     "camera": {"type": "static"}, "passes": ["mask", "skeleton"]}))
    _run([venv / "bin" / "avatarcine", "render", "scene.json", "-o", "out", "--no-previews"], tmp_path, env)
    assert len(json.loads((tmp_path / "out" / "meta.json").read_text())["frames"]) == 2


def test_wheel_install_loads_the_embedded_model_offline(installed, tmp_path):
    """``--model embedded`` resolves to the installed package's copy (checked against its files.json)
    and loads through from_pretrained with the hub offline."""
    venv, env = installed
    code = ("import json; from diffusion.embedded import embedded_dir; "
            "from diffusion.methods.make_your_anchor import METHOD; "
            "s = METHOD.settings(model='embedded', device='cpu'); c = METHOD.load(s); "
            "print(json.dumps([embedded_dir(), c.sources, c.unet.config.cross_attention_dim]))")
    folder, sources, width = json.loads(_run([venv / "bin" / "python", "-c", code], tmp_path, env).stdout.splitlines()[-1])
    assert Path(folder).resolve().is_relative_to(venv.resolve()) and not Path(folder).is_relative_to(REPO)
    assert all(Path(sources[k]).resolve().is_relative_to(venv.resolve()) for k in ("model", "controlnet", "image_encoder"))
    assert width == json.loads((REPO / "diffusion" / "embedded" / "model" / "unet" / "config.json").read_text())[
        "cross_attention_dim"]
