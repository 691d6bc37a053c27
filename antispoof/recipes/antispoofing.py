"""The anti-spoofing recipe: train a detector on ASVspoof 2019 LA (selection on dev EER), score LA dev and
eval with the selected model, and break its DSES scores down by emotion and TTS system."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn

import evaluation as reports  # TODO(merge): antispoof.reports / antispoof.scorefiles
from antispoof.augment import make_rawboost
from antispoof.data import TrainDataset
from antispoof.experiment import Run
from antispoof.fileio import write_text_atomically
from antispoof.protocols import ProtocolError, Trial, asvspoof_trials, scan_dses, write_dses_protocol
from antispoof.recipes.common import build, score_trials
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
    reports.write_score_file(path, [(t.utt_id, t.system, t.key, float(s)) for t, s in zip(trials, scores)])
    reports.check_scores_against_protocol(reports.read_score_file(path), trials, path)


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


def evaluate_dses(
    model, trials: list[Trial], run: Run, out_dir: Path, full: bool = True, threshold=None
) -> dict:
    """EER per emotion / system / emotion x system and pooled, with speaker-bootstrap CIs, tables, DET plots."""
    scores = score_trials(model, trials, run, desc="scoring DSES")[:, 1]

    def report():
        write_and_check_scores(out_dir / "dses_scores.txt", trials, scores)
        n_bootstrap = run.config.dses_bootstrap if full else 0
        breakdown = reports.dses_breakdown(trials, scores, n_bootstrap=n_bootstrap)
        markdown = reports.format_dses_markdown(breakdown)
        write_text_atomically(out_dir / "dses_report.md", markdown + "\n")
        write_text_atomically(
            out_dir / "dses_metrics.json", json.dumps(breakdown, indent=2, default=float) + "\n"
        )
        if full:
            reports.plot_det(trials, scores, out_dir / "det")
        return {"breakdown": breakdown, "markdown": markdown}

    return run.on_main(report)


def evaluate_sets(model, run: Run, la: dict[str, list[Trial]], dses: list[Trial] | None) -> dict:
    """Score LA dev (its EER threshold is the fixed operating point), LA eval and DSES with a loaded model."""
    metrics: dict = {}
    if "dev" in la:
        dev = evaluate_la_split(model, la["dev"], run, "dev", quiet=True)
        metrics["dev_scoring"] = dev
        metrics["dev_eer_threshold"] = dev["eer_threshold"]
        run.log(
            f"LA dev EER {dev['eer_percent']:.3f} % (threshold {dev['eer_threshold']:.6g}: dev_eer_threshold)"
        )
    if "eval" in la:
        result = evaluate_la_split(model, la["eval"], run, "eval")
        if run.is_main:
            report = reports.format_asvspoof2019_report(result)
            write_text_atomically(run.out_dir / "t-DCF_EER.txt", report + "\n")
            print(report)
        metrics["eval"] = result
    if dses:
        result = evaluate_dses(model, dses, run, run.out_dir / "dses")
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


def make_validate(run: Run, dev: list[Trial], dses: list[Trial] | None):
    def validate(model, epoch: int) -> Validation:
        tag = f"_epoch{epoch:03d}" if epoch >= 0 else "_averaged"
        dev_result = evaluate_la_split(model, dev, run, "dev", tag=tag, quiet=epoch > 0)
        eer, tdcf = dev_result["eer_percent"], dev_result.get("min_tdcf")
        numbers = {"selection": eer, "dev_eer": eer, "dev_tdcf": tdcf}
        line = f"dev EER {eer:.3f} %" + (f"  dev min t-DCF {tdcf:.4f}" if tdcf is not None else "")
        if dses and epoch >= 0:
            folder = run.out_dir / "dses" / f"epoch{epoch:03d}"
            breakdown = evaluate_dses(model, dses, run, folder, full=False)["breakdown"]
            numbers["dses_eer/pooled"] = breakdown["pooled"]["eer_percent"]
            numbers.update(
                {f"dses_eer/{e}": row["eer_percent"] for e, row in breakdown["per_emotion"].items()}
            )
            line += f"  DSES EER {breakdown['pooled']['eer_percent']:.2f} %"
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
