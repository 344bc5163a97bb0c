"""``avatarcine train make-your-anchor``: the UNet and a ControlNet over the condition passes learn to
produce a person's frames from the CLIP image tokens of a reference frame of the same clip.

- Data: passes folders with their ``rgb`` pass, or ``{passes: FOLDER, video: clip.mp4}``: a user's
  video whose frames are the passes' frames in order (same count and fps, checked), e.g. passes
  rendered from a fitter's SMPL-X parameters and camera.
- ``stage: 1`` (many identities): the background of targets and references is masked out (black)
  with the exact ``mask`` pass; ``stage: 2`` (one identity): frames as they are.
- Models: ``model`` is a base SD 1.5 folder/id (the ControlNet is made from its UNet) or a
  Make-Your-Anchor folder (a stage-1 output: its UNet and ControlNet continue training); VAE, CLIP
  vision tower and text encoder are frozen. ``mode: full`` trains UNet + ControlNet (the authors);
  ``mode: lora`` trains peft LoRA on their attention projections only (fits smaller GPUs) and the
  final weights have the LoRA merged.
- Pose perturbation: an entry's ``perturbed`` passes folder (the same frames rendered from a motion
  with rotation noise, ``diffusion.methods.make_your_anchor.perturb``) is the condition of an item
  with probability ``pose_perturbation``.
- Loss: the MSE of the noise (or v) prediction, as the authors; ``actor_weight`` w > 0 (our option,
  for small actors in large frames) weights each latent cell by 1 + w x the share of its pixels the
  ``mask`` pass covers, normalised by the mean weight.
- Reference: a frame drawn at random (from the batch's seeded generator) from the same clip; with
  probability ``reference_dropout`` its tokens are replaced by the unconditional branch (``uncond``)
  the method guides with. The ControlNet is trained at scale 1 (W_c applies at inference), as the
  authors do.
- Output: ``OUTPUT/model/`` in the method's model-folder layout (``--model`` takes it as is), with
  ``reference.png`` = frame 0 of the first clip.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Literal

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field

from diffusion.io.conditioning import load_condition, load_mask
from diffusion.io.passes import PassesFolder
from diffusion.loaders.controlnet import controlnet_from_unet
from diffusion.loaders.image_encoder import image_tokens
from diffusion.loaders.schedulers import training_scheduler
from diffusion.methods.make_your_anchor.model import load_parts, resolve_mya, save_model, unconditional
from diffusion.training.config import ImageTrainConfig, _absolute, load_config
from diffusion.training.datasets import FrameDataset, common_channels, open_folders
from diffusion.training.recipes.controlnet import diffusion_target, freeze, noisy_latents
from diffusion.training.trainer import Recipe, Setup
from motion.errors import UserError

LORA_TARGETS = ["to_q", "to_k", "to_v", "to_out.0"]
LORA_FILE = "{}_lora.safetensors"


class DataEntry(BaseModel):
    """A passes folder; its frames are ``video``'s (read with imageio) if given, else its rgb pass;
    ``perturbed``: a passes folder of the same frames rendered from a perturbed motion (``perturb.py``)."""

    model_config = ConfigDict(extra="forbid")
    passes: str
    video: str | None = None
    perturbed: str | None = None


class AnchorTrainConfig(ImageTrainConfig):
    """What the body and face recipes share: data, condition passes, image tokens, trainable mode."""

    PATHS: ClassVar[dict[str, str | None]] = {"output": None, "model": "tiny"}
    RESUME_FIXED: ClassVar[tuple[str, ...]] = ImageTrainConfig.RESUME_FIXED + (
        "passes", "mode", "lora_rank", "controlnet", "reference_dropout", "uncond")

    data: list[str | DataEntry] = Field(min_length=1, description="passes folders with rgb, or {passes, video, "
                                                                  "perturbed}")
    passes: list[str] = Field(["mesh"], min_length=1, description="condition passes stacked on channels")
    controlnet: Literal["auto", "unet"] = Field("auto", description="auto: the model's controlnet/ if any, "
                                                                    "else from the UNet; unet: from the UNet")
    image_encoder: str | None = Field(None, description="CLIP vision model (default: the model's, else ViT-B/32)")
    mode: Literal["full", "lora"] = "full"
    lora_rank: int = Field(8, ge=1)
    reference_dropout: float = Field(0.0, ge=0, le=1, description="probability of training the unconditional branch")
    uncond: Literal["empty-text", "zeros"] = "empty-text"


class MakeYourAnchorTrainConfig(AnchorTrainConfig):
    """``avatarcine train make-your-anchor`` (see the README for an example)."""

    RESUME_FIXED: ClassVar[tuple[str, ...]] = AnchorTrainConfig.RESUME_FIXED + ("stage", "mask_pass",
                                                                                "pose_perturbation", "actor_weight")

    model: str = Field("stable-diffusion-v1-5/stable-diffusion-v1-5",
                       description="base SD 1.5 (stage 1) or a Make-Your-Anchor folder (e.g. the stage-1 output)")
    stage: Literal[1, 2] = Field(2, description="1: background masked out with the mask pass; 2: as rendered")
    mask_pass: str = "mask"
    pose_perturbation: float = Field(0.0, ge=0, le=1, description="probability of conditioning on an entry's "
                                                                  "perturbed passes instead")
    actor_weight: float = Field(0.0, ge=0, description="extra weight of the loss on latent cells the actor covers "
                                                       "(mask pass); 0: uniform, the paper's loss")
    validation_frames: int = Field(2, ge=1)
    validation_steps: int = Field(10, ge=1)


def read_video(pair_path: str, folder: PassesFolder) -> np.ndarray:
    """(N, H, W, 3) uint8 frames of a video checked against the passes' frame count and fps."""
    import imageio.v2 as imageio

    if not Path(pair_path).is_file():
        raise UserError(pair_path, "no such video file")
    try:
        with imageio.get_reader(pair_path) as reader:
            fps = float(reader.get_meta_data().get("fps", 0.0))
            frames = np.stack([np.asarray(f)[..., :3] for f in reader])
    except (OSError, ValueError, RuntimeError) as exc:
        raise UserError(pair_path, f"unreadable video ({' '.join(str(exc).split())[:200]})") from None
    count = len(folder.indices)
    if len(frames) != count:
        raise UserError(pair_path, f"has {len(frames)} frames but {folder.root} has {count}; render the passes "
                                   "for exactly the video's frames")
    if abs(fps - float(folder.fps)) > 1e-3 * max(1.0, fps):
        raise UserError(pair_path, f"runs at {fps:g} fps but {folder.root} at {folder.fps:g} fps")
    return frames


class AnchorDataset(FrameDataset):
    """Frames (target, condition, ``clip`` index) of rgb passes or videos; stage 1 masks the background;
    with ``actor_mask`` items also hold the actor's coverage ``actor_mask`` (1, H, W) in [0, 1]."""

    def __init__(self, folders, videos: dict[int, np.ndarray], masked: bool, mask_pass: str, *args,
                 actor_mask: bool = False, **kwargs):
        self.videos, self.masked, self.mask_pass, self.actor_mask = videos, masked, mask_pass, actor_mask
        self.perturbed: dict = {}
        super().__init__(folders, *args, **kwargs)
        self.masks = [load_mask(c.folder, c.folder.indices, c.framing, mask_pass) if masked or actor_mask else None
                      for c in self.clips]

    def target_image(self, clip, k: int) -> np.ndarray:
        c = [id(x) for x in self.clips].index(id(clip))
        if c in self.videos:
            image = clip.framing.image(self.videos[c][k]).astype(np.float32) / 255.0
        else:
            image = super().target_image(clip, k)
        if self.masked:
            image = image * (self.masks[c][k][..., None].astype(np.float32) / 255.0)
        return image

    def reference(self, c: int, k: int) -> np.ndarray:
        """(H, W, 3) uint8 frame ``k`` of clip ``c`` as the reference image (masked like the targets)."""
        return np.rint(self.target_image(self.clips[c], k) * 255.0).astype(np.uint8)

    def add_perturbed(self, folders: dict[int, PassesFolder], passes: list[str]) -> None:
        """Conditions of perturbed passes folders (by clip position), framed like their clips."""
        self.perturbed = {}
        for c, folder in folders.items():
            clip = self.clips[c]
            if len(folder.indices) != len(clip) or tuple(folder.resolution) != tuple(clip.folder.resolution):
                raise UserError(folder.root, f"has {len(folder.indices)} frames at {folder.resolution}, its clip "
                                             f"{len(clip)} at {clip.folder.resolution}; render the same frames")
            self.perturbed[c] = load_condition(folder, passes, folder.indices, clip.framing, self.channels)

    def __getitem__(self, index: int) -> dict:
        item = super().__getitem__(index)
        c, k = self.items[index]
        item["clip"] = c
        if self.actor_mask:
            item["actor_mask"] = torch.from_numpy(self.masks[c][k][None].astype(np.float32) / 255.0)
        if c in self.perturbed:
            item["perturbed_conditioning_pixel_values"] = self.perturbed[c].window(k, k + 1)[0]
        elif "conditioning_pixel_values" in item:
            item["perturbed_conditioning_pixel_values"] = item["conditioning_pixel_values"]
        return item


def open_data(config: AnchorTrainConfig, mask_pass: str | None = None) -> tuple[list[PassesFolder], dict[int, np.ndarray]]:
    """The data's passes folders (each with the condition passes, and ``mask_pass`` if given) and the
    frames of the video-file pairs by folder position."""
    folders, videos = [], {}
    for entry in config.data:
        if isinstance(entry, str) or entry.video is None:
            folders += open_folders([entry if isinstance(entry, str) else entry.passes], config.passes, "rgb")
            continue
        if not Path(entry.passes).is_dir():
            raise UserError(entry.passes, "no such passes folder")
        folder = PassesFolder.open(entry.passes)
        for name in config.passes:
            folder.resolve(name)
        videos[len(folders)] = read_video(entry.video, folder)
        folders.append(folder)
    if mask_pass:
        for folder in folders:
            folder.resolve(mask_pass)
    return folders, videos


def load_models(config: AnchorTrainConfig, folder: str, device: torch.device, channels: int,
                controlnet_unet=None):
    """fp32 parts of ``folder`` with ``controlnets=[ControlNet]``: the folder's ``controlnet/`` (``controlnet:
    auto``), else a new one copying ``controlnet_unet`` (default: the folder's UNet), seeded."""
    from diffusion.loaders.image_encoder import CLIP_B32, load_image_encoder
    from diffusion.loaders.sd15 import load_sd15

    if (Path(folder) / "controlnet").is_dir() and config.controlnet == "auto":
        c = load_parts(folder, controlnet=None, image_encoder=config.image_encoder, scheduler="ddim",
                       device=str(device), dtype="fp32")
    else:
        c = load_sd15(folder, device=str(device), dtype="fp32")
        source = config.image_encoder or (folder if (Path(folder) / "image_encoder").is_dir() else CLIP_B32)
        encoder, processor = load_image_encoder(source, c.device, torch.float32)
        c.extra.update(image_encoder=encoder, processor=processor)
        c.controlnets = [controlnet_from_unet(controlnet_unet or c.unet, channels, seed=config.seed).to(c.device)]
        c.sources.update(image_encoder=source, controlnet="from_unet")
    net = c.controlnets[0]
    if net.config.conditioning_channels != channels:
        raise UserError("passes", f"{'+'.join(config.passes)} give {channels} channels but the model's ControlNet "
                                  f"takes {net.config.conditioning_channels}")
    return c


def make_trainable(config: AnchorTrainConfig, weight_dtype: torch.dtype, c, unet, controlnet) -> None:
    """Frozen VAE / text encoder / vision tower in ``weight_dtype``; UNet + ControlNet trainable in fp32
    (full), or frozen in fp32 with fp32 LoRA on their attention projections (lora: the base stays fp32 so
    the merged final weights are exact; the saving is the gradients and Adam moments of the base)."""
    freeze(weight_dtype, c.vae, c.text_encoder, c.extra["image_encoder"])
    if config.mode == "full":
        for m in (unet, controlnet):
            m.train().requires_grad_(True)
    else:
        from diffusion.loaders.lora import add_lora, lora_parameters

        for k, m in enumerate((unet, controlnet)):
            m.requires_grad_(False)
            with torch.random.fork_rng(devices=[]):  # LoRA A is drawn from the global RNG: seed it
                torch.manual_seed(config.seed + k)
                add_lora(m, LORA_TARGETS, rank=config.lora_rank)
            for p in lora_parameters(m):
                p.requires_grad_(True)
            m.train()
    c.dtype = weight_dtype


def probe_tokens(config: AnchorTrainConfig, c, image: np.ndarray) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Tokens of one reference and the unconditional branch dropout replaces tokens with (None: no dropout)."""
    probe = image_tokens(c.extra["image_encoder"], c.extra["processor"], image[None])
    return probe, (unconditional(c, probe, config.uncond) if config.reference_dropout > 0 else None)


def _merged(module: torch.nn.Module) -> torch.nn.Module:
    """A plain copy of ``module`` with its LoRA merged into the base weights (``module`` is untouched:
    merging and unmerging in place would round its base weights)."""
    import copy

    from diffusion.loaders.lora import fuse_lora

    fused = copy.deepcopy(module)
    fuse_lora(fused)
    state = {k.replace(".base_layer", ""): v for k, v in fused.state_dict().items() if "lora_" not in k}
    plain = type(module).from_config(module.config)
    plain.load_state_dict(state)
    return plain


class MakeYourAnchorRecipe(Recipe):
    name = "make-your-anchor"
    Config = MakeYourAnchorTrainConfig
    final = "model"

    def load_config(self, path):
        config = load_config(path, self.Config)
        base = Path(path).resolve().parent
        data = [_absolute(e, base) if isinstance(e, str) else
                DataEntry(**{k: _absolute(v, base) if v else v for k, v in e.model_dump().items()})
                for e in config.data]
        return config.model_copy(update={"data": data})

    def setup(self, config: MakeYourAnchorTrainConfig, device: torch.device, weight_dtype: torch.dtype) -> Setup:
        weighted = config.actor_weight > 0
        folders, videos = open_data(config, config.mask_pass if config.stage == 1 or weighted else None)
        channels = common_channels(folders, config.passes)
        c = load_models(config, resolve_mya(config.model), device, channels)
        dataset = AnchorDataset(folders, videos, config.stage == 1, config.mask_pass, config.passes, config.size,
                                channels, prompt="", multiple=c.vae_scale_factor, actor_mask=weighted)
        perturbed = {k: PassesFolder.open(e.perturbed) for k, e in enumerate(config.data)
                     if not isinstance(e, str) and e.perturbed}
        dataset.add_perturbed(perturbed, config.passes)
        setup = self.assemble(config, c, dataset, weight_dtype)
        setup.extra.update(pose_perturbation=config.pose_perturbation, actor_weight=config.actor_weight)
        return setup

    def assemble(self, config: AnchorTrainConfig, c, dataset, weight_dtype: torch.dtype) -> Setup:
        """The Setup of loaded models and a dataset: trainable UNet + ControlNet, the rest frozen."""
        unet, controlnet = c.unet, c.controlnets[0]
        make_trainable(config, weight_dtype, c, unet, controlnet)
        probe, uncond = probe_tokens(config, c, dataset.reference(0, 0))
        record = {"models": dict(c.sources), "controlnet_init": c.sources["controlnet"],
                  "conditioning_channels": dataset.channels, "tokens": list(probe.shape[1:]),
                  "folders": [str(clip.folder.root) for clip in dataset.clips],
                  "videos": [str(dataset.clips[i].folder.root) for i in dataset.videos]}
        return Setup({"unet": unet, "controlnet": controlnet}, dataset,
                     extra={"components": c, "noise_scheduler": training_scheduler(c.scheduler.config),
                            "uncond": uncond, "dropout": config.reference_dropout}, record=record)

    def tokens(self, setup: Setup, batch: dict, generator: torch.Generator) -> torch.Tensor:
        """Reference tokens per item: a random frame of the item's clip; replaced by the unconditional branch
        with probability ``reference_dropout``."""
        c, data = setup.extra["components"], setup.dataset
        clips = [int(i) for i in batch["clip"]]
        frames = [int(torch.randint(len(data.clips[i]), (1,), generator=generator)) for i in clips]
        images = np.stack([data.reference(i, k) for i, k in zip(clips, frames)])
        tokens = image_tokens(c.extra["image_encoder"], c.extra["processor"], images).to(c.dtype)
        drop = torch.rand(len(clips), generator=generator) < setup.extra["dropout"]
        if drop.any():
            tokens[drop.to(tokens.device)] = setup.extra["uncond"].to(tokens.dtype)
        return tokens

    def loss(self, setup: Setup, batch: dict, generator: torch.Generator) -> torch.Tensor:
        c, scheduler = setup.extra["components"], setup.extra["noise_scheduler"]
        dtype = c.dtype
        with torch.no_grad():
            latents, noise, timesteps, noisy = noisy_latents(c, scheduler, batch["pixel_values"], generator, dtype)
            tokens = self.tokens(setup, batch, generator)
        cond = batch["conditioning_pixel_values"]
        chance = setup.extra.get("pose_perturbation", 0.0)
        if chance > 0:
            swap = (torch.rand(len(cond), generator=generator) < chance).view(-1, 1, 1, 1)
            cond = torch.where(swap, batch["perturbed_conditioning_pixel_values"], cond)
        pred = self.predict(setup, noisy, noisy, timesteps, tokens, cond)
        target = diffusion_target(scheduler, latents, noise, timesteps).float()
        if not setup.extra.get("actor_weight"):
            return F.mse_loss(pred.float(), target)
        # the share of each latent cell's pixels the actor covers, as a weight 1 + actor_weight * share
        share = F.adaptive_avg_pool2d(batch["actor_mask"].to(target), target.shape[-2:])
        weight = 1.0 + setup.extra["actor_weight"] * share
        return ((pred.float() - target) ** 2 * weight).mean() / weight.mean()

    @staticmethod
    def predict(setup: Setup, unet_input, noisy, timesteps, tokens, cond) -> torch.Tensor:
        """ControlNet(noisy, condition) -> residuals -> UNet(unet_input). Both networks hold fp32 weights
        (full and LoRA); their inputs (from the frozen parts, in the mixed-precision dtype) go in as fp32
        and autocast picks the compute dtype."""
        unet, net = setup.trainable["unet"], setup.trainable["controlnet"]
        f32 = torch.float32
        down, mid = net(noisy.to(f32), timesteps, encoder_hidden_states=tokens.to(f32),
                        controlnet_cond=cond.to(noisy.device, f32), return_dict=False)
        return unet(unet_input.to(f32), timesteps, encoder_hidden_states=tokens.to(f32),
                    down_block_additional_residuals=[r.to(f32) for r in down],
                    mid_block_additional_residual=mid.to(f32), return_dict=False)[0]

    # LoRA mode: checkpoints hold the LoRA weights only (the base is the config's model)
    def save_module(self, name, module, folder):
        from diffusion.loaders.lora import lora_layers, save_lora

        if not lora_layers(module):
            return super().save_module(name, module, folder)
        rank = lora_layers(module)[0].r["default"]
        save_lora(module, Path(folder) / LORA_FILE.format(name), {"rank": rank, "alpha": rank, "targets": LORA_TARGETS})

    def load_module(self, name, module, folder):
        from peft import set_peft_model_state_dict

        from diffusion.loaders.lora import PREFIX, lora_layers, read_lora

        if not lora_layers(module):
            return super().load_module(name, module, folder)
        tensors, _ = read_lora(Path(folder) / LORA_FILE.format(name))
        set_peft_model_state_dict(module, {k[len(PREFIX):]: v for k, v in tensors.items()})

    def finish(self, config: MakeYourAnchorTrainConfig, setup: Setup, folder: Path) -> None:
        from diffusion.loaders.lora import lora_layers

        c = setup.extra["components"]
        unet, controlnet = (_merged(m) if lora_layers(m) else m for m in (setup.trainable["unet"],
                                                                         setup.trainable["controlnet"]))
        save_model(folder, unet=unet, controlnet=controlnet, vae=c.vae, image_encoder=c.extra["image_encoder"],
                   feature_extractor=c.extra["processor"], scheduler=c.scheduler, text_encoder=c.text_encoder,
                   tokenizer=c.tokenizer, info=self.info(config), reference=setup.dataset.reference(0, 0))

    def info(self, config: MakeYourAnchorTrainConfig) -> dict:
        """``avatarcine_mya.json`` of the finished folder."""
        return {"passes": config.passes, "uncond": config.uncond, "stage": config.stage, "mode": config.mode,
                "reference_dropout": config.reference_dropout, "steps": config.steps, "resolution": list(config.size),
                "base": config.model}

    def validate(self, config: MakeYourAnchorTrainConfig, setup: Setup) -> np.ndarray:
        """The first ``validation_frames`` frames of the first clip, generated per frame with the current
        weights and frame 0 as the reference (top), above their targets (bottom); at the ControlNet scale
        the model trains at (1), and without guidance when the unconditional branch is never trained
        (``reference_dropout: 0``), as such a model must be sampled."""
        import dataclasses

        import imageio.v2 as imageio

        from diffusion.methods.make_your_anchor import METHOD

        c, data = setup.extra["components"], setup.dataset
        reference = Path(config.output) / "validation" / "reference.png"
        reference.parent.mkdir(parents=True, exist_ok=True)
        imageio.imwrite(reference, data.reference(0, 0))
        settings = METHOD.settings(model=config.model, reference=str(reference), condition=config.passes,
                                   uncond=config.uncond, steps=config.validation_steps, seed=config.seed,
                                   controlnet_scale=1.0, **({"cfg": 1.0} if config.reference_dropout == 0 else {}),
                                   attention="none", window=1, overlap=0, max_frames=config.validation_frames,
                                   width=config.size[0], height=config.size[1])
        live = dataclasses.replace(c, unet=setup.trainable["unet"], controlnets=[setup.trainable["controlnet"]],
                                   sources={**c.sources, "controlnet": "training"})
        generated = METHOD.run(data.clips[0].folder, settings, live).frames
        targets = [data.reference(0, k) for k in range(len(generated))]
        return np.stack([np.concatenate([g, t], axis=0) for g, t in zip(generated, targets)])

    def usage(self, config, final: Path) -> str:
        return f"avatarcine generate PASSES --method make-your-anchor --model {final} --condition {'+'.join(config.passes)}"


RECIPE = MakeYourAnchorRecipe()
