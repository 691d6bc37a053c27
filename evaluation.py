"""Countermeasure evaluation from score files: the command line.

    python evaluation.py --cm_scores scores.txt --asv_scores ASVspoof2019.LA.asv.eval.gi.trl.scores.txt \
        [--protocol ASVspoof2019.LA.cm.eval.trl.txt] [--json]

The library does the work: :mod:`antispoof.scorefiles` (score files, protocols), :mod:`antispoof.metrics` (EER,
DET, t-DCF, DCF, Cllr, bootstrap), :mod:`antispoof.reports` (ASVspoof 2019 and DSES reports) and
:mod:`antispoof.figures` (plots). The names below are re-exported so that scripts importing them from here keep
working. Only numpy is imported at module level; matplotlib and scipy are imported where a plot is drawn.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping, Sequence

from antispoof import scorefiles
from antispoof.metadata import DSES_COLUMNS, TrialTable
from antispoof.metrics import (  # noqa: F401  (re-exported)
    ASVSPOOF2019_TDCF_COST_MODEL,
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
    format_dses_markdown,
)
from antispoof.scorefiles import (  # noqa: F401  (re-exported)
    CMScores,
    DuplicateTrialId,
    EvaluationInputError,
    ProtocolEntry,
    ScoreProtocolMismatch,
    read_asv_scores,
    read_asvspoof_protocol,
    read_score_file,
)

PROG = "evaluation.py"
EXIT_BAD_INPUT = 1
EXIT_MISMATCH = 2
EXIT_CODES = """exit codes:
  0  success
  1  a file cannot be read or is malformed (the message names the file and the line)
  2  the scores do not list each trial exactly once: a trial id repeated in a score file, or (with
     --protocol) trials missing, extra or with another key or system; also a bad command line"""


# --------------------------------------------------------------------------------------------------
# main.py's call forms, kept until main.py calls the library directly (delete this block then):
#   antispoof.scorefiles.write_score_file(path, trials, scores)
#   antispoof.scorefiles.check_scores_against_protocol(read_score_file(path), trials, path)
#   antispoof.reports.dses_breakdown(TrialTable.from_trials(trials), scores, n_bootstrap=...)
#   antispoof.figures.plot_det(TrialTable.from_trials(trials), scores, out_dir / "det")
# --------------------------------------------------------------------------------------------------
def write_score_file(path, rows):
    """Deprecated form of :func:`antispoof.scorefiles.write_score_file`: ``rows`` of
    ``(utt_id, system, key, score)``."""
    rows = [tuple(row) for row in rows]
    bad = next((i for i, row in enumerate(rows) if len(row) != 4), None)
    if bad is not None:
        raise EvaluationInputError(
            f"{path}: row {bad + 1} is not (utt_id, system, key, score): {rows[bad]!r}"
        )
    entries = [ProtocolEntry("-", row[0], row[1], row[2]) for row in rows]
    return scorefiles.write_score_file(path, entries, [row[3] for row in rows])


def check_scores_against_protocol(scores: CMScores, entries: Sequence, score_path="scores") -> None:
    """Deprecated form of :func:`antispoof.scorefiles.check_scores_against_protocol`: ``entries`` are
    ``(speaker, utt_id, system, key)`` tuples."""
    scorefiles.check_scores_against_protocol(scores, [ProtocolEntry._make(e) for e in entries], score_path)


def _dses_table(entries: Sequence[Mapping]) -> TrialTable:
    return TrialTable.from_columns({name: [e[name] for e in entries] for name in DSES_COLUMNS}, "DSES trials")


def dses_breakdown(entries: Sequence[Mapping], scores, **options) -> dict:
    """Deprecated form of :func:`antispoof.reports.dses_breakdown`: ``entries`` are mappings with utt_id,
    speaker, emotion, system and key; ``scores`` an aligned array."""
    from antispoof.reports import dses_breakdown as breakdown

    return breakdown(_dses_table(entries), scores, **options)


def plot_det(entries: Sequence[Mapping], scores, out_dir, prefix: str = "det"):
    """Deprecated form of :func:`antispoof.figures.plot_det` (``entries`` as for :func:`dses_breakdown`)."""
    from antispoof.figures import plot_det as plot

    return plot(_dses_table(entries), scores, out_dir, prefix)


# --------------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------------
def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Score an ASVspoof 2019 LA CM score file: pooled EER, min t-DCF and per-attack EERs.",
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--cm_scores", required=True, help="CM score file: UTT_ID SYSTEM KEY SCORE per line")
    parser.add_argument(
        "--asv_scores",
        help="organisers' ASV scores (ASVspoof2019.LA.asv.eval.gi.trl.scores.txt); without it no t-DCF",
    )
    parser.add_argument("--protocol", help="CM protocol the score file must match exactly (else exit code 2)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    return parser.parse_args(argv)


def _asvspoof2019(args: argparse.Namespace) -> int:
    cm = read_score_file(args.cm_scores)
    if args.protocol:
        scorefiles.check_scores_against_protocol(cm, read_asvspoof_protocol(args.protocol), args.cm_scores)
    result = evaluate_asvspoof2019(cm, args.asv_scores)
    result["cm_score_file"] = str(args.cm_scores)
    if args.json:
        print(json.dumps(result, indent=1))
    else:
        print(format_asvspoof2019_report(result), end="")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse_args(argv)
    try:
        return _asvspoof2019(args)
    except ScoreProtocolMismatch as exc:  # includes DuplicateTrialId
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return EXIT_MISMATCH
    except ValueError as exc:  # EvaluationInputError and metric preconditions
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT


if __name__ == "__main__":
    sys.exit(main())
