"""``avatarcine train amg``: AMG's fine-tuning of a video UNet on (video, avatar render, caption) triples.

Data: passes folders holding the avatar pass (the condition) and the video to learn: our ``rgb``
render (``target``) for synthetic identities, or a user's video file (``videos``: folder -> file) for
passes rendered from the motion and camera fitted to it; a passes frame takes the video frame at its
``time``. Items are ``frames``-frame clips taken every ``stride`` frames (``ClipDataset``).

The base (ModelScope T2V or AnimateDiff) is frozen; conv_in is widened to [noisy latent, avatar
latent] and LoRA is injected (``diffusion.methods.amg.model``), and only those train. Loss: MSE to the noise (eps-prediction, DDPM forward noising, one timestep per clip), as the
authors'. Defaults follow them: lr 1e-6, AdamW without weight decay, 10 warmup steps, 16 frames,
256 px. No caption dropout (the authors have none; guidance uses the empty prompt's embedding).

The result is one adapter file ``OUTPUT/amg/adapter.safetensors`` (``--lora`` of ``--method amg``);
checkpoints hold the same file, so a checkpoint's adapter can be tried while training continues.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Literal

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field

from diffusion.loaders.schedulers import training_scheduler
from diffusion.loaders.video_unet import ANIMATEDIFF_ADAPTER, MODELSCOPE_T2V, to_video, video_context
from diffusion.methods.amg.model import (ADAPTER_FILE, amg_unet, load_adapter_weights, load_base, make_trainable,
                                         read_adapter, save_adapter)
from diffusion.io.conditioning import Framing
from diffusion.io.passes import PassesFolder
from diffusion.training.config import ImageTrainConfig, load_config
from diffusion.training.datasets import ClipDataset, open_folders
from diffusion.training.recipes.controlnet import diffusion_target, freeze, text_embeddings
from diffusion.training.trainer import Recipe, Setup
from motion.errors import UserError

INFO = "amg_adapter_info"   # attribute of the trained UNet: the metadata its adapter files carry


class AMGTrainConfig(ImageTrainConfig):
    """``avatarcine train amg`` (see the README for an example)."""

    PATHS: ClassVar[dict[str, str | None]] = {**ImageTrainConfig.PATHS, "motion_adapter": ANIMATEDIFF_ADAPTER}
    RESUME_FIXED: ClassVar[tuple[str, ...]] = ImageTrainConfig.RESUME_FIXED + (
        "base", "motion_adapter", "condition", "target", "frames", "stride", "rank", "videos")

    base: Literal["modelscope", "animatediff"] = "modelscope"
    model: str = Field(MODELSCOPE_T2V, description="ModelScope T2V pipeline (base modelscope) or SD 1.5 model "
                                                   "(base animatediff): hub id, folder, or tiny")
    motion_adapter: str = Field(ANIMATEDIFF_ADAPTER, description="MotionAdapter of base animatediff")
    condition: str = Field("avatar", description="pass the avatar latent is encoded from")
    target: str = Field("rgb", description="pass holding the video to learn")
    frames: int = Field(16, ge=1, description="frames per training clip")
    stride: int = Field(1, ge=1, description="take every N-th frame (the authors: 3, 24 -> 8 fps)")
    rank: int = Field(4, ge=1, description="LoRA rank")
    videos: dict[str, str] = Field({}, description="passes folder -> video file holding its target frames")
    resolution: int | tuple[int, int] = 256
    learning_rate: float = Field(1e-6, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    warmup_steps: int = Field(10, ge=0)


def video_frames(path: str, folder: PassesFolder, framing: Framing) -> np.ndarray:
    """(N, H, W, 3) uint8: the frames of video ``path`` at the times of ``folder``'s frames (nearest
    frame), scaled to the passes' resolution (same aspect ratio) and framed like them."""
    import cv2
    import imageio.v2 as imageio

    try:
        reader = imageio.get_reader(path, "ffmpeg")
        fps = float(reader.get_meta_data().get("fps") or 0)
    except (OSError, ValueError, RuntimeError, IndexError) as exc:
        raise UserError(path, f"not a readable video ({' '.join(str(exc).split())[:200]})") from None
    if fps <= 0:
        raise UserError(path, "has no frame rate")
    wanted: dict[int, list[int]] = {}
    for k, frame in enumerate(folder.meta["frames"]):
        wanted.setdefault(round(float(frame["time"]) * fps), []).append(k)
    w, h = folder.resolution
    out = np.empty((len(folder.meta["frames"]), framing.size[1], framing.size[0], 3), np.uint8)
    filled, last = 0, -1
    with reader:
        for last, image in enumerate(reader):
            if last in wanted:
                if abs(image.shape[1] / image.shape[0] - w / h) > 0.01 * w / h:
                    raise UserError(path, f"is {image.shape[1]}x{image.shape[0]}, the passes {w}x{h}: another "
                                          "aspect ratio (render the passes with the video's camera and size)")
                image = cv2.resize(np.ascontiguousarray(image[..., :3]), (w, h), interpolation=cv2.INTER_AREA)
                for k in wanted[last]:
                    out[k] = framing.image(image)
                    filled += 1
            if filled == len(out):
                return out
    need = max(float(f["time"]) for f in folder.meta["frames"])
    raise UserError(path, f"ends after {last + 1} frames ({(last + 1) / fps:.2f} s at {fps:g} fps); the passes "
                          f"{folder.root} run to {need:.2f} s")


class VideoClipDataset(ClipDataset):
    """``ClipDataset`` whose target frames come from video files for the folders in ``videos``."""

    def __init__(self, *args, videos: dict[str, str], **kwargs):
        super().__init__(*args, **kwargs)
        self.videos = {str(clip.folder.root): video_frames(videos[str(clip.folder.root)], clip.folder, clip.framing)
                       for clip in self.clips if str(clip.folder.root) in videos}

    def target_image(self, clip, k: int) -> np.ndarray:
        frames = self.videos.get(str(clip.folder.root))
        return super().target_image(clip, k) if frames is None else frames[k].astype(np.float32) / 255.0


def _folders(config: AMGTrainConfig) -> list[PassesFolder]:
    """The config's passes folders in order: with the target pass, or (``videos``) the condition only."""
    unknown = sorted(set(config.videos) - set(config.data))
    if unknown:
        raise UserError("videos", f"{unknown[0]} is not one of the data folders")
    folders = []
    for path in config.data:
        if path in config.videos:
            if not Path(path).is_dir():
                raise UserError(path, "no such passes folder")
            folder = PassesFolder.open(path)
            folder.resolve(config.condition)
            folders.append(folder)
        else:
            folders += open_folders([path], [config.condition], config.target)
    return folders


class AMGRecipe(Recipe):
    name = "amg"
    Config = AMGTrainConfig
    final = "amg"

    def setup(self, config: AMGTrainConfig, device: torch.device, weight_dtype: torch.dtype) -> Setup:
        from diffusers.training_utils import cast_training_params

        folders = _folders(config)
        c = load_base(config.base, config.model, config.motion_adapter, device=str(device), dtype="fp32")
        with torch.random.fork_rng(devices=[]):   # LoRA's gaussian A from the config's seed: same seed, same weights
            torch.manual_seed(config.seed)
            unet = amg_unet(c.unet, rank=config.rank)
        setattr(unet, INFO, {"base": config.base, "model": config.model, "pass": config.condition,
                             **({"motion_adapter": config.motion_adapter} if config.base == "animatediff" else {}),
                             "frames": config.frames, "stride": config.stride, "resolution": list(config.size)})
        freeze(weight_dtype, c.vae, c.text_encoder)
        if weight_dtype != torch.float32:
            unet.to(dtype=weight_dtype)
        make_trainable(unet)
        cast_training_params(unet, torch.float32)   # frozen base in the mixed-precision dtype, trained parts fp32
        unet.train()
        c.dtype = weight_dtype
        dataset = VideoClipDataset(folders, [config.condition], config.size, 3, target=config.target,
                                   prompt=config.prompt, multiple=c.vae_scale_factor, frames=config.frames,
                                   stride=config.stride, videos=config.videos)
        noise_scheduler = training_scheduler(c.scheduler.config)
        record = {"models": dict(c.sources), "folders": [str(f.root) for f in folders],
                  "prediction_type": noise_scheduler.config.prediction_type}
        return Setup({"unet": unet}, dataset, extra={"components": c, "noise_scheduler": noise_scheduler, "text": {}},
                     record=record)

    def loss(self, setup: Setup, batch: dict, generator: torch.Generator) -> torch.Tensor:
        c, scheduler = setup.extra["components"], setup.extra["noise_scheduler"]
        pixels, avatar = batch["pixel_values"], batch["conditioning_pixel_values"]   # (B, F, 3, H, W)
        b, f = pixels.shape[:2]
        scale = c.vae.config.scaling_factor
        with torch.no_grad():
            video = c.vae.encode(pixels.flatten(0, 1).to(c.device, c.dtype)).latent_dist.sample(generator=generator)
            cond = c.vae.encode(avatar.flatten(0, 1).to(c.device, c.dtype) * 2 - 1).latent_dist.mean
            latents = torch.cat([to_video(z) for z in (video * scale).unflatten(0, (b, f))])   # (B, 4, F, h, w)
            cond = torch.cat([to_video(z) for z in (cond * scale).unflatten(0, (b, f))])
            noise = torch.randn(latents.shape, generator=generator, dtype=latents.dtype).to(c.device)
            timesteps = torch.randint(0, scheduler.config.num_train_timesteps, (b,), generator=generator).to(c.device)
            noisy = scheduler.add_noise(latents, noise, timesteps)
            text = video_context(c.unet, text_embeddings(c, setup.extra["text"], list(batch["caption"])), f)
        pred = setup.trainable["unet"](torch.cat([noisy, cond], dim=1), timesteps, encoder_hidden_states=text,
                                       return_dict=False)[0]
        return F.mse_loss(pred.float(), diffusion_target(scheduler, latents, noise, timesteps).float())

    def load_config(self, path: str | Path) -> AMGTrainConfig:
        """The config, with ``videos`` keys and files relative to it like ``data``."""
        config = load_config(path, self.Config)
        base = Path(path).resolve().parent
        resolve = lambda p: str((base / Path(p).expanduser()).resolve())   # noqa: E731 (absolute paths stay)
        return config.model_copy(update={"videos": {resolve(k): resolve(v) for k, v in config.videos.items()}})

    def save_module(self, name: str, module: torch.nn.Module, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        save_adapter(module, folder / ADAPTER_FILE, getattr(module, INFO))

    def load_module(self, name: str, module: torch.nn.Module, folder: Path) -> None:
        tensors, _ = read_adapter(folder / ADAPTER_FILE)
        load_adapter_weights(module, tensors, folder / ADAPTER_FILE)

    def finish(self, config: AMGTrainConfig, setup: Setup, folder: Path) -> None:
        unet = setup.trainable["unet"]
        save_adapter(unet, folder / ADAPTER_FILE, {**getattr(unet, INFO), "steps": config.steps})

    def usage(self, config: AMGTrainConfig, final: Path) -> str:
        return (f"avatarcine generate PASSES --method amg --base {config.base} --model {config.model} "
                f"--condition {config.condition} --lora {final / ADAPTER_FILE} --prompt \"...\"")


RECIPE = AMGRecipe()
