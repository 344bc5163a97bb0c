"""Make-Your-Anchor training (``avatarcine train make-your-anchor``): trainable sets per stage and mode,
loss going down, the saved model folder, LoRA resume, reference dropout, video-file pairs."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from torch.utils.data import default_collate

from _diffusion_util import add_rgb, mya_dir, one_thread, tiny_dir  # noqa: F401  (fixtures)
from diffusion.io.passes import PassesFolder
from diffusion.io.synthetic_passes import write_passes
from diffusion.methods.make_your_anchor import METHOD
from diffusion.training.recipes.make_your_anchor import RECIPE, MakeYourAnchorTrainConfig
from diffusion.training.trainer import Trainer, train

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def sd_dir(tiny_dir, tmp_path_factory):
    """A plain SD 1.5 folder (the tiny parts without their tiny marker: no ControlNet, no image tokens)."""
    base = tmp_path_factory.mktemp("sd") / "sd"
    base.mkdir()
    for part in ("unet", "vae", "text_encoder", "tokenizer", "scheduler", "model_index.json"):
        (base / part).symlink_to(tiny_dir / part)
    return base


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return add_rgb(write_passes(tmp_path_factory.mktemp("train") / "clip", frames=4))


def _config(model, clip, output, **kw) -> MakeYourAnchorTrainConfig:
    base = dict(data=[str(clip)], passes=["normal"], resolution=64, model=str(model), output=str(output), steps=1,
                batch_size=2, learning_rate=1e-3, lr_scheduler="constant", checkpoint_every=1000, seed=5)
    base.update(kw)
    return MakeYourAnchorTrainConfig(**base)


def _unwrap(trainer, name):
    return trainer.accelerator.unwrap_model(trainer.setup.trainable[name])


def _state(module):
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def _changed(before, module):
    after = module.state_dict()
    return {k for k in before if not torch.equal(before[k], after[k])}


def _frozen(trainer):
    c = trainer.setup.extra["components"]
    return {"vae": c.vae, "text_encoder": c.text_encoder, "image_encoder": c.extra["image_encoder"]}


@pytest.mark.parametrize("stage,mode,model", [(1, "full", "base"), (2, "full", "mya"), (2, "lora", "mya")])
def test_one_step_changes_exactly_what_the_stage_and_mode_train(stage, mode, model, mya_dir, sd_dir, clip, tmp_path):
    source = sd_dir if model == "base" else mya_dir
    trainer = Trainer(RECIPE, _config(source, clip, tmp_path / "out", stage=stage, mode=mode, image_encoder=str(mya_dir)))
    trainer.start()
    nets = {n: _unwrap(trainer, n) for n in ("unet", "controlnet")}
    before = {n: _state(m) for n, m in {**nets, **_frozen(trainer)}.items()}
    trainer.fit()
    for name, module in _frozen(trainer).items():
        assert not _changed(before[name], module), name
    trained = {id(p) for p in trainer.setup.parameters()}
    for name, module in nets.items():
        changed = _changed(before[name], module)
        lora = {k for k in before[name] if "lora_" in k}
        if mode == "full":  # every UNet and ControlNet weight is optimised, and the step moved them
            assert not lora and trained >= {id(p) for p in module.parameters()}, name
            assert len(changed) > 0.8 * len(before[name]), (name, len(changed), len(before[name]))
        else:  # only LoRA weights (B starts at zero: the step must have moved B)
            assert {id(p) for n, p in module.named_parameters() if "lora_" in n} <= trained, name
            assert changed <= lora and any("lora_B" in k for k in changed), name
    expected = [p for m in nets.values() for n, p in m.named_parameters() if mode == "full" or "lora_" in n]
    assert len(trained) == len(expected)  # and nothing else (no frozen part) is optimised
    record = trainer.setup.record
    assert record["controlnet_init"] == ("from_unet" if model == "base" else str(Path(mya_dir) / "controlnet"))


def test_stage_1_masks_the_background_and_inits_the_controlnet_from_the_unet(sd_dir, mya_dir, clip, tmp_path):
    from diffusers import ControlNetModel

    masked = Trainer(RECIPE, _config(sd_dir, clip, tmp_path / "a", stage=1, image_encoder=str(mya_dir)))
    plain = Trainer(RECIPE, _config(sd_dir, clip, tmp_path / "b", stage=2, image_encoder=str(mya_dir)))
    mask = PassesFolder.open(clip).read("mask", 0)[..., 0] > 0.5
    one, two = masked.setup.dataset[0]["pixel_values"], plain.setup.dataset[0]["pixel_values"]
    assert torch.all(one[:, ~torch.from_numpy(mask)] == -1.0)               # black outside the actor
    assert torch.equal(one[:, torch.from_numpy(mask)], two[:, torch.from_numpy(mask)])
    assert (two[:, ~torch.from_numpy(mask)] > -0.9).all()                   # control: stage 2 keeps it
    unet = masked.setup.extra["components"].unet
    expected = ControlNetModel.from_unet(unet, conditioning_channels=3)
    net = _unwrap(masked, "controlnet")
    assert torch.equal(net.conv_in.weight, expected.conv_in.weight)
    assert torch.equal(net.down_blocks[0].resnets[0].conv1.weight, unet.down_blocks[0].resnets[0].conv1.weight)


@pytest.fixture(scope="module")
def trained(mya_dir, clip, tmp_path_factory):
    config = _config(mya_dir, clip, tmp_path_factory.mktemp("run") / "out", steps=12, batch_size=4,
                     learning_rate=1e-3, validate_every=12, validation_frames=1, validation_steps=2)
    trainer = Trainer(RECIPE, config)
    trainer.start()
    batch = default_collate([trainer.setup.dataset[i] for i in range(4)])

    def losses():
        with torch.no_grad():
            return np.array([RECIPE.loss(trainer.setup, batch, torch.Generator().manual_seed(s)).item()
                             for s in range(4)])
    before = losses()
    trainer.fit()
    return trainer, before, losses()


def test_a_tiny_run_lowers_the_loss(trained):
    trainer, before, after = trained
    assert after.mean() < 0.8 * before.mean(), (before, after)
    assert (trainer.output / "validation" / "step-000012.png").is_file()


def test_saved_model_reproduces_the_trained_weights_output(trained, clip):
    """The final folder through ``--model`` gives bit for bit what the live trained modules give."""
    trainer, _, _ = trained
    final = trainer.final
    assert {p.name for p in final.iterdir()} >= {"unet", "controlnet", "vae", "image_encoder", "feature_extractor",
                                                  "scheduler", "text_encoder", "tokenizer", "model_index.json",
                                                  "avatarcine_mya.json", "reference.png"}
    passes = PassesFolder.open(clip)
    s = METHOD.settings(model=str(final), steps=2, window=4, overlap=1)
    assert METHOD.condition(s) == ("normal",)  # the passes it was trained on
    saved = METHOD.run(passes, s, METHOD.load(s))
    c = METHOD.load(s)
    live = dataclasses.replace(c, unet=_unwrap(trainer, "unet").eval(),
                               controlnets=[_unwrap(trainer, "controlnet").eval()])
    np.testing.assert_array_equal(saved.frames, METHOD.run(passes, s, live).frames)
    base = METHOD.settings(**{**s.to_dict(), "model": str(trainer.config.model), "condition": ("normal",),
                              "reference": str(final / "reference.png")})
    assert (METHOD.run(passes, base, METHOD.load(base)).latents - saved.latents).abs().max() > 1e-3  # control


def test_lora_mode_trains_far_fewer_parameters_and_merges_into_a_plain_model(mya_dir, clip, tmp_path, capsys):
    full = Trainer(RECIPE, _config(mya_dir, clip, tmp_path / "f"))
    lora = Trainer(RECIPE, _config(mya_dir, clip, tmp_path / "l", mode="lora", lora_rank=4, steps=3))
    n_full = sum(p.numel() for p in full.setup.parameters())
    n_lora = sum(p.numel() for p in lora.setup.parameters())
    assert n_lora < 0.2 * n_full
    with capsys.disabled():
        print(f"\n[make-your-anchor] trainable parameters on the tiny model: full {n_full}, LoRA rank 4 {n_lora}")
    lora.start()
    lora.fit()
    s = METHOD.settings(model=str(lora.final), condition=["normal"], steps=2, window=4, overlap=1)
    passes = PassesFolder.open(clip)
    merged = METHOD.run(passes, s, METHOD.load(s))
    c = METHOD.load(s)
    live = dataclasses.replace(c, unet=_unwrap(lora, "unet").eval(), controlnets=[_unwrap(lora, "controlnet").eval()])
    unmerged = METHOD.run(passes, s, live)
    # merged W + BA against W x + B(A x): the same to fp32 rounding
    torch.testing.assert_close(merged.latents, unmerged.latents, atol=1e-4, rtol=1e-4)
    base = METHOD.run(passes, dataclasses.replace(s, model=str(mya_dir), reference=str(lora.final / "reference.png")),
                      METHOD.load(dataclasses.replace(s, model=str(mya_dir))))
    assert (base.latents - merged.latents).abs().max() > 1e-4  # control: the LoRA moved the model


def test_lora_resume_is_bit_identical(mya_dir, clip, tmp_path):
    config = _config(mya_dir, clip, tmp_path / "a", mode="lora", steps=3, checkpoint_every=1)
    straight = train(RECIPE, config)
    stopped = config.model_copy(update={"output": str(tmp_path / "b")})
    train(RECIPE, stopped, max_steps=2)
    resumed = train(RECIPE, stopped, resume=True)
    for name in ("unet", "controlnet"):
        a, b = _unwrap(straight, name).state_dict(), _unwrap(resumed, name).state_dict()
        assert all(torch.equal(a[k], b[k]) for k in a if "lora_" in k)


def test_reference_dropout_replaces_the_tokens_with_the_unconditional_branch(mya_dir, clip, tmp_path):
    trainer = Trainer(RECIPE, _config(mya_dir, clip, tmp_path / "out", reference_dropout=1.0))
    batch = default_collate([trainer.setup.dataset[i] for i in range(2)])
    tokens = RECIPE.tokens(trainer.setup, batch, torch.Generator().manual_seed(0))
    assert torch.equal(tokens, trainer.setup.extra["uncond"].expand_as(tokens))
    trainer.setup.extra["dropout"] = 0.0
    kept = RECIPE.tokens(trainer.setup, batch, torch.Generator().manual_seed(0))
    assert (kept - tokens).abs().max() > 1e-3


# ------------------------------------------------------------------------------------------------
# video-file pairs

def _video(path: Path, frames: list[np.ndarray], fps: float) -> Path:
    import imageio.v2 as imageio

    with imageio.get_writer(path, fps=fps, codec="libx264", quality=10, macro_block_size=1,
                            ffmpeg_log_level="error") as writer:
        for f in frames:
            writer.append_data(f)
    return path


def _yaml(path: Path, **fields) -> Path:
    path.write_text(yaml.safe_dump(fields))
    return path


def test_video_pair_loads_and_mismatches_are_one_line_errors(mya_dir, clip, tmp_path, monkeypatch, capsys):
    import motion.cli

    folder = PassesFolder.open(clip)
    rgb = [np.rint(folder.read("rgb", i)[..., :3] * 255).astype(np.uint8) for i in folder.indices]
    write_passes(tmp_path / "bare", frames=4)  # no rgb pass: the video is the target
    _video(tmp_path / "clip.mp4", rgb, folder.fps)
    config = RECIPE.load_config(_yaml(tmp_path / "v.yaml", data=[{"passes": "bare", "video": "clip.mp4"}],
                                      passes=["normal"], model=str(mya_dir), resolution=64, output="out", steps=1))
    trainer = Trainer(RECIPE, config)
    target = (trainer.setup.dataset[2]["pixel_values"] + 1) / 2
    truth = torch.from_numpy(rgb[2]).permute(2, 0, 1) / 255.0
    assert (target - truth).abs().mean() < 0.03  # H.264 at quality 10
    assert (target - torch.from_numpy(rgb[0]).permute(2, 0, 1) / 255.0).abs().mean() > 0.003  # control: frame order
    capsys.readouterr()
    for name, frames, fps, message in (("short.mp4", rgb[:3], folder.fps, "has 3 frames"),
                                       ("fast.mp4", rgb, 2 * folder.fps, "fps")):
        _video(tmp_path / name, frames, fps)
        bad = _yaml(tmp_path / "bad.yaml", data=[{"passes": "bare", "video": name}], passes=["normal"],
                    model=str(mya_dir), resolution=64, output="out2", steps=1)
        assert motion.cli.main(["train", "make-your-anchor", str(bad)]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and name in err and message in err, err


@pytest.mark.parametrize("mode", ["full", "lora"])
def test_bf16_with_gradient_checkpointing_trains_validates_and_saves(mode, mya_dir, clip, tmp_path):
    """Through the command line in a fresh process (accelerate fixes the precision once per process)."""
    import os
    import subprocess
    import sys

    config = _yaml(tmp_path / "c.yaml", data=[str(clip)], passes=["normal"], model=str(mya_dir), resolution=64,
                   output="out", steps=2, batch_size=2, mode=mode, mixed_precision="bf16", gradient_checkpointing=True,
                   checkpoint_every=1, validate_every=2, validation_frames=1, validation_steps=1)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-m", "motion.cli", "train", "make-your-anchor", str(config)], env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    out = tmp_path / "out"
    assert (out / "validation" / "step-000002.png").is_file() and (out / "model" / "unet" / "config.json").is_file()
    assert len((out / "log.jsonl").read_text().splitlines()) == 2
    assert json.loads((out / "train.json").read_text())["config"]["gradient_checkpointing"] is True


# ------------------------------------------------------------------------------------------------
# pose perturbation

def test_perturb_adds_seeded_rotation_noise_to_every_joint_but_the_root(tmp_path):
    from _motion_io_util import random_motion
    from diffusion.methods.make_your_anchor.perturb import main, perturb
    from motion.io import read_motion
    from motion.rotations import axis_angle_to_matrix

    motion = random_motion("smplh", frames=40)
    a, b = perturb(motion, 5.0, seed=1), perturb(motion, 5.0, seed=1)
    np.testing.assert_array_equal(a.rotations, b.rotations)
    assert not np.allclose(perturb(motion, 5.0, seed=2).rotations, a.rotations)
    np.testing.assert_allclose(a.rotations[:, 0], motion.rotations[:, 0], atol=1e-9)
    np.testing.assert_array_equal(a.root_translation, motion.root_translation)
    # the relative rotation's angle: a 3D Gaussian of 5 degrees per axis has mean norm 5 * sqrt(8 / pi) = 8.0
    rel = axis_angle_to_matrix(a.rotations[:, 1:]) @ np.swapaxes(axis_angle_to_matrix(motion.rotations[:, 1:]), -1, -2)
    angle = np.degrees(np.arccos(np.clip((np.trace(rel, axis1=-2, axis2=-1) - 1) / 2, -1, 1)))
    assert 7.0 < angle.mean() < 9.0
    np.testing.assert_allclose(axis_angle_to_matrix(perturb(motion, 0.0).rotations),
                               axis_angle_to_matrix(motion.rotations), atol=1e-9)
    from motion.io import write_motion

    write_motion(motion, tmp_path / "m.npz")
    assert main([str(tmp_path / "m.npz"), str(tmp_path / "p.npz"), "--seed", "1"]) == 0
    np.testing.assert_allclose(read_motion(tmp_path / "p.npz").rotations, a.rotations, atol=1e-6)
    assert main([str(tmp_path / "m.npz"), str(tmp_path / "p.npz")]) == 2   # exists, no --force


def test_pose_perturbation_conditions_on_the_perturbed_passes_with_its_probability(mya_dir, clip, tmp_path):
    import shutil

    perturbed = Path(shutil.copytree(clip, tmp_path / "perturbed"))
    import imageio.v2 as imageio

    for f in (perturbed / "normal").iterdir():   # stands in for a mesh rendered from a perturbed motion
        imageio.imwrite(f, 255 - imageio.imread(f))
    entry = {"passes": str(clip), "perturbed": str(perturbed)}
    results = {}
    for chance in (0.0, 1.0):
        trainer = Trainer(RECIPE, _config(mya_dir, clip, tmp_path / f"o{chance}", data=[entry],
                                          pose_perturbation=chance))
        item = trainer.setup.dataset[1]
        assert not torch.equal(item["conditioning_pixel_values"], item["perturbed_conditioning_pixel_values"])
        batch = default_collate([trainer.setup.dataset[i] for i in range(2)])
        seen = []
        net = trainer.setup.trainable["controlnet"]
        hook = net.register_forward_pre_hook(lambda m, a, kw: seen.append(kw["controlnet_cond"]), with_kwargs=True)
        with torch.no_grad():
            RECIPE.loss(trainer.setup, batch, torch.Generator().manual_seed(0))
        hook.remove()
        results[chance] = seen[0]
        expected = batch["perturbed_conditioning_pixel_values" if chance else "conditioning_pixel_values"]
        assert torch.equal(seen[0], expected)
    assert not torch.equal(results[0.0], results[1.0])
    short = write_passes(tmp_path / "short", frames=2)
    from motion.errors import UserError

    with pytest.raises(UserError, match="render the same frames"):
        Trainer(RECIPE, _config(mya_dir, clip, tmp_path / "bad", data=[{"passes": str(clip), "perturbed": str(short)}]))


def test_actor_weight_weights_the_loss_by_the_mask_share_of_each_latent_cell(mya_dir, clip, tmp_path, monkeypatch):
    import diffusion.training.recipes.make_your_anchor as recipe

    trainer = Trainer(RECIPE, _config(mya_dir, clip, tmp_path / "out", actor_weight=3.0))
    mask = PassesFolder.open(clip).read("mask", 1)[..., 0]
    assert np.allclose(trainer.setup.dataset[1]["actor_mask"][0].numpy(), mask, atol=1 / 255)
    batch = default_collate([trainer.setup.dataset[i] for i in range(2)])
    seen = {}
    target_of = recipe.diffusion_target
    monkeypatch.setattr(recipe, "diffusion_target", lambda *a: seen.setdefault("target", target_of(*a)))
    hook = trainer.setup.trainable["unet"].register_forward_hook(lambda m, a, out: seen.update(pred=out[0]))
    with torch.no_grad():
        loss = RECIPE.loss(trainer.setup, batch, torch.Generator().manual_seed(0)).item()
    hook.remove()
    error = ((seen["pred"].float() - seen["target"].float()) ** 2).numpy()          # (B, C, h, w)
    cells = error.shape[-1]
    masks = batch["actor_mask"][:, 0].numpy()                                     # (B, H, W)
    block = masks.shape[-1] // cells
    share = masks.reshape(len(masks), cells, block, cells, block).mean(axis=(2, 4))[:, None]
    weight = 1.0 + 3.0 * share
    assert 0 < share.mean() < 1                                                   # the clip's actor covers part of it
    assert loss == pytest.approx(float((error * weight).mean() / weight.mean()), rel=1e-5)
    assert loss != pytest.approx(float(error.mean()), rel=1e-3)                   # control: the plain MSE differs
    plain = Trainer(RECIPE, _config(mya_dir, clip, tmp_path / "plain"))
    assert "actor_mask" not in plain.setup.dataset[1]


@pytest.mark.parametrize("dropout", [0.0, 0.1])
def test_validation_samples_at_scale_1_and_without_guidance_when_the_unconditional_branch_is_untrained(
        dropout, mya_dir, clip, tmp_path, monkeypatch):
    seen = []
    run = METHOD.run
    monkeypatch.setattr(METHOD, "run", lambda passes, s, c: (seen.append(s), run(passes, s, c))[1])
    config = _config(mya_dir, clip, tmp_path / "out", reference_dropout=dropout, validation_frames=1,
                     validation_steps=1)
    trainer = Trainer(RECIPE, config)
    image = RECIPE.validate(config, trainer.setup)
    assert image.shape == (1, 128, 64, 3)
    assert seen[0].controlnet_scale == 1.0
    assert seen[0].cfg == (1.0 if dropout == 0 else METHOD.settings().cfg) and METHOD.settings().cfg > 1
