"""Make-Your-Anchor's rows of ``avatarcine bench methods``.

Trained on the train split within the budget (``budget.steps`` each): the body model twice (reference
dropout 0, the authors'; and 0.1, so the guided unconditional branch is one the model learned) and
the face model once. The condition is the ``mesh`` pass (the method's), whatever ``--passes`` says
for the ControlNet rows. The reference of a clip is its first ground-truth ``rgb`` frame: the method
renders a given person's appearance, and the held-out identities were never trained on (choice).
Faces in the benchmark are small, so the face rows crop at 32 px and accept faces of 4 px and up.

A trained Make-Your-Anchor model as ``--model`` (a folder, or ``embedded``) is evaluated as it is, with
no training: with its own ``reference.png`` (its person is the benchmark's; the embedded model's
default-avatar dataset) and its ControlNet at the scale it was trained at (1); rows with temporal
denoising (all-frame attention in windows of 16 overlapping by 4, shared initial noise), without it
(the same windows without overlap) and per frame (no frame-aware attention, independent noise); where
the dataset has the ``plate`` pass (``--size default-avatar``), also the first of them composited onto
it (``--background plate``: the scene rendered without the actor, from each frame's camera).
"""

from __future__ import annotations

import dataclasses

from diffusion.sampling.settings import PLATE

MESH = ["mesh"]
FACE_SIZE, FACE_MIN = 32, 4.0


def _row(method, name: str, settings, seconds: float):
    """A row generating each clip with its own first rgb frame as the reference; models loaded once."""
    from diffusion.benchmark.harness import Row
    from diffusion.io.passes import frame_path

    loaded = {}

    def generate(passes):
        if "c" not in loaded:
            loaded["c"] = method.load(settings)
        reference = frame_path(passes.root, passes.meta, "rgb", passes.indices[0])
        return method.run(passes, dataclasses.replace(settings, reference=str(reference)), loaded["c"])
    return Row(name, generate, seconds)


def trained_model(model: str) -> str | None:
    """The folder of ``model`` if it is a trained Make-Your-Anchor model (not a base, not tiny)."""
    from pathlib import Path

    from diffusion.loaders.tiny import MARKER
    from diffusion.methods.make_your_anchor.model import resolve_mya

    folder = Path(resolve_mya(model))
    return str(folder) if (folder / "controlnet").is_dir() and not (folder / MARKER).is_file() else None


def trained_rows(method, budget, model: str, seed: int, size: int, plate: bool = False):
    """The rows of a given trained model (see the module doc); ``plate``: the dataset has the plate pass."""
    from diffusion.benchmark.harness import method_row

    common = dict(model=model, steps=budget.sample_steps, cfg=budget.cfg, seed=seed, width=size, height=size,
                  device=budget.device, condition=MESH, controlnet_scale=1.0)
    name = f"make-your-anchor ({budget.model})"
    rows = [method_row(method, name, method.settings(**common)),
            method_row(method, f"{name} no temporal denoising", method.settings(overlap=0, **common)),
            method_row(method, f"{name} per frame", method.settings(attention="none", window=1, overlap=0,
                                                                    shared_noise=0.0, **common))]
    if plate:
        rows.append(method_row(method, f"{name} on the plate", method.settings(background=PLATE, **common)))
    return rows


def rows(method, budget, train_dirs, work, seed, size):
    from diffusion.benchmark.harness import train_timed
    from diffusion.io.passes import PassesFolder
    from diffusion.training.recipes.make_your_anchor import RECIPE, MakeYourAnchorTrainConfig
    from diffusion.training.recipes.make_your_anchor_face import RECIPE as FACE_RECIPE
    from diffusion.training.recipes.make_your_anchor_face import FaceTrainConfig

    trained = trained_model(budget.model)
    if trained:
        plate = any(PLATE in PassesFolder.open(d).meta["passes"] for d in train_dirs[:1])
        return trained_rows(method, budget, trained, seed, size, plate)
    common = dict(data=[str(d) for d in train_dirs], passes=MESH, resolution=size, steps=budget.steps,
                  batch_size=budget.batch_size, learning_rate=budget.learning_rate, lr_scheduler="constant", seed=seed,
                  checkpoint_every=budget.steps, checkpoints_total_limit=1)
    models = {}
    for dropout in (0.0, 0.1):
        config = MakeYourAnchorTrainConfig(model=budget.model, output=str(work / f"body-dropout-{dropout}"),
                                           reference_dropout=dropout, **common)
        trainer, seconds = train_timed(RECIPE, config)
        models[dropout] = (str(trainer.final), seconds)
    face_model = "tiny" if budget.model == "tiny" else "stable-diffusion-v1-5/stable-diffusion-inpainting"
    face = FaceTrainConfig(model=face_model, controlnet_base=budget.model, output=str(work / "face"),
                           face_size=FACE_SIZE, face_min_size=FACE_MIN, **common)
    face_trainer, face_seconds = train_timed(FACE_RECIPE, face)
    sampling = dict(steps=budget.sample_steps, cfg=budget.cfg, seed=seed, width=size, height=size,
                    device=budget.device, condition=MESH)
    body, body_seconds = models[0.0]
    out = [
        _row(method, "make-your-anchor", method.settings(model=body, **sampling), body_seconds),
        _row(method, "make-your-anchor (no temporal denoising)",
             method.settings(model=body, overlap=0, **sampling), body_seconds),
        _row(method, "make-your-anchor (reference dropout 0.1)",
             method.settings(model=models[0.1][0], **sampling), models[0.1][1]),
        _row(method, "make-your-anchor + face", method.settings(
            model=body, face_enhance=True, face_model=str(face_trainer.final), face_size=FACE_SIZE,
            face_min_size=FACE_MIN, face_steps=budget.sample_steps, **sampling), body_seconds + face_seconds),
    ]
    return out


def _train_memory(mode: str, size: int, steps: int, rank: int) -> dict:
    """Trainable parameters and peak resident-memory increase of ``steps`` training steps in ``mode``
    on the tiny model (a synthetic clip whose normal pass stands in for the rgb target)."""
    import json
    import tempfile
    from pathlib import Path

    import torch

    from diffusion.bench import _PeakRss
    from diffusion.io.synthetic_passes import write_passes
    from diffusion.training.recipes.make_your_anchor import RECIPE, MakeYourAnchorTrainConfig
    from diffusion.training.trainer import Trainer

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        clip = write_passes(Path(tmp) / "clip", frames=4, size=(size, size))
        meta = json.loads((clip / "meta.json").read_text())
        meta["passes"]["rgb"] = dict(meta["passes"]["normal"])
        (clip / "meta.json").write_text(json.dumps(meta))
        config = MakeYourAnchorTrainConfig(data=[str(clip)], passes=["normal"], model="tiny", resolution=size,
                                           output=str(Path(tmp) / "out"), steps=steps, batch_size=2, mode=mode,
                                           lora_rank=rank, checkpoint_every=steps)
        trainer = Trainer(RECIPE, config)
        with _PeakRss() as mem:
            for _ in trainer.train_steps(steps):
                pass
        trainable = sum(p.numel() for p in trainer.setup.parameters())
    return {"mode": mode, "trainable_parameters": trainable,
            "weights_grads_adam_mb": round(trainable * 16 / 2**20, 3),  # fp32 weight + grad + 2 Adam moments
            "peak_increase_mb": round(mem.peak - mem.start, 1)}


def train_memory(size: int = 64, steps: int = 3, rank: int = 4) -> list[dict]:
    """Full against LoRA fine-tuning on the tiny model, each in a fresh spawned process."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    out = []
    for mode in ("full", "lora"):
        with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
            out.append(pool.submit(_train_memory, mode, size, steps, rank).result())
    return out


if __name__ == "__main__":  # python -m diffusion.methods.make_your_anchor.bench
    import json

    print(json.dumps(train_memory(), indent=1))
