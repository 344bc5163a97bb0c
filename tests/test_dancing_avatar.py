"""Dancing Avatar (``--method dancing-avatar``): equal to diffusers' ControlNet pipeline with its modules off,
zero-initialised modules change nothing, the inter-frame condition is the previous (or re-anchored) frame,
and outside the grown actor mask every frame is the background plate exactly."""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np
import pytest
import torch

from _diffusion_util import one_thread, run_method, tiny_dir  # noqa: F401  (fixtures)
from diffusion.io.conditioning import Framing, load_condition, load_mask
from diffusion.io.passes import PassesFolder
from diffusion.io.synthetic_passes import write_passes
from diffusion.loaders.schedulers import make_scheduler
from diffusion.methods.dancing_avatar import METHOD
from diffusion.methods.dancing_avatar.sampling import grow
from diffusion.sampling.noise import initial_noise
from motion.errors import UserError

pytestmark = pytest.mark.usefixtures("one_thread")

PROMPT, NEGATIVE = "a dancer in a red dress", "blurry"


@pytest.fixture(scope="module")
def passes(tmp_path_factory):
    return PassesFolder.open(write_passes(tmp_path_factory.mktemp("passes") / "clip", frames=5))


def _settings(tiny_dir, **kw):
    base = dict(prompt=PROMPT, negative_prompt=NEGATIVE, model=str(tiny_dir), steps=3, cfg=5.0, seed=3, max_frames=3)
    base.update(kw)
    return METHOD.settings(**base)


@pytest.fixture(scope="module")
def components(tiny_dir):
    return METHOD.load(_settings(tiny_dir))


def _run(passes, components, settings):
    return run_method(METHOD, passes, components, settings)


def _plate(tmp_path, size=(64, 64)) -> tuple[np.ndarray, str]:
    w, h = size
    plate = np.zeros((h, w, 3), np.uint8)
    plate[:, :, 0] = np.linspace(0, 255, w).astype(np.uint8)[None]
    plate[:, :, 1] = np.linspace(40, 200, h).astype(np.uint8)[:, None]
    plate[:, :, 2] = 90
    path = tmp_path / f"bg_{w}x{h}.png"
    cv2.imwrite(str(path), cv2.cvtColor(plate, cv2.COLOR_RGB2BGR))
    return plate, str(path)


@pytest.mark.parametrize("scheduler,shared", [("dpm", 0.0), ("ddim", 0.0), ("dpm", 1.0)])
def test_modules_off_equals_diffusers_controlnet_pipeline(passes, components, tiny_dir, scheduler, shared):
    """No inter-frame module, no LoRA, no background: frame k is diffusers' pipeline on frame k's pose and
    noise (its own; by default frame 0's)."""
    from diffusers import StableDiffusionControlNetPipeline

    s = _settings(tiny_dir, scheduler=scheduler, shared_noise=shared)
    assert METHOD.settings().scheduler == "dpm" and METHOD.settings().steps == 25 and METHOD.settings().cfg == 7.5
    ours = _run(passes, components, s)
    c = components
    pose = load_condition(passes, ["skeleton"], passes.indices[:3], Framing.cover(passes.resolution), 3)
    noise = initial_noise(3, (4, 8, 8), torch.Generator().manual_seed(3))
    noise = noise[:1].expand(3, -1, -1, -1) if shared else noise
    pipe = StableDiffusionControlNetPipeline(
        vae=c.vae, text_encoder=c.text_encoder, tokenizer=c.tokenizer, unet=c.unet, controlnet=c.controlnets,
        scheduler=make_scheduler(scheduler, c.scheduler.config), safety_checker=None, feature_extractor=None,
        requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    for k in range(3):
        kwargs = dict(image=[pose.window(k, k + 1)], negative_prompt=NEGATIVE, num_inference_steps=3,
                      guidance_scale=5.0, height=64, width=64, latents=noise[k:k + 1])
        latents = pipe(PROMPT, output_type="latent", **kwargs).images
        assert torch.equal(ours.latents[k:k + 1], latents.cpu())  # bit-identical
        frame = (pipe(PROMPT, output_type="np", **kwargs).images[0] * 255).round().astype(np.uint8)
        # The same latents, decoded in a batch of 3 (ours) and of 1 (the pipeline): the VAE's kernels round
        # differently by batch size, so a pixel may differ by one level (measured: 1 of 12288 values).
        difference = np.abs(ours.frames[k].astype(int) - frame)
        assert difference.max() <= 1 and (difference > 0).mean() < 1e-3
    assert ours.record["sampling"]["windows"] == [(0, 1), (1, 2), (2, 3)]


def _interframe_inputs(components) -> tuple[list, object]:
    seen = []
    module = components.extra["interframe"]
    hook = module.register_forward_pre_hook(lambda m, args, kw: seen.append(kw["controlnet_cond"][-1:].clone()),
                                            with_kwargs=True)
    return seen, hook


def test_untrained_interframe_module_changes_nothing_and_sees_the_previous_frame(passes, tiny_dir):
    from diffusion.loaders.controlnet import randomise_zero_convs

    plain = METHOD.load(_settings(tiny_dir))
    reference = _run(passes, plain, _settings(tiny_dir))
    s = _settings(tiny_dir, interframe="unet")
    c = METHOD.load(s)
    seen, hook = _interframe_inputs(c)
    try:
        fresh = _run(passes, c, s)
        assert torch.equal(fresh.latents, reference.latents)  # zero convolutions: residuals add exactly 0
        assert len(seen) == 2 * 3  # frames 1 and 2, 3 steps each; frame 0 has no previous frame
        for k in (1, 2):  # the condition of frame k is output frame k - 1 (same decode), in [0, 1]
            expected = torch.from_numpy(fresh.frames[k - 1]).permute(2, 0, 1)[None].float() / 255
            torch.testing.assert_close(seen[3 * (k - 1)], expected, rtol=0, atol=1.01 / 255)
        assert fresh.record["dancing_avatar"]["conditioned_on"] == [None, 0, 1]
        randomise_zero_convs(c.extra["interframe"], torch.Generator().manual_seed(0))
        trained = _run(passes, c, s)
    finally:
        hook.remove()
    assert torch.equal(trained.latents[0], reference.latents[0])  # frame 0 has no previous frame
    assert (trained.latents[1:] - reference.latents[1:]).abs().max() > 1e-3


def test_first_image_and_reanchoring(passes, tiny_dir, tmp_path):
    from diffusion.loaders.controlnet import randomise_zero_convs

    first, path = _plate(tmp_path, (96, 64))
    # independent noise: the tiny model's frames then differ enough that which frame conditions matters
    s = _settings(tiny_dir, interframe="unet", reanchor=2, first_image=path, max_frames=5, shared_noise=0.0)
    c = METHOD.load(s)
    randomise_zero_convs(c.extra["interframe"], torch.Generator().manual_seed(1), std=1.0)
    seen, hook = _interframe_inputs(c)
    try:
        out = _run(passes, c, s)
    finally:
        hook.remove()
    assert out.record["dancing_avatar"]["conditioned_on"] == ["first_image", 0, 0, 2, 0]
    framed = Framing.cover((96, 64), (64, 64)).image(first)  # cover + centre crop, like the passes
    image = lambda x: torch.from_numpy(np.ascontiguousarray(x)).permute(2, 0, 1)[None].float() / 255  # noqa: E731
    assert torch.equal(seen[0], image(framed))
    for k, source in ((2, 0), (3, 2), (4, 0)):
        torch.testing.assert_close(seen[3 * k], image(out.frames[source]), rtol=0, atol=1.01 / 255)
    without = _run(passes, c, dataclasses.replace(s, reanchor=None))
    assert without.record["dancing_avatar"]["conditioned_on"] == ["first_image", 0, 1, 2, 3]
    assert torch.equal(without.latents[:2], out.latents[:2])
    assert (without.latents[2:] - out.latents[2:]).abs().max() > 1e-3


def _lora_file(tiny_dir, path, generator=None):
    from diffusers import UNet2DConditionModel

    from diffusion.loaders.lora import add_lora, lora_parameters, save_lora

    targets = ["attn2.to_q", "attn2.to_k", "attn2.to_v", "attn2.to_out.0"]
    unet = add_lora(UNet2DConditionModel.from_pretrained(tiny_dir, subfolder="unet"), targets, rank=2)
    if generator is not None:
        with torch.no_grad():
            for p in lora_parameters(unet):
                p.copy_(torch.randn(p.shape, generator=generator) * 0.3)
    return save_lora(unet, path, {"rank": 2, "alpha": 2, "targets": targets})


def test_lora_at_initialisation_changes_nothing(passes, components, tiny_dir, tmp_path):
    reference = _run(passes, components, _settings(tiny_dir))
    zero = _lora_file(tiny_dir, tmp_path / "zero.safetensors")
    s = _settings(tiny_dir, lora=[str(zero)])
    assert torch.equal(_run(passes, METHOD.load(s), s).latents, reference.latents)
    random = _lora_file(tiny_dir, tmp_path / "random.safetensors", torch.Generator().manual_seed(0))
    for scales, differs in (((0.0,), False), ((1.0,), True)):
        s = _settings(tiny_dir, lora=[str(random)], lora_scale=scales)
        out = _run(passes, METHOD.load(s), s)
        assert bool((out.latents - reference.latents).abs().max() > 1e-3) == differs


def _far(passes, grown_by: int, frames: int = 3) -> np.ndarray:
    mask = load_mask(passes, passes.indices[:frames], Framing.cover(passes.resolution))
    return grow(mask, grown_by) == 0


@pytest.mark.parametrize("inpaint", ["blend", "unet"])
def test_outside_the_mask_every_frame_is_the_background(passes, components, tiny_dir, tmp_path, inpaint):
    plate, path = _plate(tmp_path)
    s = _settings(tiny_dir, background=path, inpaint=inpaint, interframe="unet")
    c = METHOD.load(s)
    out = _run(passes, c, s)
    outside, actor = _far(passes, 2), ~_far(passes, 0)
    for k in range(3):
        np.testing.assert_array_equal(out.frames[k][outside[k]], plate[outside[k]])
        assert np.abs(out.frames[k][actor[k]].astype(int) - plate[actor[k]]).mean() > 5  # the person is generated
    tight = _run(passes, c, dataclasses.replace(s, mask_grow=0))
    for k in range(3):
        np.testing.assert_array_equal(tight.frames[k][_far(passes, 0)[k]], plate[_far(passes, 0)[k]])


def test_first_frame_background_is_shared_by_every_frame(passes, components, tiny_dir):
    s = _settings(tiny_dir, background="first")
    out = _run(passes, components, s)
    outside = _far(passes, 2)
    reference = _run(passes, components, _settings(tiny_dir))
    for k in (1, 2):
        both = outside[k] & outside[0]
        np.testing.assert_array_equal(out.frames[k][both], out.frames[0][both])
    # the plate is not frame 0 as generated: the person was inpainted away inside its mask
    region = ~_far(passes, 8 + 2)[0]
    assert np.abs(out.frames[1][region & outside[1]].astype(int) - reference.frames[0][region & outside[1]]).mean() > 2


def test_background_of_another_size_is_framed_like_the_passes(passes, components, tiny_dir, tmp_path):
    plate, _ = _plate(tmp_path)
    double = np.repeat(np.repeat(plate, 2, 0), 2, 1)            # 128 x 128: area-downscaled back to plate exactly
    wide = np.concatenate([np.full((128, 32, 3), 255, np.uint8), double, np.zeros((128, 32, 3), np.uint8)], 1)
    outside = _far(passes, 2)
    for name, image in (("double", double), ("wide", wide)):   # 192 x 128: covered to 96 x 64, centre 64 kept
        path = tmp_path / f"{name}.png"
        cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
        out = _run(passes, components, _settings(tiny_dir, background=str(path), max_frames=1))
        np.testing.assert_array_equal(out.frames[0][outside[0]], plate[outside[0]])


def test_bad_inputs_are_one_line_errors(passes, tiny_dir, tmp_path, monkeypatch, capsys):
    from motion.cli import main

    monkeypatch.setenv("AVATARCINE_CACHE", str(tiny_dir.parent))
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a png")
    base = ["generate", str(passes.root), "--method", "dancing-avatar", "--model", "tiny", "--prompt", "x",
            "--steps", "1", "-o", str(tmp_path / "out")]
    cases = [(["--background", str(broken)], f"--background: {broken}: missing or unreadable background image"),
             (["--background", "plate"], "--background: dancing-avatar keeps one background"),
             (["--first-image", str(tmp_path / "none.png"), "--interframe", "unet"], "--first-image: "),
             (["--first-image", str(broken)], "--first-image: conditions the inter-frame module"),
             (["--lora", str(tmp_path / "none.safetensors")], "--lora: "),
             (["--lora-scale", "1", "2"], "--lora-scale: give 1 or 0 values"),
             (["--inpaint", "paint"], "--inpaint: 'paint' is not one of blend, unet")]
    for extra, message in cases:
        assert main([*base, *extra]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith(f"avatarcine: error: {message}") and "\n" not in err, err
    assert not (tmp_path / "out").exists()
    assert main([*base, "--max-frames", "2", "--interframe", "unet", "--reanchor", "0"]) == 0
    assert sorted(p.name for p in (tmp_path / "out" / "frames").iterdir()) == ["000000.png", "000001.png"]


def test_fixed_background_on_the_inpainting_unet_equals_diffusers_inpaint_pipeline(passes, tiny_dir, tmp_path):
    """``--inpaint unet``, no module or LoRA: frame k's latents are those of diffusers'
    ``StableDiffusionControlNetInpaintPipeline`` given B, frame k's generated latent cells as the mask and
    the same noise. The pipeline encodes the masked plate with a posterior *sample*; ours takes the mean
    (deterministic), so the pipeline's encoder is given the mean too (``_encode_vae_image``), of a contiguous
    copy: the pipeline's masked image is a channels-last view (``numpy_to_pt`` transposes), on which the
    VAE's convolutions pick other kernels (measured: 3e-6 apart in the latents, 3e-5 after 3 steps)."""
    from diffusers import StableDiffusionControlNetInpaintPipeline
    from PIL import Image

    plate, path = _plate(tmp_path)
    s = _settings(tiny_dir, background=path, inpaint="unet", max_frames=2, shared_noise=0.0)
    c = METHOD.load(s)
    ours = _run(passes, c, s)
    masks = grow(load_mask(passes, passes.indices[:2], Framing.cover(passes.resolution)), 2)
    from diffusion.sampling.background import latent_keep

    cells = 1 - latent_keep(masks, 8, torch.device("cpu"))                 # (2, 1, 8, 8) generated cells
    pose = load_condition(passes, ["skeleton"], passes.indices[:2], Framing.cover(passes.resolution), 3)
    noise = initial_noise(2, (4, 8, 8), torch.Generator().manual_seed(3))
    pipe = StableDiffusionControlNetInpaintPipeline(
        vae=c.vae, text_encoder=c.text_encoder, tokenizer=c.tokenizer, unet=c.extra["inpainting_unet"],
        controlnet=c.controlnets, scheduler=make_scheduler("dpm", c.scheduler.config), safety_checker=None,
        feature_extractor=None, requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    pipe._encode_vae_image = lambda image, generator: (c.vae.encode(image.contiguous()).latent_dist.mean
                                                       * c.vae.config.scaling_factor)
    for k in range(2):
        pixels = cells[k, 0].repeat_interleave(8, 0).repeat_interleave(8, 1).numpy()
        mask = Image.fromarray((pixels * 255).astype(np.uint8))
        latents = pipe(PROMPT, image=Image.fromarray(plate), mask_image=mask, control_image=[pose.window(k, k + 1)],
                       controlnet_conditioning_scale=[1.0],  # the inpainting pipeline's default is 0.5
                       negative_prompt=NEGATIVE, num_inference_steps=3, guidance_scale=5.0, height=64, width=64,
                       latents=noise[k:k + 1], output_type="latent").images
        assert torch.equal(ours.latents[k:k + 1], latents.cpu())  # bit-identical
    assert not torch.equal(ours.latents[0], ours.latents[1])


def test_two_loras_act_together_each_at_its_scale(passes, components, tiny_dir, tmp_path):
    clothes = _lora_file(tiny_dir, tmp_path / "clothes.safetensors", torch.Generator().manual_seed(1))
    face = _lora_file(tiny_dir, tmp_path / "face.safetensors", torch.Generator().manual_seed(2))

    def run(files, scales):
        s = _settings(tiny_dir, lora=[str(f) for f in files], lora_scale=scales, max_frames=1)
        return _run(passes, METHOD.load(s), s).latents

    alone = run([clothes], [0.7])
    assert torch.equal(run([clothes, face], [0.7, 0.0]), alone)  # a zero scale removes exactly that LoRA
    both = run([clothes, face], [0.7, 1.0])
    assert (both - alone).abs().max() > 1e-3 and (both - run([face], [1.0])).abs().max() > 1e-3


def test_a_lora_file_in_diffusers_format_loads_too(passes, components, tiny_dir, tmp_path):
    """A file with diffusers' keys and no avatarcine metadata (e.g. from diffusers' training scripts) goes
    through diffusers' own loader and acts as the same LoRA with our metadata does."""
    from safetensors.torch import load_file, save_file

    ours = _lora_file(tiny_dir, tmp_path / "ours.safetensors", torch.Generator().manual_seed(3))
    plain = tmp_path / "plain.safetensors"
    save_file(load_file(ours), str(plain))  # the same tensors, no metadata
    a, b = (_run(passes, METHOD.load(s), s).latents
            for s in (_settings(tiny_dir, lora=[str(p)], max_frames=1) for p in (ours, plain)))
    torch.testing.assert_close(a, b, rtol=0, atol=1e-6)
    assert (a - _run(passes, components, _settings(tiny_dir, max_frames=1)).latents).abs().max() > 1e-3
    other = tmp_path / "other.safetensors"
    save_file({"unet.nowhere.lora_A.weight": torch.zeros(2, 3)}, str(other))
    with pytest.raises(UserError, match="not a LoRA for this UNet"):
        METHOD.load(_settings(tiny_dir, lora=[str(other)]))
