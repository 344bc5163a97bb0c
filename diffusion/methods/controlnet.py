"""ControlNet method: an SD 1.5-family base + one or several ControlNets over the render passes.

Per frame (temporal options off) this is exactly diffusers' ``StableDiffusionControlNetPipeline``
(same components, noise, scheduler, guidance and ControlNet schedule; tested). With the temporal
toolkit on, self-attention sees other frames of the window and the windows' noise predictions are
blended per frame before one scheduler step (Make-Your-Anchor Algorithm 1). ``--background`` keeps
the background fixed (``diffusion.sampling.background``).

Module level imports stay light (no torch): the models and the denoiser load inside the hooks.
"""

from __future__ import annotations

from dataclasses import dataclass

from diffusion.sampling.control_spec import ControlSettings
from diffusion.sampling.method import Method, Run
from diffusion.sampling.settings import (BackgroundSettings, DeviceSettings, FramingSettings, ModelSettings,
                                         OutputSettings, SamplingSettings, TemporalSettings, TextSettings)


@dataclass
class ControlNetSettings(OutputSettings, DeviceSettings, BackgroundSettings, TemporalSettings, FramingSettings,
                         SamplingSettings, ControlSettings, ModelSettings, TextSettings):
    """Text prompt, base model, ControlNets, sampling, framing, temporal, background, device, output."""


class ControlNetMethod(Method):
    name = "controlnet"
    summary = "SD 1.5 + ControlNets (openpose/depth/normal/stacked passes), optional temporal attention + windows"
    Settings = ControlNetSettings

    def load(self, s: ControlNetSettings):
        from diffusion.loaders.controlnet import load_controlnets
        from diffusion.loaders.sd15 import load_sd15

        c = load_sd15(s.model, scheduler=s.scheduler, device=s.device, dtype=s.dtype, model_config=s.model_config)
        c.controlnets, sources = load_controlnets([spec.model for spec in s.specs], s.model, c.device, c.dtype)
        c.sources.update(sources)
        return c

    def check_inputs(self, s: ControlNetSettings, passes) -> None:
        super().check_inputs(s, passes)
        for spec in s.specs:
            for name in spec.passes:
                passes.resolve(name)

    def denoiser(self, run: Run):
        from diffusion.sampling.control import ControlNetDenoiser, load_conditions
        from diffusion.sampling.prompts import encode_text

        s, c = run.settings, run.components
        if len(c.controlnets) != len(s.controlnet):
            raise ValueError("components and settings disagree on the number of ControlNets")
        conditions = load_conditions(run, s.specs, c.controlnets)
        run.record["controlnets"] = [{"model": spec.model, "passes": list(cond.passes), "scale": spec.scale,
                                      "start": spec.start, "end": spec.end}
                                     for spec, cond in zip(s.specs, conditions)]
        return ControlNetDenoiser(run, c.controlnets, conditions, s.specs, encode_text(c, s.prompt),
                                  encode_text(c, s.negative_prompt), s.cfg)

    def attention(self, run: Run):
        from diffusion.attention.frames import frame_attention_rules

        return [(run.components.unet, frame_attention_rules(run.settings.attention))]

    def preview(self, run: Run):
        from diffusion.sampling.control import condition_preview

        conditions = run.denoiser.conditions
        return condition_preview(run, conditions) if conditions else super().preview(run)

    def bench_variants(self):
        """Per-frame against the two frame-attention modes at equal UNet evaluations (windows of 16, no overlap)."""
        return {name: dict(attention=attention, window=16, overlap=0, shared_noise=0.0)
                for name, attention in (("per_frame", "none"), ("window_attention", "window"),
                                        ("cross_frame_attention", "cross-frame"))}

    def bench_rows(self, budget, train_dirs, work, seed, size):
        """``controlnet-pretrained (per-frame)``: the base's stock ControlNet for the condition kind (tiny
        base: the random tiny one), frames independent: the floor a fine-tuned model should rise above;
        ``controlnet (per-frame)``: a ControlNet trained on the train split (``budget.steps`` steps),
        frames independent; ``controlnet``: the same through the default temporal settings."""
        from diffusion.benchmark.harness import method_row, train_timed
        from diffusion.loaders.controlnet import CONTROLNETS
        from diffusion.training.recipes.controlnet import RECIPE, ControlNetTrainConfig

        config = ControlNetTrainConfig(
            data=[str(d) for d in train_dirs], passes=budget.passes, prompt=budget.prompt, resolution=size,
            model=budget.model, controlnet="unet", output=str(work), steps=budget.steps,
            batch_size=budget.batch_size, learning_rate=budget.learning_rate, lr_scheduler="constant", seed=seed,
            checkpoint_every=budget.steps, checkpoints_total_limit=1)
        trainer, seconds = train_timed(RECIPE, config)
        common = dict(prompt=budget.prompt, model=budget.model, steps=budget.sample_steps, cfg=budget.cfg, seed=seed,
                      width=size, height=size, device=budget.device)
        per_frame = dict(attention="none", window=1, overlap=0)
        rows = []
        kind = budget.passes[0] if len(budget.passes) == 1 else None
        if kind in CONTROLNETS:
            rows.append(method_row(self, "controlnet-pretrained (per-frame)",
                                   self.settings(controlnet=[kind], **common, **per_frame)))
        trained = [f"{trainer.final}={'+'.join(budget.passes)}"]
        rows.append(method_row(self, "controlnet (per-frame)", self.settings(controlnet=trained, **common, **per_frame),
                               seconds))
        rows.append(method_row(self, "controlnet", self.settings(controlnet=trained, **common), seconds))
        return rows


METHOD = ControlNetMethod()
