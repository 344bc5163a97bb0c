"""PoseAnimate's preparation (source, poses, inversion, PACM) and its window denoiser."""

from __future__ import annotations

import time

import numpy as np
import torch

from diffusion.io.conditioning import ConditionSequence, load_condition, load_mask
from diffusion.methods.poseanimate.pacm import PoseModel, ddim_inversion, optimise_embeddings
from diffusion.methods.poseanimate.pata import pata, warp_masks
from diffusion.methods.poseanimate.source import Source, photo_source, render_source
from diffusion.sampling.control import ControlNetDenoiser, guidance_keep
from diffusion.sampling.latents import encode_image
from diffusion.sampling.method import Denoiser, Run
from diffusion.sampling.prompts import encode_text


def draw(points: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(H, W, 3) uint8 OpenPose drawing of one body at output size (the annotator's drawing)."""
    from render.openpose import draw_pose

    return draw_pose(size[1], size[0], [{"body": points}])


def target_keypoints(run: Run) -> np.ndarray:
    """(N, 18, 3) first actor's keypoints of every generated frame, in output pixels."""
    out = []
    for position in range(len(run.indices)):
        actors = list(run.passes.meta["frames"][position].get("actors", {}))
        points = run.passes.keypoints(position, actors[0]).copy() if actors else np.zeros((18, 3))
        points[:, :2] = run.framing.points(points[:, :2])
        out.append(points)
    return np.stack(out)


def latent_masks(masks: np.ndarray, run: Run) -> torch.Tensor:
    """(N, H, W) uint8 -> (N, h, w) float on the device, area-resized to the latent grid."""
    import cv2

    h, w = run.latent_size
    small = np.stack([cv2.resize(m.astype(np.float32) / 255.0, (w, h), interpolation=cv2.INTER_AREA) for m in masks])
    return torch.from_numpy(small).to(run.components.device)


class PoseAnimateDenoiser(Denoiser):
    """Guided ControlNet(target pose) prediction per window with per-step, per-frame embeddings; with
    DCAM the anchor (the source on its inverted trajectory) leads every window's batch."""

    def __init__(self, run: Run, model: PoseModel, targets: ConditionSequence, trajectory: list[torch.Tensor],
                 cond, uncond, anchor: dict | None, masks: torch.Tensor | None):
        self.run, self.model, self.targets, self.trajectory = run, model, targets, trajectory
        self.cond, self.uncond, self.anchor, self.masks = cond, uncond, anchor, masks

    @property
    def evaluations(self) -> int:
        return self.model.evaluations

    def start_latents(self, frames: int) -> torch.Tensor:
        return self.trajectory[-1].expand(frames, -1, -1, -1).clone()

    @staticmethod
    def pick(embeddings, step: int, start: int, stop: int) -> torch.Tensor:
        """Per-step list of (N, T, D) or one (1, T, D) for all: the window's (n, T, D)."""
        e = embeddings[step] if isinstance(embeddings, list) else embeddings
        return e.expand(stop - start, -1, -1) if e.shape[0] == 1 else e[start:stop]

    @torch.no_grad()
    def __call__(self, latents, t, step, start, stop):
        c = self.run.components
        pose = self.targets.window(start, stop, c.device, self.model.net.dtype)
        cond, uncond = self.pick(self.cond, step, start, stop), self.pick(self.uncond, step, start, stop)
        if self.anchor is None:
            return self.model(latents, t, step, pose, cond, uncond)
        a = self.anchor
        steps = len(self.trajectory) - 1
        x = torch.cat([self.trajectory[steps - step], latents])
        pose = torch.cat([a["pose"], pose])
        cond = torch.cat([self.pick(a["cond"], step, 0, 1), cond])
        uncond = torch.cat([self.pick(a["uncond"], step, 0, 1), uncond])
        extra = {}
        if self.masks is not None:
            extra["masks"] = self.masks[[0, *range(start + 1, stop + 1)]]
        kwargs = self.run.frame_kwargs(c.unet, stop - start + 1, start, **extra)
        unet_kwargs = {"cross_attention_kwargs": kwargs["cross_attention_kwargs"]} if kwargs else {}
        return self.model(x, t, step, pose, cond, uncond, unet_kwargs=unet_kwargs)[1:]


def load_source(run: Run) -> Source:
    s = run.settings
    if s.source:
        return photo_source(s.source, run.framing, s.source_mask)
    return render_source(run.passes, s.source_frame, run.framing, s.mask_pass)


def poses(run: Run, source: Source | None) -> tuple[ConditionSequence, np.ndarray | None, float, np.ndarray]:
    """(target pose images, the source's pose image or None, PATA's scale and offset). PATA: both
    drawn from the aligned keypoints; else the skeleton pass (and for a render source its frame)."""
    s, spec, net = run.settings, run.settings.specs[0], run.components.controlnets[0]
    size = run.framing.size
    if s.pata:
        sequence, scale, offset = pata(source.keypoints, target_keypoints(run), s.transition)
        run.record["poseanimate"]["pata"] = {"scale": scale, "offset": [float(v) for v in offset],
                                             "transition": s.transition}
        targets = ConditionSequence(("skeleton (PATA)",), np.stack([draw(p, size) for p in sequence[1:]]))
        return targets, draw(sequence[0], size), scale, offset
    channels = net.config.conditioning_channels
    targets = load_condition(run.passes, list(spec.passes), run.indices, run.framing, channels)
    if source is None:
        return targets, None, 1.0, np.zeros(2)
    if s.source:
        return targets, draw(source.keypoints, size), 1.0, np.zeros(2)
    index = run.passes.indices[s.source_frame]
    own = load_condition(run.passes, list(spec.passes), [index], run.framing, channels).frames[0]
    return targets, own, 1.0, np.zeros(2)


def pacm(run: Run, model: PoseModel, trajectory: list, source_pose: torch.Tensor, targets: ConditionSequence,
         text: torch.Tensor, negative: torch.Tensor) -> tuple[list, list]:
    """PACM's (per-step source embeddings, per-step (N, T, D) target embeddings) of the optimised slot."""
    s, c = run.settings, run.components
    fixed, start = (negative, text) if s.pacm_slot == "text" else (text, negative)
    options = dict(slot=s.pacm_slot, iterations=s.pacm_iterations, lr=s.pacm_lr)
    source_embs, source_losses = optimise_embeddings(model, trajectory, source_pose, start, fixed, carry=True,
                                                     **options)
    chunks, first_last = [], [[], []]
    for a in range(0, len(run.indices), s.pacm_batch):
        window = targets.window(a, min(a + s.pacm_batch, len(run.indices)), c.device, model.net.dtype)
        embs, losses = optimise_embeddings(model, trajectory, window, source_embs, fixed, carry=False, **options)
        chunks.append(embs)
        for step in losses:
            first_last[0] += step[0]
            first_last[1] += step[-1]
    run.record["poseanimate"]["pacm_loss"] = {
        "source_first": [step[0][0] for step in source_losses], "source_last": [step[-1][0] for step in source_losses],
        "targets_mean_first_last": [float(np.mean(v)) for v in first_last]}
    return source_embs, [torch.cat([chunk[i] for chunk in chunks]) for i in range(s.steps)]


def make_denoiser(run: Run) -> Denoiser:
    s, c = run.settings, run.components
    spec, net = s.specs[0], c.controlnets[0]
    text, negative = encode_text(c, s.prompt), encode_text(c, s.negative_prompt)
    source = load_source(run) if (s.inversion or s.pata) else None
    info = run.record["poseanimate"] = {}
    timings = run.record["timings"] = {}  # seconds of the stages before sampling
    targets, source_pose, scale, offset = poses(run, source)
    if not s.inversion:  # the plain ControlNet pipeline on these poses
        denoiser = ControlNetDenoiser(run, [net], [targets], [spec], text, negative, s.cfg)
        denoiser.targets = targets
        return denoiser
    info["source"] = source.origin
    c.scheduler.set_timesteps(s.steps, device=c.device)
    model = PoseModel(c, net, spec.scale, [k[0] for k in guidance_keep(s.steps, [spec])], s.cfg)
    pose_tensor = ConditionSequence(("source",), source_pose[None]).window(0, 1, c.device, net.dtype)

    began = time.perf_counter()
    trajectory = ddim_inversion(model, encode_image(c, source.image).to(c.unet.dtype), s.steps, pose_tensor, text)
    timings["inversion_seconds"] = round(time.perf_counter() - began, 4)
    info["inversion_evaluations"] = model.evaluations

    cond, uncond, anchor_cond, anchor_uncond = text, negative, text, negative
    if s.pacm:
        began, evaluations = time.perf_counter(), model.evaluations
        source_embs, target_embs = pacm(run, model, trajectory, pose_tensor, targets, text, negative)
        if s.pacm_slot == "text":
            cond, anchor_cond = target_embs, source_embs
        else:
            uncond, anchor_uncond = target_embs, source_embs
        timings["pacm_seconds"] = round(time.perf_counter() - began, 4)
        info["pacm_evaluations"] = model.evaluations - evaluations
    model.evaluations = 0  # the run record's count is the sampling's; the others are recorded above
    anchor = masks = None
    if s.dcam:
        anchor = {"pose": pose_tensor, "cond": anchor_cond, "uncond": anchor_uncond}
        if s.mgdm:
            target_masks = warp_masks(load_mask(run.passes, run.indices, run.framing, s.mask_pass), scale, offset)
            masks = latent_masks(np.concatenate([source.mask[None], target_masks]), run)
    return PoseAnimateDenoiser(run, model, targets, trajectory, cond, uncond, anchor, masks)
