"""Building the embedded model (``python -m diffusion.embedded STEP``; the README lists the sequence):

- ``configs DATASET -o WORK``: the training configs on the train split of a ``bench dataset --size
  default-avatar`` build (WORK/vae.yaml; WORK/mya.yaml and WORK/mya2.yaml, two Make-Your-Anchor runs,
  the second from the first's weights);
- ``base --vae VAE -o BASE``: the untrained Make-Your-Anchor folder the recipe starts from: the trained
  VAE, a new small UNet and a ControlNet copying its encoder over the 3-channel ``mesh`` pass, the
  tiny text encoder + tokenizer (the empty-text unconditional branch only) and a frozen tiny CLIP
  vision tower (seeded random weights, see below);
- ``ship MODEL``: copy a trained folder into the package (``diffusion/embedded/model``) and record
  its files' sizes and hashes in ``files.json``;
- ``strip DEMO_OUT -o PNG``: demo frames above their ``mesh`` pass (the README's image).

Reference tokens (a documented substitute for a trained CLIP encoder): the model is person-specific
and its reference is always the shipped ``reference.png``, so the tokens only need to be a fixed,
deterministic context the UNet learns to read; a frozen, seeded random 2-layer ViT (the tiny
Make-Your-Anchor tower, 10 tokens of width 32) gives that at no training cost. It does not transfer
appearance from other references.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from motion.errors import UserError

SEED = 12
RESOLUTION = 128
# A 4x VAE (32 x 32 x 8 latents at 128 px): an 8x one blurs a 128 px actor past what a pose detector
# reads (MediaPipe on held-out frames: 21 % of the people found in an 8x VAE's reconstructions, all of
# them in the frames themselves). The UNet has three levels so that its cost at 32 x 32 stays that of
# a two-level one at 16 x 16; all-frame attention runs at its lowest level (8 x 8).
UNET = dict(layers_per_block=1, block_out_channels=(32, 64, 128),
            down_block_types=("DownBlock2D", "DownBlock2D", "CrossAttnDownBlock2D"),
            up_block_types=("CrossAttnUpBlock2D", "UpBlock2D", "UpBlock2D"), attention_head_dim=8, norm_num_groups=32)
VAE_CONFIG = dict(resolution=RESOLUTION, block_out_channels=[32, 64, 64], latent_channels=8, steps=1500, batch_size=4,
                  learning_rate=1.0e-3, lr_scheduler="cosine", warmup_steps=20, checkpoint_every=500,
                  checkpoints_total_limit=1, validate_every=500)
MYA_CONFIG = dict(resolution=RESOLUTION, passes=["mesh"], stage=2, steps=3000, batch_size=8, learning_rate=5.0e-4,
                  lr_scheduler="cosine", warmup_steps=50, reference_dropout=0.0, actor_weight=4.0,
                  checkpoint_every=250, checkpoints_total_limit=1, validate_every=1000, validation_steps=10)
# a second run from the first one's weights: a new cosine cycle at a lower rate (the first had flattened)
REFINE_CONFIG = {**MYA_CONFIG, "steps": 2500, "learning_rate": 2.0e-4}


def base_scheduler():
    """SD 1.5's DDIM betas with v-prediction, rescaled to zero terminal SNR and trailing timesteps (Lin et
    al. 2024): with epsilon-prediction the x0 estimate at high noise divides the noise error by
    sqrt(alpha_bar) (0.068 at t = 999), and on 32 x 32 latents that error became a texture the sampler
    kept; v-prediction bounds it, and at zero SNR the last training step is the pure noise sampling
    starts from."""
    from diffusers import DDIMScheduler

    from diffusion.loaders.sd15 import tiny_scheduler

    # trailing spacing counts back from the last step itself: no offset
    return DDIMScheduler.from_config(tiny_scheduler().config, prediction_type="v_prediction",
                                     rescale_betas_zero_snr=True, timestep_spacing="trailing", steps_offset=0)


def condition_embedding(factor: int) -> tuple[int, ...]:
    """The ControlNet's condition encoder channels: it downsamples the pass by ``factor``, like the VAE."""
    levels = factor.bit_length()            # factor = 2 ** (levels - 1)
    return tuple(min(16 * 2 ** i, 64) for i in range(levels))


def write_base(vae_folder: str, out: str) -> Path:
    """The untrained Make-Your-Anchor folder on a trained VAE (see the module doc); deterministic."""
    import torch
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPImageProcessor

    from diffusion.loaders.controlnet import controlnet_from_unet
    from diffusion.loaders.sd15 import TINY_CONTEXT, tiny_text_encoder, write_tiny_tokenizer
    from diffusion.methods.make_your_anchor.model import save_model, tiny_vision_encoder

    vae = AutoencoderKL.from_pretrained(vae_folder)
    channels = int(vae.config.latent_channels)
    factor = 2 ** (len(vae.config.block_out_channels) - 1)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(SEED)
        unet = UNet2DConditionModel(sample_size=RESOLUTION // factor, in_channels=channels, out_channels=channels,
                                    cross_attention_dim=TINY_CONTEXT, **UNET)
        text_encoder, encoder = tiny_text_encoder(), tiny_vision_encoder()
    controlnet = controlnet_from_unet(unet, 3, seed=SEED + 1, embedding=condition_embedding(factor))
    out = Path(out)
    tokenizer = write_tiny_tokenizer(out / "tokenizer")
    processor = CLIPImageProcessor(size={"shortest_edge": 24}, crop_size={"height": 24, "width": 24})
    return save_model(out, unet=unet, controlnet=controlnet, vae=vae, image_encoder=encoder,
                      feature_extractor=processor, scheduler=base_scheduler(), text_encoder=text_encoder,
                      tokenizer=tokenizer, info={"passes": ["mesh"]})


def write_configs(dataset: str, work: str) -> tuple[Path, Path, Path]:
    """WORK/vae.yaml, WORK/mya.yaml and WORK/mya2.yaml over the dataset's train clips (outputs WORK/vae,
    WORK/mya, WORK/mya2; the last starts from WORK/mya/model)."""
    import yaml

    from diffusion.benchmark.dataset import load_manifest

    manifest = load_manifest(dataset)
    if manifest["spec"].get("identity") != "default":
        raise UserError(dataset, "is not a default-avatar dataset; build one with "
                                 "`avatarcine bench dataset --size default-avatar`")
    clips = [str((Path(dataset) / c["path"]).resolve()) for c in manifest["splits"]["train"]]
    work = Path(work).resolve()
    work.mkdir(parents=True, exist_ok=True)
    vae = work / "vae.yaml"
    vae.write_text(yaml.safe_dump({"data": clips, "output": str(work / "vae"), **VAE_CONFIG}, sort_keys=False))
    mya = work / "mya.yaml"
    mya.write_text(yaml.safe_dump({"data": clips, "model": str(work / "base"), "output": str(work / "mya"),
                                   **MYA_CONFIG}, sort_keys=False))
    refine = work / "mya2.yaml"
    refine.write_text(yaml.safe_dump({"data": clips, "model": str(work / "mya" / "model"),
                                      "output": str(work / "mya2"), **REFINE_CONFIG}, sort_keys=False))
    return vae, mya, refine


def ship(model: str, folder: Path | None = None, record: Path | None = None) -> Path:
    """Copy the trained folder ``model`` (without a face model) into the package and write files.json."""
    from diffusion.embedded import FOLDER, RECORD

    folder, record = folder or FOLDER, record or RECORD
    source = Path(model)
    if not (source / "controlnet").is_dir() or not (source / "avatarcine_mya.json").is_file():
        raise UserError(model, "is not a trained Make-Your-Anchor folder")
    shutil.rmtree(folder, ignore_errors=True)
    shutil.copytree(source, folder, ignore=shutil.ignore_patterns("face", "__pycache__"))
    make_portable(folder)
    record_files(folder, record)
    return folder


def make_portable(folder: Path) -> None:
    """Drop the build machine's paths from the shipped JSON files: diffusers' ``_name_or_path`` and the
    base folder the recipe recorded (kept as its name, the ``base`` step's ``-o``)."""
    for path in folder.rglob("*.json"):
        data = json.loads(path.read_text())
        if not isinstance(data, dict) or not ({"_name_or_path", "base"} & set(data)):
            continue
        data.pop("_name_or_path", None)
        if "base" in data:
            data["base"] = Path(str(data["base"])).name
        path.write_text(json.dumps(data, indent=1) + "\n")


def record_files(folder: Path, record: Path) -> None:
    """Write ``record`` (files.json): every file's size and sha256 under ``folder``, and their total."""
    from diffusion.embedded import file_table

    files = file_table(folder)
    record.write_text(json.dumps({"total_bytes": sum(f["bytes"] for f in files.values()), "files": files},
                                 indent=1) + "\n")


def write_strip(demo: str, out: str, count: int = 6) -> Path:
    """A PNG of ``count`` evenly spaced demo frames (top) above their ``mesh`` pass (bottom)."""
    import imageio.v2 as imageio
    import numpy as np

    from diffusion.io.passes import PassesFolder

    passes = PassesFolder.open(Path(demo) / "passes")
    frames = sorted((Path(demo) / "generation" / "frames").glob("*.png"))
    if len(frames) != len(passes.indices):
        raise UserError(demo, "is not a finished `avatarcine demo` output")
    picks = np.linspace(0, len(frames) - 1, count).round().astype(int)
    mesh = passes.resolve("mesh")
    top = [np.asarray(imageio.imread(frames[i]))[..., :3] for i in picks]
    bottom = [np.rint(passes.read(mesh, passes.indices[i])[..., :3] * 255).astype(np.uint8) for i in picks]
    imageio.imwrite(out, np.concatenate([np.concatenate(top, 1), np.concatenate(bottom, 1)], 0))
    return Path(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m diffusion.embedded", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="step", required=True)
    c = sub.add_parser("configs", help="training configs over a default-avatar dataset's train split")
    c.add_argument("dataset")
    c.add_argument("-o", "--output", required=True, metavar="WORK")
    b = sub.add_parser("base", help="the untrained model folder on a trained VAE")
    b.add_argument("--vae", required=True)
    b.add_argument("-o", "--output", required=True, metavar="BASE")
    s = sub.add_parser("ship", help="copy a trained model into the package and record its files")
    s.add_argument("model")
    t = sub.add_parser("strip", help="a PNG of demo frames above their mesh pass (the README's image)")
    t.add_argument("demo", metavar="DEMO_OUT")
    t.add_argument("-o", "--output", required=True, metavar="PNG")
    args = parser.parse_args(argv)
    try:
        if args.step == "configs":
            print("\n".join(str(p) for p in write_configs(args.dataset, args.output)))
        elif args.step == "base":
            print(write_base(args.vae, args.output))
        elif args.step == "ship":
            print(ship(args.model))
        else:
            print(write_strip(args.demo, args.output))
    except UserError as exc:
        print(f"error: {exc}")
        return 2
    return 0
