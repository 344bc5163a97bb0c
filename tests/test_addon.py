"""The Blender extension: a zip Blender's own validator accepts, bundled from the real import graph,
installed with Blender's own extension installer into an interpreter with bpy and numpy but nothing
else of the venv (no editable install, no torch; tests/_addon_isolated.py), where every operator runs
headless on a fresh scene (tests/_addon_scenarios.py) with the real backend Python (the venv) or, for
generation with a model only the backend knows, a fake one (tests/_fake_backend.py)."""

import importlib.util
import json
import os
import shlex
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import numpy as np
import pytest

from blender_addon.bundle import Bundle
from blender_addon.commands import PACKAGES_ROOT, build

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
SITE = sysconfig.get_paths()["purelib"]

def _blender_ext_cli() -> Path | None:
    """Blender's extension tool (``blender --command extension``) as shipped inside the bpy wheel."""
    spec = importlib.util.find_spec("bpy")
    if spec is None or spec.origin is None:
        return None
    found = sorted(Path(spec.origin).parent.glob("*/scripts/addons_core/bl_pkg/cli/blender_ext.py"))
    return found[-1] if found else None


def test_zip_passes_blenders_extension_validator(tmp_path):
    cli = _blender_ext_cli()
    if cli is None:
        pytest.skip("Blender's extension validator ships with the bpy wheel, which is not installed")
    zip_path = build(tmp_path / "ext.zip")
    run = subprocess.run([sys.executable, str(cli), "validate", str(zip_path)], capture_output=True, text=True)
    assert run.returncode == 0 and "Success" in run.stdout, run.stdout + run.stderr
    # control: the same validator rejects a manifest breaking one of its rules (tagline over 64 characters)
    bad = tmp_path / "bad.zip"
    with zipfile.ZipFile(zip_path) as src, zipfile.ZipFile(bad, "w") as dst:
        for item in src.infolist():
            data = src.read(item)
            if item.filename == "blender_manifest.toml":
                data = data.replace(b'tagline = "', b'tagline = "' + b"x" * 60)
            dst.writestr(item, data)
    run = subprocess.run([sys.executable, str(cli), "validate", str(bad)], capture_output=True, text=True)
    assert run.returncode != 0 and "tagline" in run.stdout + run.stderr
    with pytest.raises(Exception, match="already exists"):
        build(tmp_path / "ext.zip")


def _package(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def test_bundle_follows_the_import_graph(tmp_path):
    """A synthetic tree: the add-on's imports and import-time imports are followed; imports inside
    other functions only into modules a stock Blender can import; guarded imports are optional;
    package data rides along."""
    root = _package(tmp_path, {
        "blender_addon/__init__.py": "def register():\n    from . import ui\n",
        "blender_addon/ui.py": "import bpy\nfrom render import api\n",
        "blender_addon/blender_manifest.toml": "",
        "blender_addon/commands.py": "import render.unused\n",
        "render/__init__.py": "",
        "render/blender_entry.py": "",
        "render/api.py": ("from motion.fileio import save\ntry:\n    import cv2\nexcept ImportError:\n"
                          "    cv2 = None\ndef bake():\n    from motion import torch_body, numpy_only\n"),
        "render/unused.py": "",
        "motion/__init__.py": "from motion.errors import UserError\n",
        "motion/errors.py": "",
        "motion/fileio.py": "import json, numpy\n",
        "motion/torch_body.py": "import torch\n",
        "motion/numpy_only.py": "import numpy\ndef f():\n    import torch\n",
        "motion/skeleton.json": "{}",
        "motion/notes.txt": "",
    })
    bundle = Bundle(root)
    assert bundle.modules == ["blender_addon", "blender_addon.ui", "motion", "motion.errors", "motion.fileio",
                              "motion.numpy_only", "render", "render.api", "render.blender_entry"]
    names = [arc for _, arc in bundle.files()]
    assert names == ["__init__.py", "blender_manifest.toml", "motion/__init__.py", "motion/errors.py",
                     "motion/fileio.py", "motion/numpy_only.py", "motion/skeleton.json", "render/__init__.py",
                     "render/api.py", "render/blender_entry.py", "ui.py"]
    # control: a module the panel needs that a stock Blender cannot import is an error, not a silent gap
    (root / "render" / "api.py").write_text("import torch\n")
    with pytest.raises(ValueError, match="blender_addon.ui needs torch"):
        Bundle(root)


def test_real_bundle_has_what_render_imports_and_no_venv_only_code():
    modules = Bundle(PACKAGES_ROOT).modules
    assert {"motion.keypoints", "motion.actors", "render.meta", "render.api", "blender_addon.panel",
            "blender_addon.scene_export", "blender_addon.jobs"} <= set(modules)
    assert not [m for m in modules if m.startswith("diffusion")]
    assert "blender_addon.commands" not in modules and "blender_addon.bundle" not in modules




# --- the installed extension, headless ----------------------------------------------------------------

@pytest.fixture(scope="module")
def extension(tmp_path_factory) -> Path:
    pytest.importorskip("bpy")
    return build(tmp_path_factory.mktemp("extension") / "avatarcine.zip")


def _wrapper(path: Path, *command: str) -> str:
    """An executable standing in for a Python: runs ``command`` with this checkout importable."""
    path.write_text(f"#!/bin/sh\nPYTHONPATH={shlex.quote(str(REPO))} exec {shlex.join(command)} \"$@\"\n")
    path.chmod(0o755)
    return str(path)


@pytest.fixture
def backend(tmp_path) -> str:
    """The real backend: the venv's Python (torch, the diffusion methods) with this checkout."""
    return _wrapper(tmp_path / "backend_python", sys.executable)


@pytest.fixture
def tube(tmp_path) -> dict:
    from _render_util import tube_avatar, wave_motion, write_actor

    actor = write_actor(tmp_path, "a", tube_avatar(), wave_motion(tube_avatar(), 3))
    return {"avatar": str(tmp_path / actor["avatar"]), "motion": str(tmp_path / actor["motion"])}


def scenario(extension: Path, tmp_path: Path, name: str, env: dict | None = None, **args) -> dict:
    """Run ``name`` of tests/_addon_scenarios.py in the isolated interpreter; its result. Checks that
    every module of ours it imported came from the installed extension and nothing blocked was tried."""
    args.setdefault("work", str(tmp_path / "work"))
    run = subprocess.run([sys.executable, "-I", "-S", str(HERE / "_addon_isolated.py"), SITE, str(extension), name,
                          json.dumps(args)], capture_output=True, text=True, cwd=tmp_path,
                         env={**os.environ, "BLENDER_USER_RESOURCES": str(tmp_path / "blender_user"), **(env or {})})
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    report = json.loads(run.stdout.splitlines()[-1])
    assert report["blocked_tried"] == []
    files = {n: f for n, f in report["origins"].items() if f and not f.startswith("[")}   # "[bl_ext]": namespaces
    assert {"motion.asset", "render.avatar", "render.api"} <= set(files)
    assert {n: f for n, f in files.items() if not f.startswith(report["extension"])} == {}
    assert not [n for n in files if n.split(".")[0] in ("diffusion", "blender_addon", "avatarcine")]
    return report["result"]


@pytest.mark.blender
def test_extension_installs_registers_and_unregisters_twice(extension, tmp_path):
    result = scenario(extension, tmp_path, "register_twice")
    assert result["seen"] == [["off", False, False], ["on", True, True]] * 2
    assert result["panels"] == ["avatarcine", "Avatars", "Motion", "Cameras", "Passes", "Generate"]


@pytest.mark.blender
def test_avatars_from_a_file_and_baked_by_the_backend(extension, tmp_path, backend, tube):
    from motion.asset import AvatarAsset

    result = scenario(extension, tmp_path, "avatars", backend=backend, avatar=tube["avatar"])
    asset = AvatarAsset.load(tube["avatar"])
    first = result["first"]
    assert (first["name"], first["type"], first["avatar"]) == ("a", "ARMATURE", tube["avatar"])
    assert first["children"] == [["a_body", "MESH", len(asset.joint_names), len(asset.rest_vertices)]]
    baked = result["baked"]
    assert baked["location"] == [1.5, 0.0, 0.0]                     # at the 3D cursor
    assert Path(baked["avatar"]).parent == tmp_path / "work" / "avatars" and baked["bones"] == 104
    # the sliders reached the bake: the baked file records the phenotypes it was made with
    assert baked["shape"] == {"gender": 0.5, "age": 0.3, "muscle": 0.5, "weight": 0.5, "height": 0.9,
                              "proportions": 0.5}
    assert result["objects"] == ["a", "a_body", "anny", "anny_body"]


@pytest.mark.blender
def test_bad_input_gives_one_report_line_and_leaves_the_scene(extension, tmp_path, backend, tube):
    empty_models = tmp_path / "models"
    empty_models.mkdir()
    missing = str(tmp_path / "nowhere.npz")
    result = scenario(extension, tmp_path, "bad_inputs", backend=backend, avatar=tube["avatar"], missing=missing,
                      smpl_dir=str(empty_models))
    for key, names in (("missing_avatar", missing), ("missing_motion", missing),
                       ("wrong_body_folder", str(empty_models)), ("no_camera", "camera")):
        message = result[key]
        assert message.startswith("Error: ") and "\n" not in message.strip() and "Traceback" not in message, message
        assert names in message, message
    assert result["after_missing_avatar"] == result["empty"]
    assert result["empty"]["objects"] == [] and result["with_avatar"]["objects"] == ["a", "a_body"]
    for key in ("after_missing_motion", "after_wrong_body_folder", "after_no_camera"):
        assert result[key] == result["with_avatar"], key


@pytest.mark.blender
def test_motion_import_edits_and_text_generation(extension, tmp_path, backend, tube, amass_sample):
    result = scenario(extension, tmp_path, "motion_ops", backend=backend, avatar=tube["avatar"], amass=str(amass_sample))
    imported = result["imported"]
    # 601 frames at 120 fps resampled to the scene's 30 fps, retargeted (SMPL+H -> the avatar's SMPL skeleton)
    assert (imported["frames"], imported["fps"], imported["skeleton"]) == (151, 30.0, "smpl")
    assert imported["range"] == [0, 150] and imported["keys"] == 151
    assert imported["skin_error"] < 1e-4          # Blender's deformed mesh is the motion skinned in numpy
    assert result["retime"] == {"frames": 76, "range": [0, 75], "keys": 76}            # twice as fast
    assert result["loop"] == {"frames": 152, "range": [0, 151], "keys": 152}
    assert result["trim"] == {"frames": 30, "range": [0, 29], "keys": 30}              # 0.5 s .. 1.5 s at 30 fps
    generated = result["generated"]
    assert (generated["frames"], generated["skeleton"], generated["range"]) == (60, "smpl", [0, 59])
    assert generated["travel"] > 0.3                                                   # two steps forward


def _pass_files(out: Path) -> dict[str, bytes]:
    """meta.json and every file of every pass it lists."""
    meta = json.loads((out / "meta.json").read_text())
    files = {"meta.json": (out / "meta.json").read_bytes()}
    for info in meta["passes"].values():
        files.update({f"{info['dir']}/{p.name}": p.read_bytes() for p in sorted((out / info["dir"]).iterdir())})
    return files


@pytest.mark.blender
def test_render_from_blender_equals_avatarcine_render_and_edits_render(extension, tmp_path, backend, tube):
    passes = ["mask", "skeleton", "depth", "normal", "semantic"]
    outs = {k: tmp_path / k for k in ("scripted", "edited", "moved")}
    result = scenario(extension, tmp_path, "render_from_blender", backend=backend, resolution=[24, 24], passes=passes,
                      **tube, **{k: str(v) for k, v in outs.items()})
    assert result["frames"] == [0, 1, 2] and result["camera_keys"] == 3
    # the same scene written by hand and rendered by the command line
    cli_scene = tmp_path / "cli_scene.json"
    cli_scene.write_text(json.dumps({
        "fps": 30, "resolution": [24, 24], "frames": {"start": 0, "end": 2},
        "actors": [{"name": "a", "avatar": tube["avatar"], "motion": tube["motion"]}],
        "camera": {"type": "orbit", "degrees": 90, "direction": "ccw", "start_deg": 0, "elevation_deg": 10,
                   "focal_mm": 50, "fill": 0.85},
        "passes": passes}))
    run = subprocess.run([sys.executable, "-m", "motion.cli", "render", str(cli_scene), "-o", str(tmp_path / "cli"),
                          "--no-previews"], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-2000:]
    cli, scripted, edited = (_pass_files(p) for p in (tmp_path / "cli", outs["scripted"], outs["edited"]))
    assert len(cli) == 1 + 3 * 7 and scripted == cli
    # control: the camera edited by hand renders differently ...
    assert edited.keys() == cli.keys() and edited["meta.json"] != cli["meta.json"]
    assert any(edited[k] != cli[k] for k in cli if k.startswith("mask/"))
    # ... and as edited: meta.json's camera is Blender's evaluated camera at every frame
    meta = json.loads(edited["meta.json"])
    for frame, blender in zip(meta["frames"], result["edited_camera"]):
        np.testing.assert_allclose(frame["camera"]["camera_to_world_blender"], blender["matrix_world"], atol=1e-5)
        assert frame["camera"]["K"][0][0] == pytest.approx(blender["lens"] / 36.0 * 24, rel=1e-6)
    assert [b["lens"] for b in result["edited_camera"]] == [50.0, 50.0, 35.0]      # keyed at every frame
    # the moved scene into the edited render's folder: refused in one line, that render kept (checked above)
    assert result["refused"].strip().count("\n") == 0 and "holds a render of a different scene" in result["refused"]
    assert "tick Overwrite to replace it" in result["refused"]
    # the avatar moved with its object transform: every joint moved by that rigid transform
    M = np.array(result["avatar_matrix"])
    moved = json.loads((outs["moved"] / "meta.json").read_text())
    for before, after in zip(meta["frames"], moved["frames"]):
        j0, j1 = np.array(before["actors"]["a"]["joints3d"]), np.array(after["actors"]["a"]["joints3d"])
        np.testing.assert_allclose(j1, j0 @ M[:3, :3].T + M[:3, 3], atol=1e-5)
        assert np.abs(j1 - j0).max() > 0.1


@pytest.mark.blender
def test_cancelled_render_keeps_its_frames_and_resumes(extension, tmp_path, backend):
    from _render_util import tube_avatar, wave_motion, write_actor

    actor = write_actor(tmp_path, "a", tube_avatar(), wave_motion(tube_avatar(), 30))
    out = tmp_path / "passes"
    # rgb (path traced, ~70 ms a frame at 16 px on one core) makes the frames slow enough to stop mid-way
    result = scenario(extension, tmp_path, "cancel_render", backend=backend, resolution=[16, 16], passes=["mask", "rgb"],
                      avatar=str(tmp_path / actor["avatar"]), motion=str(tmp_path / actor["motion"]), out=str(out))
    assert result["status"][0].startswith("render: render ") and result["cancelled"] and result["returncode"]
    assert 2 <= len(result["done_at_cancel"]) < 30
    assert result["unchanged_after_resume"] and result["scene_unchanged"] and result["frames"] == 30
    # cancelled and resumed gives the files of one uninterrupted render of the same scene file
    run = subprocess.run([sys.executable, "-m", "motion.cli", "render", result["scene_file"], "-o",
                          str(tmp_path / "whole"), "--no-previews"], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-2000:]
    resumed, whole = _pass_files(out), _pass_files(tmp_path / "whole")
    assert len(whole) == 1 + 30 * 3 and resumed == whole


FAKE_METHODS = {"toy": {"summary": "a method only this backend has", "recipes": [], "settings": [
    {"name": "prompt", "flag": "--prompt", "type": "str", "default": "", "help": "text prompt", "group": "text"},
    {"name": "steps", "flag": "--steps", "type": "int", "default": 20, "help": "denoising steps", "group": "sampling",
     "low": 1, "high": 1000},
    {"name": "strength", "flag": "--strength", "type": "float", "default": 0.85, "help": "how much", "group": "toy",
     "low": 0, "high": 1},
    {"name": "scheduler", "flag": "--scheduler", "type": "str", "default": "ddim", "help": "sampler",
     "group": "sampling", "choices": ["ddim", "dpm", "euler"]},
    {"name": "seed", "flag": "--seed", "type": "int", "default": 0, "help": "seed", "group": "sampling", "low": 0,
     "high": 2**63 - 1},
    {"name": "scales", "flag": "--scales", "type": "list[float]", "default": [1.0], "help": "one per part",
     "group": "toy", "low": 0, "high": 10},
    {"name": "window", "flag": "--window", "type": "int | None", "default": 16, "help": "frames per window",
     "group": "temporal", "low": 1, "zero_is_none": True},
    {"name": "width", "flag": "--width", "type": "int | None", "default": None, "help": "output width",
     "group": "framing", "low": 8, "high": 8192},
    {"name": "dtype", "flag": "--dtype", "type": "str | None", "default": None, "help": "precision",
     "group": "device", "choices": ["fp32", "fp16", "bf16"]},
    {"name": "side_by_side", "flag": "--side-by-side", "type": "bool", "default": True, "help": "also side by side",
     "group": "output"}]}}


@pytest.mark.blender
def test_generate_controls_come_from_the_registry_and_the_video_comes_back(extension, tmp_path):
    methods = tmp_path / "methods.json"
    methods.write_text(json.dumps(FAKE_METHODS))
    passes = tmp_path / "passes"
    passes.mkdir()
    (passes / "meta.json").write_text(json.dumps({"frames_range": [5, 8]}))
    fake = _wrapper(tmp_path / "fake_python", sys.executable, str(HERE / "_fake_backend.py"))
    result = scenario(extension, tmp_path, "generate_fake", env={"FAKE_METHODS": str(methods)}, backend=fake,
                      passes=str(passes))
    props = result["properties"]
    assert result["method"] == "toy"
    assert props["steps"] == {"type": "INT", "description": "denoising steps", "min": 1, "max": 1000, "default": 20}
    assert props["strength"]["type"] == "FLOAT" and (props["strength"]["min"], props["strength"]["max"]) == (0, 1)
    assert props["scheduler"] == {"type": "ENUM", "description": "sampler", "items": ["ddim", "dpm", "euler"],
                                  "default": "ddim"}
    assert props["seed"]["max"] == 2**31 - 1                          # Blender integers are 32-bit
    assert props["dtype"]["items"] == ["<none>", "fp32", "fp16", "bf16"] and props["dtype"]["default"] == "<none>"
    assert props["scales"] == {"type": "STRING", "description": "one per part", "default": "1.0"}
    assert props["given__window"]["default"] is True and props["given__width"]["default"] is False
    assert props["side_by_side"]["type"] == "BOOLEAN" and "given__steps" not in props
    videos = tmp_path / "work" / "videos"
    first, second = videos / "toy", videos / "toy-2"                  # two runs, two folders: nothing overwritten
    assert json.loads(Path(f"{first}.argv.json").read_text()) == [
        "generate", str(passes), "--method", "toy", "--prompt", "a dancer", "--steps", "7", "--scheduler", "euler",
        "--scales", "1", "0.5", "--window", "0", "--width", "64", "--no-side-by-side", "-o", str(first)]
    assert "--steps" not in json.loads(Path(f"{second}.argv.json").read_text())   # back at its default: not passed
    assert result["first"]["strips"] == [["MOVIE", 5.0, 4, str(first / "video.mp4")]]
    plane = result["first"]["plane"]
    assert (plane["image"], plane["source"], plane["frames"]) == (str(first / "video.mp4"), "MOVIE", 4)
    assert plane["dimensions"][0] == pytest.approx(3.0) and plane["dimensions"][2] == pytest.approx(2.0)   # 48 x 32
    assert result["second"] == {"strips": 2, "background": str(second / "video.mp4"), "shown": True, "start": 5}
    assert result["after_restart"]


@pytest.mark.blender
def test_panels_draw_every_state(extension, tmp_path, tube):
    methods = tmp_path / "methods.json"
    methods.write_text(json.dumps(FAKE_METHODS))
    fake = _wrapper(tmp_path / "fake_python", sys.executable, str(HERE / "_fake_backend.py"))
    result = scenario(extension, tmp_path, "panel_draw", env={"FAKE_METHODS": str(methods)}, backend=fake,
                      avatar=tube["avatar"])
    assert ["label", "Select an avatar"] in result["empty"]
    drawn = [set(map(tuple, log)) for log in result["states"]]
    assert ("prop", "anny_height") in drawn[0] and ("prop", "betas") in drawn[6]
    assert ("prop", "orbit_degrees") in drawn[0] and ("prop", "zoom_end_mm") in drawn[2]
    assert ("prop_search", "follow_target") in drawn[3] and ("prop", "handheld_hz") in drawn[4]
    assert {("prop", name) for name in ("prompt", "scales", "given__window", "window", "dtype")} <= drawn[0]
    assert ("operator", "avatarcine.render_passes") in drawn[0]
    running = set(map(tuple, result["running"]))
    assert {("progress", f"{kind}…") for kind in ("bake", "motion", "render", "methods", "generate")} <= running
    assert ("operator", "avatarcine.render_passes") not in running and ("operator", "avatarcine.cancel_job") in running


@pytest.mark.blender
def test_generate_with_the_real_backend_and_the_tiny_model(extension, tmp_path, backend, tube):
    result = scenario(extension, tmp_path, "generate_real", backend=backend, resolution=[32, 32], passes=["skeleton"],
                      passes_dir=str(tmp_path / "passes"), **tube)
    assert result["passes"] == str(tmp_path / "passes")
    kind, start, duration, video = result["strip"]
    assert (kind, start, duration) == ("MOVIE", 0.0, result["frames"]) and result["frames"] == 3
    run = json.loads((Path(video).parent / "run.json").read_text())
    assert run["method"] == "controlnet" and run["settings"]["steps"] == 2 and run["settings"]["model"] == "tiny"


# --- jobs: the processes behind the long operators (no bpy) ---------------------------------------------

def _python(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def test_job_reads_progress_and_the_error_line_and_stops_the_chain(tmp_path):
    from blender_addon.jobs import Job

    counted = ("import time\nfrom motion.progress import progress\n"
               "for _ in progress(range(5), desc='count'): time.sleep(0.01)\nprint('done')")
    job = Job([_python(counted), _python(counted)], "two counts").start().wait()
    assert (job.returncode, job.progress, job.fraction, job.stdout.strip()) == (0, ("count", 5, 5), 1.0, "done")
    marker = tmp_path / "ran"
    failing = "import sys\nprint('noise', file=sys.stderr)\nprint('avatarcine: error: x.npz: no such file', file=sys.stderr)\nsys.exit(2)"
    job = Job([_python(failing), _python(f"open({str(marker)!r}, 'w')")], "failing").start().wait()
    assert (job.returncode, job.error, job.cancelled) == (2, "x.npz: no such file", False)
    assert not marker.exists()                                       # a failing step stops the chain
    job = Job([["/nonexistent/python"]], "missing").start().wait()
    assert job.returncode == 127 and job.error.startswith("/nonexistent/python: cannot run")


def test_cancelled_job_terminates_its_process_and_stops_the_chain(tmp_path):
    from blender_addon.jobs import Job

    slow = "import time\nfrom motion.progress import progress\nfor _ in progress(range(1000), desc='slow'): time.sleep(0.05)"
    job = Job([_python(slow), _python(f"open({str(tmp_path / 'next')!r}, 'w')")], "slow").start()
    while job.progress is None or job.progress[1] < 2:
        job.wait(0.02)
    job.cancel()
    job.wait(30)                                                    # the loop alone would take 50 s
    assert not job.running and job.cancelled and job.returncode
    assert 2 <= job.progress[1] < 1000 and not (tmp_path / "next").exists()     # stopped; the chain too
