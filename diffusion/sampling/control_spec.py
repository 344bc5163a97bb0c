"""Which ControlNets read which passes: ``ControlSpec`` and the ``ControlSettings`` group of the
ControlNet family's methods (importable without torch; the denoiser is ``diffusion.sampling.control``)."""

from __future__ import annotations

from dataclasses import dataclass

from diffusion.io.passes import PASS_ALIASES
from diffusion.sampling.settings import Settings, flag, setting
from motion.errors import UserError

# Condition kinds whose stock/tiny ControlNet reads several stacked passes.
STACKS = {"stack": ("depth", "normal", "mask")}


@dataclass(frozen=True)
class ControlSpec:
    """One ControlNet: ``model`` (hub id, folder, file, or a kind: openpose/depth/normal/stack),
    the passes stacked on its input channels, its scale and its active fraction of the steps."""

    model: str
    passes: tuple[str, ...]
    scale: float = 1.0
    start: float = 0.0
    end: float = 1.0

    @classmethod
    def parse(cls, text: str, scale: float = 1.0, start: float = 0.0, end: float = 1.0) -> "ControlSpec":
        """``MODEL`` or ``MODEL=PASS[+PASS...]``; a known kind or hub id implies its pass."""
        model, _, passes = text.partition("=")
        if passes:
            names = tuple(passes.split("+"))
        elif model in STACKS:
            names = STACKS[model]
        elif model in PASS_ALIASES:
            names = (model,)
        else:
            from diffusion.loaders.controlnet import CONTROLNETS

            names = tuple(k for k, hub in CONTROLNETS.items() if hub == model)
            if not names:
                raise UserError("--controlnet", f"say which passes {model!r} reads: {model}=PASS[+PASS...]")
        if not model or not all(names):
            raise UserError("--controlnet", f"{text!r} is not MODEL or MODEL=PASS[+PASS...]")
        if not start < end:
            raise UserError("--guidance-start/--guidance-end",
                            f"need start < end for {model!r} (got {start}, {end})")
        return cls(model, names, scale, start, end)


def _per_net(name: str, values: tuple, count: int) -> tuple:
    if len(values) not in (1, count):
        raise UserError(flag(name), f"give 1 or {count} values (one per ControlNet), got {len(values)}")
    return values * count if len(values) == 1 else values


@dataclass
class ControlSettings(Settings):
    controlnet: tuple[str, ...] = setting(("openpose",), "ControlNets: a kind (openpose, depth, normal, mesh, "
                                          "stack) or a hub id / folder / file, optionally =PASS[+PASS...] naming "
                                          "the passes stacked on its input", group="controlnet")
    controlnet_scale: tuple[float, ...] = setting((1.0,), "conditioning scale: one for all or one per ControlNet",
                                                  group="controlnet", low=0, high=10)
    guidance_start: tuple[float, ...] = setting((0.0,), "fraction of the steps after which each ControlNet acts",
                                                group="controlnet", low=0, high=1)
    guidance_end: tuple[float, ...] = setting((1.0,), "fraction of the steps until which each ControlNet acts",
                                              group="controlnet", low=0, high=1)

    def check(self):
        _ = self.specs  # parsing every ControlNet and its schedule raises on bad input

    @property
    def specs(self) -> list[ControlSpec]:
        n = len(self.controlnet)
        scales = _per_net("controlnet_scale", self.controlnet_scale, n)
        starts = _per_net("guidance_start", self.guidance_start, n)
        ends = _per_net("guidance_end", self.guidance_end, n)
        return [ControlSpec.parse(text, *values) for text, *values in zip(self.controlnet, scales, starts, ends)]
