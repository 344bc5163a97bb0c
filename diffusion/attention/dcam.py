"""PoseAnimate's dual consistency attention (DCAM) and its mask-guided decoupling (MGDM).

Frame i of a window attends three times, with three softmaxes, and the outputs are blended:

    DCA_i = w0 Attn(Q_i, K_0, V_0) + w1 Attn(Q_i, K_{i-1}, V_{i-1}) + w2 Attn(Q_i, K_i, V_i)

(paper: w = 0.7, 0.15, 0.15). Frame 0 of the batch is the anchor (the source image); its previous
frame is itself, so it keeps plain self-attention. Terms of weight 0 are not computed, so (0, 0, 1)
is exactly the layer's own self-attention and (1, 0, 0) exactly first-frame attention.

MGDM (``masks`` in ``FrameInfo.extra``: (frames, h, w) body masks at latent size): each term is
computed twice, once over the key frame's character tokens and once over its background tokens, and
the two are blended by the query frame's mask: ``M_i DCA^c_i + (1 - M_i) DCA^b_i``. Where the paper
multiplies keys and values by the mask (eq. 9), which still gives the zeroed tokens softmax weight,
we exclude the other region's keys from the softmax (``-inf`` logits, as MasaCtrl's mask control
does): "attention only within the corresponding region" is what the text describes. A key frame with
no token in a region attends to all its tokens for that region's term (nothing else is defined). Masks
are area-resized to each layer's token grid and thresholded at 0.5.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from diffusion.attention.frames import FrameSelfAttention, by_frame, heads
from diffusion.attention.install import FrameInfo

UP_BLOCKS_SELF_ATTENTION = "up_blocks.*attn1.processor"  # the paper's DCAM layers


def token_grid(tokens: int, latent: tuple[int, int]) -> tuple[int, int]:
    """(h, w) of a layer with ``tokens`` tokens on a UNet over an (H, W) latent (each level halves, rounding up)."""
    h, w = latent
    for level in range(8):
        f = 2 ** level
        grid = (math.ceil(h / f), math.ceil(w / f))
        if grid[0] * grid[1] == tokens:
            return grid
    raise ValueError(f"{tokens} tokens are no UNet level of a {h}x{w} latent")


class DualConsistencyAttention(FrameSelfAttention):
    """DCAM (``masks`` absent from the call) or DCAM + MGDM (``masks`` given); see the module doc."""

    def __init__(self, weights: tuple[float, float, float] = (0.7, 0.15, 0.15)):
        if len(weights) != 3 or min(weights) < 0 or not sum(weights) > 0:
            raise ValueError(f"DCAM needs three non-negative weights, not all 0, got {weights}")
        self.weights = tuple(float(w) for w in weights)

    @staticmethod
    def key_frames(frames: int) -> tuple[list[int], list[int], list[int]]:
        """For each frame of the batch: the anchor, the previous frame (the anchor's is itself), itself."""
        return [0] * frames, [0] + list(range(frames - 1)), list(range(frames))

    def attend(self, attn, hidden_states: torch.Tensor, info: FrameInfo) -> torch.Tensor:
        batch, tokens, _ = hidden_states.shape
        query = heads(attn, attn.to_q(hidden_states))
        key, value = attn.to_k(hidden_states), attn.to_v(hidden_states)
        if attn.norm_q is not None:
            query = attn.norm_q(query)
        masks = info.extra.get("masks")
        regions = None if masks is None else self._regions(masks, tokens, hidden_states.device)

        def term(frames: list[int], region: torch.Tensor | None) -> torch.Tensor:
            k = heads(attn, by_frame(key, info.frames)[:, frames].reshape(key.shape))
            v = heads(attn, by_frame(value, info.frames)[:, frames].reshape(value.shape))
            if attn.norm_k is not None:
                k = attn.norm_k(k)
            mask = None
            if region is not None:
                picked = region[frames]
                picked = picked | ~picked.any(dim=1, keepdim=True)  # empty region: attend to all tokens
                if not bool(picked.all()):
                    mask = picked.repeat(batch // info.frames, 1)[:, None, None, :]
            out = F.scaled_dot_product_attention(query, k, v, attn_mask=mask, dropout_p=0.0, is_causal=False)
            return out.transpose(1, 2).reshape(batch, -1, out.shape[1] * out.shape[-1]).to(query.dtype)

        def dca(region: torch.Tensor | None) -> torch.Tensor:
            out = None
            for weight, frames in zip(self.weights, self.key_frames(info.frames)):
                if weight:
                    part = term(frames, region)
                    part = part if weight == 1.0 else weight * part
                    out = part if out is None else out + part
            return out

        if regions is None:
            return dca(None)
        character = regions
        blend = character.to(query.dtype).repeat(batch // info.frames, 1)[..., None]
        return blend * dca(character) + (1 - blend) * dca(~character)

    @staticmethod
    def _regions(masks: torch.Tensor, tokens: int, device) -> torch.Tensor:
        """(frames, tokens) bool: the character's tokens of each frame at this layer's grid."""
        grid = token_grid(tokens, tuple(masks.shape[-2:]))
        small = F.interpolate(masks[:, None].float(), size=grid, mode="area")[:, 0]
        return (small >= 0.5).reshape(masks.shape[0], -1).to(device)


def dcam_rules(weights: tuple[float, float, float], pattern: str = UP_BLOCKS_SELF_ATTENTION) -> dict:
    """Install rules: DCAM on the up blocks' self-attention (the paper's choice)."""
    return {pattern: DualConsistencyAttention(weights)}
