"""Audio decode + resample throughput of the project's loaders (files/s) with N DataLoader workers.

Writes synthetic corpora to a temporary folder and times full passes of the real loaders (no model):

  asvspoof   16 kHz mono flac, 1-6 s (ASVspoof 2019 LA's range; no resampling)
  resample   48 kHz stereo wav, 1-6 s (mixed to mono, resampled to 16 kHz by soxr)
  long       44.1 kHz mono flac, 10-25 s (In-the-Wild's range: the case for ``windows`` scoring)

through ``ScoringDataset`` (scoring ``first`` and ``windows``) and ``TrainDataset`` (random crop; with
``--rawboost``, AASIST's RawBoost too), batches of ``--batch_size``, the collate function the project uses. A
loader feeds a GPU when its files/s exceed the model's utterances/s: divide the GPU's rate by the per-worker
rate printed here for the number of cores to give the loader.

    python bench/loader_cpu.py --workers 0 1 2
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from torch.utils.data import DataLoader

from antispoof.augment import make_rawboost
from antispoof.data import ScoringDataset, TrainDataset, Trial, collate_by_length

REPO_ROOT = Path(__file__).resolve().parents[1]

CORPORA = {  # name: (sample rate, channels, seconds min, max, format)
    "asvspoof": (16000, 1, 1.0, 6.0, "flac"),
    "resample": (48000, 2, 1.0, 6.0, "wav"),
    "long": (44100, 1, 10.0, 25.0, "flac"),
}


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--files", type=int, default=64, help="files per corpus")
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--batch_size", type=int, default=24)
    parser.add_argument("--corpora", nargs="+", default=list(CORPORA), choices=list(CORPORA))
    parser.add_argument("--rawboost", action="store_true", help="also time training crops with RawBoost")
    return parser.parse_args(argv)


def write_corpus(folder: Path, name: str, n_files: int) -> list[Path]:
    rate, channels, low, high, fmt = CORPORA[name]
    rng = np.random.default_rng(0)
    folder.mkdir()
    paths = []
    for i in range(n_files):
        n = int(rng.uniform(low, high) * rate)
        tone = np.sin(2 * np.pi * rng.uniform(100, 300) * np.arange(n) / rate)
        x = 0.2 * tone[:, None] + 0.05 * rng.standard_normal((n, channels))
        paths.append(folder / f"{i:04d}.{fmt}")
        sf.write(paths[-1], x.astype(np.float32), rate)
    return paths


def files_per_second(dataset, batch_size: int, workers: int, collate=None) -> float:
    """Files through one full pass of a DataLoader (its start-up included, as an epoch or a split pays it)."""
    started = time.perf_counter()
    loader = DataLoader(dataset, batch_size=batch_size, num_workers=workers, collate_fn=collate)
    for _ in loader:
        pass
    return len(dataset) / (time.perf_counter() - started)


def loaders(paths: list[Path], rawboost: bool) -> dict:
    trials = [Trial(p.stem, "spk", "-", "bonafide", p) for p in paths]
    found = {
        "scoring first": (ScoringDataset(paths), collate_by_length),
        "scoring windows": (ScoringDataset(paths, scoring="windows"), collate_by_length),
        "training crop": (TrainDataset(trials), None),
    }
    if rawboost:
        augment = make_rawboost({"algo": 5})
        found["training crop+RawBoost"] = (TrainDataset(trials, augment=augment), None)
    return found


def main(argv=None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(1)  # the loaders' work is decoding: no intra-op threads in the main process either
    cores = len(os.sched_getaffinity(0))
    print(
        f"loader throughput, files/s ({cores} usable cores, batch {args.batch_size}, {args.files} files each)"
    )
    print(f"  {'corpus':9s} {'loader':24s} " + " ".join(f"{f'{w} workers':>10s}" for w in args.workers))
    with tempfile.TemporaryDirectory() as root:
        for name in args.corpora:
            paths = write_corpus(Path(root) / name, name, args.files)
            for label, (dataset, collate) in loaders(paths, args.rawboost).items():
                rates = [files_per_second(dataset, args.batch_size, w, collate) for w in args.workers]
                print(f"  {name:9s} {label:24s} " + " ".join(f"{rate:10.1f}" for rate in rates))


if __name__ == "__main__":
    main()
