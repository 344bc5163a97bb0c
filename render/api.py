"""``render_scene``: a scene file -> a passes folder (``render.meta``), resumable frame by frame.

Per frame: one flat Cycles render (all data passes, ``render.engines``), optional ``rgb``, ``plate`` and
``avatar`` renders, the skeleton drawn from keypoints projected with the frame's camera, and a per-frame record
``OUT/.frames/<frame>.json`` written last. A frame counts as done when its record exists (every
file is written to a temporary name and renamed, so an interrupted run leaves no half file and
loses no finished frame). ``meta.json`` is assembled from the records after every run. What Blender
itself prints goes to ``OUT/logs/blender.log`` (``render.blender_log``) unless ``verbose``.

Before anything is written the scene is checked (``render.preflight``): frames outside the motions,
a camera inside an actor or seeing none, buffers too large are refused; frames with no actor in view
and actors holding their last pose are warnings (one line each, and ``warnings`` in meta.json).
The output folder is locked for the run (``motion.fileio.output_lock``); temporaries a killed run
left in it, and its temp folder (with Blender's), are swept; previews are rebuilt when missing.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
import warnings
from pathlib import Path

import numpy as np

from motion.errors import UserError
from motion.fileio import check_writable, output_lock, save_json, save_npz, sweep_stale_temps, temp_folder
from motion.keypoints import is_face_point
from motion.ops import heading_of, resample
from motion.progress import progress
from render import meta as meta_mod
from render import pass_table
from render.meta import actor_frame, build_meta, frame_entry, write_meta
from render.cameras import CameraPath, camera_path
from render.blender_log import LOG, blender_output_to
from render.cast import load_actors
from render.depthmap import encode_depth
from render.flowviz import flow_to_colour
from render.passes import (SURFACE_ID_STRIDE, camera_normals, depth_metres, encode_normal, encodings, forward_flow,
                           instance_ids, rgb_image, semantic_colours, shade_mesh, surface_ids)
from render.preflight import camera_inside, check_buffers, frames_without_actors
from render.projection import own_parts, project, surface_visibility, visibility
from render.previews import previews_current
from render.scene_config import load_scene_file, validate_scene

FRAMES_DIR = ".frames"
STATE = ".frames/scene.json"
MESHES_DIR = "meshes"
_PREFIXES = {"hand_left21": "left_hand_", "hand_right21": "right_hand_", "face68": "face_"}


def keypoint_groups(names: list[str]) -> dict[str, list[int]]:
    """Keypoint indices per meta group: openpose18 first, then hands and face by name prefix
    (``motion.keypoints``: ``left_hand_*``, ``right_hand_*``, ``face_*``)."""
    groups = {"openpose18": list(range(min(18, len(names))))}
    for group, prefix in _PREFIXES.items():
        idx = [i for i, n in enumerate(names) if n.startswith(prefix)]
        if idx:
            groups[group] = idx
    return groups


class _Clip:
    """Everything numpy knows about the clip before Blender: sampled motions, posed meshes, camera,
    and the warnings about it (one line each)."""

    def __init__(self, scene: dict, base_dir: Path):
        self.scene = scene
        self.fps = scene["fps"]
        self.width, self.height = scene["resolution"]
        self.actors = []
        self.warnings: list[str] = []
        motions = []
        for name, asset, motion in load_actors(scene, base_dir):
            motions.append((name, asset, resample(motion, self.fps) if abs(motion.fps - self.fps) > 1e-9 else motion))
        self.frames = _frame_range(scene["frames"], max(m.n_frames for _, _, m in motions), self.fps)
        self.posed, self.joints = {}, {}
        for name, asset, motion in motions:
            if motion.n_frames - 1 < self.frames[-1]:
                self.warnings.append(f"actor {name!r}: motion ends at frame {motion.n_frames - 1}; it holds its "
                                     f"last pose for frames {motion.n_frames}..{self.frames[-1]}")
            idx = np.minimum(self.frames, motion.n_frames - 1)   # hold the last pose past the end
            clip = motion.replace(rotations=motion.rotations[idx], root_translation=motion.root_translation[idx])
            self.actors.append((name, asset, clip))
            self.posed[name] = asset.skin(clip)
            self.joints[name] = clip.joint_positions(asset.rest_offsets)
        sample = np.concatenate([v[:, :: max(1, v.shape[1] // 400)] for v in self.posed.values()], 1)
        roots = {name: self.joints[name][:, 0] for name in self.joints}
        headings = {name: heading_of(motion) for name, _, motion in self.actors}
        self.camera: CameraPath = camera_path(scene["camera"], sample, roots, self.fps, self.width, self.height,
                                              base_dir, headings)
        self.K = self.camera.intrinsics(self.width, self.height)
        self.E = self.camera.world_to_camera_cv()
        camera_inside(self.camera.camera_to_world[:, :3, 3], self.posed,
                      {name: asset.faces for name, asset, _ in self.actors}, self.frames)
        self.warnings += frames_without_actors(list(self.posed.values()), self.K, self.E, self.width, self.height,
                                               self.frames)
        z = np.concatenate([np.einsum("tvd,td->tv", v, self.E[:, 2, :3]) + self.E[:, 2, 3:]
                            for v in self.posed.values()], 1)
        z = z[z > 0]
        self.depth_range = (float(z.min()), float(z.max())) if z.size else (0.1, 100.0)
        self.floor = min(float(v[..., 2].min()) for v in self.posed.values())
        self.own = {name: own_parts(asset.keypoint_vertex_ids, asset.keypoint_vertex_weights, asset.vertex_parts)
                    for name, asset, _ in self.actors}
        self.face = {name: [k for k, n in enumerate(asset.keypoint_names) if is_face_point(n)]
                     for name, asset, _ in self.actors}


def _frame_range(spec: dict, longest: int, fps: float) -> np.ndarray:
    """The scene's frame numbers; refuses frames past the end of the longest motion."""
    last = longest - 1
    if "seconds" in spec:
        start, end = 0, max(int(round(spec["seconds"] * fps)) - 1, 0)
        if end > last:
            raise UserError("frames.seconds", f"{spec['seconds']:g} s is {end + 1} frames at {fps:g} fps; the longest "
                                              f"motion has {longest} ({longest / fps:.2f} s)")
    else:                    # motions are indexed by absolute frame: the default end is their last one
        start, end = spec.get("start", 0), spec.get("end", last)
        if start > end:
            raise UserError("frames.start", f"{start} is past the end of the longest motion (frame {end})")
        if end > last:
            raise UserError("frames.end", f"{end} is past the last frame of the longest motion ({last}, "
                                          f"{longest / fps:.2f} s at {fps:g} fps)")
    return np.arange(start, end + 1)


def scene_camera(scene: dict, base_dir: str | os.PathLike = ".") -> tuple[np.ndarray, CameraPath]:
    """The frame numbers of ``scene`` (a mapping of baked actors) and the camera ``render_scene``
    films them with."""
    clip = _Clip(validate_scene(scene), Path(base_dir))
    return clip.frames, clip.camera


def _state(scene: dict, clip: _Clip) -> dict:
    return {"scene": scene, "frames_range": [int(clip.frames[0]), int(clip.frames[-1])]}


def _check_out(out: Path, state: dict, force: bool) -> None:
    """Refuse a folder holding another render unless ``force``; with ``force``, clear what that
    render left (frame records, pass and mesh folders, previews) so none of it leaks into this one."""
    path = out / STATE
    if path.is_file():
        try:
            other = json.loads(path.read_text()) != json.loads(json.dumps(state))
        except ValueError:                           # damaged state file: treat as another render
            other = True
        if other and not force:
            raise UserError(out, "holds a render of a different scene or frame range; pass --force to replace it")
    else:
        other = (out / meta_mod.META).exists()
        if other and not force:
            raise UserError(out, "already holds a passes folder; pass --force to overwrite")
    if other:
        _clear_render(out)


def _clear_render(out: Path) -> None:
    """Remove the folders this renderer writes into ``out`` (every pass it can write, ``.frames``,
    ``meshes``, ``previews``); anything else in ``out`` is left alone."""
    from render.previews import PREVIEWS
    owned = encodings(list(pass_table.names()), {}, {}, (0.1, 1.0))
    for name in [info["dir"] for info in owned.values()] + [FRAMES_DIR, MESHES_DIR, PREVIEWS, LOG.parts[0]]:
        if (out / name).is_dir():
            shutil.rmtree(out / name)


def _frame_done(out: Path, enc: dict, index: int, export_meshes: bool) -> bool:
    """A frame is complete when its record, every pass file and (if exported) its meshes exist."""
    files = [out / FRAMES_DIR / f"{index:06d}.json"] + [out / info["dir"] / f"{index:06d}.{info['ext']}"
                                                         for info in enc.values()]
    if export_meshes:
        files.append(out / MESHES_DIR / f"{index:06d}.npz")
    return all(p.is_file() for p in files)


def _render_flat(scene, path: Path) -> dict:
    import bpy

    from render.exr import read_exr
    scene.render.filepath = str(path)
    bpy.ops.render.render(write_still=True)
    return read_exr(path)


def _frame_record(clip: _Clip, t: int, depth: np.ndarray, surfaces: np.ndarray, groups: dict) -> dict:
    actors = {}
    for i, (name, asset, _) in enumerate(clip.actors):
        posed = clip.posed[name][t]
        kp3d = asset.keypoints(posed[None])[0]
        uv, z = project(clip.K[t], clip.E[t], kp3d)
        own = [{(i + 1) * SURFACE_ID_STRIDE + p for p in parts} for parts in clip.own[name]]
        visible = visibility(uv, z, depth, surface_ids=surfaces, own_ids=own)
        face = clip.face[name]
        if face:
            ids = asset.keypoint_vertex_ids[face]
            vuv, vz = project(clip.K[t], clip.E[t], posed[ids])
            visible[face] &= surface_visibility(vuv, vz, asset.keypoint_vertex_weights[face], depth, clip.K[t][0, 0])
        rows = np.concatenate([uv, visible[:, None]], 1)
        actors[name] = actor_frame(clip.joints[name][t], {g: rows[idx] for g, idx in groups[name].items()})
    frame = int(clip.frames[t])
    return frame_entry(frame, frame / clip.fps, clip.K[t], clip.E[t], clip.camera.camera_to_world[t],
                       int(clip.camera.shot[t]), actors)


def _skeleton(record: dict, width: int, height: int) -> np.ndarray:
    from render.openpose import draw_pose, people_from_frame
    # numpy backend: the same pixels as cv2, and the only one a stock Blender has, so both entry
    # points write byte-identical files.
    return draw_pose(height, width, people_from_frame(record), backend="numpy")


def _write_frame(out: Path, clip: _Clip, t: int, stage, passes: list[str], rgb_engine: str, groups: dict,
                 tmp_exr: Path, export_meshes: bool) -> dict:
    from render.exr import write_exr
    from render.png import write_png
    from render.stage import show_actors, show_ground, show_rgb_only
    from render.engines import configure_flat, configure_rgb

    scene = stage.scene
    index = int(clip.frames[t])
    scene.frame_set(index)
    ch = _render_flat(scene, tmp_exr)
    ids = instance_ids(ch)
    palettes = {i + 1: asset.part_palette for i, (_, asset, _) in enumerate(clip.actors)}
    fg = ids > 0
    depth = depth_metres(ch)
    n_cam = camera_normals(ch, clip.camera.camera_to_world[t])
    name = f"{index:06d}"
    if "mesh" in passes:
        write_png(out / "mesh" / f"{name}.png", shade_mesh(n_cam, fg))
    if "normal" in passes:
        write_png(out / "normal" / f"{name}.png", encode_normal(n_cam, fg))
    if "depth" in passes:
        write_exr(out / "depth" / f"{name}.exr", {"Y": depth})
        write_png(out / "depth_png" / f"{name}.png", encode_depth(depth, *clip.depth_range))
    if "semantic" in passes:
        write_png(out / "semantic" / f"{name}.png", semantic_colours(ch))
    if "mask" in passes:
        write_png(out / "mask" / f"{name}.png", (fg * 255).astype(np.uint8))
        write_png(out / "instance" / f"{name}.png", ids)
    if "flow" in passes:
        flow = forward_flow(ch)
        write_exr(out / "flow" / f"{name}.exr", {"R": flow[..., 0], "G": flow[..., 1]})
        write_png(out / "flow_vis" / f"{name}.png", flow_to_colour(flow))
    record = _frame_record(clip, t, depth, surface_ids(ch, palettes), groups)
    if "skeleton" in passes:
        write_png(out / "skeleton" / f"{name}.png", _skeleton(record, clip.width, clip.height))
    if pass_table.beauty(passes):
        show_rgb_only(stage, True)
        configure_rgb(scene, rgb_engine, clip.scene["engine"]["rgb_samples"])
        if "rgb" in passes:
            write_png(out / "rgb" / f"{name}.png", rgb_image(_render_flat(scene, tmp_exr)))
        if "plate" in passes:    # same light and shadows, the avatars out of the camera's view
            show_actors(stage, False)
            write_png(out / "plate" / f"{name}.png", rgb_image(_render_flat(scene, tmp_exr)))
            show_actors(stage, True)
        if "avatar" in passes:   # same light, no ground or sky in view: premultiplied colour = on black
            show_ground(stage, False)
            scene.render.film_transparent = True
            write_png(out / "avatar" / f"{name}.png", rgb_image(_render_flat(scene, tmp_exr)))
            show_ground(stage, True)
        show_rgb_only(stage, False)
        configure_flat(scene, stage.motion_vectors)
    if export_meshes:
        from render.avatar import evaluated_vertices
        arrays = {}
        for actor in stage.actors:
            arrays[f"{actor.name}.vertices"] = evaluated_vertices(actor.mesh).astype(np.float32)
            arrays[f"{actor.name}.faces"] = next(a for n, a, _ in clip.actors if n == actor.name).faces.astype(np.int32)
        save_npz(out / MESHES_DIR / f"{name}.npz", arrays, force=True)
    save_json(out / FRAMES_DIR / f"{name}.json", record)
    return record


def _assemble_meta(out: Path, clip: _Clip, enc: dict, groups: dict) -> Path:
    """meta.json from the frame records; left untouched when that is what it already holds (so
    previews newer than it are current)."""
    records = [json.loads(p.read_text()) for p in (out / FRAMES_DIR / f"{int(f):06d}.json" for f in clip.frames)
               if p.is_file()]
    names: dict[str, list[str]] = {}
    for name, asset, _ in clip.actors:
        for group, idx in groups[name].items():
            names.setdefault(group, [asset.keypoint_names[i] for i in idx])
    meta = build_meta(fps=clip.fps, resolution=(clip.width, clip.height), passes=enc, frames=records,
                      joint_names={asset.skeleton: list(asset.joint_names) for _, asset, _ in clip.actors},
                      actors=[{"name": n, "body": a.body, "skeleton": a.skeleton, "instance_id": i + 1}
                              for i, (n, a, _) in enumerate(clip.actors)],
                      keypoint_names=names, warnings=clip.warnings, caption=clip.scene.get("caption"))
    path = out / meta_mod.META
    with contextlib.suppress(OSError, ValueError):
        if json.loads(path.read_text()) == json.loads(json.dumps(meta_mod.jsonable(meta))):
            return path
    return write_meta(out, meta)


@contextlib.contextmanager
def _blender_temp(folder: Path):
    """Blender's session temp folder inside ``folder`` for the block: Blender reads TMPDIR when bpy
    is imported and when a scene is reset, and moves an existing session folder when its temp
    preference changes. So the sweep of a killed run's temp folder takes Blender's with it."""
    keys = ("TMPDIR", "TEMP", "TMP")
    saved = {k: os.environ.get(k) for k in keys}
    os.environ.update({k: str(folder) for k in keys})
    bpy = sys.modules.get("bpy")                 # already imported (a Blender, or the add-on's import)
    paths = bpy.context.preferences.filepaths if bpy is not None else None
    preference = paths.temporary_directory if paths is not None else None
    if paths is not None:
        paths.temporary_directory = str(folder)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        bpy = sys.modules.get("bpy")
        if bpy is not None:
            bpy.context.preferences.filepaths.temporary_directory = preference or ""


def render_scene(scene: dict | str | os.PathLike, out_dir: str | os.PathLike, frames: tuple[int, int] | None = None,
                 force: bool = False, resume: bool = True, base_dir: str | os.PathLike | None = None,
                 save_blend: str | os.PathLike | None = None, export_meshes: bool = False,
                 previews: bool = True, verbose: bool = False) -> Path:
    """Render ``scene`` (a mapping or a YAML/JSON file) into the passes folder ``out_dir``.

    ``frames`` (A, B) inclusive limits the run to part of the clip; frames already complete are
    skipped when ``resume`` (default), re-rendered when ``force`` (or ``resume=False``). Bad input
    is refused (UserError) before anything is written; another process rendering into ``out_dir``
    is refused too. Blender's own output goes to ``out_dir/logs/blender.log``, or to the terminal
    when ``verbose``.
    """
    if isinstance(scene, (str, os.PathLike)):
        base = Path(base_dir) if base_dir is not None else Path(scene).resolve().parent
        raw = load_scene_file(scene)
        where = str(scene)
    else:
        base, raw, where = Path(base_dir or "."), scene, "scene"
    config = validate_scene(raw, where)
    out = check_writable(out_dir, force=True, folder=True)
    if save_blend:
        check_writable(save_blend, force, suffixes=(".blend",))
    passes = config["passes"]
    with temp_folder("render") as tmp, _blender_temp(tmp):
        check_buffers(*config["resolution"], passes, out, tmp)
        clip = _Clip(config, base)
        lo, hi = (int(clip.frames[0]), int(clip.frames[-1])) if frames is None else frames
        todo = [t for t, f in enumerate(clip.frames) if lo <= f <= hi]
        if frames is not None and not todo:
            raise UserError("--frames", f"{lo}:{hi} is outside the clip's frames {clip.frames[0]}:{clip.frames[-1]}")
        for line in clip.warnings:
            warnings.warn(line, SceneWarning, stacklevel=2)
        with output_lock(out):
            sweep_stale_temps(out, recursive=True)
            state = _state(config, clip)
            _check_out(out, state, force)
            out.mkdir(parents=True, exist_ok=True)
            save_json(out / STATE, json.loads(json.dumps(state)))
            groups = {name: keypoint_groups(asset.keypoint_names) for name, asset, _ in clip.actors}
            palette = {n: c.tolist() for n, c in zip(clip.actors[0][1].part_names, clip.actors[0][1].part_palette)}
            enc = encodings(passes, palette, {n: i + 1 for i, (n, _, _) in enumerate(clip.actors)},
                            clip.depth_range)
            redo = force or not resume
            todo = [t for t in todo if redo or not _frame_done(out, enc, int(clip.frames[t]), export_meshes)]
            if todo or save_blend:
                with blender_output_to(None if verbose else out / LOG):
                    _render_frames(out, clip, todo, enc, groups, tmp, save_blend, force, export_meshes)
            else:
                _assemble_meta(out, clip, enc, groups)
            if previews and (todo or not previews_current(out)):
                _previews(out)
    return out


class SceneWarning(UserWarning):
    """A scene that renders but may not give what was asked (also recorded in meta.json)."""


def _render_frames(out: Path, clip: _Clip, todo: list[int], enc: dict, groups: dict, tmp: Path, save_blend,
                   force: bool, export_meshes: bool) -> None:
    """Build the Blender stage and write the frames ``todo`` (positions in the clip); meta.json is
    assembled afterwards, interrupted or not, so it lists every finished frame."""
    from render.engines import resolve_rgb_engine
    from render.stage import build_stage, show_rgb_only

    passes = clip.scene["passes"]
    rgb_engine = resolve_rgb_engine(clip.scene["engine"]["rgb"]) if pass_table.beauty(passes) else "cycles"
    stage = build_stage(clip.actors, clip.camera, clip.frames, clip.fps, clip.width, clip.height, clip.floor,
                        motion_vectors="flow" in passes)
    show_rgb_only(stage, False)
    if save_blend:
        _save_blend(stage, Path(save_blend), force)
    try:
        for t in progress(todo, desc="render", total=len(todo)):
            _write_frame(out, clip, t, stage, passes, rgb_engine, groups, tmp / "flat.exr", export_meshes)
    finally:
        if any((out / FRAMES_DIR).glob("0*.json")):
            _assemble_meta(out, clip, enc, groups)


def _save_blend(stage, path: Path, force: bool) -> None:
    import bpy

    from motion.fileio import atomic_path
    with atomic_path(path, force) as tmp:
        bpy.ops.wm.save_as_mainfile(filepath=str(tmp), copy=True, check_existing=False)


def _previews(out: Path) -> None:
    """Preview mp4 per pass and the contact sheet (``render.previews``; needs imageio, absent in a
    stock Blender, where they are skipped). Previews always reflect the latest frames."""
    from render.previews import write_previews

    write_previews(out, force=True)
