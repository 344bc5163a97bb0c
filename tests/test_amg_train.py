"""AMG training (``avatarcine train amg``) on synthetic passes folders with an avatar and an rgb pass:
only LoRA and conv_in move, the loss on a fixed batch falls, the adapter file reloads to the same
outputs, a stopped-and-resumed run equals an uninterrupted one, and the CLI trains then generates."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import yaml
from torch.utils.data import default_collate

from _diffusion_util import add_rgb, one_thread, tiny_dir  # noqa: F401  (fixtures)
from diffusion.io.synthetic_passes import PASS_NAMES, write_passes
from diffusion.methods.amg import model as amg
from diffusion.training.recipes.amg import RECIPE, AMGTrainConfig
from diffusion.training.trainer import Trainer, train
from motion.errors import UserError

AVATAR_CLIP = PASS_NAMES + ("avatar",)   # the synthetic figure with an avatar pass
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return add_rgb(write_passes(tmp_path_factory.mktemp("train") / "clip", frames=6, passes=AVATAR_CLIP))


def _config(tiny_dir, clip, output, **kw) -> AMGTrainConfig:
    base = dict(data=[str(clip)], model=str(tiny_dir), output=str(output), resolution=64, frames=4, stride=1,
                steps=8, batch_size=2, learning_rate=5e-3, warmup_steps=0, checkpoint_every=1000, seed=5)
    base.update(kw)
    return AMGTrainConfig(**base)


def _losses(trainer: Trainer, batch: dict) -> np.ndarray:
    with torch.no_grad():
        return np.array([RECIPE.loss(trainer.setup, batch, torch.Generator().manual_seed(s)).item() for s in range(4)])


def _unet(trainer):
    return trainer.accelerator.unwrap_model(trainer.setup.trainable["unet"])


def _state(module):
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


@pytest.mark.parametrize("base", ["modelscope", "animatediff"])
def test_training_moves_only_lora_and_conv_in_lowers_the_loss_and_reloads(tiny_dir, clip, tmp_path, base):
    trainer = Trainer(RECIPE, _config(tiny_dir, clip, tmp_path / "out", base=base))
    trainer.start()
    dataset = trainer.setup.dataset
    assert len(dataset) == 3 and dataset[0]["pixel_values"].shape == (4, 3, 64, 64)
    batch = default_collate([dataset[i] for i in range(len(dataset))])
    before, weights = _losses(trainer, batch), _state(_unet(trainer))
    trainer.fit()
    after = _losses(trainer, batch)
    assert (after < before).all() and after.mean() < 0.9 * before.mean(), (before, after)
    moved = {k for k, v in _state(_unet(trainer)).items() if not torch.equal(v, weights[k])}
    assert moved and all("lora_" in k or k.startswith("conv_in.") for k in moved)
    assert "conv_in.weight" in moved
    assert any("lora_B" in k for k in moved)
    # the adapter file (metadata + weights) makes a fresh base the trained network
    path = trainer.final / amg.ADAPTER_FILE
    fresh = amg.load_base(base, str(tiny_dir)).unet
    meta = amg.apply_adapter(fresh, path)
    assert (meta["base"], meta["model"], meta["pass"], meta["steps"]) == (base, str(tiny_dir), "avatar", 8)
    trained = _unet(trainer).eval()
    g = torch.Generator().manual_seed(1)
    x, text = torch.randn(1, 8, 4, 8, 8, generator=g), torch.randn(1, 16, 32, generator=g)
    from diffusion.loaders.video_unet import video_context

    with torch.no_grad():
        ctx = video_context(fresh, text, 4)
        assert torch.equal(fresh(x, 300, encoder_hidden_states=ctx).sample,
                           trained(x, 300, encoder_hidden_states=ctx).sample)
    assert path.stat().st_size < 2_000_000                                   # an adapter, not a model


def test_stopped_and_resumed_run_equals_an_uninterrupted_one(tiny_dir, clip, tmp_path):
    whole = train(RECIPE, _config(tiny_dir, clip, tmp_path / "whole", steps=4))
    stopped = _config(tiny_dir, clip, tmp_path / "parts", steps=4, checkpoint_every=2)
    train(RECIPE, stopped, max_steps=2)
    resumed = train(RECIPE, stopped, resume=True)
    a, b = _state(_unet(whole)), _state(_unet(resumed))
    assert all(torch.equal(a[k], b[k]) for k in a)
    log = [json.loads(line) for line in (tmp_path / "parts" / "log.jsonl").read_text().splitlines()]
    assert [e["step"] for e in log] == [1, 2, 3, 4]


def test_cli_trains_then_generates_with_the_adapter(tiny_dir, clip, tmp_path, monkeypatch, capsys):
    import motion.cli

    monkeypatch.setenv("AVATARCINE_CACHE", str(tiny_dir.parent))
    config = tmp_path / "train.yaml"
    config.write_text(yaml.safe_dump({"data": [str(clip)], "model": "tiny", "output": "runs/amg", "resolution": 64,
                                      "frames": 4, "steps": 2, "batch_size": 1, "prompt": "a person, photo"}))
    assert motion.cli.main(["train", "amg", str(config)]) == 0
    out = capsys.readouterr().out
    adapter = tmp_path / "runs" / "amg" / "amg" / amg.ADAPTER_FILE
    assert adapter.is_file() and f"--lora {adapter}" in out
    record = json.loads((tmp_path / "runs" / "amg" / "train.json").read_text())
    assert record["config"]["learning_rate"] == 1e-6 and record["config"]["weight_decay"] == 0.0
    assert motion.cli.main(["generate", str(clip), "--method", "amg", "--model", "tiny", "--lora", str(adapter),
                            "--prompt", "a person", "--steps", "2", "-o", str(tmp_path / "gen")]) == 0
    assert (tmp_path / "gen" / "video.mp4").is_file()
    capsys.readouterr()
    assert motion.cli.main(["generate", str(clip), "--method", "amg", "--model", "tiny", "--lora", str(adapter),
                            "--condition", "normal", "--prompt", "a person", "-o", str(tmp_path / "bad")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "'avatar' pass" in err[0] and "'normal' pass" in err[0]


def _write_video(path, frames, fps):
    import imageio.v2 as imageio

    with imageio.get_writer(path, fps=fps, codec="libx264", pixelformat="yuv420p", macro_block_size=1,
                            quality=10) as writer:
        for frame in frames:
            writer.append_data(frame)
    return path


def test_a_users_video_file_is_the_target_of_its_passes_folder(tiny_dir, clip, tmp_path):
    from diffusion.io.passes import PassesFolder

    folder = PassesFolder.open(clip)
    rgb = [np.round(folder.read("rgb", i) * 255).astype(np.uint8) for i in folder.indices]
    # the video at twice the passes' frame rate: passes frame k (time k / 8 s) is video frame 2k
    doubled = [frame for image in rgb for frame in (image, 255 - image)]
    video = _write_video(tmp_path / "me.mp4", doubled, fps=2 * folder.fps)
    config = tmp_path / "train.yaml"
    config.write_text(yaml.safe_dump({"data": [str(clip)], "videos": {str(clip): "me.mp4"}, "model": str(tiny_dir),
                                      "output": "out", "resolution": 64, "frames": 4, "steps": 1}))
    loaded = RECIPE.load_config(config)
    assert loaded.videos == {str(clip): str(video)}
    setup = RECIPE.setup(loaded, torch.device("cpu"), torch.float32)
    got = setup.dataset[0]["pixel_values"].numpy()                      # (4, 3, H, W) in [-1, 1]
    expected = np.stack([im.transpose(2, 0, 1) for im in rgb[:4]]) / 127.5 - 1
    inverted = np.stack([(255 - im).transpose(2, 0, 1) for im in rgb[:4]]) / 127.5 - 1
    assert np.abs(got - expected).mean() < 0.05                          # H.264 at high quality
    assert np.abs(got - inverted).mean() > 0.5                           # the odd frames are not taken
    short = _write_video(tmp_path / "short.mp4", doubled[:3], fps=2 * folder.fps)
    with pytest.raises(UserError, match="ends after 3 frames .* run to 0.62 s"):
        RECIPE.setup(loaded.model_copy(update={"videos": {str(clip): str(short)}}), torch.device("cpu"),
                     torch.float32)
    with pytest.raises(UserError, match="videos: .* is not one of the data folders"):
        RECIPE.setup(loaded.model_copy(update={"videos": {str(tmp_path): str(short)}}), torch.device("cpu"),
                     torch.float32)
