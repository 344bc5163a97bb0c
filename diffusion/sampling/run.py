"""The shared run: what every method (``diffusion.sampling.method.Method``) does to turn a passes
folder into frames.

1. frame the passes (the first ``max_frames``; one resize + centre crop for every pass),
2. make the initial noise (CPU generator, the clip's share of common noise),
3. sample with the window loop (joint overlapped windows, or window by window for autoregressive
   methods), with the method's attention processors installed and a fixed background if asked,
4. decode, composite onto the background, post-process (e.g. face enhancement),
5. return a ``Generation`` with the run record.

A method supplies its settings class, its components (``load``) and its denoiser (what one model
evaluation does for a window), plus hooks where it needs them.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import platform
from pathlib import Path

import numpy as np
import torch

from diffusion.attention.install import processors
from diffusion.io.conditioning import Framing, load_mask
from diffusion.io.output import Generation
from diffusion.io.passes import PassesFolder
from diffusion.loaders.common import Components
from diffusion.sampling.background import BackgroundLock, composite, latent_keep, paste_onto
from diffusion.sampling.latents import decode_frames, encode_image
from diffusion.sampling.loop import overlapped_denoise, sequential_denoise, step_kwargs
from diffusion.sampling.method import Method, Run
from diffusion.sampling.noise import initial_noise
from diffusion.sampling.settings import (PLATE, BackgroundSettings, FramingSettings, OutputSettings, Settings,
                                         TemporalSettings)
from diffusion.sampling.windows import window_spans
from render.images import read_rgb

DECODE_CHUNK = 16  # frames per VAE decode when the method has no window


def _framing(passes: PassesFolder, s: Settings, c: Components) -> tuple[list[int], Framing]:
    indices = passes.indices
    if isinstance(s, FramingSettings):
        indices = indices[: s.max_frames] if s.max_frames else indices
        size = (s.width or passes.resolution[0], s.height or passes.resolution[1]) if (s.width or s.height) else None
    else:
        size = None
    return indices, Framing.cover(passes.resolution, size, multiple=c.vae_scale_factor)


def _sample(run: Run, noise: torch.Tensor, lock: BackgroundLock | None = None) -> tuple[torch.Tensor, dict]:
    """Denoise ``noise`` (the first ``len(noise)`` frames of the clip) with the method's windows."""
    method, s, c = run.method, run.settings, run.components
    c.scheduler.set_timesteps(s.steps, device=c.device)
    timesteps = c.scheduler.timesteps
    latents = method.initial_latents(run, noise)
    spans = method.spans(run) if len(noise) == len(run.indices) else window_spans(len(noise), None)
    extra = step_kwargs(c.scheduler, run.generator, getattr(s, "eta", 0.0))
    with contextlib.ExitStack() as stack:
        for model, rules in method.attention(run):
            if stack.enter_context(processors(model, rules)):
                run.framed.add(id(model))
        if method.sequential:
            latents = sequential_denoise(latents, c.scheduler, timesteps, run.denoiser, spans, extra_step=extra,
                                         after_step=lock, after_window=lambda a, b, z: method.after_window(run, a, b, z))
        else:
            latents = overlapped_denoise(latents, c.scheduler, timesteps, run.denoiser, spans,
                                         weighting=method.weighting(run),
                                         extra_step=extra, after_step=lock)
    run.framed.clear()
    return latents, {"timesteps": [int(t) for t in timesteps], "windows": spans}


def _plates(run: Run) -> tuple[np.ndarray, np.ndarray]:
    """(N, H, W, 3) uint8 frames of the plate pass and (N, H, W) actor coverage, framed like the run."""
    plate = run.passes.resolve(PLATE)
    images = [np.rint(run.framing.image(run.passes.read(plate, i)[..., :3]) * 255.0).astype(np.uint8)
              for i in run.indices]
    return np.stack(images), load_mask(run.passes, run.indices, run.framing, run.settings.mask_pass)


def _background(run: Run, noise: torch.Tensor) -> tuple[BackgroundLock, np.ndarray, np.ndarray]:
    """(the lock, the background image, actor coverage per frame) for ``--background IMAGE|first``."""
    s, c, framing = run.settings, run.components, run.framing
    factor = c.vae_scale_factor
    actor = load_mask(run.passes, run.indices, framing, s.mask_pass)
    if s.background == "first":
        clean, _ = _sample(run, noise[:1])
        background = decode_frames(c, clean, 1)[0]
        actor = np.maximum(actor, actor[:1])  # behind frame 0's actor the plate is unknown: leave it free
    else:
        image = np.rint(read_rgb(s.background, "background image") * 255.0).astype(np.uint8)
        background = Framing.cover((image.shape[1], image.shape[0]), framing.size, factor).image(image)
        clean = encode_image(c, np.ascontiguousarray(background))
    keep = latent_keep(actor, factor, c.device).to(noise.dtype)
    return BackgroundLock(c.scheduler, clean.to(noise.dtype), keep, noise), background, actor


def generate(method: Method, passes: PassesFolder, s: Settings, c: Components) -> Generation:
    """Generate every frame of ``passes`` (or the first ``max_frames``) with ``method``."""
    indices, framing = _framing(passes, s, c)
    run = Run(method, passes, s, c, indices, framing, torch.Generator("cpu").manual_seed(s.seed))
    run.denoiser = method.denoiser(run)
    h, w = run.latent_size
    shared = s.shared_noise if isinstance(s, TemporalSettings) else 0.0
    noise = initial_noise(len(indices), (c.latent_channels, h, w), run.generator, shared=shared, device=c.device,
                          dtype=c.unet.dtype)
    lock = background = actor = None
    mode = s.background if isinstance(s, BackgroundSettings) else None
    if mode and mode != PLATE:
        lock, background, actor = _background(run, noise)
    else:
        lock = method.step_hook(run, noise)
    latents, info = _sample(run, noise, lock)
    window = getattr(s, "window", None)
    frames = decode_frames(c, latents, window or DECODE_CHUNK)
    if mode == PLATE:
        frames = paste_onto(frames, *_plates(run))
    elif background is not None:
        frames = composite(frames, background, actor, c.vae_scale_factor)
    frames = method.postprocess(run, frames)
    record = {
        "method": method.name,
        "settings": s.to_dict(),
        "models": c.sources,
        "device": str(c.device), "dtype": str(c.dtype).replace("torch.", ""),
        "passes": {"folder": str(passes.root.resolve()), "meta_sha256": _sha256(passes.root / "meta.json"),
                   "frames": [indices[0], indices[-1]], "count": len(indices)},
        "framing": dataclasses.asdict(framing),
        "sampling": {**info, "unet_evaluations": run.denoiser.evaluations, "noise": "CPU torch.Generator(seed)"},
        **run.record,
        "versions": versions(),
    }
    output = s if isinstance(s, OutputSettings) else OutputSettings()
    return Generation(frames=frames, condition_preview=method.preview(run), fps=output.fps or passes.fps,
                      indices=indices, record=record, latents=latents.cpu(), side_by_side=output.side_by_side)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def versions() -> dict:
    """Library versions for run records."""
    import diffusers
    import transformers
    return {"python": platform.python_version(), "torch": torch.__version__, "diffusers": diffusers.__version__,
            "transformers": transformers.__version__}
