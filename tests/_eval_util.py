"""Synthetic ground truth for the evaluation tests: a passes folder with the standard pass entries of
render/meta.py; the float depth EXR is written by Blender's own image writer (bpy, channels R, G,
B, A) and the flow EXR by render/exr.py (channels dx, dy), both read back through render/exr.py."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from render.exr import write_exr
from render.meta import OPENPOSE18, SCHEMA_VERSION, standard_pass
from render.png import write_png


def write_exr_bpy(path: Path, array: np.ndarray) -> None:
    """(H, W) or (H, W, <=4) float array -> float RGBA OpenEXR written by Blender (rows top first)."""
    import bpy

    a = np.asarray(array, dtype=np.float32)
    a = a[..., None] if a.ndim == 2 else a
    h, w, c = a.shape
    rgba = np.zeros((h, w, 4), np.float32)
    rgba[..., 3] = 1.0
    rgba[..., :c] = a
    img = bpy.data.images.new(path.stem, width=w, height=h, alpha=True, float_buffer=True, is_data=True)
    img.pixels.foreach_set(rgba[::-1].ravel())          # Blender stores the bottom row first
    img.filepath_raw = str(path)
    img.file_format = "OPEN_EXR"
    img.save()
    bpy.data.images.remove(img)


def moving_square_clip(n: int = 4, h: int = 32, w: int = 40, step: int = 2, seed: int = 0) -> dict[str, np.ndarray]:
    """A textured static background (depth 10; a sky band at 1e10, i.e. empty) and a red textured square
    (depth 2) moving ``step`` px right per frame; exact forward flow, depth and mask."""
    rng = np.random.default_rng(seed)
    background = rng.integers(0, 200, (h, w, 3)).astype(np.uint8)   # never fully red
    square = rng.integers(0, 256, (10, 10, 3)).astype(np.uint8)
    square[..., 0] = 255                                 # red actor: lets a test segmenter find it
    rgb = np.repeat(background[None], n, axis=0)
    mask = np.zeros((n, h, w), bool)
    depth = np.full((n, h, w), 10.0)
    depth[:, :4] = 1e10                                  # a sky band: empty (render/meta.py: >= 1e9)
    flow = np.zeros((n, h, w, 2))
    y0 = 12
    for t in range(n):
        x0 = 4 + step * t
        rgb[t, y0:y0 + 10, x0:x0 + 10] = square
        mask[t, y0:y0 + 10, x0:x0 + 10] = True
        depth[t, y0:y0 + 10, x0:x0 + 10] = 2.0
        flow[t, y0:y0 + 10, x0:x0 + 10, 0] = step
    return {"rgb": rgb, "mask": mask, "depth": depth, "flow": flow, "y0": y0, "step": step}


def write_passes(root: Path, clip: dict[str, np.ndarray],
                 passes: tuple[str, ...] = ("rgb", "mask", "flow", "depth_float")) -> Path:
    """A passes folder (render/meta.py contract) holding the requested passes of ``clip``."""
    rgb = clip["rgb"]
    n, h, w = rgb.shape[:3]
    encodings = {"rgb": standard_pass("image", "rgb"), "mask": standard_pass("mask"),
                 "flow": standard_pass("flow"), "depth_float": standard_pass("depth_float", exr_channels=["R"])}
    frames = []
    for t in range(n):
        for name in passes:
            (root / name).mkdir(parents=True, exist_ok=True)
            path = root / name / f"{t:06d}.{encodings[name]['ext']}"
            if name == "rgb":
                write_png(path, rgb[t])
            elif name == "mask":
                write_png(path, clip["mask"][t].astype(np.uint8))          # instance id 1
            elif name == "flow":
                write_exr(path, {"dx": clip["flow"][t, ..., 0], "dy": clip["flow"][t, ..., 1]})
            else:
                write_exr_bpy(path, clip["depth"][t])
        y0, x0, s = clip["y0"], 4 + clip["step"] * t, 10
        kp = [[x0 + s * (i % 3) / 2.0, y0 + s * (i // 3) / 5.0, 1.0] for i in range(len(OPENPOSE18))]
        frames.append({"index": t, "time": t / 30.0,
                       "camera": {"K": np.eye(3).tolist(), "world_to_camera_cv": np.eye(4).tolist(),
                                  "camera_to_world_blender": np.eye(4).tolist(), "shot": 0},
                       "actors": {"square": {"joints3d": [], "keypoints2d": {"openpose18": kp}}}})
    meta = {"schema_version": SCHEMA_VERSION, "fps": 30.0, "resolution": [w, h], "frames_range": [0, n - 1],
            "passes": {k: encodings[k] for k in passes}, "keypoint_names": {"openpose18": OPENPOSE18},
            "actors": [{"name": "square", "body": "box", "skeleton": "none", "instance_id": 1}],
            "frames": frames}
    (root / "meta.json").write_text(json.dumps(meta))
    return root


def write_frames(folder: Path, frames: np.ndarray) -> Path:
    """Generated frames as ``folder/frames/NNNNNN.png``."""
    for t, frame in enumerate(frames):
        write_png(folder / "frames" / f"{t:06d}.png", frame)
    return folder


# AlexNet convs: torchvision index -> (lpips slice, weight shape, stride, padding); max-pools before 3 and 6.
ALEX = {0: (1, (64, 3, 11, 11), 4, 2), 3: (2, (192, 64, 5, 5), 1, 2), 6: (3, (384, 192, 3, 3), 1, 1),
        8: (4, (256, 384, 3, 3), 1, 1), 10: (5, (256, 256, 3, 3), 1, 1)}


def lpips_layout_state(seed: int = 0, lin_scale: float = 1.0) -> dict[str, torch.Tensor]:
    """Random weights keyed exactly as ``lpips.LPIPS(net='alex').state_dict()``."""
    g = torch.Generator().manual_seed(seed)
    state = {"scaling_layer.shift": torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1),
             "scaling_layer.scale": torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1)}
    for k, (idx, (sl, shape, _, _)) in enumerate(ALEX.items()):
        state[f"net.slice{sl}.{idx}.weight"] = torch.randn(shape, generator=g) * (2.0 / np.prod(shape[1:])) ** 0.5
        state[f"net.slice{sl}.{idx}.bias"] = torch.randn(shape[0], generator=g) * 0.01
        state[f"lin{k}.model.1.weight"] = lin_scale * torch.rand((1, shape[0], 1, 1), generator=g)
    return state



def write_tiny_clip(root: Path) -> Path:
    """``root/full``: a tiny random CLIPModel + image processor; ``root/vision``: the same image
    tower saved as CLIPVisionModelWithProjection. Both through ``save_pretrained``."""
    from transformers import CLIPConfig, CLIPImageProcessorPil, CLIPModel, CLIPVisionConfig, CLIPVisionModelWithProjection

    vision = dict(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
                  image_size=32, patch_size=8)
    text = dict(vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
                max_position_embeddings=16, bos_token_id=0, eos_token_id=1, pad_token_id=1)
    torch.manual_seed(0)
    full = CLIPModel(CLIPConfig(text_config=text, vision_config=vision, projection_dim=8))
    processor = CLIPImageProcessorPil(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    full.save_pretrained(root / "full")
    processor.save_pretrained(root / "full")
    vis = CLIPVisionModelWithProjection(CLIPVisionConfig(**vision, projection_dim=8))
    vis.vision_model.load_state_dict(full.vision_model.state_dict())
    vis.visual_projection.load_state_dict(full.visual_projection.state_dict())
    vis.save_pretrained(root / "vision")
    processor.save_pretrained(root / "vision")
    return root
