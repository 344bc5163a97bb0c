"""``avatarcine bench generate``: seconds per frame and peak memory against clip length, and the cost
of our sampling loop against diffusers' own per-frame pipeline at equal UNet evaluations.

Each measurement runs in a fresh spawned process, so its peak resident memory (``ru_maxrss``) is
its own. Inputs: the tiny models (or ``--model``) and a synthetic passes folder of a moving figure.
"""

from __future__ import annotations

import multiprocessing
import resource
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

PROMPT = "a person dancing"


def _settings(model: str, frames: int, steps: int, device: str | None, **temporal):
    from diffusion.methods.controlnet import ControlNetSettings, ControlSpec

    return ControlNetSettings(prompt=PROMPT, negative_prompt="blurry", model=model, steps=steps, cfg=5.0, seed=0,
                              controlnets=[ControlSpec.parse("openpose")], max_frames=frames, device=device,
                              **temporal)


def _peak_mb() -> float:
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kb / 1024 if sys.platform != "darwin" else kb / 2**20


def _measure_length(model: str, passes_dir: str, frames: int, steps: int, device: str | None) -> dict:
    """One clip length with the default temporal settings (window 16, overlap 4, all-frame attention)."""
    from diffusion.methods.controlnet import load, run
    from diffusion.passes import PassesFolder

    s = _settings(model, frames, steps, device, attention="window", window=16, overlap=4)
    components = load(s)
    passes = PassesFolder.open(passes_dir)
    loaded = _peak_mb()
    start = time.perf_counter()
    gen = run(passes, s, components)
    seconds = time.perf_counter() - start
    return {"frames": frames, "seconds": round(seconds, 3), "seconds_per_frame": round(seconds / frames, 4),
            "unet_evaluations": gen.record["sampling"]["unet_evaluations"],
            "peak_rss_mb": round(_peak_mb(), 1), "rss_after_loading_mb": round(loaded, 1)}


def _measure_overhead(model: str, passes_dir: str, frames: int, steps: int, device: str | None,
                      repeats: int = 3) -> dict:
    """Ours (windows of 16, no overlap: same UNet evaluations) vs diffusers' pipeline on batches of 16."""
    import torch
    from diffusers import StableDiffusionControlNetPipeline

    from diffusion.conditioning import Framing, load_condition
    from diffusion.methods.controlnet import load, run
    from diffusion.models import make_scheduler
    from diffusion.passes import PassesFolder

    passes = PassesFolder.open(passes_dir)
    variants = {"ours_per_frame": dict(attention="none", window=16, overlap=0),
                "ours_window_attention": dict(attention="window", window=16, overlap=0),
                "ours_cross_frame_attention": dict(attention="cross-frame", window=16, overlap=0)}
    c = load(_settings(model, frames, steps, device))
    pipe = StableDiffusionControlNetPipeline(
        vae=c.vae, text_encoder=c.text_encoder, tokenizer=c.tokenizer, unet=c.unet, controlnet=c.controlnets[0],
        scheduler=make_scheduler("ddim", c.scheduler.config), safety_checker=None, feature_extractor=None,
        requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    indices = passes.indices[:frames]
    cond = load_condition(passes, ["openpose"], indices, Framing.cover(passes.resolution, None, 8), 3)

    def diffusers_run():
        for start in range(0, frames, 16):
            n = min(16, frames - start)
            pipe([PROMPT] * n, image=cond.window(start, start + n, c.device, c.dtype), negative_prompt=["blurry"] * n,
                 num_inference_steps=steps, guidance_scale=5.0, generator=torch.Generator().manual_seed(0),
                 output_type="np")

    timings, evaluations = {"diffusers_pipeline": []}, {"diffusers_pipeline": frames * 2 * steps}
    for _ in range(repeats):
        t = time.perf_counter()
        diffusers_run()
        timings["diffusers_pipeline"].append(time.perf_counter() - t)
        for name, temporal in variants.items():
            s = _settings(model, frames, steps, device, shared_noise=0.0, **temporal)
            t = time.perf_counter()
            gen = run(passes, s, c)
            timings.setdefault(name, []).append(time.perf_counter() - t)
            evaluations[name] = gen.record["sampling"]["unet_evaluations"]
    best = {name: min(v) for name, v in timings.items()}
    return {"frames": frames, "best_of": repeats, "seconds": {k: round(v, 3) for k, v in best.items()},
            "unet_evaluations": evaluations,
            "ratio_to_diffusers": {k: round(v / best["diffusers_pipeline"], 3) for k, v in best.items()}}


def run_bench(lengths: list[int], size: int = 64, steps: int = 2, model: str = "tiny",
              device: str | None = None) -> dict:
    """All figures as a JSON-ready dict."""
    from diffusion.models import resolve_model
    from diffusion.synthetic_passes import write_passes

    model = resolve_model(model)
    spawn = multiprocessing.get_context("spawn")
    with tempfile.TemporaryDirectory() as tmp:
        passes_dir = str(write_passes(Path(tmp) / "passes", frames=max(max(lengths), 64), size=(size, size)))
        rows = []
        for n in lengths:
            with ProcessPoolExecutor(1, mp_context=spawn) as pool:
                rows.append(pool.submit(_measure_length, model, passes_dir, n, steps, device).result())
        with ProcessPoolExecutor(1, mp_context=spawn) as pool:
            overhead = pool.submit(_measure_overhead, model, passes_dir, 64, steps, device).result()
    import torch
    return {"model": model, "size": [size, size], "steps": steps, "cfg": 5.0, "controlnets": 1,
            "torch_threads": torch.get_num_threads(), "lengths": rows, "overhead_vs_diffusers": overhead}
