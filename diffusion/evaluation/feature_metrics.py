"""Metrics computed on features of user-supplied networks: LPIPS, CLIP-I, CLIP frame consistency,
FID and FVD. Nothing is downloaded: every network comes from a file or folder the user names.

Weights the user supplies
- LPIPS (Zhang et al. 2018, v0.1): one PyTorch (.pth/.pt) or safetensors file holding the
  backbone and the linear layers, in either key layout:
  * the ``lpips`` package's own ``LPIPS(net='alex'|'vgg').state_dict()`` (keys
    ``net.slice{k}.{i}.weight|bias``, ``lin{k}.model.1.weight``, ``scaling_layer.shift|scale``);
    produce it with ``torch.save(lpips.LPIPS(net='alex').state_dict(), 'lpips_alex.pth')``;
  * torchvision's ``alexnet()/vgg16()`` state dict (``features.{i}.weight|bias``) merged with the
    ``lin{k}.model.1.weight`` entries of lpips' released ``weights/v0.1/alex.pth`` / ``vgg.pth``.
  Key mapping into :class:`LPIPS`: ``net.slice{k}.{i}.*`` and ``features.{i}.*`` -> ``features.{i}.*``
  (lpips keeps torchvision's layer indices), ``lin{k}.model.1.weight`` -> ``lins.{k}.weight``,
  ``scaling_layer.{shift,scale}`` -> ``{shift,scale}``; other keys (torchvision's classifier) are
  ignored. The backbone (AlexNet or VGG16) is recognised from the first conv's shape.
- CLIP: a ``save_pretrained`` folder of ``CLIPModel`` (e.g. openai/clip-vit-base-patch32) or of
  ``CLIPVisionModelWithProjection``, with its ``preprocessor_config.json``.
- FID: a TorchScript file (``torch.jit.save``) mapping float RGB (N, 3, H, W) in [0, 1] to
  features (N, D), doing its own resizing and normalisation. For the standard 2048-d pool3
  features, wrap pytorch-fid's ``InceptionV3([3])`` (it takes [0, 1] input and resizes to 299) in a
  module whose forward returns ``model(x)[0].flatten(1)`` and save
  ``torch.jit.trace(wrapper.eval(), torch.rand(1, 3, 299, 299))``.
- FVD: a TorchScript file mapping clips (N, 3, T, H, W) in [0, 1] to features (N, D), e.g. an
  I3D (Kinetics-400 logits, as in Unterthiner et al. 2018) wrapped to resize frames to 224 and
  scale to [-1, 1], traced the same way. Clips are consecutive non-overlapping runs of
  ``clip_length`` (16) frames.
FID/FVD with fewer samples than feature dimensions are biased (rank-deficient covariances); the
report says how many samples were used.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from scipy import linalg
from torch import nn

from motion.errors import UserError

# LPIPS v0.1 input scaling (lpips' ScalingLayer), applied to images in [-1, 1].
LPIPS_SHIFT = (-0.030, -0.088, -0.188)
LPIPS_SCALE = (0.458, 0.448, 0.450)

# torchvision layer layouts: ("C", in, out, kernel, stride, padding) | "R" | ("M", kernel, stride).
_ALEX = [("C", 3, 64, 11, 4, 2), "R", ("M", 3, 2), ("C", 64, 192, 5, 1, 2), "R", ("M", 3, 2),
         ("C", 192, 384, 3, 1, 1), "R", ("C", 384, 256, 3, 1, 1), "R", ("C", 256, 256, 3, 1, 1), "R"]
_ALEX_TAPS = (1, 4, 7, 9, 11)
_VGG16_TAPS = (3, 8, 15, 22, 29)


def _vgg16_layout() -> list:
    """torchvision vgg16().features up to relu5_3: blocks of 3x3 convs + ReLU, max-pools between."""
    layout: list = []
    for block, (cin, cout, n) in enumerate([(3, 64, 2), (64, 128, 2), (128, 256, 3), (256, 512, 3), (512, 512, 3)]):
        if block:
            layout.append(("M", 2, 2))
        for j in range(n):
            layout += [("C", cin if j == 0 else cout, cout, 3, 1, 1), "R"]
    return layout


BACKBONES = {"alex": (_ALEX, _ALEX_TAPS), "vgg": (_vgg16_layout(), _VGG16_TAPS)}


def _build_features(layout: list) -> nn.Sequential:
    layers: list[nn.Module] = []
    for spec in layout:
        if spec == "R":
            layers.append(nn.ReLU())
        elif spec[0] == "M":
            layers.append(nn.MaxPool2d(spec[1], spec[2]))
        else:
            _, cin, cout, k, s, p = spec
            layers.append(nn.Conv2d(cin, cout, k, s, p))
    return nn.Sequential(*layers)


class LPIPS(nn.Module):
    """LPIPS v0.1: unit-normalised backbone activations, squared differences weighted by 1x1
    linear layers, spatially averaged and summed over the five taps."""

    def __init__(self, backbone: str = "alex"):
        super().__init__()
        layout, self.taps = BACKBONES[backbone]
        self.features = _build_features(layout)
        widths = [layout[t - 1][2] for t in self.taps]  # the conv before each tapped ReLU
        self.lins = nn.ModuleList(nn.Conv2d(c, 1, 1, bias=False) for c in widths)
        self.register_buffer("shift", torch.tensor(LPIPS_SHIFT).view(1, 3, 1, 1))
        self.register_buffer("scale", torch.tensor(LPIPS_SCALE).view(1, 3, 1, 1))

    def _activations(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = ((2.0 * x - 1.0) - self.shift) / self.scale
        out = []
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in self.taps:
                out.append(x / (x.norm(dim=1, keepdim=True) + 1e-10))
        return out

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """LPIPS distance per image pair; ``a``, ``b``: (N, 3, H, W) RGB in [0, 1]."""
        dist = torch.zeros(a.shape[0], dtype=a.dtype, device=a.device)
        for lin, fa, fb in zip(self.lins, self._activations(a), self._activations(b)):
            dist = dist + lin((fa - fb) ** 2).mean(dim=(1, 2, 3))
        return dist


def _load_state_dict(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise UserError(path, "no such weights file")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file
            return load_file(str(path))
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch/safetensors raise many types for a bad file
        raise UserError(path, f"not a readable weights file ({type(exc).__name__}: {exc})") from None
    if not isinstance(state, dict):
        raise UserError(path, "expected a state dict (mapping of parameter names to tensors)")
    return state


def lpips_key(key: str) -> str | None:
    """Our parameter name for one key of an lpips / torchvision state dict (None: not used)."""
    for pattern, repl in ((r"net\.slice\d+\.(\d+)\.(weight|bias)", r"features.\1.\2"),
                          (r"features\.(\d+)\.(weight|bias)", r"features.\1.\2"),
                          (r"lin(\d+)\.model\.1\.weight", r"lins.\1.weight"),
                          (r"scaling_layer\.(shift|scale)", r"\1")):
        if re.fullmatch(pattern, key):
            return re.sub(pattern, repl, key)
    return None


def load_lpips(path: str | os.PathLike) -> LPIPS:
    """Build :class:`LPIPS` from a user weights file through the documented key mapping."""
    path = Path(path)
    state = {new: value for key, value in _load_state_dict(path).items() if (new := lpips_key(key))}
    first = state.get("features.0.weight")
    if first is None:
        raise UserError(path, "no backbone weights (expected net.slice1.0.weight or features.0.weight)")
    backbone = {11: "alex", 3: "vgg"}.get(first.shape[-1])
    if backbone is None:
        raise UserError(path, f"first conv has kernel {tuple(first.shape)}: neither AlexNet nor VGG16")
    model = LPIPS(backbone)
    if "shift" in state:
        state["shift"], state["scale"] = state["shift"].view(1, 3, 1, 1), state["scale"].view(1, 3, 1, 1)
    else:
        state["shift"], state["scale"] = model.shift, model.scale
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise UserError(path, f"not an LPIPS-{backbone} state dict: missing {missing[:4]}, unexpected {unexpected[:4]}")
    return model.eval().requires_grad_(False)


def to_tensor(frames: Sequence[np.ndarray]) -> torch.Tensor:
    """(N, 3, H, W) float32 in [0, 1] from HxWx3 float images in [0, 1]."""
    return torch.from_numpy(np.stack(frames).astype(np.float32)).permute(0, 3, 1, 2).contiguous()


class ClipImageEncoder:
    """Normalised CLIP image embeddings from a ``save_pretrained`` folder (CLIPModel or
    CLIPVisionModelWithProjection plus its image processor)."""

    def __init__(self, folder: str | os.PathLike):
        folder = Path(folder)
        config = folder / "config.json"
        if not config.is_file() or not (folder / "preprocessor_config.json").is_file():
            raise UserError(folder, "not a CLIP folder (needs config.json and preprocessor_config.json)")
        from transformers import AutoImageProcessor, CLIPModel, CLIPVisionModelWithProjection

        model_type = json.loads(config.read_text()).get("model_type")
        try:
            if model_type == "clip":
                self.model = CLIPModel.from_pretrained(folder)
            elif model_type == "clip_vision_model":
                self.model = CLIPVisionModelWithProjection.from_pretrained(folder)
            else:
                raise UserError(config, f"model_type {model_type!r} is not a CLIP model")
            self.processor = AutoImageProcessor.from_pretrained(folder)
        except (OSError, ValueError) as exc:
            raise UserError(folder, f"cannot load CLIP ({exc})") from None
        self.model.eval()

    @torch.no_grad()
    def embed(self, frames: Sequence[np.ndarray]) -> np.ndarray:
        """(N, D) unit-length embeddings of HxWx3 uint8 RGB frames."""
        pixels = self.processor(images=list(frames), return_tensors="pt")["pixel_values"]
        if hasattr(self.model, "get_image_features"):
            out = self.model.get_image_features(pixel_values=pixels)
            emb = out if isinstance(out, torch.Tensor) else out.pooler_output
        else:
            emb = self.model(pixel_values=pixels).image_embeds
        return torch.nn.functional.normalize(emb.float(), dim=-1).numpy()


def clip_image_similarity(pred_emb: np.ndarray, gt_emb: np.ndarray) -> np.ndarray:
    """CLIP-I per frame: cosine between generated and ground-truth embeddings (unit rows)."""
    return np.sum(pred_emb * gt_emb, axis=1)


def clip_frame_consistency(emb: np.ndarray) -> np.ndarray:
    """Per adjacent pair, 100 x cosine of consecutive frames' embeddings (FYP/PoseAnimate scale)."""
    return 100.0 * np.sum(emb[:-1] * emb[1:], axis=1)


def load_torchscript(path: str | os.PathLike) -> torch.jit.ScriptModule:
    """A user-supplied TorchScript feature network, in eval mode on the CPU."""
    path = Path(path)
    if not path.is_file():
        raise UserError(path, "no such TorchScript file")
    try:
        return torch.jit.load(str(path), map_location="cpu").eval()
    except Exception as exc:  # torch.jit raises RuntimeError/ValueError subclasses for bad files
        raise UserError(path, f"not a TorchScript module ({type(exc).__name__}: {exc})") from None


@torch.no_grad()
def network_features(net: torch.jit.ScriptModule, batch: torch.Tensor, where: object) -> np.ndarray:
    """(N, D) float64 features of one batch; the network's output is flattened per sample."""
    try:
        out = net(batch)
    except Exception as exc:  # a user network failing on our input shape
        raise UserError(where, f"network failed on input {tuple(batch.shape)} ({type(exc).__name__}: {exc})") from None
    return out.reshape(out.shape[0], -1).double().numpy()


def feature_statistics(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and unbiased covariance of (N, D) features (N >= 2)."""
    features = np.asarray(features, dtype=np.float64)
    if features.shape[0] < 2:
        raise ValueError("feature statistics need at least 2 samples")
    return features.mean(axis=0), np.atleast_2d(np.cov(features, rowvar=False))


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray,
                     eps: float = 1e-6) -> float:
    """||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^(1/2)) (Heusel et al. 2017; Dowson & Landau 1982).

    When the product is singular (fewer samples than dimensions) the square root is taken of
    (S1 + eps I)(S2 + eps I), as pytorch-fid does; tiny imaginary parts from round-off are dropped.
    """
    diff = np.asarray(mu1, dtype=np.float64) - np.asarray(mu2, dtype=np.float64)
    s1, s2 = np.asarray(sigma1, dtype=np.float64), np.asarray(sigma2, dtype=np.float64)
    covmean = linalg.sqrtm(s1 @ s2)
    if not np.isfinite(covmean).all():
        offset = eps * np.eye(s1.shape[0])
        covmean = linalg.sqrtm((s1 + offset) @ (s2 + offset))
    covmean = np.real(covmean)
    return float(max(diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * np.trace(covmean), 0.0))


def frechet_distance_of_features(a: np.ndarray, b: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to two (N, D) feature sets."""
    return frechet_distance(*feature_statistics(a), *feature_statistics(b))
