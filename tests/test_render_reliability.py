"""Renders under kill -9 and concurrency, previews that come back, scene warnings, and keypoint
visibility checked against trimesh ray casting on the posed meshes Blender evaluated."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("bpy")

from _render_util import tube_avatar, wave_motion, write_actor  # noqa: E402
from motion.cli import main  # noqa: E402
from motion.fileio import TEMP_FILE, TEMP_FOLDER  # noqa: E402
from render.api import render_scene  # noqa: E402
from render.meta import read_meta  # noqa: E402
from render.previews import preview_files  # noqa: E402
from render.projection import FACE_VISIBLE_SHARE  # noqa: E402

pytestmark = pytest.mark.blender
REPO = Path(__file__).resolve().parents[1]
AVATARCINE = [sys.executable, "-m", "motion.cli"]
HOLD = ("import sys, time; from motion.fileio import output_lock\n"
        "with output_lock(sys.argv[1]):\n    print('held', flush=True); time.sleep(60)\n")


@pytest.fixture(scope="module")
def tube_scene(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("scene")
    asset = tube_avatar()
    actor = write_actor(folder, "bob", asset, wave_motion(asset, 8, walk=0.4))
    scene = {"fps": 30, "resolution": [64, 48], "actors": [actor], "camera": {"type": "orbit", "degrees": 30},
             "passes": ["mesh", "normal", "depth", "semantic", "mask", "skeleton", "flow"]}
    (folder / "scene.json").write_text(json.dumps(scene))
    return folder / "scene.json"


def _env(systmp: Path) -> dict:
    systmp.mkdir(exist_ok=True)
    return {**os.environ, "TMPDIR": str(systmp), "PYTHONPATH": str(REPO), "AVATARCINE_QUIET": "1"}


def _tree(root: Path) -> dict[str, bytes]:
    """Every file of a render but Blender's own log (it holds timings)."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and p.relative_to(root).parts[0] != "logs"}


def _debris(folder: Path) -> list[str]:
    """Our temporaries and lock files anywhere under ``folder``."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*")
                  if TEMP_FILE.match(p.name) or TEMP_FOLDER.match(p.name) or p.name.endswith(".lock"))


@pytest.fixture(scope="module")
def reference(tube_scene, tmp_path_factory) -> Path:
    """The same scene rendered once, uninterrupted."""
    root = tmp_path_factory.mktemp("reference")
    run = subprocess.run(AVATARCINE + ["render", str(tube_scene), "-o", str(root / "out")], cwd=REPO,
                         env=_env(root / "systmp"), capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-2000:]
    return root / "out"


def _kill_when(cmd: list[str], env: dict, condition) -> None:
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    while proc.poll() is None:
        if condition():
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            return
        time.sleep(0.002)
    pytest.fail(f"the render ended (exit {proc.returncode}) before the kill point: {proc.stderr.read()[-500:]}")


def test_killed_render_resumes_to_the_uninterrupted_output_without_debris(tube_scene, reference, tmp_path):
    out, systmp = tmp_path / "renders" / "out", tmp_path / "systmp"
    env = _env(systmp)
    cmd = AVATARCINE + ["render", str(tube_scene), "-o", str(out)]
    kill_points = [
        lambda: (out / ".frames" / "scene.json").is_file(),                          # before the first frame
        lambda: len(list((out / ".frames").glob("0*.json"))) >= 3,                   # among the frames
        lambda: (out / "previews").is_dir() and any(TEMP_FILE.match(p.name) for p in (out / "previews").iterdir()),
    ]
    left = []
    for point in kill_points:
        _kill_when(cmd, env, point)
        left.append(_debris(tmp_path))
    # each kill left something behind: the lock beside the output, the temp folder, a half preview
    assert all("renders/.out.lock" in d for d in left)
    assert any(d.startswith("systmp/avatarcine_render_") for d in left[0] + left[1])
    assert any(d.startswith("renders/out/previews/.") for d in left[2])
    done = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert _debris(tmp_path) == [] and list(systmp.iterdir()) == []
    assert sorted(p.name for p in (tmp_path / "renders").iterdir()) == ["out"]
    assert all(p.is_file() for p in preview_files(out, read_meta(out)))
    ours, theirs = _tree(out), _tree(reference)
    assert sorted(ours) == sorted(theirs) and len(ours) > 80
    assert [name for name in ours if ours[name] != theirs[name]] == []


def test_a_second_render_into_the_same_folder_is_refused_with_the_holders_pid(tube_scene, reference, tmp_path):
    out = tmp_path / "out"
    env = _env(tmp_path / "systmp")
    first = subprocess.Popen(AVATARCINE + ["render", str(tube_scene), "-o", str(out)], cwd=REPO, env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    lock = tmp_path / ".out.lock"
    while first.poll() is None and not (lock.is_file() and lock.read_text().strip()):
        time.sleep(0.002)
    second = subprocess.run(AVATARCINE + ["render", str(tube_scene), "-o", str(out), "--force"], cwd=REPO, env=env,
                            capture_output=True, text=True)
    assert first.wait() == 0, first.stderr.read()[-2000:]
    assert second.returncode == 2 and second.stderr.count("\n") == 1, second.stderr
    assert f"{out}: is being written by another avatarcine process (pid {first.pid})" in second.stderr
    ours, theirs = _tree(out), _tree(reference)                    # the first render is intact
    assert sorted(ours) == sorted(theirs) and all(ours[k] == theirs[k] for k in ours)


def test_a_second_dataset_build_into_the_same_folder_is_refused(tmp_path, capsys):
    out = tmp_path / "bench"
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(out)], cwd=REPO, env=_env(tmp_path / "systmp"),
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        assert main(["bench", "dataset", "--size", "smoke", "-o", str(out)]) == 2
    finally:
        holder.kill()
        holder.wait()
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"(pid {holder.pid})" in err and not out.exists()


def test_previews_come_back_after_a_run_without_them(tube_scene, tmp_path):
    out = render_scene(tube_scene, tmp_path / "out", previews=False)
    files = preview_files(out, read_meta(out))
    assert not any(p.exists() for p in files)
    render_scene(tube_scene, out)                                  # nothing to render, previews missing
    assert all(p.is_file() for p in files)
    stamps = [p.stat().st_mtime_ns for p in files]
    render_scene(tube_scene, out)                                  # nothing to do at all: kept as they are
    assert [p.stat().st_mtime_ns for p in files] == stamps
    files[0].unlink()
    render_scene(tube_scene, out)
    assert all(p.is_file() for p in files)


def test_scene_warnings_are_one_line_each_and_recorded_in_meta(tmp_path):
    import imageio.v3 as iio

    asset = tube_avatar()
    long = write_actor(tmp_path, "long", asset, wave_motion(asset, 6))
    short = write_actor(tmp_path, "short", asset, wave_motion(asset, 3))
    short["position"] = [1.0, 0.0]
    camera = {"type": "keyframes", "keys": [{"time": 0.0, "position": [0.5, -4, 1], "look_at": [0.5, 0, 1]},
                                            {"time": 0.1, "position": [0.5, -4, 1], "look_at": [0.5, 0, 1]},
                                            {"time": 0.12, "position": [0.5, -4, 1], "look_at": [0.5, -8, 1]}]}
    scene = {"fps": 30, "resolution": [32, 24], "actors": [long, short], "camera": camera, "passes": ["mask"]}
    (tmp_path / "scene.json").write_text(json.dumps(scene))
    run = subprocess.run(AVATARCINE + ["render", str(tmp_path / "scene.json"), "-o", str(tmp_path / "out"),
                                       "--no-previews"], cwd=REPO, env=_env(tmp_path / "systmp"),
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-2000:]
    lines = [line for line in run.stderr.splitlines() if line.startswith("avatarcine: warning: ")]
    expected = ["actor 'short': motion ends at frame 2; it holds its last pose for frames 3..5",
                "camera: no actor in view in frames 4..5 (empty passes there)"]
    assert lines == [f"avatarcine: warning: {w}" for w in expected]
    meta = read_meta(tmp_path / "out")
    assert meta["warnings"] == expected
    masks = {f["index"]: iio.imread(tmp_path / "out" / "mask" / f"{f['index']:06d}.png") for f in meta["frames"]}
    empty = [index for index, mask in masks.items() if not mask.any()]
    assert empty == [4, 5]                                       # the warning names the frames that are empty


# --- keypoint visibility against trimesh ray casting on the evaluated meshes --------------------------

@pytest.fixture(scope="module")
def anny(tmp_path_factory):
    from motion.bodies import bake_avatar

    folder = tmp_path_factory.mktemp("anny")
    asset = bake_avatar("anny")
    asset.save(folder / "anny.avatar.npz")
    rest = asset.rest_motion(1)
    rest.save(folder / "rest.motion.npz")
    rotations = rest.rotations.copy()
    for side in "LR":                                   # seated: thighs forward, shins down
        rotations[0, asset.joint_names.index(f"upperleg01.{side}")] = [-np.pi / 2, 0, 0]
        rotations[0, asset.joint_names.index(f"lowerleg01.{side}")] = [np.pi / 2, 0, 0]
    rest.replace(rotations=rotations).save(folder / "seated.motion.npz")
    return folder, asset


def _render_one(folder: Path, name: str, actors: list[dict], camera: dict):
    scene = {"fps": 30, "resolution": [160, 160], "actors": actors, "camera": camera, "passes": ["skeleton"]}
    (folder / f"{name}.json").write_text(json.dumps(scene))
    out = render_scene(folder / f"{name}.json", folder / name, previews=False, export_meshes=True)
    frame = read_meta(out)["frames"][0]
    E = np.asarray(frame["camera"]["world_to_camera_cv"])
    eye = -E[:3, :3].T @ E[:3, 3]
    meshes = np.load(out / "meshes" / "000000.npz")
    return frame, eye, meshes


def _first_hits(eye, targets, vertices, faces):
    """Distance to the first surface along each ray eye -> target, and the triangle hit (-1: none)."""
    import trimesh

    mesh = trimesh.Trimesh(vertices, faces, process=False)
    d = targets - eye
    dist = np.linalg.norm(d, axis=1)
    locs, rays, tris = mesh.ray.intersects_location(np.tile(eye, (len(d), 1)), d / dist[:, None],
                                                    multiple_hits=False)
    hit, tri = np.full(len(d), np.inf), np.full(len(d), -1)
    hit[rays], tri[rays] = np.linalg.norm(locs - eye, axis=1), tris
    return dist, hit, tri


FACE = ("nose", "right_eye", "left_eye", "right_ear", "left_ear")


@pytest.mark.parametrize("view,azimuth", [("front", 0), ("back", 180), ("profile", 90)])
def test_face_points_are_visible_only_from_their_own_side(anny, view, azimuth):
    folder, asset = anny
    frame, eye, meshes = _render_one(folder, view, [{"name": "p", "avatar": "anny.avatar.npz",
                                                     "motion": "rest.motion.npz"}],
                                     {"type": "static", "azimuth_deg": azimuth})
    flags = {n: int(row[2]) for n, row in zip(asset.keypoint_names, frame["actors"]["p"]["keypoints2d"]["openpose18"])}
    vertices = meshes["p.vertices"].astype(np.float64)
    for name in FACE:   # independent: the share of the point's vertex weight that a ray reaches unblocked
        k = asset.keypoint_names.index(name)
        keep = asset.keypoint_vertex_weights[k] > 1e-3           # 99 % of the weight; ears have 4105 vertices
        ids, w = asset.keypoint_vertex_ids[k][keep], asset.keypoint_vertex_weights[k][keep]
        dist, hit, _ = _first_hits(eye, vertices[ids], vertices, meshes["p.faces"])
        share = float(np.sum(w * (hit >= dist - 0.02)) / np.sum(w))   # 2 cm: below the 160 px pixel footprint
        assert flags[name] == (share >= FACE_VISIBLE_SHARE), (view, name, share)
    if view == "front":
        assert all(flags[n] for n in FACE)
    if view == "back":                   # no face drawn on the back of the head
        assert flags["nose"] == flags["right_eye"] == flags["left_eye"] == 0
    if view == "profile":                # seen from the left: the right eye and ear are behind the face
        assert flags["nose"] == flags["left_eye"] == 1 and flags["right_eye"] == flags["right_ear"] == 0


def _hips(asset, frame, actor):
    rows = frame["actors"][actor]["keypoints2d"]["openpose18"]
    return [int(rows[asset.keypoint_names.index(n)][2]) for n in ("right_hip", "left_hip")]


def test_a_seated_hip_behind_its_own_thigh_is_visible_and_another_actor_hides_it(anny):
    folder, asset = anny
    seated = {"name": "p", "avatar": "anny.avatar.npz", "motion": "seated.motion.npz"}
    frame, eye, meshes = _render_one(folder, "seated", [seated], {"type": "static", "azimuth_deg": 0,
                                                                   "elevation_deg": 0})
    vertices = meshes["p.vertices"].astype(np.float64)
    hips = [asset.keypoint_names.index(n) for n in ("right_hip", "left_hip")]
    joints = np.einsum("knd,kn->kd", vertices[asset.keypoint_vertex_ids[hips]], asset.keypoint_vertex_weights[hips])
    dist, hit, tri = _first_hits(eye, joints, vertices, meshes["p.faces"])
    parts = [asset.part_names[np.bincount(asset.vertex_parts[meshes["p.faces"][t]]).argmax()] for t in tri]
    # independent: the ray to each hip first meets its own thigh, well over a body's half-thickness in front
    assert parts == ["right_upper_leg", "left_upper_leg"] and np.all(dist - hit > 0.15), (parts, dist - hit)
    assert _hips(asset, frame, "p") == [1, 1]
    standing = {"name": "q", "avatar": "anny.avatar.npz", "motion": "rest.motion.npz", "position": [0.0, -0.7]}
    frame, eye, meshes = _render_one(folder, "blocked", [seated, standing], {"type": "static", "azimuth_deg": 0,
                                                                            "elevation_deg": 0})
    both = np.concatenate([meshes["p.vertices"], meshes["q.vertices"]]).astype(np.float64)
    faces = np.concatenate([meshes["p.faces"], meshes["q.faces"] + len(meshes["p.vertices"])])
    joints = np.einsum("knd,kn->kd", meshes["p.vertices"][asset.keypoint_vertex_ids[hips]].astype(np.float64),
                       asset.keypoint_vertex_weights[hips])
    _, _, tri = _first_hits(eye, joints, both, faces)
    assert np.all(tri >= len(meshes["p.faces"]))                 # independent: the other actor is in the way
    assert _hips(asset, frame, "p") == [0, 0]
