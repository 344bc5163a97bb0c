"""AMG's window denoiser: per frame the noisy latent and the avatar latent on channels, one video UNet
call for the window, classifier-free guidance on the text only (the avatar latent is in both branches).

With one window this is the denoising step of diffusers' ``TextToVideoSDPipeline`` /
``AnimateDiffPipeline`` (same branch order, guidance formula and scheduler step; tested).
"""

from __future__ import annotations

import torch

from diffusion.io.conditioning import ConditionSequence, load_condition
from diffusion.loaders.video_unet import from_video, to_video, video_context
from diffusion.sampling.guidance import combine, doubled, is_guided
from diffusion.sampling.latents import encode_images
from diffusion.sampling.method import Denoiser, Run


def avatar_condition(run: Run, condition: str) -> ConditionSequence:
    """The avatar video (pass ``condition``), framed like the output, as uint8 RGB frames."""
    return load_condition(run.passes, [condition], run.indices, run.framing, 3)


def avatar_latents(run: Run, frames: ConditionSequence) -> torch.Tensor:
    """(N, 4, h, w) VAE latents of the avatar frames (posterior mean: the same render always gives the
    same condition; the authors sample, whose spread is tiny), one frame at a time."""
    return encode_images(run.components, frames.frames).to(run.components.unet.dtype)


class AMGDenoiser(Denoiser):
    """``frames``: the clip's avatar video (encoded here, once); ``context``/``negative``: (1, T, D) text states."""

    def __init__(self, run: Run, frames: ConditionSequence, context: torch.Tensor, negative: torch.Tensor,
                 cfg: float):
        self.unet, self.scheduler = run.components.unet, run.components.scheduler
        self.frames, self.avatar, self.cfg = frames, avatar_latents(run, frames), cfg
        self.context = torch.cat([negative, context]) if is_guided(cfg) else context
        self.evaluations = 0

    @torch.no_grad()
    def __call__(self, latents: torch.Tensor, t: torch.Tensor, step: int, start: int, stop: int) -> torch.Tensor:
        guided = is_guided(self.cfg)
        frames = stop - start
        x = self.scheduler.scale_model_input(latents, t)
        video = doubled(to_video(torch.cat([x, self.avatar[start:stop]], dim=1)), guided)
        eps = self.unet(video, t, encoder_hidden_states=video_context(self.unet, self.context, frames),
                        return_dict=False)[0]
        self.evaluations += video.shape[0] * frames
        return from_video(combine(eps, self.cfg) if guided else eps)
