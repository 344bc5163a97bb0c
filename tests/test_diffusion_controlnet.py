"""The ControlNet method against diffusers' stock pipeline, and the identities of the temporal toolkit."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from _diffusion_util import one_thread, run_method, tiny_dir  # noqa: F401  (fixtures)
from diffusion.io.conditioning import Framing, load_condition
from diffusion.io.passes import PassesFolder
from diffusion.io.synthetic_passes import PASS_NAMES, write_passes
from diffusion.loaders.schedulers import make_scheduler
from diffusion.methods.controlnet import METHOD

pytestmark = pytest.mark.usefixtures("one_thread")

PROMPT, NEGATIVE = "a dancer in a red dress", "blurry"


@pytest.fixture(scope="module")
def passes(tmp_path_factory):
    return PassesFolder.open(write_passes(tmp_path_factory.mktemp("passes") / "clip", frames=4))


TWO = dict(controlnet=["openpose", "depth"], controlnet_scale=[1.0, 0.7], guidance_start=[0.0, 0.0],
           guidance_end=[1.0, 0.5])


def _settings(tiny_dir, **kw):
    base = dict(prompt=PROMPT, negative_prompt=NEGATIVE, model=str(tiny_dir), steps=3, cfg=5.0, seed=3,
                attention="none", window=None, overlap=0, shared_noise=0.0, **TWO)
    base.update(kw)
    return METHOD.settings(**base)


@pytest.fixture(scope="module")
def components(tiny_dir):
    return METHOD.load(_settings(tiny_dir))


def _run(passes, components, settings):
    return run_method(METHOD, passes, components, settings)


@pytest.mark.parametrize("scheduler", ["ddim", "euler", "dpm"])
def test_temporal_off_equals_diffusers_controlnet_pipeline(passes, components, tiny_dir, scheduler):
    from diffusers import StableDiffusionControlNetPipeline

    s = _settings(tiny_dir, scheduler=scheduler)
    ours = _run(passes, components, s)
    c = components
    framing = Framing.cover(passes.resolution)
    images = [load_condition(passes, list(spec.passes), passes.indices, framing, 3).window(0, 4) for spec in s.specs]
    pipe = StableDiffusionControlNetPipeline(
        vae=c.vae, text_encoder=c.text_encoder, tokenizer=c.tokenizer, unet=c.unet, controlnet=c.controlnets,
        scheduler=make_scheduler(scheduler, c.scheduler.config), safety_checker=None, feature_extractor=None,
        requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    kwargs = dict(image=images, negative_prompt=[NEGATIVE] * 4, num_inference_steps=3, guidance_scale=5.0,
                  controlnet_conditioning_scale=[1.0, 0.7], control_guidance_start=[0.0, 0.0],
                  control_guidance_end=[1.0, 0.5], height=64, width=64)
    latents = pipe([PROMPT] * 4, generator=torch.Generator().manual_seed(3), output_type="latent", **kwargs).images
    assert torch.equal(ours.latents, latents.cpu())  # bit-identical
    frames = pipe([PROMPT] * 4, generator=torch.Generator().manual_seed(3), output_type="np", **kwargs).images
    np.testing.assert_array_equal(ours.frames, (frames * 255).round().astype(np.uint8))


@pytest.mark.skipif(os.environ.get("ATEN_CPU_CAPABILITY") == "avx2" or torch.backends.cpu.get_cpu_capability() == "DEFAULT",
                    reason="already running on AVX2 kernels, or the CPU has none")
def test_pipeline_equality_holds_with_avx2_kernels():
    """The equality above on the kernels of an AVX2-only CPU (where a channels-last condition tensor once
    made it fail by 1.3e-5): PyTorch and oneDNN are told to use their AVX2 code paths."""
    env = {**os.environ, "ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2"}
    test = f"{__file__}::test_temporal_off_equals_diffusers_controlnet_pipeline"
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", test], env=env,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-3000:]
    assert "3 passed" in done.stdout


def test_window_covering_the_clip_equals_no_windowing(passes, components, tiny_dir):
    for attention in ("window", "cross-frame"):
        whole = _run(passes, components, _settings(tiny_dir, attention=attention, window=None))
        for ws, ov in ((4, 2), (16, 4)):
            windowed = _run(passes, components, _settings(tiny_dir, attention=attention, window=ws, overlap=ov))
            assert torch.equal(windowed.latents, whole.latents)


def test_frame_independent_model_is_unchanged_by_windows(passes, components, tiny_dir):
    whole = _run(passes, components, _settings(tiny_dir))
    windowed = _run(passes, components, _settings(tiny_dir, window=2, overlap=1, weighting="triangular"))
    assert windowed.record["sampling"]["windows"] == [(0, 2), (1, 3), (2, 4)]
    # Same per-frame predictions averaged: equal up to batch-size-dependent float rounding.
    torch.testing.assert_close(windowed.latents, whole.latents, rtol=0, atol=1e-5)
    # With all-frame attention the windows do matter (the identity above is not vacuous).
    temporal = _run(passes, components, _settings(tiny_dir, attention="window", window=2, overlap=1))
    assert (temporal.latents - whole.latents).abs().max() > 1e-3


def test_seed_reproduces_bit_identical_output(passes, components, tiny_dir):
    s = _settings(tiny_dir, attention="window", window=3, overlap=1, shared_noise=1.0, scheduler="euler")
    a, b = _run(passes, components, s), _run(passes, components, s)
    np.testing.assert_array_equal(a.frames, b.frames)
    assert torch.equal(a.latents, b.latents)
    c = _run(passes, components, dataclasses.replace(s, seed=4))
    assert not torch.equal(a.latents, c.latents)


def test_multi_controlnet_scales_act_independently(passes, components, tiny_dir):
    nets = dict(controlnet=["openpose", "depth"], guidance_start=[0.0], guidance_end=[1.0])
    both = _run(passes, components, _settings(tiny_dir, **nets, controlnet_scale=[1.3, 0.8]))
    first_only = _run(passes, components, _settings(tiny_dir, **nets, controlnet_scale=[1.3, 0.0]))
    second_only = _run(passes, components, _settings(tiny_dir, **nets, controlnet_scale=[0.0, 0.8]))
    one = dict(controlnet=["openpose"], controlnet_scale=[1.3], guidance_start=[0.0], guidance_end=[1.0])
    alone = METHOD.load(_settings(tiny_dir, **one))
    reference = _run(passes, alone, _settings(tiny_dir, **one))
    assert torch.equal(first_only.latents, reference.latents)  # a zero scale removes exactly that ControlNet
    assert not torch.equal(second_only.latents, reference.latents)
    assert not torch.equal(both.latents, first_only.latents)
    assert not torch.equal(both.latents, second_only.latents)


def test_background_stays_fixed_outside_the_actor(passes, components, tiny_dir, tmp_path):
    import cv2

    from diffusion.io.conditioning import load_mask

    plate = np.zeros((64, 64, 3), np.uint8)
    plate[:, :, 0] = np.linspace(0, 255, 64).astype(np.uint8)[None]
    plate[:, :, 2] = 90
    path = tmp_path / "bg.png"
    cv2.imwrite(str(path), cv2.cvtColor(plate, cv2.COLOR_RGB2BGR))
    mask = load_mask(passes, passes.indices, Framing.cover(passes.resolution))
    far = np.stack([cv2.dilate((m > 0).astype(np.uint8), np.ones((25, 25), np.uint8)) == 0 for m in mask])
    out = _run(passes, components, _settings(tiny_dir, background=str(path)))
    for k in range(4):
        np.testing.assert_array_equal(out.frames[k][far[k]], plate[far[k]])
        assert np.abs(out.frames[k][mask[k] > 127].astype(int) - plate[mask[k] > 127]).mean() > 5
    first = _run(passes, components, _settings(tiny_dir, background="first", attention="window", window=3, overlap=1))
    for k in range(1, 4):
        keep = far[k] & far[0]
        np.testing.assert_array_equal(first.frames[k][keep], first.frames[0][keep])


def test_plate_background_pastes_the_generation_onto_each_frames_own_plate(components, tiny_dir, tmp_path):
    from diffusion.io.conditioning import load_mask
    from motion.errors import UserError

    folder = PassesFolder.open(write_passes(tmp_path / "clip", frames=4, passes=(*PASS_NAMES, "plate")))
    plates = np.stack([np.rint(folder.read("plate", i) * 255).astype(np.uint8) for i in folder.indices])
    mask = load_mask(folder, folder.indices, Framing.cover(folder.resolution))
    assert set(np.unique(mask)) == {0, 255} and not np.array_equal(plates[0], plates[1])   # a plate per frame
    plain = _run(folder, components, _settings(tiny_dir, attention="window", window=4))
    out = _run(folder, components, _settings(tiny_dir, background="plate", attention="window", window=4))
    # nothing is locked while sampling: the actor is the plain generation, the rest each frame's plate
    np.testing.assert_array_equal(out.frames, np.where(mask[..., None] > 0, plain.frames, plates))
    assert np.abs(plain.frames[mask == 0].astype(int) - plates[mask == 0]).mean() > 5   # control
    with pytest.raises(UserError, match="no pass 'plate'"):
        METHOD.check_inputs(_settings(tiny_dir, background="plate"), PassesFolder.open(write_passes(tmp_path / "b")))


def test_model_batches_are_bounded_by_the_window(passes, components, tiny_dir):
    batches = []
    hook = components.unet.register_forward_pre_hook(lambda module, args: batches.append(args[0].shape[0]))
    try:
        out = _run(passes, components, _settings(tiny_dir, attention="window", window=2, overlap=1))
    finally:
        hook.remove()
    assert max(batches) == 4  # 2 frames x (unconditional, conditional)
    assert len(batches) == 3 * 3 and out.record["sampling"]["unet_evaluations"] == sum(batches)
