"""Where and how a run computes: the device, the random seeds, and mixed precision.

Mixed precision (``precision`` in the config: "fp32" default, "bf16", "fp16")::

    scaler = make_grad_scaler(precision, device)           # a disabled pass-through unless fp16 on CUDA
    with autocast_context(device, precision):
        _, logits = model(waves)
    loss = criterion(logits.float(), labels)

Scores leave the model in float32: the scoring loop calls ``logits.float()``.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import platform
import random
import sys
import warnings

import numpy as np
import torch


def resolve_device(requested: str | torch.device | None = None) -> torch.device:
    """``requested`` if given (an error if it names CUDA and there is none); else CUDA when present, else the CPU
    with a one-line note on stderr (training on a CPU is slow, and a user who expected a GPU should hear of it)."""
    if requested is not None:
        device = torch.device(requested)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise RuntimeError(f"device {requested} asked for, but CUDA is not available here")
        return device
    if torch.cuda.is_available():
        return torch.device("cuda")
    _note_cpu_fallback()
    return torch.device("cpu")


_cpu_fallback_noted = False


def _note_cpu_fallback() -> None:
    """One plain line on stderr, once per process: a user who expected a GPU hears of it, without the
    ``UserWarning`` source-line noise of ``warnings.warn``, and a DataLoader rebuild or a second call stays quiet."""
    global _cpu_fallback_noted
    if not _cpu_fallback_noted:
        _cpu_fallback_noted = True
        print("note: CUDA is not available: running on the CPU", file=sys.stderr, flush=True)


# glibc's mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
_M_ARENA_MAX = -8
KEEP_HEAP_ENV = "AASIST_SER_KEEP_HEAP"
_heap_kept = False


def keep_freed_memory() -> bool:
    """Let glibc's malloc keep freed memory for reuse instead of handing it back to the kernel; True if applied.

    By default glibc serves every allocation over 32 MiB (and, until its threshold adapts, over 128 KiB) with a
    fresh ``mmap`` and unmaps it on free, so each batch's large activations (AASIST: ~170 MB for batch 8) arrive
    as new pages that the kernel must fault in and zero on first touch. In a virtual machine that costs more than
    the arithmetic: on the 2-core development VM, scoring AASIST spent ~20 % of its time in page faults, and the
    reference implementation ~70 % (bench/aasist_cpu.py prints both). Served from the heap and never trimmed, the
    pages are faulted in once per process. The price: the process keeps its peak heap until it exits (what a
    scoring or training run holds anyway). Called by the scripts (``main.py``, ``inference.py``); the library
    never changes it behind a caller's back. ``AASIST_SER_KEEP_HEAP=0`` in the environment turns it off; on a C
    library other than glibc it does nothing.
    """
    global _heap_kept
    if _heap_kept:
        return True
    if os.environ.get(KEEP_HEAP_ENV, "1") == "0" or platform.libc_ver()[0] != "glibc":
        return False
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    # mallopt(int, int) returns 1 on success. No mmap'ed chunks: large blocks come from the heap; the largest trim
    # threshold (2 GiB of free memory at the heap's top) keeps freed blocks there; one arena, because a thread's
    # own arena maps its heaps (at most 64 MiB each) and unmaps them when freed, so that batches scored on worker
    # threads (antispoof.scoring.logits_in_order) would fault their pages in again
    _heap_kept = all(
        libc.mallopt(option, value) == 1
        for option, value in ((_M_MMAP_MAX, 0), (_M_TRIM_THRESHOLD, 2**31 - 1), (_M_ARENA_MAX, 1))
    )
    return _heap_kept


@contextlib.contextmanager
def one_intra_op_thread():
    """torch's intra-op thread count set to 1 for the block, restored afterwards.

    ``torch.set_num_threads`` changes the calling thread's OpenMP and MKL settings (threads already running keep
    theirs) and the count that threads started later take up.
    """
    threads = torch.get_num_threads()
    if threads == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def set_seed(seed: int, cudnn_deterministic: bool = True, cudnn_benchmark: bool = False) -> None:
    """Seed every generator; cuDNN as asked (CPU runs repeat exactly for a fixed seed)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)
        torch.backends.cudnn.deterministic = cudnn_deterministic
        torch.backends.cudnn.benchmark = cudnn_benchmark


PRECISIONS = ("fp32", "bf16", "fp16")
_PRECISION_ALIASES = {"float32": "fp32", "bfloat16": "bf16", "float16": "fp16", "half": "fp16"}
_AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def _canonical_precision(precision: str | None, device: torch.device | str) -> str:
    name = str(precision or "fp32").lower()
    name = _PRECISION_ALIASES.get(name, name)
    if name not in PRECISIONS:
        raise ValueError(f"precision {precision!r} is not one of {', '.join(PRECISIONS)}")
    device_type = torch.device(device).type
    if name == "fp16" and device_type != "cuda":
        raise ValueError(f"precision fp16 needs a CUDA device (got {device_type}); use bf16 or fp32")
    return name


def check_precision(precision: str | None, device: torch.device | str) -> str:
    """The canonical precision name (None: fp32); an error for an unknown one or for fp16 off CUDA (it needs a
    GradScaler); a warning for bf16 on a GPU without native bf16. Call once, when reading the config."""
    name = _canonical_precision(precision, device)
    device = torch.device(device)
    if (
        name == "bf16"
        and device.type == "cuda"
        and not torch.cuda.is_bf16_supported(including_emulation=False)
    ):
        warnings.warn("this GPU has no native bf16: autocast emulates it (slow); consider fp16", stacklevel=2)
    return name


def autocast_context(device: torch.device | str, precision: str | None = "fp32"):
    """``torch.autocast`` for bf16 (CUDA or CPU) or fp16 (CUDA); a no-op context for fp32."""
    name = _canonical_precision(precision, device)
    if name == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device_type=torch.device(device).type, dtype=_AUTOCAST_DTYPES[name])


def make_grad_scaler(precision: str | None, device: torch.device | str) -> torch.amp.GradScaler:
    """A ``GradScaler`` that scales only for fp16 on CUDA; otherwise disabled (``scale``/``step`` pass through).

    Its ``state_dict`` goes into the resume checkpoint (an empty dict when disabled).
    """
    name = check_precision(precision, device)
    device_type = torch.device(device).type
    return torch.amp.GradScaler(device_type, enabled=name == "fp16" and device_type == "cuda")
