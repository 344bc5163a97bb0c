"""The Blender extension: a zip Blender's own validator accepts, bundled from the real import graph,
that registers and renders in an interpreter with bpy and numpy but nothing else of the venv (no
editable install, no torch); a panel whose settings make a valid scene, and a background render
started the way its button starts it."""

import importlib.util
import json
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from blender_addon.bundle import Bundle
from blender_addon.commands import PACKAGES_ROOT, build

# Runs as `python -I -S`: no user site, no PYTHONPATH, no .pth files (so no editable finder). Puts the
# venv's site-packages on the path with every distribution but bpy and numpy blocked (a stock
# Blender has those only), imports the extension from its extracted folder, registers it twice,
# renders a scene through the zip's render/blender_entry.py, and prints where our modules came from.
ISOLATED = """
import json, runpy, sys
from importlib import metadata
site, ext_parent, scene, out = sys.argv[1:]
sys.path.append(site)
allowed = {"bpy", "numpy", "avatarcine"}
blocked = {top for top, dists in metadata.packages_distributions().items()
           if not {d.lower() for d in dists} <= allowed}
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in blocked:
            raise ImportError("not in a stock Blender: " + name)
sys.meta_path.insert(0, Block())
sys.path.insert(0, ext_parent)
import bpy
import avatarcine
for _ in range(2):
    avatarcine.register()
    assert hasattr(bpy.types, "AVATARCINE_PT_panel")
    avatarcine.unregister()
    assert not hasattr(bpy.types, "AVATARCINE_PT_panel")
sys.argv = ["blender_entry.py", "--", scene, "-o", out, "--no-previews"]
runpy.run_path(str(avatarcine.ROOT / "render" / "blender_entry.py"), run_name="__main__")
ours = ("motion", "render", "diffusion", "blender_addon", "avatarcine")
print(json.dumps({name: getattr(module, "__file__", None) for name, module in sys.modules.items()
                  if name.split(".")[0] in ours}))
print("blocked tried:", sorted({n for n in blocked if n in sys.modules}))
"""


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
    assert {"motion.keypoints", "motion.actors", "render.meta", "render.api", "blender_addon.panel"} <= set(modules)
    assert not [m for m in modules if m.startswith("diffusion")]
    assert "blender_addon.commands" not in modules and "blender_addon.bundle" not in modules


@pytest.mark.blender
def test_zip_registers_and_renders_without_the_venv(tmp_path):
    pytest.importorskip("bpy")
    from _render_util import tube_avatar, wave_motion, write_actor

    zip_path = build(tmp_path / "ext.zip")
    ext = tmp_path / "ext_parent" / "avatarcine"
    with zipfile.ZipFile(zip_path) as zf:
        zf.extractall(ext)
    actor = write_actor(tmp_path, "a", tube_avatar(), wave_motion(tube_avatar(), 2))
    scene = tmp_path / "scene.json"
    scene.write_text(json.dumps({"fps": 30, "resolution": [24, 24], "actors": [actor],
                                 "camera": {"type": "static"}, "passes": ["mask", "skeleton"]}))
    run = subprocess.run([sys.executable, "-I", "-S", "-c", ISOLATED, sysconfig.get_paths()["purelib"],
                          str(ext.parent), str(scene), str(tmp_path / "out")],
                         cwd=tmp_path, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-3000:]
    origins = json.loads(run.stdout.splitlines()[-2])
    assert run.stdout.splitlines()[-1] == "blocked tried: []"
    assert {"motion.keypoints", "render.meta", "render.api", "render.stage", "avatarcine.panel"} <= set(origins)
    outside = {name: path for name, path in origins.items() if not str(path).startswith(str(ext))}
    assert outside == {}, outside
    assert not [name for name in origins if name.split(".")[0] in ("diffusion", "blender_addon")]
    assert len(json.loads((tmp_path / "out" / "meta.json").read_text())["frames"]) == 2


@pytest.mark.blender
def test_panel_settings_render_in_background(tmp_path):
    bpy = pytest.importorskip("bpy")
    from _render_util import tube_avatar, wave_motion, write_actor
    import blender_addon
    from blender_addon import panel

    bpy.ops.wm.read_factory_settings(use_empty=True)
    blender_addon.register()
    try:
        assert hasattr(bpy.types, "AVATARCINE_PT_panel") and hasattr(bpy.ops.avatarcine, "render")
        actor = write_actor(tmp_path, "a", tube_avatar(), wave_motion(tube_avatar(), 2))
        s = bpy.context.scene.avatarcine
        s.avatar, s.motion = str(tmp_path / actor["avatar"]), str(tmp_path / actor["motion"])
        s.width, s.height, s.camera = 32, 32, "static"
        s.pass_skeleton = False
        scene = panel.scene_from_settings(s)
        assert scene["passes"] == ["mesh", "normal", "depth", "semantic", "mask"]
        (tmp_path / "scene.json").write_text(json.dumps(scene))
        cmd = panel.render_command(tmp_path / "scene.json", tmp_path / "out", tmp_path / "out" / "s.blend")
        run = subprocess.run(cmd + ["--no-previews"], capture_output=True, text=True)
        assert run.returncode == 0, run.stderr[-1500:]
        meta = json.loads((tmp_path / "out" / "meta.json").read_text())
        assert len(meta["frames"]) == 2 and (tmp_path / "out" / "s.blend").is_file()
        # the saved scene is editable Blender data: armature with keyed bones, skinned mesh, camera
        bpy.ops.wm.open_mainfile(filepath=str(tmp_path / "out" / "s.blend"))
        arm = bpy.data.objects["actor"]
        assert arm.type == "ARMATURE" and arm.animation_data.action is not None
        body = bpy.data.objects["actor_body"]
        assert body.modifiers["Armature"].object == arm and len(body.vertex_groups) == 24
        assert bpy.context.scene.camera is not None
    finally:
        blender_addon.unregister()
