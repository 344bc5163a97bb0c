"""Make-Your-Anchor: a person-specific SD 1.5 UNet + a ControlNet over the ``mesh`` pass, appearance
from the CLIP image tokens of a reference frame instead of text, all-frame attention inside windows,
batch-overlapped temporal denoising, and optional face enhancement.

- Context: the unpooled ``last_hidden_state`` of a CLIP vision tower (ViT-B/32: 50 x 768) of the
  reference image is the cross-attention context of both the UNet and the ControlNet, unprojected.
- W_c: the ControlNet's residuals are scaled by ``--controlnet-scale`` (default 2, the authors').
- Unconditional branch (``--uncond``): ``empty-text`` = the empty text embedding padded to the
  image tokens' length (the authors'; what diffusers does for given ``prompt_embeds``), ``zeros`` =
  zero tokens. Training can drop the reference (``reference_dropout``) to the same branch, so the
  model learns the unconditional branch it is guided with.
- Temporal: all-frame attention in the UNet (``--attention window``; ``--controlnet-attention`` also
  in the ControlNet, which the authors keep per frame), windows of 16 overlapping by 4 averaged per
  frame before one scheduler step, the same initial noise for every frame; DDIM 20, CFG 7.5.
- With ``--attention none --window 1 --overlap 0 --shared-noise 0`` this is exactly diffusers'
  ``StableDiffusionControlNetPipeline`` with the tokens as ``prompt_embeds`` (tested).
- Reference: ``--reference IMAGE``; else the model folder's ``reference.png`` (a frame of its training
  video, saved by training); else the first frame of the passes folder's ``rgb`` pass.
- ``--face-enhance``: ``face.py``.

Module level imports stay light (no torch).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from diffusion.sampling.method import Method, Run
from diffusion.sampling.settings import (BackgroundSettings, DeviceSettings, FramingSettings, ModelSettings,
                                         OutputSettings, SamplingSettings, Settings, TemporalSettings, override,
                                         setting)
from motion.errors import UserError

UNCOND = ("empty-text", "zeros")


@dataclass
class AnchorSettings(Settings):
    reference: str | None = setting(None, "reference image of the person (default: the model's reference.png, "
                                          "else the passes' first rgb frame)", group="make-your-anchor")
    condition: tuple[str, ...] | None = setting(None, "passes stacked on the ControlNet's input (names or kinds; "
                                                      "default: those the model was trained on, else mesh)",
                                                group="make-your-anchor")
    controlnet_scale: float = setting(2.0, "W_c: scale of the ControlNet residuals", group="make-your-anchor",
                                      low=0, high=10)
    controlnet: str | None = setting(None, "ControlNet instead of the model's controlnet/ (id, folder or kind)",
                                     group="make-your-anchor")
    image_encoder: str | None = setting(None, "CLIP vision model instead of the model's image_encoder/ "
                                              "(default there: openai/clip-vit-base-patch32)", group="make-your-anchor")
    uncond: str | None = setting(None, "unconditional branch of CFG: empty-text padded to the image tokens, or "
                                       "zero tokens (default: the model's training choice, else empty-text)",
                                 group="make-your-anchor", choices=UNCOND)
    controlnet_attention: bool = setting(False, "all-frame attention in the ControlNet too (authors: per frame)",
                                         group="make-your-anchor")


@dataclass
class FaceSettings(Settings):
    face_enhance: bool = setting(False, "inpaint every visible face with the face model and paste it back",
                                 group="face")
    face_model: str | None = setting(None, "face model folder (default: the model's face/)", group="face")
    face_reference: str | None = setting(None, "aligned reference face image (default: the face model's "
                                               "reference.png, else the first enhanced frame's face)", group="face")
    face_size: int | None = setting(None, "face crop size in pixels, a multiple of 8 (default: the face model's "
                                          "training size, else 256)", group="face", low=16, high=1024)
    face_min_size: float = setting(48.0, "skip faces spanning fewer source pixels", group="face", low=1)
    face_steps: int = setting(20, "face denoising steps", group="face", low=1, high=1000)
    face_cfg: float = setting(3.5, "face guidance scale", group="face", low=0, high=100)
    face_scale: float = setting(1.0, "face ControlNet scale", group="face", low=0, high=10)

    def check(self):
        if self.face_size is not None and self.face_size % 8:
            raise UserError("--face-size", f"must be a multiple of 8, got {self.face_size}")


@dataclass
class MakeYourAnchorSettings(OutputSettings, DeviceSettings, BackgroundSettings, FaceSettings, TemporalSettings,
                             FramingSettings, SamplingSettings, AnchorSettings, ModelSettings):
    """Model, reference and ControlNet, sampling, framing, temporal, face, background, device, output."""

    model: str = setting("tiny", "Make-Your-Anchor model folder (avatarcine train make-your-anchor), a base "
                                 "with --controlnet, or tiny", group="model")
    attention: str = override(TemporalSettings, "attention", "window")


class MakeYourAnchorMethod(Method):
    name = "make-your-anchor"
    summary = "person-specific SD 1.5 + mesh ControlNet (W_c 2), CLIP image tokens of a reference, all-frame " \
              "attention, overlapped windows, face enhancement"
    Settings = MakeYourAnchorSettings

    def check_inputs(self, s: MakeYourAnchorSettings, passes) -> None:
        from render.images import read_rgb

        for name in self.condition(s):
            passes.resolve(name)
        for flag, path in (("--reference", s.reference), ("--face-reference", s.face_reference)):
            if path is not None:
                read_rgb(path, f"{flag} image")
        if s.face_enhance and "openpose18" not in passes.meta.get("keypoint_names", {}):
            raise UserError(passes.root / "meta.json", "no openpose18 keypoints to align faces with (--face-enhance)")

    def load(self, s: MakeYourAnchorSettings):
        from diffusion.methods.make_your_anchor.model import FACE, load_parts, resolve_mya

        c = load_parts(s.model, controlnet=s.controlnet, image_encoder=s.image_encoder, scheduler=s.scheduler,
                       device=s.device, dtype=s.dtype)
        if s.face_enhance:
            folder = s.face_model or str(Path(resolve_mya(s.model)) / FACE)
            face = load_parts(folder, controlnet=None, image_encoder=None, scheduler="ddim", device=s.device,
                              dtype=s.dtype)
            if face.unet.config.in_channels != 9:
                raise UserError(folder, f"is not a face model: its UNet takes {face.unet.config.in_channels} "
                                        "channels, an inpainting UNet takes 9")
            c.extra["face"] = face
            c.sources["face"] = folder
        return c

    @staticmethod
    def condition(s: MakeYourAnchorSettings) -> tuple[str, ...]:
        """``--condition``, else the passes the model's ControlNet was trained on, else mesh."""
        from diffusion.methods.make_your_anchor.model import model_info, resolve_mya

        return tuple(s.condition or model_info(resolve_mya(s.model)).get("passes") or ("mesh",))

    @staticmethod
    def uncond(s: MakeYourAnchorSettings, model: str) -> str:
        """``--uncond``, else the branch ``model`` was trained with (its reference dropout), else empty-text."""
        from diffusion.methods.make_your_anchor.model import model_info, resolve_mya

        return s.uncond or model_info(resolve_mya(model)).get("uncond") or "empty-text"

    def reference_image(self, run: Run):
        """(H, W, 3) uint8 reference and where it came from."""
        import numpy as np

        from diffusion.methods.make_your_anchor.model import REFERENCE, resolve_mya
        from render.images import read_rgb

        s = run.settings
        saved = Path(resolve_mya(s.model)) / REFERENCE
        if s.reference:
            source = s.reference
        elif saved.is_file():
            source = str(saved)
        elif "rgb" in run.passes.meta["passes"]:
            image = run.passes.read("rgb", run.passes.indices[0])[..., :3]
            return np.rint(np.clip(image, 0, 1) * 255).astype(np.uint8), f"rgb pass frame {run.passes.indices[0]}"
        else:
            raise UserError("--reference", "give a reference image of the person: the model has no reference.png "
                                           "and the passes no rgb pass")
        return np.rint(read_rgb(source, "reference image") * 255).astype(np.uint8), source

    def denoiser(self, run: Run):
        from diffusion.loaders.image_encoder import image_tokens
        from diffusion.methods.make_your_anchor.model import unconditional
        from diffusion.sampling.control import ControlNetDenoiser, load_conditions
        from diffusion.sampling.control_spec import ControlSpec

        s, c = run.settings, run.components
        image, source = self.reference_image(run)
        tokens = image_tokens(c.extra["image_encoder"], c.extra["processor"], image[None]).to(c.unet.dtype)
        uncond = self.uncond(s, s.model)
        negative = unconditional(c, tokens, uncond)
        spec = ControlSpec(c.sources["controlnet"], self.condition(s), s.controlnet_scale)
        conditions = load_conditions(run, [spec], c.controlnets)
        run.record["make_your_anchor"] = {"reference": source, "tokens": list(tokens.shape[1:]), "uncond": uncond,
                                          "condition": list(conditions[0].passes), "controlnet_scale": s.controlnet_scale}
        return ControlNetDenoiser(run, c.controlnets, conditions, [spec], tokens, negative, s.cfg)

    def attention(self, run: Run):
        from diffusion.attention.frames import frame_attention_rules

        s, c = run.settings, run.components
        rules = frame_attention_rules(s.attention)
        pairs = [(c.unet, rules)]
        if s.controlnet_attention:
            pairs.append((c.controlnets[0], rules))
        return pairs

    def preview(self, run: Run):
        from diffusion.sampling.control import condition_preview

        return condition_preview(run, run.denoiser.conditions)

    def postprocess(self, run: Run, frames):
        s = run.settings
        if not s.face_enhance:
            return frames
        from diffusion.methods.make_your_anchor.face import enhance_run

        return enhance_run(run, frames)

    # The synthetic clip of ``bench generate`` has no mesh pass; its normal pass has the same channels.
    bench_settings = {"condition": ("normal",)}

    def bench_variants(self):
        """All-frame attention against per-frame at equal UNet evaluations (windows of 16, no overlap)."""
        return {name: dict(attention=attention, window=16, overlap=0, shared_noise=0.0)
                for name, attention in (("per_frame", "none"), ("all_frame_attention", "window"))}

    def bench_rows(self, budget, train_dirs, work, seed, size):
        from diffusion.methods.make_your_anchor.bench import rows

        return rows(self, budget, train_dirs, work, seed, size)


METHOD = MakeYourAnchorMethod()
