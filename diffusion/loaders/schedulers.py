"""Samplers from a base model's scheduler config: DDIM, DPM-Solver++ (multistep), Euler, and the
DDIM inverse scheduler (deterministic inversion of an image into its noise trajectory)."""

from __future__ import annotations

from motion.errors import UserError

NAMES = ("ddim", "dpm", "euler")


def make_scheduler(name: str, config: dict):
    """A sampler named ``name`` (one of ``NAMES``) configured like the base model's scheduler."""
    from diffusers import DDIMScheduler, DPMSolverMultistepScheduler, EulerDiscreteScheduler

    classes = {"ddim": DDIMScheduler, "dpm": DPMSolverMultistepScheduler, "euler": EulerDiscreteScheduler}
    if name not in classes:
        raise UserError("--scheduler", f"{name!r} is not one of {', '.join(NAMES)}")
    return classes[name].from_config(config)


def make_inverse_scheduler(config: dict):
    """``DDIMInverseScheduler`` with the base model's noise schedule: steps the latent from t to the
    next (noisier) timestep with the model's noise prediction, the reverse of DDIM with eta 0."""
    from diffusers import DDIMInverseScheduler

    return DDIMInverseScheduler.from_config(config)


def training_scheduler(config: dict):
    """``DDPMScheduler`` for forward noising in training, from the base model's scheduler config."""
    from diffusers import DDPMScheduler

    return DDPMScheduler.from_config(config)
