"""AMG (Avatar Motion Guided video generation): a text-to-video UNet conditioned on a render of the
avatars (the ``avatar`` pass: textured, lit bodies on black) by channel concatenation, tuned with LoRA.

Bases: ModelScope T2V (``UNet3DConditionModel``, the paper's) or AnimateDiff (SD 1.5 +
``MotionAdapter``). conv_in takes [noisy latent, avatar latent] per frame (``model.py``); the adapter
file from ``avatarcine train amg`` (LoRA + conv_in) is loaded with ``--lora``. Text from ``--prompt``
or the clip's caption in meta.json; classifier-free guidance on the text only, the avatar latent in
both branches (``denoiser.py``); DDIM 20 steps (leading, offset 1), guidance 3.0 as the authors.
Any length: 16-frame windows overlapped by 4 whose noise predictions are averaged per frame before one
scheduler step (``diffusion.sampling.loop``), so memory is bounded by the window.

Module level imports stay light (no torch): the models and the denoiser load inside the hooks.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

from diffusion.sampling.method import Method, Run
from diffusion.sampling.settings import (DeviceSettings, FramingSettings, OutputSettings, SamplingSettings, Settings,
                                         TemporalSettings, TextSettings, override, setting)
from motion.errors import UserError

BASES = ("modelscope", "animatediff")
ANIMATEDIFF_ADAPTER = "guoyww/animatediff-motion-adapter-v1-5-3"   # diffusion.loaders.video_unet's (no torch here)


@dataclass
class AMGModelSettings(Settings):
    base: str = setting("modelscope", "video base: modelscope (ModelScope T2V UNet3D, the paper's) or animatediff "
                                      "(SD 1.5 + MotionAdapter)", group="model", choices=BASES)
    model: str | None = setting(None, "base model: hub id, folder, or tiny (default: ali-vilab/text-to-video-ms-1.7b "
                                      "for modelscope, stable-diffusion-v1-5 for animatediff)", group="model")
    motion_adapter: str = setting(ANIMATEDIFF_ADAPTER, "AnimateDiff MotionAdapter: hub id or folder (base "
                                                       "animatediff)", group="model")
    lora: str | None = setting(None, "AMG adapter file (avatarcine train amg): LoRA + 8-channel conv_in; without "
                                     "it the avatar is ignored", group="model")
    condition: str = setting("avatar", "pass whose VAE latent conditions the video (avatar; mesh works once "
                                       "trained on it)", group="condition")


@dataclass
class AMGWindowSettings(Settings):
    """The temporal group's windows (its frame-attention modes are for image UNets; a video UNet has its own)."""

    window: int | None = override(TemporalSettings, "window", 16)
    overlap: int = override(TemporalSettings, "overlap", 4)

    def check(self):
        TemporalSettings.check(self)


@dataclass
class AMGSettings(OutputSettings, DeviceSettings, AMGWindowSettings, FramingSettings, SamplingSettings,
                  AMGModelSettings, TextSettings):
    """Prompt, video base + AMG adapter + avatar pass, sampling, framing, windows, device, output."""

    cfg: float = override(SamplingSettings, "cfg", 3.0)


def prompt_of(s: AMGSettings, passes) -> str:
    """``--prompt``, else the clip's caption in meta.json (top level, then the first frame's)."""
    return s.prompt or passes.meta.get("caption") or passes.meta["frames"][0].get("caption") or ""


class AMGMethod(Method):
    name = "amg"
    summary = "AMG: video UNet (ModelScope T2V / AnimateDiff) + avatar render latent on channels + LoRA"
    Settings = AMGSettings

    def check_inputs(self, s: AMGSettings, passes) -> None:
        if not prompt_of(s, passes):
            raise UserError("--prompt", "a text prompt is required (or a caption in meta.json)")
        passes.resolve(s.condition)
        if s.lora:
            from diffusion.methods.amg.model import check_adapter

            check_adapter(s.lora, s.base, s.model, s.condition)

    def load(self, s: AMGSettings):
        from diffusion.methods.amg.model import apply_adapter, expand_conv_in, load_base

        c = load_base(s.base, s.model, s.motion_adapter, scheduler=s.scheduler, device=s.device, dtype=s.dtype)
        if s.lora:
            apply_adapter(c.unet, s.lora)
            c.sources["lora"] = s.lora
        else:
            warnings.warn("amg without --lora: the avatar input is zero-initialised, so the base model ignores "
                          "the avatar (train an adapter with `avatarcine train amg`)", stacklevel=2)
            expand_conv_in(c.unet)
        c.unet.eval().requires_grad_(False)   # the new conv and LoRA are made on the base's device and dtype
        return c

    def denoiser(self, run: Run):
        from diffusion.methods.amg.denoiser import AMGDenoiser, avatar_condition
        from diffusion.sampling.prompts import encode_text

        s, c = run.settings, run.components
        limit = c.unet.config.get("motion_max_seq_length") if s.base == "animatediff" else None
        longest = max(b - a for a, b in self.spans(run))
        if limit and longest > limit:
            raise UserError("--window", f"{longest} frames in one window; the motion adapter takes at most {limit} "
                                        f"(use --window {limit} or less)")
        prompt = prompt_of(s, run.passes)
        frames = avatar_condition(run, s.condition)
        run.record["amg"] = {"prompt": prompt, "condition": frames.passes[0], "base": s.base}
        return AMGDenoiser(run, frames, encode_text(c, prompt), encode_text(c, s.negative_prompt), s.cfg)

    def spans(self, run: Run):
        from diffusion.sampling.windows import window_spans

        s = run.settings
        return window_spans(len(run.indices), s.window, s.overlap if s.window else 0)

    def preview(self, run: Run):
        import numpy as np

        frames = run.denoiser.frames
        return np.stack([frames.preview(i) for i in range(len(run.indices))])

    def bench_rows(self, budget, train_dirs, work, seed, size):
        """``amg (modelscope)`` and ``amg (animatediff)``: an adapter per base trained on the train split
        (``budget.steps`` steps at the budget's batch and learning rate, clips of up to 16 frames) on the
        avatar pass, or on ``mesh`` where the dataset has none, then generated with the budget's sampling
        (tiny budget model: the tiny ModelScope and AnimateDiff parts)."""
        from diffusion.benchmark.harness import method_row, train_timed
        from diffusion.io.passes import PassesFolder
        from diffusion.methods.amg.model import ADAPTER_FILE, base_model
        from diffusion.training.recipes.amg import RECIPE, AMGTrainConfig

        folders = [PassesFolder.open(d) for d in train_dirs]
        condition = "avatar" if all("avatar" in f.meta["passes"] for f in folders) else "mesh"
        frames = min(16, *(len(f.indices) for f in folders))
        rows = []
        for base in BASES:
            model = base_model(base, budget.model if budget.model == "tiny" or base == "animatediff" else None)
            config = AMGTrainConfig(
                data=[str(d) for d in train_dirs], base=base, model=model, condition=condition, prompt=budget.prompt,
                resolution=size, frames=frames, steps=budget.steps, batch_size=budget.batch_size,
                learning_rate=budget.learning_rate, lr_scheduler="constant", warmup_steps=0, seed=seed,
                output=str(work / base), checkpoint_every=budget.steps, checkpoints_total_limit=1)
            trainer, seconds = train_timed(RECIPE, config)
            settings = self.settings(prompt=budget.prompt, base=base, model=model, condition=condition,
                                     lora=str(trainer.final / ADAPTER_FILE), steps=budget.sample_steps, cfg=budget.cfg,
                                     seed=seed, width=size, height=size, device=budget.device)
            rows.append(method_row(self, f"amg ({base}, {condition})", settings, seconds))
        return rows


METHOD = AMGMethod()
