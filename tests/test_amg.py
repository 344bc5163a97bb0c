"""AMG (``--method amg``) on the tiny models: the 8-channel conv_in and LoRA start as no-ops, only they
train, the avatar latent reaches both guidance branches, the adapter file round-trips and refuses other
bases and passes in one line, and with a zero avatar latent and no LoRA the method is diffusers' own
text-to-video / AnimateDiff denoising."""

from __future__ import annotations

import json

import pytest
import torch

from _diffusion_util import one_thread, tiny_dir  # noqa: F401  (fixtures)
from diffusion.io.passes import PassesFolder
from diffusion.io.synthetic_passes import PASS_NAMES, write_passes
from diffusion.loaders.lora import lora_layers, lora_parameters
from diffusion.methods.amg import METHOD
from diffusion.methods.amg import model as amg
from motion.errors import UserError

AVATAR_CLIP = PASS_NAMES + ("avatar",)   # the synthetic figure with an avatar pass
pytestmark = [pytest.mark.usefixtures("one_thread"), pytest.mark.filterwarnings("ignore:amg without --lora")]
BASES = ("modelscope", "animatediff")


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return write_passes(tmp_path_factory.mktemp("amg") / "clip", frames=4, passes=AVATAR_CLIP)


def _base(tiny_dir, base):
    return amg.load_base(base, str(tiny_dir))


def _inputs(frames=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(1, 4, frames, 8, 8, generator=g), torch.randn(1, 4, frames, 8, 8, generator=g),
            torch.randn(1, 16, 32, generator=g))


def _call(unet, x, avatar, text, t=500):
    from diffusion.loaders.video_unet import video_context

    inp = x if avatar is None else torch.cat([x, avatar], dim=1)
    return unet(inp, t, encoder_hidden_states=video_context(unet, text, x.shape[2])).sample


@pytest.mark.parametrize("base", BASES)
def test_expanded_conv_in_copies_the_old_one_and_ignores_any_avatar_at_init(tiny_dir, base):
    unet = _base(tiny_dir, base).unet
    x, avatar, text = _inputs()
    reference = _call(unet, x, None, text)
    old = unet.conv_in
    amg.expand_conv_in(unet)
    new = unet.conv_in
    assert (new.in_channels, new.out_channels, new.kernel_size, new.padding) == (8, old.out_channels,
                                                                                 old.kernel_size, old.padding)
    assert torch.equal(new.weight[:, :4], old.weight) and torch.equal(new.bias, old.bias)
    assert not new.weight[:, 4:].any()
    # The zero half adds exact zeros, but an 8-channel convolution may sum in another order than a 4-channel
    # one on other CPUs (measured: identical here); any avatar latent counts for nothing
    for scale in (1.0, 100.0):
        torch.testing.assert_close(_call(unet, x, scale * avatar, text), reference, rtol=0, atol=1e-5)
    with torch.no_grad():
        new.weight[:, 4:] = 0.05
    assert (_call(unet, x, avatar, text) - reference).abs().max() > 1e-3     # control: once trained it reads it


@pytest.mark.parametrize("base", BASES)
def test_lora_is_on_every_spatial_and_temporal_attention_and_a_no_op_at_init(tiny_dir, base):
    unet = _base(tiny_dir, base).unet
    x, avatar, text = _inputs()
    amg.expand_conv_in(unet)
    before = _call(unet, x, avatar, text)
    projections = {n for n, m in unet.named_modules() if isinstance(m, torch.nn.Linear) and n.endswith(amg.TARGETS)}
    amg.add_lora(unet, list(amg.TARGETS), rank=4)
    layers = {n for n, m in unet.named_modules() if m in lora_layers(unet)}
    assert layers == projections and len(layers) % 4 == 0
    temporal = "temp_attentions" if base == "modelscope" else "motion_modules"
    assert any(temporal in n for n in layers) and any(".attentions." in n for n in layers)
    layer = lora_layers(unet)[0]
    assert layer.r["default"] == 4 and layer.scaling["default"] == 1.0
    assert not layer.lora_B["default"].weight.any() and layer.lora_A["default"].weight.std() > 0
    # B = 0: LoRA adds an exact zero as its own op (measured identical here; the loaders' test allows 1e-5)
    torch.testing.assert_close(_call(unet, x, avatar, text), before, rtol=0, atol=1e-5)
    trainable = amg.make_trainable(unet)
    names = {n for n, p in unet.named_parameters() if p.requires_grad}
    assert names == {n for n, _ in unet.named_parameters() if "lora_" in n or n.startswith("conv_in.")}
    assert len(trainable) == len(names) and {"conv_in.weight", "conv_in.bias"} <= names
    with torch.no_grad():
        for p in lora_parameters(unet):
            p.add_(0.05)
    assert (_call(unet, x, avatar, text) - before).abs().max() > 1e-3


def _random_adapter(tiny_dir, base, path, seed=3):
    unet = _base(tiny_dir, base).unet
    amg.amg_unet(unet)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in lora_parameters(unet) + list(unet.conv_in.parameters()):
            p.add_(torch.randn(p.shape, generator=g) * 0.05)
    amg.save_adapter(unet, path, {"base": base, "model": str(tiny_dir), "pass": "avatar"})
    return unet


@pytest.mark.parametrize("base", BASES)
def test_adapter_file_reloads_to_identical_outputs_and_says_what_it_was_made_for(tiny_dir, base, tmp_path):
    from safetensors import safe_open

    path = tmp_path / "amg.safetensors"
    tuned = _random_adapter(tiny_dir, base, path)
    x, avatar, text = _inputs()
    expected = _call(tuned, x, avatar, text)
    fresh = _base(tiny_dir, base).unet
    meta = amg.apply_adapter(fresh, path)
    assert torch.equal(_call(fresh, x, avatar, text), expected)
    assert (meta["base"], meta["model"], meta["pass"], meta["rank"], meta["in_channels"]) == (
        base, str(tiny_dir), "avatar", 4, 8)
    with safe_open(str(path), framework="pt") as f:
        keys = set(f.keys())
    assert set(amg.CONV_KEYS) <= keys and all(k.startswith("unet.") for k in keys)
    assert all(".lora_A." in k or ".lora_B." in k for k in keys - set(amg.CONV_KEYS))
    assert amg.check_adapter(path, base, str(tiny_dir), "avatar")["base"] == base
    other = BASES[1 - BASES.index(base)]
    with pytest.raises(UserError) as err:
        amg.check_adapter(path, other, str(tiny_dir), "avatar")
    message = str(err.value)
    assert "\n" not in message and f"base {base} " in message and f"base {other} " in message
    with pytest.raises(UserError, match="'avatar' pass; this run uses .* on the 'mesh' pass"):
        amg.check_adapter(path, base, str(tiny_dir), "mesh")


def _zero_avatar(monkeypatch):
    from diffusion.methods.amg import denoiser

    def zeros(run, frames):
        h, w = run.latent_size
        return torch.zeros(len(run.indices), 4, h, w, dtype=run.components.unet.dtype)

    monkeypatch.setattr(denoiser, "avatar_latents", zeros)


@pytest.mark.parametrize("base", BASES)
def test_zero_avatar_without_lora_is_diffusers_own_video_pipeline(tiny_dir, clip, base, monkeypatch):
    from diffusers import AnimateDiffPipeline, DDIMScheduler, TextToVideoSDPipeline

    from diffusion.loaders.video_unet import to_video
    from diffusion.sampling.noise import initial_noise

    _zero_avatar(monkeypatch)
    settings = METHOD.settings(prompt="a dancer on a beach", model=str(tiny_dir), base=base, steps=4)
    got = METHOD.run(PassesFolder.open(clip), settings, METHOD.load(settings))
    assert got.record["sampling"]["timesteps"] == [751, 501, 251, 1]        # DDIM leading, offset 1
    c = _base(tiny_dir, base)
    parts = dict(vae=c.vae, text_encoder=c.text_encoder, tokenizer=c.tokenizer, unet=c.unet,
                 scheduler=DDIMScheduler.from_config(c.scheduler.config))
    pipe = TextToVideoSDPipeline(**parts) if base == "modelscope" else AnimateDiffPipeline(**parts, motion_adapter=None)
    pipe.set_progress_bar_config(disable=True)
    noise = initial_noise(4, (4, 8, 8), torch.Generator().manual_seed(0))

    def reference(prompt, cfg):
        out = pipe(prompt, num_frames=4, height=64, width=64, num_inference_steps=4, guidance_scale=cfg,
                   latents=to_video(noise).clone(), output_type="latent", return_dict=False)[0]
        return out[0].permute(1, 0, 2, 3)

    expected = reference("a dancer on a beach", 3.0)
    # same operations in the same order except the 8-channel conv_in, whose zero half may sum in another
    # order on other CPUs (measured: bit-identical here); another prompt moves the latents by 0.8
    torch.testing.assert_close(got.latents, expected, rtol=0, atol=1e-5)
    assert (reference("a red car", 3.0) - expected).abs().max() > 1e-2


def test_guidance_gives_the_avatar_latent_to_both_branches(tiny_dir, clip):
    from diffusion.loaders.video_unet import from_video

    settings = METHOD.settings(prompt="a person", model=str(tiny_dir), steps=2, max_frames=3)
    c = METHOD.load(settings)
    seen = []
    forward = c.unet.forward

    def spy(sample, *args, **kwargs):
        seen.append((sample.clone(), kwargs["encoder_hidden_states"].clone()))
        return forward(sample, *args, **kwargs)

    c.unet.forward = spy
    run = METHOD.run(PassesFolder.open(clip), settings, c)
    assert run.record["sampling"]["unet_evaluations"] == 2 * 2 * 3          # steps x branches x frames
    from diffusion.io.conditioning import Framing, load_condition
    from diffusion.sampling.latents import encode_images

    framing = Framing.cover(PassesFolder.open(clip).resolution)
    avatar = encode_images(c, load_condition(PassesFolder.open(clip), ["avatar"], [0, 1, 2], framing, 3).frames)
    assert avatar.abs().max() > 0.1
    for sample, context in seen:
        assert sample.shape[:3] == (2, 8, 3)                                # [uncond, cond] x [x_t, avatar]
        for branch in sample:
            assert torch.equal(from_video(branch[None, 4:]), avatar)
        assert not torch.equal(context[0], context[1])                      # only the text differs


def test_generate_cli_with_an_adapter_and_a_caption_from_meta(tiny_dir, clip, tmp_path, monkeypatch, capsys):
    import motion.cli

    monkeypatch.setenv("AVATARCINE_CACHE", str(tiny_dir.parent))
    captioned = tmp_path / "clip"
    import shutil

    shutil.copytree(clip, captioned)
    meta = json.loads((captioned / "meta.json").read_text())
    meta["caption"] = "two people dancing in a park"
    (captioned / "meta.json").write_text(json.dumps(meta))
    adapter = tmp_path / "amg.safetensors"
    _random_adapter(tiny_dir, "modelscope", adapter)
    assert motion.cli.main(["generate", str(captioned), "--method", "amg", "--model", str(tiny_dir), "--lora",
                            str(adapter), "--steps", "2", "--window", "2", "--overlap", "1", "-o",
                            str(tmp_path / "out")]) == 0
    record = json.loads((tmp_path / "out" / "run.json").read_text())
    assert record["amg"]["prompt"] == "two people dancing in a park" and record["models"]["lora"] == str(adapter)
    assert record["sampling"]["windows"] == [[0, 2], [1, 3], [2, 4]]
    assert len(list((tmp_path / "out" / "frames").iterdir())) == 4
    capsys.readouterr()
    code = motion.cli.main(["generate", str(captioned), "--method", "amg", "--base", "animatediff", "--model",
                            str(tiny_dir), "--lora", str(adapter), "-o", str(tmp_path / "bad")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "base modelscope" in err and "base animatediff" in err
    assert not (tmp_path / "bad").exists()


def test_animatediff_windows_longer_than_the_motion_adapter_are_refused(tiny_dir, tmp_path):
    clip = write_passes(tmp_path / "long", frames=33, size=(16, 16), passes=("avatar",))
    settings = METHOD.settings(prompt="x", model=str(tiny_dir), base="animatediff", window=None, steps=1)
    with pytest.raises(UserError, match="--window: 33 frames in one window; the motion adapter takes at most 32"):
        METHOD.run(PassesFolder.open(clip), settings, METHOD.load(settings))


def test_settings_defaults_follow_the_authors():
    from diffusion.loaders.video_unet import ANIMATEDIFF_ADAPTER
    from diffusion.methods.amg import ANIMATEDIFF_ADAPTER as LIGHT

    s = METHOD.settings(prompt="x")
    assert (s.steps, s.cfg, s.scheduler, s.eta, s.window, s.overlap, s.condition) == (20, 3.0, "ddim", 0.0, 16, 4,
                                                                                        "avatar")
    assert LIGHT == ANIMATEDIFF_ADAPTER
    with pytest.raises(UserError, match="--overlap"):
        METHOD.settings(prompt="x", window=4, overlap=4)
    with pytest.raises(UserError, match="--base"):
        METHOD.settings(prompt="x", base="svd")
