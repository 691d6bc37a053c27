"""Countermeasure evaluation from score files: ASVspoof 2019 reports, breakdowns by metadata, calibration and
comparison reports.

    python evaluation.py --cm_scores eval_scores.txt [--asv_scores ASV_SCORES] [--protocol PROTOCOL] [--json]
    python evaluation.py --cm_scores S [S ...] --metadata M.tsv [--group_by emotion,system] \
        [--threshold T | --threshold_from DEV_SCORES] [--calibration FILE | --calibrate_on DEV_SCORES] [--json]
    python evaluation.py --calibrate_on dev_scores.txt --save_calibration calibration.json
    python evaluation.py --compare EXP_DIR [EXP_DIR ...] --out DIR

The library does the work: :mod:`antispoof.scorefiles` (score files, protocols), :mod:`antispoof.metrics` (EER,
DET, t-DCF, DCF, Cllr, bootstrap), :mod:`antispoof.reports` (ASVspoof 2019 and DSES reports) and
:mod:`antispoof.figures` (plots). The names below are re-exported so that scripts importing them from here keep
working. Only numpy is imported at module level; matplotlib and scipy are imported where a plot is drawn.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from antispoof import scorefiles
from antispoof.breakdown import BreakdownSettings, ScoredRun, breakdown, fixed_threshold
from antispoof.calibration import (
    Calibration,
    apply_calibration,
    fit_calibration,
    load_calibration,
    save_calibration,
)
from antispoof.metadata import TrialTable, read_metadata
from antispoof.metrics import (  # noqa: F401  (re-exported)
    ASVSPOOF2019_TDCF_COST_MODEL,
    DEFAULT_BOOTSTRAP_RESAMPLES,
    DEFAULT_BOOTSTRAP_SEED,
    DEFAULT_PERMUTATIONS,
    ASVScores,
    asv_error_rates,
    bootstrap_ci,
    compute_act_dcf,
    compute_cllr,
    compute_det_curve,
    compute_eer,
    compute_min_dcf,
    compute_min_tdcf,
    compute_tdcf_curve,
)
from antispoof.reports import (  # noqa: F401  (re-exported)
    evaluate_asvspoof2019,
    format_asvspoof2019_report,
    format_breakdown_markdown,
)
from antispoof.scorefiles import (  # noqa: F401  (re-exported)
    CMScores,
    DuplicateTrialId,
    EvaluationInputError,
    ProtocolEntry,
    ScoreProtocolMismatch,
    check_scores_against_protocol,
    read_asv_scores,
    read_asvspoof_protocol,
    read_score_file,
    write_score_file,
)

PROG = "evaluation.py"
USAGE = """
  evaluation.py --cm_scores S [--asv_scores A] [--protocol P] [--json]
  evaluation.py --cm_scores S [S ...] --metadata M.tsv [--group_by COLUMNS] [--threshold T | --threshold_from DEV]
                [--reference_group G] [--calibration FILE | --calibrate_on DEV] [--n_bootstrap N]
                [--n_permutations N] [--json]
  evaluation.py --calibrate_on DEV --save_calibration FILE
  evaluation.py --compare EXP_DIR [EXP_DIR ...] --out DIR [--threshold T]"""
EXIT_BAD_INPUT = 1
EXIT_MISMATCH = 2
EXIT_CODES = """exit codes:
  0  success
  1  a file cannot be read or is malformed (the message names the file and the line)
  2  the scores do not list each trial exactly once: a trial id repeated in a score file, or (with
     --protocol or --metadata) trials missing, extra or with another key or system; also a bad command line"""


# --------------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------------
# (flag, help, extra argparse options): one row per option, grouped as --help shows them
ASVSPOOF_OPTIONS = (
    (
        "--cm_scores",
        "CM score file(s): UTT_ID SYSTEM KEY SCORE per line; several (seeds) need --metadata",
        {"nargs": "+"},
    ),
    (
        "--asv_scores",
        "organisers' ASV scores (ASVspoof2019.LA.asv.eval.gi.trl.scores.txt); without it no t-DCF",
        {},
    ),
    ("--protocol", "CM protocol the score file must match exactly (else exit code 2)", {}),
    ("--json", "print the result as JSON", {"action": "store_true"}),
)
BREAKDOWN_OPTIONS = (
    ("--metadata", "tab-separated trial metadata: utt_id, key, speaker + attribute columns", {}),
    (
        "--group_by",
        "columns to break down by, comma-separated; a:b crosses two (default: emotion)",
        {"default": "emotion"},
    ),
    (
        "--reference_group",
        "the group every other group of its column is tested against (default: neutral)",
        {"default": "neutral"},
    ),
    (
        "--save_calibration",
        "write the calibration fitted with --calibrate_on (one file) as JSON",
        {"metavar": "FILE"},
    ),
    (
        "--n_bootstrap",
        "speaker-bootstrap resamples (0: no CIs or p-values; default %(default)s)",
        {"type": int, "default": DEFAULT_BOOTSTRAP_RESAMPLES},
    ),
    (
        "--n_permutations",
        "random speaker-swap patterns for the p-values when a comparison has more than 12 speakers (fewer: all "
        "patterns; 0: no p-values; default %(default)s)",
        {"type": int, "default": DEFAULT_PERMUTATIONS},
    ),
    ("--seed", "bootstrap and permutation seed", {"type": int, "default": DEFAULT_BOOTSTRAP_SEED}),
)
ONE_OR_PER_RUN = "(one, or one per --cm_scores)"
EXCLUSIVE_OPTIONS = (  # pairs of options that exclude each other
    (
        ("--threshold", "the fixed operating point (score >= T: bona fide)", {"type": float}),
        (
            "--threshold_from",
            f"the fixed threshold is the EER threshold of a development score file {ONE_OR_PER_RUN}",
            {"nargs": "+", "metavar": "DEV_SCORES"},
        ),
    ),
    (
        (
            "--calibration",
            f"calibration JSON to apply {ONE_OR_PER_RUN}: actDCF and Cllr on calibrated LLRs",
            {"nargs": "+", "metavar": "FILE"},
        ),
        (
            "--calibrate_on",
            f"fit the calibration on development score files {ONE_OR_PER_RUN}",
            {"nargs": "+", "metavar": "DEV_SCORES"},
        ),
    ),
)
COMPARE_OPTIONS = (
    (
        "--compare",
        "finished experiment folders (seeds of one detector: names ending _seed<N>)",
        {"nargs": "+", "metavar": "EXP_DIR"},
    ),
    ("--out", "where --compare writes report.md, compare.json and the figures", {"metavar": "DIR"}),
)


def _add(group, options) -> None:
    for flag, help_text, extra in options:
        group.add_argument(flag, help=help_text, **extra)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description=__doc__.split("\n\n")[0],
        usage=USAGE,
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add(parser, ASVSPOOF_OPTIONS)
    breakdown_group = parser.add_argument_group(
        "breakdown by metadata (threshold, calibration, significance, seeds)"
    )
    _add(breakdown_group, BREAKDOWN_OPTIONS)
    for pair in EXCLUSIVE_OPTIONS:
        _add(breakdown_group.add_mutually_exclusive_group(), pair)
    _add(parser.add_argument_group("comparison report of finished experiment folders"), COMPARE_OPTIONS)
    return parser


def _check_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Usage errors (exit code 2) for combinations argparse cannot express."""
    n_scores = len(args.cm_scores or [])
    if bool(args.compare) != bool(args.out):
        parser.error("--compare and --out go together")
    if args.compare and (n_scores or args.metadata or args.calibrate_on or args.calibration):
        parser.error(
            "--compare reads each folder's own files: no --cm_scores, --metadata or calibration flags"
        )
    if not (args.compare or n_scores or args.calibrate_on):
        parser.error("give --cm_scores, --compare or --calibrate_on")
    if n_scores > 1 and not args.metadata:
        parser.error("several --cm_scores (seeds) need --metadata")
    for flag in ("threshold_from", "calibration", "calibrate_on"):
        given = getattr(args, flag) or []
        if n_scores and len(given) not in (0, 1, n_scores):
            parser.error(f"--{flag}: give one file or one per --cm_scores ({n_scores})")
    if args.save_calibration and len(args.calibrate_on or []) != 1:
        parser.error("--save_calibration needs exactly one --calibrate_on file")
    for flag in ("n_bootstrap", "n_permutations"):
        if getattr(args, flag) < 0:
            parser.error(f"--{flag} must be >= 0")


def _asvspoof2019(args: argparse.Namespace) -> int:
    cm = read_score_file(args.cm_scores[0])
    if args.protocol:
        scorefiles.check_scores_against_protocol(cm, read_asvspoof_protocol(args.protocol), args.cm_scores[0])
    result = evaluate_asvspoof2019(cm, args.asv_scores)
    result["cm_score_file"] = str(args.cm_scores[0])
    if args.json:
        print(json.dumps(result, indent=1))
    else:
        print(format_asvspoof2019_report(result), end="")
    return 0


def _one_per_run(values: Sequence | None, n: int) -> list:
    """One value per score file: none, one for all, or one each (``_check_args`` allows nothing else)."""
    return [None] * n if not values else list(values) * n if len(values) == 1 else list(values)


def _calibrations(args: argparse.Namespace, n: int) -> tuple[list[Calibration | None], str]:
    """The calibration of each score file (loaded or fitted here; saved if asked), and where they came from."""
    if args.calibration:
        return _one_per_run([load_calibration(path) for path in args.calibration], n), ", ".join(
            args.calibration
        )
    if not args.calibrate_on:
        return [None] * n, "none"
    fitted = [fit_calibration(*read_score_file(dev).by_class(), fitted_on=dev) for dev in args.calibrate_on]
    if args.save_calibration:
        save_calibration(fitted[0], args.save_calibration)
    return _one_per_run(fitted, n), "fitted on " + ", ".join(args.calibrate_on)


def _runs(args: argparse.Namespace, table: TrialTable) -> tuple[list[ScoredRun], str, str]:
    """Each score file aligned with the metadata, with its fixed threshold and LLRs; where the thresholds and
    the calibrations came from."""
    n = len(args.cm_scores)
    calibrations, calibration_source = _calibrations(args, n)
    runs, sources = [], []
    for path, dev, calibration in zip(args.cm_scores, _one_per_run(args.threshold_from, n), calibrations):
        scores = table.scores_of(read_score_file(path), path)
        dev_scores = read_score_file(dev) if dev else None
        threshold, source = fixed_threshold(table, scores, dev_scores, str(dev), args.threshold)
        llrs = None if calibration is None else apply_calibration(calibration, scores)
        runs.append(ScoredRun(scores, threshold, llrs, str(path)))
        sources.append(source)
    return runs, "; ".join(dict.fromkeys(sources)), calibration_source


def breakdown_settings(args: argparse.Namespace) -> BreakdownSettings:
    return BreakdownSettings(n_bootstrap=args.n_bootstrap, n_permutations=args.n_permutations, seed=args.seed)


def _breakdown(args: argparse.Namespace) -> int:
    table = read_metadata(args.metadata)
    runs, threshold_source, calibration_source = _runs(args, table)
    settings = breakdown_settings(args)
    group_by = [spec.strip() for spec in args.group_by.split(",") if spec.strip()]
    result = breakdown(table, runs, group_by, args.reference_group, settings)
    result.update(
        metadata=str(args.metadata), threshold_source=threshold_source, calibration_source=calibration_source
    )
    if args.json:
        print(json.dumps(result, indent=1))
    else:
        print(format_breakdown_markdown(result, title=f"Breakdown of {', '.join(args.cm_scores)}"), end="")
    return 0


def _calibrate_only(args: argparse.Namespace) -> int:
    print(json.dumps(_calibrations(args, 1)[0][0].to_json(), indent=1))
    return 0


def _compare(args: argparse.Namespace) -> int:
    from antispoof.compare import compare_experiments

    settings = breakdown_settings(args)
    compare_experiments(
        args.compare,
        args.out,
        fallback_threshold=args.threshold,
        reference_group=args.reference_group,
        settings=settings,
    )
    print(f"{PROG}: wrote {Path(args.out) / 'report.md'} and its figures")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    _check_args(parser, args)
    if args.compare:
        mode = _compare
    elif args.metadata:
        mode = _breakdown
    elif args.cm_scores:
        mode = _asvspoof2019
    else:
        mode = _calibrate_only
    try:
        return mode(args)
    except ScoreProtocolMismatch as exc:  # includes DuplicateTrialId
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return EXIT_MISMATCH
    except ValueError as exc:  # EvaluationInputError, CalibrationError and metric preconditions
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT


if __name__ == "__main__":
    sys.exit(main())
