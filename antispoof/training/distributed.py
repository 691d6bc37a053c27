"""PyTorch DDP plumbing for ``torchrun``: process group set-up, the training sampler, sharded and gathered scoring.

    torchrun --nproc_per_node N main.py --config ...     # N processes; NCCL on GPUs, gloo on CPUs
    python main.py --config ...                          # one process: every helper here is a no-op

``init_distributed`` reads the variables torchrun sets (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT).
Without WORLD_SIZE (or with WORLD_SIZE=1) nothing is initialised and the run is the plain single-process one.

Training: ``make_train_loader`` gives each rank a disjoint, per-epoch reshuffled part of the training set whose
order depends only on (seed, epoch, world size); with one process it is exactly the seeded shuffle of a plain
``DataLoader(shuffle=True, generator=...)``.
Scoring: each rank scores ``sharded_indices(n, rank, world_size)`` (contiguous, no padding duplicates) and
``gather_scores`` puts the pieces back into protocol order, so score files are complete and ordered.
Score with the unwrapped model (``unwrap_model``) after ``broadcast_buffers``: DDP's forward synchronises buffers
between ranks and would hang when ranks run different numbers of batches, and after training each rank's
BatchNorm statistics differ until rank 0's are broadcast.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, Dataset, DistributedSampler, RandomSampler, Sampler

from antispoof.runtime import resolve_device


@dataclass(frozen=True)
class DistInfo:
    """Where this process stands: ``is_main`` (rank 0) logs, writes score files and saves checkpoints."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value in (None, ""):
        return default
    try:
        return int(value)
    except ValueError:
        raise RuntimeError(
            f"environment variable {name}={value!r} is not an integer (set by torchrun)"
        ) from None


def init_distributed(device: str | torch.device | None = None, backend: str | None = None) -> DistInfo:
    """Join the process group torchrun describes; a no-op returning a single-process ``DistInfo`` otherwise.

    ``device``: None picks CUDA when present (each rank takes ``cuda:LOCAL_RANK``), else the CPU; "cpu" forces
    the CPU and gloo even on a GPU machine. ``backend`` overrides the choice (nccl on CUDA, gloo on the CPU).
    """
    world_size = _env_int("WORLD_SIZE", 1)
    if world_size <= 1:
        return DistInfo(device=resolve_device(device))
    if not dist.is_available():
        raise RuntimeError("WORLD_SIZE > 1 but this PyTorch build has no torch.distributed support")
    rank = _env_int("RANK", 0)
    local_rank = _env_int("LOCAL_RANK", 0)
    wants_cuda = torch.device(device).type == "cuda" if device is not None else torch.cuda.is_available()
    if wants_cuda:
        if not torch.cuda.is_available():
            raise RuntimeError(f"device {device} asked for, but CUDA is not available here")
        if local_rank >= torch.cuda.device_count():
            raise RuntimeError(
                f"LOCAL_RANK {local_rank} but only {torch.cuda.device_count()} GPU(s) are visible: lower "
                "--nproc_per_node"
            )
        resolved = torch.device("cuda", local_rank)
        torch.cuda.set_device(resolved)  # NCCL collectives and all_gather_object use the current device
    else:
        resolved = resolve_device(device)
    backend = backend or ("nccl" if resolved.type == "cuda" else "gloo")
    if not dist.is_initialized():
        kwargs = {"device_id": resolved} if backend == "nccl" else {}
        dist.init_process_group(backend=backend, rank=rank, world_size=world_size, **kwargs)
    return DistInfo(rank=rank, world_size=world_size, local_rank=local_rank, device=resolved)


def cleanup() -> None:
    """Leave the process group (safe to call when none was joined)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def barrier(info: DistInfo) -> None:
    if info.distributed:
        dist.barrier()


def wrap_model(model: nn.Module, info: DistInfo, find_unused_parameters: bool = True) -> nn.Module:
    """``DistributedDataParallel`` around ``model`` (already on ``info.device``) when distributed; else ``model``.

    ``find_unused_parameters`` is on by default: the official AASIST's residual blocks compute ``bn1`` and then
    feed the block's input, not its output, to ``conv1``, so ``bn1``'s affine parameters get no gradient (kept
    for parity with the published weights), which plain DDP refuses. A model known to
    use every trainable parameter can switch it off (config ``find_unused_parameters: false``) to save a pass.
    """
    if not info.distributed:
        return model
    device_ids = [info.device.index] if info.device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(
        model, device_ids=device_ids, find_unused_parameters=find_unused_parameters
    )


def unwrap_model(model: nn.Module) -> nn.Module:
    """The plain model inside DDP (or an ``AveragedModel``'s ``module``): for scoring and ``state_dict``."""
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


def broadcast_buffers(model: nn.Module, info: DistInfo, src: int = 0) -> None:
    """Give every rank rank ``src``'s buffers (BatchNorm running statistics).

    DDP keeps parameters identical, but it copies rank 0's buffers only at the start of each forward: after the
    last training step every rank's BatchNorm statistics also hold its own last batch. Call this after each
    training epoch, before sharded scoring, so every rank scores with the weights rank 0 saves.
    """
    if not info.distributed:
        return
    for buffer in unwrap_model(model).buffers():
        dist.broadcast(buffer.data, src=src)


# ---------------------------------------------------------------------------------------------------------------
# training data
# ---------------------------------------------------------------------------------------------------------------
def train_generator(seed: int, epoch: int) -> torch.Generator:
    """The generator of one epoch's shuffle (and of the DataLoader's worker seeds): only (seed, epoch) matter."""
    return torch.Generator().manual_seed(seed * 1000 + epoch)


def train_sampler(
    dataset: Dataset, seed: int, epoch: int, info: DistInfo, generator: torch.Generator | None = None
) -> Sampler:
    """This rank's shuffled indices for ``epoch``.

    One process: a ``RandomSampler`` drawing from ``generator`` (default ``train_generator(seed, epoch)``); it
    reproduces a plain ``DataLoader(shuffle=True, generator=g)`` only when the DataLoader draws from the same
    ``g`` (``make_train_loader`` does that). Several: a ``DistributedSampler`` with ``set_epoch(epoch)``,
    dropping the tail so that every rank runs the same number of steps (DDP needs that) and no utterance is seen
    twice in an epoch.
    """
    if not info.distributed:
        return RandomSampler(dataset, generator=generator or train_generator(seed, epoch))
    sampler = DistributedSampler(
        dataset, num_replicas=info.world_size, rank=info.rank, shuffle=True, seed=seed, drop_last=True
    )
    sampler.set_epoch(epoch)
    return sampler


def make_train_loader(
    dataset: Dataset,
    batch_size: int,
    seed: int,
    epoch: int,
    info: DistInfo,
    num_workers: int = 0,
    prefetch_factor: int | None = None,
) -> DataLoader:
    """The training loader of one epoch for this rank: ``batch_size`` is per process (global = N x batch_size).

    With one process this yields the same batches as ``DataLoader(dataset, batch_size, shuffle=True,
    drop_last=True, generator=torch.Generator().manual_seed(seed * 1000 + epoch))``. Memory is pinned on CUDA.
    The loader is built per epoch (so the dataset's ``set_epoch`` reaches its workers), hence no persistent
    workers.
    """
    generator = train_generator(seed, epoch)
    # one process: the same generator object for the sampler and the worker seeds, i.e. shuffle=True's draws
    sampler = train_sampler(dataset, seed, epoch, info, generator=generator)
    extra = {"prefetch_factor": prefetch_factor} if num_workers > 0 and prefetch_factor else {}
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        drop_last=True,
        generator=generator,
        num_workers=num_workers,
        pin_memory=info.device.type == "cuda",
        **extra,
    )


# ---------------------------------------------------------------------------------------------------------------
# evaluation
# ---------------------------------------------------------------------------------------------------------------
def sharded_indices(n: int, rank: int, world_size: int) -> np.ndarray:
    """This rank's contiguous slice of ``range(n)``; the slices cover it exactly once (sizes differ by <= 1)."""
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} is not in a world of size {world_size}")
    base, extra = divmod(n, world_size)
    start = rank * base + min(rank, extra)
    stop = start + base + (1 if rank < extra else 0)
    return np.arange(start, stop, dtype=np.int64)


def all_gather_objects(obj, info: DistInfo) -> list:
    """Every rank's ``obj`` (picklable), in rank order; ``[obj]`` in one process."""
    if not info.distributed:
        return [obj]
    gathered: list = [None] * info.world_size
    dist.all_gather_object(gathered, obj)
    return gathered


def gather_scores(local_indices: Sequence[int], local_logits, n: int, info: DistInfo) -> np.ndarray:
    """Put every rank's ``(len(local_indices), C)`` rows back into one ``(n, C)`` float32 array, on every rank.

    Row ``local_indices[i]`` of the result is ``local_logits[i]``. An index covered twice or not at all is an
    error (a score file must be complete and hold each trial once).
    """
    local_indices = np.asarray(local_indices, dtype=np.int64)
    local_logits = np.asarray(
        local_logits.detach().float().cpu().numpy()
        if isinstance(local_logits, torch.Tensor)
        else local_logits,
        dtype=np.float32,
    )
    if local_logits.ndim != 2 or len(local_logits) != len(local_indices):
        raise ValueError(
            f"rank {info.rank}: {len(local_indices)} indices but logits of shape {local_logits.shape}"
        )
    pieces = all_gather_objects((local_indices, local_logits), info)
    columns = {p[1].shape[1] for p in pieces if len(p[0])}
    if len(columns) > 1:
        raise ValueError(f"ranks returned logits with different numbers of columns: {sorted(columns)}")
    out = np.full((n, columns.pop() if columns else local_logits.shape[1]), np.nan, dtype=np.float32)
    seen = np.zeros(n, dtype=np.int64)
    for indices, logits in pieces:
        if len(indices) and (indices.min() < 0 or indices.max() >= n):
            raise ValueError(f"gathered index out of range [0, {n})")
        out[indices] = logits
        np.add.at(seen, indices, 1)
    if (seen != 1).any():
        missing, doubled = np.flatnonzero(seen == 0), np.flatnonzero(seen > 1)
        raise ValueError(
            f"gathered scores do not cover the {n} trials once each: {len(missing)} missing "
            f"(first {missing[:5].tolist()}), {len(doubled)} repeated (first {doubled[:5].tolist()})"
        )
    return out


def all_reduce_mean(value: float, info: DistInfo) -> float:
    """The mean of a per-rank number (e.g. the epoch loss) over the ranks, for logging."""
    if not info.distributed:
        return float(value)
    device = info.device if dist.get_backend() == "nccl" else torch.device("cpu")
    tensor = torch.tensor([float(value)], dtype=torch.float64, device=device)
    dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return float(tensor.item()) / info.world_size
