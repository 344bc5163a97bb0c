"""The embedded model (diffusion/embedded): shipped files match files.json, a tampered file is a one-line
error, ``--model embedded`` generates deterministically for a seed; the default-avatar dataset size;
the VAE recipe; the demo's settings. (Loading from the installed wheel: tests/test_wheel_install.py.)"""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from _diffusion_util import add_rgb, one_thread, tiny_dir  # noqa: F401  (fixtures)
from diffusion import embedded
from diffusion.io.passes import PassesFolder
from diffusion.io.synthetic_passes import write_passes
from motion.errors import UserError

pytestmark = pytest.mark.usefixtures("one_thread")
LIMIT = 30 * 2**20          # the budget for all weights together


def test_shipped_files_match_the_record_and_fit_the_budget():
    record = json.loads(embedded.RECORD.read_text())
    assert embedded.file_table(embedded.FOLDER) == record["files"]
    assert embedded.embedded_dir() == str(embedded.FOLDER)
    assert record["total_bytes"] == sum(f["bytes"] for f in record["files"].values()) <= LIMIT
    for part in ("unet", "controlnet", "vae", "image_encoder", "text_encoder"):
        assert f"{part}/diffusion_pytorch_model.safetensors" in record["files"] or \
            f"{part}/model.safetensors" in record["files"]
    info = json.loads((embedded.FOLDER / "avatarcine_mya.json").read_text())
    assert info["passes"] == ["mesh"] and info["resolution"] == [128, 128]


@pytest.mark.parametrize("change", ["flip", "remove", "add"])
def test_a_tampered_model_is_refused_in_one_line(change, tmp_path):
    folder = tmp_path / "model"
    shutil.copytree(embedded.FOLDER, folder)
    weights = folder / "unet" / "diffusion_pytorch_model.safetensors"
    if change == "flip":
        data = bytearray(weights.read_bytes())
        data[len(data) // 2] ^= 1                     # same size, other hash
        weights.write_bytes(bytes(data))
    elif change == "remove":
        weights.unlink()
    else:
        (folder / "unet" / "extra.bin").write_bytes(b"x")
    with pytest.raises(UserError) as err:
        embedded.verify(folder, embedded.RECORD)
    assert "\n" not in str(err.value) and ("unet/" in err.value.where)
    embedded.verify(embedded.FOLDER, embedded.RECORD)  # the control: the shipped copy passes


def test_generate_refuses_a_tampered_embedded_model(tmp_path, monkeypatch, capsys):
    from motion.cli import main

    folder = tmp_path / "model"
    shutil.copytree(embedded.FOLDER, folder)
    (folder / "vae" / "config.json").write_text((folder / "vae" / "config.json").read_text()[:-2])
    monkeypatch.setattr(embedded, "FOLDER", folder)
    passes = write_passes(tmp_path / "clip", frames=2, size=(32, 32))
    code = main(["generate", str(passes), "--method", "make-your-anchor", "--model", "embedded", "--condition",
                 "normal", "--steps", "1", "-o", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "vae/config.json" in err and "files.json" in err


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    # a synthetic stick figure; its 3-channel normal pass stands in for mesh (the test is about
    # determinism and loading, not quality); a plate, as the demo composites onto it
    from diffusion.io.synthetic_passes import PASS_NAMES

    return PassesFolder.open(add_rgb(write_passes(tmp_path_factory.mktemp("clip") / "c", frames=4, size=(64, 64),
                                                  passes=(*PASS_NAMES, "plate"))))


def test_embedded_generation_is_deterministic_for_a_seed(clip):
    from diffusion.demo import demo_settings
    from diffusion.methods.make_your_anchor import METHOD

    def run(seed):
        s = dataclasses.replace(demo_settings(), condition=("normal",), steps=3, seed=seed, device="cpu")
        return METHOD.run(clip, s, METHOD.load(s))

    a, b, c = run(0), run(0), run(1)
    assert a.frames.shape == (4, 64, 64, 3)
    assert np.array_equal(a.frames, b.frames)
    assert not np.array_equal(a.frames, c.frames)       # the control: the seed matters
    assert Path(a.record["models"]["model"]) == embedded.FOLDER


def test_default_avatar_dataset_plan():
    from diffusion.benchmark.dataset import SIZES, make_plan
    from motion.bodies.default_avatar import DEFAULT

    plan = make_plan("default-avatar", seed=0)
    assert [i["id"] for i in plan["identities"]] == [DEFAULT.id]
    clips = [c for s in plan["splits"].values() for c in s]
    assert {c["identity_id"] for c in clips} == {DEFAULT.id}
    train, held = plan["splits"]["train"], plan["splits"]["heldout"]
    assert len(train) == 30 and len(held) == 6 and not plan["splits"]["heldout_identity"]
    assert not {c["motion_id"] for c in held} & {c["motion_id"] for c in train}
    assert not {c["camera_id"] for c in held} & {c["camera_id"] for c in train}
    assert plan["passes"] == list(SIZES["default-avatar"].passes) and "rgb" in plan["passes"]
    # the other sizes' plans are unchanged: no optional key in their spec, every pass
    smoke = make_plan("smoke", seed=0)
    assert "identity" not in smoke["spec"] and "passes" not in smoke["spec"] and "mesh" in smoke["passes"]


def test_default_identity_is_copied_from_the_shipped_bake(tmp_path):
    from diffusion.benchmark.dataset import build_identity, make_plan
    from motion.bodies.default_avatar import SHIPPED

    entry = make_plan("default-avatar", seed=0)["identities"][0]
    build_identity(tmp_path, entry)
    assert (tmp_path / entry["avatar"]).read_bytes() == SHIPPED.read_bytes()


def test_vae_recipe_trains_and_records_the_latent_scale(tmp_path):
    from diffusers import AutoencoderKL

    from diffusion.training.recipes.vae import RECIPE, VaeTrainConfig, latent_scale
    from diffusion.training.trainer import train

    clip = add_rgb(write_passes(tmp_path / "clip", frames=3, size=(32, 32)))
    config = VaeTrainConfig(data=[str(clip)], output=str(tmp_path / "out"), resolution=32, steps=3, batch_size=2,
                            block_out_channels=[8, 16], latent_channels=4, norm_num_groups=4, checkpoint_every=3)
    trainer = train(RECIPE, config)
    vae = AutoencoderKL.from_pretrained(trainer.final)
    assert vae.config.latent_channels == 4 and len(vae.config.block_out_channels) == 2
    setup = RECIPE.setup(config, torch.device("cpu"), torch.float32)
    scale = latent_scale(vae, setup.dataset, torch.device("cpu"))
    assert vae.config.scaling_factor == pytest.approx(scale, rel=1e-5) and scale != 0.18215
    # it trained: the weights moved away from the seeded initialisation
    from diffusion.training.recipes.vae import new_vae
    start = new_vae(config).state_dict()
    assert any(not torch.equal(start[k], v) for k, v in vae.state_dict().items())


def test_bench_rows_of_a_trained_model_do_not_train(tiny_dir, tmp_path, monkeypatch):
    from diffusion.benchmark import harness
    from diffusion.benchmark.harness import Budget
    from diffusion.loaders.tiny import MARKER
    from diffusion.methods.make_your_anchor import METHOD
    from diffusion.methods.make_your_anchor import bench as mya_bench
    from diffusion.methods.make_your_anchor.model import write_tiny_mya

    folder = write_tiny_mya(tiny_dir, tmp_path / "mya")
    assert mya_bench.trained_model("tiny") is None and mya_bench.trained_model(str(folder)) is None  # random: trained
    (folder / MARKER).unlink()                                  # now it stands for a trained folder
    assert mya_bench.trained_model(str(folder)) == str(folder)
    assert mya_bench.trained_model("embedded") == str(embedded.FOLDER)
    monkeypatch.setattr(harness, "train_timed", lambda *a: pytest.fail("a trained model must not be retrained"))
    rows = mya_bench.rows(METHOD, Budget(model=str(folder), sample_steps=2), [], tmp_path / "work", 0, 32)
    assert [r.name.split(") ")[-1] for r in rows] == [f"make-your-anchor ({folder})", "no temporal denoising",
                                                      "per frame"]
    from diffusion.io.synthetic_passes import PASS_NAMES
    with_plate = write_passes(tmp_path / "plate", frames=2, passes=(*PASS_NAMES, "plate"))
    rows = mya_bench.rows(METHOD, Budget(model=str(folder), sample_steps=2), [with_plate], tmp_path / "work", 0, 32)
    assert rows[-1].name.endswith("on the plate") and len(rows) == 4


def test_base_folder_matches_its_vae_and_is_deterministic(tmp_path):
    from diffusers import AutoencoderKL

    from diffusion.embedded.build import RESOLUTION, write_base
    from diffusion.methods.make_your_anchor.model import load_parts

    AutoencoderKL(latent_channels=8, block_out_channels=(8, 16, 16), norm_num_groups=4,
                  down_block_types=("DownEncoderBlock2D",) * 3, up_block_types=("UpDecoderBlock2D",) * 3,
                  ).save_pretrained(tmp_path / "vae")
    a, b = write_base(str(tmp_path / "vae"), tmp_path / "a"), write_base(str(tmp_path / "vae"), tmp_path / "b")
    weights = sorted(p.relative_to(a) for p in a.rglob("*.safetensors"))
    assert {"unet", "controlnet", "image_encoder"} <= {w.parts[0] for w in weights}
    assert all((a / w).read_bytes() == (b / w).read_bytes() for w in weights)
    c = load_parts(str(a), controlnet=None, image_encoder=None, scheduler="ddim", device="cpu", dtype="fp32")
    assert c.vae_scale_factor == 4 and c.unet.config.sample_size == RESOLUTION // 4
    # v-prediction at zero terminal SNR: the last training step is pure noise, and sampling starts there
    from diffusion.loaders.schedulers import training_scheduler
    noising = training_scheduler(c.scheduler.config)
    assert noising.config.prediction_type == "v_prediction" and float(noising.alphas_cumprod[-1]) < 1e-6
    c.scheduler.set_timesteps(10)
    assert int(c.scheduler.timesteps[0]) == 999
    # the ControlNet reads a full-size pass into residuals the UNet adds at the VAE's latent size
    latents = torch.randn(1, 8, RESOLUTION // 4, RESOLUTION // 4)
    tokens = torch.randn(1, 10, c.unet.config.cross_attention_dim)
    with torch.no_grad():
        down, mid = c.controlnets[0](latents, 10, encoder_hidden_states=tokens,
                                     controlnet_cond=torch.rand(1, 3, RESOLUTION, RESOLUTION), return_dict=False)
        out = c.unet(latents, 10, encoder_hidden_states=tokens, down_block_additional_residuals=down,
                     mid_block_additional_residual=mid).sample
    assert down[0].shape[-2:] == latents.shape[-2:] and out.shape == latents.shape


def test_configs_chain_vae_base_and_two_anchor_runs_over_the_train_split(tmp_path):
    from diffusion.benchmark.dataset import FORMAT, MANIFEST
    from diffusion.embedded.build import MYA_CONFIG, REFINE_CONFIG, VAE_CONFIG, write_configs
    from diffusion.training.recipes.make_your_anchor import RECIPE as MYA
    from diffusion.training.recipes.vae import RECIPE as VAE

    for name in ("t0", "t1", "h0"):
        add_rgb(write_passes(tmp_path / "data" / "clips" / name, frames=2))
    manifest = {"format": FORMAT, "spec": {"identity": "default"},
                "splits": {"train": [{"path": "clips/t0"}, {"path": "clips/t1"}], "heldout": [{"path": "clips/h0"}]}}
    (tmp_path / "data" / MANIFEST).write_text(json.dumps(manifest))
    vae, mya, refine = write_configs(str(tmp_path / "data"), str(tmp_path / "work"))
    work = (tmp_path / "work").resolve()
    v, m, r = VAE.load_config(vae), MYA.load_config(mya), MYA.load_config(refine)
    assert [Path(d).name for d in v.data] == ["t0", "t1"] and m.data == v.data == r.data   # never held-out clips
    assert Path(v.output) == work / "vae" and Path(m.model) == work / "base"
    assert Path(r.model) == work / "mya" / "model" and Path(r.output) == work / "mya2"       # from the first run
    assert v.steps == VAE_CONFIG["steps"] and m.actor_weight == MYA_CONFIG["actor_weight"]
    assert r.steps == REFINE_CONFIG["steps"] and r.learning_rate < m.learning_rate
    manifest["spec"] = {}
    (tmp_path / "data" / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(UserError, match="not a default-avatar dataset"):
        write_configs(str(tmp_path / "data"), str(tmp_path / "work2"))
