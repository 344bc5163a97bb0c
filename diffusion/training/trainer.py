"""The one trainer: ``accelerate`` state, checkpoints, exact resume, logs, progress and validation
images, for every recipe. A recipe (:class:`Recipe`) supplies the models, which of them train, the
dataset and the loss; the trainer does the rest the way diffusers' training examples do (AdamW, a
diffusers lr schedule with warmup, gradient accumulation and clipping, mixed precision).

Checkpoints (``OUTPUT/checkpoint-<step>/``) are ``accelerator.save_state`` folders (the trainable
models as the recipe saves them, optimizer, lr schedule, RNG states, the step/epoch/batch counters),
written under a temporary name and renamed. Resuming is exact: the data order of epoch ``e`` comes
from accelerate's seedable sampler (seed + e) and skipping the batches already seen; every random
draw of batch ``k`` (noise, timesteps, VAE posterior sample, dropout of conditions) comes from a CPU
generator seeded with (seed, process, k), so a run stopped and resumed gives the same weights as an
uninterrupted one. ``OUTPUT/log.jsonl`` has loss and lr per step, ``OUTPUT/train.json`` the config,
models and versions; ``OUTPUT/validation/step-<step>.png`` the recipe's validation images.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import re
import shutil
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np
import torch

from diffusion.loaders.common import DTYPES
from diffusion.training.config import TrainConfig, load_config
from motion.errors import UserError
from motion.fileio import atomic_path, check_writable, output_lock, save_json
from motion.progress import progress

RECORD = "train.json"
LOG = "log.jsonl"
VALIDATION = "validation"
_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")


@dataclass
class Setup:
    """What a recipe builds: ``trainable`` models (name -> module; prepared by accelerate, saved in
    checkpoints), the dataset, frozen parts and anything its loss needs (``extra``), and what
    ``train.json`` should say about it (``record``)."""

    trainable: dict[str, torch.nn.Module]
    dataset: torch.utils.data.Dataset
    extra: dict = field(default_factory=dict)
    record: dict = field(default_factory=dict)

    def parameters(self) -> list[torch.nn.Parameter]:
        """The parameters the optimizer updates: those of the trainable models that require grad."""
        return [p for m in self.trainable.values() for p in m.parameters() if p.requires_grad]


class Recipe(ABC):
    """What one method trains. ``Config`` is its pydantic config class; ``final`` the folder name of
    the finished weights in the output."""

    name: str
    Config: type[TrainConfig]
    final: str

    def load_config(self, path: str | Path) -> TrainConfig:
        return load_config(path, self.Config)

    @abstractmethod
    def setup(self, config: TrainConfig, device: torch.device, weight_dtype: torch.dtype) -> Setup:
        """Models (frozen ones in ``weight_dtype``), trainable modules (fp32, train mode), dataset."""

    @abstractmethod
    def loss(self, setup: Setup, batch: dict, generator: torch.Generator) -> torch.Tensor:
        """The loss of one batch; every random draw from ``generator``."""

    def save_module(self, name: str, module: torch.nn.Module, folder: Path) -> None:
        """Save one trainable model into ``folder`` (checkpoints and the final weights)."""
        module.save_pretrained(folder / name)

    def load_module(self, name: str, module: torch.nn.Module, folder: Path) -> None:
        """Load what :meth:`save_module` wrote back into ``module``."""
        saved = type(module).from_pretrained(folder / name)
        module.register_to_config(**saved.config)
        module.load_state_dict(saved.state_dict())

    def finish(self, config: TrainConfig, setup: Setup, folder: Path) -> None:
        """Write the finished weights (default: every trainable model) and what they were trained on."""
        for name, module in setup.trainable.items():
            self.save_module(name, module, folder)

    def validate(self, config: TrainConfig, setup: Setup) -> np.ndarray | None:
        """Validation images (N, H, W, 3) uint8 from the current weights, or None."""
        return None

    def usage(self, config: TrainConfig, final: Path) -> str:
        """A command line that uses the finished weights."""
        return f"see {final}"


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
    """CPU generator of one batch's random draws (independent streams per batch)."""
    state = np.random.SeedSequence([seed, process, micro]).generate_state(2, dtype=np.uint32)
    return torch.Generator("cpu").manual_seed(int(state[0]) << 32 | int(state[1]))


def check_output(recipe: Recipe, config: TrainConfig, resume: bool | str = False, force: bool = False) -> Path | None:
    """Before anything is loaded: the checkpoint to resume from (None: a fresh run), or a UserError.
    A fresh run refuses a non-empty output folder unless ``force`` and it is a training output (then it
    is replaced); a resumed run needs a checkpoint and the config's ``RESUME_FIXED`` fields unchanged."""
    output = check_writable(config.output, force=True, folder=True)
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
        if not (checkpoint / "custom_checkpoint_0.pkl").is_file():
            raise UserError(checkpoint, "not a training checkpoint folder")
    else:
        found = checkpoints(output)
        if not found:
            raise UserError(output, "no checkpoint to resume from (checkpoint-<step>/)")
        checkpoint = found[-1]
    if not record.is_file():
        raise UserError(record, "missing: cannot check the checkpoint belongs to this config")
    try:
        saved = json.loads(record.read_text())
        saved_config, saved_recipe = saved["config"], saved.get("recipe", recipe.name)
    except (OSError, ValueError, TypeError, KeyError) as exc:
        raise UserError(record, f"unreadable JSON ({exc!r})") from None
    if saved_recipe != recipe.name:
        raise UserError(record, f"was written by recipe {saved_recipe!r}, not {recipe.name!r}")
    now = config.model_dump(mode="json")
    for key in config.RESUME_FIXED:
        if saved_config.get(key) != now[key]:
            raise UserError(f"config: {key}", f"was {saved_config.get(key)!r} when the checkpoints were written, "
                                              f"now {now[key]!r}; train into a new output folder")
    return checkpoint


def _replace_dir(tmp: Path, final: Path) -> None:
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)


class Trainer:
    """Builds accelerator, models, data and optimizer from a recipe and its config; ``fit`` trains,
    checkpoints, validates and saves."""

    def __init__(self, recipe: Recipe, config: TrainConfig):
        from accelerate import Accelerator
        from accelerate.utils import DataLoaderConfiguration
        from diffusers.optimization import get_scheduler

        self.recipe, self.config = recipe, config
        self.output = Path(config.output)
        self.final = self.output / recipe.final
        try:
            self.accelerator = Accelerator(
                gradient_accumulation_steps=config.gradient_accumulation, mixed_precision=config.mixed_precision,
                dataloader_config=DataLoaderConfiguration(use_seedable_sampler=True, data_seed=config.seed))
        except ValueError as exc:
            raise UserError("mixed_precision", " ".join(str(exc).split())) from None
        acc = self.accelerator
        if config.mixed_precision == "fp16" and acc.device.type == "cpu":
            raise UserError("mixed_precision", "fp16 needs a GPU (no fp16 autocast on CPU); use bf16 or no")
        self.weight_dtype = DTYPES["fp32" if config.mixed_precision == "no" else config.mixed_precision]
        self.setup = recipe.setup(config, acc.device, self.weight_dtype)
        if config.gradient_checkpointing:
            for module in self.setup.trainable.values():
                module.enable_gradient_checkpointing()
        loader = torch.utils.data.DataLoader(self.setup.dataset, batch_size=config.batch_size, shuffle=True,
                                             num_workers=config.num_workers)
        optimizer = torch.optim.AdamW(self.setup.parameters(), lr=config.learning_rate,
                                      betas=(config.adam_beta1, config.adam_beta2),
                                      weight_decay=config.weight_decay, eps=config.adam_epsilon)
        schedule = get_scheduler(config.lr_scheduler, optimizer,
                                 num_warmup_steps=config.warmup_steps * acc.num_processes,
                                 num_training_steps=config.steps * acc.num_processes)
        names = list(self.setup.trainable)
        *models, self.optimizer, self.dataloader, self.lr_schedule = acc.prepare(
            *self.setup.trainable.values(), optimizer, loader, schedule)
        self.setup.trainable = dict(zip(names, models))
        self.state = TrainState()
        acc.register_for_checkpointing(self.state)
        acc.register_save_state_pre_hook(self._save_hook)
        acc.register_load_state_pre_hook(self._load_hook)

    def unwrapped(self) -> dict[str, torch.nn.Module]:
        return {name: self.accelerator.unwrap_model(m) for name, m in self.setup.trainable.items()}

    def _save_hook(self, models: list, weights: list, output_dir: str) -> None:
        """Checkpoints hold the trainable models as the recipe saves them (usable for generation as is)."""
        if self.accelerator.is_main_process:
            for name, module in self.unwrapped().items():
                self.recipe.save_module(name, module, Path(output_dir))
            weights.clear()

    def _load_hook(self, models: list, input_dir: str) -> None:
        for name, module in self.unwrapped().items():
            self.recipe.load_module(name, module, Path(input_dir))
        models.clear()

    # ------------------------------------------------------------------------------------------
    def start(self, resume: bool | str = False, force: bool = False) -> None:
        """Load the checkpoint to resume from, or make a fresh output folder (see :func:`check_output`)."""
        checkpoint = check_output(self.recipe, self.config, resume, force)
        self.accelerator.wait_for_everyone()   # all processes checked before the main one creates the output
        if checkpoint is not None:
            saved = json.loads((self.output / RECORD).read_text()).get("processes", 1)
            if saved != self.accelerator.num_processes:   # the data each process takes depends on their number
                raise UserError(self.output, f"was trained on {saved} processes, resumed on "
                                             f"{self.accelerator.num_processes}; resume with the same number")
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

        return {"task": f"train {self.recipe.name}", "recipe": self.recipe.name,
                "config": self.config.model_dump(mode="json"), **self.setup.record,
                "items": len(self.setup.dataset), "processes": self.accelerator.num_processes,
                "trainable_parameters": sum(p.numel() for p in self.setup.parameters()),
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
        ``steps``). A checkpoint is written every ``checkpoint_every`` steps and where training stops,
        validation images every ``validate_every`` steps; at ``steps`` the final weights are saved.
        Returns the final weights' folder, or None if stopped early."""
        cfg, state = self.config, self.state
        stop = cfg.steps if max_steps is None else max_steps
        if not 0 < stop <= cfg.steps:
            raise UserError("--max-steps", f"must be in 1..{cfg.steps} (the config's steps), got {stop}")
        steps = progress(self.train_steps(stop), f"train {self.recipe.name}", total=max(0, stop - state.step),
                         unit="step")
        for entry in steps:
            self._log(entry)
            if cfg.validate_every and state.step % cfg.validate_every == 0:
                self.save_validation()
            if state.step % cfg.checkpoint_every == 0 or state.step == stop:
                self.save_checkpoint()
        return self.save_final() if state.step == cfg.steps else None

    def train_steps(self, stop: int) -> Iterator[dict]:
        """Optimizer steps until ``stop``, resuming mid-epoch; yields each step's log entry."""
        cfg, acc, state = self.config, self.accelerator, self.state
        models = list(self.setup.trainable.values())
        params = self.setup.parameters()
        losses = []
        while state.step < stop:
            loader = acc.skip_first_batches(self.dataloader, state.batch) if state.batch else self.dataloader
            loader.set_epoch(state.epoch)  # the data order of an epoch depends on (seed, epoch) only
            for batch in loader:
                with acc.accumulate(*models):
                    loss = self.recipe.loss(self.setup, batch, batch_generator(cfg.seed, acc.process_index, state.micro))
                    acc.backward(loss)
                    if acc.sync_gradients:
                        acc.clip_grad_norm_(params, cfg.max_grad_norm)
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

    def save_validation(self) -> Path | None:
        """The recipe's validation images of the current weights, side by side in one PNG."""
        if not self.accelerator.is_main_process:
            return None
        modules = self.unwrapped().values()
        for module in modules:
            module.eval()
        try:
            with self.accelerator.autocast():
                images = self.recipe.validate(self.config, self.setup)
        finally:
            for module in modules:
                module.train()
        if images is None:
            return None
        import imageio.v2 as imageio

        path = self.output / VALIDATION / f"step-{self.state.step:06d}.png"
        path.parent.mkdir(exist_ok=True)
        with atomic_path(path, force=True) as tmp:
            imageio.imwrite(tmp, np.concatenate(list(images), axis=1))
        return path

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

    def save_final(self) -> Path:
        """The recipe's finished weights in ``OUTPUT/<final>`` (temp name, renamed)."""
        acc = self.accelerator
        if acc.is_main_process:
            tmp = self.output / f".{self.final.name}.partial"
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir()
            setup = Setup(self.unwrapped(), self.setup.dataset, self.setup.extra, self.setup.record)
            self.recipe.finish(self.config, setup, tmp)
            _replace_dir(tmp, self.final)
        acc.wait_for_everyone()
        return self.final


def train(recipe: Recipe, config: TrainConfig, *, resume: bool | str = False, force: bool = False,
          max_steps: int | None = None) -> Trainer:
    """Build the trainer, start or resume in ``config.output`` and train; returns the trainer."""
    resume = resume or config.resume
    check_output(recipe, config, resume, force)  # fail before loading models and data
    # one lock per run: the main process holds it (accelerate launch gives every process its RANK)
    lock = output_lock(config.output) if os.environ.get("RANK", "0") == "0" else contextlib.nullcontext()
    with lock:
        trainer = Trainer(recipe, config)
        trainer.start(resume=resume, force=force)
        trainer.fit(max_steps)
    return trainer
