"""The Blender extension: a valid 4.2+ manifest, a zip that runs without torch, a panel whose
settings make a valid scene, and a background render started the way its button starts it."""

import json
import subprocess
import sys
import tomllib
import zipfile

import pytest

from blender_addon.commands import build

BLOCK = """
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in ('torch', 'pydantic', 'yaml', 'cv2', 'imageio', 'scipy', 'trimesh'):
            raise ImportError('blocked in stock Blender: ' + name)
sys.meta_path.insert(0, Block())
sys.path.insert(0, sys.argv[1])
import render.api, render.stage, render.cast, render.blender_entry, render.openpose, render.projection
print('ok')
"""


def test_build_zip_manifest_and_torch_free_imports(tmp_path):
    zip_path = build(tmp_path / "ext.zip")
    with zipfile.ZipFile(zip_path) as zf:
        names = set(zf.namelist())
        manifest = tomllib.loads(zf.read("blender_manifest.toml").decode())
        zf.extractall(tmp_path / "ext")
    assert {"__init__.py", "render/api.py", "render/blender_entry.py", "motion/asset.py"} <= names
    assert manifest["type"] == "add-on" and manifest["id"] == "avatarcine"
    assert tuple(int(v) for v in manifest["blender_version_min"].split(".")) >= (4, 2, 0)
    run = subprocess.run([sys.executable, "-c", BLOCK, str(tmp_path / "ext")], capture_output=True, text=True,
                         cwd=tmp_path)
    assert run.returncode == 0 and "ok" in run.stdout, run.stderr[-1500:]
    with pytest.raises(Exception, match="already exists"):
        build(tmp_path / "ext.zip")


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
