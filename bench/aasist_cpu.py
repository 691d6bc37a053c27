"""CPU scoring throughput of the project's AASIST model against the original clovaai/aasist code.

Scoring = eval mode under torch.inference_mode, batches of ``--batch_size`` utterances of 64,600 samples
(4.04 s at 16 kHz), the same seeded random batch for every contender. The model alone: no decoding (for files
to scores, see bench/scoring_cpu.py). The project runs its batches as its scoring loop does: several at once, one
thread each (``antispoof.scoring.logits_in_order``; ``--parallel_batches 1``: one at a time on every thread, the
model's own speed). With ``--reference PATH`` (a checkout of github.com/clovaai/aasist), its
``models/AASIST.py`` is loaded with the same weights and timed the same way, in its own process, as the original
code's users run it and under the project's process settings (see bench/contenders.py); the largest absolute
difference between the logits is printed.

    python bench/aasist_cpu.py --weights models/weights/AASIST.pth --reference ../ref/aasist --threads 2
"""

from __future__ import annotations

import argparse
import json
from functools import partial
from pathlib import Path

from contenders import PROJECT, REFERENCE, Workers, load_aasist, report_ratios, three_contenders

# isort: off
import antispoof  # noqa: F401  (before torch: the OpenMP wait policy)
import torch

# isort: on
from antispoof.scoring import batches_at_once, logits_in_order

REPO_ROOT = Path(__file__).resolve().parents[1]


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config", default=str(REPO_ROOT / "config" / "AASIST.conf"))
    parser.add_argument("--weights", help="state dict to load (default: the config's model_path)")
    parser.add_argument(
        "--reference", help="checkout of clovaai/aasist whose models/AASIST.py to compare with"
    )
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--nb_samp", type=int, default=64600)
    parser.add_argument("--batches", type=int, default=4, help="timed batches per round")
    parser.add_argument(
        "--parallel_batches",
        type=int,
        default=0,
        help="the project's batches at once (0: one per thread, as its scoring loop; 1: one at a time)",
    )
    parser.add_argument("--rounds", type=int, default=3, help="rounds per contender; the best is reported")
    parser.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: torch's default)")
    return parser.parse_args(argv)


def build(
    source: str,
    config: dict,
    weights: Path,
    batch_size: int,
    nb_samp: int,
    n_batches: int,
    parallel_batches: int,
):
    """In the worker: the model (``contenders.load_aasist``), warmed up; returns run(task) -> the logits of the
    last of ``n_batches`` forward passes over one seeded random batch (the project's: ``parallel_batches`` at
    once, as in its scoring loop)."""
    model = load_aasist(source, config["model_config"], weights)
    generator = torch.Generator().manual_seed(0)
    batch = 0.1 * torch.randn(batch_size, nb_samp, generator=generator)
    at_once = batches_at_once("cpu", parallel_batches, n_batches) if source == PROJECT else 1

    def forward(waves: torch.Tensor):
        with torch.inference_mode():
            return model(waves)[1].numpy()

    def run(_task):
        return list(logits_in_order(forward, [(batch, None)] * n_batches, at_once))[-1][1]

    run(None)  # warm-up: allocator, oneDNN kernels
    return run


def main(argv=None) -> None:
    args = parse_args(argv)
    config = json.loads(Path(args.config).read_text())
    weights = Path(args.weights or REPO_ROOT / config["model_path"])
    builder = partial(
        build,
        config=config,
        weights=weights,
        batch_size=args.batch_size,
        nb_samp=args.nb_samp,
        n_batches=args.batches,
        parallel_batches=args.parallel_batches,
    )
    with Workers(three_contenders(builder, args.reference), args.threads) as workers:
        best, logits = workers.best(None, args.rounds)
    threads = workers.threads[PROJECT]
    print(
        f"AASIST scoring on CPU ({Path(args.config).name}, {weights.name}, {threads} threads): batch "
        f"{args.batch_size} x {args.nb_samp} samples, best of {args.rounds} rounds x {args.batches} batches; "
        f"project: {batches_at_once('cpu', args.parallel_batches or threads, args.batches)} batch(es) at once"
    )
    for name, seconds in best.items():
        per_batch = seconds / args.batches
        print(f"  {name:28s} {args.batch_size / per_batch:7.2f} utterances/s  ({per_batch:.3f} s per batch)")
    for line in report_ratios(best):
        print(f"  {line}")
    if args.reference:
        difference = float(abs(logits[PROJECT] - logits[REFERENCE]).max())
        print(f"  max |logit difference| {difference:.2e}")


if __name__ == "__main__":
    main()
