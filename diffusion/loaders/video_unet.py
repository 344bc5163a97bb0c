"""Video UNets: ModelScope T2V (``UNet3DConditionModel``: factorised space/time, temporal convs and
attention) and AnimateDiff (``UNetMotionModel``: an SD 1.5 UNet + ``MotionAdapter`` motion modules).

Both take latents shaped (batch, channels, frames, height, width); :func:`to_video` and
:func:`from_video` convert from and to our frames-first (frames, channels, height, width) layout.
Their context differs: ``UNet3DConditionModel`` repeats the (batch, tokens, dim) context over frames
itself, ``UNetMotionModel`` wants it repeated already (as diffusers' AnimateDiff pipeline does);
:func:`video_context` gives each what it wants.
"""

from __future__ import annotations

import torch

from diffusion.loaders.common import load_pretrained, prepare_modules, resolve_model

MODELSCOPE_T2V = "ali-vilab/text-to-video-ms-1.7b"
ANIMATEDIFF_ADAPTER = "guoyww/animatediff-motion-adapter-v1-5-3"
KINDS = ("unet3d", "motion")


def load_unet3d(source: str, device: torch.device, dtype: torch.dtype, subfolder: str = "unet"):
    """A ModelScope-style ``UNet3DConditionModel`` (pipeline folder/hub id with ``unet/``)."""
    from diffusers import UNet3DConditionModel

    unet = load_pretrained(UNet3DConditionModel, resolve_model(source), subfolder=subfolder, torch_dtype=dtype)
    prepare_modules(device, unet)
    return unet


def load_motion_unet(unet2d: torch.nn.Module, adapter_source: str, device: torch.device, dtype: torch.dtype):
    """``UNetMotionModel.from_unet2d``: ``unet2d`` (an SD 1.5 UNet) + a ``MotionAdapter`` from a hub id or
    folder."""
    from diffusers import MotionAdapter, UNetMotionModel

    adapter = load_pretrained(MotionAdapter, resolve_model(adapter_source), torch_dtype=dtype)
    unet = UNetMotionModel.from_unet2d(unet2d, adapter).to(dtype)
    prepare_modules(device, unet)
    return unet


def to_video(frames: torch.Tensor) -> torch.Tensor:
    """(F, C, H, W) -> (1, C, F, H, W)."""
    return frames.permute(1, 0, 2, 3).unsqueeze(0)


def from_video(video: torch.Tensor) -> torch.Tensor:
    """(1, C, F, H, W) -> (F, C, H, W)."""
    return video[0].permute(1, 0, 2, 3)


def video_context(unet: torch.nn.Module, context: torch.Tensor, frames: int) -> torch.Tensor:
    """The ``encoder_hidden_states`` a video UNet takes for (batch, tokens, dim) ``context`` over ``frames``."""
    from diffusers import UNetMotionModel

    return context.repeat_interleave(frames, dim=0) if isinstance(unet, UNetMotionModel) else context


def tiny_unet3d() -> torch.nn.Module:
    """A two-level ``UNet3DConditionModel`` shaped like the tiny SD UNet (widths 32/64, context 32)."""
    from diffusers import UNet3DConditionModel

    from diffusion.loaders.sd15 import TINY_CONTEXT

    return UNet3DConditionModel(
        sample_size=8, in_channels=4, out_channels=4, layers_per_block=1, block_out_channels=(32, 64),
        down_block_types=("CrossAttnDownBlock3D", "DownBlock3D"), up_block_types=("UpBlock3D", "CrossAttnUpBlock3D"),
        cross_attention_dim=TINY_CONTEXT, attention_head_dim=4, norm_num_groups=32,
    )


def tiny_motion_adapter() -> torch.nn.Module:
    """A ``MotionAdapter`` fitting the tiny SD UNet (two levels, one motion layer each)."""
    from diffusers import MotionAdapter

    return MotionAdapter(block_out_channels=(32, 64), motion_layers_per_block=1, motion_mid_block_layers_per_block=1,
                         motion_num_attention_heads=4, motion_norm_num_groups=32, motion_max_seq_length=32)
