"""Self-attention across frames, as diffusers attention processors.

A UNet call sees a batch of ``groups * frames`` images (``groups`` = 2 under classifier-free
guidance: unconditional frames, then conditional frames, as diffusers stacks them). The processors
regroup the batch as ``(groups, frames, tokens, dim)`` and let each frame's queries attend to the
keys/values of other frames of the same group, with the layer's own weights (training-free).

- ``cross-frame`` (Tune-A-Video / Follow-Your-Pose style): frame i attends to the first frame and
  frame i-1 (frame 0 to itself twice, which is softmax-equivalent to itself once). "First" is the
  first frame of the current window: with overlapping windows this anchor changes per window; the
  overlap averaging ties windows together. (Choice: the papers run a single clip, no windows.)
- ``window`` (Make-Your-Anchor eq. 5-8 / ControlVideo "fully cross-frame"): every frame attends to
  the tokens of all frames of the window concatenated; cost O(ws^2).

Only self-attention (``attn1``) of the UNet is replaced; cross-attention to text and the
ControlNets keep diffusers' ``AttnProcessor2_0``.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Iterator

import torch
import torch.nn.functional as F

MODES = ("none", "cross-frame", "window")


@dataclass
class FrameLayout:
    """How many frames the current UNet batch holds; the sampler sets it before each call."""

    frames: int = 1


class FrameAttnProcessor:
    """Self-attention whose keys/values come from other frames of the same window (see module doc)."""

    def __init__(self, layout: FrameLayout, mode: str):
        if mode not in ("cross-frame", "window"):
            raise ValueError(f"unknown frame attention mode {mode!r}")
        self.layout = layout
        self.mode = mode

    def _gather(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, D) per-frame tokens -> (B, T', D) tokens each frame attends to."""
        frames = self.layout.frames
        batch, tokens, dim = x.shape
        if batch % frames:
            raise ValueError(f"batch {batch} is not a multiple of the window's {frames} frames")
        x = x.view(batch // frames, frames, tokens, dim)
        if self.mode == "window":
            x = x.reshape(batch // frames, 1, frames * tokens, dim).expand(-1, frames, -1, -1)
            return x.reshape(batch, frames * tokens, dim)
        first = x[:, :1].expand(-1, frames, -1, -1)
        previous = torch.cat([x[:, :1], x[:, :-1]], dim=1)
        return torch.cat([first, previous], dim=2).reshape(batch, 2 * tokens, dim)

    def __call__(self, attn, hidden_states: torch.Tensor, encoder_hidden_states: torch.Tensor | None = None,
                 attention_mask: torch.Tensor | None = None, temb: torch.Tensor | None = None,
                 **kwargs) -> torch.Tensor:
        if encoder_hidden_states is not None or attention_mask is not None:
            raise ValueError("frame attention replaces self-attention only (no context, no mask)")
        residual = hidden_states
        if attn.spatial_norm is not None:
            hidden_states = attn.spatial_norm(hidden_states, temb)
        input_ndim = hidden_states.ndim
        if input_ndim == 4:
            batch, channel, height, width = hidden_states.shape
            hidden_states = hidden_states.view(batch, channel, height * width).transpose(1, 2)
        batch = hidden_states.shape[0]
        if attn.group_norm is not None:
            hidden_states = attn.group_norm(hidden_states.transpose(1, 2)).transpose(1, 2)

        context = self._gather(hidden_states)
        query, key, value = attn.to_q(hidden_states), attn.to_k(context), attn.to_v(context)
        head_dim = key.shape[-1] // attn.heads
        query = query.view(batch, -1, attn.heads, head_dim).transpose(1, 2)
        key = key.view(batch, -1, attn.heads, head_dim).transpose(1, 2)
        value = value.view(batch, -1, attn.heads, head_dim).transpose(1, 2)
        if attn.norm_q is not None:
            query = attn.norm_q(query)
        if attn.norm_k is not None:
            key = attn.norm_k(key)
        hidden_states = F.scaled_dot_product_attention(query, key, value, dropout_p=0.0, is_causal=False)
        hidden_states = hidden_states.transpose(1, 2).reshape(batch, -1, attn.heads * head_dim).to(query.dtype)
        hidden_states = attn.to_out[1](attn.to_out[0](hidden_states))
        if input_ndim == 4:
            hidden_states = hidden_states.transpose(-1, -2).reshape(batch, channel, height, width)
        if attn.residual_connection:
            hidden_states = hidden_states + residual
        return hidden_states / attn.rescale_output_factor


def is_self_attention(name: str) -> bool:
    """diffusers names the self-attention of each transformer block ``...attn1.processor``."""
    return name.endswith("attn1.processor")


@contextlib.contextmanager
def frame_attention(unet: torch.nn.Module, mode: str, layout: FrameLayout) -> Iterator[None]:
    """Within the block, the UNet's self-attention layers use ``FrameAttnProcessor(mode)``;
    the previous processors are restored afterwards. ``mode="none"`` changes nothing."""
    if mode not in MODES:
        raise ValueError(f"attention mode {mode!r} is not one of {MODES}")
    if mode == "none":
        yield
        return
    previous = dict(unet.attn_processors)
    processor = FrameAttnProcessor(layout, mode)
    unet.set_attn_processor({name: processor if is_self_attention(name) else proc
                             for name, proc in previous.items()})
    try:
        yield
    finally:
        unet.set_attn_processor(previous)
