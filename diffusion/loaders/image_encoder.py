"""CLIP vision encoder + image processor: reference-image tokens (Make-Your-Anchor: the unpooled
``last_hidden_state`` of ViT-B/32, 50 x 768, used as the cross-attention context of SD 1.5).

Sources: a hub id or folder of a CLIP model (``openai/clip-vit-base-patch32``; the vision tower is
read out of a full CLIP checkpoint), or a pipeline folder with ``image_encoder/`` (+
``feature_extractor/``), as the tiny model has.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from diffusion.loaders.common import load_pretrained, prepare_modules, resolve_model

CLIP_B32 = "openai/clip-vit-base-patch32"
TINY_IMAGE_SIZE = 32


def _folders(source: str) -> tuple[str, dict, str, dict]:
    """(encoder source, kwargs, processor source, kwargs) for a CLIP repo or a pipeline folder."""
    local = Path(source)
    if (local / "image_encoder").is_dir():
        processor = local / "feature_extractor"
        return (str(local), {"subfolder": "image_encoder"},
                str(local), {"subfolder": "feature_extractor"} if processor.is_dir() else {"subfolder": "image_encoder"})
    return source, {}, source, {}


def load_image_encoder(source: str, device: torch.device, dtype: torch.dtype):
    """``(CLIPVisionModel, CLIPImageProcessor)`` frozen on ``device``."""
    from transformers import CLIPImageProcessor, CLIPVisionModel

    source = resolve_model(source)
    encoder_source, encoder_kwargs, processor_source, processor_kwargs = _folders(source)
    encoder = load_pretrained(CLIPVisionModel, encoder_source, dtype=dtype, **encoder_kwargs)
    processor = load_pretrained(CLIPImageProcessor, processor_source, **processor_kwargs)
    prepare_modules(device, encoder)
    return encoder, processor


@torch.no_grad()
def image_tokens(encoder, processor, images: np.ndarray) -> torch.Tensor:
    """(N, H, W, 3) uint8 RGB -> (N, tokens, width) ``last_hidden_state`` (class token + patches), on the
    encoder's device and dtype. Images go in as uint8 so the processor rescales exactly once."""
    pixels = processor(images=[np.ascontiguousarray(im) for im in images], return_tensors="pt").pixel_values
    return encoder(pixel_values=pixels.to(encoder.device, encoder.dtype)).last_hidden_state


def tiny_image_encoder() -> torch.nn.Module:
    """A 2-layer ViT of width 32 on 32 px images, patch 8: 17 tokens of width 32 (the tiny UNet's
    cross-attention width). Saved with a projection head, as SD pipelines' ``image_encoder/`` are."""
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    return CLIPVisionModelWithProjection(CLIPVisionConfig(
        hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, image_size=TINY_IMAGE_SIZE,
        patch_size=8, projection_dim=32,
    ))


def tiny_image_processor():
    from transformers import CLIPImageProcessor

    return CLIPImageProcessor(size={"shortest_edge": TINY_IMAGE_SIZE},
                              crop_size={"height": TINY_IMAGE_SIZE, "width": TINY_IMAGE_SIZE})
