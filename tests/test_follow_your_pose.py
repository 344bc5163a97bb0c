"""Follow Your Pose at inference: the pose encoder against diffusers' adapter pipeline, the zero-init
identities of both stages, the cross-frame and temporal attention, the long-video window rule, the
stage-2 weights file, and bad input."""

from __future__ import annotations

import copy
import shutil

import numpy as np
import pytest
import torch

from _diffusion_util import one_thread, run_method, tiny_dir  # noqa: F401  (fixtures)
from diffusion.attention.frames import frame_attention_rules
from diffusion.attention.install import FrameInfo, processors
from diffusion.io.conditioning import Framing, load_condition
from diffusion.io.passes import PassesFolder
from diffusion.io.synthetic_passes import write_passes
from diffusion.loaders.schedulers import make_scheduler
from diffusion.methods.follow_your_pose import METHOD
from diffusion.methods.follow_your_pose.inflate import (TEMPORAL, TemporalAttention, inflate, load_temporal,
                                                        save_temporal, transformer_blocks)
from motion.errors import UserError

pytestmark = pytest.mark.usefixtures("one_thread")

PROMPT, NEGATIVE = "a dancer in a red dress", "blurry"


@pytest.fixture(scope="module")
def passes(tmp_path_factory):
    return PassesFolder.open(write_passes(tmp_path_factory.mktemp("passes") / "clip", frames=6))


def _settings(tiny_dir, **kw):
    base = dict(prompt=PROMPT, negative_prompt=NEGATIVE, model=str(tiny_dir), steps=3, cfg=5.0, seed=3, window=None)
    base.update(kw)
    return METHOD.settings(**base)


@pytest.fixture(scope="module")
def components(tiny_dir):
    return METHOD.load(_settings(tiny_dir))


def _run(passes, components, settings):
    return run_method(METHOD, passes, components, settings)


def _pipeline_kwargs(passes, frames):
    return dict(negative_prompt=[NEGATIVE] * frames, num_inference_steps=3, guidance_scale=5.0, height=64, width=64,
                generator=torch.Generator().manual_seed(3))


def _randomise(module: torch.nn.Module, seed: int, std: float = 0.2) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * std)


def test_per_frame_equals_diffusers_adapter_pipeline(passes, components, tiny_dir):
    from diffusers import StableDiffusionAdapterPipeline

    c = components
    ours = _run(passes, c, _settings(tiny_dir, max_frames=4, pose_scale=0.8))
    skeleton = load_condition(passes, ["skeleton"], passes.indices[:4], Framing.cover(passes.resolution), 3)
    pipe = StableDiffusionAdapterPipeline(vae=c.vae, text_encoder=c.text_encoder, tokenizer=c.tokenizer, unet=c.unet,
                                          adapter=c.extra["pose_encoder"],
                                          scheduler=make_scheduler("ddim", c.scheduler.config), safety_checker=None,
                                          feature_extractor=None, requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    kwargs = dict(image=skeleton.window(0, 4), adapter_conditioning_scale=0.8, **_pipeline_kwargs(passes, 4))
    latents = pipe([PROMPT] * 4, output_type="latent", **kwargs).images
    assert torch.equal(ours.latents, latents.cpu())  # bit-identical
    kwargs["generator"] = torch.Generator().manual_seed(3)
    frames = pipe([PROMPT] * 4, output_type="np", **kwargs).images
    # Same latents; the pipeline's (deprecated) decode multiplies by 1 / scaling_factor where ours (and
    # StableDiffusionPipeline's) divides, so a pixel may round to the neighbouring 8-bit value.
    diff = np.abs(ours.frames.astype(int) - (frames * 255).round().astype(int))
    assert diff.max() <= 1 and diff.mean() < 0.05, (diff.max(), diff.mean())
    # the (random) pose encoder acts: without its features the result differs
    off = _run(passes, c, _settings(tiny_dir, max_frames=4, pose_scale=0.0))
    assert (off.latents - ours.latents).abs().max() > 1e-3


def test_zeroed_pose_encoder_restores_the_base_model(passes, components, tiny_dir, tmp_path):
    from diffusers import StableDiffusionPipeline

    from diffusion.loaders.adapter import new_adapter, zero_adapter_outputs

    c = components
    encoder = new_adapter(c.unet)  # 2 residual blocks per level, downscale 8
    zero_adapter_outputs(encoder)
    encoder.save_pretrained(tmp_path / "zero")
    s = _settings(tiny_dir, max_frames=3, pose_encoder=str(tmp_path / "zero"))
    zeroed = METHOD.load(s)
    features = zeroed.extra["pose_encoder"](torch.rand(3, 3, 64, 64))
    assert all(torch.equal(f, torch.zeros_like(f)) for f in features)
    ours = _run(passes, zeroed, s)
    pipe = StableDiffusionPipeline(vae=c.vae, text_encoder=c.text_encoder, tokenizer=c.tokenizer, unet=c.unet,
                                   scheduler=make_scheduler("ddim", c.scheduler.config), safety_checker=None,
                                   feature_extractor=None, requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    base = pipe([PROMPT] * 3, output_type="latent", **_pipeline_kwargs(passes, 3)).images
    assert torch.equal(ours.latents, base.cpu())
    # control: the encoder with its output layers not zeroed moves the result
    trained_like = METHOD.load(_settings(tiny_dir))
    assert (_run(passes, trained_like, s).latents - base).abs().max() > 1e-3


def _unet_call(unet, x, frames, context):
    t = torch.tensor(500)
    with processors(unet, frame_attention_rules("cross-frame")):
        return unet(x, t, encoder_hidden_states=context, cross_attention_kwargs=FrameInfo(frames).kwargs(),
                    return_dict=False)[0]


@pytest.fixture(scope="module")
def unet_inputs(components):
    g = torch.Generator().manual_seed(0)
    return torch.randn(4, 4, 8, 8, generator=g), torch.randn(4, 16, 32, generator=g)


@torch.no_grad()
def test_inflated_unet_at_init_equals_cross_frame_only(components, unet_inputs):
    base = components.unet
    inflated = inflate(copy.deepcopy(base))
    blocks = transformer_blocks(inflated)
    assert blocks and all(isinstance(getattr(b, TEMPORAL), TemporalAttention) for b in blocks)
    x, context = unet_inputs
    assert torch.equal(_unet_call(inflated, x, 4, context), _unet_call(base, x, 4, context))
    # control: with a non-zero temporal output the inflated UNet differs
    for b in blocks:
        _randomise(getattr(b, TEMPORAL).attn.to_out, 1)
    assert (_unet_call(inflated, x, 4, context) - _unet_call(base, x, 4, context)).abs().max() > 1e-3


@torch.no_grad()
def test_cross_frame_attention_sees_frame_0_and_the_previous_frame(components, unet_inputs):
    """One self-attention layer: frame 3 attends to frames 0 and 2 only, so moving frame 1 changes
    frames 1 and 2 and nothing else. Through the whole inflated UNet at init attention is causal
    (frame i depends on frames 0..i); a trained (non-zero) temporal attention looks both ways."""
    from diffusion.attention.frames import CrossFrameAttention

    attn = transformer_blocks(components.unet)[0].attn1
    x = torch.randn(2 * 4, 5, attn.to_q.in_features, generator=torch.Generator().manual_seed(1))  # 2 CFG groups
    moved = x.clone()
    moved[1] += torch.linspace(-1, 1, x.shape[-1])
    moved[4 + 1] += torch.linspace(-1, 1, x.shape[-1])
    proc = CrossFrameAttention()
    a, b = (proc(attn, y, frame_info=FrameInfo(4)).view(2, 4, 5, -1) for y in (x, moved))
    changed = [(a[:, f] - b[:, f]).abs().max().item() > 1e-4 for f in range(4)]
    assert changed == [False, True, True, False]

    inflated = inflate(copy.deepcopy(components.unet))
    latents, context = unet_inputs
    later = latents.clone()
    later[3] += 1.0
    out, out_later = _unet_call(inflated, latents, 4, context), _unet_call(inflated, later, 4, context)
    assert torch.equal(out[:3], out_later[:3]) and not torch.equal(out[3], out_later[3])
    for blk in transformer_blocks(inflated):
        _randomise(getattr(blk, TEMPORAL).attn.to_out, 2)
    out, out_later = _unet_call(inflated, latents, 4, context), _unet_call(inflated, later, 4, context)
    assert (out[1] - out_later[1]).abs().max() > 1e-4


def test_temporal_attention_attends_over_frames_at_each_position():
    temporal = TemporalAttention(32, 4, 8)
    x = torch.randn(2 * 3, 10, 32, generator=torch.Generator().manual_seed(0))  # 2 groups x 3 frames, 10 tokens
    assert torch.equal(temporal(x, 3), x)  # zero-initialised output
    _randomise(temporal, 3)
    moved = x.clone()
    moved[4, 7] += torch.linspace(-1, 1, 32)  # group 1, frame 1, token 7 (not a constant: LayerNorm removes it)
    with torch.no_grad():
        diff = (temporal(moved, 3) - temporal(x, 3)).abs().amax(-1).view(2, 3, 10)
    assert (diff[1, :, 7] > 1e-4).all()  # every frame of that group at that position
    diff[1, :, 7] = 0
    assert torch.equal(diff, torch.zeros_like(diff))  # no other position, no other group


class HalfStep:
    """A stand-in scheduler for the hand-worked case: x <- x - eps / 2."""

    def step(self, eps, t, x, return_dict=False):
        return (x - 0.5 * eps,)


def test_long_video_rule_hand_worked(passes, tiny_dir):
    """6 frames, T = 4: windows (0, 4) and (2, 6) overlap by T/2 = 2. A model whose prediction for a
    window is the mean of its latents, two half steps from x = 1..6:
      step 1: window 0 mean 2.5, window 1 mean 4.5; frames 2, 3 take window 0's
              -> x = [-0.25, 0.75, 1.75, 2.75, 2.75, 3.75]
      step 2: means 1.25 and 2.75 -> x = [-0.875, 0.125, 1.125, 2.125, 1.375, 2.375]
    (averaging the windows instead would give frames 2, 3 the prediction 3.5 at step 1)."""
    from diffusion.sampling.loop import overlapped_denoise
    from diffusion.sampling.method import Run

    run = Run(METHOD, passes, _settings(tiny_dir, window=4), None, passes.indices, None, None)
    spans = METHOD.spans(run)
    assert spans == [(0, 4), (2, 6)]

    def predict(latents, t, step, start, stop):
        return latents.mean().expand_as(latents)

    x = torch.arange(1.0, 7.0).view(6, 1, 1, 1)
    out = overlapped_denoise(x, HalfStep(), torch.tensor([2, 1]), predict, spans, weighting=METHOD.weighting(run))
    assert out.flatten().tolist() == [-0.875, 0.125, 1.125, 2.125, 1.375, 2.375]
    uniform = overlapped_denoise(x, HalfStep(), torch.tensor([2, 1]), predict, spans, weighting="uniform")
    assert uniform.flatten().tolist() != out.flatten().tolist()
    assert METHOD.spans(Run(METHOD, passes, _settings(tiny_dir, window=4), None, list(range(11)), None, None)) == \
        [(0, 4), (2, 6), (4, 8), (6, 10), (7, 11)]


def test_first_window_is_unchanged_by_later_windows(passes, tiny_dir):
    """With the rule, frames 0..3 of a 6-frame clip (windows (0, 4), (2, 6)) are exactly those of the
    4-frame clip; the model's batches never exceed one window (memory flat in clip length)."""
    c = METHOD.load(_settings(tiny_dir, temporal="init"))
    batches = []
    hook = c.unet.register_forward_pre_hook(lambda module, args: batches.append(args[0].shape[0]))
    try:
        long = _run(passes, c, _settings(tiny_dir, temporal="init", window=4))
    finally:
        hook.remove()
    assert long.record["sampling"]["windows"] == [(0, 4), (2, 6)] and max(batches) == 2 * 4
    short = _run(passes, c, _settings(tiny_dir, temporal="init", window=4, max_frames=4))
    assert torch.equal(long.latents[:4], short.latents)


@torch.no_grad()
def test_temporal_weights_save_and_load(components, unet_inputs, tmp_path, passes, tiny_dir):
    trained = inflate(copy.deepcopy(components.unet))
    g = torch.Generator().manual_seed(5)
    for name, p in trained.named_parameters():
        if TEMPORAL in name or ".to_q." in name:
            p.add_(torch.randn(p.shape, generator=g) * 0.1)
    path = save_temporal(trained, tmp_path / "run" / "temporal.safetensors", {"model": "tiny"})
    fresh = copy.deepcopy(components.unet)
    assert load_temporal(fresh, tmp_path / "run") == {"model": "tiny"}
    x, context = unet_inputs
    assert torch.equal(_unet_call(fresh, x, 4, context), _unet_call(trained, x, 4, context))
    assert not torch.equal(_unet_call(fresh, x, 4, context), _unet_call(components.unet, x, 4, context))
    # through the method: --temporal FILE generates what the in-memory model generates
    s = _settings(tiny_dir, temporal=str(path), window=4, max_frames=4)
    loaded = _run(passes, METHOD.load(s), s)
    by_hand = METHOD.load(_settings(tiny_dir))
    by_hand.unet = trained
    assert torch.equal(_run(passes, by_hand, s).latents, loaded.latents)
    with pytest.raises(UserError, match="no Follow Your Pose temporal weights"):
        load_temporal(copy.deepcopy(components.unet), tmp_path)


def test_inflated_unet_without_frame_info_is_refused(components, unet_inputs):
    inflated = inflate(copy.deepcopy(components.unet))
    x, context = unet_inputs
    with pytest.raises(ValueError, match="frame_info"):
        inflated(x, torch.tensor(10), encoder_hidden_states=context)


def test_short_skeleton_sequence_is_a_one_line_error(passes, tiny_dir, tmp_path, monkeypatch, capsys):
    from motion.cli import main

    monkeypatch.setenv("AVATARCINE_CACHE", str(tiny_dir.parent))
    code = main(["generate", str(passes.root), "--method", "follow-your-pose", "--prompt", "x", "--max-frames", "10",
                 "-o", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err == (f"avatarcine: error: --max-frames: asks for 10 frames but the skeleton sequence "
                                 f"of {passes.root} has 6")
    assert not (tmp_path / "out").exists()
    code = main(["generate", str(passes.root), "--method", "follow-your-pose", "--prompt", "x", "--model",
                 str(tmp_path / "nowhere"), "--pose-pass", "flow", "-o", str(tmp_path / "out")])
    assert code == 2 and "no pass 'flow'" in capsys.readouterr().err and not (tmp_path / "out").exists()
    short = tmp_path / "short"
    shutil.copytree(passes.root, short)
    (short / "skeleton" / "000005.png").unlink()  # the skeleton render stopped a frame early
    code = main(["generate", str(short), "--method", "follow-your-pose", "--prompt", "x", "--model",
                 str(tmp_path / "nowhere"), "-o", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err == (f"avatarcine: error: {short / 'skeleton' / '000005.png'}: missing: the skeleton "
                                 f"sequence has 5 of the 6 frames asked for")
    assert main(["generate", str(short), "--method", "follow-your-pose", "--prompt", "x", "--model", "tiny",
                 "--max-frames", "5", "--steps", "1", "-o", str(tmp_path / "out")]) == 0  # the 5 it has


def test_cli_generates_with_the_authors_defaults(passes, tiny_dir, tmp_path, monkeypatch, capsys):
    import json

    from motion.cli import main

    monkeypatch.setenv("AVATARCINE_CACHE", str(tiny_dir.parent))
    s = METHOD.settings()
    assert (s.scheduler, s.steps, s.cfg) == ("ddim", 50, 12.5)
    assert main(["generate", str(passes.root), "--method", "follow-your-pose", "--model", "tiny", "--prompt", "x",
                 "--steps", "2", "--temporal", "init", "--window", "4", "-o", str(tmp_path / "out")]) == 0
    record = json.loads((tmp_path / "out" / "run.json").read_text())
    assert record["sampling"]["windows"] == [[0, 4], [2, 6]] and record["follow_your_pose"]["overlap"] == 2
    assert len(list((tmp_path / "out" / "frames").iterdir())) == 6


def test_temporal_attention_runs_under_gradient_checkpointing(components, unet_inputs):
    """diffusers passes a checkpointed block its arguments positionally; the frame count still arrives."""
    inflated = inflate(copy.deepcopy(components.unet))
    for b in transformer_blocks(inflated):
        _randomise(getattr(b, TEMPORAL).attn.to_out, 4)
    inflated.train()
    x, context = unet_inputs
    plain = _unet_call(inflated, x, 4, context)
    inflated.enable_gradient_checkpointing()
    checkpointed = _unet_call(inflated, x, 4, context)
    assert checkpointed.requires_grad and torch.equal(plain, checkpointed)
    cross_frame_only = _unet_call(components.unet, x, 4, context)
    assert (checkpointed - cross_frame_only).abs().max() > 1e-3


def test_missing_temporal_weights_are_refused_before_loading(passes, tiny_dir, tmp_path):
    with pytest.raises(UserError, match="--temporal: .*nowhere: no temporal.safetensors"):
        METHOD.check_inputs(_settings(tiny_dir, temporal=str(tmp_path / "nowhere")), passes)


def test_a_real_base_needs_a_pose_encoder(tmp_path, monkeypatch, capsys, passes):
    from motion.cli import main

    code = main(["generate", str(passes.root), "--method", "follow-your-pose", "--prompt", "x", "-o",
                 str(tmp_path / "out")])  # the default SD 1.5 base, no --pose-encoder: refused before it loads
    assert code == 2 and capsys.readouterr().err.strip() == (
        "avatarcine: error: --pose-encoder: give the stage-1 pose encoder (`avatarcine train follow-your-pose-pose`) "
        "or a T2I-Adapter hub id / folder")
