"""The emotion-recognition recipe: the ACRNN on the bona fide ESD part of DSES, speaker-disjoint split,
selected on validation UA; evaluated with WA, UA and a confusion matrix (never spoofing metrics)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from torch import nn

from antispoof.data import TrainDataset
from antispoof.emotions import EMOTIONS
from antispoof.experiment import Run
from antispoof.fileio import write_text_atomically
from antispoof.protocols import Trial, scan_dses
from antispoof.recipes.common import build, score_trials
from antispoof.training.trainer import Trainer, Validation

EMOTION_INDEX = {e: i for i, e in enumerate(EMOTIONS)}


def ser_split(trials: list[Trial], val_speakers: list[str] | None) -> tuple[list[Trial], list[Trial]]:
    """Speaker-disjoint split: ``val_speakers`` if given, else the last 20 % of speakers (sorted)."""
    speakers = sorted({t.speaker for t in trials})
    if len(speakers) < 2:
        raise SystemExit("error: SER needs at least two ESD speakers for a speaker-disjoint split")
    val = val_speakers or speakers[-max(1, len(speakers) // 5) :]
    unknown = sorted(set(val) - set(speakers))
    if unknown:
        raise SystemExit(f"error: ser_val_speakers {unknown} are not in the ESD part of DSES")
    return [t for t in trials if t.speaker not in val], [t for t in trials if t.speaker in val]


def emotion_accuracy(labels: np.ndarray, predictions: np.ndarray) -> tuple[float, float]:
    """Weighted accuracy (overall) and unweighted accuracy (mean per-class recall), in %."""
    wa = float((labels == predictions).mean() * 100)
    recalls = [(predictions[labels == c] == c).mean() for c in np.unique(labels)]
    return wa, float(np.mean(recalls) * 100)


def confusion_matrix(labels: np.ndarray, predictions: np.ndarray, n: int) -> np.ndarray:
    """Counts: row = true emotion, column = predicted emotion."""
    matrix = np.zeros((n, n), dtype=np.int64)
    np.add.at(matrix, (labels, predictions), 1)
    return matrix


def format_confusion(matrix: np.ndarray) -> str:
    names = EMOTIONS[: len(matrix)]
    lines = ["| true \\ predicted | " + " | ".join(names) + " |", "| --- |" + " ---: |" * len(names)]
    lines += [f"| {name} | " + " | ".join(str(v) for v in row) + " |" for name, row in zip(names, matrix)]
    return "\n".join(lines)


def esd_split(run: Run) -> tuple[list[Trial], list[Trial]]:
    root = run.config.emo_dataset
    if not root:
        raise SystemExit("error: the config has no emo_dataset (the DSES folder whose ESD part SER uses)")
    trials, _ = scan_dses(root)
    esd = [t for t in trials if t.key == "bonafide"]
    from antispoof.preflight import check_audio

    check_audio({f"ESD ({root})": esd}, progress=run.is_main)
    train_trials, val_trials = ser_split(esd, run.config.ser_val_speakers)
    held_out = sorted({t.speaker for t in val_trials})
    run.log(
        f"SER on ESD in {root}: train {len(train_trials)}, validation {len(val_trials)} (held-out speakers {held_out})"
    )
    return train_trials, val_trials


def measure(model, trials: list[Trial], run: Run, desc: str) -> dict:
    labels = np.array([EMOTION_INDEX[t.emotion] for t in trials])
    predictions = score_trials(model, trials, run, desc=desc).argmax(axis=1)
    wa, ua = emotion_accuracy(labels, predictions)
    matrix = confusion_matrix(labels, predictions, len(EMOTIONS))
    return {"wa_percent": wa, "ua_percent": ua, "confusion": matrix.tolist(), "labels": list(EMOTIONS)}


def model_config_of(run: Run) -> dict:
    model_config = dict(run.config.model_config)
    model_config.setdefault("num_classes", len(EMOTIONS))
    return model_config


def evaluate(run: Run, load_model: Callable[[], nn.Module]) -> dict:
    """``main.py --eval`` on a SER config: WA, UA and the confusion matrix on the held-out speakers."""
    _, val_trials = esd_split(run)
    result = measure(load_model(), val_trials, run, "scoring validation speakers")
    report = (
        f"SER on held-out speakers: WA {result['wa_percent']:.2f} %  UA {result['ua_percent']:.2f} %\n\n"
        + format_confusion(np.array(result["confusion"]))
    )
    if run.is_main:
        write_text_atomically(run.out_dir / "ser_report.md", report + "\n")
        print(report)
    return {"ser": result}


def train(run: Run) -> dict:
    config = run.config
    train_trials, val_trials = esd_split(run)
    model = build(model_config_of(run), run)
    train_set = TrainDataset(
        train_trials, config.nb_samp, seed=config.seed, label_of=lambda t: EMOTION_INDEX[t.emotion]
    )

    def validate(model, epoch: int) -> Validation:
        result = measure(model, val_trials, run, "validation")
        wa, ua = result["wa_percent"], result["ua_percent"]
        return Validation(
            ua, f"val WA {wa:.2f} %  UA {ua:.2f} %", {"selection": ua, "val_wa": wa, "val_ua": ua}
        )

    record = Trainer(model, train_set, nn.CrossEntropyLoss(), validate, config, run, mode="max").fit()
    best = next(h for h in record["history"] if h["epoch"] == record["best_epoch"])
    run.log(
        f"best validation UA {best['val_ua']:.2f} % (WA {best['val_wa']:.2f} %) at epoch {record['best_epoch'] + 1}: "
        f"{run.out_dir / 'weights' / 'best.pth'} is a ser_path for the fusion models"
    )
    return {"ser": record, "ser_eval": measure(model, val_trials, run, "validation")}
