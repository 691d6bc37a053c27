"""Checkpoint averaging: stochastic weight averaging over the last epochs, or the mean of the top-k epochs by
validation value (clovaai/aasist ends training with SWA over its best-dev checkpoints)."""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel

from antispoof.runtime import autocast_context
from antispoof.training.distributed import unwrap_model
from models import load_state_dict, load_weights, strip_prefix


def average_state_dicts(states: Sequence[Mapping[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """The element-wise mean of floating-point tensors; integer and bool tensors (BatchNorm's
    ``num_batches_tracked``) come from the last state. Every state must have the same keys and shapes."""
    if not states:
        raise ValueError("average_state_dicts: no state dicts to average")
    reference = states[-1]
    for i, state in enumerate(states):
        if set(state) != set(reference):
            diff = sorted(set(state) ^ set(reference))
            raise ValueError(f"state dict {i} has other keys than the last one: {', '.join(diff[:8])}")
        for key, value in state.items():
            if value.shape != reference[key].shape:
                raise ValueError(
                    f"state dict {i}: {key} has shape {tuple(value.shape)}, the last one {tuple(reference[key].shape)}"
                )
    averaged = {}
    for key, last in reference.items():
        if last.is_floating_point() or last.is_complex():
            total = sum(
                s[key].detach().to("cpu", torch.float64 if last.is_floating_point() else torch.complex128)
                for s in states
            )
            averaged[key] = (total / len(states)).to(last.dtype)
        else:
            averaged[key] = last.detach().cpu().clone()
    return averaged


def select_top_k(candidates: Iterable[tuple[str | os.PathLike, float]], k: int) -> list[tuple[Path, float]]:
    """The ``k`` entries with the lowest dev EER (ties: the earlier entry); NaN EERs are never chosen."""
    if k < 1:
        raise ValueError(f"top-k averaging needs k >= 1, got {k}")
    ranked = [(Path(p), float(e)) for p, e in candidates if not math.isnan(float(e))]
    order = sorted(range(len(ranked)), key=lambda i: (ranked[i][1], i))
    return [ranked[i] for i in order[:k]]


def top_k_average(
    checkpoint_paths_with_dev_eer: Iterable[tuple[str | os.PathLike, float]], k: int
) -> tuple[dict[str, torch.Tensor], list[tuple[Path, float]]]:
    """Average the weights of the ``k`` checkpoints with the lowest dev EER.

    Returns ``(state_dict, chosen)`` where ``chosen`` lists (path, dev EER) best first. Files are read with
    ``models.load_state_dict`` (``weights_only=True``; resume checkpoints' ``model`` entry is used).
    """
    chosen = select_top_k(checkpoint_paths_with_dev_eer, k)
    if not chosen:
        raise ValueError("top-k averaging: no checkpoint with a finite dev EER")
    if len(chosen) < k:
        warnings.warn(f"top-k averaging: only {len(chosen)} checkpoint(s) for k={k}", stacklevel=2)
    states = [strip_prefix(load_state_dict(path), "module.") for path, _ in chosen]
    return average_state_dicts(states), chosen


def make_swa_model(model: nn.Module) -> AveragedModel:
    """An equal-weight running average of ``model``'s parameters (``torch.optim.swa_utils.AveragedModel``).

    Call ``swa_model.update_parameters(model)`` after each epoch to include; then ``update_bn_waveforms`` and
    ``swa_state_dict``. Buffers follow the latest model until ``update_bn_waveforms`` recomputes BatchNorm's.
    """
    plain = model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model
    return AveragedModel(plain)


def _trainable_batchnorms(model: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    """BatchNorm layers that ``model.train()`` leaves in training mode (frozen parts stay in eval mode)."""
    return [
        m
        for m in model.modules()
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats and m.training
    ]


@torch.no_grad()
def update_bn_waveforms(
    loader: Iterable,
    model: nn.Module,
    device: torch.device | str,
    precision: str = "fp32",
    max_batches: int | None = None,
) -> int:
    """Recompute BatchNorm running statistics over ``loader`` (like ``torch.optim.swa_utils.update_bn``).

    Batches may be ``(waveform, label)`` tuples: only the waveforms reach the model (``update_bn`` would pass
    the whole tuple). Only BatchNorm layers left in training mode by ``model.train()`` are reset: frozen parts
    of fusion models keep their statistics. Returns the number of batches used.
    """
    was_training = model.training
    model.train()
    layers = _trainable_batchnorms(model)
    if not layers:
        model.train(was_training)
        return 0
    momenta = {}
    for layer in layers:
        layer.reset_running_stats()
        momenta[layer] = layer.momentum
        layer.momentum = None  # cumulative average over the batches seen
    used = 0
    try:
        for batch in loader:
            if max_batches is not None and used >= max_batches:
                break
            waves = batch[0] if isinstance(batch, (list, tuple)) else batch
            with autocast_context(device, precision):
                model(waves.to(device, non_blocking=True))
            used += 1
    finally:
        for layer in layers:
            layer.momentum = momenta[layer]
        model.train(was_training)
    if used == 0:
        raise ValueError("update_bn_waveforms: the loader yielded no batches")
    return used


def swa_state_dict(swa_model: AveragedModel | Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """An ``AveragedModel``'s weights as the plain model's state dict (no ``module.``, no ``n_averaged``), so
    that ``models.load_weights(model, state)`` loads it strictly."""
    state = swa_model.state_dict() if isinstance(swa_model, nn.Module) else dict(swa_model)
    state = {k: v for k, v in state.items() if k != "n_averaged"}
    return {k: v.detach().cpu().clone() for k, v in strip_prefix(state, "module.").items()}


class Averager:
    """The averaging a config's ``averaging`` section asks for, kept up to date as epochs finish.

    - ``swa``: a running average of the last ``swa_epochs`` epochs' weights;
    - ``improved``: a running average of the epochs whose validation value was a new best (ties included when
      the selection prefers the later epoch), optionally only once it is at or below ``start_below``; this is
      clovaai/aasist's recipe (``best_dev_eer`` starts at 1 %, ``optimizer_swa.update_swa()`` on each new best);
    - ``top_k``: the mean of the ``top_k`` epochs with the best validation values, built after training.

    ``use``: "if_better" keeps the average only when its validation value beats the best single checkpoint;
    "always" uses it whatever dev says (as clovaai/aasist does). BatchNorm statistics of a running average are
    re-estimated on the training set.
    """

    def __init__(self, settings, mode: str = "min"):
        self.settings, self.mode = settings, mode
        self.swa_model: AveragedModel | None = None

    @property
    def enabled(self) -> bool:
        return self.settings is not None

    @property
    def method(self) -> str | None:
        return self.settings.method if self.settings else None

    def _joins(self, epoch: int, num_epochs: int, improved: bool, value: float) -> bool:
        if self.method == "swa":
            return epoch >= num_epochs - self.settings.swa_epochs
        if self.method == "improved":
            limit = self.settings.start_below
            within = limit is None or (value <= limit if self.mode == "min" else value >= limit)
            return improved and within
        return False

    def after_epoch(
        self, model: nn.Module, epoch: int, num_epochs: int, improved: bool, value: float
    ) -> None:
        if self._joins(epoch, num_epochs, improved, value):
            self.swa_model = self.swa_model or make_swa_model(model)
            self.swa_model.update_parameters(unwrap_model(model))

    def epochs_to_keep(self, history: list[dict]) -> list[int]:
        """Epoch weight files top-k averaging will need (none for the running averages)."""
        if self.method != "top_k":
            return []
        ranked = sorted(history, key=lambda h: h["selection"], reverse=self.mode == "max")
        return [h["epoch"] for h in ranked[: self.settings.top_k]]

    def state_dict(self) -> dict:
        return {"swa": self.swa_model.state_dict()} if self.swa_model is not None else {}

    def load_state_dict(self, state: Mapping, model: nn.Module) -> None:
        if "swa" in state:
            self.swa_model = make_swa_model(model)
            self.swa_model.load_state_dict(state["swa"])

    def averaged_state(self, trainer) -> tuple[dict | None, str]:
        """The averaged weights and a description, or (None, reason) when there is nothing to average."""
        if self.method == "top_k":
            candidates = [
                (trainer.checkpoints.weights_path(h["epoch"]), h["selection"]) for h in trainer.history
            ]
            state, chosen = top_k_average(candidates, self.settings.top_k)
            return state, "epochs " + ", ".join(p.stem.split("epoch")[-1] for p, _ in chosen)
        if self.swa_model is None:
            return None, "no epoch qualified for the average (early stop, or never below start_below?)"
        loader = trainer.bn_loader()
        update_bn_waveforms(loader, self.swa_model, trainer.run.device, trainer.run.precision)
        n = int(self.swa_model.n_averaged.item())
        return swa_state_dict(self.swa_model), f"{n} epoch(s) averaged"

    def apply(self, trainer) -> dict:
        """Load the average into ``trainer.model`` if the settings (and dev) say so; returns the record."""
        model, run = unwrap_model(trainer.model), trainer.run
        state, detail = self.averaged_state(trainer)
        if state is None:
            run.log(f"{self.method} average: {detail}: keeping the best checkpoint")
            return {"method": self.method, "detail": detail, "used": False}
        best_state = {k: v.clone() for k, v in model.state_dict().items()}
        load_weights(model, state, what=f"{self.method} average")
        result = trainer.validate(trainer.model, -1)
        best = trainer.stopper.best
        better = result.value <= best if self.mode == "min" else result.value >= best
        use = self.settings.use == "always" or better
        verdict = "using the average" if use else "keeping the best single checkpoint"
        run.log(
            f"{self.method} average ({detail}): {result.line}; best single checkpoint {best:.4f}: {verdict}"
        )
        if use:
            trainer.checkpoints.save_averaged(model.state_dict())
        else:
            load_weights(model, best_state, what="best checkpoint")
        return {"method": self.method, "detail": detail, "validation": result.numbers, "used": use}
