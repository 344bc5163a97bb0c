"""Follow Your Pose's parts at inference: which pose encoder, the base with it (and, for video, the
inflated UNet with the stage-2 weights), and the window denoiser.

The denoiser is the ControlNet family's (``diffusion.sampling.control.ControlNetDenoiser``: the same
guidance batching and context), with the pose encoder's features as the UNet's
``down_intrablock_additional_residuals`` in place of ControlNet residuals: per frame what diffusers'
``StableDiffusionAdapterPipeline`` computes (features times the scale, doubled under guidance).
"""

from __future__ import annotations

from pathlib import Path

import torch

from diffusion.io.conditioning import ConditionSequence
from diffusion.loaders.common import is_tiny, resolve_model
from diffusion.sampling.control import ControlNetDenoiser
from diffusion.sampling.guidance import doubled, is_guided
from diffusion.sampling.method import Run
from motion.errors import UserError

POSE_ENCODER = "pose_encoder"   # the stage-1 folder inside a stage-2 output


def pose_encoder_source(model: str, pose_encoder: str | None, temporal: str | None) -> str:
    """``pose_encoder`` if given; else the one bundled with the stage-2 output; else the tiny model's
    T2I-Adapter for the tiny base; else a one-line error."""
    if pose_encoder:
        return pose_encoder
    if temporal and (Path(temporal) / POSE_ENCODER).is_dir():
        return str(Path(temporal) / POSE_ENCODER)
    base = resolve_model(model)
    if is_tiny(base):
        from diffusion.loaders.tiny import ADAPTER

        return str(Path(base) / ADAPTER)
    raise UserError("--pose-encoder", "give the stage-1 pose encoder (`avatarcine train follow-your-pose-pose`) "
                                      "or a T2I-Adapter hub id / folder")


def load_parts(s):
    """SD 1.5 base + pose encoder (``c.extra["pose_encoder"]``); with ``s.temporal`` the UNet inflated
    and the stage-2 weights loaded (``init``: inflated, untrained: zero-initialised temporal attention)."""
    from diffusion.loaders.adapter import load_adapter
    from diffusion.loaders.sd15 import load_sd15
    from diffusion.methods.follow_your_pose.inflate import inflate, load_temporal

    source = pose_encoder_source(s.model, s.pose_encoder, s.temporal)
    c = load_sd15(s.model, scheduler=s.scheduler, device=s.device, dtype=s.dtype, model_config=s.model_config)
    c.extra["pose_encoder"] = load_adapter(source, c.device, c.dtype)
    c.sources["pose_encoder"] = source
    if s.temporal == "init":
        inflate(c.unet)
        c.sources["temporal"] = "init (zero-initialised, untrained)"
    elif s.temporal:
        c.extra["temporal"] = load_temporal(c.unet, s.temporal)
        c.sources["temporal"] = s.temporal
    return c


class PoseDenoiser(ControlNetDenoiser):
    """UNet + pose-encoder features + classifier-free guidance for a window of frames."""

    def __init__(self, run: Run, encoder: torch.nn.Module, pose: ConditionSequence, context: torch.Tensor,
                 negative: torch.Tensor | None, cfg: float, scale: float):
        super().__init__(run, [], [pose], [], context, negative, cfg)
        self.encoder, self.pose, self.scale = encoder, pose, scale

    def residuals(self, x, t, context, step, start, stop) -> dict:
        image = self.pose.window(start, stop, self.c.device, self.encoder.dtype)
        features = [doubled(f * self.scale, is_guided(self.cfg)) for f in self.encoder(image)]
        return {"down_intrablock_additional_residuals": features}
