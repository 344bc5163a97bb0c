"""A method defined here, outside the framework (one settings class, one denoiser), runs through
``avatarcine generate``, ``avatarcine methods`` and the benchmark harness; the settings groups check
their values and the shared loops keep their contracts."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest
import torch

from _benchmark_util import smoke_dataset
from _diffusion_util import one_thread, tiny_dir  # noqa: F401  (fixtures)
from diffusion.io.conditioning import load_mask
from diffusion.io.synthetic_passes import write_passes
from diffusion.loaders.sd15 import load_sd15
from diffusion.registry import Entry, register, unregister
from diffusion.sampling.method import Denoiser, Method, Run
from diffusion.sampling.settings import (DeviceSettings, FramingSettings, ModelSettings, OutputSettings,
                                         SamplingSettings, TemporalSettings, override, setting)
from motion.cli import main
from motion.errors import UserError

pytestmark = pytest.mark.usefixtures("one_thread")


@dataclass
class ToySettings(OutputSettings, DeviceSettings, TemporalSettings, FramingSettings, SamplingSettings,
                  ModelSettings):
    model: str = override(ModelSettings, "model", "tiny")
    strength: float = setting(0.5, "how far each step pulls the latents toward the mask's pattern", low=0, high=1)


class ToyDenoiser(Denoiser):
    """Predicts the noise that would take the latents to a fixed pattern of the actor mask."""

    def __init__(self, run: Run):
        mask = load_mask(run.passes, run.indices, run.framing)
        h, w = run.latent_size
        pattern = torch.nn.functional.adaptive_avg_pool2d(torch.from_numpy(mask).float()[:, None] / 255.0, (h, w))
        self.target = (pattern * 4 - 2).expand(-1, run.components.latent_channels, -1, -1)
        self.strength = run.settings.strength

    def __call__(self, latents, t, step, start, stop):
        self.evaluations += stop - start
        return self.strength * (latents - self.target[start:stop])


class ToyMethod(Method):
    name = "toy"
    summary = "test method: latents pulled toward the actor mask"
    Settings = ToySettings

    def load(self, s):
        return load_sd15(s.model, scheduler=s.scheduler, device=s.device, dtype=s.dtype)

    def denoiser(self, run):
        return ToyDenoiser(run)

    def bench_rows(self, budget, train_dirs, work, seed, size):
        from diffusion.benchmark.harness import method_row

        return [method_row(self, "toy", self.settings(steps=budget.sample_steps, seed=seed, width=size, height=size))]


METHOD = ToyMethod()


@pytest.fixture()
def toy(tiny_dir, monkeypatch):
    monkeypatch.setenv("AVATARCINE_CACHE", str(tiny_dir.parent))
    register(Entry("toy", __name__))
    yield
    unregister("toy")


def test_toy_method_runs_through_generate_and_methods(toy, tmp_path, capsys):
    passes = write_passes(tmp_path / "passes", frames=3)
    out = tmp_path / "out"
    assert main(["generate", str(passes), "--method", "toy", "--strength", "0.8", "--steps", "3", "--window", "2",
                 "--overlap", "1", "-o", str(out)]) == 0
    capsys.readouterr()
    record = json.loads((out / "run.json").read_text())
    assert record["method"] == "toy" and record["settings"]["strength"] == 0.8
    assert record["sampling"]["windows"] == [[0, 2], [1, 3]]
    assert sorted(p.name for p in (out / "frames").iterdir()) == ["000000.png", "000001.png", "000002.png"]
    assert main(["generate", str(passes), "--method", "toy", "--strength", "2", "-o", str(tmp_path / "bad")]) == 2
    assert capsys.readouterr().err.strip() == "avatarcine: error: --strength: must be >= 0 and <= 1, got 2.0"
    assert main(["generate", str(passes), "--method", "toy", "--prompt", "x", "-o", str(tmp_path / "bad")]) == 2
    assert "unrecognized arguments: --prompt x" in capsys.readouterr().err  # the toy has no text settings
    assert not (tmp_path / "bad").exists()
    assert main(["methods", "--json"]) == 0
    table = json.loads(capsys.readouterr().out)
    assert any(s["name"] == "strength" and s["high"] == 1 for s in table["toy"]["settings"])


def test_toy_method_runs_in_the_harness(toy, tmp_path):
    from diffusion.benchmark.harness import Budget, run_harness

    table = run_harness(smoke_dataset(0), tmp_path / "report", methods=["toy", "retrieval"],
                        budget=Budget(sample_steps=2), reports=False)
    rows = {(r["method"], r["split"]) for r in table["rows"]}
    assert ("toy", "heldout") in rows and ("retrieval", "heldout_identity") in rows
    assert (tmp_path / "report" / "predictions" / "heldout").is_dir()


@pytest.mark.parametrize("field,value,message", [
    ("cfg", float("nan"), "--cfg: must be a finite number, got nan"),
    ("cfg", float("inf"), "--cfg: must be a finite number, got inf"),
    ("eta", -0.5, "--eta: must be >= 0 and <= 1, got -0.5"),
    ("width", 100, "--width: must be a multiple of 8, got 100"),
    ("width", 0, "--width: must be >= 8 and <= 8192, got 0"),
    ("steps", 2.5, "--steps: must be a whole number, got 2.5"),
    ("scheduler", "lms", "--scheduler: 'lms' is not one of ddim, dpm, euler"),
    ("overlap", 16, "--overlap: must be smaller than the window (16), got 16"),
    ("controlnet_scale", (1.0, 2.0), "--controlnet-scale: give 1 or 1 values (one per ControlNet), got 2"),
    ("guidance_end", (0.0,), "need start < end"),
    ("shared_noise", 1.5, "--shared-noise: must be >= 0 and <= 1, got 1.5"),
    ("side_by_side", "yes", "--side-by-side: must be true or false"),
])
def test_settings_reject_bad_values_naming_the_flag(field, value, message):
    from diffusion.methods.controlnet import METHOD as CONTROLNET

    with pytest.raises(UserError, match=message.replace("(", r"\(").replace(")", r"\)")):
        CONTROLNET.settings(**{field: value})
    CONTROLNET.settings()  # the defaults are valid


def test_settings_round_trip_through_a_record_and_json():
    from diffusion.methods.controlnet import METHOD as CONTROLNET

    s = CONTROLNET.settings(controlnet=["openpose", "depth"], controlnet_scale=[1.0, 0.5], window=None, cfg=3)
    again = CONTROLNET.Settings.from_dict(json.loads(json.dumps(s.to_dict())))
    assert again == s and again.controlnet == ("openpose", "depth") and isinstance(again.cfg, float)
    with pytest.raises(UserError, match="unknown keys"):
        CONTROLNET.Settings.from_dict({"controlnets": []})


def test_overlapping_windows_previous_rule_by_hand():
    """Windows (0, 3) and (2, 5) share frame 2: ``previous`` keeps window 0's prediction there,
    ``uniform`` averages the two."""
    from diffusion.sampling.windows import OverlapAccumulator, frame_weight_totals

    latents = torch.zeros(5, 1, 1, 1)
    for weighting, frame2 in (("previous", 1.0), ("uniform", 2.0)):
        acc = OverlapAccumulator(latents, weighting)
        acc.add(0, 3, torch.full((3, 1, 1, 1), 1.0))
        acc.add(2, 5, torch.full((3, 1, 1, 1), 3.0))
        assert acc.mean().flatten().tolist() == [1.0, 1.0, frame2, 3.0, 3.0]
    assert frame_weight_totals(5, [(0, 3), (2, 5)], "previous").tolist() == [1, 1, 1, 1, 1]


def test_sequential_loop_sees_finished_windows_and_equals_joint_for_independent_frames():
    """Window by window, ``after_window`` sees each window finished before the next starts; a model that
    treats frames independently gives what the joint loop gives."""
    from diffusers import DDIMScheduler

    from diffusion.sampling.loop import overlapped_denoise, sequential_denoise

    scheduler = DDIMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012)
    scheduler.set_timesteps(4)
    x = torch.randn(4, 2, 3, 3, generator=torch.Generator().manual_seed(0))
    model = lambda z, t, i, a, b: 0.1 * z + 0.01 * a  # noqa: E731  (frame-independent, window-aware offset)
    seen = []
    out = sequential_denoise(x, scheduler, scheduler.timesteps, model, [(0, 2), (2, 4)],
                             after_window=lambda a, b, z: seen.append((a, b, z.clone())))
    assert [(a, b) for a, b, _ in seen] == [(0, 2), (2, 4)]
    assert torch.equal(seen[0][2], out[0:2])
    scheduler.set_timesteps(4)
    joint = torch.cat([overlapped_denoise(x[a:b], scheduler, scheduler.timesteps, lambda z, t, i, s, e, a=a:
                                          model(z, t, i, a, a), [(0, b - a)]) for a, b in ((0, 2), (2, 4))])
    torch.testing.assert_close(out, joint, rtol=0, atol=1e-6)
    assert not torch.equal(out, x)
