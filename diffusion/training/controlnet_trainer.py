"""ControlNet training on our rendered data, the recipe of diffusers' ``examples/controlnet/train_controlnet.py``.

Frozen VAE, UNet and text encoder (cast to the mixed-precision dtype); a trainable fp32 ControlNet
initialised from the UNet (``ControlNetModel.from_unet``) or from a given ControlNet; DDPM forward
noising with timesteps uniform over the training schedule; MSE to the noise (``epsilon``) or to
the velocity (``v_prediction``) as the base's scheduler config says; AdamW, a diffusers lr schedule
with warmup, gradient accumulation and clipping through ``accelerate``.

Checkpoints (``OUTPUT/checkpoint-<step>/``) are ``accelerator.save_state`` folders (ControlNet,
optimizer, lr schedule, RNG states, the step/epoch/batch counters), written under a temporary name
and renamed. Resuming is exact: the data order of epoch ``e`` comes from accelerate's seedable
sampler (seed + e) and skipping the batches already seen; the noise, timesteps and VAE posterior
sample of batch ``k`` come from a CPU generator seeded with (seed, process, k), so a run stopped and
resumed gives the same weights as an uninterrupted one. The finished ControlNet is written with
``save_pretrained`` to ``OUTPUT/controlnet/``, loadable wherever a ControlNet folder is accepted.
"""

from __future__ import annotations

import json
import os
import platform
import re
import shutil
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
import torch.nn.functional as F

from diffusion.latents import encode_text
from diffusion.models import DTYPES, load_components
from diffusion.training.config import RESUME_FIXED, TrainControlNetConfig
from diffusion.training.dataset import PassPairs, open_folders, stack_channels
from motion.errors import UserError
from motion.fileio import atomic_path, save_json
from motion.progress import progress

RECORD = "train.json"
LOG = "log.jsonl"
FINAL = "controlnet"
TRAINING_INFO = "avatarcine_training.json"  # beside the final ControlNet's config: passes it reads, base, steps
TEXT_CACHE = 1024  # distinct captions whose embeddings are kept
_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")


class TrainState:
    """Counters saved in every checkpoint (``accelerator.register_for_checkpointing``)."""

    def __init__(self):
        self.step = 0    # optimizer steps done
        self.epoch = 0   # current pass over the data
        self.batch = 0   # batches of the current epoch already used
        self.micro = 0   # batches used in all (seeds the noise)

    def state_dict(self) -> dict:
        return dict(vars(self))

    def load_state_dict(self, state: dict) -> None:
        vars(self).update({k: int(v) for k, v in state.items()})


def checkpoints(output: Path) -> list[Path]:
    """Finished checkpoint folders in ``output``, oldest first."""
    if not output.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in output.iterdir() if p.is_dir() and (m := _CHECKPOINT.match(p.name))]
    return [p for _, p in sorted(found)]


def batch_generator(seed: int, process: int, micro: int) -> torch.Generator:
    """CPU generator of one batch's noise, timesteps and latent sample (independent streams per batch)."""
    state = np.random.SeedSequence([seed, process, micro]).generate_state(2, dtype=np.uint32)
    return torch.Generator("cpu").manual_seed(int(state[0]) << 32 | int(state[1]))


def check_output(config: TrainControlNetConfig, resume: bool | str = False, force: bool = False) -> Path | None:
    """Before anything is loaded: the checkpoint to resume from (None: a fresh run), or a UserError.
    A fresh run refuses a non-empty output folder unless ``force`` and it is a training output (then it
    is replaced); a resumed run needs a checkpoint and the config fields in ``RESUME_FIXED`` unchanged."""
    output = Path(config.output)
    if output.exists() and not output.is_dir():
        raise UserError(output, "exists and is not a folder")
    record = output / RECORD
    if not resume:
        if output.exists() and any(output.iterdir()):
            if not force:
                raise UserError(output, "already exists; pass --resume to continue training or --force to start "
                                        "over (deletes it)")
            if not record.is_file():
                raise UserError(output, "is not a training output (no train.json); not deleting it")
        return None
    if isinstance(resume, str):
        checkpoint = Path(resume)
        if not (checkpoint / "custom_checkpoint_0.pkl").is_file() or not (checkpoint / FINAL).is_dir():
            raise UserError(checkpoint, "not a training checkpoint folder")
    else:
        found = checkpoints(output)
        if not found:
            raise UserError(output, "no checkpoint to resume from (checkpoint-<step>/)")
        checkpoint = found[-1]
    if not record.is_file():
        raise UserError(record, "missing: cannot check the checkpoint belongs to this config")
    try:
        saved = json.loads(record.read_text())["config"]
    except (OSError, ValueError, TypeError, KeyError) as exc:
        raise UserError(record, f"unreadable JSON ({exc!r})") from None
    now = config.model_dump(mode="json")
    for key in RESUME_FIXED:
        if saved.get(key) != now[key]:
            raise UserError(f"config: {key}", f"was {saved.get(key)!r} when the checkpoints were written, "
                                              f"now {now[key]!r}; train into a new output folder")
    return checkpoint


def _replace_dir(tmp: Path, final: Path) -> None:
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)


class ControlNetTrainer:
    """Builds models, data, optimizer and accelerator from a config; ``fit`` trains, saves, resumes."""

    def __init__(self, config: TrainControlNetConfig):
        from accelerate import Accelerator
        from accelerate.utils import DataLoaderConfiguration
        from diffusers import ControlNetModel, DDPMScheduler
        from diffusers.optimization import get_scheduler

        self.config = config
        self.output = Path(config.output)
        folders = open_folders(config.data, config.passes, config.target)
        channels = {stack_channels(f, config.passes) for f in folders}
        if len(channels) > 1:
            raise UserError("passes", f"the folders give different channel counts {sorted(channels)} for "
                                      f"{'+'.join(config.passes)}")
        try:
            self.accelerator = Accelerator(
                gradient_accumulation_steps=config.gradient_accumulation, mixed_precision=config.mixed_precision,
                dataloader_config=DataLoaderConfiguration(use_seedable_sampler=True, data_seed=config.seed))
        except ValueError as exc:
            raise UserError("mixed_precision", " ".join(str(exc).split())) from None
        accelerator = self.accelerator
        if config.mixed_precision == "fp16" and accelerator.device.type == "cpu":
            raise UserError("mixed_precision", "fp16 needs a GPU (no fp16 autocast on CPU); use bf16 or no")
        self.weight_dtype = DTYPES["fp32" if config.mixed_precision == "no" else config.mixed_precision]

        init = [] if config.controlnet == "unet" else [config.controlnet]
        c = load_components(config.model, init, device=str(accelerator.device), dtype="fp32")
        self.components = c
        self.noise_scheduler = DDPMScheduler.from_config(c.scheduler.config)
        if init:
            controlnet = c.controlnets[0]
            self.controlnet_source = c.sources[f"controlnet:{config.controlnet}"]
        else:
            with torch.random.fork_rng(devices=[]):  # the new condition encoder's init depends on the seed only
                torch.manual_seed(config.seed)
                controlnet = ControlNetModel.from_unet(c.unet, conditioning_channels=channels.pop())
            self.controlnet_source = "from_unet"
        controlnet.to(accelerator.device).train().requires_grad_(True)
        if config.gradient_checkpointing:
            controlnet.enable_gradient_checkpointing()
        if self.weight_dtype != torch.float32:
            for module in (c.unet, c.vae, c.text_encoder):
                module.to(dtype=self.weight_dtype)
            c.dtype = self.weight_dtype

        self.dataset = PassPairs(folders, config.passes, config.size, controlnet.config.conditioning_channels,
                                 target=config.target, prompt=config.prompt, multiple=c.vae_scale_factor)
        loader = torch.utils.data.DataLoader(self.dataset, batch_size=config.batch_size, shuffle=True,
                                             num_workers=config.num_workers)
        optimizer = torch.optim.AdamW(controlnet.parameters(), lr=config.learning_rate,
                                      betas=(config.adam_beta1, config.adam_beta2),
                                      weight_decay=config.weight_decay, eps=config.adam_epsilon)
        schedule = get_scheduler(config.lr_scheduler, optimizer,
                                 num_warmup_steps=config.warmup_steps * accelerator.num_processes,
                                 num_training_steps=config.steps * accelerator.num_processes)
        self.controlnet, self.optimizer, self.dataloader, self.lr_schedule = accelerator.prepare(
            controlnet, optimizer, loader, schedule)
        self.state = TrainState()
        accelerator.register_for_checkpointing(self.state)
        accelerator.register_save_state_pre_hook(self._save_hook)
        accelerator.register_load_state_pre_hook(self._load_hook)
        self._text: dict[str, torch.Tensor] = {}

    def _save_hook(self, models: list, weights: list, output_dir: str) -> None:
        """Checkpoints hold the ControlNet as a ``save_pretrained`` folder (usable for generation as is)."""
        if self.accelerator.is_main_process:
            for model in models:
                self.accelerator.unwrap_model(model).save_pretrained(Path(output_dir) / FINAL)
                weights.pop()

    def _load_hook(self, models: list, input_dir: str) -> None:
        from diffusers import ControlNetModel

        while models:
            model = self.accelerator.unwrap_model(models.pop())
            saved = ControlNetModel.from_pretrained(Path(input_dir) / FINAL)
            model.register_to_config(**saved.config)
            model.load_state_dict(saved.state_dict())

    # ------------------------------------------------------------------------------------------
    def text_embeddings(self, captions: list[str]) -> torch.Tensor:
        """(B, tokens, dim) frozen text-encoder states, cached per distinct caption (bounded cache)."""
        if len(self._text) > TEXT_CACHE:
            self._text.clear()
        for text in set(captions) - set(self._text):
            self._text[text] = encode_text(self.components, text)
        return torch.cat([self._text[text] for text in captions])

    def loss(self, batch: dict, generator: torch.Generator) -> torch.Tensor:
        """Diffusion loss of the ControlNet-guided UNet on one batch; all randomness from ``generator``."""
        c, dtype = self.components, self.weight_dtype
        with torch.no_grad():
            pixels = batch["pixel_values"].to(c.device, dtype)
            latents = c.vae.encode(pixels).latent_dist.sample(generator=generator) * c.vae.config.scaling_factor
            noise = torch.randn(latents.shape, generator=generator, dtype=latents.dtype).to(c.device)
            timesteps = torch.randint(0, self.noise_scheduler.config.num_train_timesteps, (latents.shape[0],),
                                      generator=generator).to(c.device)
            noisy = self.noise_scheduler.add_noise(latents, noise, timesteps)
            text = self.text_embeddings(list(batch["caption"]))
        cond = batch["conditioning_pixel_values"].to(c.device, dtype)
        down, mid = self.controlnet(noisy, timesteps, encoder_hidden_states=text, controlnet_cond=cond,
                                    return_dict=False)
        pred = c.unet(noisy, timesteps, encoder_hidden_states=text,
                      down_block_additional_residuals=[r.to(dtype) for r in down],
                      mid_block_additional_residual=mid.to(dtype), return_dict=False)[0]
        kind = self.noise_scheduler.config.prediction_type
        if kind == "epsilon":
            target = noise
        elif kind == "v_prediction":
            target = self.noise_scheduler.get_velocity(latents, noise, timesteps)
        else:
            raise UserError("model", f"scheduler prediction_type {kind!r} is not supported (epsilon, v_prediction)")
        return F.mse_loss(pred.float(), target.float())

    # ------------------------------------------------------------------------------------------
    def start(self, resume: bool | str = False, force: bool = False) -> None:
        """Load the checkpoint to resume from, or make a fresh output folder (see :func:`check_output`)."""
        checkpoint = check_output(self.config, resume, force)
        if checkpoint is not None:
            self.accelerator.load_state(str(checkpoint))
            self._trim_log()
            return
        if self.accelerator.is_main_process:
            if self.output.exists() and force:
                shutil.rmtree(self.output)
            self.output.mkdir(parents=True, exist_ok=True)
            save_json(self.output / RECORD, self._record())
        self.accelerator.wait_for_everyone()

    def _record(self) -> dict:
        import accelerate
        import diffusers

        return {"task": "train controlnet", "config": self.config.model_dump(mode="json"),
                "controlnet_init": self.controlnet_source, "models": self.components.sources,
                "conditioning_channels": self.dataset.channels, "frames": len(self.dataset),
                "folders": [str(c.folder.root) for c in self.dataset.clips],
                "prediction_type": self.noise_scheduler.config.prediction_type,
                "processes": self.accelerator.num_processes,
                "versions": {"python": platform.python_version(), "torch": torch.__version__,
                             "diffusers": diffusers.__version__, "accelerate": accelerate.__version__}}

    def _trim_log(self) -> None:
        """Drop log lines past the resumed step (written after the checkpoint by an interrupted run) and
        lines that do not parse; rewritten atomically."""
        log = self.output / LOG
        if self.accelerator.is_main_process and log.is_file():
            kept = []
            for line in log.read_text().splitlines():
                try:
                    step = json.loads(line)["step"]
                except (ValueError, TypeError, KeyError):
                    continue                     # a half-written line (the run was interrupted mid-write)
                if step <= self.state.step:
                    kept.append(line + "\n")
            with atomic_path(log, force=True) as tmp:
                tmp.write_text("".join(kept))

    # ------------------------------------------------------------------------------------------
    def fit(self, max_steps: int | None = None) -> Path | None:
        """Train up to step ``max_steps`` (default: the config's ``steps``; the lr schedule always spans
        ``steps``). A checkpoint is written every ``checkpoint_every`` steps and where training stops;
        at ``steps`` the ControlNet is saved. Returns the final ControlNet folder, or None if stopped early."""
        cfg, state = self.config, self.state
        stop = cfg.steps if max_steps is None else max_steps
        if not 0 < stop <= cfg.steps:
            raise UserError("--max-steps", f"must be in 1..{cfg.steps} (the config's steps), got {stop}")
        steps = progress(self.train_steps(stop), "train controlnet", total=max(0, stop - state.step), unit="step")
        for entry in steps:
            self._log(entry)
            if state.step % cfg.checkpoint_every == 0 or state.step == stop:
                self.save_checkpoint()
        return self.save_controlnet() if state.step == cfg.steps else None

    def train_steps(self, stop: int) -> Iterator[dict]:
        """Optimizer steps until ``stop``, resuming mid-epoch; yields each step's log entry."""
        cfg, acc, state = self.config, self.accelerator, self.state
        losses = []
        while state.step < stop:
            loader = acc.skip_first_batches(self.dataloader, state.batch) if state.batch else self.dataloader
            loader.set_epoch(state.epoch)  # the data order of an epoch depends on (seed, epoch) only
            for batch in loader:
                with acc.accumulate(self.controlnet):
                    loss = self.loss(batch, batch_generator(cfg.seed, acc.process_index, state.micro))
                    acc.backward(loss)
                    if acc.sync_gradients:
                        acc.clip_grad_norm_(self.controlnet.parameters(), cfg.max_grad_norm)
                    self.optimizer.step()
                    self.lr_schedule.step()
                    self.optimizer.zero_grad(set_to_none=True)
                state.batch += 1
                state.micro += 1
                losses.append(acc.gather(loss.detach()).mean().item())
                if acc.sync_gradients:
                    state.step += 1
                    yield {"step": state.step, "epoch": state.epoch, "loss": float(np.mean(losses)),
                           "lr": self.lr_schedule.get_last_lr()[0]}
                    losses = []
                    if state.step >= stop:
                        return
            state.epoch += 1
            state.batch = 0

    def _log(self, entry: dict) -> None:
        if self.accelerator.is_main_process:
            with open(self.output / LOG, "a") as f:
                f.write(json.dumps(entry) + "\n")

    def save_checkpoint(self) -> Path:
        """``accelerator.save_state`` to ``checkpoint-<step>`` (temp name, renamed), then the oldest
        checkpoints beyond ``checkpoints_total_limit`` are removed."""
        acc = self.accelerator
        final = self.output / f"checkpoint-{self.state.step:06d}"
        tmp = self.output / f".{final.name}.partial"
        if acc.is_main_process:
            shutil.rmtree(tmp, ignore_errors=True)
        acc.wait_for_everyone()
        acc.save_state(str(tmp))
        if acc.is_main_process:
            _replace_dir(tmp, final)
            limit = self.config.checkpoints_total_limit
            saved = checkpoints(self.output)
            for path in saved[: max(0, len(saved) - limit)] if limit else []:
                shutil.rmtree(path)
        acc.wait_for_everyone()
        return final

    def save_controlnet(self) -> Path:
        """``save_pretrained`` of the trained ControlNet to ``OUTPUT/controlnet`` (+ what it was trained on)."""
        acc = self.accelerator
        final = self.output / FINAL
        if acc.is_main_process:
            tmp = self.output / f".{FINAL}.partial"
            shutil.rmtree(tmp, ignore_errors=True)
            acc.unwrap_model(self.controlnet).save_pretrained(tmp)
            info = {"passes": self.config.passes, "target": self.config.target, "model": self.config.model,
                    "steps": self.state.step, "resolution": list(self.config.size),
                    "conditioning_channels": self.dataset.channels}
            save_json(tmp / TRAINING_INFO, info)
            _replace_dir(tmp, final)
        acc.wait_for_everyone()
        return final


def train_controlnet(config: TrainControlNetConfig, *, resume: bool | str = False, force: bool = False,
                     max_steps: int | None = None) -> ControlNetTrainer:
    """Build the trainer, start or resume in ``config.output`` and train; returns the trainer."""
    resume = resume or config.resume
    check_output(config, resume, force)  # fail before loading models and data
    trainer = ControlNetTrainer(config)
    trainer.start(resume=resume, force=force)
    trainer.fit(max_steps)
    return trainer
