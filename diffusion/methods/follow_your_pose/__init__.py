"""Follow Your Pose (Ma et al. 2024): text + skeleton sequence -> video, from an SD 1.5 base.

- Stage 1 (``train follow-your-pose-pose``): a T2I-Adapter-shaped pose encoder over the ``skeleton``
  pass, its features added after the last layer of each UNet down block; zero-initialised.
- Stage 2 (``train follow-your-pose-video``): the UNet inflated to video (temporal attention after
  every transformer block, cross-frame self-attention over frame 0 and frame i-1; ``inflate.py``),
  trained on pose-free clips.
- Inference: ``--temporal`` names the stage-2 weights (without it the pose encoder runs per frame on
  the plain base: exactly diffusers' ``StableDiffusionAdapterPipeline``). DDIM 50, CFG 12.5 as the
  authors' configs.

Long videos (the paper's rule, whose details it leaves open; ours): windows of T = ``--window``
frames, consecutive windows overlapping by T/2 (the last window shifted back to end on the last
frame); all windows advance together, one DDIM step per timestep for the whole clip, and every frame
two windows share takes the earlier window's noise prediction, so at every step its latent is the
one the earlier window computes and the later window sees it as given ("previous" weighting,
``diffusion.sampling.windows``). Model memory is bounded by the window; the latents of all frames
(4 x H/8 x W/8 each) stay in memory.

Module level imports stay light (no torch).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from diffusion.sampling.method import Method, Run
from diffusion.sampling.settings import (DeviceSettings, FramingSettings, ModelSettings, OutputSettings,
                                         SamplingSettings, Settings, TextSettings, override, setting)
from motion.errors import UserError
from render.meta import frame_path

GROUP = "follow-your-pose"
WEIGHTS = "temporal.safetensors"   # the stage-2 weights file (``inflate.py``)


@dataclass
class PoseSettings(Settings):
    pose_encoder: str | None = setting(None, "stage-1 pose encoder: the `train follow-your-pose-pose` output or "
                                             "a T2I-Adapter hub id / folder (default: the one bundled with "
                                             "--temporal; tiny base: the tiny adapter)", group=GROUP)
    temporal: str | None = setting(None, "stage-2 temporal weights (`train follow-your-pose-video` output folder "
                                         "or its temporal.safetensors); 'init': untrained inflation; none: "
                                         "frames generated independently", group=GROUP)
    pose_pass: str = setting("skeleton", "pass the pose encoder reads", group=GROUP)
    pose_scale: float = setting(1.0, "scale of the pose features", group=GROUP, low=0, high=10)
    window: int | None = setting(16, "frames per window T; consecutive windows overlap by T/2 (0 on the command "
                                     "line: one window over the clip)", group=GROUP, low=1, zero_is_none=True)


@dataclass
class FollowYourPoseSettings(OutputSettings, DeviceSettings, FramingSettings, SamplingSettings, PoseSettings,
                             ModelSettings, TextSettings):
    """Text prompt, base model, pose encoder + temporal weights, sampling, framing, device, output."""

    steps: int = override(SamplingSettings, "steps", 50)
    cfg: float = override(SamplingSettings, "cfg", 12.5)


class FollowYourPoseMethod(Method):
    name = "follow-your-pose"
    summary = "Follow Your Pose: skeleton pose encoder + inflated video UNet (cross-frame + temporal attention)"
    Settings = FollowYourPoseSettings
    bench_settings = {"temporal": "init"}  # bench generate times the inflated model (untrained: same cost)

    def check_inputs(self, s: FollowYourPoseSettings, passes) -> None:
        super().check_inputs(s, passes)
        name = passes.resolve(s.pose_pass)
        have = len(passes.indices)
        if s.max_frames and s.max_frames > have:
            raise UserError("--max-frames", f"asks for {s.max_frames} frames but the {name} sequence of "
                                            f"{passes.root} has {have}")
        asked = passes.indices[: s.max_frames] if s.max_frames else passes.indices
        paths = [frame_path(passes.root, passes.meta, name, i) for i in asked]
        missing = [p for p in paths if not p.is_file()]
        if missing:
            raise UserError(missing[0], f"missing: the {name} sequence has {len(paths) - len(missing)} of the "
                                        f"{len(paths)} frames asked for")
        if s.temporal not in (None, "init"):
            weights = Path(s.temporal).expanduser()
            if not (weights.is_file() or (weights / WEIGHTS).is_file()):
                raise UserError("--temporal", f"{s.temporal}: no {WEIGHTS} (the output of "
                                              "`avatarcine train follow-your-pose-video`)")

    def load(self, s: FollowYourPoseSettings):
        from diffusion.methods.follow_your_pose.parts import load_parts

        return load_parts(s)

    def denoiser(self, run: Run):
        from diffusion.io.conditioning import load_condition
        from diffusion.methods.follow_your_pose.parts import PoseDenoiser
        from diffusion.sampling.prompts import encode_text

        s, c = run.settings, run.components
        encoder = c.extra["pose_encoder"]
        pose = load_condition(run.passes, [s.pose_pass], run.indices, run.framing, encoder.config.in_channels)
        run.record["follow_your_pose"] = {"pose_pass": pose.passes[0], "pose_scale": s.pose_scale,
                                          "inflated": bool(s.temporal), "overlap": self.overlap(s)}
        return PoseDenoiser(run, encoder, pose, encode_text(c, s.prompt), encode_text(c, s.negative_prompt), s.cfg,
                            s.pose_scale)

    @staticmethod
    def overlap(s: FollowYourPoseSettings) -> int:
        return s.window // 2 if s.window else 0

    def spans(self, run: Run):
        from diffusion.sampling.windows import window_spans

        return window_spans(len(run.indices), run.settings.window, self.overlap(run.settings))

    def weighting(self, run: Run) -> str:
        return "previous"

    def attention(self, run: Run):
        from diffusion.attention.frames import frame_attention_rules

        return [(run.components.unet, frame_attention_rules("cross-frame"))] if run.settings.temporal else []

    def preview(self, run: Run):
        from diffusion.sampling.control import condition_preview

        return condition_preview(run, run.denoiser.conditions)

    def bench_rows(self, budget, train_dirs, work, seed, size):
        """``follow-your-pose (per-frame)``: the stage-1 pose encoder trained on the train split
        (``budget.steps`` steps), frames independent; ``follow-your-pose``: plus stage 2 trained on the
        train split's rgb clips (``budget.steps`` steps, clips of up to 8 frames), windows of 8
        overlapping by 4. Both read the skeleton pass (``budget.passes`` is the ControlNet's)."""
        from diffusion.benchmark.harness import method_row, train_timed
        from diffusion.io.passes import PassesFolder
        from diffusion.training.recipes.follow_your_pose_pose import RECIPE as POSE
        from diffusion.training.recipes.follow_your_pose_pose import PoseEncoderTrainConfig
        from diffusion.training.recipes.follow_your_pose_video import RECIPE as VIDEO
        from diffusion.training.recipes.follow_your_pose_video import TemporalTrainConfig

        common = dict(data=[str(d) for d in train_dirs], prompt=budget.prompt, resolution=size, model=budget.model,
                      steps=budget.steps, batch_size=budget.batch_size, learning_rate=budget.learning_rate,
                      lr_scheduler="constant", seed=seed, checkpoint_every=budget.steps, checkpoints_total_limit=1)
        pose, pose_seconds = train_timed(POSE, PoseEncoderTrainConfig(**common, output=str(work / "pose")))
        frames = min(8, *(len(PassesFolder.open(d).indices) for d in train_dirs))
        video, video_seconds = train_timed(VIDEO, TemporalTrainConfig(
            **common, frames=frames, stride=1, pose_encoder=str(pose.final), output=str(work / "video")))
        sampling = dict(prompt=budget.prompt, model=budget.model, steps=budget.sample_steps, cfg=budget.cfg, seed=seed,
                        width=size, height=size, device=budget.device)
        return [method_row(self, "follow-your-pose (per-frame)",
                           self.settings(pose_encoder=str(pose.final), window=None, **sampling), pose_seconds),
                method_row(self, "follow-your-pose", self.settings(temporal=str(video.final), window=8, **sampling),
                           pose_seconds + video_seconds)]


METHOD = FollowYourPoseMethod()
