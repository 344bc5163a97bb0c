"""Shared fixture of the diffusion tests: the tiny models, written once per session."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory):
    from diffusion.loaders.tiny import VERSION, write_tiny_models

    # Named like the per-user cache folder, so AVATARCINE_CACHE=<parent> makes `--model tiny` find it.
    return write_tiny_models(tmp_path_factory.mktemp("cache") / VERSION)


def run_method(method, passes, components, settings):
    """``method.run`` with the scheduler ``settings`` names (module fixtures share one components object)."""
    from diffusion.loaders.schedulers import make_scheduler

    components.scheduler = make_scheduler(settings.scheduler, components.scheduler.config)
    return method.run(passes, settings, components)


@pytest.fixture(scope="module")
def mya_dir(tiny_dir, tmp_path_factory):
    """A tiny Make-Your-Anchor model folder built from the tiny parts (one per test module)."""
    from diffusion.methods.make_your_anchor.model import write_tiny_mya

    return write_tiny_mya(tiny_dir, tmp_path_factory.mktemp("mya") / "tiny-mya")


@pytest.fixture(scope="module", autouse=False)
def one_thread():
    """Tiny models gain nothing from intra-op threads; one thread avoids OpenMP spin-waits on a busy CI."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def add_rgb(root: Path, source: str = "mask") -> Path:
    """Give a synthetic passes folder an ``rgb`` pass: a red figure on grey (``mask``), or a copy of a pass."""
    meta = json.loads((root / "meta.json").read_text())
    (root / "rgb").mkdir(exist_ok=True)
    for frame in meta["frames"]:
        name = f"{frame['index']:06d}.png"
        if source == "mask":
            mask = cv2.imread(str(root / "mask" / name), cv2.IMREAD_GRAYSCALE)
            image = np.full(mask.shape + (3,), 90, np.uint8)
            image[mask > 0] = (60, 80, 220)  # BGR
        else:
            image = cv2.imread(str(root / source / name), cv2.IMREAD_COLOR)
        cv2.imwrite(str(root / "rgb" / name), image)
    meta["passes"]["rgb"] = {"dir": "rgb", "ext": "png", "dtype": "uint8", "channels": 3, "colour_space": "sRGB",
                             "encoding": "synthetic target"}
    (root / "meta.json").write_text(json.dumps(meta))
    return root


def assert_frozen(c, tiny_dir, skip_lora: bool = False):
    """The components' UNet, VAE and text encoder equal the tiny stock ones and train nothing (with
    ``skip_lora``: nothing but their LoRA layers)."""
    import torch
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextModel

    stock = {"unet": UNet2DConditionModel.from_pretrained(tiny_dir, subfolder="unet"),
             "vae": AutoencoderKL.from_pretrained(tiny_dir, subfolder="vae"),
             "text_encoder": CLIPTextModel.from_pretrained(tiny_dir, subfolder="text_encoder")}
    for name, reference in stock.items():
        used = getattr(c, name).state_dict()
        for key, value in reference.state_dict().items():
            if key not in used:  # a LoRA-wrapped layer keeps its weight as base_layer
                key = key.replace(".weight", ".base_layer.weight").replace(".bias", ".base_layer.bias")
            assert torch.equal(used[key], value), f"{name}.{key} changed"
        trainable = [n for n, p in getattr(c, name).named_parameters() if p.requires_grad]
        assert all("lora_" in n for n in trainable) if skip_lora else not trainable
