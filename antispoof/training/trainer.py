"""The training loop of every recipe: epochs with validation and model selection, resumable checkpoints,
mixed precision, torchrun DDP, early stopping, and checkpoint averaging chosen on the validation set.

A recipe supplies the model, the training set, the loss and a ``validate(model, epoch) -> Validation``
function; the Trainer does the rest::

    trainer = Trainer(model, train_set, criterion, validate, config, run)
    record = trainer.fit()            # the selected (or averaged) weights are loaded into ``model``

Selection uses the validation value only (dev EER for detectors, never eval).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn
from tqdm import tqdm

from antispoof.config import ExperimentConfig
from antispoof.runtime import autocast_context, make_grad_scaler
from antispoof.training.averaging import Averager
from antispoof.training.checkpoints import CheckpointManager, capture_rng_state, restore_rng_state
from antispoof.training.distributed import (
    all_gather_objects,
    all_reduce_mean,
    barrier,
    broadcast_buffers,
    make_train_loader,
    unwrap_model,
    wrap_model,
)
from antispoof.training.early_stopping import EarlyStopping
from antispoof.training.optim import make_optimizer, optimizer_step
from models import load_weights


@dataclass
class Validation:
    """One validation: the selection value, a log-line fragment, and numbers for the history."""

    value: float
    line: str
    numbers: dict


class TrainStep:
    """One optimisation step: forward under the run's precision, weighted loss on float32 logits, backward,
    optional clipping, optimiser and scheduler step. The Trainer and ``bench/train_gpu.py`` both use it."""

    def __init__(
        self,
        model: nn.Module,
        criterion: nn.Module,
        optimizer: torch.optim.Optimizer,
        device: torch.device,
        precision: str = "fp32",
        scheduler=None,
        scaler=None,
        freq_aug: bool = False,
        max_grad_norm: float | None = None,
    ):
        self.model, self.criterion, self.optimizer, self.scheduler = model, criterion, optimizer, scheduler
        self.device, self.precision, self.freq_aug, self.max_grad_norm = (
            device,
            precision,
            freq_aug,
            max_grad_norm,
        )
        self.scaler = scaler or make_grad_scaler(precision, device)

    def __call__(self, waves: torch.Tensor, labels: torch.Tensor) -> float:
        waves = waves.to(self.device, non_blocking=True)
        labels = labels.to(self.device, non_blocking=True)
        with autocast_context(self.device, self.precision):
            _, logits = self.model(waves, Freq_aug=True) if self.freq_aug else self.model(waves)
        loss = self.criterion(logits.float(), labels)
        optimizer_step(loss, self.optimizer, self.scaler, self.max_grad_norm)
        if self.scheduler is not None:
            self.scheduler.step()
        return loss.item()


class Trainer:
    """Trains ``model`` on ``train_set`` for ``config.num_epochs`` epochs; see the module docstring.

    ``run`` is the experiment (:class:`antispoof.experiment.Run`): its folder, device, precision, process rank,
    and whether to resume. ``mode`` is "min" (EER) or "max" (accuracy) for the validation value.
    """

    def __init__(
        self,
        model: nn.Module,
        train_set,
        criterion: nn.Module,
        validate: Callable[[nn.Module, int], Validation],
        config: ExperimentConfig,
        run,
        mode: str = "min",
    ):
        self.model, self.train_set, self.criterion, self.validate = model, train_set, criterion, validate
        self.config, self.run, self.info = config, run, run.info
        self.checkpoints = CheckpointManager(run.out_dir / "weights", run.is_main)
        self.steps_per_epoch = len(train_set) // (config.batch_size * self.info.world_size)
        if self.steps_per_epoch == 0:
            raise SystemExit(
                f"error: {len(train_set)} training items are fewer than one batch of {config.batch_size} per process"
            )
        self.optimizer, self.scheduler = make_optimizer(
            model, config.optim_config, self.steps_per_epoch * config.num_epochs
        )
        self.scaler = make_grad_scaler(run.precision, run.device)
        self.stopper = EarlyStopping(config.early_stopping_patience, mode=mode, ties=config.selection_ties)
        self.averager = Averager(config.averaging, mode)
        self.history: list[dict] = []
        self.start_epoch = 0
        # what the training step calls (DDP / compiled); ``model`` stays the plain module
        self.trained = model
        self.train_step = TrainStep(
            model,
            criterion,
            self.optimizer,
            run.device,
            run.precision,
            self.scheduler,
            self.scaler,
            freq_aug=config.freq_aug,
            max_grad_norm=config.max_grad_norm,
        )

    # ------------------------------------------------------------------------------------------------
    def state_dict(self, epoch: int) -> dict:
        """Everything a resumed run needs to repeat this one exactly from the end of ``epoch``."""
        state = {
            "model": unwrap_model(self.model).state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "early_stopping": self.stopper.state_dict(),
            "epoch": epoch,
            "history": json.dumps(self.history),
            "rng": all_gather_objects(capture_rng_state(), self.info),
            "config": self.run.resume_fields,
        }
        state.update(self.averager.state_dict())
        return state

    def load_state_dict(self, state: dict, what: str) -> None:
        load_weights(self.model, state["model"], what=what)
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        self.stopper.load_state_dict(state["early_stopping"])
        self.history = json.loads(state["history"])
        self.averager.load_state_dict(state, self.model)
        restore_rng_state(state["rng"][min(self.info.rank, len(state["rng"]) - 1)])
        self.start_epoch = state["epoch"] + 1

    def resume(self) -> None:
        found = self.checkpoints.latest()
        if found is None:
            raise SystemExit(f"error: --resume: no checkpoint in {self.checkpoints.folder}")
        path, state = found
        self.run.check_resume_compatible(state.get("config"), path)
        self.load_state_dict(state, str(path))
        self.run.log(f"resumed from {path}: continuing at epoch {self.start_epoch + 1}")

    # ------------------------------------------------------------------------------------------------
    def prepare(self) -> None:
        """Resume if asked; wrap the model for DDP, channels-last and ``torch.compile`` as configured."""
        if self.run.resume:
            self.resume()
        if self.config.channels_last:  # NHWC convolutions (tensor cores) once the weights are channels-last
            self.model.to(memory_format=torch.channels_last)
        self.trained = wrap_model(self.model, self.info, self.config.find_unused_parameters)
        if self.config.compile:
            self.trained = torch.compile(self.trained)
        self.train_step.model = self.trained

    def step(self, waves: torch.Tensor, labels: torch.Tensor) -> float:
        """One optimisation step on a batch; returns its loss."""
        return self.train_step(waves, labels)

    def train_epoch(self, epoch: int) -> float:
        """One pass over this process's share of the training set; the mean loss over all processes."""
        self.train_set.set_epoch(epoch)
        loader = make_train_loader(
            self.train_set,
            self.config.batch_size,
            self.config.seed,
            epoch,
            self.info,
            num_workers=self.config.num_workers,
        )
        self.trained.train()
        total, count = 0.0, 0
        desc = f"epoch {epoch + 1}/{self.config.num_epochs}"
        progress = tqdm(loader, desc=desc, unit="batch", leave=False, disable=not self.run.is_main)
        for waves, labels in progress:
            total += self.step(waves, labels) * len(labels)
            count += len(labels)
            progress.set_postfix(loss=f"{total / count:.4f}")
        loss = all_reduce_mean(total / max(count, 1), self.info)
        broadcast_buffers(
            self.model, self.info
        )  # every process scores and saves rank 0's BatchNorm statistics
        return loss

    def end_epoch(self, epoch: int, loss: float, result: Validation, writer) -> bool:
        """Record, select, average and checkpoint one finished epoch; True when it is a new best."""
        improved = self.stopper.update(result.value)
        self.averager.after_epoch(self.model, epoch, self.config.num_epochs, improved, result.value)
        self.history.append({"epoch": epoch, "loss": loss, **result.numbers})
        state = self.state_dict(epoch)
        keep = [self.checkpoints.weights_path(e) for e in self.averager.epochs_to_keep(self.history)]
        self.checkpoints.save_epoch(epoch, state["model"], state, improved, keep)
        if self.run.is_main:
            self.run.write_history(self.history)
            writer.log(epoch, {"loss": loss, **result.numbers})
        return improved

    def fit(self) -> dict:
        """Train, validate every epoch, keep the best; returns the record of the selected model."""
        self.prepare()
        writer = self.run.scalar_writer()
        for epoch in range(self.start_epoch, self.config.num_epochs):
            started = time.time()
            loss = self.train_epoch(epoch)
            result = self.validate(self.model, epoch)
            improved = self.end_epoch(epoch, loss, result, writer)
            line = f"epoch {epoch + 1:3d}  loss {loss:.5f}  {result.line}  ({time.time() - started:.0f} s)"
            self.run.log(line + ("  (best so far)" if improved else ""))
            barrier(self.info)
            if self.stopper.should_stop:
                self.run.log(f"early stop: no improvement for {self.stopper.patience} epochs")
                break
        writer.close()
        return self.finish()

    def bn_loader(self):
        """The training data for re-estimating an average's BatchNorm statistics (all of it, one process)."""
        from antispoof.training.distributed import DistInfo

        return make_train_loader(
            self.train_set, self.config.batch_size, self.config.seed, 0, DistInfo(device=self.run.device)
        )

    def finish(self) -> dict:
        """Load the selected weights, then the averaged ones where the config asks and dev agrees."""
        best = self.stopper.best_step
        record = {
            "selection": self.stopper.best,
            "best_epoch": self.history[best]["epoch"] if best >= 0 else None,
            "history": self.history,
        }
        load_weights(unwrap_model(self.model), self.checkpoints.best_path)
        if self.averager.enabled:
            record["averaging"] = self.averager.apply(self)
        return record
