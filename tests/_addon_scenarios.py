"""Scenarios run inside the isolated interpreter of tests/_addon_isolated.py (bpy + numpy + the
installed extension only). Each takes (bpy, the extension's package name, args) on a fresh empty
scene, drives the add-on through its operators as a script would, and returns plain facts for
tests/test_addon.py to check. The extension's own modules (``motion``, ``render``) are importable
here because enabling the extension put its folder on the path."""

import json
import sys
from pathlib import Path

import numpy as np


def _fresh(bpy, package, args):
    bpy.ops.wm.read_homefile(use_empty=True)
    bpy.context.scene.render.fps, bpy.context.scene.render.fps_base = 30, 1.0
    prefs = bpy.context.preferences.addons[package].preferences
    prefs.backend_python = args.get("backend", "")
    prefs.output_dir = args["work"]
    prefs.smpl_dir = args.get("smpl_dir", "")
    return bpy.context.scene


def _snapshot(bpy) -> dict:
    """Every datablock by kind, and the scene's frame range and camera: what an operator could change."""
    scene = bpy.context.scene
    kinds = ("objects", "meshes", "armatures", "actions", "cameras", "materials", "images")
    return {**{k: sorted(d.name for d in getattr(bpy.data, k)) for k in kinds},
            "frames": [scene.frame_start, scene.frame_end], "camera": scene.camera.name if scene.camera else None,
            "strips": len(scene.sequence_editor.strips) if scene.sequence_editor else 0}


def _error(call) -> str:
    """The error an operator reported (bpy.ops raises it as RuntimeError 'Error: ...'), or ''."""
    try:
        call()
    except RuntimeError as exc:
        return str(exc)
    return ""


def register_twice(bpy, package, args):
    import addon_utils

    seen = []
    for _ in range(2):
        addon_utils.disable(package)
        seen.append(["off", hasattr(bpy.types, "AVATARCINE_PT_main"), hasattr(bpy.types.Scene, "avatarcine")])
        addon_utils.enable(package)
        seen.append(["on", hasattr(bpy.types, "AVATARCINE_PT_main"), hasattr(bpy.types.Scene, "avatarcine")])
    panels = [c.bl_label for c in bpy.types.Panel.__subclasses__() if c.__name__.startswith("AVATARCINE_PT_")]
    return {"seen": seen, "panels": panels}


def avatars(bpy, package, args):
    scene = _fresh(bpy, package, args)
    bpy.ops.avatarcine.avatar_add(filepath=args["avatar"])
    first = bpy.context.active_object
    scene.cursor.location = (1.5, 0.0, 0.0)
    s = scene.avatarcine
    s.body, s.anny_height, s.anny_age = "anny", 0.9, 0.3
    bpy.ops.avatarcine.avatar_bake()
    baked = bpy.context.active_object
    baked.rotation_euler[2] = 0.5                  # placement with Blender's own transform
    from motion.asset import AvatarAsset
    asset = AvatarAsset.load(baked["avatarcine_avatar"])
    return {"first": {"name": first.name, "type": first.type, "avatar": first["avatarcine_avatar"],
                      "children": [(c.name, c.type, len(c.vertex_groups), len(c.data.vertices)) for c in first.children]},
            "baked": {"name": baked.name, "location": list(baked.location), "avatar": baked["avatarcine_avatar"],
                      "bones": len(baked.data.bones), "shape": {k: float(v) for k, v in asset.shape.items()
                                                                if np.ndim(v) == 0 and not isinstance(v, str)}},
            "objects": sorted(o.name for o in bpy.data.objects)}


def bad_inputs(bpy, package, args):
    """Each bad input: the operator's one report line, and the scene before and after."""
    scene = _fresh(bpy, package, args)
    out = {"empty": _snapshot(bpy)}
    out["missing_avatar"] = _error(lambda: bpy.ops.avatarcine.avatar_add(filepath=args["missing"]))
    out["after_missing_avatar"] = _snapshot(bpy)
    bpy.ops.avatarcine.avatar_add(filepath=args["avatar"])
    out["with_avatar"] = _snapshot(bpy)
    out["missing_motion"] = _error(lambda: bpy.ops.avatarcine.motion_import(filepath=args["missing"]))
    out["after_missing_motion"] = _snapshot(bpy)
    scene.avatarcine.body = "smplx"
    out["wrong_body_folder"] = _error(lambda: bpy.ops.avatarcine.avatar_bake())
    out["after_wrong_body_folder"] = _snapshot(bpy)
    out["no_camera"] = _error(lambda: bpy.ops.avatarcine.render_passes())
    out["after_no_camera"] = _snapshot(bpy)
    return out


def _tube_scene(bpy, package, args):
    """A fresh scene with the tube avatar, its motion imported by the backend, tiny render settings."""
    scene = _fresh(bpy, package, args)
    bpy.ops.avatarcine.avatar_add(filepath=args["avatar"])
    bpy.ops.avatarcine.motion_import(filepath=args["motion"])
    scene.render.resolution_x, scene.render.resolution_y = args["resolution"]
    s = scene.avatarcine
    for name in s.bl_rna.properties.keys():
        if name.startswith("pass_"):
            setattr(s, name, name[5:] in args["passes"])
    return scene


def _camera_samples(bpy, camera, frames):
    """Blender's evaluated camera-to-world and lens per frame (independent of the add-on's code)."""
    scene, out = bpy.context.scene, []
    for frame in frames:
        scene.frame_set(frame)
        out.append({"matrix_world": [list(r) for r in camera.matrix_world], "lens": camera.data.lens})
    return out


def render_from_blender(bpy, package, args):
    """Orbit camera made by the add-on, rendered; then the camera edited by hand, rendered; then the
    avatar moved with its object transform, rendered."""
    scene = _tube_scene(bpy, package, args)
    s = scene.avatarcine
    s.camera_type, s.orbit_degrees = "orbit", 90.0
    bpy.ops.avatarcine.camera_add()
    camera = scene.camera
    frames = list(range(scene.frame_start, scene.frame_end + 1))
    s.passes_dir = args["scripted"]
    bpy.ops.avatarcine.render_passes()
    out = {"spec": json.loads(camera["avatarcine_camera"]), "frames": frames,
           "camera_keys": len(camera.animation_data.action.layers[0].strips[0].channelbags[0].fcurves[0].keyframe_points)}
    # the artist edits the camera: moves it at the first key and changes the lens at the last
    scene.frame_set(frames[0])
    camera.location.x += 0.4
    camera.keyframe_insert("location", frame=frames[0])
    scene.frame_set(frames[-1])
    camera.data.lens = 35.0
    camera.data.keyframe_insert("lens", frame=frames[-1])
    s.passes_dir = args["edited"]
    bpy.ops.avatarcine.render_passes()
    out["edited_camera"] = _camera_samples(bpy, camera, frames)
    # the artist moves the avatar
    avatar = bpy.data.objects["a"]
    avatar.location = (0.3, -0.2, 0.0)
    avatar.rotation_euler = (0.0, 0.0, 0.4)
    bpy.context.view_layer.update()
    out["avatar_matrix"] = [list(r) for r in avatar.matrix_world]
    out["refused"] = _error(lambda: bpy.ops.avatarcine.render_passes())      # into the folder of another render
    s.passes_dir = args["moved"]
    bpy.ops.avatarcine.render_passes()
    return out


def cancel_render(bpy, package, args):
    """A render job cancelled after its second frame keeps its finished frames; the Render button then
    resumes it without redoing them."""
    import time

    scene = _tube_scene(bpy, package, args)
    scene.avatarcine.camera_type = "static"
    bpy.ops.avatarcine.camera_add()
    before = _snapshot(bpy)
    ext = sys.modules[package]
    out = Path(args["out"])
    scene.avatarcine.passes_dir = str(out)
    scene_json = ext.scene_export.write_scene(ext.render_ops.passes_scene(bpy.context, out / "scene"), out / "scene")
    # what the Render button starts, with the panel's cancel button pressed once two frames are done
    job = ext.jobs.Job([ext.render_ops.render_command(scene_json, out)], "render").start()
    ext.operators.RUNNING["render"] = job
    seen = []
    while job.running:
        if job.progress and job.progress[1] >= 2:
            seen.append(job.status())
            bpy.ops.avatarcine.cancel_job(kind="render")
            break
        time.sleep(0.02)
    job.wait()
    ext.operators.RUNNING.clear()
    done = sorted(p.name for p in (out / "rgb").glob("0*.png"))
    stamps = {p.name: p.stat().st_mtime_ns for p in (out / "rgb").glob("*.png")}
    bpy.ops.avatarcine.render_passes()
    return {"status": seen, "cancelled": job.cancelled, "returncode": job.returncode, "done_at_cancel": done,
            "scene_file": str(scene_json), "unchanged_after_resume": all((out / "rgb" / n).stat().st_mtime_ns == t for n, t in stamps.items()),
            "scene_unchanged": _snapshot(bpy) == before, "frames": len(range(scene.frame_start, scene.frame_end + 1))}


def motion_ops(bpy, package, args):
    """Import an AMASS file onto the tube avatar, then retime, loop, trim; generate one from text."""
    from motion.asset import AvatarAsset
    from motion.motion import Motion
    from render.avatar import evaluated_vertices

    scene = _fresh(bpy, package, args)
    bpy.ops.avatarcine.avatar_add(filepath=args["avatar"])
    arm = bpy.context.active_object
    bpy.ops.avatarcine.motion_import(filepath=args["amass"])
    motion = Motion.load(arm["avatarcine_motion"])
    asset = AvatarAsset.load(arm["avatarcine_avatar"])
    scene.frame_set(40)
    skin_error = float(np.abs(evaluated_vertices(arm.children[0]) - asset.skin(motion)[40]).max())
    out = {"imported": {"frames": motion.n_frames, "fps": motion.fps, "skeleton": motion.skeleton,
                        "range": [scene.frame_start, scene.frame_end], "skin_error": skin_error,
                        "keys": len(arm.animation_data.action.layers[0].strips[0].channelbags[0].fcurves[0]
                                    .keyframe_points)}}
    for name, call in (("retime", lambda: bpy.ops.avatarcine.motion_retime(speed=2.0)),
                       ("loop", lambda: bpy.ops.avatarcine.motion_loop(times=2)),
                       ("trim", lambda: bpy.ops.avatarcine.motion_trim(start=0.5, end=1.5))):
        call()
        m = Motion.load(arm["avatarcine_motion"])
        out[name] = {"frames": m.n_frames, "range": [scene.frame_start, scene.frame_end],
                     "keys": len(arm.animation_data.action.layers[0].strips[0].channelbags[0].fcurves[0]
                                 .keyframe_points)}
    s = scene.avatarcine
    s.prompt, s.seconds, s.seed = "walk forward 2 steps", 2.0, 1
    bpy.ops.avatarcine.motion_generate()
    m = Motion.load(arm["avatarcine_motion"])
    out["generated"] = {"frames": m.n_frames, "skeleton": m.skeleton, "range": [scene.frame_start, scene.frame_end],
                        "travel": float(np.linalg.norm(m.root_translation[-1, :2] - m.root_translation[0, :2]))}
    return out


def _property_facts(group) -> dict:
    out = {}
    for prop in group.bl_rna.properties:
        if prop.identifier in ("rna_type", "name"):
            continue
        facts = {"type": prop.type, "description": prop.description}
        if prop.type in ("INT", "FLOAT"):
            facts.update(min=prop.hard_min, max=prop.hard_max, default=prop.default)
        elif prop.type == "ENUM":
            facts.update(items=[i.identifier for i in prop.enum_items], default=prop.default)
        elif prop.type in ("BOOLEAN", "STRING"):
            facts["default"] = prop.default
        out[prop.identifier] = facts
    return out


def generate_fake(bpy, package, args):
    """A method known only to the (fake) backend gets controls; its changed settings become flags;
    the video comes back as a strip plus a plane, then as the camera's background."""
    import addon_utils

    scene = _fresh(bpy, package, args)
    s = scene.avatarcine
    bpy.ops.avatarcine.methods_refresh()
    group = scene.avatarcine_method_toy
    out = {"method": s.method, "properties": _property_facts(group)}
    group.prompt, group.steps, group.side_by_side, group.scheduler = "a dancer", 7, False, "euler"
    group.scales, group.given__window, group.given__width, group.width = "1 0.5", False, True, 64
    s.generate_passes, s.show_video = args["passes"], "PLANE"
    bpy.ops.avatarcine.generate_video()
    strips = scene.sequence_editor.strips
    plane = next(o for o in bpy.data.objects if o.type == "MESH")
    image = plane.active_material.node_tree.nodes["Image Texture"].image
    out["first"] = {"strips": [(st.type, st.frame_start, st.frame_final_duration, st.filepath) for st in strips],
                    "plane": {"image": image.filepath, "source": image.source, "frames": image.frame_duration,
                              "dimensions": list(plane.dimensions)}}
    camera = bpy.data.objects.new("shot", bpy.data.cameras.new("shot"))
    scene.collection.objects.link(camera)
    scene.camera = camera
    s.show_video = "CAMERA"
    group.steps = 20                                   # back to the default: no flag
    bpy.ops.avatarcine.generate_video()
    background = camera.data.background_images[0]
    out["second"] = {"strips": len(strips), "background": background.image.filepath,
                     "shown": camera.data.show_background_images, "start": background.image_user.frame_start}
    addon_utils.disable(package)
    addon_utils.enable(package)                        # the controls come back from the cache, no backend run
    out["after_restart"] = hasattr(bpy.types.Scene, "avatarcine_method_toy")
    return out


def generate_real(bpy, package, args):
    """Passes rendered by the add-on, then the real backend with the tiny model, loaded back."""
    scene = _tube_scene(bpy, package, args)
    s = scene.avatarcine
    s.camera_type = "static"
    bpy.ops.avatarcine.camera_add()
    s.passes_dir = args["passes_dir"]
    bpy.ops.avatarcine.render_passes()
    bpy.ops.avatarcine.methods_refresh()
    s.method = "controlnet"
    group = scene.avatarcine_method_controlnet
    group.prompt, group.model, group.steps = "a person", "tiny", 2
    group.given__width, group.width, group.given__height, group.height = True, 32, True, 32
    s.show_video = "STRIP"
    bpy.ops.avatarcine.generate_video()
    strip = scene.sequence_editor.strips[0]
    return {"passes": s.generate_passes, "strip": [strip.type, strip.frame_start, strip.frame_final_duration,
                                                  strip.filepath], "frames": scene.frame_end - scene.frame_start + 1}


class _Layout:
    """Stands in for Blender's UILayout (a background Blender has no UI): records what a panel draws
    and checks that every property and operator it names exists, with the operator's properties."""

    def __init__(self, bpy, log):
        self.bpy, self.log, self.active, self.enabled = bpy, log, True, True

    def _sub(self, *args, **kwargs):
        return _Layout(self.bpy, self.log)

    column = row = box = grid_flow = _sub

    def label(self, text="", icon="NONE"):
        self.log.append(["label", text])

    def progress(self, factor=0.0, type="BAR", text=""):
        self.log.append(["progress", text])

    def prop(self, data, name, **kwargs):
        assert name in data.bl_rna.properties, f"{data.bl_rna.identifier} has no property {name!r}"
        self.log.append(["prop", name])

    def prop_search(self, data, name, search_data, search_name, **kwargs):
        assert name in data.bl_rna.properties and search_name in search_data.bl_rna.properties, name
        self.log.append(["prop_search", name])

    def operator(self, idname, **kwargs):
        module, name = idname.split(".")
        properties = getattr(getattr(self.bpy.ops, module), name).get_rna_type().properties
        self.log.append(["operator", idname])
        return _OperatorProperties(properties)


class _OperatorProperties:
    def __init__(self, properties):
        object.__setattr__(self, "_properties", properties)

    def __setattr__(self, name, value):
        assert name in self._properties, f"operator has no property {name!r}"


def panel_draw(bpy, package, args):
    """Every panel drawn in every state its settings select, with and without running jobs."""
    from types import MethodType, SimpleNamespace

    scene = _fresh(bpy, package, args)
    ext = sys.modules[package]
    panels = [getattr(bpy.types, name) for name in ("AVATARCINE_PT_main", "AVATARCINE_PT_avatars",
              "AVATARCINE_PT_motion", "AVATARCINE_PT_cameras", "AVATARCINE_PT_passes", "AVATARCINE_PT_generate")]

    def draw() -> list:
        log = []
        for panel in panels:
            fake = SimpleNamespace(layout=_Layout(bpy, log))
            if hasattr(panel, "section"):
                fake.section = MethodType(panel.section, fake)
            panel.draw(fake, bpy.context)
        return log

    out = {"empty": draw()}
    bpy.ops.avatarcine.avatar_add(filepath=args["avatar"])
    bpy.ops.avatarcine.methods_refresh()
    s = scene.avatarcine
    states = []
    for body in ("anny", "smplx"):
        for camera in ("orbit", "dolly", "zoom", "follow", "handheld", "static"):
            s.body, s.camera_type = body, camera
            states.append(draw())
    out["states"] = states
    for kind in ("bake", "motion", "render", "methods", "generate"):
        ext.operators.RUNNING[kind] = ext.jobs.Job([["true"]], kind)
    out["running"] = draw()
    ext.operators.RUNNING.clear()
    return out
