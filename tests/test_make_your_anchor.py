"""Make-Your-Anchor inference: W_c, image tokens as the context, equality with diffusers' ControlNet
pipeline, all-frame attention, save -> load, reference errors, face crop/paste."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from _diffusion_util import add_rgb, mya_dir, one_thread, run_method, tiny_dir  # noqa: F401  (fixtures)
from diffusion.io.conditioning import Framing, load_condition
from diffusion.io.passes import PassesFolder
from diffusion.io.synthetic_passes import write_passes
from diffusion.loaders.schedulers import make_scheduler
from diffusion.methods.make_your_anchor import METHOD
from diffusion.methods.make_your_anchor import face as F
from diffusion.methods.make_your_anchor.model import save_model, write_tiny_mya
from motion.errors import UserError

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def passes(tmp_path_factory):
    return PassesFolder.open(add_rgb(write_passes(tmp_path_factory.mktemp("passes") / "clip", frames=4)))


def _settings(mya_dir, **kw):
    base = dict(model=str(mya_dir), condition=["normal"], steps=3, cfg=5.0, seed=3, attention="none", window=1,
                overlap=0, shared_noise=0.0, controlnet_scale=2.0)
    base.update(kw)
    return METHOD.settings(**base)


@pytest.fixture(scope="module")
def components(mya_dir):
    return METHOD.load(_settings(mya_dir))


def _run(passes, components, settings):
    return run_method(METHOD, passes, components, settings)


def _tokens(c, passes):
    """Tokens of the default reference: the model folder's reference.png."""
    import imageio.v2 as imageio

    from diffusion.loaders.image_encoder import image_tokens

    image = imageio.imread(Path(c.sources["model"]) / "reference.png")
    return image_tokens(c.extra["image_encoder"], c.extra["processor"], image[None])


def _denoiser(passes, c, s):
    from diffusion.sampling.method import Run

    indices = passes.indices
    run = Run(METHOD, passes, s, c, indices, Framing.cover(passes.resolution), torch.Generator().manual_seed(0))
    c.scheduler.set_timesteps(s.steps)
    return METHOD.denoiser(run)


def test_equals_diffusers_controlnet_pipeline_with_image_tokens_as_prompt_embeds(passes, components, mya_dir):
    """Temporal denoising off, one frame per window: StableDiffusionControlNetPipeline given the reference's
    tokens as ``prompt_embeds`` (its unconditional branch: the empty text padded to their length) and W_c as
    ``controlnet_conditioning_scale``, bit for bit."""
    from diffusers import StableDiffusionControlNetPipeline

    c = components
    ours = _run(passes, c, _settings(mya_dir))
    tokens = _tokens(c, passes)
    image = load_condition(passes, ["normal"], passes.indices, Framing.cover(passes.resolution), 3).window(0, 4)
    pipe = StableDiffusionControlNetPipeline(vae=c.vae, text_encoder=c.text_encoder, tokenizer=c.tokenizer, unet=c.unet,
                                             controlnet=c.controlnets[0], scheduler=make_scheduler("ddim", c.scheduler.config),
                                             safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    from diffusers.utils.torch_utils import randn_tensor

    noise = randn_tensor((4, 4, 8, 8), generator=torch.Generator().manual_seed(3))  # what the pipeline draws for 4
    # one pipeline call per frame (our windows hold one frame: the same batch of 2 per model call)
    latents = torch.cat([pipe(prompt_embeds=tokens, image=image[k:k + 1], latents=noise[k:k + 1], num_inference_steps=3,
                              guidance_scale=5.0, controlnet_conditioning_scale=2.0, height=64, width=64,
                              output_type="latent").images for k in range(4)])
    assert torch.equal(ours.latents, latents.cpu())
    other = _run(passes, c, _settings(mya_dir, controlnet_scale=1.0))
    assert not torch.allclose(other.latents, latents.cpu(), atol=1e-3)  # control: W_c reaches the output


def test_image_tokens_are_the_context_of_unet_and_controlnet(passes, components, mya_dir):
    c = components
    tokens = _tokens(c, passes)
    assert tokens.shape == (1, 10, c.unet.config.cross_attention_dim)  # tiny tower: 24 px / patch 8 -> 9 + class
    assert c.controlnets[0].config.cross_attention_dim == tokens.shape[-1]
    seen = {"unet": [], "controlnet": []}
    hooks = []
    for key, model in (("unet", c.unet), ("controlnet", c.controlnets[0])):
        for name, module in model.named_modules():
            if name.endswith("attn2"):
                hooks.append(module.register_forward_pre_hook(
                    lambda m, a, kw, key=key: seen[key].append(kw["encoder_hidden_states"]), with_kwargs=True))
    try:
        _run(passes, c, _settings(mya_dir, steps=1, max_frames=1))
    finally:
        for h in hooks:
            h.remove()
    from diffusion.methods.make_your_anchor.model import unconditional

    expected = torch.cat([unconditional(c, tokens, "empty-text"), tokens])
    for key in seen:
        assert seen[key] and all(torch.equal(x, expected) for x in seen[key]), key


def test_vit_b32_geometry_gives_50_tokens_of_sd15_width():
    """The authors' tower (ViT-B/32 at 224 px; one layer here) gives 50 x 768 tokens: SD 1.5's context width."""
    from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModel

    from diffusion.loaders.image_encoder import image_tokens

    torch.manual_seed(0)
    encoder = CLIPVisionModel(CLIPVisionConfig(hidden_size=768, intermediate_size=128, num_hidden_layers=1,
                                               num_attention_heads=12, image_size=224, patch_size=32)).eval()
    tokens = image_tokens(encoder, CLIPImageProcessor(), np.zeros((2, 300, 200, 3), np.uint8))
    assert tokens.shape == (2, 50, 768)


def test_wc_scales_the_residuals_linearly_and_zero_gives_the_plain_unet(passes, components, mya_dir):
    c = components
    x = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(1))
    t = torch.tensor(500)
    res = {}
    for w in (1.0, 2.0, 0.0):
        d = _denoiser(passes, c, _settings(mya_dir, controlnet_scale=w))
        context = torch.cat([d.negative, d.context]).expand(2, -1, -1)
        res[w] = d.residuals(x, t, context, 0, 0, 1)
    down1, down2 = res[1.0]["down_block_additional_residuals"], res[2.0]["down_block_additional_residuals"]
    assert all(torch.equal(2 * a, b) for a, b in zip(down1, down2))
    assert torch.equal(2 * res[1.0]["mid_block_additional_residual"], res[2.0]["mid_block_additional_residual"])
    assert any(a.abs().max() > 1e-3 for a in down1)  # control: the residuals are not zero
    # W_c = 0: diffusers' plain StableDiffusionPipeline (no ControlNet) with the same tokens, frame by frame
    from diffusers import StableDiffusionPipeline
    from diffusers.utils.torch_utils import randn_tensor

    ours = _run(passes, c, _settings(mya_dir, controlnet_scale=0.0))
    pipe = StableDiffusionPipeline(vae=c.vae, text_encoder=c.text_encoder, tokenizer=c.tokenizer, unet=c.unet,
                                   scheduler=make_scheduler("ddim", c.scheduler.config), safety_checker=None,
                                   feature_extractor=None, requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    noise = randn_tensor((4, 4, 8, 8), generator=torch.Generator().manual_seed(3))
    tokens = _tokens(c, passes)
    plain = torch.cat([pipe(prompt_embeds=tokens, latents=noise[k:k + 1], num_inference_steps=3, guidance_scale=5.0,
                            height=64, width=64, output_type="latent").images for k in range(4)])
    assert torch.equal(ours.latents, plain.cpu())


def test_all_frame_attention_adds_no_parameters_and_one_frame_equals_plain(passes, components, mya_dir):
    c = components
    keys = set(c.unet.state_dict()) | set(c.controlnets[0].state_dict())
    base = _run(passes, c, _settings(mya_dir, attention="none"))
    one = _run(passes, c, _settings(mya_dir, attention="window", controlnet_attention=True, window=1))
    assert set(c.unet.state_dict()) | set(c.controlnets[0].state_dict()) == keys
    # Same projections and SDPA, but a different reshaping path than AttnProcessor2_0: equal to rounding.
    torch.testing.assert_close(one.latents, base.latents, atol=1e-5, rtol=1e-5)
    four = _run(passes, c, _settings(mya_dir, attention="window", window=4))
    assert (four.latents - base.latents).abs().max() > 1e-3  # control: with 4 frames the frames interact


def test_controlnet_attention_setting_reaches_the_controlnet(passes, components, mya_dir):
    per_frame = _run(passes, components, _settings(mya_dir, attention="window", window=4))
    both = _run(passes, components, _settings(mya_dir, attention="window", window=4, controlnet_attention=True))
    assert (per_frame.latents - both.latents).abs().max() > 1e-4


def test_default_temporal_settings_are_the_papers(mya_dir):
    s = METHOD.settings(model=str(mya_dir))
    assert (s.attention, s.window, s.overlap, s.shared_noise, s.steps, s.cfg, s.scheduler, s.controlnet_scale,
            s.controlnet_attention) == ("window", 16, 4, 1.0, 20, 7.5, "ddim", 2.0, False)
    assert METHOD.condition(s) == ("mesh",) and METHOD.uncond(s, s.model) == "empty-text"  # the tiny model's info


def test_condition_and_uncond_default_to_what_the_model_was_trained_with(mya_dir, passes, tmp_path):
    import json

    model = tmp_path / "m"
    model.mkdir()
    for part in mya_dir.iterdir():
        if part.name != "avatarcine_mya.json":
            (model / part.name).symlink_to(part)
    (model / "avatarcine_mya.json").write_text(json.dumps({"passes": ["normal"], "uncond": "zeros"}))
    s = METHOD.settings(model=str(model), steps=1, max_frames=1, window=1, overlap=0)
    assert METHOD.condition(s) == ("normal",) and METHOD.uncond(s, s.model) == "zeros"
    record = METHOD.run(passes, s, METHOD.load(s)).record["make_your_anchor"]
    assert record["condition"] == ["normal"] and record["uncond"] == "zeros"
    given = METHOD.settings(model=str(model), condition=["mask"], uncond="empty-text")
    assert METHOD.condition(given) == ("mask",) and METHOD.uncond(given, given.model) == "empty-text"


def test_save_then_load_reproduces_the_output(passes, components, mya_dir, tmp_path):
    c = components
    s = _settings(mya_dir, attention="window", window=4, overlap=1, reference=str(mya_dir / "reference.png"))
    before = _run(passes, c, s)
    save_model(tmp_path / "m", unet=c.unet, controlnet=c.controlnets[0], vae=c.vae,
               image_encoder=c.extra["image_encoder"], feature_extractor=c.extra["processor"], scheduler=c.scheduler,
               text_encoder=c.text_encoder, tokenizer=c.tokenizer, info={"passes": ["normal"]})
    s2 = dataclasses.replace(s, model=str(tmp_path / "m"))
    after = _run(passes, METHOD.load(s2), s2)
    np.testing.assert_array_equal(before.frames, after.frames)


def test_reference_image_is_used_and_bad_ones_are_one_line_errors(passes, components, mya_dir, tmp_path):
    import imageio.v2 as imageio

    ref = tmp_path / "ref.png"
    imageio.imwrite(ref, np.full((40, 30, 3), 200, np.uint8))
    own = _run(passes, components, _settings(mya_dir, reference=str(ref)))
    default = _run(passes, components, _settings(mya_dir))
    assert own.record["make_your_anchor"]["reference"] == str(ref)
    assert (own.latents - default.latents).abs().max() > 1e-4
    (tmp_path / "bad.png").write_text("not an image")
    for path in (tmp_path / "missing.png", tmp_path / "bad.png"):
        with pytest.raises(UserError) as err:
            METHOD.check_inputs(_settings(mya_dir, reference=str(path)), passes)
        assert "\n" not in str(err.value) and str(path) in str(err.value)


def test_cli_missing_reference_is_one_line_exit_2(passes, mya_dir, tmp_path, capsys):
    import motion.cli

    code = motion.cli.main(["generate", str(passes.root), "--method", "make-your-anchor", "--model", str(mya_dir),
                            "--condition", "normal", "--reference", str(tmp_path / "nope.png"), "-o", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "nope.png" in err
    assert not (tmp_path / "o").exists()


def test_model_without_controlnet_is_a_one_line_error(tiny_dir, tmp_path):
    base = tmp_path / "sd"  # a plain SD folder (the tiny parts without their tiny marker)
    base.mkdir()
    for part in ("unet", "vae", "text_encoder", "tokenizer", "scheduler", "model_index.json"):
        (base / part).symlink_to(tiny_dir / part)
    with pytest.raises(UserError, match="no controlnet/"):
        METHOD.load(METHOD.settings(model=str(base)))
    c = METHOD.load(METHOD.settings(model=str(base), controlnet=str(tiny_dir / "controlnet-normal"),
                                    image_encoder=str(write_tiny_mya(tiny_dir, tmp_path / "mya"))))
    assert c.sources["controlnet"] == str(tiny_dir / "controlnet-normal")


# ------------------------------------------------------------------------------------------------
# face crop / paste

def _face_points(matrix_to_frame: np.ndarray, size: int) -> np.ndarray:
    pts = F.TEMPLATE * size
    mapped = pts @ matrix_to_frame[:, :2].T + matrix_to_frame[:, 2]
    return np.concatenate([mapped, np.ones((5, 1))], axis=1)


def test_alignment_maps_head_points_to_the_template_and_skips_hidden_or_small_faces():
    angle, scale = 0.3, 0.5  # crop -> frame: rotate, halve (a 256 crop spans 128 frame pixels)
    to_frame = np.array([[scale * np.cos(angle), -scale * np.sin(angle), 70.0],
                         [scale * np.sin(angle), scale * np.cos(angle), 40.0]])
    points = _face_points(to_frame, 256)
    found = F.align(points, 256, min_size=64)
    mapped = points[:, :2] @ found.matrix[:, :2].T + found.matrix[:, 2]
    np.testing.assert_allclose(mapped, F.TEMPLATE * 256, atol=1e-6)
    assert found.source_side == pytest.approx(128.0)
    assert F.align(points, 256, min_size=129) is None          # smaller than the threshold
    hidden = points.copy()
    hidden[2:, 2] = 0
    assert F.align(hidden, 256, min_size=64) is None           # only 2 head points visible


def test_crop_paste_with_identity_inpainter_keeps_the_frame_outside_the_feathered_border():
    rng = np.random.default_rng(0)
    frame = cv2_blur(rng.integers(0, 256, (160, 200, 3), dtype=np.uint8))
    to_frame = np.array([[0.3 * np.cos(0.2), -0.3 * np.sin(0.2), 80.0], [0.3 * np.sin(0.2), 0.3 * np.cos(0.2), 30.0]])
    points = _face_points(to_frame, 256)[None]
    out, done = F.enhance(frame[None], frame[None], points, lambda crops, conds, mask: crops, 256, 16)
    assert done == [0]
    alpha = F.Alignment(F.align(points[0], 256, 16).matrix, 256)
    import cv2

    weight = cv2.warpAffine(F.paste_mask(256), cv2.invertAffineTransform(alpha.matrix), (200, 160), borderValue=0.0)
    outside = weight == 0
    assert outside.mean() > 0.5
    np.testing.assert_array_equal(out[0][outside], frame[outside])
    # inside, only the crop's resampling round trip differs (bilinear there and back on a smooth image)
    assert np.abs(out[0].astype(int) - frame.astype(int))[~outside].mean() < 6
    grey, _ = F.enhance(frame[None], frame[None], points, lambda crops, conds, mask: np.zeros_like(crops), 256, 16)
    assert np.abs(grey[0].astype(int) - frame.astype(int))[weight > 0.99].min() > 0  # control: the crop is pasted
    np.testing.assert_array_equal(grey[0][outside], frame[outside])


def cv2_blur(image):
    import cv2

    return cv2.GaussianBlur(image, (0, 0), 3)


def test_repaint_mask_is_one_on_the_face_diffusers_convention():
    mask = F.repaint_mask(64)
    assert mask[35, 32] == 1 and mask[2, 2] == 0 and set(np.unique(mask)) == {0.0, 1.0}


def test_face_enhance_changes_only_the_face_squares(passes, components, mya_dir):
    face = dict(face_enhance=True, face_size=32, face_min_size=4, face_steps=2)
    s = _settings(mya_dir, **face)
    c = METHOD.load(s)
    plain = _run(passes, c, _settings(mya_dir))
    enhanced = _run(passes, c, s)
    assert enhanced.record["face"]["enhanced"] == 4
    changed = np.any(plain.frames != enhanced.frames, axis=-1)
    assert changed.any()
    points = F.head_points(passes, passes.indices, Framing.cover(passes.resolution))
    import cv2

    for k in range(4):
        found = F.align(points[k], 32, 4)
        weight = cv2.warpAffine(F.paste_mask(32), cv2.invertAffineTransform(found.matrix), (64, 64), borderValue=0.0)
        assert not changed[k][weight == 0].any()


def test_plate_background_composites_the_actor_onto_the_rendered_scene(components, mya_dir, tmp_path):
    from diffusion.io.conditioning import Framing, load_mask
    from diffusion.io.synthetic_passes import PASS_NAMES

    folder = PassesFolder.open(add_rgb(write_passes(tmp_path / "clip", frames=2, passes=(*PASS_NAMES, "plate"))))
    mask = load_mask(folder, folder.indices, Framing.cover(folder.resolution))
    plain = _run(folder, components, _settings(mya_dir))
    out = _run(folder, components, _settings(mya_dir, background="plate"))
    plates = np.stack([np.rint(folder.read("plate", i) * 255).astype(np.uint8) for i in folder.indices])
    np.testing.assert_array_equal(out.frames, np.where(mask[..., None] > 0, plain.frames, plates))
    assert not np.array_equal(plain.frames[mask == 0], plates[mask == 0])   # control: without it, generated
