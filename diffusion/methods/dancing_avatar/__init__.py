"""Dancing Avatar (Qin et al.): pose-guided video from a frozen SD 1.5-family model, frame by frame.

- Pose: the OpenPose ControlNet over the ``skeleton`` pass (any ControlNets of the ControlNet method).
- Inter-frame alignment (``--interframe``): a ControlNet-style module whose condition is the previous
  generated frame, combined with the pose ControlNet in diffusers' ``MultiControlNetModel``; frames are
  generated one after the other (``sequential``). Frame 0 has no previous frame, or ``--first-image``.
  ``--reanchor N`` conditions every N-th frame on frame 0 instead, which bounds drift on long clips.
- Intra-frame alignment (``--lora``): appearance LoRAs on the UNet's cross-attention (``attn2``).
- Background alignment (``--background``): one plate B (an image, or ``first``: frame 0 generated
  with the person, who is then inpainted away inside the grown ``mask`` pass); every frame inpaints
  the person into B inside its own grown mask (``--inpaint blend``: blended latents, any base;
  ``unet``: a 9-channel inpainting UNet) and is composited onto B, so outside that mask it equals B.
- DPM-Solver++ 25 steps, CFG 7.5 (the paper's sampler settings).

With no module, no LoRA and no background every frame is exactly diffusers'
``StableDiffusionControlNetPipeline`` (tested). Module-level imports stay light (no torch).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from diffusion.sampling.control_spec import ControlSettings
from diffusion.sampling.method import Method, Run
from diffusion.sampling.settings import (PLATE, DeviceSettings, FramingSettings, ModelSettings, OutputSettings,
                                         SamplingSettings, Settings, TextSettings, flag, override, setting)
from motion.errors import UserError

INPAINT = ("blend", "unet")
NEW_MODULE = "unet"  # --interframe unet: an untrained module copied from the UNet (zero output; timing, tests)


@dataclass
class InterFrameSettings(Settings):
    interframe: str | None = setting(None, "inter-frame module conditioned on the previous frame: the controlnet/ "
                                           "folder of `avatarcine train dancing-avatar-frames` (or any ControlNet "
                                           "id/folder), or 'unet' for an untrained one (changes nothing)",
                                     group="inter-frame")
    interframe_scale: float = setting(1.0, "conditioning scale of the inter-frame module", group="inter-frame",
                                      low=0, high=10)
    first_image: str | None = setting(None, "image that conditions frame 0 as its previous frame (default: frame "
                                            "0 has no inter-frame condition)", group="inter-frame")
    reanchor: int | None = setting(None, "every N-th frame is conditioned on frame 0 instead of the previous frame "
                                         "(bounds drift; 0 on the command line: never)", group="inter-frame", low=1,
                                   zero_is_none=True)

    def check(self):
        if self.first_image and not self.interframe:
            raise UserError("--first-image", "conditions the inter-frame module: give --interframe too")


@dataclass
class AppearanceSettings(Settings):
    lora: tuple[str, ...] = setting((), "appearance LoRA files on cross-attention (`avatarcine train "
                                        "dancing-avatar-lora`; e.g. one for clothes, one for the face)",
                                    group="appearance")
    lora_scale: tuple[float, ...] = setting((1.0,), "LoRA scale: one for all or one per file", group="appearance",
                                            low=0, high=4)

    def check(self):
        if len(self.lora_scale) not in (1, max(1, len(self.lora))):
            raise UserError("--lora-scale", f"give 1 or {len(self.lora)} values (one per LoRA), "
                                            f"got {len(self.lora_scale)}")

    @property
    def lora_scales(self) -> tuple[float, ...]:
        return self.lora_scale * len(self.lora) if len(self.lora_scale) == 1 else self.lora_scale


@dataclass
class PlateSettings(Settings):
    background: str | None = setting(None, "fixed background B: an image file (resized and cropped like the "
                                           "passes), or 'first' (frame 0 generated, its person inpainted away)",
                                     group="background")
    mask_pass: str = setting("mask", "pass holding the actor mask (for --background)", group="background")
    mask_grow: int = setting(2, "pixels the actor mask grows by: inside it the person is generated, outside it "
                                "every frame equals B exactly", group="background", low=0, high=64)
    inpaint: str = setting("blend", "how frames are inpainted into B: blend (blended latents, any base) or unet "
                                    "(9-channel inpainting UNet)", group="background", choices=INPAINT)
    inpaint_model: str | None = setting(None, "inpainting model for --inpaint unet (default: "
                                              "stable-diffusion-v1-5/stable-diffusion-inpainting; a tiny base: its "
                                              "own)", group="background")
    background_prompt: str = setting("", "prompt when inpainting the person out of frame 0 (--background first; "
                                         "default: the prompt)", group="background")


@dataclass
class DancingAvatarSettings(OutputSettings, DeviceSettings, PlateSettings, AppearanceSettings, InterFrameSettings,
                            FramingSettings, SamplingSettings, ControlSettings, ModelSettings, TextSettings):
    """Prompt, base, pose ControlNets, sampling, framing, inter-frame module, LoRAs, background, device, output."""

    scheduler: str = override(SamplingSettings, "scheduler", "dpm")
    steps: int = override(SamplingSettings, "steps", 25)
    # The paper does not say how each frame's noise is drawn; independent noise per frame makes every
    # frame a new picture of the prompt, so by default all frames start from frame 0's noise.
    shared_noise: float = setting(1.0, "fraction of each frame's initial noise variance taken from frame 0's "
                                       "noise (0: independent frames, as diffusers' pipeline per call)",
                                  group="sampling", low=0, high=1)


def _readable_image(path: str, field: str, what: str) -> None:
    """A one-line error naming the setting's flag when ``path`` is not a readable image."""
    from render.images import read_rgb

    try:
        read_rgb(path, what)
    except UserError as exc:
        raise UserError(flag(field), str(exc)) from None


class DancingAvatarMethod(Method):
    name = "dancing-avatar"
    summary = ("SD 1.5 + OpenPose ControlNet frame by frame: inter-frame module on the previous frame, appearance "
               "LoRA, fixed background plate")
    Settings = DancingAvatarSettings
    sequential = True

    def check_inputs(self, s: DancingAvatarSettings, passes) -> None:
        if s.background == PLATE:   # its background alignment holds one plate B for every frame
            raise UserError("--background", "dancing-avatar keeps one background: an image or 'first', not plate")
        super().check_inputs(s, passes)
        for spec in s.specs:
            for name in spec.passes:
                passes.resolve(name)
        if s.background:
            if s.background != "first":
                _readable_image(s.background, "background", "background image")
            passes.resolve(s.mask_pass)
        if s.first_image:
            _readable_image(s.first_image, "first_image", "first image")
        for path in s.lora:
            if not Path(path).is_file():
                raise UserError("--lora", f"{path}: no such LoRA file")

    def load(self, s: DancingAvatarSettings):
        from diffusion.methods.dancing_avatar.sampling import load_components

        return load_components(s)

    def denoiser(self, run: Run):
        from diffusion.methods.dancing_avatar.sampling import DancingAvatarDenoiser

        return DancingAvatarDenoiser(run)

    def spans(self, run: Run) -> list[tuple[int, int]]:
        return [(k, k + 1) for k in range(len(run.indices))]

    def initial_latents(self, run: Run, noise):
        from diffusion.methods.dancing_avatar.sampling import share_noise

        return share_noise(noise, run.settings.shared_noise) * run.components.scheduler.init_noise_sigma

    def step_hook(self, run: Run, noise):
        from diffusion.methods.dancing_avatar.sampling import share_noise

        return run.denoiser.prepare_background(share_noise(noise, run.settings.shared_noise))

    def after_window(self, run: Run, start: int, stop: int, latents) -> None:
        run.denoiser.finished(start, latents)

    def postprocess(self, run: Run, frames):
        return run.denoiser.composite(frames)

    bench_settings = {"interframe": NEW_MODULE}  # bench generate times the module (untrained: same cost)

    def bench_variants(self):
        """The pose ControlNet alone, + the inter-frame module, + the background plate made from frame 0
        (blended latents), at equal frames."""
        return {"pose_only": {"interframe": None}, "interframe": {}, "interframe_background": {"background": "first"}}

    def bench_rows(self, budget, train_dirs, work, seed, size):
        """``dancing-avatar``: the inter-frame module trained on consecutive ``rgb`` frames of the train
        split (``budget.steps`` steps; the pose ControlNet frozen and active, as at generation), then
        generating with it and the background plate made from frame 0; ``dancing-avatar (no
        background)``: the same module, no plate. The pose ControlNet is the base's stock one for the
        budget's condition kind (tiny base: the random tiny one). No appearance LoRA: it is trained per
        character, and the held-out identities are not the training ones."""
        from diffusion.benchmark.harness import method_row, train_timed
        from diffusion.loaders.controlnet import CONTROLNETS
        from diffusion.training.recipes.dancing_avatar_frames import RECIPE, InterFrameTrainConfig

        kind = budget.passes[0] if len(budget.passes) == 1 else None
        if kind not in CONTROLNETS:
            return []
        config = InterFrameTrainConfig(
            data=[str(d) for d in train_dirs], prompt=budget.prompt, resolution=size, model=budget.model,
            pose_controlnet=kind, pose_passes=[kind], output=str(work / "frames"), steps=budget.steps,
            batch_size=budget.batch_size, learning_rate=budget.learning_rate, lr_scheduler="constant", seed=seed,
            checkpoint_every=budget.steps, checkpoints_total_limit=1)
        trainer, seconds = train_timed(RECIPE, config)
        common = dict(prompt=budget.prompt, model=budget.model, controlnet=[kind], steps=budget.sample_steps,
                      cfg=budget.cfg, seed=seed, width=size, height=size, device=budget.device,
                      interframe=str(trainer.final))
        return [method_row(self, "dancing-avatar", self.settings(**common, background="first"), seconds),
                method_row(self, "dancing-avatar (no background)", self.settings(**common), seconds)]

    def preview(self, run: Run):
        from diffusion.sampling.control import condition_preview

        return condition_preview(run, run.denoiser.pose.conditions)


METHOD = DancingAvatarMethod()
