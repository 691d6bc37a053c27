"""The anti-spoofing recipe: train a detector on ASVspoof 2019 LA (selection on dev EER), score LA dev and
eval with the selected model, and break its DSES scores down by emotion and TTS system."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn

from antispoof import figures, reports
from antispoof.augment import make_rawboost
from antispoof.breakdown import BreakdownSettings, ScoredRun, breakdown, fixed_threshold
from antispoof.calibration import (
    Calibration,
    CalibrationError,
    apply_calibration,
    fit_calibration,
    save_calibration,
)
from antispoof.compare_report import plot_emotion_bars
from antispoof.data import TrainDataset
from antispoof.experiment import Run
from antispoof.fileio import write_text_atomically
from antispoof.metadata import TrialTable
from antispoof.protocols import ProtocolError, Trial, asvspoof_trials, scan_dses, write_dses_protocol
from antispoof.recipes.common import build, score_trials
from antispoof.scorefiles import CMScores, check_scores_against_protocol, read_score_file, write_score_file
from antispoof.training.trainer import Trainer, Validation

CLASS_WEIGHTS = (0.1, 0.9)  # (spoof, bona fide), as in AASIST
ASV_DEV_SCORES = "ASVspoof2019.LA.asv.dev.gi.trl.scores.txt"


def la_trials(run: Run, splits: tuple[str, ...]) -> dict[str, list[Trial]]:
    """The ASVspoof 2019 LA splits a run needs (a missing protocol is an error for training, a note for eval)."""
    database = run.config.database_path
    if not database:
        return {}
    found = {}
    for split in splits:
        try:
            found[split] = asvspoof_trials(database, split)
        except ProtocolError as exc:
            if "train" in splits:
                raise
            run.log(f"ASVspoof 2019 LA {split} skipped: {exc}")
    return found


def dses_trials(run: Run) -> list[Trial] | None:
    root = run.config.emo_dataset
    if not root:
        run.log("DSES: no emo_dataset in the config: the per-emotion evaluation is skipped")
        return None
    if not Path(root).is_dir():
        run.log(
            f"DSES: {root} not found: the per-emotion evaluation is skipped (python download_dataset.py --dataset emotional fetches it)"
        )
        return None
    trials, report = scan_dses(root)
    run.log(report.summary())
    if run.is_main:
        write_dses_protocol(trials, run.out_dir / "dses" / "dses_protocol.tsv", root)
    return trials


def write_and_check_scores(path: Path, trials: list[Trial], scores: np.ndarray) -> None:
    """Write the official score file, read it back and check it against the trials it came from."""
    write_score_file(path, trials, scores)
    check_scores_against_protocol(read_score_file(path), trials, path)


def asv_scores_path(run: Run, split: str) -> Path | None:
    """The organisers' ASV scores for the t-DCF (eval: the config's asv_score_path; dev: the same folder)."""
    eval_path = Path(run.config.database_path) / run.config.asv_score_path
    path = eval_path if split == "eval" else eval_path.with_name(ASV_DEV_SCORES)
    return path if path.is_file() else None


def evaluate_la_split(
    model, trials: list[Trial], run: Run, split: str, tag: str = "", quiet: bool = False
) -> dict:
    """Score a split, write and check its score file, return EER / min t-DCF / per-attack EER."""
    scores = score_trials(model, trials, run, desc=f"scoring {split}")[:, 1]

    def write_and_measure():
        score_path = run.out_dir / f"{split}_scores{tag}.txt"
        write_and_check_scores(score_path, trials, scores)
        asv = asv_scores_path(run, split)
        if asv is None and not quiet:
            print(f"note: no ASV scores for {split} in {run.config.database_path}: EER only, no t-DCF")
        result = reports.evaluate_asvspoof2019(str(score_path), str(asv) if asv else None)
        result["score_file"] = str(score_path)
        return result

    return run.on_main(write_and_measure)


DSES_GROUPS = ("emotion", "system", "emotion:system")


def dses_analysis(
    trials: list[Trial], scores: np.ndarray, run: Run, dev: CMScores | None, calibration
) -> dict:
    """The emotion analysis of DSES scores: per emotion, system and emotion x system, at the fixed threshold
    (LA dev's EER threshold), calibrated where a calibration exists, against neutral, with speaker-bootstrap CIs."""
    table = TrialTable.from_trials(trials)
    threshold, source = fixed_threshold(table, scores, dev, "LA 2019 dev (dev_scores.txt)")
    llrs = apply_calibration(calibration, scores) if calibration is not None else None
    settings = BreakdownSettings(n_bootstrap=run.config.dses_bootstrap)
    result = breakdown(
        table, [ScoredRun(scores, threshold, llrs, "dses_scores.txt")], DSES_GROUPS, "neutral", settings
    )
    result["threshold_source"] = source
    if calibration is not None:
        result["calibration_source"] = "calibration.json, fitted on LA 2019 dev"
    return result


def evaluate_dses(
    model, trials, run: Run, out_dir: Path, dev: CMScores | None = None, calibration=None
) -> dict:
    """Score DSES, write its score file, and the emotion analysis as Markdown, JSON and DET plots."""
    scores = score_trials(model, trials, run, desc="scoring DSES")[:, 1]

    def report():
        write_and_check_scores(out_dir / "dses_scores.txt", trials, scores)
        result = dses_analysis(trials, scores, run, dev, calibration)
        markdown = reports.format_breakdown_markdown(result, "DSES: do detectors fail on emotional speech?")
        markdown += "\n" + reports.emotion_verdict(result) + "\n"
        write_text_atomically(out_dir / "dses_report.md", markdown)
        write_text_atomically(
            out_dir / "dses_metrics.json", json.dumps(result, indent=2, default=float) + "\n"
        )
        figures.plot_det(TrialTable.from_trials(trials), scores, out_dir / "det")
        # the run's answer at a glance: bona fide rejected per emotion at the fixed threshold, CIs, significance
        plot_emotion_bars({run.out_dir.name: result}, "rejection", out_dir / "emotion_rejection.png")
        return {"breakdown": result, "markdown": markdown}

    return run.on_main(report)


def dses_epoch_eer(model, trials: list[Trial], run: Run, epoch: int) -> dict:
    """Per-epoch DSES EERs for the training history (pooled and per emotion; no bootstrap, no files but scores)."""
    scores = score_trials(model, trials, run, desc="scoring DSES")[:, 1]

    def measure():
        write_and_check_scores(run.out_dir / "dses" / f"dses_scores_epoch{epoch:03d}.txt", trials, scores)
        result = breakdown(
            TrialTable.from_trials(trials),
            [ScoredRun(scores, 0.0)],
            ["emotion"],
            None,
            BreakdownSettings(n_bootstrap=0),
        )
        numbers = {"dses_eer/pooled": result["pooled"]["eer_percent"]}
        numbers.update({f"dses_eer/{e}": g["eer_percent"] for e, g in result["groups"]["emotion"].items()})
        return numbers

    return run.on_main(measure)


def calibrate(run: Run, dev_path: Path) -> Calibration | None:
    """A logistic calibration fitted on LA dev scores, saved as ``calibration.json`` (None when dev separates
    the classes perfectly: there is nothing to fit)."""

    def fit():
        try:
            calibration = fit_calibration(*read_score_file(dev_path).by_class(), fitted_on=str(dev_path))
        except CalibrationError as exc:
            print(f"note: no calibration: {exc}")
            return None
        save_calibration(calibration, run.out_dir / "calibration.json")
        return calibration

    return run.on_main(fit)


def evaluate_sets(model, run: Run, la: dict[str, list[Trial]], dses: list[Trial] | None) -> dict:
    """Score LA dev (its EER threshold is the fixed operating point, its scores fit the calibration), LA eval
    and DSES with a loaded model."""
    metrics: dict = {}
    dev_scores = calibration = None
    if "dev" in la:
        dev = evaluate_la_split(model, la["dev"], run, "dev", quiet=True)
        metrics.update(dev_scoring=dev, dev_eer_threshold=dev["eer_threshold"])
        run.log(
            f"LA dev EER {dev['eer_percent']:.3f} % (threshold {dev['eer_threshold']:.6g}: dev_eer_threshold)"
        )
        dev_scores = read_score_file(dev["score_file"])
        calibration = calibrate(run, Path(dev["score_file"]))
    if "eval" in la:
        result = evaluate_la_split(model, la["eval"], run, "eval")
        if run.is_main:
            report = reports.format_asvspoof2019_report(result)
            write_text_atomically(run.out_dir / "t-DCF_EER.txt", report + "\n")
            print(report)
        metrics["eval"] = result
    if dses:
        result = evaluate_dses(model, dses, run, run.out_dir / "dses", dev_scores, calibration)
        run.log(result["markdown"])
        metrics["dses"] = result["breakdown"]
    if not metrics:
        raise SystemExit("error: nothing to evaluate: neither ASVspoof 2019 LA nor a DSES folder was found")
    return metrics


def preflight(run: Run, la: dict[str, list[Trial]], dses: list[Trial] | None) -> None:
    from antispoof.preflight import check_audio

    sets = {f"ASVspoof 2019 LA {split} ({run.config.database_path})": trials for split, trials in la.items()}
    if dses:
        sets["DSES"] = dses
    check_audio(sets, progress=run.is_main)


def evaluate(run: Run, load_model: Callable[[], nn.Module]) -> dict:
    """``main.py --eval``: check the data, then score LA dev and eval (where present) and DSES with the model
    ``load_model`` gives."""
    la = la_trials(run, ("dev", "eval"))
    dses = dses_trials(run)
    preflight(run, la, dses)
    return evaluate_sets(load_model(), run, la, dses)


def dses_due(every_epochs: int, epoch: int) -> bool:
    """Whether DSES is scored after ``epoch`` (0-based; -1 is the averaged model, which is not)."""
    return epoch >= 0 and every_epochs > 0 and (epoch + 1) % every_epochs == 0


def make_validate(run: Run, dev: list[Trial], dses: list[Trial] | None):
    def validate(model, epoch: int) -> Validation:
        tag = f"_epoch{epoch:03d}" if epoch >= 0 else "_averaged"
        dev_result = evaluate_la_split(model, dev, run, "dev", tag=tag, quiet=epoch > 0)
        eer, tdcf = dev_result["eer_percent"], dev_result.get("min_tdcf")
        numbers = {"selection": eer, "dev_eer": eer, "dev_tdcf": tdcf}
        line = f"dev EER {eer:.3f} %" + (f"  dev min t-DCF {tdcf:.4f}" if tdcf is not None else "")
        if dses and dses_due(run.config.dses_every_epochs, epoch):
            numbers.update(dses_epoch_eer(model, dses, run, epoch))
            line += f"  DSES EER {numbers['dses_eer/pooled']:.2f} %"
        return Validation(eer, line, numbers)

    return validate


def train(run: Run) -> dict:
    """Train on LA train, select on LA dev, then evaluate the selected model on dev, eval and DSES."""
    config = run.config
    if not config.database_path:
        raise SystemExit("error: the config has no database_path (python download_dataset.py --dataset LA)")
    la = la_trials(run, ("train", "dev", "eval"))
    dses = dses_trials(run)
    preflight(run, la, dses)
    model = build(config.model_config, run)
    train_set = TrainDataset(
        la["train"],
        config.nb_samp,
        seed=config.seed,
        augment=make_rawboost(config.rawboost),
        crop=config.train_crop,
        augment_on=config.augment_on,
    )
    criterion = nn.CrossEntropyLoss(weight=torch.tensor(CLASS_WEIGHTS, device=run.device))
    trainer = Trainer(
        model, train_set, criterion, make_validate(run, la["dev"], dses), config, run, mode="min"
    )
    record = trainer.fit()
    run.log(f"best dev EER {record['selection']:.3f} % at epoch {record['best_epoch'] + 1}: scoring with it")
    return {"dev": record, **evaluate_sets(model, run, la, dses)}
