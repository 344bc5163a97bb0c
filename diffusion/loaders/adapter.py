"""T2I-Adapter (Follow Your Pose's pose encoder has its architecture): a convolutional encoder of a
condition image whose per-level features are added inside the UNet's down blocks
(``down_intrablock_additional_residuals``)."""

from __future__ import annotations

import torch

from diffusion.loaders.common import load_pretrained, prepare_modules


def load_adapter(source: str, device: torch.device, dtype: torch.dtype, subfolder: str | None = None):
    """A ``T2IAdapter`` from a hub id or folder, frozen on ``device``."""
    from diffusers import T2IAdapter

    kwargs = {"subfolder": subfolder} if subfolder else {}
    adapter = load_pretrained(T2IAdapter, source, torch_dtype=dtype, **kwargs)
    prepare_modules(device, adapter)
    return adapter


def new_adapter(unet: torch.nn.Module, in_channels: int = 3, num_res_blocks: int = 2, downscale_factor: int = 8):
    """A full T2I-Adapter whose levels match ``unet``'s down blocks (channels ``block_out_channels``;
    SD 1.5: 320/640/1280/1280 at latent scales 1, 1/2, 1/4, 1/8)."""
    from diffusers import T2IAdapter

    return T2IAdapter(in_channels=in_channels, channels=list(unet.config.block_out_channels),
                      num_res_blocks=num_res_blocks, downscale_factor=downscale_factor, adapter_type="full_adapter")


def zero_adapter_outputs(adapter: torch.nn.Module) -> None:
    """Make every level's features exactly 0, so the UNet is exactly the base model at initialisation
    (Follow Your Pose's "zero-initialised" encoder; its public code does not do it). A full adapter's
    residual blocks keep an identity skip, so zeroing their last convolutions alone leaves the input:
    the input convolution, every block's second convolution and the channel-changing convolutions'
    biases are zeroed. Training still starts at once: the skips carry the gradient to the input
    convolution."""
    inner = adapter.adapter
    with torch.no_grad():
        for conv in [inner.conv_in] + [r.block2 for block in inner.body for r in block.resnets]:
            conv.weight.zero_()
            conv.bias.zero_()
        for block in inner.body:
            if block.in_conv is not None:
                block.in_conv.bias.zero_()
