"""The pose ControlNet model call, DDIM inversion and PACM's embedding optimisation.

:class:`PoseModel` is one guided noise prediction with ControlNet(pose), batched as diffusers'
``StableDiffusionControlNetPipeline`` does it (unconditional branch first); it is differentiable in
the embeddings, so PACM optimises through it.

PACM (paper Algorithm 1, null-text inversion's loop with ControlNet in the forward): per step t, a
fresh Adam optimises the embedding so that one guided DDIM step from the current latent lands on the
inversion's Z_{t-1} (MSE), ``iterations`` times; then the latent advances with the optimised
embedding. The source pass carries each step's result into the next step; the target pass starts
every step from the source's embedding of that step. Frames are optimised together in chunks; the
loss is each frame's own mean squared error summed, so a frame's gradient is its own. The learning
rate decays linearly to half at the last step (null-text inversion's 1e-2 (1 - i/100) at 50 steps).
Each frame is optimised on its own (plain self-attention: Algorithm 1 loops over frames one by one);
DCAM acts in the final sampling only.
"""

from __future__ import annotations

import torch

from diffusion.sampling.guidance import combine, doubled, is_guided


class PoseModel:
    """ControlNet(pose) -> UNet -> CFG for a batch of frames; counts UNet evaluations."""

    def __init__(self, c, net, scale: float, keep: list[float], cfg: float):
        self.c, self.net, self.scale, self.keep, self.cfg = c, net, scale, keep, cfg
        self.evaluations = 0

    def __call__(self, x: torch.Tensor, t, step: int, pose: torch.Tensor, cond: torch.Tensor,
                 uncond: torch.Tensor | None, cfg: float | None = None,
                 unet_kwargs: dict | None = None) -> torch.Tensor:
        cfg = self.cfg if cfg is None else cfg
        guided = is_guided(cfg) and uncond is not None
        xin = self.c.scheduler.scale_model_input(doubled(x, guided), t)
        context = torch.cat([uncond, cond]) if guided else cond
        down, mid = self.net(xin, t, encoder_hidden_states=context, controlnet_cond=doubled(pose, guided),
                             conditioning_scale=self.scale * self.keep[step], guess_mode=False, return_dict=False)
        eps = self.c.unet(xin, t, encoder_hidden_states=context, down_block_additional_residuals=down,
                          mid_block_additional_residual=mid, return_dict=False, **(unet_kwargs or {}))[0]
        self.evaluations += xin.shape[0]
        return combine(eps, cfg) if guided else eps


def ddim_step(scheduler, eps: torch.Tensor, t, z: torch.Tensor) -> torch.Tensor:
    return scheduler.step(eps, t, z, eta=0.0, return_dict=False)[0]


@torch.no_grad()
def ddim_inversion(model: PoseModel, z0: torch.Tensor, steps: int, pose: torch.Tensor,
                   cond: torch.Tensor) -> list[torch.Tensor]:
    """[Z_0, ..., Z_T]: ``DDIMInverseScheduler`` over the sampler's timesteps, guidance 1 (conditional
    branch), ControlNet on the source pose. Z_k is at the noise level of the k-th inverse timestep."""
    from diffusers import DDIMInverseScheduler

    inverse = DDIMInverseScheduler.from_config(model.c.scheduler.config)
    inverse.set_timesteps(steps, device=z0.device)
    forward = model.c.scheduler.timesteps
    if not torch.equal(inverse.timesteps.flip(0).cpu(), forward.cpu()):
        raise ValueError("the inverse scheduler's timesteps are not the sampler's reversed")
    trajectory, z = [z0], z0
    for k, t in enumerate(inverse.timesteps):
        eps = model(z, t, steps - 1 - k, pose, cond, None, cfg=1.0)
        z = inverse.step(eps, t, z, return_dict=False)[0]
        trajectory.append(z)
    return trajectory


def optimise_embeddings(model: PoseModel, trajectory: list[torch.Tensor], pose: torch.Tensor, init,
                        other: torch.Tensor, slot: str, iterations: int, lr: float, carry: bool
                        ) -> tuple[list[torch.Tensor], list[list[list[float]]]]:
    """Per step, the optimised (n, T, D) embeddings of ``pose``'s n frames, and the losses per step, per
    iteration (before its update; a last entry after the final update), per frame.

    ``slot``: ``text`` optimises the conditional branch, ``null`` the unconditional one; ``other`` is
    the fixed embedding of the other branch. ``init``: the optimised branch's (n, T, D) start at the
    first step (``carry``: each step then starts from the previous step's result), or a list of
    per-step starts."""
    c = model.c
    timesteps = c.scheduler.timesteps
    n, steps = pose.shape[0], len(timesteps)
    z = trajectory[-1].expand(n, -1, -1, -1)
    other = other.expand(n, -1, -1)
    out, losses, current = [], [], init
    dtype = c.unet.dtype

    def branches(emb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return (emb, other) if slot == "text" else (other, emb)

    def mse(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return ((pred.float() - target.float()) ** 2).flatten(1).mean(1)

    for i, t in enumerate(timesteps):
        start = current if carry else init[i]
        param = start.detach().float().expand(n, -1, -1).clone().requires_grad_(True)
        optimiser = torch.optim.Adam([param], lr=lr * (1 - i / (2 * steps)))
        target = trajectory[steps - 1 - i].expand(n, -1, -1, -1)
        step_losses = []
        for _ in range(iterations):
            with torch.enable_grad():
                cond, uncond = branches(param.to(dtype))
                per_frame = mse(ddim_step(c.scheduler, model(z, t, i, pose, cond, uncond), t, z), target)
                (grad,) = torch.autograd.grad(per_frame.sum(), param)
            step_losses.append(per_frame.detach().cpu().tolist())
            param.grad = grad
            optimiser.step()
        current = param.detach().to(dtype)
        with torch.no_grad():
            cond, uncond = branches(current)
            z = ddim_step(c.scheduler, model(z, t, i, pose, cond, uncond), t, z)
        step_losses.append(mse(z, target).cpu().tolist())
        losses.append(step_losses)
        out.append(current)
    return out, losses
