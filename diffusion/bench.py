"""``avatarcine bench generate``: seconds per frame and peak memory against clip length for any method
(its default settings), and the method's ``bench_variants`` (e.g. attention modes at equal UNet
evaluations) side by side at 64 frames; for the ControlNet method also diffusers' own per-frame
pipeline. ``avatarcine bench train-controlnet``: training steps per second.

Each measurement runs in a fresh spawned process; peak memory is the resident set sampled during
the run (Linux), reported with its increase over the resident set before the run. Inputs: the tiny
models (or ``--model``) and a synthetic passes folder of a moving figure.
"""

from __future__ import annotations

import multiprocessing
import os
import statistics
import tempfile
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

PROMPT = "a person dancing"


def _settings(method: str, model: str, frames: int, steps: int, device: str | None, **overrides):
    """The method's default settings for a timed run of ``frames`` frames (prompt and CFG 5 where it has them)."""
    from diffusion.registry import get_method

    m = get_method(method)
    names = {f["name"] for f in m.Settings.describe()}
    common = {"prompt": PROMPT, "negative_prompt": "blurry", "cfg": 5.0, "model": model, "steps": steps, "seed": 0,
              "max_frames": frames, "device": device, **m.bench_settings(), **overrides}
    return m, m.settings(**{k: v for k, v in common.items() if k in names})


def _rss_mb() -> float:
    """Current resident memory of this process (Linux /proc; psutil-free)."""
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


class _PeakRss:
    """Samples the resident memory every 5 ms while the block runs (ru_maxrss would be the import peak)."""

    def __enter__(self):
        self.start = self.peak = _rss_mb()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()
        return self

    def _poll(self):
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, _rss_mb())

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _rss_mb())


def _measure_length(method: str, model: str, passes_dir: str, frames: int, steps: int, device: str | None,
                    threads: int | None, repeats: int = 2) -> dict:
    """One clip length with the method's default settings (ControlNet: window 16, overlap 4, all-frame
    attention)."""
    import torch

    from diffusion.io.passes import PassesFolder

    if threads:
        torch.set_num_threads(threads)
    m, s = _settings(method, model, frames, steps, device)
    components = m.load(s)
    passes = PassesFolder.open(passes_dir)
    times = []
    with _PeakRss() as mem:
        for _ in range(repeats):
            start = time.perf_counter()
            gen = m.run(passes, s, components)
            times.append(time.perf_counter() - start)
    seconds = min(times)
    return {"frames": frames, "best_of": repeats, "seconds": round(seconds, 3),
            "seconds_per_frame": round(seconds / frames, 4),
            "unet_evaluations": gen.record["sampling"]["unet_evaluations"],
            "rss_before_run_mb": round(mem.start, 1), "peak_rss_mb": round(mem.peak, 1),
            "peak_increase_mb": round(mem.peak - mem.start, 1)}


def _diffusers_reference(c, passes, frames: int, steps: int):
    """diffusers' own ``StableDiffusionControlNetPipeline`` on batches of 16 frames (the ControlNet method's
    per-frame mode computes the same): a callable returning its UNet evaluations."""
    import torch
    from diffusers import StableDiffusionControlNetPipeline

    from diffusion.io.conditioning import Framing, load_condition
    from diffusion.loaders.schedulers import make_scheduler

    pipe = StableDiffusionControlNetPipeline(
        vae=c.vae, text_encoder=c.text_encoder, tokenizer=c.tokenizer, unet=c.unet, controlnet=c.controlnets[0],
        scheduler=make_scheduler("ddim", c.scheduler.config), safety_checker=None, feature_extractor=None,
        requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    cond = load_condition(passes, ["openpose"], passes.indices[:frames], Framing.cover(passes.resolution, None, 8), 3)

    def run() -> int:
        for start in range(0, frames, 16):
            n = min(16, frames - start)
            pipe([PROMPT] * n, image=cond.window(start, start + n, c.device, c.dtype), negative_prompt=["blurry"] * n,
                 num_inference_steps=steps, guidance_scale=5.0, generator=torch.Generator().manual_seed(0),
                 output_type="np")
        return frames * 2 * steps
    return run


def _measure_variants(method: str, model: str, passes_dir: str, frames: int, steps: int, device: str | None,
                      threads: int | None, repeats: int = 5) -> dict:
    """The method's ``bench_variants`` (settings overrides) timed side by side, interleaved, in one process
    (ControlNet: also diffusers' pipeline); ratios to the first variant."""
    import torch

    from diffusion.io.passes import PassesFolder

    if threads:
        torch.set_num_threads(threads)
    passes = PassesFolder.open(passes_dir)
    m, base = _settings(method, model, frames, steps, device)
    c = m.load(base)
    timed = {}
    for name, overrides in m.bench_variants().items():
        _, s = _settings(method, model, frames, steps, device, **overrides)
        timed[name] = lambda s=s: m.run(passes, s, c).record["sampling"]["unet_evaluations"]
    if method == "controlnet":
        timed["diffusers_pipeline"] = _diffusers_reference(c, passes, frames, steps)
    timings, evaluations = {name: [] for name in timed}, {}
    for _ in range(repeats):
        for name, run in timed.items():
            t = time.perf_counter()
            evaluations[name] = run()
            timings[name].append(time.perf_counter() - t)
    best = {name: min(v) for name, v in timings.items()}
    median = {name: statistics.median(v) for name, v in timings.items()}
    first = next(iter(timed))
    return {"frames": frames, "repeats": repeats, "best_seconds": {k: round(v, 3) for k, v in best.items()},
            "seconds_per_frame": {k: round(v / frames, 4) for k, v in best.items()},
            "unet_evaluations": evaluations, "ratio_to": first,
            "ratio_best": {k: round(v / best[first], 3) for k, v in best.items()},
            "ratio_median": {k: round(v / median[first], 3) for k, v in median.items()}}


def run_bench(lengths: list[int], size: int = 64, steps: int = 2, model: str = "tiny",
              device: str | None = None, threads: int | None = None, method: str = "controlnet") -> dict:
    """All figures as a JSON-ready dict."""
    from diffusion.io.synthetic_passes import write_passes
    from diffusion.loaders.common import resolve_model
    from diffusion.registry import get_method

    get_method(method)  # an unknown name is a one-line error before any work
    if min(lengths) < 1 or size < 8 or size % 8 or steps < 1:
        from motion.errors import UserError
        raise UserError("--frames/--size/--steps", "need frames >= 1, a size that is a multiple of 8, steps >= 1")
    model = resolve_model(model)
    spawn = multiprocessing.get_context("spawn")
    with tempfile.TemporaryDirectory() as tmp:
        passes_dir = str(write_passes(Path(tmp) / "passes", frames=max(max(lengths), 64), size=(size, size)))
        rows = []
        for n in lengths:
            with ProcessPoolExecutor(1, mp_context=spawn) as pool:
                rows.append(pool.submit(_measure_length, method, model, passes_dir, n, steps, device, threads).result())
        variants = None
        if get_method(method).bench_variants():
            with ProcessPoolExecutor(1, mp_context=spawn) as pool:
                variants = pool.submit(_measure_variants, method, model, passes_dir, 64, steps, device,
                                       threads).result()
    import torch
    figures = {"method": method, "model": model, "size": [size, size], "steps": steps,
               "torch_threads": threads or torch.get_num_threads(), "lengths": rows}
    if variants is not None:
        figures["variants"] = variants
    return figures


def run_train_bench(model: str = "tiny", size: int = 64, batch: int = 2, steps: int = 20,
                    passes: tuple[str, ...] = ("skeleton",), mixed_precision: str = "no",
                    threads: int | None = None) -> str:
    """Time ControlNet training optimizer steps (data, VAE encode, ControlNet + UNet forward/backward,
    AdamW) without checkpoints, on a synthetic passes folder whose normal map (a colour image) stands
    in for the rgb target; returns the one-line summary."""
    import torch

    from diffusion.io.synthetic_passes import write_passes
    from diffusion.training.recipes.controlnet import RECIPE, ControlNetTrainConfig
    from diffusion.training.trainer import Trainer

    if threads:
        torch.set_num_threads(threads)
    with tempfile.TemporaryDirectory() as tmp:
        folder = write_passes(Path(tmp) / "passes", frames=max(8, 2 * batch), size=(size, size))
        warm = 2
        config = ControlNetTrainConfig(data=[str(folder)], passes=list(passes), target="normal", resolution=size,
                                       model=model, output=str(Path(tmp) / "out"), steps=warm + steps,
                                       batch_size=batch, mixed_precision=mixed_precision)
        trainer = Trainer(RECIPE, config)
        for _ in trainer.train_steps(warm):
            pass
        start = time.perf_counter()
        for _ in trainer.train_steps(warm + steps):
            pass
        seconds = time.perf_counter() - start
    return (f"train controlnet: {steps / seconds:.2f} steps/s ({seconds / steps * 1000:.0f} ms/step), "
            f"model {model}, {size}x{size}, batch {batch}, passes {'+'.join(passes)}, "
            f"device {trainer.accelerator.device}, mixed precision {mixed_precision}, "
            f"torch threads {torch.get_num_threads()}")
