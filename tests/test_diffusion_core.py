"""Building blocks: windows and overlap weights, frame attention, noise, conditioning, model loading."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from _diffusion_util import one_thread, tiny_dir  # noqa: F401  (fixtures)
from diffusion.attention.frames import CrossFrameAttention, WindowAttention, frame_attention_rules
from diffusion.attention.install import FrameInfo, PassFrameInfo, processors
from diffusion.io.conditioning import Framing, load_condition, load_mask
from diffusion.io.passes import PassesFolder
from diffusion.io.synthetic_passes import write_passes
from diffusion.sampling.loop import overlapped_denoise
from diffusion.sampling.noise import initial_noise
from diffusion.sampling.windows import OverlapAccumulator, frame_weight_totals, frame_weights, window_spans
from motion.errors import UserError

pytestmark = pytest.mark.usefixtures("one_thread")


def test_window_spans_follow_algorithm_1_and_clamp_the_last_window():
    assert window_spans(10, 4, 1) == [(0, 4), (3, 7), (6, 10)]
    assert window_spans(11, 4, 1) == [(0, 4), (3, 7), (6, 10), (7, 11)]  # clamped: still 4 frames
    assert window_spans(5, 16, 4) == [(0, 5)]
    assert window_spans(5, None) == [(0, 5)]
    assert window_spans(6, 2, 0) == [(0, 2), (2, 4), (4, 6)]
    with pytest.raises(ValueError):
        window_spans(10, 4, 4)


def test_overlap_counts_and_triangular_weights():
    spans = window_spans(11, 4, 1)
    np.testing.assert_array_equal(frame_weight_totals(11, spans), [1, 1, 1, 2, 1, 1, 2, 2, 2, 2, 1])
    np.testing.assert_array_equal(frame_weights(4, "triangular").numpy(), [1, 2, 2, 1])
    np.testing.assert_array_equal(frame_weights(5, "triangular").numpy(), [1, 2, 3, 2, 1])


class _RecordingScheduler:
    """Stands in for a diffusers scheduler: records the noise it is stepped with, returns latents."""

    def __init__(self):
        self.noise = []

    def step(self, noise, t, latents, return_dict=False):
        self.noise.append(noise.clone())
        return (latents,)


@pytest.mark.parametrize("weighting", ["uniform", "triangular"])
def test_overlapped_denoise_blends_window_predictions_with_exact_weights(weighting):
    frames, ws, os_ = 11, 4, 1
    spans = window_spans(frames, ws, os_)
    sched = _RecordingScheduler()
    # Window k predicts the constant k + 1 for every frame it covers.
    predict = lambda lat, t, i, start, stop: torch.full_like(lat, float(spans.index((start, stop)) + 1))  # noqa: E731
    latents = torch.zeros(frames, 2, 3, 3)
    overlapped_denoise(latents, sched, torch.tensor([10, 5]), predict, spans, weighting=weighting)
    assert len(sched.noise) == 2  # one scheduler step per timestep, for the whole sequence
    expected = []
    for f in range(frames):  # by hand: weighted mean over the windows covering f
        num = den = 0.0
        for k, (a, b) in enumerate(spans):
            if a <= f < b:
                j, n = f - a, b - a
                w = 1.0 if weighting == "uniform" else min(j + 1, n - j)
                num, den = num + w * (k + 1), den + w
        expected.append(num / den)
    np.testing.assert_allclose(sched.noise[0][:, 0, 0, 0].numpy(), expected, rtol=0, atol=1e-6)


def test_accumulator_refuses_uncovered_frames():
    acc = OverlapAccumulator(torch.zeros(3, 1))
    acc.add(0, 2, torch.ones(2, 1))
    with pytest.raises(ValueError):
        acc.mean()


@pytest.fixture(scope="module")
def attn(tiny_dir):
    from diffusers import UNet2DConditionModel

    unet = UNet2DConditionModel.from_pretrained(tiny_dir, subfolder="unet")
    name = next(n for n in unet.attn_processors if n.endswith("attn1.processor"))
    module = unet.get_submodule(name.rsplit(".", 1)[0])
    return unet, module


def _self_attention(module, x):
    from diffusers.models.attention_processor import AttnProcessor2_0

    return AttnProcessor2_0()(module, x)


def _frames(processor, module, x, frames):
    return processor(module, x, frame_info=FrameInfo(frames))


def test_window_attention_with_one_frame_equals_self_attention(attn):
    _, module = attn
    x = torch.randn(2, 16, module.to_q.in_features, generator=torch.Generator().manual_seed(0))
    ref = _self_attention(module, x)
    assert torch.equal(_frames(WindowAttention(), module, x, 1), ref)
    # cross-frame with one frame attends to [frame 0, frame 0]: duplicated keys, same softmax average
    torch.testing.assert_close(_frames(CrossFrameAttention(), module, x, 1), ref, rtol=0, atol=1e-6)


def test_frame_attention_sees_other_frames(attn):
    _, module = attn
    g = torch.Generator().manual_seed(1)
    frame = torch.randn(1, 16, module.to_q.in_features, generator=g)
    # Identical frames: attending to copies of the same tokens is softmax-invariant -> self-attention.
    same = frame.expand(3, -1, -1).contiguous()
    for processor in (WindowAttention(), CrossFrameAttention()):
        out = _frames(processor, module, same, 3)
        torch.testing.assert_close(out, _self_attention(module, same), rtol=1e-5, atol=1e-5)
    # Distinct frames: every frame but the first changes; cross-frame frame 0 only sees itself.
    x = torch.randn(3, 16, module.to_q.in_features, generator=g)
    ref = _self_attention(module, x)
    window = _frames(WindowAttention(), module, x, 3)
    cross = _frames(CrossFrameAttention(), module, x, 3)
    assert (window - ref).abs().amax(dim=(1, 2)).min() > 1e-3
    torch.testing.assert_close(cross[0], ref[0], rtol=1e-5, atol=1e-5)
    assert (cross[1:] - ref[1:]).abs().max() > 1e-3
    # Under CFG the batch is [uncond frames, cond frames]: groups never mix.
    doubled = _frames(WindowAttention(), module, torch.cat([x, x]), 3)
    torch.testing.assert_close(doubled[:3], window, rtol=1e-5, atol=1e-6)


def test_frame_attention_installs_on_self_attention_only_and_restores(attn):
    unet, _ = attn
    before = dict(unet.attn_processors)
    keys = list(unet.state_dict())
    with processors(unet, frame_attention_rules("window")) as installed:
        assert list(unet.state_dict()) == keys  # frame attention adds no parameters
        inside = unet.attn_processors
        assert set(installed) == {n for n in inside if n.endswith("attn1.processor")}
        assert all(isinstance(p, WindowAttention) == n.endswith("attn1.processor") for n, p in inside.items())
        assert all(isinstance(p, PassFrameInfo) for n, p in inside.items() if not n.endswith("attn1.processor"))
    assert all(unet.attn_processors[n] is p for n, p in before.items())
    with processors(unet, frame_attention_rules("none")) as installed:
        assert not installed and all(unet.attn_processors[n] is p for n, p in before.items())


def test_rules_match_module_names_and_frame_info_reaches_only_their_layers(attn, caplog):
    """An up-blocks-only rule installs there alone; the UNet called with frame_info runs without
    diffusers' "unexpected cross_attention_kwargs" warning and equals the plain UNet for one frame."""
    unet, _ = attn
    with processors(unet, frame_attention_rules("window", "up_blocks.*attn1.processor")) as installed:
        assert installed and all(n.startswith("up_blocks.") and n.endswith("attn1.processor") for n in installed)
        x = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(2))
        text = torch.randn(1, 16, 32, generator=torch.Generator().manual_seed(3))
        with caplog.at_level("WARNING"):
            framed = unet(x, 10, encoder_hidden_states=text, cross_attention_kwargs=FrameInfo(1).kwargs()).sample
        assert "not expected" not in caplog.text
    torch.testing.assert_close(framed, unet(x, 10, encoder_hidden_states=text).sample, rtol=0, atol=1e-5)


def test_initial_noise_independent_matches_diffusers_and_shared_is_common():
    from diffusers.utils.torch_utils import randn_tensor

    own = initial_noise(4, (4, 8, 8), torch.Generator().manual_seed(7))
    ref = randn_tensor((4, 4, 8, 8), generator=torch.Generator().manual_seed(7))
    assert torch.equal(own, ref)
    shared = initial_noise(4, (4, 8, 8), torch.Generator().manual_seed(7), shared=1.0)
    assert all(torch.equal(shared[0], shared[i]) for i in range(4))
    mixed = initial_noise(500, (4, 8, 8), torch.Generator().manual_seed(7), shared=0.5)
    assert abs(float(mixed.var()) - 1.0) < 0.1  # variance preserved
    c = np.corrcoef(mixed[0].flatten().numpy(), mixed[1].flatten().numpy())[0, 1]
    assert 0.35 < c < 0.65  # half of the variance is common


def test_framing_keeps_keypoints_and_masks_aligned(tmp_path):
    size = (96, 64)
    root = write_passes(tmp_path / "p", frames=1, size=size)
    folder = PassesFolder.open(root)
    framing = Framing.cover(size, (64, 64))
    assert framing.resized == (96, 64) and framing.offset == (16, 0)
    # A single-pixel dot drawn at a keypoint lands at the mapped point after resize + crop.
    for target in [(64, 64), (32, 32), (48, 32)]:
        framing = Framing.cover(size, target)
        image = np.zeros((64, 96, 1), np.float32)
        x, y = 50, 20
        image[y, x] = 1.0
        framed = framing.image(image)[..., 0]
        ys, xs = np.nonzero(framed)
        w = framed[ys, xs]
        centre = np.array([(xs + 0.5) @ w / w.sum(), (ys + 0.5) @ w / w.sum()])
        np.testing.assert_allclose(centre, framing.points(np.array([x + 0.5, y + 0.5])), atol=0.35)
    # Skeleton and mask come through the same framing: the mask covers the skeleton's limbs.
    framing = Framing.cover(size, (48, 32))
    cond = load_condition(folder, ["openpose"], [0], framing, 3)
    mask = load_mask(folder, [0], framing)
    limbs = cond.frames[0].max(-1) > 80
    assert limbs.any() and (mask[0][limbs] > 50).mean() > 0.95
    neck = framing.points(folder.keypoints(0, "a")[1, :2])
    assert mask[0][int(neck[1]), int(neck[0])] > 127


def test_conditions_stack_passes_and_check_channels(tmp_path):
    folder = PassesFolder.open(write_passes(tmp_path / "p", frames=2))
    framing = Framing.cover(folder.resolution)
    stack = load_condition(folder, ["depth", "normal", "mask"], [0, 1], framing, 5)
    assert stack.frames.shape == (2, 64, 64, 5) and stack.passes == ("depth_png", "normal", "mask")
    depth3 = load_condition(folder, ["depth"], [0, 1], framing, 3)  # 1 channel -> 3 for stock ControlNets
    np.testing.assert_array_equal(depth3.frames[..., 0], depth3.frames[..., 2])
    np.testing.assert_array_equal(depth3.frames[..., 0], stack.frames[..., 0])
    with pytest.raises(UserError, match="channels"):
        load_condition(folder, ["depth", "normal"], [0], framing, 3)
    with pytest.raises(UserError, match="no pass 'flow'"):
        load_condition(folder, ["flow"], [0], framing, 3)


def test_metric_depth_uses_the_clips_range_from_meta_like_the_depth_png(tmp_path):
    import json

    from render.exr import write_exr
    from render.png import write_png

    # render/ writes metric depth (EXR, channel named by exr_channels) beside depth_png, whose entry holds
    # the clip's near/far: the EXR read through load_condition must give the depth PNG's pixels.
    root = write_passes(tmp_path / "p", frames=3, passes=("mask", "depth_png"))
    meta = json.loads((root / "meta.json").read_text())
    assert (meta["passes"]["depth_png"]["near"], meta["passes"]["depth_png"]["far"]) == pytest.approx((2.0, 2.2))
    meta["passes"]["depth"] = {"dir": "depth", "ext": "exr", "dtype": "float32", "channels": 1, "kind": "depth_float",
                               "colour_space": "linear", "exr_channels": ["Y"], "encoding": "metric z"}
    (root / "meta.json").write_text(json.dumps(meta))
    folder = PassesFolder.open(root)
    for i in range(3):
        body = folder.read("mask", i)[..., 0] > 0
        write_exr(root / "depth" / f"{i:06d}.exr", {"Y": np.where(body, 2.0 + 0.1 * i, 1e10).astype(np.float32)})
    framing = Framing.cover(folder.resolution)
    from_exr = load_condition(folder, ["depth"], [0, 1, 2], framing, 1).frames[..., 0]
    from_png = load_condition(folder, ["depth_png"], [0, 1, 2], framing, 1).frames[..., 0]
    np.testing.assert_array_equal(from_exr, from_png)
    # the documented encoding (render/depthmap.py): near 255, far 1, middle round(1 + 254 / 2), background 0
    body0 = folder.read("mask", 0)[..., 0] > 0
    assert set(np.unique(from_exr[0][body0])) == {255} and set(np.unique(from_exr[1][body0])) <= {128, 0}
    assert set(np.unique(from_exr[2][folder.read("mask", 2)[..., 0] > 0])) == {1}
    assert (from_exr[0][~body0] == 0).all()
    # a PNG whose pixels disagree with the EXR proves the comparison can fail
    write_png(root / "depth_png" / "000000.png", np.full(folder.resolution[::-1], 7, np.uint8))
    assert not np.array_equal(load_condition(folder, ["depth_png"], [0], framing, 1).frames[0, ..., 0], from_exr[0])


def test_missing_model_is_a_one_line_error_naming_it(tmp_path):
    from diffusion.loaders.sd15 import load_sd15

    with pytest.raises(UserError, match="no such checkpoint file"):
        load_sd15(str(tmp_path / "model.safetensors"))
    with pytest.raises(UserError, match="someone/no-such-model.*hf download someone/no-such-model"):
        load_sd15("someone/no-such-model")
    with pytest.raises(UserError, match="lacks this component"):
        load_sd15(str(tmp_path))


def test_registry_lists_methods_and_settings():
    from diffusion.registry import get_method, get_recipe, methods, recipes

    assert "controlnet" in methods() and recipes()["controlnet"] == "controlnet"
    names = [s["name"] for s in get_method("controlnet").Settings.describe()]
    assert {"prompt", "controlnet", "window", "overlap", "attention", "seed"} <= set(names)
    assert get_recipe("controlnet").name == "controlnet"
    with pytest.raises(UserError, match="unknown method"):
        get_method("nope")
    with pytest.raises(UserError, match="unknown recipe"):
        get_recipe("nope")


def test_metric_exr_depth_pass_is_read_and_normalised_per_clip(tmp_path):
    import json

    from render.exr import write_exr

    root = write_passes(tmp_path / "p", frames=2, passes=("mask",))
    meta = json.loads((root / "meta.json").read_text())
    meta["passes"]["depth"] = {"dir": "depth", "ext": "exr", "dtype": "float32", "channels": 1,
                               "colour_space": "linear", "exr_channels": ["Z"], "encoding": "metric z, 0 = none"}
    (root / "depth").mkdir()
    for i in range(2):
        z = np.zeros((64, 64), np.float32)
        z[10:20, 10:20] = 2.0 + i  # frame 1 is one metre farther
        z[30:40, 30:40] = 4.0
        write_exr(root / "depth" / f"{i:06d}.exr", {"Z": z})
    (root / "meta.json").write_text(json.dumps(meta))
    folder = PassesFolder.open(root)
    assert folder.resolve("depth") == "depth"
    cond = load_condition(folder, ["depth"], [0, 1], Framing.cover(folder.resolution), 3)
    d = cond.frames[..., 0].astype(int)
    # no near/far in meta.json: one range computed over the clip (2 m .. 4 m), render.depthmap's encoding
    # value = round(1 + 254 * (far - z) / (far - near)): near 255, 3 m 128, farthest surface 1, background 0
    assert d[0, 15, 15] == 255 and d[1, 15, 15] == 128
    assert d[0, 35, 35] == d[1, 35, 35] == 1 and d[0, 0, 0] == 0
    # near/far in the pass entry win over the frames' range: 2 m in 1 m .. 6 m -> round(1 + 254 * 4 / 5)
    meta["passes"]["depth"].update(near=1.0, far=6.0)
    (root / "meta.json").write_text(json.dumps(meta))
    cond = load_condition(PassesFolder.open(root), ["depth"], [0], Framing.cover(folder.resolution), 1)
    assert cond.frames[0, 15, 15, 0] == 204


def test_flow_exr_channels_are_read_in_the_order_meta_names_them(tmp_path):
    import json

    from render.exr import write_exr
    from render.meta import standard_pass

    # render/ writes flow as EXR channels R (dx), G (dy) with exr_channels ["R", "G"]; sorting the names
    # would give (G, R) and swap dx and dy.
    root = write_passes(tmp_path / "p", frames=1, passes=("mask",))
    meta = json.loads((root / "meta.json").read_text())
    meta["passes"]["flow"] = standard_pass("flow", exr_channels=["R", "G"])
    (root / "meta.json").write_text(json.dumps(meta))
    dx, dy = np.full((64, 64), 3.0, np.float32), np.full((64, 64), -1.5, np.float32)
    write_exr(root / "flow" / "000000.exr", {"R": dx, "G": dy})
    flow = PassesFolder.open(root).read("flow", 0)
    assert flow.shape == (64, 64, 2)
    assert (flow[..., 0] == 3.0).all() and (flow[..., 1] == -1.5).all()
    del meta["passes"]["flow"]["exr_channels"]                     # no names: refuse to guess
    (root / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(UserError, match="lacks exr_channels"):
        PassesFolder.open(root).read("flow", 0)
