"""Dancing Avatar's heavy parts: its components, the frame denoiser (pose ControlNets, plus the
inter-frame module on the previous frame), and the background plate B.

The inter-frame module is a ``ControlNetModel`` reading an RGB image in [0, 1] (the previous output
frame, composited on B when there is one), combined with the pose ControlNets by diffusers'
``MultiControlNetModel`` (residuals summed). The plate holds B, each frame's grown actor mask and
what the inpainting needs; outside the grown mask the composite is B exactly.
"""

from __future__ import annotations

import dataclasses
import math
import warnings

import cv2
import numpy as np
import torch

from diffusion.io.conditioning import Framing, load_mask
from diffusion.loaders.common import is_tiny, load_pretrained, prepare_modules, resolve_model
from diffusion.loaders.controlnet import CONDITION_EMBEDDING, controlnet_from_unet
from diffusion.loaders.inpainting import INPAINTING_SD15, inpainting_input, load_inpainting_unet
from diffusion.loaders.lora import META_KEY, load_lora, lora_layers
from diffusion.loaders.tiny import INPAINTING
from diffusion.methods.dancing_avatar import NEW_MODULE, DancingAvatarSettings
from diffusion.sampling.background import BackgroundLock, latent_keep
from diffusion.sampling.control import ControlNetDenoiser, load_conditions
from diffusion.sampling.control_spec import ControlSpec
from diffusion.sampling.latents import decode_frames, encode_image
from diffusion.sampling.loop import sequential_denoise, step_kwargs
from diffusion.sampling.method import Denoiser, Run
from diffusion.sampling.prompts import encode_text
from motion.errors import UserError
from render.images import read_rgb

REMOVE_NEGATIVE = "person, people, human, body"  # added to the negative prompt when inpainting the person away


# ------------------------------------------------------------------------------------------------
# components

def load_components(s: DancingAvatarSettings):
    """Base + pose ControlNets (as the ControlNet method loads them), the inter-frame module
    (``extra['interframe']``), the 9-channel UNet for ``--inpaint unet`` (``extra['inpainting_unet']``),
    then the LoRAs on every UNet."""
    from diffusers import ControlNetModel

    from diffusion.methods.controlnet import METHOD as CONTROLNET

    c = CONTROLNET.load(s)
    base = resolve_model(s.model)
    if s.interframe == NEW_MODULE:  # before any LoRA: from_unet copies the plain UNet's weights
        module = controlnet_from_unet(c.unet, 3, seed=s.seed, embedding=CONDITION_EMBEDDING if is_tiny(base) else None)
        prepare_modules(c.device, module.to(c.dtype))
        c.extra["interframe"], c.sources["interframe"] = module, "new (from the UNet, untrained)"
    elif s.interframe:
        c.extra["interframe"] = load_pretrained(ControlNetModel, s.interframe, torch_dtype=c.dtype)
        prepare_modules(c.device, c.extra["interframe"])
        c.sources["interframe"] = s.interframe
    if s.background and s.inpaint == "unet":
        if is_tiny(base) and not s.inpaint_model:
            source, sub = base, INPAINTING
        else:
            source, sub = s.inpaint_model or INPAINTING_SD15, "unet"
        c.extra["inpainting_unet"] = load_inpainting_unet(source, c.device, c.dtype, subfolder=sub)
        c.sources["inpainting_unet"] = f"{source}/{sub}"
    for unet in (c.unet, c.extra.get("inpainting_unet")):
        if unet is not None and s.lora:
            apply_loras(unet, s.lora, s.lora_scales)
    c.sources.update({f"lora:{k}": path for k, path in enumerate(s.lora)})
    return c


def _avatarcine_lora(path: str) -> bool:
    """Whether ``path`` is a safetensors file with avatarcine's LoRA metadata (else: diffusers' loader)."""
    from safetensors import safe_open

    try:
        with safe_open(path, framework="pt") as f:
            return META_KEY in (f.metadata() or {})
    except Exception:  # noqa: BLE001  (unreadable: ``load_lora`` reports it as a one-line error)
        return True


def apply_loras(unet: torch.nn.Module, paths: tuple[str, ...], scales: tuple[float, ...]) -> None:
    """Load every LoRA file into ``unet`` as its own adapter, all active, each at its scale: ours
    (``dancing-avatar-lora``) with their metadata, others (diffusers' format) with diffusers' loader."""
    names = [f"lora{k}" for k in range(len(paths))]
    with warnings.catch_warnings():  # several adapters on one model is the point here
        warnings.filterwarnings("ignore", message="Already found a `peft_config`")
        for name, path in zip(names, paths):
            if _avatarcine_lora(path):
                load_lora(unet, path, adapter_name=name)
            else:
                try:
                    unet.load_lora_adapter(path, prefix="unet", adapter_name=name)
                except (OSError, ValueError, KeyError, IndexError, TypeError, RuntimeError) as exc:
                    raise UserError(path, f"not a LoRA for this UNet ({' '.join(str(exc).split())[:200]})") from None
    for layer in lora_layers(unet):
        layer.set_adapter(names)
        for name, scale in zip(names, scales):
            if name in layer.scaling:
                layer.set_scale(name, scale)
    unet.requires_grad_(False)


def share_noise(noise: torch.Tensor, fraction: float) -> torch.Tensor:
    """Frames 1.. get ``sqrt(1 - f) * own + sqrt(f) * frame 0's`` noise (unit variance; f = 1: exactly
    frame 0's noise); frame 0 keeps its own."""
    if fraction == 0.0:
        return noise
    out = noise.clone()
    out[1:] = math.sqrt(1.0 - fraction) * noise[1:] + math.sqrt(fraction) * noise[:1]
    return out


# ------------------------------------------------------------------------------------------------
# the inter-frame condition

class PreviousFrame:
    """The inter-frame module's condition for frame k: output frame k-1, frame 0 every ``reanchor``
    frames, for frame 0 the given first image (or nothing). Only frame 0 and the latest are kept."""

    passes = ("previous frame",)

    def __init__(self, first: np.ndarray | None, reanchor: int | None):
        self.first, self.reanchor = first, reanchor
        self.frames: dict[int, np.ndarray] = {}
        self.sources: list[int | str | None] = []  # what conditioned each frame (for the run record)

    def source(self, k: int) -> int | str | None:
        if k == 0:
            return "first_image" if self.first is not None else None
        return 0 if self.reanchor and k % self.reanchor == 0 else k - 1

    def image(self, k: int) -> np.ndarray:
        source = self.source(k)
        return self.first if source == "first_image" else self.frames[source]

    def finish(self, k: int, image: np.ndarray) -> None:
        self.frames[k] = image
        self.frames = {j: f for j, f in self.frames.items() if j in (0, k)}

    def window(self, start: int, stop: int, device, dtype) -> torch.Tensor:
        """(F, 3, H, W) in [0, 1], as ``ConditionSequence.window`` gives a ControlNet its condition."""
        x = torch.from_numpy(np.stack([self.image(k) for k in range(start, stop)])).permute(0, 3, 1, 2).contiguous()
        return (x.to(device=device, dtype=torch.float32) / 255.0).to(dtype)


# ------------------------------------------------------------------------------------------------
# the background plate

def grow(masks: np.ndarray, pixels: int) -> np.ndarray:
    """(N, H, W) uint8 coverage dilated by ``pixels`` (grey-level: anti-aliased edges move outward)."""
    if pixels == 0:
        return masks.copy()
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * pixels + 1, 2 * pixels + 1))
    return np.stack([cv2.dilate(m, kernel) for m in masks])


def paste(frames: np.ndarray, plate: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """Frames alpha-composited onto ``plate`` with the coverage ``masks``: where a mask is 0 the result
    is the plate exactly, where it is 255 the frame."""
    alpha = masks[..., None].astype(np.float32) / 255.0
    return (alpha * frames + (1.0 - alpha) * plate[None] + 0.5).astype(np.uint8)


@dataclasses.dataclass
class Plate:
    """B (H, W, 3) uint8, each frame's grown mask (N, H, W) uint8, and what the inpainting reads."""

    image: np.ndarray
    masks: np.ndarray
    clean: torch.Tensor   # (1, 4, h, w) latent of B
    keep: torch.Tensor    # (N, 1, h, w) latent cells left to B (1) or generated (0)

    def masked_latents(self, c, start: int, stop: int) -> torch.Tensor:
        """9-channel UNet input: the latents (posterior mean) of B in [-1, 1] with the generated cells set
        to 0, normalised and masked as diffusers' inpainting pipelines do (``image * (mask < 0.5)``)."""
        factor = c.vae_scale_factor
        keep = self.keep[start:stop].repeat_interleave(factor, -2).repeat_interleave(factor, -1)
        image = torch.from_numpy(self.image).permute(2, 0, 1)[None].contiguous().to(c.device, torch.float32)
        image = image / 255.0 * 2.0 - 1.0
        out = []
        for k in keep:
            masked = (image * k.to(torch.float32)).to(c.vae.dtype)
            out.append(c.vae.encode(masked).latent_dist.mean * c.vae.config.scaling_factor)
        return torch.cat(out)


def make_plate(c, image: np.ndarray, masks: np.ndarray) -> Plate:
    keep = latent_keep(masks, c.vae_scale_factor, c.device).to(c.unet.dtype)
    return Plate(image, masks, encode_image(c, image).to(c.unet.dtype), keep)


class InpaintingDenoiser(ControlNetDenoiser):
    """The ControlNet denoiser on a 9-channel UNet: its input adds the generated cells' mask and the
    masked plate latents (the ControlNets see the 4 latent channels, as in diffusers'
    ``StableDiffusionControlNetInpaintPipeline``)."""

    def __init__(self, *args, plate: Plate, **kwargs):
        super().__init__(*args, **kwargs)
        self.plate = plate
        self.cache: dict[tuple[int, int], torch.Tensor] = {}

    def unet_input(self, x: torch.Tensor, start: int, stop: int) -> torch.Tensor:
        if (start, stop) not in self.cache:
            self.cache = {(start, stop): self.plate.masked_latents(self.c, start, stop).to(x.dtype)}
        masked, mask = self.cache[(start, stop)], 1 - self.plate.keep[start:stop]
        n = x.shape[0] // masked.shape[0]
        return inpainting_input(x, torch.cat([mask] * n), torch.cat([masked] * n))


# ------------------------------------------------------------------------------------------------
# the denoiser

class DancingAvatarDenoiser(Denoiser):
    """Frame k: the pose ControlNets alone while it has no previous frame, else pose ControlNets +
    the inter-frame module on :class:`PreviousFrame` (one ``MultiControlNetModel``). Also holds the
    background plate (made in :meth:`prepare_background`, once the clip's noise exists)."""

    def __init__(self, run: Run):
        s, c = run.settings, run.components
        self.run, self.s, self.c = run, s, c
        if len(c.controlnets) != len(s.controlnet):
            raise ValueError("components and settings disagree on the number of ControlNets")
        first = None
        if s.first_image:
            image = np.rint(read_rgb(s.first_image, "first image") * 255.0).astype(np.uint8)
            first = np.ascontiguousarray(Framing.cover((image.shape[1], image.shape[0]), run.framing.size,
                                                       c.vae_scale_factor).image(image))
        self.previous = PreviousFrame(first, s.reanchor)
        self.conditions = load_conditions(run, s.specs, c.controlnets)
        self.context, self.negative = encode_text(c, s.prompt), encode_text(c, s.negative_prompt)
        self.module = c.extra.get("interframe") if s.interframe else None  # loaded but off: unused
        if s.interframe and self.module is None:
            raise ValueError("the components have no inter-frame module (load them with these settings)")
        self.plate: Plate | None = None
        self.plate_evaluations = 0  # the samplings that made B from frame 0
        self.pose = self._denoiser(c.controlnets, self.conditions, s.specs)
        self.full = None
        if self.module is not None:
            spec = ControlSpec("interframe", PreviousFrame.passes, s.interframe_scale)
            self.full = self._denoiser([*c.controlnets, self.module], [*self.conditions, self.previous],
                                       [*s.specs, spec])
        run.record["dancing_avatar"] = {"interframe": c.sources.get("interframe"), "lora": list(s.lora),
                                        "background": s.background, "inpaint": s.inpaint if s.background else None,
                                        "reanchor": s.reanchor, "conditioned_on": self.previous.sources}

    def _denoiser(self, nets, conditions, specs, run: Run | None = None, context=None, negative=None,
                  plate: Plate | None = None) -> ControlNetDenoiser:
        """A ControlNet denoiser of this run (on the 9-channel UNet when given a ``plate`` to inpaint)."""
        run = run or self.run
        args = (run, nets, conditions, specs, self.context if context is None else context,
                self.negative if negative is None else negative, self.s.cfg)
        return InpaintingDenoiser(*args, plate=plate) if plate is not None else ControlNetDenoiser(*args)

    def _inpainting(self, run: Run) -> Run:
        """``run`` with the 9-channel UNet as its UNet (the components themselves are left as they are)."""
        return dataclasses.replace(run, components=dataclasses.replace(run.components,
                                                                       unet=self.c.extra["inpainting_unet"]))

    @property
    def evaluations(self) -> int:
        return self.plate_evaluations + sum(d.evaluations for d in (self.pose, self.full) if d is not None)

    def __call__(self, latents, t, step, start, stop):
        if step == 0:
            if stop - start != 1:
                raise ValueError("Dancing Avatar denoises one frame at a time")
            self.previous.sources.append(self.previous.source(start) if self.full is not None else None)
        use_module = self.full is not None and self.previous.source(start) is not None
        return (self.full if use_module else self.pose)(latents, t, step, start, stop)

    # -- autoregression ------------------------------------------------------------------------
    def finished(self, k: int, latents: torch.Tensor) -> None:
        """Frame k is denoised: decode it (composited on B) as the next frames' inter-frame condition."""
        if self.module is None:
            return
        frame = self.composite(decode_frames(self.c, latents, 1), k)[0]
        self.previous.finish(k, frame)

    def composite(self, frames: np.ndarray, start: int = 0) -> np.ndarray:
        """Frames ``[start, start + len)`` onto B inside their grown masks (unchanged without a plate)."""
        if self.plate is None:
            return frames
        return paste(frames, self.plate.image, self.plate.masks[start:start + len(frames)])

    # -- background alignment -----------------------------------------------------------------
    def prepare_background(self, noise: torch.Tensor):
        """Make the plate B (``--background``): the lock of blended latents (``blend``) or the 9-channel
        denoisers (``unet``; no lock). None without a background."""
        s, c, run = self.s, self.c, self.run
        if not s.background:
            return None
        factor = c.vae_scale_factor
        masks = grow(load_mask(run.passes, run.indices, run.framing, s.mask_pass), s.mask_grow)
        if s.background == "first":
            image = self._remove_person(noise[:1], masks[0])
        else:
            source = np.rint(read_rgb(s.background, "background image") * 255.0).astype(np.uint8)
            image = np.ascontiguousarray(Framing.cover((source.shape[1], source.shape[0]), run.framing.size,
                                                       factor).image(source))
        self.plate = make_plate(c, image, masks)
        if s.inpaint == "unet":
            inpainting = self._inpainting(run)
            self.pose = self._denoiser(c.controlnets, self.conditions, s.specs, run=inpainting, plate=self.plate)
            if self.full is not None:
                self.full = self._denoiser(self.full.nets, self.full.conditions, self.full.specs, run=inpainting,
                                           plate=self.plate)
            return None
        return BackgroundLock(c.scheduler, self.plate.clean, self.plate.keep, noise)

    def _remove_person(self, noise: torch.Tensor, mask: np.ndarray) -> np.ndarray:
        """B from frame 0: generate it with the person (pose ControlNets, LoRAs; own CPU generator for any
        stochastic sampler, so the clip's draws are untouched), then inpaint the person away inside its
        mask grown by one more latent cell (the person may spill over the silhouette) with the background
        prompt and ``REMOVE_NEGATIVE``, no ControlNet; B is the inpainted frame pasted onto frame 0."""
        s, c, run = self.s, self.c, self.run
        steps_extra = step_kwargs(c.scheduler, torch.Generator("cpu").manual_seed(s.seed), getattr(s, "eta", 0.0))
        one = dataclasses.replace(run, indices=run.indices[:1])
        person = self._sample(self._denoiser(c.controlnets, self.conditions, s.specs, run=one), noise, steps_extra)
        region = grow(mask[None], c.vae_scale_factor)
        plate = make_plate(c, person, region)
        context = encode_text(c, s.background_prompt or s.prompt)
        negative = encode_text(c, ", ".join(p for p in (s.negative_prompt, REMOVE_NEGATIVE) if p))
        if s.inpaint == "unet":
            denoiser = self._denoiser([], [], [], run=self._inpainting(one), context=context, negative=negative,
                                      plate=plate)
            empty = self._sample(denoiser, noise, steps_extra)
        else:
            denoiser = self._denoiser([], [], [], run=one, context=context, negative=negative)
            lock = BackgroundLock(c.scheduler, plate.clean, plate.keep, noise)
            empty = self._sample(denoiser, noise, steps_extra, lock)
        return paste(empty[None], person, region)[0]

    def _sample(self, denoiser, noise, extra, lock=None) -> np.ndarray:
        c = self.c
        c.scheduler.set_timesteps(self.s.steps, device=c.device)
        latents = sequential_denoise(noise * c.scheduler.init_noise_sigma, c.scheduler, c.scheduler.timesteps,
                                     denoiser, [(0, 1)], extra_step=extra, after_step=lock)
        self.plate_evaluations += denoiser.evaluations
        return decode_frames(c, latents, 1)[0]
