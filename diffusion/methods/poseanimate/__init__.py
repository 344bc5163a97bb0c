"""PoseAnimate (Zhu et al.): zero-shot animation of one character image by a pose sequence. Nothing is
trained; SD 1.5 + the OpenPose ControlNet, with five switches:

- ``--inversion``: DDIM inversion of the source (``DDIMInverseScheduler``, guidance 1, ControlNet on
  the source pose) gives the trajectory Z_0..Z_T; every frame starts from Z_T.
- ``--pacm``: per-timestep text embeddings optimised (Adam, MSE, ``--pacm-iterations`` per step) so
  that guided sampling with ControlNet(source pose) follows the trajectory; then, for each target
  frame, starting from those, with ControlNet(target pose) toward the same trajectory
  (``diffusion.methods.poseanimate.pacm``).
- ``--dcam``: up-block self-attention of frame i mixes first-frame, previous-frame and own attention
  (``diffusion.attention.dcam``). The first frame of every window is the anchor: the source, whose
  latents are the inverted trajectory itself, so every window sees the source's keys and values.
- ``--mgdm``: the same split into character and background by the body masks (exact rendered masks
  for targets; the source's mask pass, a given mask or MediaPipe's segmentation for the source).
- ``--pata``: target poses aligned to the source pose in position and scale, ``--transition`` frames
  easing in from the source pose (``diffusion.methods.poseanimate.pata``).

With every switch off this is diffusers' ``StableDiffusionControlNetPipeline`` on the skeleton pass
(tested). Module level imports stay light (no torch).
"""

from __future__ import annotations

from dataclasses import dataclass

from diffusion.sampling.control_spec import ControlSettings
from diffusion.sampling.method import Method, Run
from diffusion.sampling.settings import (DeviceSettings, FramingSettings, ModelSettings, OutputSettings,
                                         SamplingSettings, Settings, TextSettings, flag, override, setting)
from motion.errors import UserError

SLOTS = ("text", "null")


@dataclass
class PoseAnimateOptions(Settings):
    source: str | None = setting(None, "source character image (a photo: pose and mask from MediaPipe); "
                                       "default: frame --source-frame of the passes' own rgb pass",
                                 group="source")
    source_frame: int = setting(0, "frame of the passes' rgb pass used as source (without --source)",
                                group="source", low=0)
    source_mask: str | None = setting(None, "body mask of a --source photo (default: MediaPipe's segmentation)",
                                      group="source")
    mask_pass: str = setting("mask", "pass holding the target body masks (MGDM, PATA)", group="source")
    inversion: bool = setting(True, "start from the DDIM inversion of the source (off: from noise)",
                              group="poseanimate")
    pacm: bool = setting(True, "PACM: optimise per-step embeddings toward the inversion trajectory",
                         group="poseanimate")
    pacm_slot: str = setting("text", "which CFG branch PACM optimises: text (conditional, as the paper's text "
                                     "says) or null (unconditional, as its figure and null-text inversion)",
                             group="poseanimate", choices=SLOTS)
    pacm_iterations: int = setting(5, "Adam iterations per step (paper: 5)", group="poseanimate", low=1, high=100)
    pacm_lr: float = setting(1e-2, "Adam learning rate at the first step, decaying linearly to half at the last",
                             group="poseanimate", above=0, high=1)
    pacm_batch: int = setting(4, "target frames optimised together (memory: activations of this many frames x 2)",
                              group="poseanimate", low=1)
    dcam: bool = setting(True, "DCAM: first/previous/own-frame attention in the UNet up blocks",
                         group="poseanimate")
    dcam_weights: tuple[float, ...] = setting((0.7, 0.15, 0.15), "DCAM weights of the first, previous and own "
                                                                 "frame's attention", group="poseanimate",
                                              low=0, high=1)
    mgdm: bool = setting(True, "MGDM: DCAM split into character and background by the body masks",
                         group="poseanimate")
    pata: bool = setting(True, "PATA: align the target poses to the source pose (position, scale)",
                         group="poseanimate")
    transition: int = setting(0, "PATA: frames easing in from the source pose to the motion", group="poseanimate",
                              low=0)
    window: int | None = setting(16, "frames per window besides the anchor (0 on the command line: one window)",
                                 group="temporal", low=1, zero_is_none=True)
    overlap: int = setting(4, "frames shared by consecutive windows", group="temporal", low=0)

    def check(self):
        if len(self.dcam_weights) != 3 or not sum(self.dcam_weights) > 0:
            raise UserError("--dcam-weights", f"give three weights, not all 0, got {list(self.dcam_weights)}")
        if self.window is not None and self.overlap >= self.window:
            raise UserError("--overlap", f"must be smaller than the window ({self.window}), got {self.overlap}")
        if not self.inversion and (self.pacm or self.dcam or self.mgdm):
            raise UserError("--no-inversion", "PACM, DCAM and MGDM follow the inverted source: add --no-pacm "
                                              "--no-dcam --no-mgdm")
        if self.mgdm and not self.dcam:
            raise UserError("--mgdm", "MGDM is DCAM's masked form: add --dcam or --no-mgdm")


@dataclass
class PoseAnimateSettings(OutputSettings, DeviceSettings, FramingSettings, PoseAnimateOptions, SamplingSettings,
                          ControlSettings, ModelSettings, TextSettings):
    """Prompt, model, the pose ControlNet, sampling (DDIM 50, CFG 7.5), source, modules, framing (the
    passes' resolution: 512 x 512 for our default renders, as in the paper; 16 frames), device."""

    steps: int = override(SamplingSettings, "steps", 50)
    max_frames: int | None = override(FramingSettings, "max_frames", 16)

    def check(self):
        if len(self.controlnet) != 1:
            raise UserError("--controlnet", f"PoseAnimate takes one pose ControlNet, got {len(self.controlnet)}")
        if self.inversion and (self.scheduler != "ddim" or self.eta != 0):
            raise UserError(flag("scheduler"), "the inversion follows deterministic DDIM: use --scheduler ddim "
                                               "--eta 0 (or --no-inversion)")


class PoseAnimateMethod(Method):
    name = "poseanimate"
    summary = "zero-shot: one source image + poses; DDIM inversion, PACM, DCAM, MGDM, PATA (nothing trained)"
    Settings = PoseAnimateSettings

    def load(self, s: PoseAnimateSettings):
        from diffusion.methods.controlnet import METHOD as CONTROLNET

        return CONTROLNET.load(s)

    def check_inputs(self, s: PoseAnimateSettings, passes) -> None:
        super().check_inputs(s, passes)
        for name in s.specs[0].passes:
            passes.resolve(name)
        needs_source = s.inversion or s.pata
        if s.source:
            from render.images import read_rgb

            read_rgb(s.source, "source image")
            if s.source_mask:
                read_rgb(s.source_mask, "source mask")
        elif needs_source and "rgb" not in passes.meta["passes"]:
            raise UserError("--source", f"{passes.root} has no rgb pass to take the source from: give --source FILE")
        if s.mgdm or (s.pata and not s.source):
            passes.resolve(s.mask_pass)

    def denoiser(self, run: Run):
        from diffusion.methods.poseanimate.core import make_denoiser

        return make_denoiser(run)

    def initial_latents(self, run: Run, noise):
        start = getattr(run.denoiser, "start_latents", None)
        return super().initial_latents(run, noise) if start is None else start(len(noise))

    def spans(self, run: Run):
        from diffusion.sampling.windows import window_spans

        s = run.settings
        return window_spans(len(run.indices), s.window, s.overlap if s.window else 0)

    def attention(self, run: Run):
        if not run.settings.dcam:
            return []
        from diffusion.attention.dcam import dcam_rules

        return [(run.components.unet, dcam_rules(run.settings.dcam_weights))]

    def preview(self, run: Run):
        from diffusion.sampling.control import condition_preview

        return condition_preview(run, [run.denoiser.targets])

    def bench_rows(self, budget, train_dirs, work, seed, size):
        """Nothing is trained. ``poseanimate``: every module on, the source being frame 0 of each held-out
        clip's own rgb (its ground truth), the targets the clip's poses; then the ablation rows
        ``poseanimate w/o M`` for each module (w/o DCAM also drops MGDM, its masked form). The base's
        stock pose ControlNet (tiny base: the random tiny one); the budget's prompt, steps and CFG."""
        from diffusion.benchmark.harness import method_row

        common = dict(prompt=budget.prompt, model=budget.model, steps=budget.sample_steps, cfg=budget.cfg, seed=seed,
                      width=size, height=size, max_frames=None, device=budget.device)
        ablations = {"": {}, " w/o PACM": {"pacm": False}, " w/o DCAM": {"dcam": False, "mgdm": False},
                     " w/o MGDM": {"mgdm": False}, " w/o PATA": {"pata": False}}
        return [method_row(self, f"poseanimate{suffix}", self.settings(**common, **off))
                for suffix, off in ablations.items()]


METHOD = PoseAnimateMethod()
