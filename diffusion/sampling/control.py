"""The ControlNet family's window denoiser: ControlNets -> residuals -> UNet -> classifier-free guidance
(which ControlNets read which passes: ``diffusion.sampling.control_spec``).

Per frame this is what diffusers' ``StableDiffusionControlNetPipeline`` computes (same batching of
the guidance branches, the same conditioning scales and active part of the schedule per ControlNet);
the context may be text embeddings or any other token sequence (Make-Your-Anchor: CLIP image tokens),
one for the clip or one per frame.
"""

from __future__ import annotations

import numpy as np
import torch

from diffusion.io.conditioning import ConditionSequence, load_condition
from diffusion.sampling.control_spec import ControlSpec
from diffusion.sampling.guidance import combine, doubled, is_guided
from diffusion.sampling.method import Denoiser, Run


def guidance_keep(steps: int, specs: list[ControlSpec]) -> list[list[float]]:
    """Per step, per ControlNet: 1 inside [start, end] of the schedule, else 0 (diffusers' rule)."""
    return [[1.0 - float(i / steps < s.start or (i + 1) / steps > s.end) for s in specs] for i in range(steps)]


def load_conditions(run: Run, specs: list[ControlSpec], nets: list) -> list[ConditionSequence]:
    """Each ControlNet's passes, framed like the output, stacked to its input channels."""
    return [load_condition(run.passes, list(spec.passes), run.indices, run.framing, net.config.conditioning_channels)
            for spec, net in zip(specs, nets)]


class ControlNetDenoiser(Denoiser):
    """ControlNets -> residuals -> UNet -> CFG for a window. ``context``/``negative``: (1, T, D) for
    the clip or (N, T, D) per frame; ``negative`` is used only when ``cfg`` > 1."""

    def __init__(self, run: Run, nets: list, conditions: list[ConditionSequence], specs: list[ControlSpec],
                 context: torch.Tensor, negative: torch.Tensor | None, cfg: float):
        from diffusers.models.controlnets.multicontrolnet import MultiControlNetModel

        self.run, self.c = run, run.components
        self.nets, self.conditions, self.specs = nets, conditions, specs
        self.context, self.negative, self.cfg = context, negative, cfg
        self.multi = MultiControlNetModel(nets) if nets else None
        self.keep = guidance_keep(run.settings.steps, specs)
        self.evaluations = 0

    @staticmethod
    def window_of(tokens: torch.Tensor, start: int, stop: int) -> torch.Tensor:
        return tokens.expand(stop - start, -1, -1) if tokens.shape[0] == 1 else tokens[start:stop]

    def residuals(self, x: torch.Tensor, t: torch.Tensor, context: torch.Tensor, step: int, start: int,
                  stop: int) -> dict:
        """UNet keyword arguments holding the ControlNets' residuals for this window."""
        if self.multi is None:
            return {}
        guided = is_guided(self.cfg)
        images = [doubled(cond.window(start, stop, self.c.device, self.nets[0].dtype), guided)
                  for cond in self.conditions]
        scales = [s.scale * k for s, k in zip(self.specs, self.keep[step])]
        down, mid = self.multi(x, t, encoder_hidden_states=context, controlnet_cond=images,
                               conditioning_scale=scales, guess_mode=False, return_dict=False,
                               **self.run.frame_kwargs(self.nets[0], stop - start, start))
        return {"down_block_additional_residuals": down, "mid_block_additional_residual": mid}

    def unet_input(self, x: torch.Tensor, start: int, stop: int) -> torch.Tensor:
        """The UNet's input from the (scaled, doubled) latents the ControlNets see (inpainting UNets add channels)."""
        return x

    @torch.no_grad()
    def __call__(self, latents: torch.Tensor, t: torch.Tensor, step: int, start: int, stop: int) -> torch.Tensor:
        guided = is_guided(self.cfg)
        unet = self.c.unet
        x = self.c.scheduler.scale_model_input(doubled(latents, guided), t)
        context = self.window_of(self.context, start, stop)
        if guided:
            context = torch.cat([self.window_of(self.negative, start, stop), context])
        residuals = self.residuals(x, t, context, step, start, stop)
        eps = unet(self.unet_input(x, start, stop), t, encoder_hidden_states=context, return_dict=False, **residuals,
                   **self.run.frame_kwargs(unet, stop - start, start))[0]
        self.evaluations += x.shape[0]
        return combine(eps, self.cfg) if guided else eps


def condition_preview(run: Run, conditions: list[ConditionSequence]) -> np.ndarray:
    """(N, H, W, 3) uint8 picture of the first condition of every frame."""
    return np.stack([conditions[0].preview(i) for i in range(len(run.indices))])
