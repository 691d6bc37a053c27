"""Score every audio file in a folder.

    python inference.py --config config/AASIST.conf --test_dir DIR [--output_file F] [--eval_model_weights W]
                        [--device D] [--batch_size N]

Output: one line per file, ``RELATIVE_PATH SCORE``, sorted by path; higher = more bona fide (the bona fide logit).
Unreadable files are reported and the rest still scored. The scoring loop here is the one ``main.py --eval`` uses,
so a file gets the same score through either.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from antispoof.audio import find_audio_files
from antispoof.config import read_config
from antispoof.fileio import write_text_atomically
from antispoof.runtime import resolve_device
from antispoof.scoring import load_model_for_scoring, predict_logits


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

    try:
        device = resolve_device(args.device)
    except RuntimeError as exc:
        raise SystemExit(f"error: --device: {exc}") from None
    model = load_model_for_scoring(config.model_config, args.eval_model_weights or config.model_path, device)
    errors: list[tuple[int, str]] = []
    scores = predict_logits(
        model,
        paths,
        nb_samp=config.nb_samp,
        batch_size=args.batch_size or config.scoring_batch_size,
        device=device,
        num_workers=args.num_workers if args.num_workers is not None else config.num_workers,
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
