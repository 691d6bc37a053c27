"""Score every audio file in a folder.

    python inference.py --config config/AASIST.conf --test_dir DIR [--output_file F] [--eval_model_weights W]
                        [--device D] [--batch_size N]

Output: one line per file, ``RELATIVE_PATH SCORE``, sorted by path; higher = more bona fide (the bona fide logit).
Unreadable files are reported and the rest still scored. The scoring loop here is the one ``main.py --eval`` uses,
so a file gets the same score through either.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from antispoof.data import NB_SAMP, ScoringDataset, collate_scoring, find_audio_files
from antispoof.fileio import write_text_atomically
from antispoof.training.distributed import resolve_device
from antispoof.training.utils import autocast_context
from models import ConfigError, WeightLoadError, build_model, load_weights


def pick_device(requested: str | None = None) -> torch.device:
    """``--device`` if given; else CUDA when present, else CPU with a warning."""
    try:
        return resolve_device(requested)
    except RuntimeError as exc:
        raise SystemExit(f"error: --device: {exc}") from None


def read_config(path: str | os.PathLike) -> dict:
    path = Path(path)
    try:
        config = json.loads(path.read_text())
    except FileNotFoundError:
        raise SystemExit(f"error: {path}: config file not found") from None
    except json.JSONDecodeError as exc:
        raise SystemExit(f"error: {path}: not valid JSON ({exc})") from None
    if "model_config" not in config:
        raise SystemExit(f"error: {path}: config has no 'model_config'")
    return config


def load_model_for_scoring(config: dict, weights: str | None, device: torch.device) -> nn.Module:
    """Build the configured model, load ``weights`` (or the config's ``model_path``) strictly, eval mode."""
    try:
        model = build_model(config["model_config"])
        weights = weights or config.get("model_path")
        if not weights:
            raise SystemExit(
                "error: no weights to score with: set model_path in the config or --eval_model_weights"
            )
        load_weights(model, weights)
    except (ConfigError, WeightLoadError) as exc:
        raise SystemExit(f"error: {exc}") from None
    return model.to(device).eval()


@torch.inference_mode()
def predict_logits(
    model: nn.Module,
    paths: Sequence[str | os.PathLike],
    nb_samp: int = NB_SAMP,
    batch_size: int = 8,
    device: torch.device | str = "cpu",
    num_workers: int = 0,
    skip_unreadable: bool = False,
    desc: str = "scoring",
    errors: list[tuple[int, str]] | None = None,
    precision: str = "fp32",
    progress: bool = True,
) -> np.ndarray:
    """Run ``model`` in eval mode over audio files: the (N, classes) logits, in file order.

    This is the one scoring loop of the project (``main.py`` and ``inference.py`` both use it). With
    ``skip_unreadable`` a file that cannot be read gets a row of NaN and its (index, message) is appended to
    ``errors``; without it, the first unreadable file raises ``AudioError``. ``precision`` "bf16" runs the model
    under autocast; the logits come back in float32 either way.
    """
    device = torch.device(device)
    model.eval()
    loader = DataLoader(
        ScoringDataset(paths, nb_samp, skip_unreadable=skip_unreadable),
        batch_size=batch_size,
        shuffle=False,
        num_workers=num_workers,
        collate_fn=collate_scoring,
        pin_memory=device.type == "cuda",
    )
    logits_out: np.ndarray | None = None
    for waves, indices, batch_errors in tqdm(
        loader, desc=desc, unit="batch", leave=False, dynamic_ncols=True
    ):
        if errors is not None:
            errors.extend(batch_errors)
        if waves is None:
            continue
        with autocast_context(device, precision):
            _, logits = model(waves.to(device, non_blocking=True))
        logits = logits.float().cpu().numpy()
        if logits_out is None:
            logits_out = np.full((len(paths), logits.shape[1]), np.nan, dtype=np.float32)
        logits_out[indices.numpy()] = logits
    return logits_out if logits_out is not None else np.full((len(paths), 2), np.nan, dtype=np.float32)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Score every audio file (flac, wav, ogg) below a folder.")
    parser.add_argument("--config", required=True, help="JSON config naming the model (config/*.conf)")
    parser.add_argument("--test_dir", required=True, help="folder to score (searched recursively)")
    parser.add_argument(
        "--output_file", default=None, help="score file to write (default: <test_dir>_scores.txt)"
    )
    parser.add_argument("--eval_model_weights", default=None, help="weights to use instead of model_path")
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: CUDA if present)")
    parser.add_argument("--batch_size", type=int, default=None, help="default: the config's batch_size")
    parser.add_argument("--num_workers", type=int, default=None, help="DataLoader workers (default: config)")
    args = parser.parse_args(argv)

    config = read_config(args.config)
    test_dir = Path(args.test_dir)
    try:
        paths = find_audio_files(test_dir)
    except FileNotFoundError as exc:
        raise SystemExit(f"error: {exc}") from None
    if not paths:
        raise SystemExit(f"error: {test_dir}: no flac, wav or ogg files found")
    output = Path(args.output_file or f"{str(test_dir).rstrip('/')}_scores.txt")

    device = pick_device(args.device)
    model = load_model_for_scoring(config, args.eval_model_weights, device)
    errors: list[tuple[int, str]] = []
    scores = predict_logits(
        model,
        paths,
        nb_samp=config["model_config"].get("nb_samp", NB_SAMP),
        batch_size=args.batch_size or config.get("batch_size", 8),
        device=device,
        num_workers=args.num_workers if args.num_workers is not None else config.get("num_workers", 0),
        skip_unreadable=True,
        desc=f"scoring {test_dir}",
        errors=errors,
    )[:, 1]
    for _, message in errors:
        print(f"skipped: {message}", file=sys.stderr)
    lines = [
        f"{p.relative_to(test_dir).as_posix()} {float(s)!r}"
        for p, s in zip(paths, scores, strict=True)
        if np.isfinite(s)
    ]
    if lines:
        write_text_atomically(output, "".join(line + "\n" for line in lines))
    print(
        f"scored {len(lines)} of {len(paths)} files -> {output}"
        + (f"; {len(errors)} unreadable" if errors else "")
    )
    if errors:
        print(f"{len(errors)} file(s) could not be scored:", file=sys.stderr)
        for _, message in errors:
            print(f"  {message}", file=sys.stderr)
    return 0 if lines else 1


if __name__ == "__main__":
    sys.exit(main())
