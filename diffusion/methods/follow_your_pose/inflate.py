"""Follow Your Pose stage 2: an SD 1.5 UNet inflated to video, and its weights file.

- Convolutions stay per frame (the paper's 1x3x3 "pseudo-3D" kernels are the 2D kernels applied to
  every frame: frames are folded into the batch).
- Every transformer block gets a temporal self-attention (``attn_temp``) after its feed-forward:
  LayerNorm, then attention over the frames at each spatial position, added to the block's output.
  Its output projection is zero-initialised, so an inflated UNet computes exactly what it computed
  before. No positional encoding over frames (as the authors).
- Spatial self-attention becomes cross-frame attention (keys/values of frame 0 and frame i-1):
  the processor ``diffusion.attention.frames.CrossFrameAttention``, installed while sampling or
  training. Both read the window's frame count from ``cross_attention_kwargs["frame_info"]``.
- Stage 2 trains ``attn_temp`` and the queries of both attention layers (``attn1.to_q``,
  ``attn2.to_q``), as the authors; the weights file holds exactly those tensors.

The authors' extra ``conv_temporal`` (a temporal 1D convolution, not in the paper) is not added.
"""

from __future__ import annotations

import functools
import inspect
import json
from pathlib import Path

import torch
from torch import nn

from diffusion.methods.follow_your_pose import WEIGHTS
from motion.errors import UserError

TEMPORAL = "attn_temp"
TRAINABLE = (f".{TEMPORAL}.", ".attn1.to_q.", ".attn2.to_q.")   # parameter names containing one of these train
META_KEY = "avatarcine"


class TemporalAttention(nn.Module):
    """Self-attention across the frames at each spatial position, as a residual, zero-initialised."""

    def __init__(self, dim: int, heads: int, dim_head: int):
        super().__init__()
        from diffusers.models.attention_processor import Attention

        self.norm = nn.LayerNorm(dim)
        self.attn = Attention(query_dim=dim, heads=heads, dim_head=dim_head)
        nn.init.zeros_(self.attn.to_out[0].weight)
        nn.init.zeros_(self.attn.to_out[0].bias)

    def forward(self, hidden_states: torch.Tensor, frames: int) -> torch.Tensor:
        """(groups * frames, tokens, dim) -> same; token p of frame f attends to token p of every frame."""
        batch, tokens, dim = hidden_states.shape
        if batch % frames:
            raise ValueError(f"batch {batch} is not a multiple of the window's {frames} frames")
        groups = batch // frames
        x = hidden_states.view(groups, frames, tokens, dim).transpose(1, 2).reshape(groups * tokens, frames, dim)
        out = self.attn(self.norm(x)).view(groups, tokens, frames, dim).transpose(1, 2).reshape(batch, tokens, dim)
        return hidden_states + out


def transformer_blocks(unet: nn.Module) -> list[nn.Module]:
    from diffusers.models.attention import BasicTransformerBlock

    return [m for m in unet.modules() if isinstance(m, BasicTransformerBlock)]


@functools.cache
def _block_signature() -> inspect.Signature:
    from diffusers.models.attention import BasicTransformerBlock

    return inspect.signature(BasicTransformerBlock.forward)


def _after_feed_forward(block, args, kwargs, output):
    """Forward hook of an inflated transformer block: its temporal attention on the block's output
    (the arguments are bound by name: gradient checkpointing passes them positionally)."""
    bound = _block_signature().bind(block, *args, **kwargs)
    info = (bound.arguments.get("cross_attention_kwargs") or {}).get("frame_info")
    if info is None:
        raise ValueError("an inflated UNet needs cross_attention_kwargs={'frame_info': FrameInfo(frames)}")
    return getattr(block, TEMPORAL)(output, info.frames)


def is_inflated(unet: nn.Module) -> bool:
    return any(hasattr(b, TEMPORAL) for b in transformer_blocks(unet))


def inflate(unet: nn.Module, seed: int = 0) -> nn.Module:
    """Add a zero-initialised temporal attention after every transformer block of ``unet`` (in place;
    same heads and width as the block's self-attention, on its device and dtype). The layers other
    than the zeroed output are initialised from ``seed`` (the global RNG is left alone)."""
    if is_inflated(unet):
        raise ValueError("the UNet is already inflated")
    blocks = transformer_blocks(unet)
    if not blocks:
        raise UserError("model", "the UNet has no transformer blocks to inflate")
    param = next(unet.parameters())
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for block in blocks:
            attn = block.attn1
            temporal = TemporalAttention(attn.to_q.in_features, attn.heads, attn.to_q.out_features // attn.heads)
            block.add_module(TEMPORAL, temporal.to(device=param.device, dtype=param.dtype))
            block.register_forward_hook(_after_feed_forward, with_kwargs=True)
    return unet


def is_trainable(name: str) -> bool:
    return any(part in f".{name}" for part in TRAINABLE)


def set_trainable(unet: nn.Module) -> list[str]:
    """Stage 2: only the temporal attention and the two attention layers' queries require grad;
    returns their parameter names."""
    unet.requires_grad_(False)
    names = []
    for name, p in unet.named_parameters():
        if is_trainable(name):
            p.requires_grad_(True)
            names.append(name)
    return names


def temporal_state(unet: nn.Module) -> dict[str, torch.Tensor]:
    """The stage-2 tensors of an inflated UNet (what the weights file holds)."""
    return {k: v.detach().float().contiguous().cpu() for k, v in unet.state_dict().items() if is_trainable(k)}


def save_temporal(unet: nn.Module, path: str | Path, metadata: dict) -> Path:
    """One safetensors file of the stage-2 tensors, with ``metadata`` (JSON) under the ``avatarcine`` key."""
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(temporal_state(unet), str(path), metadata={META_KEY: json.dumps(metadata), "format": "pt"})
    return path


def weights_file(source: str | Path) -> Path:
    """The weights file of ``source``: the file itself or ``WEIGHTS`` inside a folder."""
    path = Path(source).expanduser()
    file = path / WEIGHTS if path.is_dir() else path
    if not file.is_file():
        raise UserError(source, f"no Follow Your Pose temporal weights ({WEIGHTS}, written by "
                                "`avatarcine train follow-your-pose-video`)")
    return file


def load_temporal(unet: nn.Module, source: str | Path) -> dict:
    """Inflate ``unet`` unless it is, then load the stage-2 tensors of ``source`` (a file or the
    training output folder); returns the file's metadata. Every stage-2 tensor must be in the file."""
    from diffusion.loaders.common import read_safetensors

    file = weights_file(source)
    tensors, metadata = read_safetensors(file, META_KEY)
    metadata = metadata or {}
    if not is_inflated(unet):
        inflate(unet)
    expected = {k for k in unet.state_dict() if is_trainable(k)}
    missing, unexpected = sorted(expected - set(tensors)), sorted(set(tensors) - expected)
    if missing or unexpected:
        example = (missing or unexpected)[0]
        raise UserError(file, f"does not fit this UNet ({len(missing)} tensors missing, {len(unexpected)} "
                              f"unexpected, e.g. {example})")
    try:
        unet.load_state_dict(tensors, strict=False)
    except RuntimeError as exc:
        raise UserError(file, f"does not fit this UNet: {' '.join(str(exc).split())[:200]}") from None
    return metadata
