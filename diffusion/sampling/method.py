"""The method contract, importable without torch: what a method supplies (:class:`Method`, its
:class:`Denoiser`) and what its hooks see (:class:`Run`). The shared run that drives them is
``diffusion.sampling.run``; method modules import their heavy parts inside their hooks, so listing
methods and their settings (``avatarcine methods``, ``generate --help``) loads no torch.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from diffusion.io.passes import PassesFolder
from diffusion.sampling.settings import PLATE, BackgroundSettings, Settings, TemporalSettings, TextSettings
from motion.errors import UserError

if TYPE_CHECKING:
    import torch

    from diffusion.io.conditioning import Framing
    from diffusion.io.output import Generation
    from diffusion.loaders.common import Components


class Denoiser(ABC):
    """Guided noise prediction for a window of frames; counts model evaluations for the record."""

    evaluations = 0  # denoiser-network evaluations (one per frame per guidance branch)

    @abstractmethod
    def __call__(self, latents: torch.Tensor, t: torch.Tensor, step: int, start: int, stop: int) -> torch.Tensor:
        """Noise prediction for ``latents`` = frames ``[start, stop)`` of the clip at timestep ``t``."""


@dataclass
class Run:
    """One generation in progress: inputs, framing, and what hooks share."""

    method: "Method"
    passes: PassesFolder
    settings: Settings
    components: Components
    indices: list[int]
    framing: Framing
    generator: torch.Generator
    denoiser: Denoiser | None = None
    framed: set = field(default_factory=set)   # ids of models whose attention takes FrameInfo
    record: dict = field(default_factory=dict)  # method-specific record entries

    def frame_kwargs(self, model, frames: int, start: int, **extra) -> dict:
        """``cross_attention_kwargs`` for a call of ``model`` on ``frames`` frames from ``start``
        (empty when no frame-aware processor is installed on it)."""
        if id(model) not in self.framed:
            return {}
        from diffusion.attention.install import FrameInfo

        return {"cross_attention_kwargs": FrameInfo(frames, start, extra).kwargs()}

    @property
    def latent_size(self) -> tuple[int, int]:
        factor = self.components.vae_scale_factor
        return self.framing.size[1] // factor, self.framing.size[0] // factor


class Method(ABC):
    """A diffusion method on the shared run. Subclasses set ``name``, ``summary``, ``Settings`` and
    implement ``load`` and ``denoiser``; the hooks below have defaults that do nothing special."""

    name: str
    summary: str
    Settings: type[Settings]
    sequential = False  # True: windows are denoised one after the other (autoregressive methods)

    def settings(self, **values) -> Settings:
        return self.Settings(**values)

    def check_inputs(self, settings: Settings, passes: PassesFolder) -> None:
        """Refuse what this method cannot use, before any model loads (cheap checks only)."""
        if isinstance(settings, TextSettings) and not settings.prompt:
            raise UserError("--prompt", "a text prompt is required")
        if isinstance(settings, BackgroundSettings) and settings.background:
            if settings.background == PLATE:
                passes.resolve(PLATE)
            elif settings.background != "first":
                from render.images import read_rgb

                read_rgb(settings.background, "background image")
            passes.resolve(settings.mask_pass)

    @abstractmethod
    def load(self, settings: Settings) -> Components:
        """The models this method runs with, on the settings' device and dtype."""

    @abstractmethod
    def denoiser(self, run: Run) -> Denoiser:
        """The window denoiser for this run (conditions are read here, once)."""

    def attention(self, run: Run) -> list[tuple[torch.nn.Module, dict]]:
        """(model, install rules) pairs: processors installed while sampling (``attention.install``)."""
        return []

    def spans(self, run: Run) -> list[tuple[int, int]]:
        """The frame windows: the temporal settings' overlapping windows, or one window."""
        s, n = run.settings, len(run.indices)
        from diffusion.sampling.windows import window_spans

        if isinstance(s, TemporalSettings):
            return window_spans(n, s.window, s.overlap if s.window else 0)
        return [(0, n)]

    def weighting(self, run: Run) -> str:
        """How overlapping windows' predictions combine (``diffusion.sampling.windows``): the temporal
        settings' ``weighting``, else uniform."""
        return run.settings.weighting if isinstance(run.settings, TemporalSettings) else "uniform"

    def initial_latents(self, run: Run, noise: torch.Tensor) -> torch.Tensor:
        """The latents sampling starts from (e.g. an inverted source image instead of noise)."""
        return noise * run.components.scheduler.init_noise_sigma

    def step_hook(self, run: Run, noise: torch.Tensor):
        """An ``after_step`` hook (``diffusion.sampling.loop.AfterStep``) of a method that locks latents
        itself (e.g. its own background inpainting), used when the ``--background`` lock is off; or None."""
        return None

    def after_window(self, run: Run, start: int, stop: int, latents: torch.Tensor) -> None:
        """Sequential methods: frames ``[start, stop)`` are finished (e.g. condition the next on them)."""

    def postprocess(self, run: Run, frames: np.ndarray) -> np.ndarray:
        """Decoded, composited frames -> final frames (e.g. face enhancement)."""
        return frames

    def preview(self, run: Run) -> np.ndarray:
        """(N, H, W, 3) uint8 picture of each frame's condition (left half of side_by_side.mp4)."""
        return np.zeros((len(run.indices), run.framing.size[1], run.framing.size[0], 3), np.uint8)

    def run(self, passes: PassesFolder, settings: Settings, components: Components) -> Generation:
        from diffusion.sampling.run import generate

        return generate(self, passes, settings, components)

    # Settings overrides of every ``avatarcine bench generate`` run (e.g. a part only training makes,
    # in its untrained form: same computation).
    bench_settings: dict = {}

    def bench_variants(self) -> dict[str, dict]:
        """Settings overrides ``avatarcine bench generate`` times side by side (first = the reference)."""
        return {}

    def bench_rows(self, budget, train_dirs: list[Path], work: Path, seed: int, size: int) -> list:
        """Rows of ``avatarcine bench methods`` (``diffusion.benchmark.harness.Row``): train within
        ``budget`` on ``train_dirs`` (scratch space ``work``), then generate. None by default."""
        return []
