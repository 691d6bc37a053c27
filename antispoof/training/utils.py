"""Training building blocks: mixed precision, checkpoint averaging (SWA, top-k), robust checkpoints, RNG state,
early stopping. ``main.py`` wires them into its loop; nothing here reads a config or builds a model.

Mixed precision (``precision`` in the config: "fp32" default, "bf16", "fp16")::

    scaler = make_grad_scaler(precision, device)           # a disabled pass-through unless fp16 on CUDA
    with autocast_context(device, precision):
        _, logits = model(waves)
    loss = criterion(logits.float(), labels)
    optimizer_step(loss, optimizer, scaler)

Scores leave the model in float32: the scoring loop calls ``logits.float()``.
"""

from __future__ import annotations

import math
import os
import random
import warnings
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel

from antispoof.errors import first_line
from antispoof.fileio import atomic_open
from antispoof.runtime import autocast_context
from models import WeightLoadError, load_state_dict, safe_load, strip_prefix


# ---------------------------------------------------------------------------------------------------------------
# the optimiser step (mixed precision aware)
# ---------------------------------------------------------------------------------------------------------------
def optimizer_step(
    loss: torch.Tensor,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    max_grad_norm: float | None = None,
) -> None:
    """Backward, optional gradient clipping (on unscaled gradients), optimiser step and scaler update."""
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    if max_grad_norm:
        scaler.unscale_(optimizer)
        params = [p for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
        torch.nn.utils.clip_grad_norm_(params, max_grad_norm)
    scaler.step(optimizer)
    scaler.update()


# ---------------------------------------------------------------------------------------------------------------
# checkpoint averaging
# ---------------------------------------------------------------------------------------------------------------
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


# ---------------------------------------------------------------------------------------------------------------
# robust checkpoints
# ---------------------------------------------------------------------------------------------------------------
class CheckpointError(RuntimeError):
    """No usable checkpoint although some exist."""


def _fsync_folder(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # not possible on every platform; the rename itself is still atomic
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def save_checkpoint_atomically(obj, path: str | os.PathLike) -> Path:
    """``torch.save`` to a temporary file in the same folder, fsync, then ``os.replace``: a reader (or a run
    killed at any moment) sees either the old complete file or the new complete file, never a partial one."""
    path = Path(path)
    with atomic_open(path, "wb") as f:
        torch.save(obj, f)
    _fsync_folder(path.parent)
    return path


def load_latest_good_checkpoint(
    paths_newest_first: Iterable[str | os.PathLike], map_location: str | torch.device = "cpu"
) -> tuple[Path, object] | None:
    """The first of ``paths_newest_first`` that loads with ``models.safe_load`` (``torch.load(weights_only=True)``),
    as (path, object).

    A truncated or corrupt file is skipped with a warning naming it, and the previous one is tried. Missing
    files are skipped silently. None when no file exists; ``CheckpointError`` when files exist but none loads.
    """
    bad: list[str] = []
    for path in map(Path, paths_newest_first):
        if not path.is_file():
            continue
        try:
            obj = safe_load(path, map_location, what="checkpoint")
        except WeightLoadError as exc:  # truncated zip, bad pickle, disallowed globals ...
            reason = first_line(exc.__cause__ or exc)
            warnings.warn(f"{path}: unreadable checkpoint ({reason}); trying the previous one", stacklevel=2)
            bad.append(f"{path} ({reason})")
            continue
        return path, obj
    if bad:
        raise CheckpointError("no usable checkpoint: " + "; ".join(bad))
    return None


def epoch_checkpoint_path(folder: str | os.PathLike, epoch: int, stem: str = "state") -> Path:
    """``folder/<stem>_epochNNN.pth``: one file per completed epoch, so an older one is there to fall back on."""
    return Path(folder) / f"{stem}_epoch{epoch:03d}.pth"


def epoch_checkpoints_newest_first(folder: str | os.PathLike, stem: str = "state") -> list[Path]:
    """Every ``<stem>_epochNNN.pth`` in ``folder``, highest epoch first."""
    found = []
    for path in Path(folder).glob(f"{stem}_epoch*.pth"):
        number = path.stem[len(stem) + len("_epoch") :]
        if number.isdigit():
            found.append((int(number), path))
    return [p for _, p in sorted(found, reverse=True)]


def prune_epoch_checkpoints(
    folder: str | os.PathLike, keep: int, stem: str = "state", protect: Iterable[str | os.PathLike] = ()
) -> list[Path]:
    """Delete all but the ``keep`` newest ``<stem>_epochNNN.pth`` (and any in ``protect``); returns the removed."""
    protected = {Path(p).resolve() for p in protect}
    removed = []
    for path in epoch_checkpoints_newest_first(folder, stem)[max(keep, 0) :]:
        if path.resolve() not in protected:
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


# ---------------------------------------------------------------------------------------------------------------
# random number generator state (resume)
# ---------------------------------------------------------------------------------------------------------------
def capture_rng_state() -> dict:
    """Python, NumPy (global), torch CPU and CUDA generator states, in a form ``weights_only=True`` loads."""
    py_version, py_state, py_gauss = random.getstate()
    np_name, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state()
    state = {
        "python": {
            "version": py_version,
            "state": torch.tensor(py_state, dtype=torch.int64),
            "gauss": py_gauss,
        },
        "numpy": {
            "name": np_name,
            "keys": torch.from_numpy(np_keys.astype(np.int64)),
            "pos": int(np_pos),
            "has_gauss": int(np_has_gauss),
            "cached_gaussian": float(np_gauss),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: Mapping) -> None:
    """Undo ``capture_rng_state``; CUDA states are restored when present and the device count matches."""
    py = state["python"]
    random.setstate((py["version"], tuple(int(v) for v in py["state"].tolist()), py["gauss"]))
    npy = state["numpy"]
    np.random.set_state(
        (
            npy["name"],
            npy["keys"].numpy().astype(np.uint32),
            npy["pos"],
            npy["has_gauss"],
            npy["cached_gaussian"],
        )
    )
    torch.set_rng_state(state["torch"])
    cuda = state.get("cuda")
    if cuda is not None and torch.cuda.is_available():
        if len(cuda) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda)
        else:
            warnings.warn(
                f"checkpoint holds {len(cuda)} CUDA generator states, this machine has {torch.cuda.device_count()} "
                "GPUs: CUDA random streams are not restored",
                stacklevel=2,
            )


# ---------------------------------------------------------------------------------------------------------------
# early stopping
# ---------------------------------------------------------------------------------------------------------------
class EarlyStopping:
    """Stop when the monitored value (dev EER: ``mode="min"``) has not improved by more than ``min_delta`` for
    ``patience`` consecutive epochs. ``patience=None`` never stops. NaN never counts as an improvement.

        stopper = EarlyStopping(config.get("early_stopping_patience"))
        ...
        improved = stopper.update(dev_eer)
        if stopper.should_stop: break
    """

    def __init__(self, patience: int | None, mode: str = "min", min_delta: float = 0.0):
        if mode not in ("min", "max"):
            raise ValueError(f"EarlyStopping mode must be 'min' or 'max', got {mode!r}")
        if patience is not None and int(patience) < 1:
            raise ValueError(f"early-stopping patience must be >= 1 (or null to disable), got {patience}")
        self.patience = None if patience is None else int(patience)
        self.mode = mode
        self.min_delta = float(min_delta)
        self.best = math.inf if mode == "min" else -math.inf
        self.best_step = -1
        self.bad_steps = 0
        self.steps = 0

    def is_improvement(self, value: float) -> bool:
        value = float(value)
        if math.isnan(value):
            return False
        if self.mode == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta

    def update(self, value: float) -> bool:
        """Record one epoch's value; True when it is a new best."""
        improved = self.is_improvement(value)
        if improved:
            self.best, self.best_step, self.bad_steps = float(value), self.steps, 0
        else:
            self.bad_steps += 1
        self.steps += 1
        return improved

    @property
    def should_stop(self) -> bool:
        return self.patience is not None and self.bad_steps >= self.patience

    def state_dict(self) -> dict:
        return {
            "mode": self.mode,
            "best": self.best,
            "best_step": self.best_step,
            "bad_steps": self.bad_steps,
            "steps": self.steps,
        }

    def load_state_dict(self, state: Mapping) -> None:
        """Restore the counters (patience and min_delta stay those of the current config)."""
        if state["mode"] != self.mode:
            raise ValueError(f"early-stopping state is for mode {state['mode']!r}, this one is {self.mode!r}")
        self.best = float(state["best"])
        self.best_step = int(state["best_step"])
        self.bad_steps = int(state["bad_steps"])
        self.steps = int(state["steps"])
