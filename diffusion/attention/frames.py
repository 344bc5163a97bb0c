"""Self-attention across the frames of a window, as diffusers attention processors.

A UNet call sees a batch of ``groups * frames`` images (``groups`` = 2 under classifier-free
guidance: unconditional frames, then conditional frames, as diffusers stacks them; ``frames`` comes
with the call in ``FrameInfo``). The processors regroup the batch as ``(groups, frames, tokens, dim)``
and let each frame's queries attend to keys/values of other frames of the same group, with the
layer's own weights (training-free; no parameters are added).

- ``cross-frame`` (Tune-A-Video / Follow Your Pose style): frame i attends to the first frame and
  frame i-1 (frame 0 to itself twice, which is softmax-equivalent to itself once). "First" is the
  first frame of the current window: with overlapping windows this anchor changes per window; the
  overlap blending ties windows together. (Choice: the papers run a single clip, no windows.)
- ``window`` (Make-Your-Anchor eq. 5-8 / ControlVideo "fully cross-frame"): every frame attends to
  the tokens of all frames of the window concatenated; cost O(ws^2).

:class:`FrameSelfAttention` holds the projection steps every such processor shares (as diffusers'
``AttnProcessor2_0`` does them); subclasses only say what each frame attends to.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch
import torch.nn.functional as F

from diffusion.attention.install import SELF_ATTENTION, FrameInfo

MODES = ("none", "cross-frame", "window")


def heads(attn, x: torch.Tensor) -> torch.Tensor:
    """(B, T, heads * d) -> (B, heads, T, d)."""
    return x.view(x.shape[0], -1, attn.heads, x.shape[-1] // attn.heads).transpose(1, 2)


def by_frame(x: torch.Tensor, frames: int) -> torch.Tensor:
    """(groups * frames, T, D) -> (groups, frames, T, D)."""
    if x.shape[0] % frames:
        raise ValueError(f"batch {x.shape[0]} is not a multiple of the window's {frames} frames")
    return x.view(x.shape[0] // frames, frames, *x.shape[1:])


class FrameSelfAttention(ABC):
    """Self-attention whose keys/values a subclass chooses from the other frames (see module doc)."""

    @abstractmethod
    def attend(self, attn, hidden_states: torch.Tensor, info: FrameInfo) -> torch.Tensor:
        """(B, T, D) normalised inputs -> (B, T, heads * d) attention output before ``to_out``."""

    def sdpa(self, attn, hidden_states: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        """Queries of ``hidden_states`` (B, T, D) over keys/values of ``context`` (B, T', D)."""
        query = heads(attn, attn.to_q(hidden_states))
        key, value = heads(attn, attn.to_k(context)), heads(attn, attn.to_v(context))
        if attn.norm_q is not None:
            query = attn.norm_q(query)
        if attn.norm_k is not None:
            key = attn.norm_k(key)
        out = F.scaled_dot_product_attention(query, key, value, dropout_p=0.0, is_causal=False)
        return out.transpose(1, 2).reshape(hidden_states.shape[0], -1, out.shape[1] * out.shape[-1]).to(query.dtype)

    def __call__(self, attn, hidden_states: torch.Tensor, encoder_hidden_states: torch.Tensor | None = None,
                 attention_mask: torch.Tensor | None = None, temb: torch.Tensor | None = None,
                 frame_info: FrameInfo | None = None, **kwargs) -> torch.Tensor:
        if encoder_hidden_states is not None or attention_mask is not None:
            raise ValueError("frame attention replaces self-attention only (no context, no mask)")
        if frame_info is None:
            raise ValueError("frame attention needs cross_attention_kwargs={'frame_info': FrameInfo(...)}")
        residual = hidden_states
        if attn.spatial_norm is not None:
            hidden_states = attn.spatial_norm(hidden_states, temb)
        input_ndim = hidden_states.ndim
        if input_ndim == 4:
            batch, channel, height, width = hidden_states.shape
            hidden_states = hidden_states.view(batch, channel, height * width).transpose(1, 2)
        if attn.group_norm is not None:
            hidden_states = attn.group_norm(hidden_states.transpose(1, 2)).transpose(1, 2)
        hidden_states = self.attend(attn, hidden_states, frame_info)
        hidden_states = attn.to_out[1](attn.to_out[0](hidden_states))
        if input_ndim == 4:
            hidden_states = hidden_states.transpose(-1, -2).reshape(batch, channel, height, width)
        if attn.residual_connection:
            hidden_states = hidden_states + residual
        return hidden_states / attn.rescale_output_factor


class WindowAttention(FrameSelfAttention):
    """Every frame attends to the tokens of all frames of its window (Make-Your-Anchor)."""

    def attend(self, attn, hidden_states, info):
        x = by_frame(hidden_states, info.frames)
        groups, frames, tokens, dim = x.shape
        context = x.reshape(groups, 1, frames * tokens, dim).expand(-1, frames, -1, -1)
        return self.sdpa(attn, hidden_states, context.reshape(groups * frames, frames * tokens, dim))


class CrossFrameAttention(FrameSelfAttention):
    """Frame i attends to the window's first frame and frame i-1 (Tune-A-Video / Follow Your Pose)."""

    def attend(self, attn, hidden_states, info):
        x = by_frame(hidden_states, info.frames)
        first = x[:, :1].expand(-1, x.shape[1], -1, -1)
        previous = torch.cat([x[:, :1], x[:, :-1]], dim=1)
        context = torch.cat([first, previous], dim=2)
        return self.sdpa(attn, hidden_states, context.reshape(-1, *context.shape[2:]))


def frame_attention_rules(mode: str, pattern: str = SELF_ATTENTION) -> dict[str, FrameSelfAttention]:
    """Install rules for ``mode`` (``none``: no rules) on the layers matching ``pattern``."""
    if mode not in MODES:
        raise ValueError(f"attention mode {mode!r} is not one of {MODES}")
    if mode == "none":
        return {}
    return {pattern: WindowAttention() if mode == "window" else CrossFrameAttention()}
