"""Every kind of part loads through our loaders from its tiny ``save_pretrained`` folder (the path real
weights take) and behaves as its kind must: image tokens fit the UNet's cross-attention, a zeroed
T2I-Adapter restores the base UNet, LoRA starts as a no-op and survives save -> load, fuse -> unfuse."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from _diffusion_util import one_thread, tiny_dir  # noqa: F401  (fixtures)
from diffusion.loaders import tiny
from motion.errors import UserError

pytestmark = pytest.mark.usefixtures("one_thread")
CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def unet(tiny_dir):
    from diffusion.loaders.sd15 import load_sd15

    return load_sd15(str(tiny_dir)).unet


def _inputs(batch=1, frames=None, seed=0):
    g = torch.Generator().manual_seed(seed)
    shape = (batch, 4, 8, 8) if frames is None else (batch, 4, frames, 8, 8)
    return torch.randn(shape, generator=g), torch.randn(batch, 16, 32, generator=g)


def test_image_tokens_fit_the_cross_attention(tiny_dir, unet):
    from transformers import CLIPVisionModel

    from diffusion.loaders.image_encoder import image_tokens, load_image_encoder

    encoder, processor = load_image_encoder(str(tiny_dir), CPU, torch.float32)
    images = np.random.default_rng(0).integers(0, 256, (2, 40, 56, 3), dtype=np.uint8)
    tokens = image_tokens(encoder, processor, images)
    assert tokens.shape == (2, 1 + (32 // 8) ** 2, unet.config.cross_attention_dim)
    direct = CLIPVisionModel.from_pretrained(tiny_dir, subfolder="image_encoder")
    pixels = processor(images=list(images), return_tensors="pt").pixel_values
    assert torch.equal(tokens, direct(pixel_values=pixels).last_hidden_state)
    x, _ = _inputs(2)
    assert unet(x, 10, encoder_hidden_states=tokens).sample.shape == x.shape  # usable as the UNet's context
    assert not torch.equal(tokens[0], image_tokens(encoder, processor, images[::-1])[0])


def test_zeroed_t2i_adapter_restores_the_base_unet(tiny_dir, unet):
    from diffusion.loaders.adapter import load_adapter, zero_adapter_outputs

    adapter = load_adapter(str(tiny_dir), CPU, torch.float32, subfolder=tiny.ADAPTER)
    image = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    features = adapter(image)
    assert [f.shape for f in features] == [(1, 32, 8, 8), (1, 64, 4, 4)]  # one per down block
    x, text = _inputs()
    plain = unet(x, 10, encoder_hidden_states=text).sample
    guided = unet(x, 10, encoder_hidden_states=text, down_intrablock_additional_residuals=list(features)).sample
    assert (guided - plain).abs().max() > 1e-3
    zero_adapter_outputs(adapter)
    zeroed = unet(x, 10, encoder_hidden_states=text, down_intrablock_additional_residuals=list(adapter(image))).sample
    assert torch.equal(zeroed, plain)


def test_inpainting_unet_takes_nine_channels(tiny_dir):
    from diffusion.loaders.inpainting import inpainting_input, load_inpainting_unet

    unet9 = load_inpainting_unet(str(tiny_dir), CPU, torch.float32, subfolder=tiny.INPAINTING)
    x, text = _inputs()
    mask = torch.zeros(1, 1, 64, 64)
    mask[..., 16:48, 16:48] = 1
    model_input = inpainting_input(x, mask, torch.randn(1, 4, 8, 8))
    assert model_input.shape == (1, 9, 8, 8) and model_input[0, 4].sum() == 16  # mask on the latent grid
    assert unet9(model_input, 10, encoder_hidden_states=text).sample.shape == x.shape
    with pytest.raises(UserError, match="not an inpainting UNet: 4 input channels"):
        load_inpainting_unet(str(tiny_dir), CPU, torch.float32)


def test_video_unets_load_and_take_frames(tiny_dir, unet):
    from diffusion.loaders.video_unet import from_video, load_motion_unet, load_unet3d, to_video, video_context

    x, text = _inputs(frames=3)
    for video_unet in (load_unet3d(str(tiny_dir / tiny.UNET3D), CPU, torch.float32),
                       load_motion_unet(unet, str(tiny_dir / tiny.MOTION_ADAPTER), CPU, torch.float32)):
        text = video_context(video_unet, text[:1], 3)
        out = video_unet(x, 10, encoder_hidden_states=text).sample
        assert out.shape == x.shape
        frames = from_video(x)
        assert frames.shape == (3, 4, 8, 8) and torch.equal(to_video(frames), x)
        # frames interact: changing the last frame changes the first frame's prediction
        y = x.clone()
        y[:, :, 2] += 1
        assert (video_unet(y, 10, encoder_hidden_states=text).sample[:, :, 0] - out[:, :, 0]).abs().max() > 1e-6


@pytest.mark.parametrize("kind", ["unet2d", "unet3d"])
def test_lora_is_a_no_op_at_init_and_survives_save_and_load(kind, tiny_dir, tmp_path):
    from diffusers import UNet2DConditionModel, UNet3DConditionModel

    from diffusion.loaders.lora import add_lora, fuse_lora, load_lora, lora_parameters, save_lora, unfuse_lora

    def fresh():
        if kind == "unet2d":
            return UNet2DConditionModel.from_pretrained(tiny_dir, subfolder="unet")
        return UNet3DConditionModel.from_pretrained(tiny_dir / tiny.UNET3D, subfolder="unet")

    x, text = _inputs(frames=None if kind == "unet2d" else 2)
    model = fresh()
    base = model(x, 10, encoder_hidden_states=text).sample
    targets = ["to_q", "to_k", "to_v", "to_out.0"]
    add_lora(model, targets, rank=4)
    # B = 0 at init: a no-op up to rounding (peft adds the zero LoRA term as its own op; the new tensor's
    # layout makes later kernels round differently by 9e-7 on the 3D UNet), against > 1e-4 once B moves
    torch.testing.assert_close(model(x, 10, encoder_hidden_states=text).sample, base, rtol=0, atol=1e-5)
    with torch.no_grad():
        for p in lora_parameters(model):
            p.add_(torch.randn(p.shape, generator=torch.Generator().manual_seed(p.numel())) * 0.05)
    tuned = model(x, 10, encoder_hidden_states=text).sample
    assert (tuned - base).abs().max() > 1e-4
    path = save_lora(model, tmp_path / "lora.safetensors", {"rank": 4, "alpha": 4, "targets": targets, "base": kind})
    other = fresh()
    metadata, rest = load_lora(other, path)
    assert metadata["base"] == kind and rest == {}
    assert torch.equal(other(x, 10, encoder_hidden_states=text).sample, tuned)
    fuse_lora(other)
    torch.testing.assert_close(other(x, 10, encoder_hidden_states=text).sample, tuned, rtol=0, atol=1e-5)
    unfuse_lora(other)
    torch.testing.assert_close(other(x, 10, encoder_hidden_states=text).sample, tuned, rtol=0, atol=1e-5)


def test_lora_file_loads_with_diffusers_own_loader(tiny_dir, tmp_path):
    from diffusers import StableDiffusionPipeline

    from diffusion.loaders.lora import add_lora, lora_parameters, save_lora

    pipe = StableDiffusionPipeline.from_pretrained(tiny_dir, safety_checker=None, requires_safety_checker=False)
    model = pipe.unet
    x, text = _inputs()
    base = model(x, 10, encoder_hidden_states=text).sample
    targets = ["attn2.to_q", "attn2.to_k", "attn2.to_v", "attn2.to_out.0"]
    add_lora(model, targets, rank=2)
    with torch.no_grad():
        for p in lora_parameters(model):
            p.normal_(0, 0.1, generator=torch.Generator().manual_seed(p.numel()))
    tuned = model(x, 10, encoder_hidden_states=text).sample
    path = save_lora(model, tmp_path / "lora.safetensors", {"rank": 2, "alpha": 2, "targets": targets})
    clean = StableDiffusionPipeline.from_pretrained(tiny_dir, safety_checker=None, requires_safety_checker=False)
    clean.load_lora_weights(str(path))
    got = clean.unet(x, 10, encoder_hidden_states=text).sample
    torch.testing.assert_close(got, tuned, rtol=0, atol=1e-6)
    assert (got - base).abs().max() > 1e-4


def test_bad_lora_files_are_one_line_errors(tmp_path, unet):
    from safetensors.torch import save_file

    from diffusion.loaders.lora import load_lora

    (tmp_path / "junk.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(UserError, match="not a readable safetensors file"):
        load_lora(unet, tmp_path / "junk.safetensors")
    save_file({"x": torch.zeros(1)}, str(tmp_path / "plain.safetensors"))
    with pytest.raises(UserError, match="no avatarcine LoRA metadata"):
        load_lora(unet, tmp_path / "plain.safetensors")
    with pytest.raises(UserError, match="no such LoRA file"):
        load_lora(unet, tmp_path / "missing.safetensors")


def test_inverse_scheduler_follows_the_base_schedule(tiny_dir):
    from diffusers import DDIMScheduler

    from diffusion.loaders.schedulers import make_inverse_scheduler

    config = DDIMScheduler.from_pretrained(tiny_dir, subfolder="scheduler").config
    inverse = make_inverse_scheduler(config)
    inverse.set_timesteps(5)
    assert type(inverse).__name__ == "DDIMInverseScheduler"
    assert list(inverse.timesteps) == sorted(inverse.timesteps)  # noise grows step by step
    torch.testing.assert_close(inverse.alphas_cumprod, DDIMScheduler.from_config(config).alphas_cumprod)


def test_corrupt_model_index_is_a_one_line_error(tiny_dir, tmp_path):
    import shutil

    from diffusion.loaders.sd15 import load_sd15

    copy = tmp_path / "model"
    shutil.copytree(tiny_dir, copy)
    (copy / "model_index.json").write_text('{"unet": ["diffusers", "UNet2DCond')
    with pytest.raises(UserError, match=r"model_index.json: unreadable JSON"):
        load_sd15(str(copy))
    (copy / "model_index.json").write_text(json.dumps(["unet", "vae"]))
    with pytest.raises(UserError, match="model_index.json: expected a JSON object, got list"):
        load_sd15(str(copy))
