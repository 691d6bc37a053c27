"""Train and evaluate a detector on ASVspoof 2019 LA, and evaluate it on DSES per emotion and per TTS system.

    python main.py --config config/AASIST.conf            # train, select on dev, score dev, eval (and DSES)
    python main.py --eval --config config/AASIST.conf     # score dev, eval (and DSES) with model_path
    python main.py --eval --config config/AASIST.conf --eval_set LA21=PATH --eval_set ITW=PATH   # named sets
    python main.py --config config/SER.conf               # train the ACRNN emotion recogniser on ESD
    python main.py --config config/AASIST-L.conf --seeds 1 2 3          # one run per seed, sibling folders
    torchrun --nproc_per_node 4 main.py --config ...      # the same on several GPUs (PyTorch DDP)

Results go to ``exp_result/<name>/``: the config copy, ``weights/``, dev and eval score files (official format),
the EER / t-DCF report, the DSES tables and ``metrics.json`` (with ``dev_eer_threshold``, the fixed operating
point). The name never depends on num_epochs, so ``--resume --num_epochs N`` extends a finished run.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from antispoof.config import SCORING_MODES, ExperimentConfig, read_config
from antispoof.errors import one_line_errors
from antispoof.experiment import (
    Run,
    eval_folder_name,
    experiment_name,
    prepare_eval_folder,
    prepare_folder,
    remove_if_disposable,
)
from antispoof.fileio import write_text_atomically
from antispoof.recipes import antispoofing, evalsets, recipe_of, ser
from antispoof.runtime import check_precision, keep_freed_memory, set_seed
from antispoof.scoring import describe_scoring, load_model_for_scoring
from antispoof.training.distributed import barrier, cleanup, init_distributed

EXIT_CODES = """exit codes:
  0  finished; results in the experiment folder
  1  a problem with the config, the data, the weights or the experiment folder (one line says which)
  2  bad command-line arguments"""

OVERRIDES = (
    "database_path",
    "emo_dataset",
    "seed",
    "num_epochs",
    "batch_size",
    "num_workers",
    "precision",
    "scoring",
)


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, epilog=EXIT_CODES, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--config", required=True, help="JSON experiment config (config/*.conf)")
    p.add_argument("--eval", action="store_true", help="only score dev, eval (and DSES) with model_path")
    p.add_argument("--database_path", help="ASVspoof 2019 LA root (overrides the config)")
    p.add_argument("--emo_dataset", help="DSES root (overrides the config's emo_dataset)")
    p.add_argument("--output_dir", default="./exp_result", help="where experiment folders go")
    p.add_argument("--seed", type=int, help="random seed (overrides the config; default 1234)")
    p.add_argument("--seeds", type=int, nargs="+", help="one run per seed, in folders ending _seed<N>")
    p.add_argument("--comment", help="suffix for the experiment folder name")
    p.add_argument("--eval_model_weights", help="weights to evaluate instead of model_path")
    p.add_argument(
        "--eval_set",
        action="append",
        metavar="NAME=PATH",
        help="with --eval: score this evaluation set (repeatable, in order; LA21, DF21, ITW, DSES, EmoSpoofTTS, "
        "EmoFake, ...; see README); replaces the config's eval_sets",
    )
    p.add_argument("--device", help="cpu, cuda, cuda:1 ... (default: CUDA if present, else CPU)")
    p.add_argument("--num_epochs", type=int, help="overrides the config (with --resume: extends the run)")
    p.add_argument("--batch_size", type=int, help="per process (overrides the config)")
    p.add_argument("--num_workers", type=int, help="DataLoader workers (overrides the config)")
    p.add_argument("--precision", choices=("fp32", "bf16", "fp16"), help="overrides the config")
    p.add_argument("--scoring", choices=SCORING_MODES, help="first 4.04 s, windows or full file (see README)")
    p.add_argument("--resume", action="store_true", help="continue the experiment's last completed epoch")
    p.add_argument(
        "--overwrite", action="store_true", help="delete an earlier run's checkpoints and start afresh"
    )
    p.add_argument(
        "--allow_config_change", action="store_true", help="--resume even though training fields changed"
    )
    return p.parse_args(argv)


def eval_set_overrides(items: list[str]) -> dict[str, str]:
    """``--eval_set NAME=PATH`` flags as the config's ``eval_sets`` (a bad one exits with one line)."""
    from antispoof.evalsets import parse_eval_set

    sets: dict[str, str] = {}
    for item in items:
        try:
            name, path = parse_eval_set(item)
        except ValueError as exc:
            raise SystemExit(f"error: {exc}") from None
        if name in sets:
            raise SystemExit(f"error: --eval_set {name} is given twice")
        sets[name] = path
    return sets


def output_folder(args: argparse.Namespace, config: ExperimentConfig, comment: str | None) -> Path:
    base = experiment_name(config, args.config, comment, recipe_of(config))
    if args.eval:
        base = eval_folder_name(base, args.eval_model_weights or config.model_path)
    return Path(args.output_dir) / base


def open_run(args: argparse.Namespace, config: ExperimentConfig, info, comment: str | None) -> Run:
    """The run's folder checked (no accidental overwrite) and its config copy written, on rank 0."""
    out_dir = output_folder(args, config, comment)
    run = Run(config, info, out_dir, resume=args.resume, allow_config_change=args.allow_config_change)
    try:
        run.precision = check_precision(config.precision, info.device)
    except ValueError as exc:
        raise SystemExit(f"error: {exc}") from None
    if run.is_main:
        if args.eval:
            run.created = prepare_eval_folder(out_dir, args.overwrite)
        else:
            run.created = prepare_folder(out_dir, args.resume, args.overwrite)
        write_text_atomically(out_dir / "config.conf", json.dumps(config.to_dict(), indent=4) + "\n")
        print(
            f"experiment folder: {out_dir}" + (f" ({info.world_size} processes)" if info.distributed else "")
        )
    barrier(info)
    return run


def execute(args: argparse.Namespace, run: Run) -> dict:
    recipe = ser if recipe_of(run.config) == "ser" else antispoofing
    if not args.eval:
        return recipe.train(run)
    model_config = ser.model_config_of(run) if recipe is ser else run.config.model_config
    weights = args.eval_model_weights or run.config.model_path
    if run.config.eval_sets and recipe is antispoofing:
        load = lambda: load_model_for_scoring(model_config, weights, run.device)  # noqa: E731
        return evalsets.evaluate(run, load, run.config.eval_sets, weights)
    return recipe.evaluate(run, lambda: load_model_for_scoring(model_config, weights, run.device))


def run_once(args: argparse.Namespace, seed: int | None) -> None:
    overrides = {key: getattr(args, key) for key in OVERRIDES}
    if args.eval_set and not args.eval:
        raise SystemExit("error: --eval_set scores a trained model: add --eval")
    if args.eval_set:
        overrides["eval_sets"] = eval_set_overrides(args.eval_set)
    if seed is not None:
        overrides["seed"] = seed
    config = read_config(args.config, overrides)
    comment = "_".join(filter(None, [args.comment, f"seed{seed}" if seed is not None else None])) or None
    try:
        info = init_distributed(args.device)
    except RuntimeError as exc:
        raise SystemExit(f"error: {exc}") from None
    try:
        if config.demo is not None:  # the embedded demo: build its small synthetic corpus on first run
            from antispoof.demo import ensure_demo_corpus

            if info.is_main:
                ensure_demo_corpus(config.to_dict())
            barrier(info)
        set_seed(config.seed, config.cudnn_deterministic_toggle, config.cudnn_benchmark_toggle)
        run = open_run(args, config, info, comment)
        try:
            metrics = execute(args, run)
        except BaseException:
            if run.is_main and run.created and remove_if_disposable(run.out_dir):
                print(
                    f"note: removed {run.out_dir}: the run stopped before it produced anything",
                    file=sys.stderr,
                )
            raise
        if run.is_main:
            metrics["scoring"] = describe_scoring(**config.scoring_options)  # how every score file was made
            run.write_json("metrics.json", metrics)
            print(f"metrics: {run.out_dir / 'metrics.json'}")
    finally:
        cleanup()


def main(argv=None) -> int:
    args = parse_args(argv)
    keep_freed_memory()  # large activations reuse the heap instead of fresh pages (see antispoof.runtime)
    with one_line_errors():
        for seed in args.seeds or [None]:
            run_once(args, seed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
