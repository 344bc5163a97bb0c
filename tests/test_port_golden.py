"""The method skeleton changed no output: fixed tiny ControlNet generations and a tiny ControlNet training
run reproduce what the code before the port (commit 36fb6ed) wrote.

``data/port_golden.json`` holds the hashes recorded then (frames, final latents, PNG files, mp4, trained
weights) with the CPU capability and torch version they were recorded with; ``port_golden.npz`` the
latents and one trained weight tensor. Hashes are compared where the CPU capability and torch version
match the recording (the operation order is the same, so the bits are); elsewhere kernels round
differently, and the arrays are compared with a tolerance: under AVX2 kernels (``ATEN_CPU_CAPABILITY=
avx2 ONEDNN_MAX_CPU_ISA=AVX2`` on the recording machine) the latents move by at most 2e-5 on values up
to 12, so 1e-3 leaves a 50x margin, while the control (another seed) moves them by more than 0.1.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from _diffusion_util import add_rgb, one_thread, tiny_dir  # noqa: F401  (fixtures)
from diffusion.io.output import write_generation
from diffusion.io.passes import PassesFolder
from diffusion.io.synthetic_passes import write_passes
from diffusion.methods.controlnet import METHOD

pytestmark = pytest.mark.usefixtures("one_thread")
DATA = Path(__file__).parent / "data"
GOLDEN = json.loads((DATA / "port_golden.json").read_text())
ARRAYS = np.load(DATA / "port_golden.npz")
SAME_CPU = GOLDEN["cpu"] == {"capability": torch.backends.cpu.get_cpu_capability(), "torch": torch.__version__}
ATOL = 1e-3
WEIGHT_ATOL = 1e-5


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    root = tmp_path_factory.mktemp("golden")
    plate = np.zeros((64, 64, 3), np.uint8)
    plate[:, :, 0] = np.linspace(0, 255, 64).astype(np.uint8)[None]
    plate[:, :, 2] = 90
    cv2.imwrite(str(root / "bg.png"), cv2.cvtColor(plate, cv2.COLOR_RGB2BGR))
    return PassesFolder.open(write_passes(root / "clip", frames=5)), root / "bg.png"


@pytest.mark.parametrize("case", sorted(GOLDEN["generation"]))
def test_generation_matches_the_recording(case, clip, tiny_dir, tmp_path):
    passes, background = clip
    golden = GOLDEN["generation"][case]
    settings = {**GOLDEN["common"], **golden["settings"], "model": str(tiny_dir)}
    if settings.get("background") == "BACKGROUND":
        settings["background"] = str(background)
    s = METHOD.settings(**settings)
    gen = METHOD.run(passes, s, METHOD.load(s))
    if SAME_CPU:
        out = write_generation(gen, tmp_path / "out")
        assert sha(gen.frames.tobytes()) == golden["frames_sha256"]
        assert sha(gen.latents.numpy().tobytes()) == golden["latents_sha256"]
        assert [sha(p.read_bytes()) for p in sorted((out / "frames").glob("*.png"))] == golden["png_sha256"]
        assert sha((out / "video.mp4").read_bytes()) == golden["video_sha256"]
    else:
        np.testing.assert_allclose(gen.latents.numpy(), ARRAYS[case], rtol=0, atol=ATOL)
    control = METHOD.run(passes, METHOD.settings(**{**settings, "seed": settings["seed"] + 1}), METHOD.load(s))
    assert np.abs(control.latents.numpy() - ARRAYS[case]).max() > 0.1


def test_training_matches_the_recording(tiny_dir, tmp_path):
    from safetensors.torch import load_file

    from diffusion.training.recipes.controlnet import RECIPE, ControlNetTrainConfig
    from diffusion.training.trainer import train

    folder = add_rgb(write_passes(tmp_path / "clip", frames=5))
    golden = GOLDEN["training"]
    config = ControlNetTrainConfig(data=[str(folder)], model=str(tiny_dir), output=str(tmp_path / "run"),
                                   **golden["config"])
    trainer = train(RECIPE, config)
    weights = load_file(str(trainer.final / "diffusion_pytorch_model.safetensors"))
    losses = [json.loads(line)["loss"] for line in (trainer.output / "log.jsonl").read_text().splitlines()]
    if SAME_CPU:
        assert sha(b"".join(weights[k].numpy().tobytes() for k in sorted(weights))) == golden["weights_sha256"]
        assert losses == golden["losses"]
    else:
        np.testing.assert_allclose(weights["controlnet_down_blocks.0.weight"].numpy(), ARRAYS["train_controlnet_down0"],
                                   rtol=0, atol=WEIGHT_ATOL)
        np.testing.assert_allclose(losses, golden["losses"], rtol=1e-3)
    # control: the learning rate matters, so the comparison above is not vacuous
    other = train(RECIPE, config.model_copy(update={"output": str(tmp_path / "other"), "learning_rate": 1e-3}))
    moved = load_file(str(other.final / "diffusion_pytorch_model.safetensors"))["controlnet_down_blocks.0.weight"]
    assert np.abs(moved.numpy() - ARRAYS["train_controlnet_down0"]).max() > 10 * WEIGHT_ATOL
