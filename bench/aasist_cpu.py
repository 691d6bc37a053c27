"""CPU scoring throughput of the project's AASIST, optionally against the original clovaai/aasist code.

Scoring = eval mode under torch.inference_mode, batches of 8 utterances of 64,600 samples (4.04 s at 16 kHz).
With ``--reference PATH`` (a checkout of github.com/clovaai/aasist), its ``models/AASIST.py`` is imported by
file path, loaded with the same weights in this process, timed the same way, and the largest absolute
difference between the two models' logits is printed. Rounds alternate between the models so that load from
other processes hits both alike; the best round of each is reported. Both run under the OpenMP wait policy the
project sets (passive, see antispoof/__init__.py); GOMP_SPINCOUNT=300000 in the environment restores libgomp's
default spinning, for comparison.

    python bench/aasist_cpu.py --weights ../shared/weights/AASIST.pth --reference ../ref/aasist
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import time
from pathlib import Path

# the package first, as the scripts import it: it sets the OpenMP wait policy before torch loads (both models run
# under it; see antispoof/__init__.py)
# isort: off
import antispoof  # noqa: F401
import torch

# isort: on
import models

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
    parser.add_argument("--batches", type=int, default=3, help="timed batches per round")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per model; the best is reported")
    parser.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: torch's default)")
    return parser.parse_args(argv)


def load_reference_model(checkout: Path, model_config: dict) -> torch.nn.Module:
    source = checkout / "models" / "AASIST.py"
    if not source.is_file():
        raise SystemExit(f"{source}: not found; --reference must be a checkout of clovaai/aasist")
    spec = importlib.util.spec_from_file_location("reference_aasist", source)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.Model(dict(model_config))


def seconds_per_batch(model: torch.nn.Module, batch: torch.Tensor, n_batches: int) -> float:
    with torch.inference_mode():
        started = time.perf_counter()
        for _ in range(n_batches):
            model(batch)
        return (time.perf_counter() - started) / n_batches


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    config = json.loads(Path(args.config).read_text())
    weights = Path(args.weights or config["model_path"])
    state = models.load_state_dict(weights)

    contenders = {"project": models.build_model(config["model_config"])}
    if args.reference:
        contenders["reference"] = load_reference_model(Path(args.reference), config["model_config"])
    for model in contenders.values():
        models.load_weights(model, state, what=str(weights))
        model.eval()

    generator = torch.Generator().manual_seed(0)
    batch = 0.1 * torch.randn(args.batch_size, args.nb_samp, generator=generator)
    logits = {}
    with torch.inference_mode():  # warm-up (allocator, oneDNN kernels) and the logits to compare
        for name, model in contenders.items():
            logits[name] = model(batch)[1]

    best = dict.fromkeys(contenders, float("inf"))
    for _ in range(args.rounds):
        for name, model in contenders.items():
            best[name] = min(best[name], seconds_per_batch(model, batch, args.batches))

    setting = f"{Path(args.config).name}, {weights.name}, {torch.get_num_threads()} threads"
    shape = f"batch {args.batch_size} x {args.nb_samp} samples"
    print(
        f"AASIST scoring on CPU ({setting}): {shape}, best of {args.rounds} rounds x {args.batches} batches"
    )
    for name in contenders:
        print(f"  {name:9s} {args.batch_size / best[name]:7.2f} utterances/s  ({best[name]:.3f} s per batch)")
    if "reference" in contenders:
        difference = (logits["project"] - logits["reference"]).abs().max().item()
        print(f"  speedup   {best['reference'] / best['project']:7.2f}x")
        print(f"  max |logit difference| {difference:.2e}")


if __name__ == "__main__":
    main()
