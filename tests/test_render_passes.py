"""Rendered passes against independent evidence: trimesh ray casting, the palette, the mask, the
reference skeleton drawing (OpenCV backend), known normals, instance ids, flow, resume."""

import json
import os

os.environ.setdefault("OPENCV_IO_ENABLE_OPENEXR", "1")

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

pytest.importorskip("bpy")

from _render_util import PALETTE, panel_avatar, tube_avatar, wave_motion, write_actor  # noqa: E402
from render.api import render_scene  # noqa: E402
from render.meta import read_meta  # noqa: E402

pytestmark = pytest.mark.blender
W, H = 64, 48
PASSES = ["mesh", "normal", "depth", "semantic", "mask", "skeleton", "flow"]


def _read(path):
    im = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    return im[..., ::-1] if im.ndim == 3 else im


@pytest.fixture(scope="module")
def duo(tmp_path_factory):
    """Two tube actors walking side by side, rendered once."""
    folder = tmp_path_factory.mktemp("duo")
    asset = tube_avatar(radius=0.09)
    a = write_actor(folder, "ann", asset, wave_motion(asset, 3, walk=0.6))
    b = write_actor(folder, "ben", asset, wave_motion(asset, 3, walk=-0.3))
    a["position"], b["position"] = [-0.6, 0.0], [0.6, 0.3]
    scene = {"fps": 30, "resolution": [W, H], "actors": [a, b], "camera": {"type": "static"}, "passes": PASSES}
    (folder / "scene.json").write_text(json.dumps(scene))
    out = render_scene(folder / "scene.json", folder / "out", previews=False, export_meshes=True)
    return folder, out, read_meta(out), asset


def test_depth_matches_trimesh_ray_casting(duo):
    import trimesh
    _, out, meta, asset = duo
    frame = meta["frames"][1]
    K, E = np.array(frame["camera"]["K"]), np.array(frame["camera"]["world_to_camera_cv"])
    meshes = np.load(out / "meshes" / "000001.npz")
    verts = np.concatenate([meshes["ann.vertices"], meshes["ben.vertices"]])
    faces = np.concatenate([meshes["ann.faces"], meshes["ben.faces"] + len(meshes["ann.vertices"])])
    mesh = trimesh.Trimesh(verts, faces, process=False)
    j, i = np.meshgrid(np.arange(W) + 0.5, np.arange(H) + 0.5)
    dirs_cam = np.stack([(j - K[0, 2]) / K[0, 0], (i - K[1, 2]) / K[1, 1], np.ones_like(j)], -1).reshape(-1, 3)
    R, t = E[:3, :3], E[:3, 3]
    origin = -R.T @ t
    dirs = dirs_cam @ R                                   # camera -> world (R^T d)
    locs, rays, _ = mesh.ray.intersects_location(np.tile(origin, (len(dirs), 1)), dirs, multiple_hits=False)
    z_ref = np.full(len(dirs), np.inf)
    z_ref[rays] = (locs - origin) @ R[2]
    depth = cv2.imread(str(out / "depth" / "000001.exr"), cv2.IMREAD_UNCHANGED).reshape(-1)
    hit = depth < 1e9
    both = hit & np.isfinite(z_ref)
    assert both.sum() > 50
    assert (hit != np.isfinite(z_ref)).mean() < 0.02            # silhouettes agree (edge pixels aside)
    assert np.median(np.abs(depth[both] - z_ref[both])) < 1e-3
    assert np.quantile(np.abs(depth[both] - z_ref[both]), 0.95) < 0.02


def test_semantic_pixels_only_from_palette(duo):
    _, out, _, _ = duo
    allowed = {tuple(c) for c in PALETTE.tolist()} | {(0, 0, 0)}
    for f in range(3):
        im = _read(out / "semantic" / f"{f:06d}.png")
        colours = {tuple(c) for c in im.reshape(-1, 3).tolist()}
        assert colours <= allowed and len(colours) > 3


def test_visible_keypoints_lie_inside_the_mask(duo):
    _, out, meta, _ = duo
    n = 0
    for frame in meta["frames"]:
        mask = _read(out / "mask" / f"{frame['index']:06d}.png")
        assert set(np.unique(mask)) <= {0, 255}
        for actor in frame["actors"].values():
            for x, y, visible in actor["keypoints2d"]["openpose18"]:
                if visible:
                    n += 1
                    assert mask[int(y), int(x)] == 255
    assert n > 20


def test_skeleton_equals_reference_drawing(duo):
    from render.openpose import draw_pose
    _, out, meta, _ = duo
    for frame in meta["frames"]:
        people = [{"body": np.array(a["keypoints2d"]["openpose18"], float)} for a in frame["actors"].values()]
        reference = draw_pose(H, W, people, backend="cv2")
        assert np.array_equal(_read(out / "skeleton" / f"{frame['index']:06d}.png"), reference)
        assert reference.any()


def test_instance_ids_separate_the_actors(duo):
    from render.projection import project
    _, out, meta, asset = duo
    frame = meta["frames"][0]
    ids = _read(out / "instance" / "000000.png")
    assert set(np.unique(ids)) == {0, 1, 2}
    assert [a["instance_id"] for a in meta["actors"]] == [1, 2]
    meshes = np.load(out / "meshes" / "000000.npz")
    K, E = np.array(frame["camera"]["K"]), np.array(frame["camera"]["world_to_camera_cv"])
    for name, iid in (("ann", 1), ("ben", 2)):
        uv, _ = project(K, E, meshes[f"{name}.vertices"])
        centre = np.median(uv, 0)
        mean_x = np.argwhere(ids == iid)[:, 1].mean() + 0.5
        assert abs(mean_x - centre[0]) < 6
    mask = _read(out / "mask" / "000000.png")
    assert np.array_equal(mask > 0, ids > 0)


def test_flow_follows_the_walk(duo):
    """ann walks +x at 0.6 m/s: forward flow on her pixels points right by about her image speed."""
    from render.projection import project
    _, out, meta, _ = duo
    f0 = meta["frames"][0]
    flow = cv2.imread(str(out / "flow" / "000000.exr"), cv2.IMREAD_UNCHANGED)[..., ::-1][..., :2]  # R, G = dx, dy
    ids = _read(out / "instance" / "000000.png")
    m0, m1 = np.load(out / "meshes" / "000000.npz"), np.load(out / "meshes" / "000001.npz")
    K, E = np.array(f0["camera"]["K"]), np.array(f0["camera"]["world_to_camera_cv"])
    expected = (project(K, E, m1["ann.vertices"])[0] - project(K, E, m0["ann.vertices"])[0]).mean(0)
    measured = flow[ids == 1].mean(0)
    assert expected[0] > 0.2
    assert np.allclose(measured, expected, atol=0.25 * abs(expected[0]) + 0.05)


def test_normal_facing_camera_is_128_128_255(tmp_path):
    asset = panel_avatar()
    scene = {"fps": 30, "resolution": [W, H], "actors": [write_actor(tmp_path, "p", asset, asset.rest_motion(1))],
             "camera": {"type": "static", "position": [0.0, -3.0, 1.0], "look_at": [0.0, 0.0, 1.0]},
             "passes": ["normal", "mesh", "depth"]}
    out = render_scene(scene, tmp_path / "out", base_dir=tmp_path, previews=False)
    normal = _read(out / "normal" / "000000.png")
    assert tuple(normal[H // 2, W // 2]) == (128, 128, 255)
    assert tuple(normal[0, 0]) == (0, 0, 0)
    depth = cv2.imread(str(out / "depth" / "000000.exr"), cv2.IMREAD_UNCHANGED)
    assert abs(depth[H // 2, W // 2] - 3.0) < 1e-4


def test_resume_skips_done_frames_and_force_rerenders(tmp_path):
    asset = tube_avatar()
    scene = {"fps": 30, "resolution": [32, 32], "actors": [write_actor(tmp_path, "a", asset, wave_motion(asset, 3))],
             "passes": ["mask", "depth"]}
    out = tmp_path / "out"
    render_scene(scene, out, frames=(0, 0), base_dir=tmp_path, previews=False)
    assert [f["index"] for f in read_meta(out)["frames"]] == [0]
    first = (out / "mask" / "000000.png").stat().st_mtime_ns
    render_scene(scene, out, base_dir=tmp_path, previews=False)
    assert (out / "mask" / "000000.png").stat().st_mtime_ns == first
    assert [f["index"] for f in read_meta(out)["frames"]] == [0, 1, 2]
    assert not [p for p in out.rglob(".*.png")]                       # no temporaries left
    from motion.errors import UserError
    with pytest.raises(UserError, match="different scene"):
        render_scene({**scene, "resolution": [16, 16]}, out, base_dir=tmp_path, previews=False)
    render_scene(scene, out, frames=(0, 0), force=True, base_dir=tmp_path, previews=False)
    assert (out / "mask" / "000000.png").stat().st_mtime_ns != first


def test_rgb_is_lit_avatar_on_ground_under_sky(tmp_path):
    asset = tube_avatar(radius=0.12)
    scene = {"fps": 30, "resolution": [32, 32], "actors": [write_actor(tmp_path, "a", asset, asset.rest_motion(1))],
             "camera": {"type": "static", "elevation_deg": 5}, "passes": ["rgb", "mask"], "engine": {"rgb_samples": 4}}
    out = render_scene(scene, tmp_path / "out", base_dir=tmp_path, previews=False)
    rgb = _read(out / "rgb" / "000000.png").astype(int)
    mask = _read(out / "mask" / "000000.png") > 0
    sky = rgb[0]
    assert (sky[:, 2] > sky[:, 0]).all()                              # blue sky at the top
    body = rgb[mask].mean(0)
    assert body[0] > body[2] + 10                                     # warm skin tone on the body
    assert rgb[~mask].std() > 1                                       # ground and sky differ


def test_interrupted_run_keeps_finished_frames(tmp_path, monkeypatch):
    import render.api as api
    asset = tube_avatar()
    scene = {"fps": 30, "resolution": [24, 24], "actors": [write_actor(tmp_path, "a", asset, wave_motion(asset, 3))],
             "passes": ["mask", "depth"]}
    real, calls = api._write_frame, []

    def interrupted(*args, **kwargs):
        if calls:
            raise KeyboardInterrupt
        calls.append(real(*args, **kwargs))

    monkeypatch.setattr(api, "_write_frame", interrupted)
    with pytest.raises(KeyboardInterrupt):
        render_scene(scene, tmp_path / "out", base_dir=tmp_path, previews=False)
    assert [f["index"] for f in read_meta(tmp_path / "out")["frames"]] == [0]
    assert not [p for p in (tmp_path / "out").rglob("*") if p.name.startswith(".") and p.is_file()]
    monkeypatch.setattr(api, "_write_frame", real)
    render_scene(scene, tmp_path / "out", base_dir=tmp_path, previews=False)
    assert [f["index"] for f in read_meta(tmp_path / "out")["frames"]] == [0, 1, 2]


def test_force_over_another_scene_leaves_nothing_of_it(tmp_path):
    asset = tube_avatar()
    actor = write_actor(tmp_path, "a", asset, wave_motion(asset, 3))
    old = {"fps": 30, "resolution": [16, 16], "actors": [actor], "passes": ["mask", "depth"]}
    out = render_scene(old, tmp_path / "out", base_dir=tmp_path, previews=False)
    new = {**old, "resolution": [20, 20], "passes": ["mask"]}
    render_scene(new, out, frames=(0, 0), force=True, base_dir=tmp_path, previews=False)
    meta = read_meta(out)
    assert [f["index"] for f in meta["frames"]] == [0] and meta["resolution"] == [20, 20]
    assert sorted(p.name for p in (out / ".frames").iterdir()) == ["000000.json", "scene.json"]
    assert not (out / "depth").exists() and sorted(p.name for p in (out / "mask").iterdir()) == ["000000.png"]


def test_resume_renders_frames_missing_their_meshes(tmp_path):
    asset = tube_avatar()
    scene = {"fps": 30, "resolution": [16, 16], "actors": [write_actor(tmp_path, "a", asset, wave_motion(asset, 2))],
             "passes": ["mask"]}
    out = render_scene(scene, tmp_path / "out", base_dir=tmp_path, previews=False)
    assert not (out / "meshes").exists()
    render_scene(scene, out, base_dir=tmp_path, previews=False, export_meshes=True)
    assert sorted(p.name for p in (out / "meshes").iterdir()) == ["000000.npz", "000001.npz"]
