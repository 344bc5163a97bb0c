"""Install attention processors by module-name pattern, and restore the previous ones.

diffusers names each processor after its attention module (``down_blocks.0.attentions.0.
transformer_blocks.0.attn1.processor``). A rule maps an ``fnmatch`` pattern to a processor, e.g.
``{"*attn1.processor": window}`` (every self-attention) or ``{"up_blocks.*attn1.processor": dcam}``
(self-attention of the up blocks only); the first matching rule wins.

Per-call information (how many frames the batch holds, masks, ...) is passed to the model call as
``cross_attention_kwargs={"frame_info": FrameInfo(...)}``; diffusers hands every attention layer the
same kwargs, so layers without a rule get :class:`PassFrameInfo`, which drops ``frame_info`` and
calls their own processor unchanged (diffusers would otherwise warn on every call).
"""

from __future__ import annotations

import contextlib
import fnmatch
from dataclasses import dataclass, field
from typing import Iterator

import torch

SELF_ATTENTION = "*attn1.processor"
CROSS_ATTENTION = "*attn2.processor"


@dataclass
class FrameInfo:
    """What processors need to know about the current model call: ``frames`` per group in the batch
    (the batch is ``groups x frames`` images, groups = CFG branches), the window's first frame in the
    clip, and anything method-specific (``extra``: e.g. per-frame masks)."""

    frames: int
    start: int = 0
    extra: dict = field(default_factory=dict)

    def kwargs(self) -> dict:
        return {"frame_info": self}


class PassFrameInfo:
    """Wraps a layer's own processor so it accepts (and ignores) ``frame_info``."""

    def __init__(self, inner):
        self.inner = inner

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None,
                 frame_info: FrameInfo | None = None, **kwargs):
        return self.inner(attn, hidden_states, encoder_hidden_states=encoder_hidden_states,
                          attention_mask=attention_mask, temb=temb, **kwargs)


def matching(names, pattern: str) -> list[str]:
    return [n for n in names if fnmatch.fnmatchcase(n, pattern)]


@contextlib.contextmanager
def processors(model: torch.nn.Module, rules: dict[str, object]) -> Iterator[dict[str, object]]:
    """Within the block, layers matching a rule use its processor and all others accept ``frame_info``;
    the previous processors are restored afterwards. Yields {layer name: installed processor}.
    Empty ``rules`` changes nothing."""
    if not rules:
        yield {}
        return
    previous = dict(model.attn_processors)
    installed = {}
    for name, proc in previous.items():
        rule = next((p for pattern, p in rules.items() if fnmatch.fnmatchcase(name, pattern)), None)
        installed[name] = rule if rule is not None else PassFrameInfo(proc)
    model.set_attn_processor(dict(installed))  # diffusers pops the entries of the dict it is given
    try:
        yield {n: p for n, p in installed.items() if not isinstance(p, PassFrameInfo)}
    finally:
        model.set_attn_processor(dict(previous))
