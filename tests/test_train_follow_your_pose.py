"""Follow Your Pose training, both stages, on synthetic passes folders with an rgb pass: what trains,
the zero-initialised start, the loss falling on a fixed batch, and the outputs loading into
``generate --method follow-your-pose``."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import yaml
from torch.utils.data import default_collate

from _diffusion_util import add_rgb, one_thread, tiny_dir  # noqa: F401  (fixtures)
from diffusion.attention.frames import frame_attention_rules
from diffusion.attention.install import processors
from diffusion.io.passes import PassesFolder
from diffusion.io.synthetic_passes import write_passes
from diffusion.methods.follow_your_pose import METHOD
from diffusion.methods.follow_your_pose.inflate import TEMPORAL, transformer_blocks
from diffusion.training.recipes.follow_your_pose_pose import RECIPE as POSE
from diffusion.training.recipes.follow_your_pose_pose import PoseEncoderTrainConfig
from diffusion.training.recipes.follow_your_pose_video import RECIPE as VIDEO
from diffusion.training.recipes.follow_your_pose_video import TemporalTrainConfig
from diffusion.training.trainer import Trainer, checkpoints

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return add_rgb(write_passes(tmp_path_factory.mktemp("train") / "clip", frames=6))


def _losses(recipe, trainer: Trainer, batch: dict, setup=None) -> np.ndarray:
    """Losses of one batch under three fixed noise/timestep draws."""
    setup = setup or trainer.setup
    with torch.no_grad():
        return np.array([recipe.loss(setup, batch, torch.Generator().manual_seed(s)).item() for s in range(3)])


def _state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def _fit(recipe, config):
    trainer = Trainer(recipe, config)
    trainer.start()
    dataset = trainer.setup.dataset
    batch = default_collate([dataset[i] for i in range(min(len(dataset), 4))])
    c = trainer.setup.extra["components"]
    frozen = {"unet": _state(c.unet), "vae": _state(c.vae), "text_encoder": _state(c.text_encoder)}
    before = {"loss": _losses(recipe, trainer, batch), "frozen": frozen,
              "trainable": {k: _state(m) for k, m in trainer.unwrapped().items()}}
    trainer.fit()
    return trainer, batch, before


@pytest.fixture(scope="module")
def stage1(tiny_dir, clip, tmp_path_factory):
    config = PoseEncoderTrainConfig(data=[str(clip)], resolution=64, model=str(tiny_dir), steps=20, batch_size=2,
                                    learning_rate=1e-2, lr_scheduler="constant", checkpoint_every=1000, seed=3,
                                    output=str(tmp_path_factory.mktemp("pose") / "out"))
    return _fit(POSE, config)


def test_stage1_starts_at_the_base_model_and_trains_only_the_encoder(stage1):
    from diffusion.training.recipes.controlnet import diffusion_target, noisy_latents, text_embeddings

    trainer, batch, before = stage1
    setup = trainer.setup
    encoder = trainer.unwrapped()["pose_encoder"]
    assert [p for p in setup.parameters()] == list(encoder.parameters())
    assert encoder.config.num_res_blocks == 2 and encoder.config.downscale_factor == 8
    c = setup.extra["components"]
    assert list(encoder.config.channels) == list(c.unet.config.block_out_channels)
    # step 0: the zero-initialised encoder's loss is the bare UNet's under the same draws
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        latents, noise, timesteps, noisy = noisy_latents(c, setup.extra["noise_scheduler"], batch["pixel_values"], g,
                                                         c.dtype)
        text = text_embeddings(c, {}, list(batch["caption"]))
        bare = c.unet(noisy, timesteps, encoder_hidden_states=text, return_dict=False)[0]
        target = diffusion_target(setup.extra["noise_scheduler"], latents, noise, timesteps)
    assert before["loss"][0] == torch.nn.functional.mse_loss(bare, target).item()
    for name, module in (("unet", c.unet), ("vae", c.vae), ("text_encoder", c.text_encoder)):
        assert all(torch.equal(v, before["frozen"][name][k]) for k, v in module.state_dict().items()), name
    changed = [k for k, v in encoder.state_dict().items() if not torch.equal(v, before["trainable"]["pose_encoder"][k])]
    assert changed and any("block2" in k for k in changed)  # the zeroed output layers left zero


def test_stage1_loss_falls(stage1):
    trainer, batch, before = stage1
    after = _losses(POSE, trainer, batch)
    # from the base model (the random tiny UNet, whose loss the encoder's residuals can only partly
    # reduce): measured 0.90-0.93 of the start after 20 steps
    assert np.all(after < 0.95 * before["loss"]), (before["loss"], after)


def test_stage1_encoder_generates(stage1, clip, tiny_dir):
    trainer, _, _ = stage1
    final = trainer.final
    assert (final / "config.json").is_file() and (final / "avatarcine_training.json").is_file()
    s = METHOD.settings(prompt="a person", model=str(tiny_dir), pose_encoder=str(final), steps=2, window=None,
                        max_frames=2)
    c = METHOD.load(s)
    loaded = c.extra["pose_encoder"]
    trained = trainer.unwrapped()["pose_encoder"]
    assert all(torch.equal(v, trained.state_dict()[k]) for k, v in loaded.state_dict().items())
    out = METHOD.run(PassesFolder.open(clip), s, c)
    assert out.frames.shape == (2, 64, 64, 3)


@pytest.fixture(scope="module")
def stage2(tiny_dir, clip, stage1, tmp_path_factory):
    config = TemporalTrainConfig(data=[str(clip)], resolution=64, model=str(tiny_dir), steps=10, batch_size=2,
                                 frames=4, stride=1, learning_rate=3e-2, checkpoint_every=5, seed=4,
                                 pose_encoder=str(stage1[0].final), output=str(tmp_path_factory.mktemp("video") / "o"))
    return _fit(VIDEO, config)


def _expected_trainable(unet) -> set[str]:
    """Independently of the recipe's name patterns: every parameter of every block's temporal
    attention, and the query projections of its two attention layers."""
    names = {id(p): n for n, p in unet.named_parameters()}
    expected = set()
    for block in transformer_blocks(unet):
        for module in (getattr(block, TEMPORAL), block.attn1.to_q, block.attn2.to_q):
            expected.update(names[id(p)] for p in module.parameters())
    return expected


def test_stage2_trains_temporal_attention_and_queries_only(stage2):
    trainer, _, before = stage2
    unet = trainer.unwrapped()["unet"]
    assert len(transformer_blocks(unet)) == 4  # the tiny UNet: down 1, mid 1, up 2 (layers_per_block + 1)
    expected = _expected_trainable(unet)
    assert {n for n, p in unet.named_parameters() if p.requires_grad} == expected
    assert sum(p.numel() for p in trainer.setup.parameters()) == sum(
        p.numel() for n, p in unet.named_parameters() if n in expected)
    start = before["trainable"]["unet"]
    state = unet.state_dict()
    changed = {k for k, v in state.items() if not torch.equal(v, start[k])}
    assert changed and changed <= expected
    assert any(k.endswith(f"{TEMPORAL}.attn.to_out.0.weight") for k in changed)  # temporal attention left zero
    c = trainer.setup.extra["components"]
    assert all(torch.equal(v, before["frozen"]["vae"][k]) for k, v in c.vae.state_dict().items())


def test_stage2_starts_at_the_cross_frame_only_model(stage2, tiny_dir):
    """Step 0's loss is that of the base UNet with cross-frame attention alone, under the same draws."""
    import dataclasses

    from diffusion.loaders.sd15 import load_sd15

    trainer, batch, before = stage2
    base = load_sd15(str(tiny_dir), dtype="fp32").unet
    with processors(base, frame_attention_rules("cross-frame")):
        setup = dataclasses.replace(trainer.setup, trainable={"unet": base})
        assert _losses(VIDEO, trainer, batch, setup)[0] == before["loss"][0]
    # control: the trained model's loss differs
    assert _losses(VIDEO, trainer, batch)[0] != before["loss"][0]


def test_stage2_loss_falls(stage2):
    trainer, batch, before = stage2
    assert batch["pixel_values"].shape == (3, 4, 3, 64, 64) and "conditioning_pixel_values" not in batch  # pose-free
    after = _losses(VIDEO, trainer, batch)
    assert np.all(after < 0.9 * before["loss"]), (before["loss"], after)  # measured 0.76-0.82


def test_stage2_output_loads_onto_the_base_with_the_stage1_encoder(stage1, stage2, clip, tiny_dir):
    trainer, _, _ = stage2
    final = trainer.final
    assert sorted(p.name for p in final.iterdir()) == ["pose_encoder", "temporal.safetensors"]
    s = METHOD.settings(prompt="a person", model=str(tiny_dir), temporal=str(final), steps=2, window=4, max_frames=6)
    c = METHOD.load(s)
    assert c.sources["pose_encoder"] == str(final / "pose_encoder")
    assert c.extra["temporal"]["frames"] == 4
    trained = trainer.unwrapped()["unet"].state_dict()
    assert all(torch.equal(v, trained[k]) for k, v in c.unet.state_dict().items())
    encoder = stage1[0].unwrapped()["pose_encoder"].state_dict()
    assert all(torch.equal(v, encoder[k]) for k, v in c.extra["pose_encoder"].state_dict().items())
    a = METHOD.run(PassesFolder.open(clip), s, c)
    b = METHOD.run(PassesFolder.open(clip), s, METHOD.load(s))
    assert torch.equal(a.latents, b.latents) and a.record["sampling"]["windows"] == [(0, 4), (2, 6)]
    # checkpoints hold the same weights file, usable as --temporal as is
    last = checkpoints(trainer.output)[-1]
    assert last.name.endswith("10") and (last / "temporal.safetensors").is_file()


def test_stage2_resume_is_bit_identical(tiny_dir, clip, tmp_path):
    base = dict(data=[str(clip)], resolution=64, model=str(tiny_dir), steps=4, batch_size=1, frames=3, stride=2,
                learning_rate=1e-3, checkpoint_every=2, seed=1)
    whole = Trainer(VIDEO, TemporalTrainConfig(**base, output=str(tmp_path / "whole")))
    whole.start()
    whole.fit()
    config = TemporalTrainConfig(**base, output=str(tmp_path / "split"))
    first = Trainer(VIDEO, config)
    first.start()
    first.fit(max_steps=2)
    second = Trainer(VIDEO, config)
    second.start(resume=True)
    second.fit()
    a, b = whole.unwrapped()["unet"].state_dict(), second.unwrapped()["unet"].state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_cli_trains_stage2_from_yaml(tiny_dir, clip, tmp_path, capsys):
    from motion.cli import main

    config = tmp_path / "video.yaml"
    config.write_text(yaml.safe_dump({"data": [str(clip)], "resolution": 64, "model": str(tiny_dir), "steps": 1,
                                      "batch_size": 1, "frames": 2, "output": "run"}))
    assert main(["train", "follow-your-pose-video", str(config)]) == 0
    record = json.loads((tmp_path / "run" / "train.json").read_text())
    assert record["recipe"] == "follow-your-pose-video" and record["config"]["stride"] == 2
    assert (tmp_path / "run" / "follow-your-pose" / "temporal.safetensors").is_file()
    capsys.readouterr()
    config.write_text(yaml.safe_dump({"data": [str(clip)], "model": str(tiny_dir), "frames": 1, "output": "run2"}))
    assert main(["train", "follow-your-pose-video", str(config)]) == 2
    assert "frames: Input should be greater than or equal to 2" in capsys.readouterr().err


def test_stage1_validation_images(stage1):
    trainer, _, _ = stage1
    path = trainer.save_validation()
    import imageio.v2 as imageio

    image = imageio.imread(path)
    assert image.shape == (128, 2 * 64, 3)  # 2 frames side by side, generated above target
    target = np.round(trainer.setup.dataset.target_image(trainer.setup.dataset.clips[0], 0) * 255).astype(np.uint8)
    np.testing.assert_array_equal(image[64:, :64], target)


def test_stage2_validation_clip(stage2):
    """One clip through the inflated UNet being trained: the trained temporal attention acts (its
    frames differ from the cross-frame-only start)."""
    trainer, _, _ = stage2
    images = VIDEO.validate(trainer.config, trainer.setup)
    assert images.shape == (6, 128, 64, 3)  # validation_frames (8) capped at the clip's 6
    unet = trainer.unwrapped()["unet"]
    saved = {k: v.clone() for k, v in unet.state_dict().items()}
    with torch.no_grad():
        for block in transformer_blocks(unet):
            getattr(block, TEMPORAL).attn.to_out[0].weight.zero_()
            getattr(block, TEMPORAL).attn.to_out[0].bias.zero_()
    try:
        start = VIDEO.validate(trainer.config, trainer.setup)
    finally:
        unet.load_state_dict(saved)
    assert np.abs(images[:, :64].astype(int) - start[:, :64]).max() > 0
    np.testing.assert_array_equal(images[:, 64:], start[:, 64:])  # the targets
