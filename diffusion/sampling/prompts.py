"""Text -> embeddings the way diffusers' Stable Diffusion pipelines make them (same tokenizer padding,
no clip skip), and the padding of another context (image tokens) to a given length."""

from __future__ import annotations

import torch

from diffusion.loaders.common import Components


@torch.no_grad()
def encode_text(c: Components, prompt: str, length: int | None = None) -> torch.Tensor:
    """(1, tokens, dim) CLIP text embeddings, padded to ``length`` tokens (default: the tokenizer's max
    length; diffusers pads the negative prompt to the length of given ``prompt_embeds`` this way)."""
    length = length or c.tokenizer.model_max_length
    ids = c.tokenizer([prompt], padding="max_length", max_length=length, truncation=True,
                      return_tensors="pt").input_ids
    mask = None
    if getattr(c.text_encoder.config, "use_attention_mask", False):
        mask = (ids != c.tokenizer.pad_token_id).to(c.device)
    return c.text_encoder(ids.to(c.device), attention_mask=mask)[0].to(device=c.device, dtype=c.text_encoder.dtype)
