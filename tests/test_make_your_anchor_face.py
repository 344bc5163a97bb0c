"""``avatarcine train make-your-anchor-face``: aligned face crops, hidden faces skipped, the 9-channel
inpainting UNet + face ControlNet trained, and the output used by ``--face-enhance``."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch.utils.data import default_collate

from _diffusion_util import add_rgb, mya_dir, one_thread, tiny_dir  # noqa: F401  (fixtures)
from diffusion.io.passes import PassesFolder
from diffusion.io.synthetic_passes import write_passes
from diffusion.methods.make_your_anchor import METHOD
from diffusion.methods.make_your_anchor.model import FACE
from diffusion.training.recipes.make_your_anchor_face import RECIPE, FaceTrainConfig
from diffusion.training.trainer import Trainer

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """4 frames; frame 1's face is hidden (its head points are marked not visible)."""
    root = add_rgb(write_passes(tmp_path_factory.mktemp("face") / "clip", frames=4))
    meta = json.loads((root / "meta.json").read_text())
    names = meta["keypoint_names"]["openpose18"]
    actor = meta["actors"][0]["name"]
    points = meta["frames"][1]["actors"][actor]["keypoints2d"]["openpose18"]
    for name in ("nose", "right_eye", "left_eye", "right_ear", "left_ear"):
        points[names.index(name)][2] = 0
    (root / "meta.json").write_text(json.dumps(meta))
    return root


def _config(model, clip, output, **kw):
    base = dict(data=[str(clip)], passes=["normal"], resolution=64, model=str(model), controlnet_base="tiny",
                output=str(output), steps=10, batch_size=3, learning_rate=1e-3, lr_scheduler="constant",
                checkpoint_every=1000, seed=2, face_size=32, face_min_size=4)
    base.update(kw)
    return FaceTrainConfig(**base)


def test_face_training_lowers_the_loss_and_its_output_enhances_faces(mya_dir, tiny_dir, clip, tmp_path, monkeypatch):
    monkeypatch.setenv("AVATARCINE_CACHE", str(tiny_dir.parent))  # controlnet_base: tiny -> the test's tiny parts
    trainer = Trainer(RECIPE, _config(mya_dir / FACE, clip, tmp_path / "out", controlnet="unet"))
    data = trainer.setup.dataset
    assert [k for _, k in data.items] == [0, 2, 3]          # frame 1's face is hidden: skipped
    item = data[0]
    assert item["pixel_values"].shape == (3, 32, 32) and item["conditioning_pixel_values"].shape == (3, 32, 32)
    assert trainer.setup.extra["components"].unet.config.in_channels == 9
    assert trainer.setup.record["controlnet_init"] == "from_unet"
    batch = default_collate([data[i] for i in range(3)])

    def losses():
        with torch.no_grad():
            return np.array([RECIPE.loss(trainer.setup, batch, torch.Generator().manual_seed(s)).item() for s in range(3)])
    before = losses()
    vae_before = {k: v.clone() for k, v in trainer.setup.extra["components"].vae.state_dict().items()}
    trainer.start()
    trainer.fit()
    assert losses().mean() < 0.8 * before.mean()
    assert all(torch.equal(v, trainer.setup.extra["components"].vae.state_dict()[k]) for k, v in vae_before.items())
    final = trainer.final
    assert (final / "unet").is_dir() and (final / "controlnet").is_dir() and (final / "reference.png").is_file()
    s = METHOD.settings(model=str(mya_dir), condition=["normal"], steps=2, window=4, overlap=1, face_enhance=True,
                        face_model=str(final), face_min_size=4, face_steps=2)  # crop size: the trained 32
    passes = PassesFolder.open(clip)
    out = METHOD.run(passes, s, METHOD.load(s))
    assert out.record["face"] == {"enhanced": 3, "skipped": 1, "reference": str(final / "reference.png"), "size": 32,
                                  "min_size": 4.0}
    plain = METHOD.run(passes, METHOD.settings(**{**s.to_dict(), "face_enhance": False}), METHOD.load(s))
    assert np.array_equal(plain.frames[1], out.frames[1])    # the hidden face is left alone
    assert not np.array_equal(plain.frames[0], out.frames[0])


def test_a_non_inpainting_model_is_refused(mya_dir, clip, tmp_path):
    from motion.errors import UserError

    with pytest.raises(UserError, match="not an inpainting model"):
        Trainer(RECIPE, _config(mya_dir, clip, tmp_path / "out"))


def test_a_clip_without_a_face_borrows_the_reference_of_one_that_has(mya_dir, tiny_dir, clip, tmp_path, monkeypatch):
    """A back-view clip listed first (every head point hidden) gives no items and takes its reference
    from the next clip with a face (the benchmark's `small` split starts with such a clip)."""
    import shutil

    from diffusion.training.recipes.make_your_anchor_face import FaceDataset

    monkeypatch.setenv("AVATARCINE_CACHE", str(tiny_dir.parent))
    back = shutil.copytree(clip, tmp_path / "back")
    meta = json.loads((back / "meta.json").read_text())
    names, actor = meta["keypoint_names"]["openpose18"], meta["actors"][0]["name"]
    for frame in meta["frames"]:
        for name in ("nose", "right_eye", "left_eye", "right_ear", "left_ear"):
            frame["actors"][actor]["keypoints2d"]["openpose18"][names.index(name)][2] = 0
    (back / "meta.json").write_text(json.dumps(meta))
    trainer = Trainer(RECIPE, _config(mya_dir / FACE, clip, tmp_path / "out", data=[str(back), str(clip)]))
    data = trainer.setup.dataset
    assert isinstance(data, FaceDataset) and data.faces[0] == [] and {c for c, _ in data.items} == {1}
    assert np.array_equal(data.reference(0, 0), data.reference(1, 0))
    assert np.array_equal(data.reference(0, 1), data.crop(1, 2))        # frame 1 of clip 1 has no face
