"""Score audio: every audio file below a folder, or one file.

    python inference.py --config config/AASIST.conf --test_dir DIR_OR_FILE [--output_file F] [--threshold T]
                        [--eval_model_weights W] [--device D] [--batch_size N] [--num_workers N]
                        [--scoring first|windows|full] [--parallel_batches N]

The scoring loop is the one ``main.py --eval`` uses, so a file gets the same score through either. The output
format and exit codes are in ``--help`` (and antispoof/score_table.py).
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence
from pathlib import Path

from antispoof import score_table
from antispoof.audio import collect_audio_inputs
from antispoof.config import SCORING_MODES, ExperimentConfig, read_config
from antispoof.runtime import keep_freed_memory, resolve_device
from antispoof.scoring import describe_scoring, load_model_for_scoring, score_files

EXIT_WRITTEN, EXIT_NONE_SCORED, EXIT_USAGE = 0, 1, 2
EPILOG = """\
output: a header line, then one tab-separated row per scored file, sorted by path:
  path      relative to the folder (for a single file: its name)
  score     the bona fide logit; higher = more bona fide
  llr       with --calibration FILE (a run's calibration.json): the calibrated log-likelihood ratio
  decision  bonafide or spoof: with --calibration at the Bayes threshold of the ASVspoof 5 costs; else
            bonafide when score >= threshold, if one is known: --threshold T, or the
            dev_eer_threshold in <exp>/metrics.json when the weights are <exp>/weights/<name>.pth (a note says so)
A field holding a tab, newline, carriage return or double quote is written in double quotes, inner quotes
doubled (CSV quoting): read it with csv.reader(f, delimiter="\\t") or pandas.read_csv(F, sep="\\t").

audio: flac, wav, ogg, opus, mp3 (libsndfile >= 1.1), aiff, au, caf, w64, rf64; m4a, aac, wma, mp4 and the like
must be converted first (ffmpeg -i X.m4a -ar 16000 X.wav). Each file that cannot be scored (unreadable,
unsupported, a broken link, a non-finite score) is one line on stderr; the others are still scored.
--output_file may be new (its folders are created) or an earlier score table (replaced); a folder or any other
existing file is refused before scoring starts.

exit codes:
  0  the table was written (files that could not be scored are on stderr and in "scored N of M files")
  1  audio files were found but none could be scored (each listed on stderr); nothing is written
  2  bad arguments: an unknown option, a bad config, weights, --device or --output_file, no audio file found,
     or weights that give NaN/inf for every file; nothing is written
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n")[0],
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--config", required=True, help="JSON config naming the model (config/*.conf)")
    parser.add_argument(
        "--test_dir", "--input", required=True, help="a folder (searched recursively) or a file"
    )
    parser.add_argument("--output_file", help="score table to write (default: <input>_scores.txt)")
    parser.add_argument("--threshold", type=float, help="decision: bonafide if score >= THRESHOLD")
    parser.add_argument(
        "--calibration", help="calibration.json of a run: adds the LLR and its Bayes decision"
    )
    parser.add_argument("--eval_model_weights", help="weights to use instead of the config's model_path")
    parser.add_argument("--device", help="cpu, cuda, cuda:1 ... (default: CUDA if present)")
    parser.add_argument("--batch_size", type=int, help="default: the config's batch_size")
    parser.add_argument("--num_workers", type=int, help="DataLoader workers (default: the config's)")
    parser.add_argument("--scoring", choices=SCORING_MODES, help="first 4.04 s, every window, or whole file")
    parser.add_argument(
        "--parallel_batches",
        type=int,
        help="CPU: batches scored at once, one thread each (default: the config's; 0: one per torch thread)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.threshold is not None and not math.isfinite(args.threshold):
        parser.error(f"--threshold {args.threshold}: give a finite number")
    if args.parallel_batches is not None and args.parallel_batches < 0:
        parser.error(f"--parallel_batches {args.parallel_batches}: give 0 (one per thread) or more")
    keep_freed_memory()  # large activations reuse the heap instead of fresh pages (see antispoof.runtime)
    try:
        return score(args)
    except SystemExit as exc:  # a one-line setup error (config, input, output, device, weights)
        if not isinstance(exc.code, str):
            raise
        print(exc.code, file=sys.stderr)
        return EXIT_USAGE


def score(args: argparse.Namespace) -> int:
    config = read_config(args.config, {"scoring": args.scoring, "parallel_batches": args.parallel_batches})
    try:
        inputs = collect_audio_inputs(args.test_dir)
    except FileNotFoundError as exc:
        raise SystemExit(f"error: --test_dir {exc}") from None
    if not inputs:
        raise SystemExit(f"error: {args.test_dir}: no audio files found (see --help for the extensions)")
    output = Path(args.output_file or f"{str(args.test_dir).rstrip('/')}_scores.txt")
    if problem := score_table.output_file_problem(output):
        raise SystemExit(f"error: --output_file {problem}")
    problems = {item.name: f"{item.path}: {item.problem}" for item in inputs if item.problem}
    to_score = [item for item in inputs if item.problem is None]
    rows, columns, broken = [], [], ""
    if to_score:
        model, device, weights = load_model(args, config)
        columns, note = score_table.decision_columns(args.threshold, args.calibration, weights)
        print(f"note: {note}", file=sys.stderr)
        print(f"note: scoring: {describe_scoring(**config.scoring_options)}", file=sys.stderr)
        result = score_files(
            model,
            [item.path for item in to_score],
            **config.scoring_options,
            batch_size=args.batch_size or config.scoring_batch_size,
            device=device,
            num_workers=args.num_workers if args.num_workers is not None else config.num_workers,
            parallel_batches=config.parallel_batches,
            desc=f"scoring {args.test_dir}",
        )
        if result.model_broken:
            broken = f"error: the model produced NaN/inf for every file: are the weights broken? ({weights})"
        problems.update((to_score[i].name, line) for i, line in result.problems.items())
        rows = [
            score_table.ScoredFile(it.name, float(s))
            for it, s in zip(to_score, result.scores)
            if it.name not in problems
        ]
    for name in sorted(problems):
        print(f"skipped: {problems[name]}", file=sys.stderr)
    if broken:
        print(broken, file=sys.stderr)
        return EXIT_USAGE
    if rows:
        score_table.write_score_table(output, rows, columns)
    written = f"-> {output}" if rows else "(nothing written)"
    unscored = f"; {len(problems)} could not be scored (listed on stderr)" if problems else ""
    print(f"scored {len(rows)} of {len(inputs)} files {written}{unscored}")
    return EXIT_WRITTEN if rows else EXIT_NONE_SCORED


def load_model(args: argparse.Namespace, config: ExperimentConfig):
    try:
        device = resolve_device(args.device)
    except RuntimeError as exc:
        raise SystemExit(f"error: --device: {exc}") from None
    weights = args.eval_model_weights or config.model_path
    return load_model_for_scoring(config.model_config, weights, device), device, weights


if __name__ == "__main__":
    sys.exit(main())
