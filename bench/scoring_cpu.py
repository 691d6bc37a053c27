"""CPU scoring throughput from audio files to scores: the project's scoring loop against clovaai/aasist's code,
for ``first`` and ``windows`` scoring, in one run.

The files are ``--files`` synthetic 16 kHz flac files (voiced tones and noise) of seeded random lengths between
``--min_seconds`` and ``--max_seconds``, written to a temporary folder. Each contender is timed from the file
names to the scores, decoding included, with batches of ``--batch_size`` and no DataLoader workers:

  project    ``antispoof.scoring.predict_logits`` (what inference.py and main.py --eval run), scoring ``first``
             (the first 64,600 samples of each file) or ``windows`` (every 64,600-sample window, hop 64,600,
             batched across files, mean logit per file)
  reference  clovaai/aasist (``--reference``, a checkout): ``first`` is its own evaluation loop
             (``Dataset_ASVspoof2019_devNeval`` + DataLoader + ``torch.no_grad`` as in its main.py); it has no
             windows scoring, so ``windows`` reads each file as its dataset does (soundfile), cuts the same
             windows, and runs them through its model in batches of ``--batch_size`` windows, mean per file

Each contender runs in its own process, the reference twice: as its users run it and under the project's process
settings (see bench/contenders.py). Rounds alternate between them so that load from other processes hits all
alike; the best round of each is reported, with the ratios and the largest logit difference.

    python bench/scoring_cpu.py --reference ../ref/aasist --threads 2
"""

from __future__ import annotations

import argparse
import json
import tempfile
from functools import partial
from pathlib import Path

import numpy as np
import soundfile as sf
from contenders import PROJECT, Workers, import_file, load_aasist, report_ratios, three_contenders

# isort: off
import antispoof  # noqa: F401  (before torch: the OpenMP wait policy)
import torch

# isort: on
from antispoof.data import window_starts
from antispoof.scoring import predict_logits

REPO_ROOT = Path(__file__).resolve().parents[1]

SAMPLE_RATE = 16000


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config", default=str(REPO_ROOT / "config" / "AASIST.conf"))
    parser.add_argument("--weights", help="state dict to load (default: the config's model_path)")
    parser.add_argument("--reference", required=True, help="checkout of clovaai/aasist")
    parser.add_argument("--modes", nargs="+", default=["first", "windows"], choices=["first", "windows"])
    parser.add_argument("--files", type=int, default=96)
    parser.add_argument("--min_seconds", type=float, default=2.0)
    parser.add_argument("--max_seconds", type=float, default=12.0)
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=2, help="rounds per contender; the best is reported")
    parser.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: torch's default)")
    return parser.parse_args(argv)


def write_files(folder: Path, n_files: int, min_seconds: float, max_seconds: float) -> list[Path]:
    """``flac/<key>.flac`` (the reference dataset's layout): harmonic tones, every other one with noise."""
    rng = np.random.default_rng(0)
    (folder / "flac").mkdir()
    paths = []
    for i in range(n_files):
        t = np.arange(int(rng.uniform(min_seconds, max_seconds) * SAMPLE_RATE)) / SAMPLE_RATE
        phase = (
            2
            * np.pi
            * np.cumsum(rng.uniform(100, 220) * (1 + 0.03 * np.sin(2 * np.pi * 4 * t)))
            / SAMPLE_RATE
        )
        x = sum(np.sin(k * phase) / k for k in range(1, 8)) + (i % 2) * rng.normal(0, 0.8, len(t))
        paths.append(folder / "flac" / f"utt{i:04d}.flac")
        sf.write(paths[-1], (0.2 * x / np.abs(x).max()).astype(np.float32), SAMPLE_RATE)
    return paths


def reference_first(model, data_utils, paths: list[Path], batch_size: int) -> np.ndarray:
    """clovaai/aasist's evaluation loop (main.py ``produce_evaluation_file``), logits kept."""
    dataset = data_utils.Dataset_ASVspoof2019_devNeval([p.stem for p in paths], paths[0].parent.parent)
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=False, drop_last=False)
    logits = []
    for batch_x, _ in loader:
        with torch.no_grad():
            logits.append(model(batch_x)[1].numpy())
    return np.concatenate(logits)


def reference_windows(model, data_utils, nb_samp: int, paths: list[Path], batch_size: int) -> np.ndarray:
    """The reference model over every window of each file (read and padded as its dataset does), batched across
    files."""
    windows, owners = [], []
    for index, path in enumerate(paths):
        x, _ = sf.read(str(path))
        for start in window_starts(len(x), nb_samp, nb_samp):
            windows.append(torch.Tensor(data_utils.pad(x[start : start + nb_samp], nb_samp)))
            owners.append(index)
    sums = np.zeros((len(paths), 2))
    for first in range(0, len(windows), batch_size):
        with torch.no_grad():
            logits = model(torch.stack(windows[first : first + batch_size]))[1].numpy()
        np.add.at(sums, owners[first : first + batch_size], logits)
    return (sums / np.bincount(owners, minlength=len(paths))[:, None]).astype(np.float32)


def build(source: str, config: dict, weights: Path, paths: list[Path], batch_size: int):
    """In the worker: the project's scoring loop or the reference's (``source``: its checkout) with the weights,
    warmed up; returns run(mode) -> logits per file."""
    nb_samp = 64600
    model = load_aasist(source, config["model_config"], weights)
    with torch.inference_mode():  # warm-up: allocator, oneDNN kernels
        model(0.1 * torch.randn(batch_size, nb_samp))
    if source == PROJECT:
        return lambda mode: predict_logits(
            model, paths, nb_samp=nb_samp, batch_size=batch_size, scoring=mode, progress=False
        )
    data_utils = import_file("reference_data_utils", Path(source) / "data_utils.py")
    return lambda mode: (
        reference_first(model, data_utils, paths, batch_size)
        if mode == "first"
        else reference_windows(model, data_utils, nb_samp, paths, batch_size)
    )


def main(argv=None) -> None:
    args = parse_args(argv)
    nb_samp, bs = 64600, args.batch_size
    with tempfile.TemporaryDirectory() as folder:
        paths = write_files(Path(folder), args.files, args.min_seconds, args.max_seconds)
        seconds = sum(sf.info(str(p)).duration for p in paths)
        n_windows = sum(len(window_starts(sf.info(str(p)).frames, nb_samp, nb_samp)) for p in paths)
        config = json.loads(Path(args.config).read_text())
        weights = Path(args.weights or REPO_ROOT / config["model_path"])
        builder = partial(build, config=config, weights=weights, paths=paths, batch_size=bs)
        with Workers(three_contenders(builder, args.reference), args.threads) as workers:
            print(
                f"AASIST scoring on CPU ({weights.name}, {workers.threads[PROJECT]} threads, batch {bs}): "
                f"{len(paths)} files, {seconds:.0f} s of audio ({n_windows} windows of {nb_samp} samples), "
                f"best of {args.rounds} rounds"
            )
            for mode in args.modes:
                best, outputs = workers.best(mode, args.rounds)
                report(mode, best, outputs, len(paths), len(paths) if mode == "first" else n_windows)


def report(mode: str, best: dict, outputs: dict, n_files: int, n_units: int) -> None:
    difference = np.abs(outputs["project"] - outputs["reference"]).max()
    unit = "utterances" if mode == "first" else "windows"
    print(f"  {mode}:")
    for name, seconds in best.items():
        print(
            f"    {name:28s} {n_units / seconds:6.2f} {unit}/s  {n_files / seconds:6.2f} files/s  ({seconds:.1f} s)"
        )
    for line in report_ratios(best):
        print(f"    {line}")
    print(f"    max |logit difference| {difference:.2e}")


if __name__ == "__main__":
    main()
