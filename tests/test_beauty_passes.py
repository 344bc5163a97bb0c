"""The path-traced passes besides ``rgb``: ``avatar`` (AMG's condition: the rgb render's lit, textured
body composited on black) and ``plate`` (``--background plate``: the rgb render with the avatars hidden
from the camera); a scene's ``caption`` lands in meta.json (AMG's prompt when none is given)."""

import os

os.environ.setdefault("OPENCV_IO_ENABLE_OPENEXR", "1")

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

pytest.importorskip("bpy")

from _render_util import tube_avatar, write_actor  # noqa: E402
from render.api import render_scene  # noqa: E402
from render.meta import read_meta  # noqa: E402

pytestmark = pytest.mark.blender


def _read(path):
    im = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    return im[..., ::-1] if im.ndim == 3 else im


def _render(tmp_path, passes, **extra):
    """One 32 px frame of a tube body; (meta, {pass: image as int}, near, inner): ``near`` = the mask
    grown by one pixel (the pixel filter blends one pixel of edge), ``inner`` = shrunk by one."""
    asset = tube_avatar(radius=0.12)
    scene = {"fps": 30, "resolution": [32, 32], "actors": [write_actor(tmp_path, "a", asset, asset.rest_motion(1))],
             "camera": {"type": "static", "elevation_deg": 5}, "passes": [*passes, "rgb", "mask"],
             "engine": {"rgb_samples": 4}, **extra}
    out = render_scene(scene, tmp_path / "out", base_dir=tmp_path, previews=False)
    images = {name: _read(out / name / "000000.png").astype(int) for name in [*passes, "rgb"]}
    mask = (_read(out / "mask" / "000000.png") > 0).astype(np.uint8)
    kernel = np.ones((3, 3), np.uint8)
    near, inner = cv2.dilate(mask, kernel) > 0, cv2.erode(mask, kernel) > 0
    assert inner.sum() > 10 and (~near).sum() > 100
    return read_meta(out), images, near, inner


def test_avatar_is_black_outside_the_body_and_the_rgb_render_inside(tmp_path):
    meta, images, near, inner = _render(tmp_path, ["avatar"], caption="a person standing on a beach")
    avatar, rgb = images["avatar"], images["rgb"]
    assert meta["passes"]["avatar"]["kind"] == "image" and meta["caption"] == "a person standing on a beach"
    assert (avatar[~near] == 0).all()                              # no ground, no sky: black
    assert rgb[~near].min() > 20                                   # control: the rgb render has them there
    # Inside the body both renders trace the same paths (same seed, same light; the hidden ground still
    # bounces light): measured identical here. An OIDN denoiser, where Blender has one, sees the other
    # background around the body and may move interior pixels by a level or two, hence the 2.
    diff = np.abs(avatar[inner] - rgb[inner])
    assert diff.max() <= 2, diff.max()


def test_plate_is_the_rgb_render_without_the_avatar_in_view(tmp_path):
    meta, images, near, inner = _render(tmp_path, ["plate"])
    plate, rgb = images["plate"], images["rgb"]
    assert meta["passes"]["plate"]["kind"] == "image"
    # Away from the body both renders trace the same paths (same seed; the hidden body still casts its
    # shadow and bounces light); a denoiser, as above, may move a level or two.
    assert np.abs(plate[~near] - rgb[~near]).max() <= 2
    assert np.abs(plate[inner] - rgb[inner]).mean() > 20            # control: the body is gone there
    # what is behind it instead: the colours of the sky and ground around it
    assert np.abs(plate[inner].mean(axis=0) - rgb[~near].mean(axis=0)).max() < 40


def test_scene_caption_must_be_text():
    from motion.errors import UserError
    from render.scene_config import validate_scene

    scene = {"actors": [{"name": "a", "motion": "m.npz"}]}
    assert "caption" not in validate_scene(scene)                     # scenes without one are unchanged
    assert validate_scene({**scene, "caption": "two people"})["caption"] == "two people"
    with pytest.raises(UserError, match="caption: must be a non-empty text"):
        validate_scene({**scene, "caption": 3})
