"""ControlNet training (``avatarcine train controlnet``) on synthetic passes folders with an rgb pass."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import yaml
from safetensors.torch import load_file
from torch.utils.data import default_collate

from _diffusion_util import add_rgb, assert_frozen, one_thread, tiny_dir  # noqa: F401  (fixtures)
from diffusion.io.synthetic_passes import write_passes
from diffusion.training.recipes.controlnet import RECIPE, ControlNetTrainConfig
from diffusion.training.trainer import Trainer, train

STACK = ["skeleton", "depth_png", "normal"]  # 3 + 1 + 3 = 7 channels


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return add_rgb(write_passes(tmp_path_factory.mktemp("train") / "clip", frames=5))


def _config(tiny_dir, clip, output, **kw) -> ControlNetTrainConfig:
    base = dict(data=[str(clip)], passes=["skeleton"], resolution=64, model=str(tiny_dir), output=str(output),
                steps=4, batch_size=2, learning_rate=2e-3, checkpoint_every=1000, seed=7)
    base.update(kw)
    return ControlNetTrainConfig(**base)


def _write_yaml(path: Path, **fields) -> Path:
    path.write_text(yaml.safe_dump(fields))
    return path


def _cli(monkeypatch, argv: list[str]) -> int:
    import motion.cli

    return motion.cli.main(argv)


def _fixed_losses(trainer: Trainer, batch: dict) -> np.ndarray:
    with torch.no_grad():
        return np.array([RECIPE.loss(trainer.setup, batch, torch.Generator().manual_seed(s)).item() for s in range(3)])


def _controlnet(trainer: Trainer) -> torch.nn.Module:
    return trainer.accelerator.unwrap_model(trainer.setup.trainable["controlnet"])


def _state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


@pytest.fixture(scope="module")
def trained(tiny_dir, clip, tmp_path_factory):
    """10 steps on two folders (5 frames 64x64, 2 frames 96x64); fixed-batch losses (same noise and
    timesteps) before and after."""
    wide = add_rgb(write_passes(tmp_path_factory.mktemp("wide") / "clip", frames=2, size=(96, 64)))
    config = _config(tiny_dir, clip, tmp_path_factory.mktemp("run") / "out", steps=10, learning_rate=4e-3,
                     checkpoint_every=4, checkpoints_total_limit=2)
    trainer = Trainer(RECIPE, config.model_copy(update={"data": [str(clip), str(wide)]}))
    trainer.start()
    dataset = trainer.setup.dataset
    batch = default_collate([dataset[i] for i in range(len(dataset))])
    before = {"loss": _fixed_losses(trainer, batch), "controlnet": _state(_controlnet(trainer))}
    trainer.fit()
    return trainer, batch, before


def test_training_fits_a_fixed_batch(trained):
    trainer, batch, before = trained
    after = _fixed_losses(trainer, batch)
    assert np.all(after < 0.9 * before["loss"]), (before["loss"], after)
    log = [json.loads(line) for line in (trainer.output / "log.jsonl").read_text().splitlines()]
    assert [e["step"] for e in log] == list(range(1, 11))
    assert len(trainer.setup.dataset) == 7
    assert [p.name for p in sorted(trainer.output.glob("checkpoint-*"))] == ["checkpoint-000008", "checkpoint-000010"]
    last = load_file(trainer.output / "checkpoint-000010" / "controlnet" / "diffusion_pytorch_model.safetensors")
    final = load_file(trainer.output / "controlnet" / "diffusion_pytorch_model.safetensors")
    assert all(torch.equal(last[k], final[k]) for k in final)


def test_only_controlnet_weights_change(trained, tiny_dir):
    trainer, _, before = trained
    assert_frozen(trainer.setup.extra["components"], tiny_dir)
    now = _state(_controlnet(trainer))
    changed = [k for k in now if not torch.equal(now[k], before["controlnet"][k])]
    assert "controlnet_mid_block.weight" in changed and "controlnet_cond_embedding.conv_out.weight" in changed
    assert len(changed) > len(now) // 2


def test_resume_is_bit_identical(tiny_dir, clip, tmp_path, monkeypatch, capsys):
    # batch 1, accumulation 2 over 5 frames: step 3 ends on the epoch's odd batch, step 4 is in epoch 1;
    # the stop at step 2 is mid-epoch, so resuming must skip the seen batches and restore the schedule.
    fields = dict(data=[str(clip)], passes=["skeleton"], resolution=64, model=str(tiny_dir), steps=4, batch_size=1,
                  gradient_accumulation=2, learning_rate=1e-3, lr_scheduler="linear", warmup_steps=2,
                  checkpoint_every=1000, seed=3)
    whole = _write_yaml(tmp_path / "whole.yaml", output="whole", **fields)
    split = _write_yaml(tmp_path / "split.yaml", output="split", **fields)
    assert _cli(monkeypatch, ["train", "controlnet", str(whole)]) == 0
    assert _cli(monkeypatch, ["train", "controlnet", str(split), "--max-steps", "2"]) == 0
    assert [p.name for p in (tmp_path / "split").glob("checkpoint-*")] == ["checkpoint-000002"]
    assert not (tmp_path / "split" / "controlnet").exists()
    with (tmp_path / "split" / "log.jsonl").open("a") as log:    # what a run killed mid-write leaves
        log.write('{"step": 3, "loss": 0.5}\n{"step": 4, "lo')
    assert _cli(monkeypatch, ["train", "controlnet", str(split), "--resume"]) == 0
    a = load_file(tmp_path / "whole" / "controlnet" / "diffusion_pytorch_model.safetensors")
    b = load_file(tmp_path / "split" / "controlnet" / "diffusion_pytorch_model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert (tmp_path / "whole" / "log.jsonl").read_text() == (tmp_path / "split" / "log.jsonl").read_text()
    lrs = [json.loads(line)["lr"] for line in (tmp_path / "whole" / "log.jsonl").read_text().splitlines()]
    assert lrs == pytest.approx([5e-4, 1e-3, 5e-4, 0.0])  # linear warmup over 2 steps, then linear decay
    _write_yaml(split, output="split", **{**fields, "seed": 4})
    assert _cli(monkeypatch, ["train", "controlnet", str(split), "--resume"]) == 2  # the checkpoints' seed was 3
    assert "config: seed: was 3 when the checkpoints were written, now 4" in capsys.readouterr().err
    (tmp_path / "split" / "train.json").write_text('{"config": {"seed"')  # a corrupt state file
    assert _cli(monkeypatch, ["train", "controlnet", str(split), "--resume"]) == 2
    assert "train.json: unreadable JSON" in capsys.readouterr().err


@pytest.fixture(scope="module")
def stacked(tiny_dir, clip, tmp_path_factory):
    config = _config(tiny_dir, clip, tmp_path_factory.mktemp("stack") / "out", passes=STACK, steps=3)
    return train(RECIPE, config)


def test_stacked_passes_train_a_7_channel_controlnet(stacked, clip):
    controlnet = _controlnet(stacked)
    assert controlnet.config.conditioning_channels == 7
    assert controlnet.controlnet_cond_embedding.conv_in.weight.shape[1] == 7
    item = stacked.setup.dataset[0]
    assert item["conditioning_pixel_values"].shape == (7, 64, 64)
    depth = cv2.imread(str(clip / "depth_png" / "000000.png"), cv2.IMREAD_UNCHANGED) / 255.0
    np.testing.assert_allclose(item["conditioning_pixel_values"][3].numpy(), depth, atol=1e-6)
    saved = json.loads((stacked.output / "controlnet" / "config.json").read_text())
    assert saved["conditioning_channels"] == 7


def test_saved_controlnet_runs_in_the_controlnet_method(stacked, tiny_dir, clip):
    import dataclasses

    from diffusion.io.passes import PassesFolder
    from diffusion.methods.controlnet import METHOD

    final = stacked.output / "controlnet"
    settings = METHOD.settings(prompt="a person", model=str(tiny_dir), controlnet=[f"{final}={'+'.join(STACK)}"],
                               steps=2, cfg=1.0, seed=1, attention="none", window=None, max_frames=2)
    c = METHOD.load(settings)
    trained = _controlnet(stacked).state_dict()
    assert all(torch.equal(v, trained[k]) for k, v in c.controlnets[0].state_dict().items())
    passes = PassesFolder.open(clip)
    out = METHOD.run(passes, settings, c)
    assert out.frames.shape == (2, 64, 64, 3) and out.frames.dtype == np.uint8
    off = dataclasses.replace(settings, controlnet_scale=[0.0])  # the trained ControlNet acts
    assert not np.array_equal(METHOD.run(passes, off, c).frames, out.frames)


def test_condition_and_target_share_the_framing(tmp_path):
    # A 96x64 clip cropped to 64x64: rgb is a copy of the skeleton, so after framing they must coincide.
    from diffusion.training.datasets import FrameDataset, open_folders

    root = add_rgb(write_passes(tmp_path / "wide", frames=2, size=(96, 64)), source="skeleton")
    folders = open_folders([str(root)], ["skeleton"])
    data = FrameDataset(folders, ["skeleton"], (64, 64), channels=3)
    for i in range(len(data)):
        item = data[i]
        target = (item["pixel_values"] + 1) / 2
        assert target.shape == item["conditioning_pixel_values"].shape == (3, 64, 64)
        np.testing.assert_allclose(target.numpy(), item["conditioning_pixel_values"].numpy(), atol=0.5 / 255 + 1e-6)
        assert target.abs().sum() > 0
    assert [data[i]["caption"] for i in range(2)] == ["", ""]
    meta = json.loads((root / "meta.json").read_text())
    meta["caption"] = "a figure"
    meta["frames"][1]["caption"] = "a figure waving"
    (root / "meta.json").write_text(json.dumps(meta))
    data = FrameDataset(open_folders([str(root)], ["skeleton"]), ["skeleton"], (64, 64), channels=3, prompt="x")
    assert [data[i]["caption"] for i in range(2)] == ["a figure", "a figure waving"]


BAD = [
    ({"colour": "red"}, "colour: Extra inputs are not permitted"),
    ({"data": ["missing"]}, "no such passes folder"),
    ({"passes": ["flow"]}, "no pass 'flow'"),
    ({"data": ["norgb"]}, "no 'rgb' pass"),
    ({"resolution": 60}, "multiples of 8"),
]


@pytest.mark.parametrize("change,message", BAD, ids=["unknown-key", "missing-folder", "missing-pass", "no-rgb",
                                                     "resolution"])
def test_bad_config_is_one_line_user_error(change, message, clip, tmp_path, monkeypatch, capsys):
    write_passes(tmp_path / "norgb", frames=1)
    fields = {"data": [str(clip)], "passes": ["skeleton"], "model": "tiny", "output": "out", **change}
    config = _write_yaml(tmp_path / "bad.yaml", **fields)
    assert _cli(monkeypatch, ["train", "controlnet", str(config)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("avatarcine: error: ") and err.count("\n") == 1 and message in err, err
    assert not (tmp_path / "out").exists()


def test_existing_output_is_kept_without_force(tiny_dir, clip, tmp_path, monkeypatch, capsys):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("mine")
    config = _write_yaml(tmp_path / "c.yaml", data=[str(clip)], passes=["skeleton"], model=str(tiny_dir),
                         resolution=64, output="out", steps=1)
    assert _cli(monkeypatch, ["train", "controlnet", str(config)]) == 2
    assert "already exists" in capsys.readouterr().err
    assert _cli(monkeypatch, ["train", "controlnet", str(config), "--force"]) == 2  # not a training output
    assert "not deleting" in capsys.readouterr().err
    assert _cli(monkeypatch, ["train", "controlnet", str(config), "--resume"]) == 2
    assert "no checkpoint" in capsys.readouterr().err
    assert (tmp_path / "out" / "keep.txt").read_text() == "mine"


def test_given_controlnet_sets_the_channels(tiny_dir, clip, tmp_path, monkeypatch, capsys):
    # The tiny openpose ControlNet reads 3 channels: one depth pass is replicated, a 4-channel stack refused.
    openpose = str(tiny_dir / "controlnet-openpose")
    config = _config(tiny_dir, clip, tmp_path / "ok", passes=["depth_png"], controlnet=openpose, steps=1)
    trainer = Trainer(RECIPE, config)
    item = trainer.setup.dataset[0]["conditioning_pixel_values"]
    assert item.shape == (3, 64, 64) and torch.equal(item[0], item[2]) and item.max() > 0
    bad = _write_yaml(tmp_path / "bad.yaml", data=[str(clip)], passes=["skeleton", "depth_png"], model=str(tiny_dir),
                      controlnet=openpose, resolution=64, output="out")
    assert _cli(monkeypatch, ["train", "controlnet", str(bad)]) == 2
    assert "gives 4 channels but the ControlNet takes 3" in capsys.readouterr().err
