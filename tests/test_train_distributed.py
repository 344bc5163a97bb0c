"""ControlNet training under ``accelerate launch`` with two CPU processes (gloo): data-parallel
training with batch b per process equals single-process training with batch 2b, and resume works.

How two processes split a step: accelerate shards the batch sampler (``split_batches=False``), so
process p takes batch 2k+p of size b of the epoch's seeded permutation; together that is batch k of
size 2b of the same permutation, the one a single process with batch 2b takes. DDP averages the two
processes' gradients, i.e. the gradient of the mean loss over the 2b items. What differs is the
noise: the trainer draws batch k's noise from a generator seeded with (seed, process, k), so the
processes draw (seed, 0, k) and (seed, 1, k) while a single process draws (seed, 0, k) for all 2b
items. The reference is therefore a single process whose loss draws each half of its batch as the
matching process does (:class:`SplitNoise`); its forward passes have the very shapes of the
processes' (b items), so only the summation of the two gradients differs (all-reduce of the
1/2-scaled gradients vs autograd accumulating both halves).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from _diffusion_util import add_rgb, one_thread, tiny_dir  # noqa: F401  (fixtures)
from diffusion.io.synthetic_passes import write_passes
from diffusion.training.recipes.controlnet import ControlNetRecipe, ControlNetTrainConfig
from diffusion.training.trainer import Trainer, batch_generator, train
from motion.errors import UserError

REPO = Path(__file__).resolve().parents[1]
WEIGHTS = "diffusion_pytorch_model.safetensors"
pytestmark = pytest.mark.usefixtures("one_thread")


class SplitNoise(ControlNetRecipe):
    """The controlnet recipe for one process with batch 2b: half p of each batch draws its noise as
    process p of a two-process run does, and the loss is the mean of the halves' losses."""

    def __init__(self, seed: int):
        self.seed, self.micro = seed, 0

    def loss(self, setup, batch, generator):
        b = len(batch["caption"]) // 2
        halves = [{k: v[p * b:(p + 1) * b] for k, v in batch.items()} for p in (0, 1)]
        losses = [super(SplitNoise, self).loss(setup, half, batch_generator(self.seed, p, self.micro))
                  for p, half in enumerate(halves)]
        self.micro += 1
        return (losses[0] + losses[1]) / 2


@pytest.fixture(scope="module")
def fields(tiny_dir, tmp_path_factory) -> dict:
    # 4 frames, 2 items per step: step 3 is in the second epoch (a new seeded order)
    clip = add_rgb(write_passes(tmp_path_factory.mktemp("dp") / "clip", frames=4))
    return dict(data=[str(clip)], passes=["skeleton"], resolution=64, model=str(tiny_dir), steps=3,
                learning_rate=1e-3, lr_scheduler="linear", warmup_steps=1, checkpoint_every=1000, seed=11)


def _launch(config: Path, *extra: str) -> None:
    """``accelerate launch`` of ``avatarcine train controlnet CONFIG`` on two CPU processes. accelerate
    1.15 starts several CPU processes through its torchrun launcher (``--multi_gpu``) when
    ACCELERATE_USE_CPU is set; ``--cpu --num_processes 2`` alone runs one process (it needs mpirun)."""
    env = {**os.environ, "ACCELERATE_USE_CPU": "true", "OMP_NUM_THREADS": "1", "GLOO_SOCKET_IFNAME": "lo",
           "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
           "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_ip",
           "127.0.0.1", "--main_process_port", "0", "-m", "motion.cli", "train", "controlnet", str(config), *extra]
    done = subprocess.run(cmd, env=env, cwd=config.parent, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]


def _write(path: Path, **config) -> Path:
    path.write_text(yaml.safe_dump(config))
    return path


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(folder / WEIGHTS)


def _single(fields: dict, output: Path, recipe: ControlNetRecipe, batch_size: int) -> dict[str, torch.Tensor]:
    trainer = Trainer(recipe, ControlNetTrainConfig(**fields, batch_size=batch_size, output=str(output)))
    trainer.start()
    trainer.fit()
    return _weights(trainer.final)


def _distance(a: dict, b: dict) -> float:
    return float(torch.sqrt(sum(((a[k] - b[k]) ** 2).sum() for k in a)))


def test_two_processes_equal_one_with_the_doubled_batch_and_resume_exactly(fields, tmp_path):
    _launch(_write(tmp_path / "dp.yaml", **fields, batch_size=1, output="dp"))
    dp = _weights(tmp_path / "dp" / "controlnet")
    reference = _single(fields, tmp_path / "ref", SplitNoise(fields["seed"]), batch_size=2)
    own_noise = _single(fields, tmp_path / "own", ControlNetRecipe(), batch_size=2)
    initial = ControlNetRecipe().setup(ControlNetTrainConfig(**fields, output=str(tmp_path / "init")),
                                       torch.device("cpu"), torch.float32).trainable["controlnet"].state_dict()
    update = _distance(reference, initial)                       # what training moved the weights
    assert update > 0
    # Tolerance: the two runs differ only in how the two half-batch gradients are summed (one fp32
    # rounding per element per step). Adam normalises each element's step, so an element whose
    # gradient is near zero can move differently, but over the whole update that is a rounding-level
    # fraction (measured: 4e-5 of the update, max 2.4e-6 per weight); the control below is 1.4x the update.
    assert _distance(dp, reference) <= 1e-3 * update
    # control: the same single-process run with the trainer's own noise (one draw for all 2b items)
    assert _distance(own_noise, reference) > 0.05 * update

    # resume under two processes: stop at step 2, continue: the same weights, bit for bit
    split = _write(tmp_path / "split.yaml", **fields, batch_size=1, output="split")
    _launch(split, "--max-steps", "2")
    stopped = _weights(tmp_path / "split" / "checkpoint-000002" / "controlnet")
    with pytest.raises(UserError, match="trained on 2 processes, resumed on 1"):   # another split of the data
        train(ControlNetRecipe(), ControlNetTrainConfig(**fields, batch_size=1, output=str(tmp_path / "split")),
              resume=True)
    _launch(split, "--resume")
    resumed = _weights(tmp_path / "split" / "controlnet")
    assert all(torch.equal(resumed[k], dp[k]) for k in dp)
    assert _distance(stopped, dp) > 0.05 * update                # control: the third step changed them
