"""ControlNet method: SD 1.5-family base + one or several ControlNets over the render passes.

Per frame (temporal options off) this is exactly diffusers' ``StableDiffusionControlNetPipeline``
(same components, noise, scheduler, guidance and ControlNet schedule; tested). With the temporal
toolkit on, self-attention sees other frames of the window and the windows' noise predictions are
blended per frame before one scheduler step (Make-Your-Anchor Algorithm 1).

Fixed backgrounds (Dancing Avatar's background alignment, done with exact rendered masks): outside
the actor mask the latents are replaced after every step by the background's latents noised to
the current timestep (blended latent diffusion), and the decoded frame is composited onto the
background with a feathered mask. The background is an image, or ``first``: frame 0 generated
in full; where frame 0's actor hides it, the plate is unknown and left free (choice).
"""

from __future__ import annotations

import dataclasses
import hashlib
import platform
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from diffusion.conditioning import ConditionSequence, Framing, load_condition, load_mask
from diffusion.latents import decode_frames, encode_image, encode_text
from diffusion.models import CONTROLNETS, SD15, Components, load_components
from diffusion.passes import PASS_ALIASES, PassesFolder, read_rgb
from diffusion.registry import Generation, Method, register
from diffusion.temporal.attention import MODES, FrameLayout, frame_attention
from diffusion.temporal.noise import initial_noise
from diffusion.temporal.sampler import overlapped_denoise, step_kwargs
from diffusion.temporal.windows import WEIGHTINGS, window_spans
from motion.errors import UserError

# Condition kinds whose stock/tiny ControlNet reads several stacked passes.
STACKS = {"stack": ["depth", "normal", "mask"]}


@dataclass
class ControlSpec:
    """One ControlNet: ``model`` (hub id, folder, file, or a kind: openpose/depth/normal/stack),
    the passes stacked on its input channels, its scale and its active fraction of the steps."""

    model: str
    passes: list[str]
    scale: float = 1.0
    start: float = 0.0
    end: float = 1.0

    @classmethod
    def parse(cls, text: str, scale: float = 1.0, start: float = 0.0, end: float = 1.0) -> "ControlSpec":
        """``MODEL`` or ``MODEL=PASS[+PASS...]``; a known kind or hub id implies its pass."""
        model, _, passes = text.partition("=")
        if passes:
            names = passes.split("+")
        elif model in STACKS:
            names = STACKS[model]
        elif model in PASS_ALIASES:
            names = [model]
        else:
            kinds = [k for k, hub in CONTROLNETS.items() if hub == model]
            if not kinds:
                raise UserError("--controlnet", f"say which passes {model!r} reads: {model}=PASS[+PASS...]")
            names = kinds
        return cls(model, names, scale, start, end)

    def __post_init__(self):
        if not 0.0 <= self.start < self.end <= 1.0:
            raise UserError("--guidance-start/--guidance-end",
                            f"need 0 <= start < end <= 1 for {self.model!r} (got {self.start}, {self.end})")


@dataclass
class ControlNetSettings:
    prompt: str = field(default="", metadata={"help": "text prompt"})
    negative_prompt: str = field(default="", metadata={"help": "negative prompt (the CFG unconditional branch)"})
    model: str = field(default=SD15, metadata={"help": "SD 1.5-family base: hub id, folder, .safetensors, or tiny"})
    model_config: str | None = field(default=None, metadata={"help": "config repo/folder for a single-file base"})
    controlnets: list[ControlSpec] = field(default_factory=lambda: [ControlSpec("openpose", ["openpose"])],
                                           metadata={"help": "ControlNets with passes, scale, start, end"})
    scheduler: str = field(default="ddim", metadata={"help": "ddim | dpm | euler"})
    steps: int = field(default=20, metadata={"help": "denoising steps"})
    cfg: float = field(default=7.5, metadata={"help": "classifier-free guidance scale (<= 1: off)"})
    eta: float = field(default=0.0, metadata={"help": "DDIM eta"})
    seed: int = field(default=0, metadata={"help": "random seed (CPU generator: same noise on every device)"})
    width: int | None = field(default=None, metadata={"help": "output width (default: the passes' width)"})
    height: int | None = field(default=None, metadata={"help": "output height (default: the passes' height)"})
    max_frames: int | None = field(default=None, metadata={"help": "use only the first N frames"})
    attention: str = field(default="window", metadata={"help": "none | cross-frame | window (all frames of a window)"})
    window: int | None = field(default=16, metadata={"help": "frames per window (None: one window)"})
    overlap: int = field(default=4, metadata={"help": "frames shared by consecutive windows"})
    weighting: str = field(default="uniform", metadata={"help": "uniform | triangular overlap weights"})
    shared_noise: float = field(default=1.0, metadata={"help": "fraction of initial-noise variance shared by frames"})
    background: str | None = field(default=None, metadata={"help": "fix the background: image path or 'first'"})
    mask_pass: str = field(default="mask", metadata={"help": "pass holding the actor mask (for --background)"})
    device: str | None = field(default=None, metadata={"help": "cuda | mps | cpu (default: best available)"})
    dtype: str | None = field(default=None, metadata={"help": "fp32 | fp16 | bf16 (default: fp16 on GPU)"})

    def __post_init__(self):
        checks = [
            (self.attention in MODES, "--attention", f"{self.attention!r} is not one of {', '.join(MODES)}"),
            (self.weighting in WEIGHTINGS, "--weighting", f"{self.weighting!r} is not one of {', '.join(WEIGHTINGS)}"),
            (self.steps >= 1, "--steps", "must be at least 1"),
            (self.window is None or self.window >= 1, "--window", "must be at least 1 (0 on the command line: none)"),
            (self.window is None or 0 <= self.overlap < self.window, "--overlap",
             f"must be in [0, window) (window {self.window}, overlap {self.overlap})"),
            (0.0 <= self.shared_noise <= 1.0, "--shared-noise", "must be in [0, 1]"),
            (self.max_frames is None or self.max_frames >= 1, "--max-frames", "must be at least 1"),
        ]
        for ok, where, problem in checks:
            if not ok:
                raise UserError(where, problem)

    @classmethod
    def from_dict(cls, data: dict) -> "ControlNetSettings":
        """Settings from a run record's ``settings`` (``dataclasses.asdict`` of an earlier run)."""
        unknown = set(data) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise UserError("settings", f"unknown keys {sorted(unknown)}")
        specs = [ControlSpec(**spec) for spec in data.get("controlnets", [])]
        return cls(**{**data, "controlnets": specs})


def load(settings: ControlNetSettings) -> Components:
    return load_components(settings.model, [s.model for s in settings.controlnets], scheduler=settings.scheduler,
                           device=settings.device, dtype=settings.dtype, model_config=settings.model_config)


def guidance_keep(steps: int, specs: list[ControlSpec]) -> list[list[float]]:
    """Per step, per ControlNet: 1 inside [start, end] of the schedule, else 0 (diffusers' rule)."""
    return [[1.0 - float(i / steps < s.start or (i + 1) / steps > s.end) for s in specs] for i in range(steps)]


class ControlNetDenoiser:
    """Guided noise prediction for a window of frames: ControlNets -> residuals -> UNet -> CFG."""

    def __init__(self, c: Components, conditions: list[ConditionSequence], specs: list[ControlSpec],
                 prompt: torch.Tensor, negative: torch.Tensor, cfg: float, steps: int, layout: FrameLayout):
        from diffusers.models.controlnets.multicontrolnet import MultiControlNetModel

        self.c, self.conditions, self.specs, self.layout = c, conditions, specs, layout
        self.prompt, self.negative, self.cfg = prompt, negative, cfg
        self.multi = MultiControlNetModel(c.controlnets) if c.controlnets else None
        self.keep = guidance_keep(steps, specs)
        self.evaluations = 0  # UNet evaluations (one per frame per CFG branch)

    @property
    def guided(self) -> bool:
        return self.cfg > 1.0

    @torch.no_grad()
    def __call__(self, latents: torch.Tensor, t: torch.Tensor, step: int, start: int, stop: int) -> torch.Tensor:
        n = stop - start
        self.layout.frames = n
        scheduler = self.c.scheduler
        x = torch.cat([latents] * 2) if self.guided else latents
        x = scheduler.scale_model_input(x, t)
        text = self.prompt.expand(n, -1, -1)
        if self.guided:
            text = torch.cat([self.negative.expand(n, -1, -1), text])
        residuals = {}
        if self.multi is not None:
            images = []
            for cond in self.conditions:
                image = cond.window(start, stop, self.c.device, self.c.controlnets[0].dtype)
                images.append(torch.cat([image] * 2) if self.guided else image)
            scales = [s.scale * k for s, k in zip(self.specs, self.keep[step])]
            down, mid = self.multi(x, t, encoder_hidden_states=text, controlnet_cond=images,
                                   conditioning_scale=scales, guess_mode=False, return_dict=False)
            residuals = {"down_block_additional_residuals": down, "mid_block_additional_residual": mid}
        eps = self.c.unet(x, t, encoder_hidden_states=text, return_dict=False, **residuals)[0]
        self.evaluations += x.shape[0]
        if self.guided:
            uncond, cond = eps.chunk(2)
            eps = uncond + self.cfg * (cond - uncond)
        return eps


class BackgroundLock:
    """After each step, outside the actor keep the background's latents noised to the next timestep."""

    def __init__(self, scheduler, clean: torch.Tensor, keep: torch.Tensor, noise: torch.Tensor):
        self.scheduler = scheduler
        self.clean, self.keep, self.noise = clean.expand_as(noise), keep, noise

    def __call__(self, step: int, latents: torch.Tensor) -> torch.Tensor:
        timesteps = self.scheduler.timesteps
        if step + 1 < len(timesteps):
            ref = self.scheduler.add_noise(self.clean, self.noise, timesteps[step + 1:step + 2])
        else:
            ref = self.clean
        return self.keep * ref.to(latents.dtype) + (1 - self.keep) * latents


def _latent_keep(actor: np.ndarray, factor: int, device: torch.device) -> torch.Tensor:
    """(N, H, W) uint8 actor coverage -> (N, 1, h, w) latent cells to lock: those not touching the
    actor, after dilating it by one latent cell (the VAE's receptive field spills over cell edges)."""
    x = F.max_pool2d(torch.from_numpy(actor)[:, None].to(device=device, dtype=torch.float32) / 255.0, factor)
    return 1 - F.max_pool2d(x, 3, stride=1, padding=1)


def _pixel_keep(actor: np.ndarray, factor: int) -> np.ndarray:
    """(H, W) uint8 actor coverage -> (H, W, 1) weight of the background in the final composite:
    0 on the actor grown by ``factor / 2`` pixels, feathered to exactly 1 a few pixels further out."""
    radius = max(1, factor // 4)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (4 * radius + 1, 4 * radius + 1))
    grown = cv2.dilate((actor > 2).astype(np.float32), kernel)
    return (1 - np.clip(cv2.GaussianBlur(grown, (0, 0), radius / 2), 0, 1))[..., None]


def _sample(c: Components, denoiser: ControlNetDenoiser, noise: torch.Tensor, s: ControlNetSettings,
            generator: torch.Generator, lock: BackgroundLock | None = None) -> tuple[torch.Tensor, dict]:
    c.scheduler.set_timesteps(s.steps, device=c.device)
    timesteps = c.scheduler.timesteps
    latents = noise * c.scheduler.init_noise_sigma
    spans = window_spans(latents.shape[0], s.window, s.overlap if s.window else 0)
    layout = denoiser.layout
    with frame_attention(c.unet, s.attention, layout):
        latents = overlapped_denoise(latents, c.scheduler, timesteps, denoiser, spans, weighting=s.weighting,
                                     extra_step=step_kwargs(c.scheduler, generator, s.eta), after_step=lock)
    return latents, {"timesteps": [int(t) for t in timesteps], "windows": spans}


def run(passes: PassesFolder, s: ControlNetSettings, c: Components) -> Generation:
    """Generate every frame of ``passes`` (or the first ``max_frames``)."""
    if len(c.controlnets) != len(s.controlnets):
        raise ValueError("components and settings disagree on the number of ControlNets")
    indices = passes.indices[: s.max_frames] if s.max_frames else passes.indices
    size = (s.width or passes.resolution[0], s.height or passes.resolution[1])
    size = size if (s.width or s.height) else None
    framing = Framing.cover(passes.resolution, size, multiple=c.vae_scale_factor)
    conditions = [load_condition(passes, spec.passes, indices, framing, net.config.conditioning_channels)
                  for spec, net in zip(s.controlnets, c.controlnets)]
    layout = FrameLayout()
    denoiser = ControlNetDenoiser(c, conditions, s.controlnets, encode_text(c, s.prompt),
                                  encode_text(c, s.negative_prompt), s.cfg, s.steps, layout)
    factor = c.vae_scale_factor
    generator = torch.Generator("cpu").manual_seed(s.seed)
    latent_shape = (c.unet.config.in_channels, framing.size[1] // factor, framing.size[0] // factor)
    noise = initial_noise(len(indices), latent_shape, generator, shared=s.shared_noise, device=c.device,
                          dtype=c.unet.dtype)
    chunk = s.window or 16  # frames per VAE decode

    lock, background, actor = None, None, None
    if s.background:
        actor = load_mask(passes, indices, framing, s.mask_pass)
        if s.background == "first":
            first = ControlNetDenoiser(c, [ConditionSequence(k.passes, k.frames[:1]) for k in conditions],
                                       s.controlnets, denoiser.prompt, denoiser.negative, s.cfg, s.steps, layout)
            clean, _ = _sample(c, first, noise[:1], s, generator)
            background = decode_frames(c, clean, 1)[0]
            actor = np.maximum(actor, actor[:1])  # behind frame 0's actor the plate is unknown: leave it free
        else:
            image = np.rint(read_rgb(s.background, "background image") * 255.0).astype(np.uint8)
            background = Framing.cover((image.shape[1], image.shape[0]), framing.size, factor).image(image)
            clean = encode_image(c, np.ascontiguousarray(background))
        keep = _latent_keep(actor, factor, c.device).to(noise.dtype)
        lock = BackgroundLock(c.scheduler, clean.to(noise.dtype), keep, noise)
    latents, info = _sample(c, denoiser, noise, s, generator, lock)
    frames = decode_frames(c, latents, chunk)
    if lock is not None:
        for k, frame in enumerate(frames):
            keep_px = _pixel_keep(actor[k], factor)
            frames[k] = (keep_px * background + (1 - keep_px) * frame + 0.5).astype(np.uint8)
    preview = np.stack([conditions[0].preview(i) for i in range(len(indices))]) if conditions else frames * 0
    record = {
        "method": "controlnet",
        "settings": dataclasses.asdict(s),
        "models": c.sources,
        "device": str(c.device), "dtype": str(c.dtype).replace("torch.", ""),
        "passes": {"folder": str(passes.root.resolve()), "meta_sha256": _sha256(passes.root / "meta.json"),
                   "frames": [indices[0], indices[-1]], "count": len(indices)},
        "framing": dataclasses.asdict(framing),
        "sampling": {**info, "unet_evaluations": denoiser.evaluations, "noise": "CPU torch.Generator(seed)"},
        "versions": _versions(),
    }
    return Generation(frames=frames, condition_preview=preview, fps=passes.fps, indices=indices, record=record,
                      latents=latents.cpu())


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _versions() -> dict:
    import diffusers
    import transformers
    return {"python": platform.python_version(), "torch": torch.__version__, "diffusers": diffusers.__version__,
            "transformers": transformers.__version__}


METHOD = register(Method(
    name="controlnet",
    summary="SD 1.5 + ControlNets (openpose/depth/normal/stacked passes), optional temporal attention + windows",
    settings=ControlNetSettings, load=load, run=run,
))
