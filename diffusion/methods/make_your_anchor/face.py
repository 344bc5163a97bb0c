"""Face enhancement: crop every face with a similarity alignment from the projected head keypoints
of meta.json (no detector), inpaint the crop with the face model, paste it back.

- Alignment: least-squares similarity (rotation, uniform scale, shift) taking the visible openpose18
  head points (nose, eyes, ears) to fixed positions of a square crop (``TEMPLATE``, an FFHQ-like
  layout: eyes at 44 % of the height, 26 % of the width apart). A frame is skipped when fewer than 3
  of the 5 points are visible (the face is hidden or seen from behind) or when the crop spans fewer
  than ``min_size`` source pixels (the face is too small to gain from it).
- Repaint mask (1 = repaint, the diffusers convention): a fixed ellipse over the template face
  (choice: the authors use a face-parsing network; the ellipse needs no extra model).
- Inpainting: diffusers' ``StableDiffusionControlNetInpaintPipeline`` (9-channel UNet: noisy latent,
  mask, masked latent; ControlNet over the face crop of the condition pass), with the CLIP tokens of
  a reference face as ``prompt_embeds`` and one initial noise for every frame.
- Paste: the crop goes back through the inverse alignment, blended with a mask that is the crop's
  square eroded by 1/16 of its side and blurred (sigma 1/40); outside the warped square the frame
  is unchanged, bit for bit.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

HEAD = ("nose", "right_eye", "left_eye", "right_ear", "left_ear")
TEMPLATE = np.array([[0.5, 0.56], [0.37, 0.44], [0.63, 0.44], [0.2, 0.5], [0.8, 0.5]])  # unit crop, x right, y down
MIN_POINTS = 3
DEFAULT_SIZE = 256
ELLIPSE = ((0.5, 0.55), (0.3, 0.38))  # centre, half axes of the repaint ellipse (unit crop)


@dataclass(frozen=True)
class Alignment:
    """Source frame -> square crop of ``size`` pixels (2x3 affine ``matrix``)."""

    matrix: np.ndarray
    size: int

    @property
    def source_side(self) -> float:
        """Side of the crop in source pixels."""
        return self.size / float(np.hypot(*self.matrix[0, :2]))

    def crop(self, frame: np.ndarray) -> np.ndarray:
        return cv2.warpAffine(frame, self.matrix, (self.size, self.size), flags=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_REPLICATE)

    def paste(self, frame: np.ndarray, face: np.ndarray) -> np.ndarray:
        """``face`` (size, size, 3) uint8 blended into ``frame``; unchanged outside the warped square."""
        h, w = frame.shape[:2]
        inverse = cv2.invertAffineTransform(self.matrix)
        soft = paste_mask(self.size)
        alpha = cv2.warpAffine(soft, inverse, (w, h), flags=cv2.INTER_LINEAR, borderValue=0.0)[..., None]
        warped = cv2.warpAffine(face, inverse, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        blend = np.rint(alpha * warped + (1.0 - alpha) * frame).astype(np.uint8)
        return np.where(alpha > 0, blend, frame)


def paste_mask(size: int) -> np.ndarray:
    """(size, size) float32 blend weight: the square eroded by size/16, blurred with sigma size/40."""
    border = max(1, size // 16)
    mask = np.zeros((size, size), np.float32)
    mask[border:size - border, border:size - border] = 1.0
    return cv2.GaussianBlur(mask, (0, 0), max(0.5, size / 40))


def repaint_mask(size: int) -> np.ndarray:
    """(size, size) float32, 1 inside the template face ellipse (repaint), 0 elsewhere."""
    (cx, cy), (ax, ay) = ELLIPSE
    mask = np.zeros((size, size), np.uint8)
    cv2.ellipse(mask, (round(cx * size), round(cy * size)), (round(ax * size), round(ay * size)), 0, 0, 360, 1, -1)
    return mask.astype(np.float32)


def similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares 2x3 similarity taking points ``src`` (K, 2) to ``dst`` (K, 2), K >= 2."""
    x, y = src[:, 0], src[:, 1]
    one, zero = np.ones_like(x), np.zeros_like(x)
    # x' = a x - b y + tx ; y' = b x + a y + ty
    rows = np.concatenate([np.stack([x, -y, one, zero], 1), np.stack([y, x, zero, one], 1)])
    a, b, tx, ty = np.linalg.lstsq(rows, np.concatenate([dst[:, 0], dst[:, 1]]), rcond=None)[0]
    return np.array([[a, -b, tx], [b, a, ty]])


def align(points: np.ndarray, size: int, min_size: float) -> Alignment | None:
    """Alignment of one face from its (5, 3) [x, y, visible] head points (``HEAD`` order, output pixels),
    or None when it is hidden or smaller than ``min_size`` source pixels."""
    points = np.asarray(points, dtype=np.float64)
    seen = (points[:, 2] > 0) & np.isfinite(points[:, :2]).all(axis=1)
    if seen.sum() < MIN_POINTS:
        return None
    found = Alignment(similarity(points[seen, :2], TEMPLATE[seen] * size), size)
    return found if found.source_side >= min_size else None


def head_points(passes, indices: list[int], framing) -> np.ndarray:
    """(N, 5, 3) head points of the first actor per frame, mapped to the output framing (NaN: none)."""
    names = passes.meta.get("keypoint_names", {}).get("openpose18") or []
    where = [names.index(n) if n in names else None for n in HEAD]
    actors = passes.meta.get("actors") or [{}]
    actor = actors[0].get("name")
    by_index = {f["index"]: f for f in passes.meta["frames"]}
    out = np.full((len(indices), len(HEAD), 3), np.nan)
    for k, index in enumerate(indices):
        points = (by_index.get(index, {}).get("actors", {}).get(actor, {}).get("keypoints2d", {}).get("openpose18"))
        if not points:
            continue
        points = np.asarray(points, dtype=np.float64)
        for j, w in enumerate(where):
            if w is not None and w < len(points):
                out[k, j] = points[w]
    out[..., :2] = framing.points(out[..., :2])
    return out


def enhance(frames: np.ndarray, conditions: np.ndarray, points: np.ndarray, inpaint, size: int,
            min_size: float) -> tuple[np.ndarray, list[int]]:
    """Crop, inpaint (``inpaint(crops, condition_crops, repaint) -> crops``, all (K, size, size, ...)
    uint8 / float), paste. Returns the frames and the positions of the frames that were enhanced."""
    found = [(k, a) for k in range(len(frames)) if (a := align(points[k], size, min_size)) is not None]
    out = frames.copy()
    if not found:
        return out, []
    crops = np.stack([a.crop(frames[k]) for k, a in found])
    conds = np.stack([a.crop(conditions[k]) for k, a in found])
    faces = inpaint(crops, conds, repaint_mask(size))
    for (k, a), face in zip(found, faces):
        out[k] = a.paste(frames[k], face)
    return out, [k for k, _ in found]


class FaceInpainter:
    """``inpaint`` for :func:`enhance` with the face model ``c`` (Components: 9-channel UNet, its
    ControlNet, VAE, DDIM), through diffusers' ``StableDiffusionControlNetInpaintPipeline``."""

    BATCH = 16  # crops per pipeline call

    def __init__(self, c, tokens, negative, *, steps: int, cfg: float, scale: float, generator):
        self.c, self.tokens, self.negative = c, tokens, negative
        self.steps, self.cfg, self.scale, self.generator = steps, cfg, scale, generator

    def __call__(self, crops: np.ndarray, conds: np.ndarray, repaint: np.ndarray) -> np.ndarray:
        from diffusers import StableDiffusionControlNetInpaintPipeline
        from diffusers.utils.torch_utils import randn_tensor

        c = self.c
        pipe = StableDiffusionControlNetInpaintPipeline(
            vae=c.vae, text_encoder=c.text_encoder, tokenizer=c.tokenizer, unet=c.unet, controlnet=c.controlnets[0],
            scheduler=c.scheduler, safety_checker=None, feature_extractor=None, requires_safety_checker=False)
        pipe.set_progress_bar_config(disable=True)
        size = crops.shape[1]
        factor = c.vae_scale_factor
        noise = randn_tensor((1, c.latent_channels, size // factor, size // factor), generator=self.generator,
                             device=c.device, dtype=c.unet.dtype)  # one noise for every frame (as the body)
        out = []
        for start in range(0, len(crops), self.BATCH):
            n = len(crops[start:start + self.BATCH])
            faces = pipe(prompt_embeds=self.tokens.expand(n, -1, -1), negative_prompt_embeds=self.negative.expand(n, -1, -1),
                         image=crops[start:start + n].astype(np.float32) / 255.0,
                         mask_image=np.repeat(repaint[None, ..., None], n, axis=0),
                         control_image=conds[start:start + n, ..., :3].astype(np.float32) / 255.0,
                         height=size, width=size, strength=1.0, num_inference_steps=self.steps,
                         guidance_scale=self.cfg, controlnet_conditioning_scale=self.scale,
                         latents=noise.expand(n, -1, -1, -1).clone(), output_type="np").images
            out.append(np.rint(np.asarray(faces) * 255.0).astype(np.uint8))
        return np.concatenate(out)


def reference_face(run, frames: np.ndarray, points: np.ndarray, size: int) -> tuple[np.ndarray, str]:
    """(size, size, 3) uint8 reference face and its source: ``--face-reference``, the face model's
    ``reference.png``, else the aligned face of the first frame that has one (choice)."""
    from pathlib import Path

    from diffusion.methods.make_your_anchor.model import REFERENCE
    from render.images import read_rgb

    s = run.settings
    saved = Path(run.components.sources["face"]) / REFERENCE
    for source in (s.face_reference, str(saved) if saved.is_file() else None):
        if source:
            return np.rint(read_rgb(source, "face reference image") * 255).astype(np.uint8), source
    for k, frame in enumerate(frames):
        found = align(points[k], size, s.face_min_size)
        if found is not None:
            return found.crop(frame), f"face of generated frame {run.indices[k]}"
    return np.zeros((size, size, 3), np.uint8), "none (no visible face)"


def enhance_run(run, frames: np.ndarray) -> np.ndarray:
    """``--face-enhance`` on the decoded frames of a run (``Method.postprocess``)."""
    import torch

    from diffusion.io.conditioning import load_condition
    from diffusion.loaders.image_encoder import image_tokens
    from diffusion.methods.make_your_anchor.model import model_info, unconditional

    s, face = run.settings, run.components.extra["face"]
    condition = load_condition(run.passes, list(run.method.condition(s)), run.indices, run.framing,
                               face.controlnets[0].config.conditioning_channels).frames
    points = head_points(run.passes, run.indices, run.framing)
    size = s.face_size or int(model_info(run.components.sources["face"]).get("face_size", DEFAULT_SIZE))
    image, source = reference_face(run, frames, points, size)
    tokens = image_tokens(face.extra["image_encoder"], face.extra["processor"], image[None]).to(face.unet.dtype)
    negative = unconditional(face, tokens, run.method.uncond(s, run.components.sources["face"]))
    inpainter = FaceInpainter(face, tokens, negative, steps=s.face_steps, cfg=s.face_cfg, scale=s.face_scale,
                              generator=torch.Generator("cpu").manual_seed(s.seed))
    out, done = enhance(frames, condition, points, inpainter, size, s.face_min_size)
    run.record["face"] = {"enhanced": len(done), "skipped": len(frames) - len(done), "reference": source,
                          "size": size, "min_size": s.face_min_size}
    return out
