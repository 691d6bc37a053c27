"""GPU benchmark: training and scoring throughput, peak memory and data-loader stalls, fp32 vs bf16, on one card.

    python bench/train_gpu.py                               # AASIST and AASIST_FiLM, fp32 and bf16 (minutes)
    python bench/train_gpu.py --json bench_gpu.json --num_workers 8 --batch_size 24
    python bench/train_gpu.py --cpu-smoke                   # no GPU: a tiny CPU run that checks the script

It writes generated flac files (random lengths around ASVspoof's 3-4 s) to a temporary folder and reads them back
through the project's own data path (``TrainDataset`` / ``ScoringDataset`` in real DataLoader workers, pinned
memory), so the numbers include decoding and cropping. For every model and precision it reports:

- train utt/s: optimiser steps over the DataLoader (forward, backward, Adam), synchronised each step;
- train compute utt/s: the same steps on one batch already on the GPU (the ceiling without data loading);
- train data wait: time blocked on the DataLoader iterator / total step time (the fraction the GPU waits for data);
- score utt/s and score data wait: eval mode, no gradients, logits cast to float32 as the scoring loop does;
- peak memory (GiB) of training and of scoring (``torch.cuda.max_memory_allocated``).

The fusion model (AASIST_FiLM) is built from config/AASIST_FiLM.conf with ``aasist_path`` and ``ser_path`` null:
random frozen parts have the same cost as trained ones.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from torch import nn
from torch.utils.data import DataLoader

from antispoof.data import NB_SAMP, ScoringDataset, TrainDataset, Trial, collate_scoring
from antispoof.recipes.antispoofing import CLASS_WEIGHTS
from antispoof.runtime import autocast_context
from antispoof.training.trainer import TrainStep
from models import build_model
from models.AASIST import set_fast_inference

SAMPLE_RATE = 16_000
REPO = Path(__file__).resolve().parents[1]
MODEL_CONFIGS = {
    "AASIST": "config/AASIST.conf",
    "AASIST-L": "config/AASIST-L.conf",
    "AASIST_FiLM": "config/AASIST_FiLM.conf",
}


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--models", default="AASIST,AASIST_FiLM", help="comma-separated, from " + ", ".join(MODEL_CONFIGS)
    )
    p.add_argument("--precisions", default="fp32,bf16", help="comma-separated: fp32, bf16, fp16")
    p.add_argument("--batch_size", type=int, default=24, help="per step (the configs' 24)")
    p.add_argument("--train_steps", type=int, default=40, help="timed training steps per model and precision")
    p.add_argument(
        "--score_batches", type=int, default=40, help="timed scoring batches per model and precision"
    )
    p.add_argument(
        "--warmup", type=int, default=5, help="untimed steps first (worker start, cuDNN, allocator)"
    )
    p.add_argument("--num_workers", type=int, default=min(8, os.cpu_count() or 1), help="DataLoader workers")
    p.add_argument("--files", type=int, default=480, help="generated flac files to read")
    p.add_argument("--nb_samp", type=int, default=NB_SAMP, help="crop length in samples")
    p.add_argument(
        "--cudnn_benchmark", action="store_true", help="cudnn.benchmark on (the configs keep it off)"
    )
    p.add_argument("--json", default=None, help="also write the results to this JSON file")
    p.add_argument(
        "--cpu-smoke",
        dest="cpu_smoke",
        action="store_true",
        help="no GPU needed: tiny sizes on the CPU, to check that the script runs",
    )
    return p.parse_args(argv)


def smoke_settings(args: argparse.Namespace) -> None:
    args.batch_size, args.train_steps, args.score_batches, args.warmup = 2, 2, 2, 1
    args.num_workers, args.files, args.nb_samp = 2, 8, min(args.nb_samp, 16_000)
    torch.set_num_threads(1)  # the DataLoader workers get the other cores


# ---------------------------------------------------------------------------------------------------------------
def write_corpus(folder: Path, n: int, seed: int = 0) -> list[Trial]:
    """``n`` flac files, 2.5-5.5 s, harmonic tones (bona fide) or tones plus noise (spoof), alternating."""
    rng = np.random.default_rng(seed)
    trials = []
    for i in range(n):
        seconds = rng.uniform(2.5, 5.5)
        t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
        phase = 2 * np.pi * np.cumsum(np.full(len(t), rng.uniform(100, 220))) / SAMPLE_RATE
        x = sum(np.sin(k * phase) / k for k in range(1, 6))
        spoof = i % 2 == 1
        if spoof:
            x = x + rng.normal(0, 0.5, len(t))
        path = folder / f"utt_{i:05d}.flac"
        sf.write(path, (0.2 * x / np.abs(x).max()).astype(np.float32), SAMPLE_RATE)
        trials.append(
            Trial(f"utt_{i:05d}", "spk", "A01" if spoof else "-", "spoof" if spoof else "bonafide", path)
        )
    return trials


def model_config_for(name: str) -> dict:
    config = json.loads((REPO / MODEL_CONFIGS[name]).read_text())["model_config"]
    if "aasist_path" in config or "ser_path" in config:
        config.update(
            aasist_path=None, ser_path=None
        )  # random frozen parts: same cost, no weight files needed
    return config


def build(name: str, device: torch.device) -> nn.Module:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*randomly initialised.*")
        return build_model(model_config_for(name)).to(device)


def min_input_samples(model: nn.Module) -> int:
    """The shortest input a model accepts (the emotion front-end of fusion models needs 300 frames)."""
    return max([int(getattr(m, "min_samples", 0)) for m in model.modules()] + [1])


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def peak_gib(device: torch.device) -> float | None:
    return torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None


def endless(loader: DataLoader):
    """Batches forever (persistent workers keep running across passes)."""
    while True:
        yield from loader


def loader_kwargs(args, device) -> dict:
    extra = {"persistent_workers": True, "prefetch_factor": 4} if args.num_workers > 0 else {}
    return {"num_workers": args.num_workers, "pin_memory": device.type == "cuda", **extra}


def bench_training(model, trials, args, device, precision, nb_samp) -> dict:
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=1e-5)
    criterion = nn.CrossEntropyLoss(weight=torch.tensor(CLASS_WEIGHTS, device=device))
    step = TrainStep(model, criterion, optimizer, device, precision)  # the Trainer's own step
    dataset = TrainDataset(trials, nb_samp, seed=0)
    loader = DataLoader(
        dataset, batch_size=args.batch_size, shuffle=True, drop_last=True, **loader_kwargs(args, device)
    )

    model.train()
    reset_peak(device)
    batches = endless(loader)
    wait = total = 0.0
    for i in range(args.warmup + args.train_steps):
        started = time.perf_counter()
        waves, labels = next(batches)
        got = time.perf_counter()
        step(waves.to(device, non_blocking=True), labels.to(device, non_blocking=True))
        sync(device)
        if i >= args.warmup:
            wait += got - started
            total += time.perf_counter() - started
    peak = peak_gib(device)
    # the same steps on one resident batch: what the model alone sustains
    waves, labels = waves.to(device), labels.to(device)
    sync(device)
    started = time.perf_counter()
    for _ in range(args.train_steps):
        step(waves, labels)
    sync(device)
    compute = time.perf_counter() - started
    del batches, loader
    n = args.train_steps * args.batch_size
    return {
        "train_utt_per_s": n / total,
        "train_compute_utt_per_s": n / compute,
        "train_data_wait_fraction": wait / total,
        "train_peak_mem_gib": peak,
    }


@torch.inference_mode()
def bench_scoring(model, trials, args, device, precision, nb_samp) -> dict:
    loader = DataLoader(
        ScoringDataset([t.path for t in trials], nb_samp),
        batch_size=args.batch_size,
        shuffle=False,
        collate_fn=collate_scoring,
        **loader_kwargs(args, device),
    )
    model.eval()
    reset_peak(device)
    batches = endless(loader)
    wait = total = 0.0
    scored = 0
    for i in range(args.warmup + args.score_batches):
        started = time.perf_counter()
        waves, _, _ = next(batches)
        got = time.perf_counter()
        with autocast_context(device, precision):
            _, logits = model(waves.to(device, non_blocking=True))
        scores = logits.float()[:, 1].cpu()  # float32 at the output, as the scoring loop does (and it syncs)
        if not torch.isfinite(scores).all():
            raise RuntimeError(f"non-finite scores in {precision}")
        if i >= args.warmup:
            wait += got - started
            total += time.perf_counter() - started
            scored += len(scores)
    del batches, loader
    return {
        "score_utt_per_s": scored / total,
        "score_data_wait_fraction": wait / total,
        "score_peak_mem_gib": peak_gib(device),
    }


# ---------------------------------------------------------------------------------------------------------------
COLUMNS = [
    ("model", "model", "{}"),
    ("precision", "prec", "{}"),
    ("train_utt_per_s", "train utt/s", "{:.1f}"),
    ("train_compute_utt_per_s", "compute utt/s", "{:.1f}"),
    ("train_data_wait_fraction", "train wait", "{:.1%}"),
    ("train_peak_mem_gib", "train GiB", "{:.2f}"),
    ("score_utt_per_s", "score utt/s", "{:.1f}"),
    ("score_data_wait_fraction", "score wait", "{:.1%}"),
    ("score_peak_mem_gib", "score GiB", "{:.2f}"),
]


def format_table(rows: list[dict]) -> str:
    def cell(row, key, fmt):
        value = row.get(key)
        return "-" if value is None else fmt.format(value)

    header = [title for _, title, _ in COLUMNS]
    body = [[cell(r, key, fmt) for key, _, fmt in COLUMNS] for r in rows]
    widths = [max(len(h), *(len(b[i]) for b in body)) if body else len(h) for i, h in enumerate(header)]
    lines = ["  ".join(h.rjust(w) for h, w in zip(header, widths)), "  ".join("-" * w for w in widths)]
    lines += ["  ".join(c.rjust(w) for c, w in zip(b, widths)) for b in body]
    return "\n".join(lines)


def pick_device(args) -> tuple[torch.device, str] | None:
    if torch.cuda.is_available() and not args.cpu_smoke:
        torch.backends.cudnn.benchmark = args.cudnn_benchmark
        return torch.device("cuda"), torch.cuda.get_device_name(0)
    if args.cpu_smoke:
        smoke_settings(args)
        print("CPU smoke run: tiny sizes, the numbers only show that the script works")
        return torch.device("cpu"), platform.processor() or platform.machine()
    print(
        "CUDA is not available here: this benchmark measures a GPU. Run it on a CUDA machine, or pass "
        "--cpu-smoke for a tiny CPU run that checks the script."
    )
    return None


def bench_one(name: str, precision: str, trials, args, device) -> dict:
    torch.manual_seed(0)
    model = build(name, device)
    if device.type == "cpu" and precision != "fp32":
        # AASIST's chunked CPU inference path (also taken by the frozen AASIST of fusion models while
        # they train) is float32-only: under CPU autocast use the plain path
        set_fast_inference(model, False)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    nb_samp = max(args.nb_samp, min_input_samples(model))
    if nb_samp != args.nb_samp:
        print(f"  {name} needs at least {nb_samp} samples: its crops are {nb_samp} long")
    row = {"model": name, "precision": precision, "trainable_parameters": trainable, "nb_samp": nb_samp}
    row.update(bench_training(model, trials, args, device, precision, nb_samp))
    row.update(bench_scoring(model, trials, args, device, precision, nb_samp))
    print(
        f"  {name} {precision}: train {row['train_utt_per_s']:.1f} utt/s, score {row['score_utt_per_s']:.1f} utt/s",
        flush=True,
    )
    del model
    reset_peak(device)
    return row


SETTINGS = ("batch_size", "train_steps", "score_batches", "warmup", "num_workers", "files", "nb_samp")


def main(argv=None) -> int:
    args = parse_args(argv)
    picked = pick_device(args)
    if picked is None:
        return 1
    device, card = picked
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = [m for m in models if m not in MODEL_CONFIGS]
    if unknown:
        raise SystemExit(f"error: unknown model(s) {unknown}; choose from {', '.join(MODEL_CONFIGS)}")
    precisions = [p.strip() for p in args.precisions.split(",") if p.strip()]
    with tempfile.TemporaryDirectory(prefix="bench_train_gpu_") as folder:
        started = time.perf_counter()
        trials = write_corpus(Path(folder), max(args.files, args.batch_size))
        print(
            f"{len(trials)} flac files written in {time.perf_counter() - started:.1f} s; device: {card}; "
            f"batch {args.batch_size}, {args.num_workers} DataLoader workers, nb_samp {args.nb_samp}"
        )
        rows = [bench_one(m, p, trials, args, device) for m, p in itertools.product(models, precisions)]
    print()
    print(format_table(rows))
    result = {
        "device": card,
        "device_type": device.type,
        "cpu_smoke": args.cpu_smoke,
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cudnn_benchmark": bool(torch.backends.cudnn.benchmark) if device.type == "cuda" else None,
        "settings": {k: getattr(args, k) for k in SETTINGS},
        "results": rows,
    }
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=2))
        print(f"\nresults: {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
